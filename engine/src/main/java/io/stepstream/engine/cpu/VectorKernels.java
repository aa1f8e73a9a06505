package io.stepstream.engine.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API versions of the small kernels around the matmuls. Reductions never use
 * {@code reduceLanes}: its summation order is unspecified and differs between the interpreter and compiled
 * code, which would make a token's result depend on when the JIT kicked in. {@link #sum} adds lanes in one
 * fixed tree order instead.
 */
public final class VectorKernels {
    /** The float species all CPU kernels use. */
    public static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int L = FLOATS.length();
    private static final VectorShuffle<Float> DOWN_8 = VectorShuffle.fromOp(FLOATS, i -> (i + 8) % L);
    private static final VectorShuffle<Float> DOWN_4 = VectorShuffle.fromOp(FLOATS, i -> (i + 4) % L);
    private static final VectorShuffle<Float> DOWN_2 = VectorShuffle.fromOp(FLOATS, i -> (i + 2) % L);
    private static final VectorShuffle<Float> DOWN_1 = VectorShuffle.fromOp(FLOATS, i -> (i + 1) % L);

    static {
        if (L > 16) {
            throw new ExceptionInInitializerError("float vectors wider than 16 lanes are not supported: " + FLOATS);
        }
    }

    private VectorKernels() {
    }

    /** Sum of the lanes in a fixed pairwise order: (l0+l8)+(l4+l12)... for 16 lanes, the same on every tier. */
    public static float sum(FloatVector v) {
        if (L >= 16) {
            v = v.add(v.rearrange(DOWN_8));
        }
        if (L >= 8) {
            v = v.add(v.rearrange(DOWN_4));
        }
        if (L >= 4) {
            v = v.add(v.rearrange(DOWN_2));
        }
        if (L >= 2) {
            v = v.add(v.rearrange(DOWN_1));
        }
        return v.lane(0);
    }
}

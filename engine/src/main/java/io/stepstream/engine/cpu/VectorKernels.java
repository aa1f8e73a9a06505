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
    /** Lanes of a {@link #FLOATS} vector. */
    public static final int LANES = FLOATS.length();
    private static final int L = LANES;
    // Lane rotations for the pairwise sum; null where the vector has too few lanes (then that step is skipped).
    private static final VectorShuffle<Float> DOWN_8 = L >= 16 ? VectorShuffle.fromOp(FLOATS, i -> (i + 8) % L) : null;
    private static final VectorShuffle<Float> DOWN_4 = L >= 8 ? VectorShuffle.fromOp(FLOATS, i -> (i + 4) % L) : null;
    private static final VectorShuffle<Float> DOWN_2 = L >= 4 ? VectorShuffle.fromOp(FLOATS, i -> (i + 2) % L) : null;
    private static final VectorShuffle<Float> DOWN_1 = L >= 2 ? VectorShuffle.fromOp(FLOATS, i -> (i + 1) % L) : null;

    static {
        if (L > 16) {
            throw new ExceptionInInitializerError("float vectors wider than 16 lanes are not supported: " + FLOATS);
        }
    }

    private VectorKernels() {
    }

    /**
     * Sum of the lanes in a fixed pairwise order: (l0+l8)+(l4+l12)... for 16 lanes, the same on every tier.
     * Kept (with {@link #fold}) under the JIT's always-inline size, so the vector argument is never boxed.
     */
    public static float sum(FloatVector v) {
        return fold(fold(fold(fold(v, DOWN_8), DOWN_4), DOWN_2), DOWN_1).lane(0);
    }

    /**
     * The same fixed-order sum over lanes stored at {@code v[at ..+ LANES)} (overwritten), in scalar code: for
     * kernels whose compiled size leaves no room to inline vector reductions.
     */
    public static float sumLanes(float[] v, int at) {
        for (int half = L / 2; half >= 1; half >>= 1) {
            for (int i = 0; i < half; i++) {
                v[at + i] += v[at + i + half];
            }
        }
        return v[at];
    }

    private static FloatVector fold(FloatVector v, VectorShuffle<Float> rotation) {
        return rotation == null ? v : v.add(v.rearrange(rotation));
    }
}

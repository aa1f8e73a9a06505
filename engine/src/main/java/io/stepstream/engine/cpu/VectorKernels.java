package io.stepstream.engine.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API versions of the small kernels around the matmuls (the plain ones in {@link Kernels} stay as
 * references); only those that clearly beat the plain loop in SmallKernelsBenchmark (axpy did not: C2
 * auto-vectorizes the plain loop). Softmax and SwiGLU are not here either: they are bound by exp, and the
 * Vector API's EXP is computed by a different routine in compiled code than in the interpreter, so results
 * would depend on JIT timing. Reductions never use {@code reduceLanes} for the same reason: its summation
 * order is unspecified and differs between the interpreter and compiled code. {@link #sum} adds lanes in one
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

    /**
     * sum_i a[aOffset + i] * b[bOffset + i] for i below n: lane-wise fused multiply-adds over whole vectors,
     * the fixed-order lane sum, then the remaining elements in order (for attention scores).
     */
    public static float dot(float[] a, int aOffset, float[] b, int bOffset, int n) {
        FloatVector acc = FloatVector.zero(FLOATS);
        int i = 0;
        for (int bound = n - n % L; i < bound; i += L) {
            acc = FloatVector.fromArray(FLOATS, a, aOffset + i).fma(FloatVector.fromArray(FLOATS, b, bOffset + i), acc);
        }
        float s = sum(acc);
        for (; i < n; i++) {
            s = Math.fma(a[aOffset + i], b[bOffset + i], s);
        }
        return s;
    }

    /**
     * RMSNorm of one row, o = weight * (x / sqrt(mean(x^2) + eps)), with the element formula of
     * {@link Kernels#rmsnorm}; only the sum of squares is ordered differently (vector lanes, fixed order).
     */
    public static void rmsnorm(float[] out, int outOffset, float[] x, int xOffset, float[] weight, int size,
                               float eps) {
        float ss = dot(x, xOffset, x, xOffset, size);
        ss /= size;
        ss += eps;
        float scale = 1f / (float) Math.sqrt(ss);
        int i = 0;
        for (int bound = size - size % L; i < bound; i += L) {
            FloatVector.fromArray(FLOATS, weight, i)
                    .mul(FloatVector.fromArray(FLOATS, x, xOffset + i).mul(scale))
                    .intoArray(out, outOffset + i);
        }
        for (; i < size; i++) {
            out[outOffset + i] = weight[i] * (scale * x[xOffset + i]);
        }
    }
}

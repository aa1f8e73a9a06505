package io.stepstream.engine.dlm;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Bidirectional attention of one head for a tile of up to {@link #TILE} query rows of one canvas that see the same
 * keys: every position (dense), or the key blocks a SparseD pattern keeps for their query block, given as ascending
 * key ranges. Vector API throughout: a key (and a value) is loaded once for the whole tile, the head dimension is
 * split into vector chunks, the softmax runs over vectors with {@link VectorKernels#expNonPositive}.
 *
 * <p>Exactness contract. Each row's result depends only on its own query and the keys it sees, never on its tile
 * mates or on how the kept keys are split into ranges: scores are one dot product per key (chunks summed in order,
 * then the lanes), the softmax runs over the kept scores in ascending key order, and values are accumulated one
 * key at a time in that order. So a pattern that keeps every block is bitwise dense attention, and the batch (or
 * tiling) a row happens to share is invisible in its output.
 */
final class CanvasAttention {
    /** Query rows sharing one pass over the keys and values. */
    static final int TILE = VectorKernels.SCORE_TILE;

    /** A static constant: the Vector API compiles to vector instructions only for species the JIT sees as constant. */
    private static final VectorSpecies<Float> SPECIES = VectorKernels.FLOATS;
    private static final int LANES = VectorKernels.LANES;
    private final boolean vector;
    private final int headSize;
    private final int chunks;

    /**
     * @param headSize the head dimension; the vector code needs it to be a multiple of the CPU kernels' lane count
     *                 (their fixed-order lane sum is what keeps results independent of JIT tiers), else scalar code
     */
    CanvasAttention(int headSize) {
        this.headSize = headSize;
        this.vector = headSize % LANES == 0;
        this.chunks = vector ? headSize / LANES : 0;
    }

    /**
     * @param rows         rows in the tile, 1..TILE
     * @param qOffset      each row's query (this head) in {@code q}
     * @param kvBase       where key/value position 0 of this head's KV head starts in {@code k} and {@code v}
     * @param kvStride     floats between consecutive positions in {@code k} and {@code v}
     * @param scaleDivisor scores are dot / scaleDivisor
     * @param keyFrom      ascending, disjoint key ranges [keyFrom[i], keyTo[i]) for i below {@code ranges}
     * @param att          scratch of TILE * attStride floats; attStride at least the number of kept keys
     * @param outOffset    where each row's headSize outputs go in {@code out}
     */
    void attend(int rows, float[] q, int[] qOffset, float[] k, float[] v, int kvBase, int kvStride,
                float scaleDivisor, int[] keyFrom, int[] keyTo, int ranges, float[] att, int attStride, float[] out,
                int[] outOffset) {
        int n = VectorKernels.tileScores(rows, q, qOffset, k, kvBase, kvStride, headSize, scaleDivisor, keyFrom,
                keyTo, ranges, att, attStride);
        for (int r = 0; r < rows; r++) {
            softmax(att, r * attStride, n);
        }
        if (!vector) {
            for (int r = 0; r < rows; r++) {
                weightedSumScalar(att, r * attStride, v, kvBase, kvStride, keyFrom, keyTo, ranges, out, outOffset[r]);
            }
            return;
        }
        int o0 = outOffset[0];
        int o1 = rows > 1 ? outOffset[1] : o0;
        int o2 = rows > 2 ? outOffset[2] : o0;
        int o3 = rows > 3 ? outOffset[3] : o0;
        // Chunk-major: a chunk is one cache line of each value row at 16 lanes, so the passes add no traffic.
        for (int c = 0, i = 0; c < chunks; c++, i += LANES) {
            FloatVector s0 = FloatVector.zero(SPECIES);
            FloatVector s1 = s0;
            FloatVector s2 = s0;
            FloatVector s3 = s0;
            int m = 0;
            for (int r = 0; r < ranges; r++) {
                for (int j = keyFrom[r]; j < keyTo[r]; j++, m++) {
                    FloatVector vc = FloatVector.fromArray(SPECIES, v, kvBase + j * kvStride + i);
                    s0 = vc.fma(FloatVector.broadcast(SPECIES, att[m]), s0);
                    s1 = vc.fma(FloatVector.broadcast(SPECIES, att[attStride + m]), s1);
                    s2 = vc.fma(FloatVector.broadcast(SPECIES, att[2 * attStride + m]), s2);
                    s3 = vc.fma(FloatVector.broadcast(SPECIES, att[3 * attStride + m]), s3);
                }
            }
            if (rows > 3) {
                s3.intoArray(out, o3 + i);
            }
            if (rows > 2) {
                s2.intoArray(out, o2 + i);
            }
            if (rows > 1) {
                s1.intoArray(out, o1 + i);
            }
            s0.intoArray(out, o0 + i);
        }
    }

    private void weightedSumScalar(float[] att, int ao, float[] v, int kvBase, int kvStride, int[] keyFrom,
                                   int[] keyTo, int ranges, float[] out, int oo) {
        for (int i = 0; i < headSize; i++) {
            out[oo + i] = 0f;
        }
        int m = 0;
        for (int r = 0; r < ranges; r++) {
            for (int j = keyFrom[r]; j < keyTo[r]; j++, m++) {
                int vo = kvBase + j * kvStride;
                float a = att[ao + m];
                for (int i = 0; i < headSize; i++) {
                    out[oo + i] += a * v[vo + i];
                }
            }
        }
    }

    /**
     * x[o .. o+n) = softmax. Max and sum over vector lanes (the sum in {@link VectorKernels#sum}'s fixed order),
     * exp by {@link VectorKernels#expNonPositive}: only IEEE add, multiply, fma and bit operations, so compiled and interpreted code agree
     * bit for bit (the Vector API's own EXP does not). Tail elements take the scalar twin of each step.
     */
    static void softmax(float[] x, int o, int n) {
        VectorSpecies<Float> s = VectorKernels.FLOATS;
        int bound = s.loopBound(n);
        FloatVector vmax = FloatVector.broadcast(s, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (; i < bound; i += s.length()) {
            vmax = vmax.max(FloatVector.fromArray(s, x, o + i));
        }
        float max = vmax.reduceLanes(VectorOperators.MAX); // max is exact in any order
        for (; i < n; i++) {
            max = Math.max(max, x[o + i]);
        }
        FloatVector vsum = FloatVector.zero(s);
        for (i = 0; i < bound; i += s.length()) {
            FloatVector e = VectorKernels.expNonPositive(FloatVector.fromArray(s, x, o + i).sub(max));
            e.intoArray(x, o + i);
            vsum = vsum.add(e);
        }
        float sum = VectorKernels.sum(vsum);
        for (; i < n; i++) {
            float e = VectorKernels.expNonPositive(x[o + i] - max);
            x[o + i] = e;
            sum += e;
        }
        for (i = 0; i < bound; i += s.length()) {
            FloatVector.fromArray(s, x, o + i).div(sum).intoArray(x, o + i);
        }
        for (; i < n; i++) {
            x[o + i] /= sum;
        }
    }
}

package io.stepstream.engine.sparse;

import io.stepstream.engine.cpu.Kernels;

/**
 * Attention of one query row of one head over the key blocks its query block keeps in a {@link SparsePattern}:
 * scores over the kept keys only, one softmax over their union, and the weighted sum of their values.
 *
 * <p>Keys are visited block by block in ascending order, and every float operation is the one dense attention
 * does for the same key (the dot product summed over the head dimension left to right, divided by the same scale,
 * {@link Kernels#softmax}, values accumulated in key order). So when every block is kept the output is bitwise
 * the dense one; skipped blocks simply drop out of the sums.
 */
public final class BlockSparseAttention {
    private BlockSparseAttention() {
    }

    /**
     * @param queryPos     the row's canvas position (decides its query block)
     * @param q            queries; this row's head starts at {@code qOffset}
     * @param kvOffset     where canvas position 0's key (and value) of this head's KV head starts in k (and v)
     * @param kvStride     floats between consecutive positions' keys
     * @param scaleDivisor scores are {@code dot / scaleDivisor} (sqrt(head_dim) as a float, like the dense path)
     * @param att          scratch of at least {@code pattern.tokens()} floats
     * @param out          receives headSize floats at {@code outOffset}
     */
    public static void attendRow(SparsePattern pattern, int layer, int head, int queryPos, float[] q, int qOffset,
                                 float[] k, float[] v, int kvOffset, int kvStride, int headSize, float scaleDivisor,
                                 float[] att, float[] out, int outOffset) {
        int u = pattern.unit(layer, head);
        int[] indptr = pattern.indptr[u];
        int[] indices = pattern.indices[u];
        int bs = pattern.blockSize();
        int len = pattern.tokens();
        int qb = queryPos / bs;
        int from = indptr[qb];
        int to = indptr[qb + 1];
        int n = 0;
        for (int b = from; b < to; b++) {
            int kb = indices[b];
            int end = Math.min(len, (kb + 1) * bs);
            for (int j = kb * bs; j < end; j++) {
                int ko = kvOffset + j * kvStride;
                float score = 0f;
                for (int i = 0; i < headSize; i++) {
                    score += q[qOffset + i] * k[ko + i];
                }
                att[n++] = score / scaleDivisor;
            }
        }
        Kernels.softmax(att, 0, n);
        for (int i = 0; i < headSize; i++) {
            out[outOffset + i] = 0f;
        }
        n = 0;
        for (int b = from; b < to; b++) {
            int kb = indices[b];
            int end = Math.min(len, (kb + 1) * bs);
            for (int j = kb * bs; j < end; j++) {
                int vo = kvOffset + j * kvStride;
                float a = att[n++];
                for (int i = 0; i < headSize; i++) {
                    out[outOffset + i] += a * v[vo + i];
                }
            }
        }
    }
}

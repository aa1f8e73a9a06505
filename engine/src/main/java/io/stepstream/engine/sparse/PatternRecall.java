package io.stepstream.engine.sparse;

import io.stepstream.engine.cpu.VectorKernels;

/**
 * How much of dense attention a block pattern keeps: for each query row of one (layer, head), the share of its dense
 * softmax mass (scores {@code q.k / scoreDivisor} over every key of the canvas) that falls in the key blocks its query
 * block keeps. A pattern that keeps every block has recall 1; dropping a block whose keys a row attends to lowers it.
 * Measured on the canvas of a later step, it says how well a pattern built once still covers attention there.
 *
 * <p>Scores are the float32 tiles of {@link VectorKernels#tileScores} and the exponentials its JIT-independent ones
 * (as the pattern build uses), block sums pooled in float64. A measuring aid for benches and tools, not on any hot
 * path. Each call is independent; {@link Scratch} holds one thread's work arrays.
 */
public final class PatternRecall {
    private static final int TILE = VectorKernels.SCORE_TILE;

    private PatternRecall() {
    }

    /** Work arrays of one thread for canvases of up to {@code tokens} positions. */
    public static final class Scratch {
        final float[] scores;
        final float[] blockSums;
        final int[] qOffset = new int[TILE];
        final int[] keyFrom = {0};
        final int[] keyTo = new int[1];

        public Scratch(int tokens) {
            scores = new float[TILE * tokens];
            blockSums = new float[tokens];
        }
    }

    /**
     * Recall of every query block of (layer, head), each the mean over its rows of the kept share of the row's dense
     * softmax mass; {@code recall[qb]}. Canvas position i's query of this head is {@code q[qOffset + i * qStride + d]},
     * its key {@code k[kOffset + i * kStride + d]}, d in [0, headSize).
     *
     * @param scoreDivisor what q.k is divided by (the attention's sqrt(head_dim))
     */
    public static double[] queryBlocks(SparsePattern pattern, int layer, int head, float[] q, int qOffset,
                                       int qStride, float[] k, int kOffset, int kStride, int headSize,
                                       float scoreDivisor, Scratch s) {
        int tokens = pattern.tokens();
        int bs = pattern.blockSize();
        int blocks = pattern.blocks();
        if (s.scores.length < TILE * tokens) {
            throw new IllegalArgumentException("scratch holds " + s.scores.length / TILE + " positions, the pattern "
                    + tokens);
        }
        double[] recall = new double[blocks];
        s.keyTo[0] = tokens;
        for (int qb = 0; qb < blocks; qb++) {
            int[] kept = pattern.keyBlocks(layer, head, qb);
            int rowEnd = Math.min(tokens, (qb + 1) * bs);
            double sum = 0;
            for (int i = qb * bs; i < rowEnd; i += TILE) {
                int rows = Math.min(TILE, rowEnd - i);
                for (int r = 0; r < rows; r++) {
                    s.qOffset[r] = qOffset + (i + r) * qStride;
                }
                VectorKernels.tileScores(rows, q, s.qOffset, k, kOffset, kStride, headSize, scoreDivisor, s.keyFrom,
                        s.keyTo, 1, s.scores, tokens);
                for (int r = 0; r < rows; r++) {
                    sum += keptShare(s.scores, r * tokens, tokens, bs, blocks, kept, s.blockSums);
                }
            }
            recall[qb] = sum / (rowEnd - qb * bs);
        }
        return recall;
    }

    /** One row's softmax mass in the kept blocks over its whole mass. */
    private static double keptShare(float[] scores, int o, int tokens, int bs, int blocks, int[] kept,
                                    float[] blockSums) {
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < tokens; j++) {
            max = Math.max(max, scores[o + j]);
        }
        double total = 0;
        for (int kb = 0; kb < blocks; kb++) {
            int a = kb * bs;
            int b = Math.min(tokens, a + bs);
            blockSums[kb] = SparseDBuilder.expSum(scores, o + a, b - a, max);
            total += blockSums[kb];
        }
        double in = 0;
        for (int kb : kept) {
            in += blockSums[kb];
        }
        return in / total;
    }

    /**
     * Recall of one head as a whole: the mean over all its query rows (query blocks weighted by their rows) of
     * {@link #queryBlocks}' per-block values.
     */
    public static double headMean(double[] blockRecall, int tokens, int blockSize) {
        double sum = 0;
        for (int qb = 0; qb < blockRecall.length; qb++) {
            int rows = Math.min(tokens, (qb + 1) * blockSize) - qb * blockSize;
            sum += blockRecall[qb] * rows;
        }
        return sum / tokens;
    }
}

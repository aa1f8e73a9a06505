package io.stepstream.engine.sparse;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Attention-mass recall of a pattern against a plain float64 transcription, on fresh random queries and keys. */
class PatternRecallTest {

    /** Per query block: the mean over its rows of (softmax mass in kept key blocks) / (all mass), in double. */
    private static double[] reference(SparsePattern p, int layer, int head, float[] q, int qStride, int qHead,
                                      float[] k, int kStride, int kHead, int hs, double divisor) {
        int tokens = p.tokens();
        int bs = p.blockSize();
        double[] out = new double[p.blocks()];
        for (int qb = 0; qb < p.blocks(); qb++) {
            boolean[] kept = new boolean[p.blocks()];
            for (int kb : p.keyBlocks(layer, head, qb)) {
                kept[kb] = true;
            }
            int end = Math.min(tokens, (qb + 1) * bs);
            double sum = 0;
            for (int i = qb * bs; i < end; i++) {
                double[] s = new double[tokens];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < tokens; j++) {
                    for (int d = 0; d < hs; d++) {
                        s[j] += (double) q[i * qStride + qHead + d] * k[j * kStride + kHead + d];
                    }
                    s[j] /= divisor;
                    max = Math.max(max, s[j]);
                }
                double all = 0;
                double in = 0;
                for (int j = 0; j < tokens; j++) {
                    double e = Math.exp(s[j] - max);
                    all += e;
                    if (kept[j / bs]) {
                        in += e;
                    }
                }
                sum += in / all;
            }
            out[qb] = sum / (end - qb * bs);
        }
        return out;
    }

    @Test
    void recallMatchesTheReferenceOnRandomPatterns() {
        SplittableRandom r = new SplittableRandom(404);
        int partial = 0;
        int blocksChecked = 0;
        for (int round = 0; round < 8; round++) {
            int layers = 1 + r.nextInt(2);
            int heads = 2 + r.nextInt(3);
            int hs = new int[]{8, 16, 12, 32}[r.nextInt(4)];
            int tokens = 10 + r.nextInt(120);
            int bs = 1 + r.nextInt(20);
            SparsePattern p = RandomSparseInputs.pattern(r, layers, heads, tokens, bs, 0.35);
            float divisor = (float) Math.sqrt(hs);
            PatternRecall.Scratch scratch = new PatternRecall.Scratch(tokens + r.nextInt(10));
            for (int l = 0; l < layers; l++) {
                float[] q = RandomSparseInputs.gaussian(r, tokens * heads * hs, 1 + r.nextDouble());
                float[] k = RandomSparseInputs.gaussian(r, tokens * heads * hs, 1 + r.nextDouble());
                for (int h = 0; h < heads; h++) {
                    double[] actual = PatternRecall.queryBlocks(p, l, h, q, h * hs, heads * hs, k, h * hs,
                            heads * hs, hs, divisor, scratch);
                    double[] expected = reference(p, l, h, q, heads * hs, h * hs, k, heads * hs, h * hs, hs,
                            divisor);
                    assertEquals(expected.length, actual.length);
                    double weighted = 0;
                    for (int qb = 0; qb < expected.length; qb++) {
                        assertEquals(expected[qb], actual[qb], 1e-5, "round " + round + " layer " + l + " head "
                                + h + " qb " + qb);
                        weighted += expected[qb] * (Math.min(tokens, (qb + 1) * bs) - qb * bs);
                        blocksChecked++;
                        if (expected[qb] < 0.99) {
                            partial++;
                        }
                    }
                    assertEquals(weighted / tokens, PatternRecall.headMean(actual, tokens, bs), 1e-5);
                }
            }
        }
        assertTrue(blocksChecked > 100, "blocks checked: " + blocksChecked);
        assertTrue(partial > blocksChecked / 3, "most blocks really lose mass: " + partial + "/" + blocksChecked);
    }

    @Test
    void aDensePatternRecallsEverything() {
        SplittableRandom r = new SplittableRandom(5);
        int tokens = 77;
        int hs = 16;
        SparsePattern dense = SparsePattern.dense(1, 1, tokens, 8);
        float[] q = RandomSparseInputs.gaussian(r, tokens * hs, 2);
        float[] k = RandomSparseInputs.gaussian(r, tokens * hs, 2);
        double[] recall = PatternRecall.queryBlocks(dense, 0, 0, q, 0, hs, k, 0, hs, hs, 4f,
                new PatternRecall.Scratch(tokens));
        for (double x : recall) {
            assertEquals(1.0, x, 1e-6);
        }
    }
}

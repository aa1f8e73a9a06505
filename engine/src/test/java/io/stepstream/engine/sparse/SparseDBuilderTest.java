package io.stepstream.engine.sparse;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The SparseD pattern builder against a plain transcription of the selection, on fresh random queries and keys. */
public class SparseDBuilderTest {

    /**
     * The selection spelled out: full-row float64 softmax pooled per key block, top int(n*select)+1 kept only in the
     * prompt region, a second softmax over the generated keys pooled and topped separately; ties to the lower block.
     */
    public static int[] referenceRow(float[] q, float[] k, int tokens, int headSize, int qRowStride, int qHeadOffset,
                                     int kRowStride, int kHeadOffset, int promptLength, double select, int bs,
                                     int qb) {
        return referenceRow(q, k, tokens, headSize, qRowStride, qHeadOffset, kRowStride, kHeadOffset, promptLength,
                select, bs, qb, Math.sqrt(headSize));
    }

    /** As above, with the scores divided by {@code divisor} rather than sqrt(head_dim). */
    public static int[] referenceRow(float[] q, float[] k, int tokens, int headSize, int qRowStride, int qHeadOffset,
                                     int kRowStride, int kHeadOffset, int promptLength, double select, int bs, int qb,
                                     double divisor) {
        int blocks = (tokens + bs - 1) / bs;
        int genStart = blocks - 1;
        for (int b = 0; b < blocks; b++) { // SparseD: the first block that starts inside the generated region
            if (tokens - b * bs <= tokens - promptLength) {
                genStart = b;
                break;
            }
        }
        double[] massAll = new double[blocks];
        double[] massGen = new double[blocks];
        for (int i = qb * bs; i < Math.min(tokens, (qb + 1) * bs); i++) {
            double[] s = new double[tokens];
            for (int j = 0; j < tokens; j++) {
                for (int d = 0; d < headSize; d++) {
                    s[j] += (double) q[i * qRowStride + qHeadOffset + d] * k[j * kRowStride + kHeadOffset + d];
                }
                s[j] /= divisor;
            }
            double[] pAll = softmax(s, 0, tokens);
            double[] pGen = softmax(s, genStart * bs, tokens);
            for (int j = 0; j < tokens; j++) {
                massAll[j / bs] += pAll[j];
                massGen[j / bs] += pGen[j];
            }
        }
        boolean[] keep = new boolean[blocks];
        for (int kb : top(massAll, 0, blocks, Math.min(blocks, (int) (blocks * select) + 1))) {
            if (kb < genStart) {
                keep[kb] = true;
            }
        }
        int g = blocks - genStart;
        for (int kb : top(massGen, genStart, blocks, Math.min(g, (int) (g * select) + 1))) {
            keep[kb] = true;
        }
        List<Integer> row = new ArrayList<>();
        for (int kb = 0; kb < blocks; kb++) {
            if (keep[kb]) {
                row.add(kb);
            }
        }
        return row.stream().mapToInt(Integer::intValue).toArray();
    }

    /** softmax over [from, to), zero elsewhere. */
    private static double[] softmax(double[] s, int from, int to) {
        double max = Double.NEGATIVE_INFINITY;
        for (int j = from; j < to; j++) {
            max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = from; j < to; j++) {
            sum += Math.exp(s[j] - max);
        }
        double[] p = new double[s.length];
        for (int j = from; j < to; j++) {
            p[j] = Math.exp(s[j] - max) / sum;
        }
        return p;
    }

    /** Repeatedly the largest not yet taken, the lowest index on ties. */
    private static List<Integer> top(double[] mass, int from, int to, int count) {
        boolean[] taken = new boolean[mass.length];
        List<Integer> out = new ArrayList<>();
        for (int c = 0; c < count; c++) {
            int best = -1;
            for (int b = from; b < to; b++) {
                if (!taken[b] && (best < 0 || mass[b] > mass[best])) {
                    best = b;
                }
            }
            taken[best] = true;
            out.add(best);
        }
        return out;
    }

    @Test
    void builderMatchesTheReferenceOnRandomInputs() {
        SplittableRandom r = new SplittableRandom(2024);
        int checkedRows = 0;
        int sparseRows = 0;
        for (int round = 0; round < 12; round++) {
            int layers = 1 + r.nextInt(2);
            int heads = 1 + r.nextInt(4);
            int kvHeads = heads % 2 == 0 && r.nextBoolean() ? heads / 2 : heads;
            int group = heads / kvHeads;
            int hs = 2 * (1 + r.nextInt(8));
            int tokens = 5 + r.nextInt(150);
            int bs = 1 + r.nextInt(24);
            int prompt = 1 + r.nextInt(tokens);
            double select = new double[]{0.1, 0.3, 0.5, 0.75, 1.0}[r.nextInt(5)];
            SparseDPolicy policy = new SparseDPolicy(0.2, select, bs);
            SparseDBuilder builder = new SparseDBuilder(policy, layers, heads, tokens, prompt);
            float[][] q = new float[layers][];
            float[][] k = new float[layers][];
            // Larger scales give peaked softmaxes, so the pooled masses really differ between blocks.
            double scale = 0.5 + 2 * r.nextDouble();
            for (int l = 0; l < layers; l++) {
                q[l] = RandomSparseInputs.gaussian(r, tokens * heads * hs, scale);
                k[l] = RandomSparseInputs.gaussian(r, tokens * kvHeads * hs, scale);
            }
            SparseDBuilder.Scratch scratch = builder.newScratch();
            // Units in a shuffled order, as threads would run them.
            List<int[]> units = new ArrayList<>();
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < heads; h++) {
                    for (int qb = 0; qb < builder.blocks(); qb++) {
                        units.add(new int[]{l, h, qb});
                    }
                }
            }
            java.util.Collections.shuffle(units, new java.util.Random(r.nextLong()));
            for (int[] u : units) {
                builder.selectQueryBlock(u[0], u[1], u[2], q[u[0]], u[1] * hs, heads * hs, k[u[0]],
                        (u[1] / group) * hs, kvHeads * hs, hs, scratch);
            }
            SparsePattern p = builder.finish();
            assertEquals(tokens, p.tokens());
            assertEquals((tokens + bs - 1) / bs, p.blocks());
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < heads; h++) {
                    for (int qb = 0; qb < p.blocks(); qb++) {
                        int[] expected = referenceRow(q[l], k[l], tokens, hs, heads * hs, h * hs, kvHeads * hs,
                                (h / group) * hs, prompt, select, bs, qb);
                        int[] actual = p.keyBlocks(l, h, qb);
                        assertArrayEquals(expected, actual, "round " + round + " layer " + l + " head " + h + " qb "
                                + qb + " (tokens " + tokens + ", bs " + bs + ", prompt " + prompt + ", select "
                                + select + ")");
                        checkedRows++;
                        if (actual.length < p.blocks()) {
                            sparseRows++;
                        }
                    }
                }
            }
            if (select == 1.0) {
                assertEquals(1.0, p.density(), "select 1 keeps every block");
            }
        }
        assertTrue(checkedRows > 200, "rows checked: " + checkedRows);
        assertTrue(sparseRows > checkedRows / 4, "most rows must really be sparse: " + sparseRows + "/" + checkedRows);
    }

    @Test
    void explicitDivisorSelectsAsSparseDsLladaCode() {
        // SparseD's LLaDA code divides the selection scores by sqrt(num_heads); the builder's explicit divisor does
        // the same, and on peaked inputs that really changes which blocks win.
        SplittableRandom r = new SplittableRandom(77);
        int differing = 0;
        int checked = 0;
        for (int round = 0; round < 6; round++) {
            int heads = 4;
            int hs = 16;
            int tokens = 60 + r.nextInt(100);
            int bs = 4 + r.nextInt(12);
            int prompt = 1 + r.nextInt(tokens);
            double select = round % 2 == 0 ? 0.3 : 0.5;
            SparseDPolicy policy = new SparseDPolicy(0.2, select, bs);
            float divisor = (float) Math.sqrt(heads);
            SparseDBuilder builder = new SparseDBuilder(policy, 1, heads, tokens, prompt, divisor);
            float[] q = RandomSparseInputs.gaussian(r, tokens * heads * hs, 1.5);
            float[] k = RandomSparseInputs.gaussian(r, tokens * heads * hs, 1.5);
            SparseDBuilder.Scratch scratch = builder.newScratch();
            for (int h = 0; h < heads; h++) {
                for (int qb = 0; qb < builder.blocks(); qb++) {
                    builder.selectQueryBlock(0, h, qb, q, h * hs, heads * hs, k, h * hs, heads * hs, hs, scratch);
                }
            }
            SparsePattern p = builder.finish();
            for (int h = 0; h < heads; h++) {
                for (int qb = 0; qb < p.blocks(); qb++) {
                    int[] expected = referenceRow(q, k, tokens, hs, heads * hs, h * hs, heads * hs, h * hs, prompt,
                            select, bs, qb, divisor);
                    assertArrayEquals(expected, p.keyBlocks(0, h, qb), "round " + round + " head " + h + " qb " + qb);
                    int[] byHeadDim = referenceRow(q, k, tokens, hs, heads * hs, h * hs, heads * hs, h * hs, prompt,
                            select, bs, qb);
                    differing += java.util.Arrays.equals(expected, byHeadDim) ? 0 : 1;
                    checked++;
                }
            }
        }
        assertTrue(differing > 0, "the divisor changes some selections: " + differing + "/" + checked);
        SparseDPolicy policy = new SparseDPolicy(0.2, 0.3, 4);
        assertThrows(IllegalArgumentException.class, () -> new SparseDBuilder(policy, 1, 1, 8, 3, -1f));
        assertThrows(IllegalArgumentException.class, () -> new SparseDBuilder(policy, 1, 1, 8, 3, Float.NaN));
    }

    @Test
    void regionSplitFollowsSparseD() {
        // 100 prompt tokens + 60 generated in blocks of 32: blocks 0..4, block 3 (96..127) straddles -> prompt.
        assertEquals(4, SparseDBuilder.generatedStartBlock(160, 100, 32));
        // Aligned prompt: the generated region starts at its own block.
        assertEquals(2, SparseDBuilder.generatedStartBlock(96, 64, 32));
        // No block starts inside the generated region: the last block is it.
        assertEquals(3, SparseDBuilder.generatedStartBlock(120, 100, 32));
        assertEquals(0, SparseDBuilder.generatedStartBlock(20, 3, 32));
    }

    @Test
    void policyCountsStepsLikeSparseD() {
        SparseDPolicy p = new SparseDPolicy(0.2, 0.3, 32);
        assertEquals(2, p.switchStep(8)); // int(1.6) + 1
        assertEquals(13, p.switchStep(64));
        for (int step = 0; step < 64; step++) {
            assertEquals(step >= 13, p.usesPattern(step, 64), "step " + step);
        }
        assertEquals(4, p.keep(10)); // int(3.0) + 1
        assertEquals(1, p.keep(1));
        assertEquals(10, new SparseDPolicy(0.2, 1.0, 32).keep(10));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SparseDPolicy(0.2, 0, 32)).getMessage()
                .contains("select"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SparseDPolicy(1.5, 0.3, 32)).getMessage()
                .contains("skip"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new SparseDPolicy(0.2, 0.3, 0)).getMessage()
                .contains("block_size"));
    }

    @Test
    void unfinishedBuildIsAnError() {
        SparseDBuilder b = new SparseDBuilder(new SparseDPolicy(0.2, 0.3, 4), 1, 1, 8, 3);
        assertThrows(IllegalStateException.class, b::finish);
        assertThrows(IllegalArgumentException.class, () -> new SparseDBuilder(SparseDPolicy.defaults(), 1, 1, 8, 9));
    }
}

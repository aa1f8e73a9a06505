package io.stepstream.engine.sparse;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The block-sparse kernel against a plain masked-dense reference in float64, on random inputs and patterns. */
class BlockSparseAttentionTest {

    /** A random valid pattern: each query block keeps a random non-empty subset of key blocks. */
    static SparsePattern randomPattern(SplittableRandom r, int layers, int heads, int tokens, int bs) {
        int blocks = SparsePattern.blocksFor(tokens, bs);
        int[][] indptr = new int[layers * heads][];
        int[][] indices = new int[layers * heads][];
        for (int u = 0; u < layers * heads; u++) {
            int[] ptr = new int[blocks + 1];
            int[] idx = new int[blocks * blocks];
            int n = 0;
            for (int qb = 0; qb < blocks; qb++) {
                int forced = r.nextInt(blocks);
                double density = r.nextDouble();
                for (int kb = 0; kb < blocks; kb++) {
                    if (kb == forced || r.nextDouble() < density) {
                        idx[n++] = kb;
                    }
                }
                ptr[qb + 1] = n;
            }
            indptr[u] = ptr;
            indices[u] = java.util.Arrays.copyOf(idx, n);
        }
        return SparsePattern.of(layers, heads, tokens, bs, indptr, indices);
    }

    /** Dense attention with every key outside the row's kept blocks masked to -infinity, all in double. */
    static double[] maskedReference(SparsePattern p, int layer, int head, int pos, float[] q, int qo, float[] k,
                                    float[] v, int kvOffset, int kvStride, int hs) {
        int tokens = p.tokens();
        boolean[] allowed = new boolean[tokens];
        for (int kb : p.keyBlocks(layer, head, pos / p.blockSize())) {
            for (int j = kb * p.blockSize(); j < Math.min(tokens, (kb + 1) * p.blockSize()); j++) {
                allowed[j] = true;
            }
        }
        double[] s = new double[tokens];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < tokens; j++) {
            if (!allowed[j]) {
                s[j] = Double.NEGATIVE_INFINITY;
                continue;
            }
            for (int d = 0; d < hs; d++) {
                s[j] += (double) q[qo + d] * k[kvOffset + j * kvStride + d];
            }
            s[j] /= Math.sqrt(hs);
            max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < tokens; j++) {
            s[j] = Math.exp(s[j] - max);
            sum += s[j];
        }
        double[] out = new double[hs];
        for (int j = 0; j < tokens; j++) {
            for (int d = 0; d < hs; d++) {
                out[d] += s[j] / sum * v[kvOffset + j * kvStride + d];
            }
        }
        return out;
    }

    @Test
    void matchesMaskedDenseReferenceOnRandomPatterns() {
        SplittableRandom r = new SplittableRandom(77);
        double worst = 0;
        for (int round = 0; round < 30; round++) {
            int layers = 1 + r.nextInt(2);
            int heads = 1 + r.nextInt(3);
            int kvHeads = 1;
            int hs = 2 * (1 + r.nextInt(12));
            int tokens = 1 + r.nextInt(120);
            int bs = 1 + r.nextInt(20);
            SparsePattern p = randomPattern(r, layers, heads, tokens, bs);
            float[] q = random(r, tokens * heads * hs, 1.5);
            float[] k = random(r, tokens * kvHeads * hs, 1.5);
            float[] v = random(r, tokens * kvHeads * hs, 1.0);
            float[] att = new float[tokens];
            float[] out = new float[hs + 3];
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < heads; h++) {
                    for (int pos = 0; pos < tokens; pos++) {
                        int qo = pos * heads * hs + h * hs;
                        BlockSparseAttention.attendRow(p, l, h, pos, q, qo, k, v, 0, kvHeads * hs, hs,
                                (float) Math.sqrt(hs), att, out, 3);
                        double[] expected = maskedReference(p, l, h, pos, q, qo, k, v, 0, kvHeads * hs, hs);
                        for (int d = 0; d < hs; d++) {
                            double err = Math.abs(out[3 + d] - expected[d]);
                            worst = Math.max(worst, err);
                            assertTrue(err < 1e-5 * (1 + Math.abs(expected[d])), "round " + round + " pos " + pos
                                    + " d " + d + ": " + out[3 + d] + " vs " + expected[d]);
                        }
                    }
                }
            }
        }
        assertTrue(worst > 0, "float32 kernel against float64 reference cannot be exact everywhere");
    }

    @Test
    void keepingEveryBlockIsBitwiseTheDenseLoop() {
        SplittableRandom r = new SplittableRandom(5);
        int tokens = 97;
        int hs = 16;
        SparsePattern p = SparsePattern.dense(1, 1, tokens, 8);
        float[] q = random(r, tokens * hs, 1);
        float[] k = random(r, tokens * hs, 1);
        float[] v = random(r, tokens * hs, 1);
        float scale = (float) Math.sqrt(hs);
        for (int pos = 0; pos < tokens; pos++) {
            float[] sparse = new float[hs];
            BlockSparseAttention.attendRow(p, 0, 0, pos, q, pos * hs, k, v, 0, hs, hs, scale, new float[tokens],
                    sparse, 0);
            // The dense loop as DiffusionModel writes it.
            float[] att = new float[tokens];
            for (int j = 0; j < tokens; j++) {
                float s = 0f;
                for (int i = 0; i < hs; i++) {
                    s += q[pos * hs + i] * k[j * hs + i];
                }
                att[j] = s / scale;
            }
            io.stepstream.engine.cpu.Kernels.softmax(att, 0, tokens);
            float[] dense = new float[hs];
            for (int j = 0; j < tokens; j++) {
                for (int i = 0; i < hs; i++) {
                    dense[i] += att[j] * v[j * hs + i];
                }
            }
            assertArrayEquals(dense, sparse, 0f, "position " + pos);
        }
    }

    static float[] random(SplittableRandom r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
        return a;
    }
}

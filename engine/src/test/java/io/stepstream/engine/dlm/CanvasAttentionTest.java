package io.stepstream.engine.dlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The vectorized tile attention against a plain float64 transcription of softmax(q k / sqrt(d)) v over the kept
 * keys, on fresh random inputs for head sizes that take each vector width and the scalar path; and its exactness
 * contract: a row's output does not depend on its tile mates, and splitting the keys into ranges changes nothing.
 */
class CanvasAttentionTest {
    private static final int LEN = 77;

    private record Case(float[] q, float[] k, float[] v, int hs, int kvStride, int kvBase) {
    }

    private static Case randomCase(SplittableRandom r, int hs) {
        int kvStride = hs * 2 + 3; // two KV heads and an odd gap, as a canvas's k rows are laid out
        int kvBase = hs + 1;
        float[] q = new float[4 * hs * 3];
        float[] k = new float[LEN * kvStride + kvBase + hs];
        float[] v = new float[k.length];
        for (float[] a : new float[][] {q, k, v}) {
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) r.nextDouble(-2, 2);
            }
        }
        return new Case(q, k, v, hs, kvStride, kvBase);
    }

    private static double[] reference(Case c, int qo, int[] from, int[] to, int ranges, float scale) {
        int kept = 0;
        for (int r = 0; r < ranges; r++) {
            kept += to[r] - from[r];
        }
        double[] s = new double[kept];
        int[] key = new int[kept];
        int n = 0;
        for (int r = 0; r < ranges; r++) {
            for (int j = from[r]; j < to[r]; j++, n++) {
                double d = 0;
                for (int i = 0; i < c.hs; i++) {
                    d += (double) c.q[qo + i] * c.k[c.kvBase + j * c.kvStride + i];
                }
                s[n] = d / scale;
                key[n] = j;
            }
        }
        double max = Arrays.stream(s).max().orElseThrow();
        double sum = 0;
        for (int i = 0; i < kept; i++) {
            s[i] = Math.exp(s[i] - max);
            sum += s[i];
        }
        double[] out = new double[c.hs];
        for (int i = 0; i < kept; i++) {
            for (int d = 0; d < c.hs; d++) {
                out[d] += s[i] / sum * c.v[c.kvBase + key[i] * c.kvStride + d];
            }
        }
        return out;
    }

    private static float[] run(CanvasAttention a, Case c, int rows, int[] qOffsets, int[] from, int[] to, int ranges,
                               float scale) {
        float[] out = new float[4 * c.hs * 3];
        int[] outOffsets = qOffsets.clone();
        a.attend(rows, c.q, qOffsets, c.k, c.v, c.kvBase, c.kvStride, scale, from, to, ranges,
                new float[CanvasAttention.TILE * LEN], LEN, out, outOffsets);
        return out;
    }

    @Test
    void matchesTheFloat64ReferenceForEveryWidthTileAndPattern() {
        var r = new SplittableRandom(42);
        for (int hs : new int[] {64, 32, 48, 40, 36, 30}) {
            var attention = new CanvasAttention(hs);
            float scale = (float) Math.sqrt(hs);
            for (int trial = 0; trial < 12; trial++) {
                Case c = randomCase(r, hs);
                int rows = 1 + trial % 4;
                int[] qOffsets = new int[4];
                for (int i = 0; i < 4; i++) {
                    qOffsets[i] = i * hs * 3 + (i % 2);
                }
                // dense on even trials; a random set of 8-key blocks on odd ones
                int[] from = new int[LEN];
                int[] to = new int[LEN];
                int ranges = 0;
                if (trial % 2 == 0) {
                    from[0] = 0;
                    to[0] = LEN;
                    ranges = 1;
                } else {
                    for (int b = 0; b * 8 < LEN; b++) {
                        if (r.nextInt(3) > 0 || b == 0) {
                            from[ranges] = b * 8;
                            to[ranges] = Math.min(LEN, b * 8 + 8);
                            ranges++;
                        }
                    }
                }
                float[] out = run(attention, c, rows, qOffsets, from, to, ranges, scale);
                for (int row = 0; row < rows; row++) {
                    double[] expected = reference(c, qOffsets[row], from, to, ranges, scale);
                    double maxRef = 0;
                    double maxDiff = 0;
                    for (int d = 0; d < hs; d++) {
                        maxRef = Math.max(maxRef, Math.abs(expected[d]));
                        maxDiff = Math.max(maxDiff, Math.abs(out[qOffsets[row] + d] - expected[d]));
                    }
                    assertTrue(maxRef > 0.01 && maxDiff / maxRef < 2e-5,
                            "hs " + hs + " trial " + trial + " row " + row + ": " + maxDiff / maxRef);
                }
            }
        }
    }

    @Test
    void expIsCloseToMathExpAndTheVectorAndScalarTwinsAgreeBitwise() {
        var r = new SplittableRandom(3);
        var species = io.stepstream.engine.cpu.VectorKernels.FLOATS;
        float[] x = new float[species.length() * 4096];
        for (int i = 0; i < x.length; i++) {
            x[i] = i < 8 ? new float[] {0f, -0f, -1e-30f, -87f, -86.9f, -88f, -200f, Float.NEGATIVE_INFINITY}[i]
                    : (float) -r.nextDouble(0, 90);
        }
        float[] vec = new float[x.length];
        for (int i = 0; i < x.length; i += species.length()) {
            io.stepstream.engine.cpu.VectorKernels.expNonPositive(jdk.incubator.vector.FloatVector.fromArray(species, x, i)).intoArray(vec, i);
        }
        for (int i = 0; i < x.length; i++) {
            float scalar = io.stepstream.engine.cpu.VectorKernels.expNonPositive(x[i]);
            assertTrue(Float.floatToIntBits(scalar) == Float.floatToIntBits(vec[i]), x[i] + ": " + scalar + " vs " + vec[i]);
            double exact = Math.exp(x[i]);
            if (x[i] >= -87f) {
                assertTrue(Math.abs(scalar - exact) <= 4 * Math.ulp((float) exact), x[i] + ": " + scalar + " vs " + exact);
            } else {
                assertTrue(scalar == 0f, x[i] + ": " + scalar);
            }
        }
    }

    @Test
    void aRowIsTheSameAloneInAnyTileAndUnderAnySplitOfItsKeys() {
        var r = new SplittableRandom(7);
        for (int hs : new int[] {64, 32, 30}) {
            var attention = new CanvasAttention(hs);
            float scale = (float) Math.sqrt(hs);
            Case c = randomCase(r, hs);
            int[] all = {0, 0, 0, 0};
            for (int i = 0; i < 4; i++) {
                all[i] = i * hs * 3;
            }
            float[] tiled = run(attention, c, 4, all, new int[] {0}, new int[] {LEN}, 1, scale);
            int[] from = new int[LEN];
            int[] to = new int[LEN];
            for (int j = 0; j < LEN; j++) {
                from[j] = j;
                to[j] = j + 1;
            }
            for (int row = 0; row < 4; row++) {
                int o = all[row];
                float[] alone = run(attention, c, 1, new int[] {o, 0, 0, 0}, new int[] {0}, new int[] {LEN}, 1, scale);
                float[] split = run(attention, c, 1, new int[] {o, 0, 0, 0}, from, to, LEN, scale);
                assertArrayEquals(Arrays.copyOfRange(tiled, o, o + hs), Arrays.copyOfRange(alone, o, o + hs));
                assertArrayEquals(Arrays.copyOfRange(alone, o, o + hs), Arrays.copyOfRange(split, o, o + hs));
            }
        }
    }
}

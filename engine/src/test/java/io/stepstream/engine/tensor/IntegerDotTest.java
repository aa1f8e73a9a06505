package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.ComputePool;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Activation quantization (bitwise against a scalar transcription of ggml's {@code quantize_row_q8_0_ref}) and
 * the integer-dot Q8_0 / Q4_0 matmuls (against a double-precision sum over the same quantized activations, and
 * bitwise batch invariance), on fresh random inputs.
 */
class IntegerDotTest {
    private static ComputePool pool;

    @BeforeAll
    static void startPool() {
        pool = new ComputePool(3, "integer-dot-test");
    }

    @AfterAll
    static void stopPool() {
        pool.close();
    }

    /** ggml's reference, transcribed: amax, d = amax / 127, id = 1 / d, stored d as float16, q = roundf(x * id). */
    private static void ggmlQuantizeRow(float[] x, int at, int n, byte[] q, float[] d) {
        for (int b = 0; b < n / 32; b++) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[at + b * 32 + j]));
            }
            float dd = amax / ((1 << 7) - 1);
            float id = dd != 0 ? 1.0f / dd : 0.0f;
            d[b] = Float.float16ToFloat(Float.floatToFloat16(dd));
            for (int j = 0; j < 32; j++) {
                float x0 = x[at + b * 32 + j] * id;
                // roundf in double (exact for a float argument): halves away from zero
                double r = x0 >= 0 ? Math.floor(x0 + 0.5) : -Math.floor(-(double) x0 + 0.5);
                q[b * 32 + j] = (byte) r;
            }
        }
    }

    private static float[] activations(int n, Random rnd) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            // mixed magnitudes per block, some exact zeros and whole zero blocks
            x[i] = (float) (rnd.nextGaussian() * Math.scalb(1.0, (i / 32) % 7 - 3));
        }
        for (int i = 0; i < n; i += 97) {
            x[i] = 0f;
        }
        if (n >= 64) {
            Arrays.fill(x, 32, 64, 0f);
        }
        return x;
    }

    @Test
    void quantizationIsBitwiseGgmlsReference() {
        Random rnd = new Random(71);
        QuantizedRows qr = new QuantizedRows();
        for (int trial = 0; trial < 20; trial++) {
            int cols = 32 * (1 + rnd.nextInt(40));
            int tokens = 1 + rnd.nextInt(9);
            int offset = rnd.nextInt(5);
            float[] x = activations(offset + tokens * cols, rnd);
            qr.quantize(x, offset, tokens, cols);
            assertEquals(tokens, qr.tokens());
            assertEquals(cols, qr.cols());
            byte[] q = new byte[cols];
            float[] d = new float[cols / 32];
            for (int t = 0; t < tokens; t++) {
                ggmlQuantizeRow(x, offset + t * cols, cols, q, d);
                for (int c = 0; c < cols; c++) {
                    assertEquals(q[c], qr.value(t, c), "token " + t + " value " + c);
                }
                for (int b = 0; b < cols / 32; b++) {
                    assertEquals(Float.floatToRawIntBits(d[b]), Float.floatToRawIntBits(qr.scale(t, b)),
                            "token " + t + " scale " + b);
                }
            }
        }
    }

    @Test
    void roundingIsCsRoundfNotJavasRound() {
        assertEquals(3, QuantizedRows.roundHalfAway(2.5f));
        assertEquals(-3, QuantizedRows.roundHalfAway(-2.5f));
        assertEquals(-2, QuantizedRows.roundHalfAway(-2.4999998f));
        assertEquals(0, QuantizedRows.roundHalfAway(0.49999997f));
        assertEquals(0, QuantizedRows.roundHalfAway(-0.49999997f));
        assertEquals(127, QuantizedRows.roundHalfAway(127.0f));
        assertEquals(-127, QuantizedRows.roundHalfAway(-126.5f));
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q8_0", "Q4_0"})
    void matchesDoubleSumOverTheQuantizedActivations(TensorType type) {
        Random rnd = new Random(900 + type.ordinal());
        for (int[] shape : new int[][] {{37, 64}, {8, 32}, {133, 544}, {4, 96}, {7, 1024}}) {
            int rows = shape[0];
            int cols = shape[1];
            RandomWeights.Encoded enc = RandomWeights.encode(type, rows, cols, rnd);
            WeightMatrix w = enc.onHeap();
            assumeTrue(w.hasIntegerDot(), "no integer dot with " + Lanes.L + " float lanes");
            for (int tokens : new int[] {1, 2, 3, 4, 5, 8, 9, 17, 33}) {
                float[] x = activations(tokens * cols, rnd);
                QuantizedRows qr = new QuantizedRows().quantize(x, 0, tokens, cols);
                float[] out = new float[tokens * rows + 3];
                Arrays.fill(out, Float.NaN);
                w.matmul(qr, out, 3, tokens % 2 == 0 ? pool : null);
                for (int t = 0; t < tokens; t++) {
                    for (int r = 0; r < rows; r++) {
                        double s = 0;
                        double m = 0;
                        for (int c = 0; c < cols; c++) {
                            double xv = qr.value(t, c) * (double) qr.scale(t, c / 32);
                            double p = enc.values()[r * cols + c] * xv;
                            s += p;
                            m += Math.abs(p);
                        }
                        double got = out[3 + t * rows + r];
                        assertTrue(Math.abs(got - s) <= 1e-5 * m + 1e-30,
                                type + " " + rows + "x" + cols + " tokens " + tokens + " t " + t + " r " + r
                                        + ": " + got + " vs " + s + " (magnitude " + m + ")");
                    }
                }
            }
        }
    }

    /** The quantized path is close to the float path on the same weights (activation rounding only). */
    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q8_0", "Q4_0"})
    void staysCloseToTheFloatPath(TensorType type) {
        Random rnd = new Random(1300 + type.ordinal());
        int rows = 64;
        int cols = 512;
        WeightMatrix w = RandomWeights.encode(type, rows, cols, rnd).onHeap();
        assumeTrue(w.hasIntegerDot());
        float[] x = RandomWeights.gaussian(3 * cols, rnd);
        float[] exact = new float[3 * rows];
        float[] quant = new float[3 * rows];
        w.matmul(x, 0, 3, exact, 0, null);
        w.matmul(new QuantizedRows().quantize(x, 0, 3, cols), quant, 0, null);
        double num = 0;
        double den = 0;
        for (int i = 0; i < exact.length; i++) {
            num += (quant[i] - (double) exact[i]) * (quant[i] - (double) exact[i]);
            den += (double) exact[i] * exact[i];
        }
        // 8-bit activations: a relative RMS error of about 1/127/sqrt(3) per value, averaged down by the dot
        assertTrue(Math.sqrt(num / den) < 0.02, "relative RMS error " + Math.sqrt(num / den));
        assertTrue(Math.sqrt(num / den) > 0, "the quantized path must differ somewhere from the float one");
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q8_0", "Q4_0"})
    void tokenOutputIsTheSameAloneOrInAnyBatch(TensorType type) {
        Random rnd = new Random(4100 + type.ordinal());
        int tokens = 33;
        int rows = 519; // not a multiple of the 4-row tile
        int cols = 544;
        WeightMatrix w = RandomWeights.encode(type, rows, cols, rnd).onHeap();
        assumeTrue(w.hasIntegerDot());
        float[] x = activations(tokens * cols, rnd);
        QuantizedRows qr = new QuantizedRows();
        float[] alone = new float[tokens * rows];
        for (int t = 0; t < tokens; t++) {
            w.matmul(qr.quantize(x, t * cols, 1, cols), alone, t * rows, null);
        }
        float[] out = new float[tokens * rows];
        for (int batch = 1; batch <= tokens; batch++) {
            for (ComputePool p : new ComputePool[] {null, pool}) {
                Arrays.fill(out, Float.NaN);
                for (int t0 = 0; t0 < tokens; t0 += batch) {
                    int n = Math.min(batch, tokens - t0);
                    w.matmul(qr.quantize(x, t0 * cols, n, cols), out, t0 * rows, p);
                }
                assertSameBits(alone, out, w + " in batches of " + batch + (p == null ? "" : " over the pool"));
            }
        }
        qr.quantize(x, 0, tokens, cols);
        for (int trial = 0; trial < 5; trial++) {
            Arrays.fill(out, Float.NaN);
            int a = rnd.nextInt(rows);
            int b = a + rnd.nextInt(rows - a + 1);
            w.matmulRows(qr, out, 0, 0, a);
            w.matmulRows(qr, out, 0, b, rows);
            w.matmulRows(qr, out, 0, a, b);
            assertSameBits(alone, out, w + " split at rows " + a + ", " + b);
        }
    }

    @Test
    void badInputsFailClearly() {
        Random rnd = new Random(5);
        WeightMatrix q8 = RandomWeights.encode(TensorType.Q8_0, 8, 64, rnd).onHeap();
        assumeTrue(q8.hasIntegerDot());
        QuantizedRows qr = new QuantizedRows().quantize(RandomWeights.gaussian(96, rnd), 0, 1, 96);
        IllegalArgumentException cols = assertThrows(IllegalArgumentException.class,
                () -> q8.matmul(qr, new float[8], 0, null));
        assertTrue(cols.getMessage().contains("96 columns"), cols.getMessage());
        WeightMatrix f32 = RandomWeights.encode(TensorType.F32, 8, 96, rnd).onHeap();
        assertThrows(UnsupportedOperationException.class, () -> f32.matmul(qr, new float[8], 0, null));
        IllegalArgumentException notBlocks = assertThrows(IllegalArgumentException.class,
                () -> new QuantizedRows().quantize(new float[40], 0, 1, 40));
        assertTrue(notBlocks.getMessage().contains("multiple of 32"), notBlocks.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> new QuantizedRows().quantize(new float[64], 1, 2, 32));
        QuantizedRows two = new QuantizedRows().quantize(RandomWeights.gaussian(128, rnd), 0, 2, 64);
        assertThrows(IndexOutOfBoundsException.class, () -> q8.matmul(two, new float[15], 0, null));
    }

    private static void assertSameBits(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                assertEquals(expected[i], actual[i], what + ": element " + i + " differs from the token alone");
                assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                        what + ": element " + i + " bits differ");
            }
        }
    }
}

package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.ComputePool;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The decode-once path (weight tiles decoded to float scratch once, float tiles over them for every token) must
 * give bitwise what the encoding's own tiles give, for every token count, row count and row split, and both must
 * be close to a double reference (so the two cannot agree on a wrong answer).
 */
class DecodeOnceTest {
    private static ComputePool pool;

    @BeforeAll
    static void startPool() {
        pool = new ComputePool(3, "decode-once-test");
    }

    @AfterAll
    static void stopPool() {
        pool.close();
    }

    @Test
    void q8_0DecodeOnceIsBitwiseTheEncodingsOwnTiles() {
        Random rnd = new Random(77);
        int[][] shapes = {{519, 544}, {67, 768}, {260, 1024}, {5, 32}};
        int[] tokenCounts = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33};
        for (int[] shape : shapes) {
            int rows = shape[0];
            int cols = shape[1];
            RandomWeights.Encoded enc = RandomWeights.encode(TensorType.Q8_0, rows, cols, rnd);
            WeightMatrix own = enc.onHeap().withDecodeOnceFrom(Integer.MAX_VALUE);
            WeightMatrix decoded = enc.onHeap().withDecodeOnceFrom(1);
            assertTrue(decoded.decodesOnceAt(1), decoded + " should take the decode-once path");
            assertFalse(own.decodesOnceAt(33), own + " should keep its own tiles");
            for (int tokens : tokenCounts) {
                float[] x = RandomWeights.gaussian(tokens * cols, rnd);
                float[] expected = new float[tokens * rows];
                own.matmul(x, 0, tokens, expected, 0, null);
                checkAgainstReference(enc, x, tokens, expected, own + " tokens=" + tokens);
                for (ComputePool p : new ComputePool[] {null, pool}) {
                    float[] got = new float[tokens * rows];
                    Arrays.fill(got, Float.NaN);
                    decoded.matmul(x, 0, tokens, got, 0, p);
                    assertSameBits(expected, got, decoded + " tokens=" + tokens + (p == null ? "" : " over the pool"));
                }
                // a row range that starts and ends off the tile grid, computed alone
                int a = rnd.nextInt(rows);
                int b = a + rnd.nextInt(rows - a + 1);
                float[] part = new float[tokens * rows];
                decoded.matmulRows(x, 0, tokens, part, 0, a, b);
                for (int t = 0; t < tokens; t++) {
                    for (int r = a; r < b; r++) {
                        assertEquals(Float.floatToRawIntBits(expected[t * rows + r]),
                                Float.floatToRawIntBits(part[t * rows + r]),
                                decoded + " rows [" + a + ", " + b + ") token " + t + " row " + r);
                    }
                }
            }
        }
    }

    @Test
    void enginePicksDecodeOnceForManyTokensOnRowsThatFitL1() {
        Random rnd = new Random(78);
        WeightMatrix q8 = RandomWeights.encode(TensorType.Q8_0, 8, 768, rnd).onHeap();
        assertTrue(q8.decodesOnceAt(32));
        assertTrue(q8.decodesOnceAt(WeightMatrix.DECODE_ONCE_MIN_TOKENS));
        assertFalse(q8.decodesOnceAt(WeightMatrix.DECODE_ONCE_MIN_TOKENS - 1));
        // 2048-column tiles do not fit L1 decoded; F32 has nothing to decode; Q4_0's arithmetic is two accumulators
        assertFalse(RandomWeights.encode(TensorType.Q8_0, 8, 2048, rnd).onHeap().decodesOnceAt(32));
        assertFalse(RandomWeights.encode(TensorType.F32, 8, 768, rnd).onHeap().decodesOnceAt(32));
        assertFalse(RandomWeights.encode(TensorType.Q4_0, 8, 768, rnd).onHeap().decodesOnceAt(32));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> q8.withDecodeOnceFrom(0));
        assertTrue(e.getMessage().contains("minTokens"), e.getMessage());
    }

    private static void checkAgainstReference(RandomWeights.Encoded enc, float[] x, int tokens, float[] out,
                                              String what) {
        double[][] ref = RandomWeights.reference(enc, x, 0, tokens);
        for (int i = 0; i < ref[0].length; i++) {
            double err = Math.abs(out[i] - ref[0][i]);
            double bound = (enc.cols() + 8) * 0x1p-24 * ref[1][i];
            assertTrue(err <= bound, what + ": element " + i + " = " + out[i] + ", reference " + ref[0][i]);
        }
    }

    private static void assertSameBits(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    what + ": element " + i + " (" + expected[i] + " vs " + actual[i] + ")");
        }
    }
}

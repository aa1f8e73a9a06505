package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.ComputePool;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A token's output must be bitwise the same whatever batch it is in and however rows are split over threads:
 * alone without the pool is the baseline; batches of every size 1..33 at every position, with and without
 * the pool, and hand-made row splits must all reproduce it.
 */
class WeightMatrixBatchInvarianceTest {
    private static final int TOKENS = 33;
    private static ComputePool pool;

    @BeforeAll
    static void startPool() {
        pool = new ComputePool(3, "weight-matrix-invariance");
    }

    @AfterAll
    static void stopPool() {
        pool.close();
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void tokenOutputIsTheSameAloneOrInAnyBatch(TensorType type) {
        Random rnd = new Random(4000 + type.ordinal());
        // big enough that even one token goes over the pool; rows not a multiple of the 4-row tile
        int rows = 519;
        int cols = type.quantized() ? (type.blockSize() > 32 ? 512 : 544) : 549;
        WeightMatrix w = RandomWeights.encode(type, rows, cols, rnd).onHeap();
        float[] x = RandomWeights.gaussian(TOKENS * cols, rnd);

        float[] alone = new float[TOKENS * rows];
        for (int t = 0; t < TOKENS; t++) {
            w.matmul(x, t * cols, 1, alone, t * rows, null);
        }
        float[] out = new float[TOKENS * rows];
        for (int batch = 1; batch <= TOKENS; batch++) {
            for (ComputePool p : new ComputePool[] {null, pool}) {
                java.util.Arrays.fill(out, Float.NaN);
                for (int t0 = 0; t0 < TOKENS; t0 += batch) {
                    int n = Math.min(batch, TOKENS - t0);
                    w.matmul(x, t0 * cols, n, out, t0 * rows, p);
                }
                assertSameBits(alone, out, w + " in batches of " + batch + (p == null ? "" : " over the pool"));
            }
        }
        // arbitrary row splits (not multiples of the tile) computed separately
        for (int trial = 0; trial < 5; trial++) {
            java.util.Arrays.fill(out, Float.NaN);
            int a = rnd.nextInt(rows);
            int b = a + rnd.nextInt(rows - a + 1);
            w.matmulRows(x, 0, TOKENS, out, 0, 0, a);
            w.matmulRows(x, 0, TOKENS, out, 0, b, rows);
            w.matmulRows(x, 0, TOKENS, out, 0, a, b);
            assertSameBits(alone, out, w + " split at rows " + a + ", " + b);
        }
        // after all the calls above the kernels are JIT-compiled: the first, colder results still match
        float[] again = new float[rows];
        for (int t = 0; t < TOKENS; t++) {
            w.matmul(x, t * cols, 1, again, 0, pool);
            for (int r = 0; r < rows; r++) {
                assertEquals(Float.floatToRawIntBits(alone[t * rows + r]), Float.floatToRawIntBits(again[r]),
                        w + " token " + t + " row " + r + " after warm-up");
            }
        }
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

package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.ComputePool;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Every encoding's matmul and row decoder against a plain double reference on fresh random data. */
class WeightMatrixTest {
    private static ComputePool pool;

    @BeforeAll
    static void startPool() {
        pool = new ComputePool(3, "weight-matrix-test");
    }

    @AfterAll
    static void stopPool() {
        pool.close();
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void matmulMatchesDoubleReference(TensorType type) {
        Random rnd = new Random(1000 + type.ordinal());
        try (Arena arena = Arena.ofShared()) { // pool threads read it too
            for (int trial = 0; trial < 24; trial++) {
                int rows = 1 + rnd.nextInt(41);
                // plain float types: any width, mostly not a multiple of the vector length
                int cols = type.quantized() ? type.blockSize() * (1 + rnd.nextInt(type.blockSize() > 32 ? 3 : 12))
                        : 1 + rnd.nextInt(300);
                int tokens = 1 + rnd.nextInt(33);
                RandomWeights.Encoded enc = RandomWeights.encode(type, rows, cols, rnd);
                WeightMatrix w = switch (trial % 3) {
                    case 0 -> enc.onHeap();
                    case 1 -> enc.in(arena);
                    default -> type == TensorType.F32 ? WeightMatrix.f32(enc.values().clone(), rows, cols) : enc.onHeap();
                };
                int xOffset = rnd.nextInt(7);
                int outOffset = rnd.nextInt(7);
                float[] x = RandomWeights.gaussian(xOffset + tokens * cols, rnd);
                float[] out = new float[outOffset + tokens * rows + 5];
                Arrays.fill(out, Float.NaN);
                w.matmul(x, xOffset, tokens, out, outOffset, trial % 2 == 0 ? pool : null);
                check(enc, x, xOffset, tokens, out, outOffset, w + " tokens=" + tokens);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void largeMatmulOverThePoolMatchesDoubleReference(TensorType type) {
        Random rnd = new Random(2000 + type.ordinal());
        int rows = 203;
        int cols = type.quantized() ? (type.blockSize() > 32 ? 768 : 640) : 651;
        int tokens = 9;
        RandomWeights.Encoded enc = RandomWeights.encode(type, rows, cols, rnd);
        WeightMatrix w = enc.onHeap();
        float[] x = RandomWeights.gaussian(tokens * cols, rnd);
        float[] out = new float[tokens * rows];
        w.matmul(x, 0, tokens, out, 0, pool);
        check(enc, x, 0, tokens, out, 0, w.toString());
    }

    /**
     * matmulRows over random sub-ranges (odd starts and lengths, so the four-row tiles' runs start anywhere and
     * rows are left over): exactly the rows of the range are written, each within the reference's bounds.
     */
    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "Q8_0", "F16"})
    void rowRangesWriteExactlyTheirRowsAndMatchDoubleReference(TensorType type) {
        Random rnd = new Random(3000 + type.ordinal());
        for (int trial = 0; trial < 12; trial++) {
            int rows = 9 + rnd.nextInt(120);
            int cols = type.quantized() ? 32 * (1 + rnd.nextInt(6)) : 1 + rnd.nextInt(200);
            int tokens = 1 + rnd.nextInt(9);
            RandomWeights.Encoded enc = RandomWeights.encode(type, rows, cols, rnd);
            WeightMatrix w = enc.onHeap();
            float[] x = RandomWeights.gaussian(tokens * cols, rnd);
            double[][] ref = RandomWeights.reference(enc, x, 0, tokens);
            int r0 = rnd.nextInt(rows);
            int r1 = r0 + 1 + rnd.nextInt(rows - r0);
            float[] out = new float[tokens * rows];
            Arrays.fill(out, Float.NaN);
            w.matmulRows(x, 0, tokens, out, 0, r0, r1);
            String what = w + " rows [" + r0 + ", " + r1 + ") tokens=" + tokens;
            for (int t = 0; t < tokens; t++) {
                for (int r = 0; r < rows; r++) {
                    int i = t * rows + r;
                    if (r < r0 || r >= r1) {
                        assertTrue(Float.isNaN(out[i]), what + ": wrote row " + r + " outside the range");
                        continue;
                    }
                    double err = Math.abs(out[i] - ref[0][i]);
                    double bound = (cols + 8) * 0x1p-24 * ref[1][i];
                    assertTrue(err <= bound, what + ": row " + r + " token " + t + " = " + out[i] + ", reference "
                            + ref[0][i] + ", error " + err + " over the bound " + bound);
                }
            }
        }
    }

    /**
     * Normwise relative error at most 1e-5, and each element within the float32 error bound of a chain of
     * cols + 8 roundings, |err| <= (cols + 8) * 2^-24 * sum |w x|. Decoding is exact for every encoding, so
     * the same bounds hold for all of them. Elements outside the output range must be untouched.
     */
    private static void check(RandomWeights.Encoded enc, float[] x, int xOffset, int tokens, float[] out,
                              int outOffset, String what) {
        double[][] ref = RandomWeights.reference(enc, x, xOffset, tokens);
        double errSq = 0;
        double refSq = 0;
        for (int i = 0; i < ref[0].length; i++) {
            float got = out[outOffset + i];
            double err = Math.abs(got - ref[0][i]);
            double bound = (enc.cols() + 8) * 0x1p-24 * ref[1][i];
            if (!(err <= bound)) {
                fail(what + ": element " + i + " = " + got + ", reference " + ref[0][i] + ", error " + err
                        + " over the bound " + bound);
            }
            errSq += err * err;
            refSq += ref[0][i] * ref[0][i];
        }
        double relative = Math.sqrt(errSq / refSq);
        assertTrue(relative <= 1e-5, what + ": normwise relative error " + relative);
        for (int i = 0; i < outOffset; i++) {
            assertTrue(Float.isNaN(out[i]), what + ": wrote before outOffset at " + i);
        }
        for (int i = outOffset + ref[0].length; i < out.length; i++) {
            assertTrue(Float.isNaN(out[i]), what + ": wrote past the output at " + i);
        }
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void decodeRowIsExact(TensorType type) {
        Random rnd = new Random(3000 + type.ordinal());
        int rows = 7;
        int cols = type.quantized() ? 3 * type.blockSize() : 77;
        RandomWeights.Encoded enc = RandomWeights.encode(type, rows, cols, rnd);
        WeightMatrix w = enc.onHeap();
        float[] row = new float[cols + 3];
        for (int r = 0; r < rows; r++) {
            w.decodeRow(r, row, 3);
            for (int c = 0; c < cols; c++) {
                assertEquals(Float.floatToRawIntBits(enc.values()[r * cols + c]), Float.floatToRawIntBits(row[3 + c]),
                        w + " row " + r + " col " + c);
            }
        }
    }

    @Test
    void everyFloat16BitPatternDecodesLikeTheJdk() {
        byte[] bytes = new byte[2 * 65536];
        for (int h = 0; h < 65536; h++) {
            bytes[2 * h] = (byte) h;
            bytes[2 * h + 1] = (byte) (h >>> 8);
        }
        WeightMatrix w = WeightMatrix.of(TensorType.F16, MemorySegment.ofArray(bytes), 1, 65536);
        float[] row = new float[65536];
        w.decodeRow(0, row, 0);
        for (int h = 0; h < 65536; h++) {
            float expected = Float.float16ToFloat((short) h);
            assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(row[h]),
                    "float16 bits 0x" + Integer.toHexString(h));
        }
    }

    @Test
    void factoryRejectsBadShapesWithClearMessages() {
        MemorySegment fourKib = MemorySegment.ofArray(new byte[4096]);
        assertMessage(IllegalArgumentException.class, "data holds 4096 bytes but a 2 x 64 Q4_0 matrix takes 72 bytes",
                () -> WeightMatrix.of(TensorType.Q4_0, fourKib, 2, 64));
        assertMessage(IllegalArgumentException.class, "cols (48) of a Q8_0 matrix must be a multiple of its 32",
                () -> WeightMatrix.of(TensorType.Q8_0, fourKib, 2, 48));
        assertMessage(IllegalArgumentException.class, "rows must be >= 1, got 0",
                () -> WeightMatrix.of(TensorType.F32, fourKib, 0, 4));
        assertMessage(IllegalArgumentException.class, "cols must be >= 1, got -3",
                () -> WeightMatrix.of(TensorType.F16, fourKib, 4, -3));
        assertMessage(IllegalArgumentException.class, "cols (128) of a Q4_K matrix must be a multiple of its 256",
                () -> WeightMatrix.of(TensorType.Q4_K, MemorySegment.ofArray(new byte[144]), 1, 128));
        assertMessage(IllegalArgumentException.class, "data holds 144 bytes but a 1 x 256 Q6_K matrix takes 210 bytes",
                () -> WeightMatrix.of(TensorType.Q6_K, MemorySegment.ofArray(new byte[144]), 1, 256));
        assertMessage(IllegalArgumentException.class, "data has 10 floats but a 3 x 4 matrix needs 12",
                () -> WeightMatrix.f32(new float[10], 3, 4));
        assertThrows(NullPointerException.class, () -> WeightMatrix.of(null, fourKib, 1, 1));
        // one byte too many is as wrong as one too few: the caller sliced the tensor wrongly
        assertMessage(IllegalArgumentException.class, "data holds 1025 bytes but a 16 x 32 BF16 matrix takes 1024",
                () -> WeightMatrix.of(TensorType.BF16, MemorySegment.ofArray(new byte[1025]), 16, 32));
    }

    @Test
    void matmulRejectsArraysThatDoNotFit() {
        WeightMatrix w = WeightMatrix.f32(new float[6 * 5], 6, 5);
        float[] out = new float[12];
        assertMessage(IndexOutOfBoundsException.class, "x: 2 token(s) of 5 floats from offset 1 do not fit in an array of 10",
                () -> w.matmul(new float[10], 1, 2, out, 0, null));
        assertMessage(IndexOutOfBoundsException.class, "out: 2 token(s) of 6 floats from offset 1 do not fit in an array of 12",
                () -> w.matmul(new float[10], 0, 2, out, 1, pool));
        assertMessage(IllegalArgumentException.class, "tokens must be >= 0, got -1",
                () -> w.matmul(new float[10], 0, -1, out, 0, null));
        assertMessage(IndexOutOfBoundsException.class, "row range [4, 7) is not within [0, 6)",
                () -> w.matmulRows(new float[10], 0, 2, out, 0, 4, 7));
        assertThrows(IndexOutOfBoundsException.class, () -> w.decodeRow(6, new float[5], 0));
        assertThrows(IndexOutOfBoundsException.class, () -> w.decodeRow(0, new float[5], 1));
        w.matmul(new float[0], 0, 0, new float[0], 0, pool); // no tokens: nothing to do, nothing to check
    }

    private static void assertMessage(Class<? extends Throwable> type, String part, Runnable call) {
        Throwable t = assertThrows(type, call::run);
        assertTrue(t.getMessage() != null && t.getMessage().contains(part),
                "expected a message containing \"" + part + "\", got \"" + t.getMessage() + "\"");
    }
}

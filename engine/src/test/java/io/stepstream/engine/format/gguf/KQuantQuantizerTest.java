package io.stepstream.engine.format.gguf;

import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Our Q4_K and Q6_K quantizers: quantize then dequantize (ggml's decoding, {@link Quants#dequantize}) stays within
 * the per-element bound the quantizers promise, read from the stored scales, and within a normwise error typical
 * of 4 and 6 bits, on random data of many magnitudes, with offsets, all-zero and constant sub-blocks.
 */
class KQuantQuantizerTest {
    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q4_K", "Q6_K"})
    void roundTripStaysWithinTheDocumentedBound(TensorType type) {
        Random rnd = new Random(77 + type.ordinal());
        double errSq = 0;
        double refSq = 0;
        for (int trial = 0; trial < 60; trial++) {
            int blocks = 1 + rnd.nextInt(4);
            float[] x = new float[256 * blocks];
            double magnitude = Math.scalb(1.0, rnd.nextInt(21) - 12);
            double shift = trial % 3 == 0 ? magnitude * rnd.nextGaussian() : 0; // sub-blocks not centred on 0
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (shift + magnitude * rnd.nextGaussian());
            }
            if (trial % 5 == 0) { // a constant and an all-zero sub-block
                java.util.Arrays.fill(x, 32, 64, x[32]);
                java.util.Arrays.fill(x, 64, 96, 0f);
            }
            byte[] q = Quants.quantize(type, x);
            float[] y = Quants.dequantize(type, MemorySegment.ofArray(q));
            ByteBuffer b = ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < x.length; i++) {
                double bound = bound(type, b, i);
                double err = Math.abs((double) y[i] - x[i]);
                assertTrue(err <= bound, type + " trial " + trial + " element " + i + ": x=" + x[i] + " got " + y[i]
                        + " err " + err + " > " + bound);
                if (shift == 0) {
                    errSq += err * err / (magnitude * magnitude);
                    refSq += (double) x[i] * x[i] / (magnitude * magnitude);
                }
            }
        }
        double relative = Math.sqrt(errSq / refSq);
        // uniform rounding over the sub-block's range: about 0.09 for 4 bits, 0.02 for 6 (min/max fits)
        assertTrue(relative < (type == TensorType.Q4_K ? 0.12 : 0.03), type + " normwise relative error " + relative);
        assertTrue(relative > (type == TensorType.Q4_K ? 0.03 : 0.005), type + " error suspiciously small " + relative);
    }

    /** (d * scale + dmin) / 2 for Q4_K, d * scale / 2 for Q6_K, from the stored block, plus float rounding. */
    private static double bound(TensorType type, ByteBuffer b, int i) {
        int block = i / 256 * type.blockBytes();
        int e = i % 256;
        if (type == TensorType.Q4_K) {
            double d = Float.float16ToFloat(b.getShort(block));
            double dmin = Float.float16ToFloat(b.getShort(block + 2));
            int j = e / 32;
            MemorySegment s = MemorySegment.ofArray(b.array());
            double step = d * Quants.q4kScale(s, block + 4, j);
            double min = dmin * Quants.q4kMin(s, block + 4, j);
            return (step + dmin) / 2 * (1 + 1e-6) + 0x1p-22 * (15 * step + min);
        }
        double d = Float.float16ToFloat(b.getShort(block + 208));
        double step = d * b.get(block + 192 + e / 16);
        return step / 2 * (1 + 1e-6) + 0x1p-22 * 32 * step;
    }

    @Test
    void valuesOnTheGridComeBackExactly() {
        Random rnd = new Random(5);
        // Q6_K: sub-block j holds integers in [-31, 31] (31 among them) times k_j / 128, k_j in 1..127 and one
        // of them 127: then d = 1/128 exactly and the int8 scale is k_j, so every value is on the grid
        float[] x = new float[256];
        for (int j = 0; j < 16; j++) {
            int k = j == 5 ? 127 : 1 + rnd.nextInt(127);
            for (int i = 0; i < 16; i++) {
                int q = i == 3 ? 31 : rnd.nextInt(63) - 31;
                x[16 * j + i] = q * k * 0x1p-7f;
            }
        }
        float[] y = Quants.dequantize(TensorType.Q6_K, MemorySegment.ofArray(Quants.quantize(TensorType.Q6_K, x)));
        for (int i = 0; i < x.length; i++) {
            assertEquals(x[i], y[i], "Q6_K element " + i);
        }
        // Q4_K: sub-block j holds q * s_j / 128 - m_j / 64 with q in 0..15 (0 and 15 among them), s_j in 1..63,
        // m_j in 0..63 (63 taken by one sub-block each): d = 1/128, dmin = 1/64, codes s_j and m_j
        for (int j = 0; j < 8; j++) {
            int sj = j == 2 ? 63 : 1 + rnd.nextInt(63);
            int mj = j == 6 ? 63 : rnd.nextInt(64);
            for (int i = 0; i < 32; i++) {
                int q = i == 0 ? 0 : i == 1 ? 15 : rnd.nextInt(16);
                x[32 * j + i] = q * sj * 0x1p-7f - mj * 0x1p-6f;
            }
        }
        y = Quants.dequantize(TensorType.Q4_K, MemorySegment.ofArray(Quants.quantize(TensorType.Q4_K, x)));
        for (int i = 0; i < x.length; i++) {
            assertEquals(x[i], y[i], "Q4_K element " + i);
        }
    }

    @Test
    void valuesBeyondFloat16ScalesAreRefusedWithAClearMessage() {
        float[] x = new float[256];
        x[7] = 1e30f;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Quants.quantize(TensorType.Q4_K, x));
        assertTrue(e.getMessage().startsWith("Q4_K: a super-block needs a scale of"), e.getMessage());
        x[7] = Float.NaN;
        assertThrows(IllegalArgumentException.class, () -> Quants.quantize(TensorType.Q6_K, x));
    }
}

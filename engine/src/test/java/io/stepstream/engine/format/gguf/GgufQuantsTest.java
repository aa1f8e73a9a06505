package io.stepstream.engine.format.gguf;

import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Quants against plain references written here from the ggml block layouts: element by element, with f16
 * decoded by arithmetic and rounding done with BigDecimal / Math.rint, so they share no code with Quants.
 */
class GgufQuantsTest {

    // ---- independent reference -------------------------------------------------------------------------

    /** IEEE half to float by arithmetic on sign, exponent and mantissa. */
    static float refHalf(int bits) {
        int exp = (bits >>> 10) & 31;
        int man = bits & 1023;
        double v;
        if (exp == 0) {
            v = man * 0x1p-24;
        } else if (exp == 31) {
            v = man == 0 ? Double.POSITIVE_INFINITY : Double.NaN;
        } else {
            v = (1024 + man) * Math.scalb(1.0, exp - 25);
        }
        return (float) ((bits & 0x8000) != 0 ? -v : v);
    }

    /** Float to IEEE half, rounding to nearest even with Math.rint on the half's quantum. */
    static int refToHalf(float x) {
        int sign = (Float.floatToRawIntBits(x) >>> 16) & 0x8000;
        double a = Math.abs((double) x);
        if (a >= 65520) { // the midpoint between 65504 (odd mantissa) and 65536 rounds up: infinity
            return sign | 0x7C00;
        }
        int e = Math.getExponent(a);
        double quantum = e < -14 ? 0x1p-24 : Math.scalb(1.0, e - 10);
        double r = Math.rint(a / quantum) * quantum;
        if (r == 0) {
            return sign;
        }
        int re = Math.getExponent(r);
        if (re < -14) {
            return sign | (int) (r / 0x1p-24);
        }
        return sign | ((re + 15) << 10) | ((int) (r / Math.scalb(1.0, re - 10)) - 1024);
    }

    /** Float to bf16 rounding to nearest even on bf16's quantum; NaN keeps its top bits and becomes quiet. */
    static int refToBf16(float x) {
        int bits = Float.floatToRawIntBits(x);
        if (Float.isNaN(x)) {
            return ((bits >>> 16) | 0x40) & 0xFFFF;
        }
        if (Float.isInfinite(x)) {
            return (bits >>> 16) & 0xFFFF;
        }
        double a = x;
        int e = Math.max(Math.getExponent(x), -126);
        double quantum = Math.scalb(1.0, e - 7);
        double r = Math.rint(a / quantum) * quantum; // exact in double; may reach 2^128 -> infinity below
        return (Float.floatToRawIntBits((float) r) >>> 16) & 0xFFFF;
    }

    static int u8(byte[] b, int i) {
        return b[i] & 0xFF;
    }

    static int u16(byte[] b, int i) {
        return u8(b, i) | (u8(b, i + 1) << 8);
    }

    /** Element e of a block (given as bytes at {@code at}) of each type, straight from the layout. */
    static float refElement(TensorType type, byte[] b, int at, int e) {
        switch (type) {
            case F32:
                return Float.intBitsToFloat(u16(b, at + 4 * e) | (u16(b, at + 4 * e + 2) << 16));
            case F16:
                return refHalf(u16(b, at + 2 * e));
            case BF16:
                return Float.intBitsToFloat(u16(b, at + 2 * e) << 16);
            case Q8_0:
                return b[at + 2 + e] * refHalf(u16(b, at));
            case Q4_0: {
                int packed = u8(b, at + 2 + e % 16);
                int q = e < 16 ? packed & 15 : packed >> 4;
                return (q - 8) * refHalf(u16(b, at));
            }
            case Q4_K: {
                float d = refHalf(u16(b, at));
                float dmin = refHalf(u16(b, at + 2));
                int sub = e / 32; // 8 sub-blocks of 32
                int[] scale = new int[8];
                int[] min = new int[8];
                for (int j = 0; j < 4; j++) {
                    int s = at + 4;
                    scale[j] = u8(b, s + j) & 63;
                    min[j] = u8(b, s + 4 + j) & 63;
                    scale[j + 4] = (u8(b, s + 8 + j) & 15) | ((u8(b, s + j) >> 6) << 4);
                    min[j + 4] = (u8(b, s + 8 + j) >> 4) | ((u8(b, s + 4 + j) >> 6) << 4);
                }
                // sub-blocks 2k and 2k+1 share the 32 bytes qs[32k .. 32k+31]: low nibbles, then high nibbles
                int packed = u8(b, at + 16 + 32 * (sub / 2) + e % 32);
                int q = sub % 2 == 0 ? packed & 15 : packed >> 4;
                float dl = d * scale[sub];
                float ml = dmin * min[sub];
                return dl * q - ml;
            }
            case Q6_K: {
                float d = refHalf(u16(b, at + 208));
                int half = e / 128;
                int quarter = (e % 128) / 32;
                int l = e % 32;
                int low = u8(b, at + 64 * half + l + 32 * (quarter % 2));
                int nibble = quarter < 2 ? low & 15 : low >> 4;
                int high = (u8(b, at + 128 + 32 * half + l) >> (2 * quarter)) & 3;
                int scale = b[at + 192 + e / 16]; // one signed scale per 16 elements
                return d * scale * ((nibble | (high << 4)) - 32);
            }
            default:
                throw new AssertionError(type);
        }
    }

    static byte[] refQuantizeQ8_0(float[] x) {
        byte[] out = new byte[x.length / 32 * 34];
        for (int b = 0; b < x.length / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[32 * b + j]));
            }
            float d = amax / 127f;
            float id = d == 0 ? 0 : 1f / d;
            int h = refToHalf(d);
            out[34 * b] = (byte) h;
            out[34 * b + 1] = (byte) (h >> 8);
            for (int j = 0; j < 32; j++) {
                float scaled = x[32 * b + j] * id;
                // C's roundf: halfway away from zero, which is BigDecimal's HALF_UP
                out[34 * b + 2 + j] = (byte) new BigDecimal(scaled).setScale(0, RoundingMode.HALF_UP).intValue();
            }
        }
        return out;
    }

    static byte[] refQuantizeQ4_0(float[] x) {
        byte[] out = new byte[x.length / 32 * 18];
        for (int b = 0; b < x.length / 32; b++) {
            float signedMax = 0;
            for (int j = 0; j < 32; j++) {
                float v = x[32 * b + j];
                if (Math.abs(v) > Math.abs(signedMax)) { // first element of largest magnitude wins
                    signedMax = v;
                }
            }
            float d = signedMax / -8f;
            float id = d == 0 ? 0 : 1f / d;
            int h = refToHalf(d);
            out[18 * b] = (byte) h;
            out[18 * b + 1] = (byte) (h >> 8);
            int[] q = new int[32];
            for (int j = 0; j < 32; j++) {
                float shifted = x[32 * b + j] * id + 8.5f;
                q[j] = Math.min(15, (int) Math.floor(shifted)); // shifted > 0, so floor is C's truncation
            }
            for (int j = 0; j < 16; j++) {
                out[18 * b + 2 + j] = (byte) (q[j] | (q[j + 16] << 4));
            }
        }
        return out;
    }

    // ---- helpers --------------------------------------------------------------------------------------

    /** Random half bits that are finite (exponent below 31), subnormals included. */
    static int finiteHalf(Random rnd) {
        while (true) {
            int h = rnd.nextInt(1 << 16);
            if (((h >>> 10) & 31) != 31) {
                return h;
            }
        }
    }

    /** Random bf16 bits that are finite (exponent below 255), subnormals included. */
    static int finiteBf16(Random rnd) {
        while (true) {
            int h = rnd.nextInt(1 << 16);
            if (((h >>> 7) & 0xFF) != 0xFF) {
                return h;
            }
        }
    }

    /** {@code blocks} random blocks of {@code type}: random bytes with every f16 field a random finite half. */
    static byte[] randomBlocks(TensorType type, int blocks, Random rnd) {
        byte[] b = new byte[blocks * type.blockBytes()];
        rnd.nextBytes(b);
        for (int k = 0; k < blocks; k++) {
            int at = k * type.blockBytes();
            switch (type) {
                case F32 -> put32(b, at,
                        Float.floatToRawIntBits((float) (rnd.nextGaussian() * Math.exp(rnd.nextGaussian() * 5))));
                case F16 -> put16(b, at, finiteHalf(rnd));
                case BF16 -> put16(b, at, finiteBf16(rnd));
                case Q8_0, Q4_0 -> put16(b, at, finiteHalf(rnd));
                case Q4_K -> {
                    put16(b, at, finiteHalf(rnd));
                    put16(b, at + 2, finiteHalf(rnd));
                }
                case Q6_K -> put16(b, at + 208, finiteHalf(rnd));
            }
        }
        return b;
    }

    static void put16(byte[] b, int at, int v) {
        b[at] = (byte) v;
        b[at + 1] = (byte) (v >>> 8);
    }

    static void put32(byte[] b, int at, int v) {
        put16(b, at, v);
        put16(b, at + 2, v >>> 16);
    }

    static float[] randomFloats(Random rnd, int n) {
        float[] x = new float[n];
        for (int b = 0; b < n / 32; b++) {
            // blocks of very different magnitudes, but with scales d that an f16 holds (below 65504)
            double scale = Math.exp(Math.clamp(rnd.nextGaussian() * 4, -9, 7));
            int kind = rnd.nextInt(10);
            for (int j = 0; j < 32; j++) {
                x[32 * b + j] = switch (kind) {
                    case 0 -> 0f; // all-zero block: d = 0
                    case 1 -> (float) (rnd.nextInt(17) - 8); // small integers: many exact ties
                    case 2 -> j == 7 ? (float) (100 * scale) : (float) (rnd.nextGaussian() * scale * 0.01); // outlier
                    default -> (float) (rnd.nextGaussian() * scale);
                };
            }
        }
        return x;
    }

    static void assertBitsEqual(float expected, float actual, String what) {
        if (Float.floatToRawIntBits(expected) != Float.floatToRawIntBits(actual)) {
            fail(what + ": expected " + expected + " (0x" + Integer.toHexString(Float.floatToRawIntBits(expected))
                    + ") but was " + actual + " (0x" + Integer.toHexString(Float.floatToRawIntBits(actual)) + ")");
        }
    }

    // ---- tests ----------------------------------------------------------------------------------------

    @ParameterizedTest
    @EnumSource(TensorType.class)
    void dequantizationMatchesTheReferenceExactly(TensorType type) {
        Random rnd = new Random(1000 + type.ggmlId());
        for (int trial = 0; trial < 20; trial++) {
            int blocks = 1 + rnd.nextInt(type.quantized() ? 8 : 300);
            int lead = rnd.nextInt(5); // unaligned start inside the segment
            byte[] blockBytes = randomBlocks(type, blocks, rnd);
            byte[] withLead = new byte[lead + blockBytes.length];
            System.arraycopy(blockBytes, 0, withLead, lead, blockBytes.length);
            int n = blocks * type.blockSize();
            float[] out = new float[n + 2];
            Quants.dequantize(type, MemorySegment.ofArray(withLead), lead, out, 2, n);
            for (int k = 0; k < blocks; k++) {
                for (int e = 0; e < type.blockSize(); e++) {
                    float expected = refElement(type, blockBytes, k * type.blockBytes(), e);
                    assertBitsEqual(expected, out[2 + k * type.blockSize() + e], type + " block " + k + " element " + e);
                }
            }
        }
    }

    @Test
    void f16DecodingMatchesArithmeticForEveryBitPattern() {
        for (int h = 0; h < 1 << 16; h++) {
            float expected = refHalf(h);
            float actual = Quants.f16ToFloat((short) h);
            if (Float.isNaN(expected)) {
                assertTrue(Float.isNaN(actual), "NaN " + h);
            } else {
                assertBitsEqual(expected, actual, "half 0x" + Integer.toHexString(h));
            }
        }
    }

    @Test
    void f16AndBf16EncodingRoundToNearestEven() {
        Random rnd = new Random(3);
        for (int i = 0; i < 200_000; i++) {
            float x = switch (i % 4) {
                case 0 -> Float.intBitsToFloat(rnd.nextInt()); // any bit pattern
                case 1 -> (float) (rnd.nextGaussian() * Math.exp(rnd.nextGaussian() * 6));
                // exact midpoints between neighbouring halves / bf16s: ties
                case 2 -> midpointHalf(rnd);
                default -> Float.intBitsToFloat((rnd.nextInt() & 0xFFFF0000) | 0x8000);
            };
            if (!Float.isNaN(x)) {
                assertEquals(refToHalf(x), Quants.floatToF16(x) & 0xFFFF, "f16 of " + x);
            }
            assertEquals(refToBf16(x), Quants.floatToBf16(x) & 0xFFFF, "bf16 of " + x + " 0x"
                    + Integer.toHexString(Float.floatToRawIntBits(x)));
        }
        assertEquals(0x7C00, Quants.floatToF16(65520f) & 0xFFFF);
        assertEquals(0x7BFF, Quants.floatToF16(65519.99f) & 0xFFFF);
        assertEquals(0x7F80, Quants.floatToBf16(Float.MAX_VALUE) & 0xFFFF, "rounds up to infinity");
        assertEquals(0x3F80, Quants.floatToBf16(Float.intBitsToFloat(0x3F808000)) & 0xFFFF, "tie to even (down)");
        assertEquals(0x3F82, Quants.floatToBf16(Float.intBitsToFloat(0x3F818000)) & 0xFFFF, "tie to even (up)");
        assertEquals(0x0001, Quants.floatToBf16(Float.intBitsToFloat(0x00010000)) & 0xFFFF, "subnormals kept");
        assertTrue(Float.isNaN(Quants.bf16ToFloat(Quants.floatToBf16(Float.intBitsToFloat(0x7F800001)))),
                "a NaN whose payload is in the low bits stays NaN");
    }

    /** A float exactly halfway between two adjacent finite halves. */
    private static float midpointHalf(Random rnd) {
        int h = finiteHalf(rnd) & 0x7FFF;
        if (h == 0x7BFF) {
            h--;
        }
        float mid = (float) (((double) refHalf(h) + refHalf(h + 1)) / 2);
        return rnd.nextBoolean() ? mid : -mid;
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "BF16"})
    void floatEncodingsMatchTheReference(TensorType type) {
        float[] x = randomFloats(new Random(type.ggmlId()), 32 * 64);
        byte[] q = Quants.quantize(type, x);
        for (int i = 0; i < x.length; i++) {
            int expected = switch (type) {
                case F32 -> Float.floatToRawIntBits(x[i]);
                case F16 -> refToHalf(x[i]);
                case BF16 -> refToBf16(x[i]);
                default -> throw new AssertionError();
            };
            int width = type == TensorType.F32 ? 4 : 2;
            int actual = 0;
            for (int k = width - 1; k >= 0; k--) {
                actual = (actual << 8) | (q[width * i + k] & 0xFF);
            }
            assertEquals(expected, actual, type + " element " + i);
        }
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q8_0", "Q4_0"})
    void quantizersMatchTheReferenceBitForBit(TensorType type) {
        Random rnd = new Random(77 + type.ggmlId());
        for (int trial = 0; trial < 20; trial++) {
            float[] x = randomFloats(rnd, 32 * (1 + rnd.nextInt(40)));
            byte[] expected = type == TensorType.Q8_0 ? refQuantizeQ8_0(x) : refQuantizeQ4_0(x);
            assertArrayEquals(expected, Quants.quantize(type, x), type + " trial " + trial);
        }
        // Q8_0 with d = 1: x = +-2.5 must round away from zero (Math.round would give -2 for -2.5)
        float[] ties = new float[32];
        ties[0] = 127f;
        ties[1] = 2.5f;
        ties[2] = -2.5f;
        ties[3] = -0.5f;
        byte[] q8 = Quants.quantize(TensorType.Q8_0, ties);
        assertEquals(3, q8[2 + 1]);
        assertEquals(-3, q8[2 + 2]);
        assertEquals(-1, q8[2 + 3]);
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"Q8_0", "Q4_0"})
    void quantizationErrorIsWithinHalfAStep(TensorType type) {
        Random rnd = new Random(5 + type.ggmlId());
        float[] x = randomFloats(rnd, 32 * 500);
        byte[] q = Quants.quantize(type, x);
        float[] y = Quants.dequantize(type, MemorySegment.ofArray(q));
        int maxQ = type == TensorType.Q8_0 ? 127 : 8; // largest |q| (|q - 8| for Q4_0) multiplying d
        int clamped = 0;
        for (int b = 0; b < x.length / 32; b++) {
            float amax = 0;
            float signedMax = 0;
            for (int j = 0; j < 32; j++) {
                if (Math.abs(x[32 * b + j]) > amax) {
                    amax = Math.abs(x[32 * b + j]);
                    signedMax = x[32 * b + j];
                }
            }
            double d = type == TensorType.Q8_0 ? amax / 127.0 : Math.abs(signedMax / 8.0); // exact step
            double stored = Math.abs(refHalf(u16(q, type.blockBytes() * b))); // d as the file keeps it (f16)
            // the element's error: half a step, plus what the f16 rounding of d costs |q| steps, plus a float ulp
            double bound = d / 2 + maxQ * Math.abs(d - stored) + 1e-6 * d;
            for (int j = 0; j < 32; j++) {
                float v = x[32 * b + j];
                double err = Math.abs(v - y[32 * b + j]);
                double limit = bound;
                // Q4_0 maps [-8, 7] steps: an element of the other sign than max, beyond 7.5 steps, is clamped
                // to 7 steps and may be up to a full step off
                if (type == TensorType.Q4_0 && d > 0 && -v / signedMax * 8 > 7.5) {
                    limit = d + maxQ * Math.abs(d - stored) + 1e-6 * d;
                    clamped++;
                }
                assertTrue(err <= limit, type + " block " + b + " element " + j + ": x=" + v + " got " + y[32 * b + j]
                        + " err " + err + " > " + limit);
            }
        }
        if (type == TensorType.Q4_0) {
            assertTrue(clamped < x.length / 50, "clamping is rare on gaussian data: " + clamped);
        }
    }

    @Test
    void badCountsAreCaught() {
        assertThrows(IllegalArgumentException.class, () -> Quants.quantize(TensorType.Q4_K, new float[128]));
        assertThrows(IllegalArgumentException.class, () -> Quants.quantize(TensorType.Q6_K, new float[300]));
        assertThrows(IllegalArgumentException.class, () -> Quants.quantize(TensorType.Q8_0, new float[33]));
        assertThrows(IllegalArgumentException.class,
                () -> Quants.dequantize(TensorType.Q4_0, MemorySegment.ofArray(new byte[18]), 0, new float[16], 0, 16));
        assertThrows(IndexOutOfBoundsException.class,
                () -> Quants.dequantize(TensorType.Q4_0, MemorySegment.ofArray(new byte[18]), 1, new float[32], 0, 32));
    }
}

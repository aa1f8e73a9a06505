package io.stepstream.engine.cpu;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The vector exponential against (float) Math.exp, and the vector swiglu against the plain one, bit for bit. */
class FloatExpTest {
    /** Values the range and halfway checks and the scalar path must handle. */
    private static final float[] SPECIAL = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f,
            Float.MIN_VALUE, -Float.MIN_VALUE, 0x1p-130f, Float.MIN_NORMAL, Float.MAX_VALUE, -Float.MAX_VALUE, 80f,
            -80f, Math.nextUp(80f), Math.nextDown(-80f), 87.3f, -87.3f, 88.8f, -88.8f, -103.9f, 104f, 1f, -1f};

    /** Bit for bit, NaN as NaN (Java fixes no NaN payload or sign, and x86 passes on whichever operand's). */
    private static void assertSameBits(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            if (Float.isNaN(expected[i]) && Float.isNaN(actual[i])) {
                continue;
            }
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    what + ": element " + i + " (" + expected[i] + " vs " + actual[i] + ")");
        }
    }

    /** A float of one of several kinds: gaussian of a random scale, uniform over +-100, any bit pattern, special. */
    private static float value(Random rnd) {
        return switch (rnd.nextInt(5)) {
            case 0 -> (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(16) - 8));
            case 1 -> (rnd.nextFloat() * 2 - 1) * 100f;
            case 2 -> Float.intBitsToFloat(rnd.nextInt());
            case 3 -> SPECIAL[rnd.nextInt(SPECIAL.length)];
            default -> (float) rnd.nextGaussian() * 4;
        };
    }

    @Test
    void vectorSwigluEqualsPlainSwigluBitForBit() {
        Random rnd = new Random(31);
        for (int trial = 0; trial < 300; trial++) {
            int n = 1 + rnd.nextInt(400);
            int from = rnd.nextInt(Math.min(n, 9));
            float[] a = new float[n];
            float[] b = new float[n];
            for (int i = 0; i < n; i++) {
                a[i] = value(rnd);
                b[i] = rnd.nextInt(4) == 0 ? value(rnd) : (float) rnd.nextGaussian();
            }
            float[] expected = a.clone();
            Kernels.swiglu(expected, b, from, n);
            VectorKernels.swiglu(a, b, from, n);
            assertSameBits(expected, a, "trial " + trial + " (n " + n + ", from " + from + ")");
        }
    }

    /** Every 4099th float bit pattern, both signs, all magnitudes: about a million arguments, b = 1. */
    @Test
    void vectorSwigluEqualsPlainSwigluAcrossTheFloats() {
        int n = (int) ((1L << 32) / 4099) + 1;
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = Float.intBitsToFloat((int) (i * 4099L));
        }
        float[] b = new float[n];
        java.util.Arrays.fill(b, 1f);
        float[] expected = a.clone();
        Kernels.swiglu(expected, b, 0, n);
        VectorKernels.swiglu(a, b, 0, n);
        assertSameBits(expected, a, "sweep");
    }

    /** expInto against (float) Math.exp of the same argument: every 613th float bit pattern, both forms. */
    @Test
    void expIntoEqualsMathExpAcrossTheFloats() {
        int n = (int) ((1L << 32) / 613) + 1;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = Float.intBitsToFloat((int) (i * 613L));
        }
        float[] out = new float[n];
        for (boolean negate : new boolean[] {false, true}) {
            float shift = negate ? 0f : 1.5f;
            FloatExp.expInto(x, 0, n, negate, shift, out, 0);
            for (int i = 0; i < n; i++) {
                float expected = (float) Math.exp((negate ? -x[i] : x[i]) - shift);
                if (Float.isNaN(expected) && Float.isNaN(out[i])) {
                    continue;
                }
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(out[i]),
                        "exp of " + x[i] + (negate ? " negated" : " - " + shift));
            }
        }
    }

    @Test
    void expIntoInPlaceWithOffsetsAndSpecials() {
        Random rnd = new Random(34);
        for (int trial = 0; trial < 300; trial++) {
            int n = rnd.nextInt(100);
            int from = rnd.nextInt(5);
            float[] x = new float[from + n + 3];
            for (int i = 0; i < x.length; i++) {
                x[i] = value(rnd);
            }
            float shift = rnd.nextBoolean() ? 0f : value(rnd);
            boolean negate = rnd.nextBoolean();
            float[] expected = x.clone();
            for (int i = from; i < from + n; i++) {
                expected[i] = (float) Math.exp((negate ? -x[i] : x[i]) - shift);
            }
            FloatExp.expInto(x, from, n, negate, shift, x, from);
            assertSameBits(expected, x, "trial " + trial);
        }
    }

    /** The fast path is the one taken on arguments of ordinary size, not the lane-by-lane fallback. */
    @Test
    void ordinaryArgumentsTakeTheVectorPath() {
        assertTrue(FloatExp.LANES >= 2, "vectors of at least two doubles expected, got " + FloatExp.LANES);
        Random rnd = new Random(33);
        int n = 100_000 - 100_000 % FloatExp.LANES;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian() * 3;
        }
        int scalar = FloatExp.expInto(x, 0, n, false, 0f, new float[n], 0);
        assertTrue(scalar <= 4 * FloatExp.LANES, scalar + " of " + n + " lanes went scalar");
        x[5] = Float.NaN; // out of range: its vector goes lane by lane, and the count says so
        assertTrue(FloatExp.expInto(x, 0, n, false, 0f, new float[n], 0) >= FloatExp.LANES);
    }
}

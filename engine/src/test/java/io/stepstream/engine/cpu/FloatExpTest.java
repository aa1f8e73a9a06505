package io.stepstream.engine.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The vector swiglu against the plain one, bit for bit, and the vector exponential it rests on. */
class FloatExpTest {
    /** Values the range and halfway checks and the scalar path must handle. */
    private static final float[] SPECIAL = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f,
            Float.MIN_VALUE, -Float.MIN_VALUE, 0x1p-130f, Float.MIN_NORMAL, Float.MAX_VALUE, -Float.MAX_VALUE, 80f,
            -80f, Math.nextUp(80f), Math.nextDown(-80f), 87.3f, -87.3f, 88.8f, -88.8f, -103.9f, 104f, 1f, -1f};

    private static void assertSameBits(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
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

    @Test
    void doubleExponentialIsWithinFourUlpsOfMathExp() {
        Random rnd = new Random(32);
        int lanes = FloatExp.LANES;
        float[] x = new float[lanes];
        double[] y = new double[lanes];
        for (int trial = 0; trial < 20000; trial++) {
            for (int i = 0; i < lanes; i++) {
                x[i] = trial % 2 == 0 ? (rnd.nextFloat() * 2 - 1) * FloatExp.MAX_ARG : (float) rnd.nextGaussian();
            }
            FloatExp.exp(FloatVector.fromArray(FloatExp.FLOATS, x, 0)).intoArray(y, 0);
            for (int i = 0; i < lanes; i++) {
                long ulps = Math.abs(Double.doubleToRawLongBits(y[i]) - Double.doubleToRawLongBits(Math.exp(x[i])));
                assertTrue(ulps <= 4, "exp(" + x[i] + ") = " + y[i] + ", Math.exp " + Math.exp(x[i]) + ": " + ulps
                        + " ulps apart");
            }
        }
    }

    @Test
    void halfwayPointsBetweenFloatsAreRefused() {
        int lanes = FloatExp.LANES;
        double halfway = 1.0 + 0x1p-24; // halfway between 1f and the next float
        long bits = Double.doubleToRawLongBits(halfway);
        for (long off : new long[] {0, 1, -1, FloatExp.MIDPOINT_MARGIN, -FloatExp.MIDPOINT_MARGIN}) {
            assertFalse(FloatExp.roundsAsMathExp(lane0(lanes, Double.longBitsToDouble(bits + off))), "offset " + off);
        }
        for (long off : new long[] {FloatExp.MIDPOINT_MARGIN + 1, -FloatExp.MIDPOINT_MARGIN - 1, 1L << 27}) {
            assertTrue(FloatExp.roundsAsMathExp(lane0(lanes, Double.longBitsToDouble(bits + off))), "offset " + off);
        }
        assertTrue(FloatExp.roundsAsMathExp(lane0(lanes, 1.0)));
    }

    /** A vector of ones with {@code v} in lane 0. */
    private static DoubleVector lane0(int lanes, double v) {
        double[] a = new double[lanes];
        java.util.Arrays.fill(a, 1.0);
        a[0] = v;
        return DoubleVector.fromArray(FloatExp.DOUBLES, a, 0);
    }

    /** The fast path is the one taken on activations of ordinary size, not the scalar fallback. */
    @Test
    void ordinaryArgumentsTakeTheVectorPath() {
        Random rnd = new Random(33);
        int lanes = FloatExp.LANES;
        assertTrue(lanes >= 2, "vectors of at least two doubles expected, got " + lanes);
        float[] x = new float[lanes];
        int vectorPath = 0;
        int trials = 10000;
        for (int trial = 0; trial < trials; trial++) {
            for (int i = 0; i < lanes; i++) {
                x[i] = (float) rnd.nextGaussian() * 3;
            }
            FloatVector v = FloatVector.fromArray(FloatExp.FLOATS, x, 0);
            if (FloatExp.inRange(v) && FloatExp.roundsAsMathExp(FloatExp.exp(v))) {
                vectorPath++;
            }
        }
        assertTrue(vectorPath > trials * 0.999, vectorPath + " of " + trials);
    }
}

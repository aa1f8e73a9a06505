package io.stepstream.gpu;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The host-side tf32 rounding (cvt.rna's: nearest, ties away from zero) and the 3xTF32 split. */
class Tf32Test {
    private static int bits(float x) {
        return Float.floatToRawIntBits(x);
    }

    @Test
    void roundsToNearestWithTiesAwayFromZero() {
        float ulp = 0x1p-10f; // a tf32's last place at 1
        assertEquals(1.0f, Tf32.round(1.0f));
        assertEquals(1.0f, Tf32.round(1.0f + 0x1p-11f - 0x1p-23f)); // just below the tie
        assertEquals(1.0f + ulp, Tf32.round(1.0f + 0x1p-11f));      // the tie: away from zero (even would be 1)
        assertEquals(-(1.0f + ulp), Tf32.round(-(1.0f + 0x1p-11f)));
        assertEquals(1.0f + 2 * ulp, Tf32.round(1.0f + 3 * 0x1p-11f)); // tie at an odd place: up, as even would
        assertEquals(2.0f, Tf32.round(2.0f - 0x1p-23f));           // carries into the exponent
        assertEquals(bits(-0.0f), Tf32.roundBits(-0.0f));
        // subnormals: the same rule on their bits
        assertEquals(0x0000_2000, Tf32.roundBits(Float.intBitsToFloat(0x0000_1000)));
        assertEquals(0x8000_2000, Tf32.roundBits(Float.intBitsToFloat(0x8000_1000)));
        assertEquals(0, Tf32.roundBits(Float.intBitsToFloat(0x0000_0fff)));
        assertEquals(0x0080_0000, Tf32.roundBits(Float.intBitsToFloat(0x007f_ffff))); // to the smallest normal
        // overflow and the specials
        assertEquals(Float.POSITIVE_INFINITY, Tf32.round(Float.MAX_VALUE));
        assertEquals(Float.NEGATIVE_INFINITY, Tf32.round(-Float.MAX_VALUE));
        assertEquals(0x7f7f_e000, Tf32.roundBits(Float.intBitsToFloat(0x7f7f_efff)));
        assertEquals(Float.POSITIVE_INFINITY, Tf32.round(Float.POSITIVE_INFINITY));
        assertEquals(Float.NEGATIVE_INFINITY, Tf32.round(Float.NEGATIVE_INFINITY));
        assertTrue(Float.isNaN(Tf32.round(Float.NaN)));
        assertEquals(0x7fc0_1234, Tf32.roundBits(Float.intBitsToFloat(0x7fc0_1234))); // a NaN's payload kept
    }

    @Test
    void roundingIsTheNearestTf32OnRandomValues() {
        Random random = new Random(7);
        for (int i = 0; i < 100_000; i++) {
            float x = Float.intBitsToFloat(random.nextInt());
            if (!Float.isFinite(x) || Math.abs(x) >= 0x1p127f) {
                continue;
            }
            int r = Tf32.roundBits(x);
            assertEquals(0, r & 0x1fff, Float.toString(x));
            // the two tf32 neighbours of x (truncated and one place up in magnitude) and which is nearer
            int down = bits(x) & ~0x1fff;
            int up = down + 0x2000;
            double dx = Math.abs((double) x - Float.intBitsToFloat(down));
            double ux = Math.abs((double) Float.intBitsToFloat(up) - x);
            int want = dx < ux ? down : up; // ties (dx == ux) go up in magnitude: away from zero
            assertEquals(want, r, () -> x + " (0x" + Integer.toHexString(bits(x)) + ")");
        }
    }

    @Test
    void hiPlusLoReconstructsWithin2ToTheMinus22() {
        Random random = new Random(22);
        double worst = 0;
        for (int i = 0; i < 100_000; i++) {
            float x = (float) (random.nextGaussian() * Math.pow(2, random.nextInt(60) - 30));
            float hi = Tf32.hi(x);
            float lo = Tf32.lo(x);
            assertEquals(0, bits(hi) & 0x1fff);
            assertEquals(0, bits(lo) & 0x1fff);
            assertTrue(Math.abs(lo) <= Math.abs(x) * 0x1p-11, x + " lo " + lo);
            double err = Math.abs((double) hi + lo - x) / Math.abs(x);
            worst = Math.max(worst, err);
        }
        assertTrue(worst <= 0x1p-22, "worst |hi + lo - x| / |x| " + worst);
        // one tf32 alone is much worse: the split is needed
        float x = 1.0f + 0x1p-12f + 0x1p-20f;
        assertTrue(Math.abs(Tf32.hi(x) - x) > 0x1p-13);
        assertEquals(x, Tf32.hi(x) + Tf32.lo(x)); // 11 + 11 bits hold this 21-bit significand exactly
    }
}

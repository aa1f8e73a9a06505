package io.stepstream.gpu;

/**
 * TF32 on the host: the rounding of PTX's {@code cvt.rna.tf32.f32} (mma.cl's {@code tf32_round}, which the
 * emulation uses) and the 3xTF32 split of an f32 into two tf32s, for references in tests and the probe.
 * A tf32 here is an f32 whose low 13 mantissa bits are zero (sign, 8 exponent bits, 10 mantissa bits).
 */
public final class Tf32 {
    /** The f32 mantissa bits a tf32 drops. */
    public static final int DROPPED_BITS = 13;
    private static final int KEEP_MASK = -1 << DROPPED_BITS;
    private static final int HALF_ULP = 1 << (DROPPED_BITS - 1);
    private static final int EXPONENT = 0x7f80_0000;

    private Tf32() {
    }

    /**
     * x rounded to tf32, as bits: to nearest, ties away from zero (half a kept place added to the magnitude's
     * bits, which carries into the exponent where it must, up to infinity), the low 13 bits cleared. Infinities
     * and NaNs come back unchanged; subnormals round like any other magnitude.
     */
    public static int roundBits(float x) {
        int u = Float.floatToRawIntBits(x);
        if ((u & EXPONENT) == EXPONENT) {
            return u;
        }
        return (u + HALF_ULP) & KEEP_MASK;
    }

    /** x rounded to tf32, as a float. */
    public static float round(float x) {
        return Float.intBitsToFloat(roundBits(x));
    }

    /** The tf32 "big" part of x (3xTF32's hi). */
    public static float hi(float x) {
        return round(x);
    }

    /** The tf32 remainder of x after {@link #hi} (x - hi is exact in f32; its tf32 rounding is 3xTF32's lo). */
    public static float lo(float x) {
        return round(x - hi(x));
    }
}

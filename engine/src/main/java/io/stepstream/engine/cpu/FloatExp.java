package io.stepstream.engine.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code (float) Math.exp(x)} of float arguments on vectors, bit for bit. The plain kernels round a double
 * exponential to float ({@link Kernels#swiglu}); a vector exponential of our own lands within a few double ulps
 * of {@code Math.exp}'s (which is within one ulp of the true value), so both round to the same float unless they
 * lie within those few ulps of a point halfway between two floats. {@link #exp} computes the double
 * exponential of each lane accurately to a few ulps, and {@link #roundsAsMathExp} tells whether every lane is
 * farther than {@link #MIDPOINT_MARGIN} double ulps from such a halfway point (then the float is provably
 * {@code Math.exp}'s); a vector that is not (about one lane in two million) or whose arguments are outside
 * [-{@link #MAX_ARG}, {@link #MAX_ARG}] (or NaN) goes through the scalar code instead. Nothing depends on how the
 * JIT compiles {@code Math.exp} beyond its one-ulp accuracy: the halfway check is made on our own result.
 */
public final class FloatExp {
    /** Doubles per vector (the preferred shape), and as many floats in a half-width vector. */
    static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_PREFERRED;
    public static final VectorSpecies<Float> FLOATS =
            VectorSpecies.of(float.class, VectorShape.forBitSize(Math.max(64, DOUBLES.vectorBitSize() / 2)));
    /** Lanes of {@link #FLOATS} (and of {@link #DOUBLES}); below 2 the callers stay scalar. */
    public static final int LANES = Math.min(DOUBLES.length(), FLOATS.length());
    /** Arguments of larger magnitude go scalar: their exponentials could leave the normal float range. */
    static final float MAX_ARG = 80f;
    /**
     * Double ulps between our exponential and a float halfway point below which a lane is not trusted. Our
     * error is a few ulps (argument reduction exact but for one rounding, a degree-13 Taylor polynomial whose
     * truncation is below 0.1 ulp on |r| <= ln2/2, Horner rounding under 2 ulps) and Math.exp's at most one.
     */
    static final long MIDPOINT_MARGIN = 256;

    private static final double LOG2E = 1.4426950408889634;
    /** ln 2 in two parts (fdlibm's): the high part has 32 significant bits, so k * LN2_HI is exact for |k| < 2^20. */
    private static final double LN2_HI = 6.93147180369123816490e-01;
    private static final double LN2_LO = 1.90821492927058770002e-10;
    /** Adding 1.5 * 2^52 rounds a double of magnitude below 2^51 to an integer, to nearest even. */
    private static final double ROUNDER = 6755399441055744.0;
    private static final long ROUNDER_BITS = Double.doubleToRawLongBits(ROUNDER);
    /** A double's mantissa bits below a float's, and the pattern of the halfway point between two floats. */
    private static final long BELOW_FLOAT = (1L << 29) - 1;
    private static final long HALFWAY = 1L << 28;

    private FloatExp() {
    }

    /** Whether every lane of {@code x} is within [-MAX_ARG, MAX_ARG] (false for NaN). */
    public static boolean inRange(FloatVector x) {
        return x.abs().compare(VectorOperators.LE, MAX_ARG).allTrue();
    }

    /**
     * e^x of each lane (x a {@link #FLOATS} vector within [-MAX_ARG, MAX_ARG]) in double, within a few ulps:
     * x = k ln2 + r with k = round(x / ln2), |r| <= ln2/2, the subtraction exact but for the last rounding, e^r by
     * its Taylor polynomial to r^13 (Horner, fused multiply-adds), times 2^k built in the exponent bits.
     */
    public static DoubleVector exp(FloatVector x) {
        DoubleVector d = (DoubleVector) x.convertShape(VectorOperators.F2D, DOUBLES, 0);
        DoubleVector t = d.fma(LOG2E, ROUNDER);
        DoubleVector k = t.sub(ROUNDER);
        DoubleVector r = k.fma(c(-LN2_HI), d);
        r = k.fma(c(-LN2_LO), r);
        DoubleVector p = DoubleVector.broadcast(DOUBLES, 1.0 / 6227020800.0); // 1/13!
        p = p.fma(r, c(1.0 / 479001600.0));
        p = p.fma(r, c(1.0 / 39916800.0));
        p = p.fma(r, c(1.0 / 3628800.0));
        p = p.fma(r, c(1.0 / 362880.0));
        p = p.fma(r, c(1.0 / 40320.0));
        p = p.fma(r, c(1.0 / 5040.0));
        p = p.fma(r, c(1.0 / 720.0));
        p = p.fma(r, c(1.0 / 120.0));
        p = p.fma(r, c(1.0 / 24.0));
        p = p.fma(r, c(1.0 / 6.0));
        p = p.fma(r, c(0.5));
        p = p.fma(r, c(1.0));
        p = p.fma(r, c(1.0));
        DoubleVector scale = t.reinterpretAsLongs().sub(ROUNDER_BITS - 1023).lanewise(VectorOperators.LSHL, 52)
                .reinterpretAsDoubles();
        return p.mul(scale);
    }

    private static DoubleVector c(double v) {
        return DoubleVector.broadcast(DOUBLES, v);
    }

    /**
     * Whether every lane of {@code y} (from {@link #exp}) is more than {@link #MIDPOINT_MARGIN} double ulps from a
     * point halfway between two floats: then {@code (float) Math.exp} of the same argument is the same float.
     */
    public static boolean roundsAsMathExp(DoubleVector y) {
        LongVector low = y.reinterpretAsLongs().and(BELOW_FLOAT);
        VectorMask<Long> near = low.compare(VectorOperators.GE, HALFWAY - MIDPOINT_MARGIN)
                .and(low.compare(VectorOperators.LE, HALFWAY + MIDPOINT_MARGIN));
        return !near.anyTrue();
    }

    /** {@code y} rounded to floats (a {@link #FLOATS} vector). */
    public static FloatVector toFloats(DoubleVector y) {
        return (FloatVector) y.convertShape(VectorOperators.D2F, FLOATS, 0);
    }
}

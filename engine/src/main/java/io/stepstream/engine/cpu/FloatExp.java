package io.stepstream.engine.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code (float) Math.exp(x)} of float arguments on vectors, bit for bit. The plain kernels round a double
 * exponential to float ({@link Kernels#swiglu}, {@link Kernels#softmax}); a vector exponential of our own lands
 * within a few double ulps of {@code Math.exp}'s (which is within one ulp of the true value), so both round to the
 * same float unless they lie within those few ulps of a point halfway between two floats. {@link #expInto}
 * computes each lane's double exponential accurately to a few ulps and checks that every lane is farther than
 * {@link #MIDPOINT_MARGIN} double ulps from such a halfway point (then its float is provably {@code Math.exp}'s);
 * a vector that is not (about one lane in a million), or whose arguments are outside
 * [-{@link #MAX_ARG}, {@link #MAX_ARG}] or NaN, takes {@code Math.exp} lane by lane. Nothing depends on how the
 * JIT compiles {@code Math.exp} beyond its one-ulp accuracy: the halfway check is made on our own result.
 */
public final class FloatExp {
    /** Doubles per vector (the preferred shape), and as many floats in a half-width vector. */
    static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_PREFERRED;
    static final VectorSpecies<Float> FLOATS =
            VectorSpecies.of(float.class, VectorShape.forBitSize(Math.max(64, DOUBLES.vectorBitSize() / 2)));
    /** Lanes of {@link #FLOATS} (and of {@link #DOUBLES}); below 2 everything runs lane by lane. */
    static final int LANES = Math.min(DOUBLES.length(), FLOATS.length());
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

    /**
     * out[o + k] = {@code (float) Math.exp(arg)} for k < n, arg = (negate ? -x[from + k] : x[from + k]) - shift
     * (float arithmetic, as the plain kernels form their arguments); {@code out} may be {@code x} at the same
     * offsets. Returns how many lanes went through {@code Math.exp} one by one (the tail included).
     *
     * <p>Per vector of arguments: widened to double, x = k ln2 + r with k = round(x / ln2) (|r| <= ln2/2, the
     * reduction exact but for its last rounding), e^r by its Taylor polynomial to r^13 (Horner, fused
     * multiply-adds), times 2^k built in the exponent bits; then the halfway check and the rounding to float.
     * The whole exponential is written out here on purpose: this method is past C2's inlining size for hot calls
     * (FreqInlineSize, 325 bytecodes), so it is compiled on its own with every vector in registers, whatever the
     * node budget of its callers (inlined into a large caller, a vector that crossed a call the JIT gave up on
     * would be boxed on the heap).
     */
    public static int expInto(float[] x, int from, int n, boolean negate, float shift, float[] out, int o) {
        int scalar = 0;
        int k = 0;
        if (LANES >= 2) {
            VectorSpecies<Double> ds = DOUBLES;
            for (int bound = n - n % LANES; k < bound; k += LANES) {
                FloatVector v = FloatVector.fromArray(FLOATS, x, from + k);
                if (negate) {
                    v = v.neg();
                }
                v = v.sub(shift);
                if (v.abs().compare(VectorOperators.LE, MAX_ARG).allTrue()) {
                    DoubleVector d = (DoubleVector) v.convertShape(VectorOperators.F2D, ds, 0);
                    DoubleVector t = d.fma(LOG2E, ROUNDER);
                    DoubleVector kk = t.sub(ROUNDER);
                    DoubleVector r = kk.fma(DoubleVector.broadcast(ds, -LN2_HI), d);
                    r = kk.fma(DoubleVector.broadcast(ds, -LN2_LO), r);
                    DoubleVector p = DoubleVector.broadcast(ds, 1.0 / 6227020800.0); // 1/13!
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 479001600.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 39916800.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 3628800.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 362880.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 40320.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 5040.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 720.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 120.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 24.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0 / 6.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 0.5));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0));
                    p = p.fma(r, DoubleVector.broadcast(ds, 1.0));
                    DoubleVector y = p.mul(t.reinterpretAsLongs().sub(ROUNDER_BITS - 1023)
                            .lanewise(VectorOperators.LSHL, 52).reinterpretAsDoubles());
                    LongVector low = y.reinterpretAsLongs().and(BELOW_FLOAT);
                    if (!low.compare(VectorOperators.GE, HALFWAY - MIDPOINT_MARGIN)
                            .and(low.compare(VectorOperators.LE, HALFWAY + MIDPOINT_MARGIN)).anyTrue()) {
                        ((FloatVector) y.convertShape(VectorOperators.D2F, FLOATS, 0)).intoArray(out, o + k);
                        continue;
                    }
                }
                for (int j = k; j < k + LANES; j++) {
                    out[o + j] = exp(x[from + j], negate, shift);
                }
                scalar += LANES;
            }
        }
        for (; k < n; k++, scalar++) {
            out[o + k] = exp(x[from + k], negate, shift);
        }
        return scalar;
    }

    /** The plain form: {@code (float) Math.exp((negate ? -v : v) - shift)}. */
    static float exp(float v, boolean negate, float shift) {
        return (float) Math.exp((negate ? -v : v) - shift);
    }
}

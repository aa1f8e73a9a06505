package io.stepstream.engine.cpu;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VectorKernelsTest {
    private static float[] gaussian(int n, Random rnd) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }

    @Test
    void vectorLaneSumAndScalarLaneSumAgreeBitwise() {
        Random rnd = new Random(11);
        float[] lanes = new float[VectorKernels.LANES];
        for (int trial = 0; trial < 2000; trial++) {
            float[] v = gaussian(VectorKernels.LANES, rnd);
            for (int i = 0; i < v.length; i++) {
                v[i] *= (float) Math.scalb(1.0, rnd.nextInt(40) - 20); // magnitudes apart: order shows in the bits
            }
            System.arraycopy(v, 0, lanes, 0, v.length);
            float scalar = VectorKernels.sumLanes(lanes, 0);
            float vector = VectorKernels.sum(FloatVector.fromArray(VectorKernels.FLOATS, v, 0));
            assertEquals(Float.floatToRawIntBits(scalar), Float.floatToRawIntBits(vector), "trial " + trial);
        }
    }

    /**
     * A tile's 16 accumulators of the awkward kinds that an add order shows in: magnitudes 2^-20..2^20 apart,
     * signed zeros, subnormals, values near the float maximum (partial sums overflow to infinity), mixes of huge
     * and tiny, infinities of both signs (their sum is NaN) and NaN.
     */
    private static float[] awkwardTile(Random rnd) {
        float[] v = new float[16 * VectorKernels.LANES];
        int kind = rnd.nextInt(8);
        for (int i = 0; i < v.length; i++) {
            float g = (float) rnd.nextGaussian();
            v[i] = switch (kind == 7 ? rnd.nextInt(7) : kind) { // kind 7: every kind mixed within the tile
                case 0 -> g * (float) Math.scalb(1.0, rnd.nextInt(40) - 20);
                case 1 -> rnd.nextInt(8) == 0 ? 0f : -0f; // mostly -0, so that some sums are -0
                case 2 -> rnd.nextInt(4) == 0 ? (rnd.nextBoolean() ? 0f : -0f) : g * 0x1p-130f; // subnormals
                case 3 -> Math.copySign(Float.MAX_VALUE * (0.5f + rnd.nextFloat() / 2), g);
                case 4 -> rnd.nextBoolean() ? g * 1e30f : g * 1e-30f;
                case 5 -> rnd.nextInt(8) == 0 ? (rnd.nextBoolean() ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY) : g;
                default -> rnd.nextInt(16) == 0 ? Float.NaN : g;
            };
        }
        return v;
    }

    /** What sumTileLanes must give: sumLanes on a copy of each accumulator. */
    private static float[] scalarTileSums(float[] tile) {
        int l = VectorKernels.LANES;
        float[] sums = new float[16];
        for (int j = 0; j < 16; j++) {
            float[] acc = java.util.Arrays.copyOfRange(tile, j * l, (j + 1) * l);
            sums[j] = VectorKernels.sumLanes(acc, 0);
        }
        return sums;
    }

    /**
     * The tile sums in vector registers against sumLanes bit for bit (NaN compared as NaN: Java fixes no NaN
     * payload, in scalar or vector adds). 20000 tiles, so the JIT compiles the method while the test runs. Only
     * machines with 16 or 8 float lanes have the vector form (run with -XX:UseAVX=2 for the 8-lane one).
     */
    @Test
    void tileSumsInVectorsAreSumLanesBitForBit() {
        int l = VectorKernels.LANES;
        org.junit.jupiter.api.Assumptions.assumeTrue(l == 16 || l == 8, "no vector tile sums with " + l + " lanes");
        assertTileSumsAreSumLanes(15, 20000, VectorKernels::sumTileInVectors);
    }

    /** The entry the kernels call (vector or scalar form, as configured) gives the same bits. */
    @Test
    void tileSumsAreSumLanesBitForBit() {
        assertTileSumsAreSumLanes(16, 5000, VectorKernels::sumTileLanes);
    }

    /** {@code sum} over fresh awkward tiles leaves lanes[j] bitwise sumLanes of accumulator j, for every j. */
    private static void assertTileSumsAreSumLanes(long seed, int trials, java.util.function.Consumer<float[]> sum) {
        Random rnd = new Random(seed);
        float[] lanes = new float[16 * VectorKernels.LANES];
        for (int trial = 0; trial < trials; trial++) {
            float[] tile = awkwardTile(rnd);
            float[] expected = scalarTileSums(tile);
            System.arraycopy(tile, 0, lanes, 0, tile.length);
            sum.accept(lanes);
            for (int j = 0; j < 16; j++) {
                assertEquals(Float.floatToIntBits(expected[j]), Float.floatToIntBits(lanes[j]),
                        "trial " + trial + ", accumulator " + j + ": " + expected[j] + " vs " + lanes[j]);
            }
        }
    }

    /** The fixture does produce the awkward sums the tests above claim to cover. */
    @Test
    void awkwardTilesReachInfinityNaNSignedZeroAndSubnormalSums() {
        Random rnd = new Random(15);
        boolean inf = false, nan = false, negZero = false, subnormal = false;
        for (int trial = 0; trial < 2000; trial++) {
            for (float s : scalarTileSums(awkwardTile(rnd))) {
                inf |= Float.isInfinite(s);
                nan |= Float.isNaN(s);
                negZero |= Float.floatToRawIntBits(s) == 0x8000_0000;
                subnormal |= s != 0 && Math.abs(s) < Float.MIN_NORMAL;
            }
        }
        assertTrue(inf && nan && negZero && subnormal, inf + " " + nan + " " + negZero + " " + subnormal);
    }

    @Test
    void dotMatchesDoubleReference() {
        Random rnd = new Random(12);
        for (int trial = 0; trial < 200; trial++) {
            int n = 1 + rnd.nextInt(300);
            int ao = rnd.nextInt(5);
            int bo = rnd.nextInt(5);
            float[] a = gaussian(ao + n, rnd);
            float[] b = gaussian(bo + n, rnd);
            double ref = 0;
            double mag = 0;
            for (int i = 0; i < n; i++) {
                ref += (double) a[ao + i] * b[bo + i];
                mag += Math.abs((double) a[ao + i] * b[bo + i]);
            }
            float got = VectorKernels.dot(a, ao, b, bo, n);
            assertTrue(Math.abs(got - ref) <= (n + 8) * 0x1p-24 * mag, "n=" + n + ": " + got + " vs " + ref);
        }
    }

    @Test
    void rmsnormMatchesDoubleReferenceAndThePlainKernel() {
        Random rnd = new Random(14);
        for (int trial = 0; trial < 100; trial++) {
            int size = 1 + rnd.nextInt(600);
            float[] x = gaussian(size + 2, rnd);
            float[] w = gaussian(size, rnd);
            float[] out = new float[size + 1];
            float[] plain = new float[size + 1];
            VectorKernels.rmsnorm(out, 1, x, 2, w, size, 1e-5f);
            Kernels.rmsnorm(plain, 1, x, 2, w, size, 1e-5f);
            double ss = 0;
            for (int i = 0; i < size; i++) {
                ss += (double) x[2 + i] * x[2 + i];
            }
            double scale = 1 / Math.sqrt(ss / size + 1e-5);
            for (int i = 0; i < size; i++) {
                double ref = w[i] * (scale * x[2 + i]);
                assertEquals(ref, out[1 + i], 1e-5 * Math.abs(ref) + 1e-30, "size=" + size + " i=" + i);
                assertEquals(plain[1 + i], out[1 + i], 1e-5f * Math.abs(plain[1 + i]) + 1e-30f);
            }
        }
    }
}

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

package io.stepstream.engine.cpu;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The step's vector norm and rope against their plain forms, bit for bit, on fresh random rows. */
class StepKernelsBitsTest {
    private static void assertSameBits(float[] expected, float[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    what + ": element " + i + " (" + expected[i] + " vs " + actual[i] + ")");
        }
    }

    @Test
    void rmsnormRowsEqualsRowByRowRmsnorm() {
        Random rnd = new Random(51);
        for (int trial = 0; trial < 200; trial++) {
            int size = 1 + rnd.nextInt(300);
            int rows = 1 + rnd.nextInt(11); // four-row groups and one-row leftovers
            float scale = (float) Math.scalb(1.0, rnd.nextInt(30) - 15);
            float[] x = new float[rows * size];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian() * scale;
            }
            float[] weight = new float[size];
            for (int i = 0; i < size; i++) {
                weight[i] = 1f + (float) rnd.nextGaussian() * 0.1f;
            }
            float eps = rnd.nextBoolean() ? 1e-5f : 1e-6f;
            float[] expected = new float[x.length];
            for (int r = 0; r < rows; r++) {
                Kernels.rmsnorm(expected, r * size, x, r * size, weight, size, eps);
            }
            float[] actual = new float[x.length];
            int split = rnd.nextInt(rows + 1); // two calls, as a row split over threads makes them
            VectorKernels.rmsnormRows(actual, x, weight, size, eps, 0, split);
            VectorKernels.rmsnormRows(actual, x, weight, size, eps, split, rows);
            assertSameBits(expected, actual, "trial " + trial + " (size " + size + ", rows " + rows + ")");
        }
    }

    @Test
    void vectorSoftmaxEqualsPlainSoftmax() {
        Random rnd = new Random(53);
        for (int trial = 0; trial < 500; trial++) {
            int size = 1 + rnd.nextInt(200);
            int offset = rnd.nextInt(7);
            float[] x = new float[offset + size + 2];
            float spread = (float) Math.scalb(1.0, rnd.nextInt(10) - 2); // up to 128: some scores leave exp's range
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian() * spread;
            }
            if (trial % 7 == 0) {
                x[offset + rnd.nextInt(size)] = Float.NEGATIVE_INFINITY; // a masked score
            }
            float[] expected = x.clone();
            Kernels.softmax(expected, offset, size);
            VectorKernels.softmax(x, offset, size);
            assertSameBits(expected, x, "trial " + trial + " (size " + size + ")");
        }
    }

    @Test
    void vectorRopeEqualsScalarRope() {
        Random rnd = new Random(52);
        int lanes = VectorKernels.LANES;
        for (int trial = 0; trial < 200; trial++) {
            int headSize = lanes * (1 + rnd.nextInt(4));
            int heads = 1 + rnd.nextInt(6);
            int base = rnd.nextInt(5);
            float[] row = new float[base + heads * headSize + 3];
            for (int i = 0; i < row.length; i++) {
                row[i] = (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(20) - 10));
            }
            if (trial % 10 == 0) {
                row[base] = -0f; // signed zeros and an exact cancellation
                row[base + 1] = 0f;
            }
            int pairs = headSize / 2;
            float[] c = new float[pairs];
            float[] s = new float[pairs];
            int pos = rnd.nextInt(4096);
            for (int p = 0; p < pairs; p++) {
                float angle = pos * (1.0f / (float) Math.pow(10000, (2 * p) / (float) headSize));
                c[p] = (float) Math.cos(angle);
                s[p] = (float) Math.sin(angle);
            }
            float[] expected = row.clone();
            for (int h = 0; h < heads; h++) {
                for (int p = 0; p < pairs; p++) {
                    int i0 = base + h * headSize + 2 * p;
                    float a = expected[i0];
                    float b = expected[i0 + 1];
                    expected[i0] = a * c[p] - b * s[p];
                    expected[i0 + 1] = a * s[p] + b * c[p];
                }
            }
            int at = rnd.nextInt(3) * headSize;
            float[] cosLanes = new float[at + headSize];
            float[] sinLanes = new float[at + headSize];
            for (int p = 0; p < pairs; p++) {
                cosLanes[at + 2 * p] = c[p];
                cosLanes[at + 2 * p + 1] = c[p];
                sinLanes[at + 2 * p] = -s[p];
                sinLanes[at + 2 * p + 1] = s[p];
            }
            VectorKernels.ropeInterleaved(row, base, heads * headSize, cosLanes, sinLanes, at, headSize);
            assertSameBits(expected, row, "trial " + trial);
        }
    }
}

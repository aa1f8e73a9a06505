package io.stepstream.engine.sparse;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Fresh random inputs for the sparse-attention tests: block patterns and Gaussian activations. */
public final class RandomSparseInputs {
    private RandomSparseInputs() {
    }

    /**
     * A pattern over {@code layers x heads} units in which every query block keeps one random key block and each
     * other key block with probability {@code keep}, in ascending block order.
     */
    public static SparsePattern pattern(SplittableRandom r, int layers, int heads, int tokens, int blockSize,
                                        double keep) {
        int blocks = SparsePattern.blocksFor(tokens, blockSize);
        int[][] indptr = new int[layers * heads][];
        int[][] indices = new int[layers * heads][];
        for (int u = 0; u < layers * heads; u++) {
            List<Integer> idx = new ArrayList<>();
            indptr[u] = new int[blocks + 1];
            for (int qb = 0; qb < blocks; qb++) {
                int forced = r.nextInt(blocks);
                for (int kb = 0; kb < blocks; kb++) {
                    if (kb == forced || r.nextDouble() < keep) {
                        idx.add(kb);
                    }
                }
                indptr[u][qb + 1] = idx.size();
            }
            indices[u] = idx.stream().mapToInt(Integer::intValue).toArray();
        }
        return SparsePattern.of(layers, heads, tokens, blockSize, indptr, indices);
    }

    /** {@code n} floats drawn from a normal distribution of standard deviation {@code scale}. */
    public static float[] gaussian(SplittableRandom r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
        return a;
    }
}

package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fused attention kernel (step.cl's {@code attention}: scores, online softmax and the weighted sum of values in
 * one kernel, run by the OP_SCORES pass of a fused hand step) against a plain double reference on fresh random
 * queries and KV pool, in one launch mixing entries: causal rows seeing 1, 15, 16, 17 and 300 keys (key tiles of
 * 64 slots, block edges), a bidirectional canvas (entryLen) whose rows see later positions, and a block-sparse
 * entry (random pattern, shuffled order). Heads of 8 (kvGroup 4) and of 128 (kvGroup 2: more dimensions than
 * work items) floats; block tables scattered over the pool.
 */
class FusedAttentionTest {
    private static final int LAYER = 1;
    private static final int BLOCK = 16;
    private static final double TOLERANCE = 1e-4;

    @ParameterizedTest(name = "head size {0}")
    @ValueSource(ints = {8, 128})
    void fusedAttentionMatchesTheDoubleReference(int headSize) {
        // dim = heads * headSize; KV heads: a quarter (head 8) or half (head 128) of the heads.
        ModelConfig c = headSize == 8 ? new ModelConfig(64, 32, 2, 8, 2, 32, 512, 1e-5f, 10000f, false)
                : new ModelConfig(256, 32, 2, 2, 1, 32, 320, 1e-5f, 10000f, false);
        assertEquals(headSize, c.headSize());
        Random random = new Random(4242 + headSize);
        Llama2Weights w = randomWeights(c, random);
        int maxBlocksPerSeq = DeviceLlama2.blocksPerSequence(c);
        int entries = 7;
        int poolBlocks = entries * maxBlocksPerSeq;
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), poolBlocks, TensorType.F32,
                Dispatch.DIRECT, Matmul.HAND, MatmulTiles.DEFAULT, true)) {
            assertTrue(device.fusesAttention() || !Matmul.handAllPasses(), "the hand step fuses attention");
            if (!device.fusesAttention()) {
                return; // -Dstepstream.opencl.handPasses=matmul: no step.cl kernels, nothing fused
            }
            Llama2Kernel k = device.k;
            // Query rows (entry, position): causal entries 0..4 with 1, 15, 16, 17, 300 keys; entry 5 a canvas of
            // 20 positions (rows at 3 and 19 both see 0..19); entry 6 block-sparse, rows at 0, 40 and 299.
            int[] seq = {0, 1, 2, 3, 4, 5, 5, 6, 6, 6};
            int[] pos = {0, 14, 15, 16, 299, 3, 19, 0, 40, 299};
            int[] entryLen = {0, 0, 0, 0, 0, 20, 0};
            int tokens = seq.length;
            device.ensureCapacity(tokens, entries);
            // Every entry's blocks are a random slice of a shuffled pool.
            List<Integer> pool = new ArrayList<>();
            for (int b = 0; b < poolBlocks; b++) {
                pool.add(b);
            }
            Collections.shuffle(pool, random);
            for (int i = 0; i < entries * maxBlocksPerSeq; i++) {
                k.blockTable[i] = pool.get(i);
            }
            for (int t = 0; t < tokens; t++) {
                k.tokenPos[t] = pos[t];
                k.tokenSeq[t] = seq[t];
            }
            for (int e = 0; e < entries; e++) {
                k.entryLen[e] = entryLen[e];
                k.entryIndptr[e] = e == 6 ? 0 : -1;
                k.entryIndices[e] = 0;
            }
            BlockSparsePattern pattern = randomPattern(c, maxBlocksPerSeq, random);
            device.putPatterns(pattern.indptr(), pattern.indptr().length, pattern.indices(), pattern.indices().length);
            device.putStepInputs();
            fill(device, k.q, random);
            fill(device, k.kv, random);
            fill(device, k.xb, random);
            device.launchPasses(new int[]{Llama2Kernel.OP_SCORES}, new int[]{LAYER}, tokens, entries, 300);
            device.launcher().get(k.xb);

            int dim = c.dim();
            int kvDim = c.kvDim();
            int kvGroup = c.nHeads() / c.nKvHeads();
            double[] expected = new double[tokens * dim];
            for (int t = 0; t < tokens; t++) {
                int e = seq[t];
                int last = entryLen[e] > 0 ? entryLen[e] - 1 : pos[t];
                for (int h = 0; h < c.nHeads(); h++) {
                    boolean[] visible = new boolean[last + 1];
                    if (e == 6) {
                        for (int kb : pattern.keyBlocks(LAYER, h, pos[t] / BLOCK)) {
                            for (int j = kb * BLOCK; j < Math.min((kb + 1) * BLOCK, last + 1); j++) {
                                visible[j] = true;
                            }
                        }
                    } else {
                        java.util.Arrays.fill(visible, true);
                    }
                    int kvHead = (h / kvGroup) * headSize;
                    double[] p = new double[last + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= last; j++) {
                        if (visible[j]) {
                            double s = 0;
                            int ko = kvIndex(k, c, e, j, false) + kvHead;
                            for (int d = 0; d < headSize; d++) {
                                s += (double) k.q[t * dim + h * headSize + d] * k.kv[ko + d];
                            }
                            p[j] = s / Math.sqrt(headSize);
                            max = Math.max(max, p[j]);
                        }
                    }
                    double sum = 0;
                    for (int j = 0; j <= last; j++) {
                        p[j] = visible[j] ? Math.exp(p[j] - max) : 0;
                        sum += p[j];
                    }
                    for (int d = 0; d < headSize; d++) {
                        double s = 0;
                        for (int j = 0; j <= last; j++) {
                            if (visible[j]) {
                                s += p[j] / sum * k.kv[kvIndex(k, c, e, j, true) + kvHead + d];
                            }
                        }
                        expected[t * dim + h * headSize + d] = s;
                    }
                }
            }
            double err = OpenClTestSupport.relativeError(k.xb, expected, expected.length);
            assertTrue(err <= TOLERANCE, "fused attention: relative error " + err);
            // Each row on its own too (a small row next to a large one must not hide in the global maximum).
            for (int t = 0; t < tokens; t++) {
                double[] row = java.util.Arrays.copyOfRange(expected, t * dim, (t + 1) * dim);
                float[] got = java.util.Arrays.copyOfRange(k.xb, t * dim, (t + 1) * dim);
                double rowErr = OpenClTestSupport.relativeError(got, row, dim);
                assertTrue(rowErr <= TOLERANCE, "row " + t + " (entry " + seq[t] + ", position " + pos[t]
                        + "): relative error " + rowErr);
            }
        }
    }

    private static int kvIndex(Llama2Kernel k, ModelConfig c, int e, int j, boolean value) {
        int block = k.blockTable[e * k.maxBlocksPerSeq + j / BLOCK];
        return block * k.blockFloats + ((LAYER * 2 + (value ? 1 : 0)) * BLOCK + j % BLOCK) * c.kvDim();
    }

    /** Each (layer, head, query block) row: its own block always, each earlier block by coin flip, shuffled. */
    private static BlockSparsePattern randomPattern(ModelConfig c, int qBlocks, Random random) {
        int rows = c.nLayers() * c.nHeads() * qBlocks;
        int[] indptr = new int[rows + 1];
        List<Integer> indices = new ArrayList<>();
        for (int r = 0; r < rows; r++) {
            int qb = r % qBlocks;
            List<Integer> blocks = new ArrayList<>(List.of(qb));
            for (int kb = 0; kb < qb; kb++) {
                if (random.nextBoolean()) {
                    blocks.add(kb);
                }
            }
            Collections.shuffle(blocks, random);
            indices.addAll(blocks);
            indptr[r + 1] = indices.size();
        }
        return new BlockSparsePattern(c.nLayers(), c.nHeads(), qBlocks, indptr,
                indices.stream().mapToInt(Integer::intValue).toArray());
    }

    private static void fill(DeviceLlama2 device, float[] a, Random random) {
        for (int i = 0; i < a.length; i++) {
            a[i] = random.nextFloat() * 2 - 1;
        }
        device.launcher().put(a);
    }

    private static Llama2Weights randomWeights(ModelConfig c, Random random) {
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        int layers = c.nLayers();
        return new Llama2Weights(c, random(random, c.vocabSize() * dim), random(random, layers, dim),
                random(random, layers, dim * dim), random(random, layers, kvDim * dim),
                random(random, layers, kvDim * dim), random(random, layers, dim * dim), random(random, layers, dim),
                random(random, layers, hidden * dim), random(random, layers, dim * hidden),
                random(random, layers, hidden * dim), random(random, dim), random(random, c.vocabSize() * dim));
    }

    private static float[] random(Random random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = random.nextFloat() * 2 - 1;
        }
        return a;
    }

    private static float[][] random(Random random, int layers, int n) {
        float[][] a = new float[layers][];
        for (int l = 0; l < layers; l++) {
            a[l] = random(random, n);
        }
        return a;
    }
}

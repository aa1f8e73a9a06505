package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static io.stepstream.gpu.Llama2Kernel.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each pass of the fused kernel, alone, on fresh random weights and inputs against a plain double-precision
 * reference (unfused: RMSNorm, then the matmul, then the epilogue; scores, then softmax, then the weighted
 * sum). The shape has grouped-query attention (6 heads over 2 KV heads), a separate classifier, odd vocab
 * and hidden sizes that are not multiples of any tile, and sequences whose block tables point at scattered
 * pool blocks. Every test runs on three step layouts (one decode token; 5 tokens of 2 sequences; 40 tokens of
 * 3 sequences, more than one matmul unit's token tile) and two work-group sizes (the device default and 64),
 * which between them take every matmul tiling path: one token, one and several token cells, one and several
 * column slices per cell.
 */
class Llama2KernelTest {
    private static final ModelConfig C = new ModelConfig(48, 80, 2, 6, 2, 97, 40, 1e-5f, 10000f, false);
    private static final int LAYER = 1;
    private static final double TOLERANCE = 1e-4;

    /** Which tokens a step holds: their ids, positions and entries, each entry's last row and block table. */
    record Layout(String name, int[] tokens, int[] pos, int[] seq, int[] lastRow, int[][] tables) {
        int t() {
            return tokens.length;
        }

        int e() {
            return lastRow.length;
        }

        int maxLen() {
            return Arrays.stream(pos).max().orElseThrow() + 1;
        }
    }

    /** One device kernel with its work-group size and step layout. */
    record Fixture(Layout layout, int localSize, DeviceLlama2 device) {
        Llama2Kernel k() {
            return device.k;
        }

        @Override
        public String toString() {
            return layout.name + ", local size " + device.localSize();
        }
    }

    private static final Random RANDOM = new Random(20240611);
    private static Llama2Weights w;
    private static final Map<String, Fixture> FIXTURES = new HashMap<>();

    static List<Fixture> fixtures() {
        return List.copyOf(FIXTURES.values()).stream()
                .sorted(java.util.Comparator.comparing(Fixture::toString)).toList();
    }

    private static Layout batchLayout() {
        List<Integer> tokens = new ArrayList<>();
        List<Integer> pos = new ArrayList<>();
        List<Integer> seq = new ArrayList<>();
        int[][] spans = {{10, 29}, {0, 14}, {35, 39}};
        int[] lastRow = new int[spans.length];
        for (int e = 0; e < spans.length; e++) {
            for (int p = spans[e][0]; p <= spans[e][1]; p++) {
                tokens.add(RANDOM.nextInt(C.vocabSize()));
                pos.add(p);
                seq.add(e);
            }
            lastRow[e] = tokens.size() - 1;
        }
        return new Layout("40 tokens", ints(tokens), ints(pos), ints(seq), lastRow, new int[][]{{5, 2}, {7}, {0, 1, 3}});
    }

    private static int[] ints(List<Integer> a) {
        return a.stream().mapToInt(Integer::intValue).toArray();
    }

    @BeforeAll
    static void build() {
        int dim = C.dim();
        int kvDim = C.kvDim();
        int hidden = C.hiddenDim();
        int layers = C.nLayers();
        w = new Llama2Weights(C, random(C.vocabSize() * dim), random(layers, dim), random(layers, dim * dim),
                random(layers, kvDim * dim), random(layers, kvDim * dim), random(layers, dim * dim),
                random(layers, dim), random(layers, hidden * dim), random(layers, dim * hidden),
                random(layers, hidden * dim), random(dim), random(C.vocabSize() * dim));
        List<Layout> layouts = List.of(
                new Layout("1 token", new int[]{11}, new int[]{17}, new int[]{0}, new int[]{0}, new int[][]{{5, 2}}),
                new Layout("5 tokens", new int[]{11, 96, 0, 42, 7}, new int[]{17, 18, 19, 3, 4},
                        new int[]{0, 0, 0, 1, 1}, new int[]{2, 4}, new int[][]{{5, 2}, {7}}),
                batchLayout());
        for (int localSize : new int[]{0, 64}) {
            for (Layout layout : layouts) {
                DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 8, TensorType.F32, localSize);
                Fixture f = new Fixture(layout, localSize, device);
                FIXTURES.put(f.toString() + "/" + localSize, f);
                Llama2Kernel k = device.k;
                device.ensureCapacity(layout.t(), layout.e());
                System.arraycopy(layout.tokens, 0, k.tokenIds, 0, layout.t());
                System.arraycopy(layout.pos, 0, k.tokenPos, 0, layout.t());
                System.arraycopy(layout.seq, 0, k.tokenSeq, 0, layout.t());
                System.arraycopy(layout.lastRow, 0, k.lastRow, 0, layout.e());
                for (int e = 0; e < layout.e(); e++) {
                    System.arraycopy(layout.tables[e], 0, k.blockTable, e * k.maxBlocksPerSeq, layout.tables[e].length);
                }
                device.putStepInputs();
            }
        }
    }

    @AfterAll
    static void close() {
        FIXTURES.values().forEach(f -> f.device.close());
    }

    private static float[] random(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = RANDOM.nextFloat() * 2 - 1;
        }
        return a;
    }

    private static float[][] random(int layers, int n) {
        float[][] a = new float[layers][];
        for (int l = 0; l < layers; l++) {
            a[l] = random(n);
        }
        return a;
    }

    private static void fill(Fixture f, float[] a) {
        for (int i = 0; i < a.length; i++) {
            a[i] = RANDOM.nextFloat() * 2 - 1;
        }
        f.device.launcher().put(a);
    }

    private static void run(Fixture f, int op, int layer) {
        Layout s = f.layout;
        f.device.launchPasses(new int[]{op}, new int[]{layer}, s.t(), s.e(), s.maxLen());
    }

    private static void assertClose(String what, float[] actual, double[] reference) {
        double err = OpenClTestSupport.relativeError(actual, reference, reference.length);
        assertTrue(err <= TOLERANCE, what + ": relative error " + err);
    }

    private static double dot(float[] w, int wOffset, double[] x, int xOffset, int n) {
        double s = 0;
        for (int c = 0; c < n; c++) {
            s += w[wOffset + c] * x[xOffset + c];
        }
        return s;
    }

    private static double[] doubles(float[] a, int n) {
        double[] d = new double[n];
        for (int i = 0; i < n; i++) {
            d[i] = a[i];
        }
        return d;
    }

    /** rows x dim: row r is rmsnorm(x[src row r]) with weight g. */
    private static double[] rmsnorm(float[] x, int[] srcRows, float[] g) {
        int dim = C.dim();
        double[] out = new double[srcRows.length * dim];
        for (int r = 0; r < srcRows.length; r++) {
            int src = srcRows[r] * dim;
            double ss = 0;
            for (int j = 0; j < dim; j++) {
                ss += (double) x[src + j] * x[src + j];
            }
            double scale = 1 / Math.sqrt(ss / dim + C.rmsNormEps());
            for (int j = 0; j < dim; j++) {
                out[r * dim + j] = g[j] * (x[src + j] * scale);
            }
        }
        return out;
    }

    private static int[] identity(int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        return a;
    }

    private static int kvIndex(Fixture f, int seq, int pos, int layer, boolean value, int kvCol) {
        int block = f.layout.tables[seq][pos / BLOCK];
        return block * f.k().blockFloats + ((layer * 2 + (value ? 1 : 0)) * BLOCK + pos % BLOCK) * C.kvDim() + kvCol;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void qkvProjectionOfTheNormedResidualWithRopeWritesQueriesAndThePagedKvCache(Fixture f) {
        Llama2Kernel k = f.k();
        fill(f, k.x);
        fill(f, k.kv);
        float[] x0 = k.x.clone();
        run(f, OP_QKV_ROPE, LAYER);
        checkQkv(f, LAYER, rmsnorm(x0, identity(f.layout.t()), w.rmsAtt()[LAYER]));
        f.device.launcher().get(k.x);
        assertArrayEquals(x0, k.x, "the qkv pass of a later layer leaves the residual stream alone");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void layerZerosQkvReadsTheEmbeddingRowsAndStoresThemAsTheResidualStream(Fixture f) {
        Llama2Kernel k = f.k();
        Layout s = f.layout;
        fill(f, k.x); // stale values the pass must overwrite
        fill(f, k.kv);
        run(f, OP_QKV_ROPE, 0);
        float[] embedded = new float[s.t() * C.dim()];
        for (int t = 0; t < s.t(); t++) {
            System.arraycopy(w.tokenEmbedding(), s.tokens[t] * C.dim(), embedded, t * C.dim(), C.dim());
        }
        f.device.launcher().get(k.x);
        assertArrayEquals(embedded, Arrays.copyOf(k.x, embedded.length));
        checkQkv(f, 0, rmsnorm(w.tokenEmbedding(), s.tokens, w.rmsAtt()[0]));
    }

    private static void checkQkv(Fixture f, int layer, double[] xn) {
        Llama2Kernel k = f.k();
        Layout s = f.layout;
        int dim = C.dim();
        int kvDim = C.kvDim();
        int hs = C.headSize();
        int n = s.t();
        f.device.launcher().get(k.q);
        f.device.launcher().get(k.kv);
        double[] q = new double[n * dim];
        double[] keys = new double[n * kvDim];
        double[] values = new double[n * kvDim];
        float[] gotKeys = new float[n * kvDim];
        float[] gotValues = new float[n * kvDim];
        for (int t = 0; t < n; t++) {
            for (int r = 0; r < dim; r++) {
                q[t * dim + r] = dot(w.wq()[layer], r * dim, xn, t * dim, dim);
            }
            for (int r = 0; r < kvDim; r++) {
                keys[t * kvDim + r] = dot(w.wk()[layer], r * dim, xn, t * dim, dim);
                values[t * kvDim + r] = dot(w.wv()[layer], r * dim, xn, t * dim, dim);
                gotKeys[t * kvDim + r] = k.kv[kvIndex(f, s.seq[t], s.pos[t], layer, false, r)];
                gotValues[t * kvDim + r] = k.kv[kvIndex(f, s.seq[t], s.pos[t], layer, true, r)];
            }
            // RoPE, llama2.c style: rotate interleaved pairs (i, i+1) by pos * theta^(-(i mod hs)/hs).
            for (int i = 0; i < dim; i += 2) {
                double angle = s.pos[t] * Math.pow(C.ropeTheta(), -(double) (i % hs) / hs);
                rotate(q, t * dim + i, angle);
                if (i < kvDim) {
                    rotate(keys, t * kvDim + i, angle);
                }
            }
        }
        assertClose("q", k.q, q);
        assertClose("cached keys", gotKeys, keys);
        assertClose("cached values", gotValues, values);
    }

    private static void rotate(double[] v, int i, double angle) {
        double a = v[i];
        double b = v[i + 1];
        v[i] = a * Math.cos(angle) - b * Math.sin(angle);
        v[i + 1] = a * Math.sin(angle) + b * Math.cos(angle);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void attentionIsTheSoftmaxWeightedSumOfTheCachedValuesOfTheTokensOwnPrefix(Fixture f) {
        Llama2Kernel k = f.k();
        fill(f, k.q);
        fill(f, k.kv);
        fill(f, k.xb);
        // Spread-out queries, so the softmax rows are far from uniform.
        for (int i = 0; i < k.q.length; i++) {
            k.q[i] *= 4;
        }
        f.device.launcher().put(k.q);
        run(f, OP_ATTENTION, LAYER);
        f.device.launcher().get(k.xb);
        assertClose("attention", k.xb, referenceAttention(f, null));
    }

    /** Scores, softmax over the attended keys (all of 0..pos, or the pattern's blocks for entry 0), sum of values. */
    private static double[] referenceAttention(Fixture f, BlockSparsePattern pattern) {
        Llama2Kernel k = f.k();
        Layout s = f.layout;
        int hs = C.headSize();
        int dim = C.dim();
        double[] expected = new double[s.t() * dim];
        for (int t = 0; t < s.t(); t++) {
            int pos = s.pos[t];
            for (int h = 0; h < C.nHeads(); h++) {
                int kvHead = h / (C.nHeads() / C.nKvHeads());
                boolean[] allowed = new boolean[pos + 1];
                if (pattern != null && s.seq[t] == 0) {
                    for (int kb : pattern.keyBlocks(LAYER, h, pos / BLOCK)) {
                        for (int j = kb * BLOCK; j < Math.min((kb + 1) * BLOCK, pos + 1); j++) {
                            allowed[j] = true;
                        }
                    }
                } else {
                    Arrays.fill(allowed, true);
                }
                double[] score = new double[pos + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= pos; j++) {
                    if (allowed[j]) {
                        double d = 0;
                        for (int c = 0; c < hs; c++) {
                            d += (double) k.q[t * dim + h * hs + c]
                                    * k.kv[kvIndex(f, s.seq[t], j, LAYER, false, kvHead * hs + c)];
                        }
                        score[j] = d / Math.sqrt(hs);
                        max = Math.max(max, score[j]);
                    }
                }
                double sum = 0;
                double[] p = new double[pos + 1];
                for (int j = 0; j <= pos; j++) {
                    if (allowed[j]) {
                        p[j] = Math.exp(score[j] - max);
                        sum += p[j];
                    }
                }
                for (int d = 0; d < hs; d++) {
                    double acc = 0;
                    for (int j = 0; j <= pos; j++) {
                        acc += p[j] / sum * k.kv[kvIndex(f, s.seq[t], j, LAYER, true, kvHead * hs + d)];
                    }
                    expected[t * dim + h * hs + d] = acc;
                }
            }
        }
        return expected;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void projectionsWithResidualAndNormedSwiglu(Fixture f) {
        Llama2Kernel k = f.k();
        int n = f.layout.t();
        int dim = C.dim();
        int hidden = C.hiddenDim();
        fill(f, k.x);
        fill(f, k.xb);
        float[] x0 = k.x.clone();
        run(f, OP_WO_RESIDUAL, LAYER);
        f.device.launcher().get(k.x);
        double[] xb = doubles(k.xb, k.xb.length);
        double[] expected = new double[n * dim];
        for (int i = 0; i < n * dim; i++) {
            expected[i] = x0[i] + dot(w.wo()[LAYER], (i % dim) * dim, xb, (i / dim) * dim, dim);
        }
        assertClose("wo + residual", k.x, expected);

        fill(f, k.x);
        run(f, OP_FFN_SWIGLU, LAYER);
        f.device.launcher().get(k.hb);
        double[] xn = rmsnorm(k.x, identity(n), w.rmsFfn()[LAYER]);
        double[] gate = new double[n * hidden];
        for (int i = 0; i < n * hidden; i++) {
            double a = dot(w.w1()[LAYER], (i % hidden) * dim, xn, (i / hidden) * dim, dim);
            double b = dot(w.w3()[LAYER], (i % hidden) * dim, xn, (i / hidden) * dim, dim);
            gate[i] = a / (1 + Math.exp(-a)) * b;
        }
        assertClose("rmsnorm + w1/w3 + swiglu", k.hb, gate);

        fill(f, k.x);
        fill(f, k.hb);
        x0 = k.x.clone();
        run(f, OP_W2_RESIDUAL, LAYER);
        f.device.launcher().get(k.x);
        double[] hb = doubles(k.hb, k.hb.length);
        for (int i = 0; i < n * dim; i++) {
            expected[i] = x0[i] + dot(w.w2()[LAYER], (i % dim) * hidden, hb, (i / dim) * hidden, hidden);
        }
        assertClose("w2 + residual", k.x, expected);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void logitsOfEachEntrysNormedLastRow(Fixture f) {
        Llama2Kernel k = f.k();
        int e = f.layout.e();
        int dim = C.dim();
        int vocab = C.vocabSize();
        fill(f, k.x);
        fill(f, k.logits);
        run(f, OP_LOGITS, 0);
        f.device.launcher().get(k.logits);
        double[] xn = rmsnorm(k.x, f.layout.lastRow, w.rmsFinal());
        double[] expected = new double[e * vocab];
        for (int i = 0; i < e * vocab; i++) {
            expected[i] = dot(w.classifier(), (i % vocab) * dim, xn, (i / vocab) * dim, dim);
        }
        assertClose("logits", k.logits, expected);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void blockSparseAttentionReadsOnlyTheListedKeyBlocks(Fixture f) {
        Llama2Kernel k = f.k();
        int qBlocks = k.maxBlocksPerSeq;
        // Entry 0 attends through a random pattern (own block always, block 0 never, each other earlier block
        // by coin flip, in a shuffled order); the other entries stay dense in the same launch.
        int rows = C.nLayers() * C.nHeads() * qBlocks;
        int[] indptr = new int[rows + 1];
        int[] indices = new int[rows * qBlocks];
        for (int r = 0; r < rows; r++) {
            int qb = r % qBlocks;
            List<Integer> blocks = new ArrayList<>(List.of(qb));
            for (int kb = 1; kb < qb; kb++) {
                if (RANDOM.nextBoolean()) {
                    blocks.add(kb);
                }
            }
            java.util.Collections.shuffle(blocks, RANDOM);
            indptr[r + 1] = indptr[r] + blocks.size();
            for (int m = 0; m < blocks.size(); m++) {
                indices[indptr[r] + m] = blocks.get(m);
            }
        }
        BlockSparsePattern pattern = new BlockSparsePattern(C.nLayers(), C.nHeads(), qBlocks, indptr,
                Arrays.copyOf(indices, indptr[rows]));
        try {
            k.entryIndptr[0] = 0;
            k.entryIndices[0] = 0;
            f.device.putPatterns(pattern.indptr(), indptr.length, pattern.indices(), indptr[rows]);
            f.device.putStepInputs();
            fill(f, k.q);
            fill(f, k.kv);
            run(f, OP_ATTENTION, LAYER);
            f.device.launcher().get(k.xb);
        } finally {
            k.entryIndptr[0] = -1;
            f.device.putStepInputs();
        }
        double[] expected = referenceAttention(f, pattern);
        assertClose("block-sparse attention", k.xb, expected);
        // The pattern really dropped keys (entry 0 has positions past block 0): dense attention differs.
        double[] dense = referenceAttention(f, null);
        assertTrue(OpenClTestSupport.relativeError(k.xb, dense, dense.length) > 1e-3,
                "the pattern made no difference to entry 0");
    }
}

package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Weights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static io.stepstream.gpu.Llama2Kernel.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each pass of the fused kernel, alone, on fresh random weights and inputs against a plain double-precision
 * reference. The shape has grouped-query attention (6 heads over 2 KV heads), a separate classifier, two
 * sequences whose block tables point at scattered pool blocks, and a chunk that crosses a block boundary.
 */
class Llama2KernelTest {
    private static final ModelConfig C = new ModelConfig(48, 80, 2, 6, 2, 97, 40, 1e-5f, 10000f, false);
    private static final int LAYER = 1;
    private static final int T = 5;
    private static final int E = 2;
    private static final int[] TOKENS = {11, 96, 0, 42, 7};
    private static final int[] POS = {17, 18, 19, 3, 4};
    private static final int[] SEQ = {0, 0, 0, 1, 1};
    private static final int[] LAST_ROW = {2, 4};
    private static final int[][] TABLES = {{5, 2}, {7}};
    private static final int MAX_LEN = 20;
    private static final double TOLERANCE = 1e-4;

    private static final Random RANDOM = new Random(20240611);
    private static Llama2Weights w;
    private static DeviceLlama2 device;
    private static Llama2Kernel k;

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
        // The passes are checked one at a time through their score rows: keep att mirrored in a Java array.
        device = OpenClTestSupport.withProperty(DeviceLlama2.SCORE_ROWS_ON_DEMAND_PROPERTY, "false",
                () -> new DeviceLlama2(w, OpenClTestSupport.device(), 8));
        if (device.handStep() != null) {
            // These tests check the three attention passes themselves (TiledAttentionTest checks attn_tiled,
            // which the hand step's auto mode now runs in their place).
            device.attention(Attention.PASSES);
        }
        k = device.k;
        device.ensureCapacity(T, E, T);
        System.arraycopy(TOKENS, 0, k.tokenIds, 0, T);
        System.arraycopy(POS, 0, k.tokenPos, 0, T);
        System.arraycopy(SEQ, 0, k.tokenSeq, 0, T);
        System.arraycopy(LAST_ROW, 0, k.logitRow, 0, E);
        for (int e = 0; e < E; e++) {
            System.arraycopy(TABLES[e], 0, k.blockTable, e * k.maxBlocksPerSeq, TABLES[e].length);
        }
        device.putStepInputs();
    }

    @AfterAll
    static void close() {
        if (device != null) {
            device.close();
        }
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

    private static void fill(float[] a) {
        for (int i = 0; i < a.length; i++) {
            a[i] = RANDOM.nextFloat() * 2 - 1;
        }
        device.launcher().put(a);
    }

    private static void run(int op) {
        device.launchPasses(new int[]{op}, new int[]{LAYER}, T, E, MAX_LEN);
    }

    private static void assertClose(String what, float[] actual, double[] reference) {
        double err = OpenClTestSupport.relativeError(actual, reference, reference.length);
        assertTrue(err <= TOLERANCE, what + ": relative error " + err);
    }

    private static double dot(float[] w, int wOffset, float[] x, int xOffset, int n) {
        double s = 0;
        for (int c = 0; c < n; c++) {
            s += (double) w[wOffset + c] * x[xOffset + c];
        }
        return s;
    }

    private static int kvIndex(int seq, int pos, boolean value, int kvCol) {
        int block = TABLES[seq][pos / BLOCK];
        return block * k.blockFloats + ((LAYER * 2 + (value ? 1 : 0)) * BLOCK + pos % BLOCK) * C.kvDim() + kvCol;
    }

    @Test
    void embedCopiesEachTokensRow() {
        fill(k.x);
        run(OP_EMBED);
        device.launcher().get(k.x);
        float[] expected = new float[T * C.dim()];
        for (int t = 0; t < T; t++) {
            System.arraycopy(w.tokenEmbedding(), TOKENS[t] * C.dim(), expected, t * C.dim(), C.dim());
        }
        assertArrayEquals(expected, Arrays.copyOf(k.x, T * C.dim()));
    }

    @Test
    void rmsnormOfEveryRowAndOfEachEntrysLastRow() {
        int dim = C.dim();
        for (int op : new int[]{OP_RMSNORM_ATT, OP_RMSNORM_FFN, OP_FINAL_NORM}) {
            fill(k.x);
            run(op);
            device.launcher().get(k.xb);
            int rows = op == OP_FINAL_NORM ? E : T;
            double[] expected = new double[rows * dim];
            float[] weight = op == OP_RMSNORM_ATT ? w.rmsAtt()[LAYER] : op == OP_RMSNORM_FFN ? w.rmsFfn()[LAYER]
                    : w.rmsFinal();
            for (int r = 0; r < rows; r++) {
                int src = (op == OP_FINAL_NORM ? LAST_ROW[r] : r) * dim;
                double ss = dot(k.x, src, k.x, src, dim) / dim + C.rmsNormEps();
                for (int j = 0; j < dim; j++) {
                    expected[r * dim + j] = weight[j] * k.x[src + j] / Math.sqrt(ss);
                }
            }
            assertClose("rmsnorm op " + op, k.xb, expected);
        }
    }

    @Test
    void qkvProjectionWithRopeWritesQueriesAndThePagedKvCache() {
        int dim = C.dim();
        int kvDim = C.kvDim();
        int hs = C.headSize();
        fill(k.xb);
        fill(k.kv);
        run(OP_QKV_ROPE);
        device.launcher().get(k.q);
        device.launcher().get(k.kv);
        double[] q = new double[T * dim];
        double[] keys = new double[T * kvDim];
        double[] values = new double[T * kvDim];
        float[] gotKeys = new float[T * kvDim];
        float[] gotValues = new float[T * kvDim];
        for (int t = 0; t < T; t++) {
            for (int r = 0; r < dim; r++) {
                q[t * dim + r] = dot(w.wq()[LAYER], r * dim, k.xb, t * dim, dim);
            }
            for (int r = 0; r < kvDim; r++) {
                keys[t * kvDim + r] = dot(w.wk()[LAYER], r * dim, k.xb, t * dim, dim);
                values[t * kvDim + r] = dot(w.wv()[LAYER], r * dim, k.xb, t * dim, dim);
                gotKeys[t * kvDim + r] = k.kv[kvIndex(SEQ[t], POS[t], false, r)];
                gotValues[t * kvDim + r] = k.kv[kvIndex(SEQ[t], POS[t], true, r)];
            }
            // RoPE, llama2.c style: rotate interleaved pairs (i, i+1) by pos * theta^(-(i mod hs)/hs).
            for (int i = 0; i < dim; i += 2) {
                double angle = POS[t] * Math.pow(C.ropeTheta(), -(double) (i % hs) / hs);
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

    @Test
    void scoresAreScaledDotsWithTheCachedKeysOfTheTokensOwnSequence() {
        int hs = C.headSize();
        fill(k.q);
        fill(k.kv);
        fill(k.att);
        run(OP_SCORES);
        device.launcher().get(k.att);
        int valid = 0;
        for (int pos : POS) {
            valid += (pos + 1) * C.nHeads();
        }
        double[] expected = new double[valid];
        float[] got = new float[valid];
        int n = 0;
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < C.nHeads(); h++) {
                int kvHead = h / (C.nHeads() / C.nKvHeads());
                for (int j = 0; j <= POS[t]; j++, n++) {
                    expected[n] = dot(k.q, t * C.dim() + h * hs, k.kv, kvIndex(SEQ[t], j, false, kvHead * hs), hs)
                            / Math.sqrt(hs);
                    got[n] = k.att[(t * C.nHeads() + h) * C.contextLength() + j];
                }
            }
        }
        assertClose("scores", got, expected);
    }

    @Test
    void softmaxOverEachTokensCausalPrefix() {
        for (int i = 0; i < k.att.length; i++) {
            k.att[i] = (RANDOM.nextFloat() * 2 - 1) * 8; // spread out, so rows are far from uniform
        }
        device.launcher().put(k.att);
        float[] before = k.att.clone();
        run(OP_SOFTMAX);
        device.launcher().get(k.att);
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < C.nHeads(); h++) {
                int o = (t * C.nHeads() + h) * C.contextLength();
                int len = POS[t] + 1;
                double[] expected = new double[len];
                double sum = 0;
                for (int j = 0; j < len; j++) {
                    expected[j] = Math.exp(before[o + j]);
                    sum += expected[j];
                }
                for (int j = 0; j < len; j++) {
                    expected[j] /= sum;
                }
                assertClose("softmax row " + t + "/" + h, Arrays.copyOfRange(k.att, o, o + len), expected);
            }
        }
    }

    @Test
    void attentionOutputWeighsTheCachedValues() {
        int hs = C.headSize();
        int dim = C.dim();
        fill(k.att);
        fill(k.kv);
        run(OP_ATTN_OUT);
        device.launcher().get(k.xb);
        double[] expected = new double[T * dim];
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < C.nHeads(); h++) {
                int kvHead = h / (C.nHeads() / C.nKvHeads());
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int j = 0; j <= POS[t]; j++) {
                        s += (double) k.att[(t * C.nHeads() + h) * C.contextLength() + j]
                                * k.kv[kvIndex(SEQ[t], j, true, kvHead * hs + d)];
                    }
                    expected[t * dim + h * hs + d] = s;
                }
            }
        }
        assertClose("attention output", k.xb, expected);
    }

    @Test
    void projectionsWithResidualAndSwiglu() {
        int dim = C.dim();
        int hidden = C.hiddenDim();
        fill(k.x);
        fill(k.xb);
        float[] x0 = k.x.clone();
        run(OP_WO_RESIDUAL);
        device.launcher().get(k.x);
        double[] expected = new double[T * dim];
        for (int i = 0; i < T * dim; i++) {
            expected[i] = x0[i] + dot(w.wo()[LAYER], (i % dim) * dim, k.xb, (i / dim) * dim, dim);
        }
        assertClose("wo + residual", k.x, expected);

        fill(k.xb);
        run(OP_FFN_SWIGLU);
        device.launcher().get(k.hb);
        double[] gate = new double[T * hidden];
        for (int i = 0; i < T * hidden; i++) {
            double a = dot(w.w1()[LAYER], (i % hidden) * dim, k.xb, (i / hidden) * dim, dim);
            double b = dot(w.w3()[LAYER], (i % hidden) * dim, k.xb, (i / hidden) * dim, dim);
            gate[i] = a / (1 + Math.exp(-a)) * b;
        }
        assertClose("w1/w3 + swiglu", k.hb, gate);

        fill(k.x);
        fill(k.hb);
        x0 = k.x.clone();
        run(OP_W2_RESIDUAL);
        device.launcher().get(k.x);
        for (int i = 0; i < T * dim; i++) {
            expected[i] = x0[i] + dot(w.w2()[LAYER], (i % dim) * hidden, k.hb, (i / dim) * hidden, hidden);
        }
        assertClose("w2 + residual", k.x, expected);
    }

    @Test
    void logitsOfEachEntryFromTheClassifier() {
        int dim = C.dim();
        int vocab = C.vocabSize();
        fill(k.xb);
        run(OP_LOGITS);
        device.launcher().get(k.logits);
        double[] expected = new double[E * vocab];
        for (int i = 0; i < E * vocab; i++) {
            expected[i] = dot(w.classifier(), (i % vocab) * dim, k.xb, (i / vocab) * dim, dim);
        }
        assertClose("logits", k.logits, expected);
    }

    @Test
    void finalNormAndLogitsOfAnExplicitListOfRows() {
        int dim = C.dim();
        int vocab = C.vocabSize();
        int[] rows = {4, 0, 3, 1};
        fill(k.x);
        System.arraycopy(rows, 0, k.logitRow, 0, rows.length);
        try {
            device.putStepInputs();
            device.launchPasses(new int[]{OP_FINAL_NORM, OP_LOGITS}, new int[]{0, 0}, T, E, MAX_LEN, rows.length);
            device.launcher().get(k.logits);
        } finally {
            System.arraycopy(LAST_ROW, 0, k.logitRow, 0, E);
            device.putStepInputs();
        }
        double[] expected = new double[rows.length * vocab];
        for (int r = 0; r < rows.length; r++) {
            double ss = 0;
            for (int j = 0; j < dim; j++) {
                ss += (double) k.x[rows[r] * dim + j] * k.x[rows[r] * dim + j];
            }
            double scale = 1 / Math.sqrt(ss / dim + C.rmsNormEps());
            for (int v = 0; v < vocab; v++) {
                double s = 0;
                for (int j = 0; j < dim; j++) {
                    s += w.classifier()[v * dim + j] * (w.rmsFinal()[j] * scale * k.x[rows[r] * dim + j]);
                }
                expected[r * vocab + v] = s;
            }
        }
        assertClose("logits of listed rows", k.logits, expected);
    }

    @Test
    void anEntryWithACanvasLengthAttendsToItsWholeCanvas() {
        int hs = C.headSize();
        int dim = C.dim();
        // Entry 0 is a canvas of 20 positions (its rows at 17..19 see all of 0..19, later positions included);
        // entry 1 stays causal in the same launch.
        int canvas = 20;
        fill(k.q);
        fill(k.kv);
        k.entryLen[0] = canvas;
        try {
            device.putStepInputs();
            device.launchPasses(new int[]{OP_SCORES, OP_SOFTMAX, OP_ATTN_OUT}, new int[]{LAYER, LAYER, LAYER}, T, E,
                    MAX_LEN);
            device.launcher().get(k.xb);
        } finally {
            k.entryLen[0] = 0;
            device.putStepInputs();
        }
        double[] expected = new double[T * dim];
        for (int t = 0; t < T; t++) {
            int last = SEQ[t] == 0 ? canvas - 1 : POS[t];
            for (int h = 0; h < C.nHeads(); h++) {
                int kvHead = h / (C.nHeads() / C.nKvHeads());
                double[] p = new double[last + 1];
                double sum = 0;
                for (int j = 0; j <= last; j++) {
                    p[j] = Math.exp(dot(k.q, t * dim + h * hs, k.kv, kvIndex(SEQ[t], j, false, kvHead * hs), hs)
                            / Math.sqrt(hs));
                    sum += p[j];
                }
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int j = 0; j <= last; j++) {
                        s += p[j] / sum * k.kv[kvIndex(SEQ[t], j, true, kvHead * hs + d)];
                    }
                    expected[t * dim + h * hs + d] = s;
                }
            }
        }
        assertClose("bidirectional attention", k.xb, expected);
    }

    @Test
    void blockSparseAttentionReadsOnlyTheListedKeyBlocks() {
        int hs = C.headSize();
        int dim = C.dim();
        int qBlocks = k.maxBlocksPerSeq;
        // Entry 0 attends through a random pattern (own block always, each earlier block by coin flip, in a
        // shuffled order); entry 1 stays dense in the same launch.
        int rows = C.nLayers() * C.nHeads() * qBlocks;
        int[] indptr = new int[rows + 1];
        int[] indices = new int[rows * qBlocks];
        for (int r = 0; r < rows; r++) {
            int qb = r % qBlocks;
            java.util.List<Integer> blocks = new java.util.ArrayList<>(java.util.List.of(qb));
            for (int kb = 0; kb < qb; kb++) {
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
            device.putPatterns(pattern.indptr(), indptr.length, pattern.indices(), indptr[rows]);
            device.putStepInputs();
            fill(k.q);
            fill(k.kv);
            device.launchPasses(new int[]{OP_SCORES, OP_SOFTMAX, OP_ATTN_OUT}, new int[]{LAYER, LAYER, LAYER}, T, E,
                    MAX_LEN);
            device.launcher().get(k.xb);
        } finally {
            k.entryIndptr[0] = -1;
            device.putStepInputs();
        }
        double[] expected = new double[T * dim];
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < C.nHeads(); h++) {
                int kvHead = h / (C.nHeads() / C.nKvHeads());
                boolean[] allowed = new boolean[POS[t] + 1];
                if (SEQ[t] == 0) {
                    for (int kb : pattern.keyBlocks(LAYER, h, POS[t] / BLOCK)) {
                        for (int j = kb * BLOCK; j < Math.min((kb + 1) * BLOCK, POS[t] + 1); j++) {
                            allowed[j] = true;
                        }
                    }
                } else {
                    Arrays.fill(allowed, true);
                }
                double[] p = new double[POS[t] + 1];
                double sum = 0;
                for (int j = 0; j <= POS[t]; j++) {
                    if (allowed[j]) {
                        p[j] = Math.exp(dot(k.q, t * dim + h * hs, k.kv, kvIndex(SEQ[t], j, false, kvHead * hs), hs)
                                / Math.sqrt(hs));
                        sum += p[j];
                    }
                }
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int j = 0; j <= POS[t]; j++) {
                        s += p[j] / sum * k.kv[kvIndex(SEQ[t], j, true, kvHead * hs + d)];
                    }
                    expected[t * dim + h * hs + d] = s;
                }
            }
        }
        assertClose("block-sparse attention", k.xb, expected);
    }
}

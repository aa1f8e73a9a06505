package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static io.stepstream.gpu.Llama2Kernel.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The hand-written matmul kernels (matmul.cl through {@link HandMatmul}) of each matmul pass, alone, with their
 * epilogues, against a plain double reference on fresh random weights and inputs: F32 within 1e-4 relative,
 * F16 and Q8_0 against the weights as the device holds them, decoded. Odd sizes: 48 and 80-row matrices and a
 * 97-row classifier against 32-row tiles; 1, 3, 5 tokens (matvec kernel up to 8), 33 tokens (tiled kernel, a
 * partial second token tile; 3 and 5 also tiled with a 2-token matvec); two sequences whose block tables point at scattered pool blocks, one crossing a block.
 */
class HandMatmulTest {
    private static final ModelConfig C = new ModelConfig(48, 80, 2, 6, 2, 97, 64, 1e-5f, 10000f, false);
    private static final int LAYER = 1;
    private static final int[][] TABLES = {{5, 2, 9}, {7, 3, 0}};
    private static final double TOLERANCE = 1e-4;
    /** Small tiles and a 2-token matvec: more groups, more partial tiles, other macro values. */
    private static final MatmulTiles SMALL = MatmulTiles.DEFAULT.with("mv_wg=64,mv_lpr=8,mv_tokens=2,mv_unroll=1,"
            + "tm=8,tn=4,tk=8,rm=2,rn=2");

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (TensorType type : new TensorType[]{TensorType.F32, TensorType.F16, TensorType.Q8_0}) {
            for (int tokens : new int[]{1, 3, 5, 33}) {
                out.add(Arguments.of(type, tokens, MatmulTiles.DEFAULT));
            }
        }
        out.add(Arguments.of(TensorType.F32, 3, SMALL));
        out.add(Arguments.of(TensorType.Q8_0, 33, SMALL));
        // Split-K: the tiled kernel writes partial sums of column slices, a second kernel adds them and runs the
        // epilogue (3 slices of 16 or 32 columns, the last one short; 2 slices of the default 32-column K-slice).
        out.add(Arguments.of(TensorType.F32, 33, SMALL.with("ks=3")));
        out.add(Arguments.of(TensorType.F16, 5, SMALL.with("ks=3")));
        out.add(Arguments.of(TensorType.Q8_0, 9, MatmulTiles.DEFAULT.with("ks=8")));
        // The tiles large passes use by default (64-row tiles, 4x4 per item), on small matrices.
        out.add(Arguments.of(TensorType.F16, 33, MatmulTiles.DEFAULT.with(MatmulTiles.LARGE_DEFAULT)));
        out.add(Arguments.of(TensorType.F32, 70, MatmulTiles.DEFAULT.with(MatmulTiles.LARGE_DEFAULT + ",ks=2")));
        // The matvec long-row passes use by default (64 lanes a row, two loads in flight).
        for (TensorType type : new TensorType[]{TensorType.F32, TensorType.F16, TensorType.Q8_0}) {
            for (int tokens : new int[]{1, 2}) {
                out.add(Arguments.of(type, tokens, MatmulTiles.DEFAULT.with(MatmulTiles.LONG_ROWS_DEFAULT)));
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} x {1} tokens, {2}")
    @MethodSource("cases")
    void everyMatmulPassAndItsEpilogueMatchTheDoubleReference(TensorType type, int tokens, MatmulTiles tiles) {
        Random random = new Random(31L * tokens + type.ordinal() + tiles.tm());
        Llama2Weights w = randomWeights(random);
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, type, Dispatch.DIRECT,
                Matmul.HAND, tiles)) {
            assertEquals(Matmul.HAND, device.matmul());
            new Case(device, random, tokens).checkAll();
            assertEquals(5, device.handMatmulPasses(), "each of the five matmul passes ran as a hand kernel");
            if (tiles.ks() > 1 && tokens > tiles.mvTokens()) {
                assertTrue(device.handMatmulMaxSplit() > 1, "split-K ran");
            }
            // The other passes run as step.cl kernels too (Llama2KernelTest checks each of them against its double
            // reference: it runs with the default hand path).
            int[] others = {OP_EMBED, OP_RMSNORM_ATT, OP_SCORES, OP_SOFTMAX, OP_ATTN_OUT, OP_RMSNORM_FFN, OP_FINAL_NORM};
            device.launchPasses(others, new int[others.length], tokens, tokens == 1 ? 1 : 2, 40);
            device.launcher().finish();
            assertEquals(Matmul.handAllPasses() ? others.length : 0, device.handStepPasses());
        }
    }

    /**
     * One device model with a step of {@code n} tokens over one or two sequences. With {@code halfInputs} the
     * reference rounds the matmul inputs to f16 first, as the tensor-core kernel does.
     */
    static final class Case {
        final DeviceLlama2 device;
        final Llama2Kernel k;
        final Random random;
        final int n;
        final int entries;
        final int[] pos;
        final int[] seq;
        final int dim;
        final int kvDim;
        final int hidden;
        final boolean halfInputs;
        /** The model's shape (the weights the device was made from have it). */
        final ModelConfig c;
        /** The bound each check asserts, relative to max |reference|. */
        double tolerance = TOLERANCE;
        /** Each check's measured relative error, by name. */
        final java.util.Map<String, Double> errors = new java.util.LinkedHashMap<>();
        /** Another kernel's errors on the same data (a Case of the same seeds), printed beside these; or empty. */
        java.util.Map<String, Double> baseline = java.util.Map.of();

        Case(DeviceLlama2 device, Random random, int n) {
            this(device, random, n, false);
        }

        Case(DeviceLlama2 device, Random random, int n, boolean halfInputs) {
            this(device, random, n, halfInputs, C);
        }

        Case(DeviceLlama2 device, Random random, int n, boolean halfInputs, ModelConfig c) {
            this.c = c;
            this.dim = c.dim();
            this.kvDim = c.kvDim();
            this.hidden = c.hiddenDim();
            this.halfInputs = halfInputs;
            this.device = device;
            this.k = device.k;
            this.random = random;
            this.n = n;
            this.entries = n == 1 ? 1 : 2;
            this.pos = new int[n];
            this.seq = new int[n];
            int first = (n + 1) / 2;
            for (int t = 0; t < n; t++) {
                seq[t] = t < first || entries == 1 ? 0 : 1;
                pos[t] = seq[t] == 0 ? 13 + t : 2 + (t - first); // sequence 0 crosses into its second block
            }
            device.ensureCapacity(n, entries);
            for (int t = 0; t < n; t++) {
                k.tokenIds[t] = random.nextInt(c.vocabSize());
                k.tokenPos[t] = pos[t];
                k.tokenSeq[t] = seq[t];
            }
            for (int e = 0; e < entries; e++) {
                System.arraycopy(TABLES[e], 0, k.blockTable, e * k.maxBlocksPerSeq, TABLES[e].length);
                k.logitRow[e] = e == 0 ? Math.max(0, first - 1) : n - 1;
            }
            device.putStepInputs();
        }

        void run(int op) {
            device.launchPasses(new int[]{op}, new int[]{LAYER}, n, entries, 40);
        }

        void fill(float[] a) {
            for (int i = 0; i < a.length; i++) {
                a[i] = random.nextFloat() * 2 - 1;
            }
            device.launcher().put(a);
        }

        /** The matrices as the device holds them, decoded to float (exact for F32). */
        float[] weights(float[] f32, char[] f16, byte[] q8, float[] scales) {
            return switch (k.wtype) {
                case WT_F32 -> f32;
                case WT_F16 -> {
                    float[] out = new float[f16.length];
                    for (int i = 0; i < out.length; i++) {
                        out[i] = Float.float16ToFloat((short) f16[i]);
                    }
                    yield out;
                }
                default -> {
                    float[] out = new float[q8.length];
                    for (int i = 0; i < out.length; i++) {
                        out[i] = q8[i] * scales[i >> 5];
                    }
                    yield out;
                }
            };
        }

        double dot(float[] w, int wOffset, float[] x, int xOffset, int cols) {
            double s = 0;
            for (int c = 0; c < cols; c++) {
                float xc = halfInputs ? Float.float16ToFloat(Float.floatToFloat16(x[xOffset + c])) : x[xOffset + c];
                s += (double) w[wOffset + c] * xc;
            }
            return s;
        }

        int kvIndex(int t, boolean value, int col) {
            int block = TABLES[seq[t]][pos[t] / BLOCK];
            return block * k.blockFloats + ((LAYER * 2 + (value ? 1 : 0)) * BLOCK + pos[t] % BLOCK) * kvDim + col;
        }

        void checkAll() {
            qkv();
            residual(OP_WO_RESIDUAL, weights(k.wo, k.woH, k.woQ, k.woS), dim, k.xb);
            swiglu();
            residual(OP_W2_RESIDUAL, weights(k.w2, k.w2H, k.w2Q, k.w2S), hidden, k.hb);
            logits();
        }

        void qkv() {
            float[] wq = weights(k.wq, k.wqH, k.wqQ, k.wqS);
            float[] wk = weights(k.wk, k.wkH, k.wkQ, k.wkS);
            float[] wv = weights(k.wv, k.wvH, k.wvQ, k.wvS);
            int hs = c.headSize();
            fill(k.xb);
            fill(k.q);
            fill(k.kv);
            run(OP_QKV_ROPE);
            device.launcher().get(k.q);
            device.launcher().get(k.kv);
            double[] q = new double[n * dim];
            double[] keys = new double[n * kvDim];
            double[] values = new double[n * kvDim];
            float[] gotQ = java.util.Arrays.copyOf(k.q, n * dim);
            float[] gotKeys = new float[n * kvDim];
            float[] gotValues = new float[n * kvDim];
            for (int t = 0; t < n; t++) {
                for (int r = 0; r < dim; r++) {
                    q[t * dim + r] = dot(wq, (LAYER * dim + r) * dim, k.xb, t * dim, dim);
                }
                for (int r = 0; r < kvDim; r++) {
                    keys[t * kvDim + r] = dot(wk, (LAYER * kvDim + r) * dim, k.xb, t * dim, dim);
                    values[t * kvDim + r] = dot(wv, (LAYER * kvDim + r) * dim, k.xb, t * dim, dim);
                    gotKeys[t * kvDim + r] = k.kv[kvIndex(t, false, r)];
                    gotValues[t * kvDim + r] = k.kv[kvIndex(t, true, r)];
                }
                for (int i = 0; i < dim; i += 2) {
                    double angle = pos[t] * Math.pow(c.ropeTheta(), -(double) (i % hs) / hs);
                    rotate(q, t * dim + i, angle);
                    if (i < kvDim) {
                        rotate(keys, t * kvDim + i, angle);
                    }
                }
            }
            check("q (RoPE)", gotQ, q);
            check("keys in the KV pool (RoPE, block table)", gotKeys, keys);
            check("values in the KV pool (block table)", gotValues, values);
        }

        /** Records the relative error of {@code actual} and asserts it is within the tolerance. */
        void check(String what, float[] actual, double[] reference) {
            double err = OpenClTestSupport.relativeError(actual, reference, reference.length);
            errors.put(what, err);
            Double other = baseline.get(what);
            assertTrue(err <= tolerance, what + ": relative error " + err + " (bound " + tolerance + ")"
                    + (other == null ? "" : "; the baseline kernel on the same data: " + other));
        }

        void residual(int op, float[] weights, int cols, float[] input) {
            fill(input);
            fill(k.x);
            float[] x0 = k.x.clone();
            run(op);
            device.launcher().get(k.x);
            double[] expected = new double[n * dim];
            for (int i = 0; i < n * dim; i++) {
                expected[i] = x0[i] + dot(weights, (LAYER * dim + i % dim) * cols, input, (i / dim) * cols, cols);
            }
            check("op " + op + " + residual", java.util.Arrays.copyOf(k.x, n * dim), expected);
            // Rows beyond the step's tokens are untouched.
            for (int i = n * dim; i < k.x.length; i++) {
                assertEquals(x0[i], k.x[i], "x[" + i + "] beyond the step");
            }
        }

        void swiglu() {
            float[] w1 = weights(k.w1, k.w1H, k.w1Q, k.w1S);
            float[] w3 = weights(k.w3, k.w3H, k.w3Q, k.w3S);
            fill(k.xb);
            fill(k.hb);
            run(OP_FFN_SWIGLU);
            device.launcher().get(k.hb);
            double[] expected = new double[n * hidden];
            for (int i = 0; i < n * hidden; i++) {
                int h = i % hidden;
                double a = dot(w1, (LAYER * hidden + h) * dim, k.xb, (i / hidden) * dim, dim);
                double b = dot(w3, (LAYER * hidden + h) * dim, k.xb, (i / hidden) * dim, dim);
                expected[i] = a / (1 + Math.exp(-a)) * b;
            }
            check("w1/w3 + SwiGLU", java.util.Arrays.copyOf(k.hb, n * hidden), expected);
        }

        void logits() {
            float[] cls = weights(k.cls, k.clsH, k.clsQ, k.clsS);
            int vocab = c.vocabSize();
            fill(k.xb);
            fill(k.logits);
            run(OP_LOGITS);
            device.launcher().get(k.logits);
            double[] expected = new double[entries * vocab];
            for (int i = 0; i < entries * vocab; i++) {
                expected[i] = dot(cls, (i % vocab) * dim, k.xb, (i / vocab) * dim, dim);
            }
            check("logits", java.util.Arrays.copyOf(k.logits, entries * vocab), expected);
        }
    }

    private static void rotate(double[] v, int i, double angle) {
        double a = v[i];
        double b = v[i + 1];
        v[i] = a * Math.cos(angle) - b * Math.sin(angle);
        v[i + 1] = a * Math.sin(angle) + b * Math.cos(angle);
    }

    static Llama2Weights randomWeights(Random random) {
        return randomWeights(random, C);
    }

    static Llama2Weights randomWeights(Random random, ModelConfig c) {
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

    @Test
    void tilesAreValidatedWithClearErrors() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MatmulTiles.DEFAULT.with("rm=3"));
        assertTrue(e.getMessage().contains("rm must be even"), e.getMessage());
        // Long-row matvecs: only rows of at least minCols columns, at most maxTokens tokens.
        MatmulTiles.LongRows longRows = new MatmulTiles.LongRows(MatmulTiles.DEFAULT.with(MatmulTiles.LONG_ROWS_DEFAULT),
                4096, 2);
        assertTrue(longRows.takes(5632, 1) && longRows.takes(5632, 2) && longRows.takes(4096, 2));
        assertTrue(!longRows.takes(5632, 3) && !longRows.takes(2048, 1), "short rows or more tokens keep the default");
        assertTrue(!MatmulTiles.LongRows.off(MatmulTiles.DEFAULT).covers(1 << 20));
        e = assertThrows(IllegalArgumentException.class, () -> new MatmulTiles.LongRows(MatmulTiles.DEFAULT, 4096, 9));
        assertTrue(e.getMessage().contains(MatmulTiles.LONG_ROWS_TOKENS_PROPERTY), e.getMessage());
        // Split-K: auto reaches two groups per compute unit, capped at 8 and at half the 32-column slices.
        assertEquals(1, MatmulTiles.DEFAULT.splitFor(264, 2048, 132));
        assertEquals(5, MatmulTiles.DEFAULT.splitFor(64, 2048, 132));
        assertEquals(8, MatmulTiles.DEFAULT.splitFor(16, 2048, 132));
        assertEquals(1, MatmulTiles.DEFAULT.splitFor(16, 48, 132));
        assertEquals(2, MatmulTiles.DEFAULT.with("ks=8").splitFor(1, 48, 1));
        e = assertThrows(IllegalArgumentException.class, () -> MatmulTiles.DEFAULT.with("ks=-1"));
        assertTrue(e.getMessage().contains("ks must be"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> MatmulTiles.DEFAULT.with("tq=4"));
        assertTrue(e.getMessage().contains("tq=4") && e.getMessage().contains(MatmulTiles.PROPERTY), e.getMessage());
        assertEquals(64, MatmulTiles.DEFAULT.with("tm=64").tm());
        assertEquals(Matmul.HAND, Matmul.parse(" Hand "));
        e = assertThrows(IllegalArgumentException.class, () -> Matmul.parse("cublas"));
        assertTrue(e.getMessage().contains("hand or aparapi") && e.getMessage().contains("cublas"), e.getMessage());
    }
}

package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Weights;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.Llama2Kernel.BLOCK;
import static io.stepstream.gpu.Llama2Kernel.OP_ATTN_OUT;
import static io.stepstream.gpu.Llama2Kernel.OP_SCORES;
import static io.stepstream.gpu.Llama2Kernel.OP_SOFTMAX;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * step.cl's attn_tiled against a float64 reference of attention (and against the three passes) on fresh random q
 * and paged K/V behind random block tables: causal entries (whole prompts, chunks after earlier positions,
 * single-row decodes) and bidirectional canvases of 1..300 positions in one step, GQA groups of 1, 2 and 4, heads
 * of 8, 32, 48 and 64, the default tile and smaller ones (several tiles of rows and keys per entry, lanes that own
 * no float4 of a small head). Plus the selection rule.
 */
class TiledAttentionTest {
    static final int LAYER = 1;
    static final int CTX = 320;
    private static final double TOLERANCE = 1e-4;

    /** An entry of the step: causal (rows at the last {@code rows} of {@code keys} positions) or a canvas. */
    record Entry(boolean canvas, int keys, int rows) {
        static Entry causal(int keys, int rows) {
            return new Entry(false, keys, rows);
        }

        static Entry canvas(int length) {
            return new Entry(true, length, length);
        }

        int firstPos() {
            return keys - rows;
        }
    }

    private static final List<Entry> MIXED = List.of(Entry.causal(300, 300), Entry.canvas(100), Entry.causal(37, 5),
            Entry.causal(100, 1), Entry.canvas(1), Entry.canvas(33), Entry.canvas(257), Entry.causal(65, 64),
            Entry.causal(17, 17));
    private static final List<Entry> DECODES = List.of(Entry.causal(1, 1), Entry.causal(31, 1), Entry.causal(300, 1),
            Entry.causal(64, 1));

    @ParameterizedTest(name = "head {0}, {1} heads over {2} KV heads, tile ''{3}''")
    @CsvSource({
            "64, 4, 4, ''",
            "64, 8, 2, ''",
            "48, 4, 4, ''",
            "48, 8, 2, ''",
            "8, 8, 4, ''",
            "32, 8, 4, ''",
            "64, 8, 2, 'rows=8,lanes=2,keys=16'",
            "48, 4, 4, 'rows=16,lanes=8,keys=16'",
            "8, 8, 4, 'rows=4,lanes=8,keys=64'"})
    void matchesAFloat64ReferenceAndTheThreePasses(int headSize, int nHeads, int nKvHeads, String tile) {
        ModelConfig c = new ModelConfig(headSize * nHeads, 16, 2, nHeads, nKvHeads, 7, CTX, 1e-5f, 10000f, false);
        Random random = new Random(31L * headSize + 7L * nHeads + nKvHeads + tile.hashCode());
        String before = System.getProperty(HandStep.ATTENTION_TILE_PROPERTY);
        System.setProperty(HandStep.ATTENTION_TILE_PROPERTY, tile);
        DeviceLlama2 device;
        try {
            device = new DeviceLlama2(randomWeights(c, random), OpenClTestSupport.device(), 96);
        } finally {
            if (before == null) {
                System.clearProperty(HandStep.ATTENTION_TILE_PROPERTY);
            } else {
                System.setProperty(HandStep.ATTENTION_TILE_PROPERTY, before);
            }
        }
        try (device) {
            assertEquals(Matmul.HAND, device.matmul(), "the tiled kernel runs on the hand step only");
            // Decode steps here run the unsplit kernel; its split build has SplitAttentionTest.
            device.attentionSplit(AttentionSplit.OFF);
            for (List<Entry> step : List.of(MIXED, DECODES)) {
                int[][] tables = layout(device, step, random);
                fill(device, device.k.q, random, 3); // large enough scores for peaked rows: the rescaling matters
                fill(device, device.k.kv, random);
                double[] expected = reference(device.k, c, step, tables);
                float[] tiled = run(device, step, Attention.TILED, random, true);
                long scoreRows = device.scoreRowBytes();
                if (step == MIXED) {
                    assertEquals(Float.BYTES, scoreRows, "no score rows on the device before a three-pass step");
                }
                float[] passes = run(device, step, Attention.PASSES, random, false);
                assertTrue(device.scoreRowBytes() >= (long) device.k.tokens * c.nHeads() * CTX * Float.BYTES,
                        "the score rows grew to the step: " + device.scoreRowBytes() + " bytes");
                String what = step == MIXED ? "mixed step" : "decode step";
                double errTiled = OpenClTestSupport.relativeError(tiled, expected, expected.length);
                double errPasses = OpenClTestSupport.relativeError(passes, expected, expected.length);
                assertTrue(errTiled <= TOLERANCE, what + ": tiled relative error " + errTiled);
                assertTrue(errPasses <= TOLERANCE, what + ": passes relative error " + errPasses);
            }
        }
    }

    @Test
    void autoTilesEveryStepButSparseOnes() {
        ModelConfig c = new ModelConfig(64 * 4, 16, 2, 4, 2, 7, CTX, 1e-5f, 10000f, false);
        Random random = new Random(5);
        try (DeviceLlama2 device = new DeviceLlama2(randomWeights(c, random), OpenClTestSupport.device(), 96)) {
            device.attention(Attention.AUTO);
            layout(device, MIXED, random);
            long before = device.tiledAttentionPasses();
            launchAttention(device, MIXED);
            assertEquals(before + 1, device.tiledAttentionPasses(), "a step with a 300-row entry is tiled");
            layout(device, DECODES, random);
            launchAttention(device, DECODES);
            assertEquals(before + 2, device.tiledAttentionPasses(), "a decode step is tiled too");

            // A sparse entry (a valid pattern: every query block sees every block up to its own): the passes,
            // whatever the mode.
            device.attention(Attention.TILED);
            layout(device, MIXED, random);
            int qBlocks = device.k.maxBlocksPerSeq;
            int rows = c.nLayers() * c.nHeads() * qBlocks;
            int[] indptr = new int[rows + 1];
            int[] indices = new int[rows * qBlocks];
            for (int r = 0; r < rows; r++) {
                int qb = r % qBlocks;
                indptr[r + 1] = indptr[r] + qb + 1;
                for (int kb = 0; kb <= qb; kb++) {
                    indices[indptr[r] + kb] = kb;
                }
            }
            device.putPatterns(indptr, indptr.length, indices, indptr[rows]);
            device.k.entryIndptr[2] = 0;
            device.k.entryIndices[2] = 0;
            device.putStepInputs();
            launchAttention(device, MIXED);
            assertEquals(before + 2, device.tiledAttentionPasses(), "a step with a sparse entry keeps the passes");
            device.k.entryIndptr[2] = -1;
            device.putStepInputs();
            launchAttention(device, DECODES.subList(0, 1));
            assertEquals(before + 3, device.tiledAttentionPasses(), "one query row, tiled");
        }
    }

    @Test
    void theRuleOnHostInputs() {
        int[] none = {-1, -1, -1};
        int[] seq = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2};
        assertEquals(8, Attention.maxQueriesPerEntry(seq.length, seq, 3));
        assertTrue(Attention.AUTO.tiledFor(64, seq.length, seq, 3, none));
        assertTrue(Attention.AUTO.tiledFor(64, 7, seq, 3, none), "auto tiles decode-sized entries too");
        assertFalse(Attention.PASSES.tiledFor(64, 7, seq, 3, none));
        assertTrue(Attention.TILED.tiledFor(64, 7, seq, 3, none));
        assertFalse(Attention.PASSES.tiledFor(64, seq.length, seq, 3, none));
        assertFalse(Attention.TILED.tiledFor(64, seq.length, seq, 3, new int[]{-1, 0, -1}), "sparse entry");
        assertFalse(Attention.TILED.tiledFor(6, seq.length, seq, 3, none), "head not a multiple of 4");
        int[] interleaved = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
        assertEquals(0, Attention.maxQueriesPerEntry(interleaved.length, interleaved, 2));
        assertFalse(Attention.TILED.tiledFor(64, interleaved.length, interleaved, 3, none), "rows not grouped");
        assertEquals(0, Attention.maxQueriesPerEntry(seq.length, seq, 2), "entry 2 beyond the step's entries");
        assertEquals(Attention.TILED, Attention.parse(" Tiled "));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Attention.parse("fused"));
        assertTrue(e.getMessage().contains(Attention.PROPERTY) && e.getMessage().contains("fused"), e.getMessage());
        HandStep.AttentionTile t = HandStep.AttentionTile.parse("rows=16, keys=64", 4);
        assertEquals(new HandStep.AttentionTile(4, HandStep.AttentionTile.DEFAULT_LANES, 64), t);
        e = assertThrows(IllegalArgumentException.class, () -> HandStep.AttentionTile.parse("lanes=3", 1));
        assertTrue(e.getMessage().contains("multiple of lanes"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> HandStep.AttentionTile.parse("cols=3", 1));
        assertTrue(e.getMessage().contains("cols"), e.getMessage());
    }

    /** The step's rows, positions, canvas lengths and block tables (random distinct pool blocks), sent. */
    static int[][] layout(DeviceLlama2 device, List<Entry> step, Random random) {
        Llama2Kernel k = device.k;
        int tokens = step.stream().mapToInt(Entry::rows).sum();
        device.ensureCapacity(tokens, step.size(), step.size());
        List<Integer> free = new ArrayList<>();
        for (int b = 0; b < device.maxBlocks(); b++) {
            free.add(b);
        }
        Collections.shuffle(free, random);
        int[][] tables = new int[step.size()][];
        int row = 0;
        for (int e = 0; e < step.size(); e++) {
            Entry en = step.get(e);
            for (int j = 0; j < en.rows(); j++, row++) {
                k.tokenPos[row] = en.firstPos() + j;
                k.tokenSeq[row] = e;
                k.tokenIds[row] = 0;
            }
            k.entryLen[e] = en.canvas() ? en.keys() : 0;
            k.entryIndptr[e] = -1;
            k.logitRow[e] = row - 1;
            tables[e] = new int[(en.keys() + BLOCK - 1) / BLOCK];
            for (int b = 0; b < tables[e].length; b++) {
                tables[e][b] = free.removeLast();
            }
            System.arraycopy(tables[e], 0, k.blockTable, e * k.maxBlocksPerSeq, tables[e].length);
        }
        device.putStepInputs();
        return tables;
    }

    static int maxLen(List<Entry> step) {
        return step.stream().mapToInt(Entry::keys).max().orElseThrow();
    }

    static void launchAttention(DeviceLlama2 device, List<Entry> step) {
        int tokens = step.stream().mapToInt(Entry::rows).sum();
        device.launchPasses(new int[]{OP_SCORES, OP_SOFTMAX, OP_ATTN_OUT}, new int[]{LAYER, LAYER, LAYER}, tokens,
                step.size(), maxLen(step));
        device.launcher().finish();
    }

    /** xb after the layer's attention in {@code mode}, from random garbage (so nothing stale can pass). */
    private static float[] run(DeviceLlama2 device, List<Entry> step, Attention mode, Random random, boolean tiled) {
        device.attention(mode);
        fill(device, device.k.xb, random);
        long before = device.tiledAttentionPasses();
        launchAttention(device, step);
        assertEquals(before + (tiled ? 1 : 0), device.tiledAttentionPasses(), mode + " ran the other kernels");
        device.launcher().get(device.k.xb);
        int tokens = step.stream().mapToInt(Entry::rows).sum();
        return Arrays.copyOf(device.k.xb, tokens * device.k.dim);
    }

    /** Attention of every row in float64 straight from the host copies of q and the paged KV. */
    static double[] reference(Llama2Kernel k, ModelConfig c, List<Entry> step, int[][] tables) {
        return reference(k, k.kv, c, step, tables);
    }

    /** As above with the pool's values from {@code kv} (a host copy of a pool that has no Java mirror). */
    static double[] reference(Llama2Kernel k, float[] kv, ModelConfig c, List<Entry> step, int[][] tables) {
        int hs = c.headSize();
        int dim = c.dim();
        int group = c.nHeads() / c.nKvHeads();
        int tokens = step.stream().mapToInt(Entry::rows).sum();
        double[] out = new double[tokens * dim];
        int t = 0;
        for (int e = 0; e < step.size(); e++) {
            Entry en = step.get(e);
            for (int j = 0; j < en.rows(); j++, t++) {
                int last = en.canvas() ? en.keys() - 1 : en.firstPos() + j;
                for (int h = 0; h < c.nHeads(); h++) {
                    int kvCol = (h / group) * hs;
                    double[] p = new double[last + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int key = 0; key <= last; key++) {
                        int ko = kvIndex(k, c, tables[e], key, false, kvCol);
                        double s = 0;
                        for (int d = 0; d < hs; d++) {
                            s += (double) k.q[t * dim + h * hs + d] * kv[ko + d];
                        }
                        p[key] = s / Math.sqrt(hs);
                        max = Math.max(max, p[key]);
                    }
                    double sum = 0;
                    for (int key = 0; key <= last; key++) {
                        p[key] = Math.exp(p[key] - max);
                        sum += p[key];
                    }
                    for (int key = 0; key <= last; key++) {
                        int vo = kvIndex(k, c, tables[e], key, true, kvCol);
                        for (int d = 0; d < hs; d++) {
                            out[t * dim + h * hs + d] += p[key] / sum * kv[vo + d];
                        }
                    }
                }
            }
        }
        return out;
    }

    static int kvIndex(Llama2Kernel k, ModelConfig c, int[] table, int pos, boolean value, int kvCol) {
        return table[pos / BLOCK] * k.blockFloats + ((LAYER * 2 + (value ? 1 : 0)) * BLOCK + pos % BLOCK) * c.kvDim()
                + kvCol;
    }

    static void fill(DeviceLlama2 device, float[] a, Random random) {
        fill(device, a, random, 1);
    }

    static void fill(DeviceLlama2 device, float[] a, Random random, float scale) {
        for (int i = 0; i < a.length; i++) {
            a[i] = (random.nextFloat() * 2 - 1) * scale;
        }
        device.launcher().put(a);
    }

    static Llama2Weights randomWeights(ModelConfig c, Random random) {
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        int layers = c.nLayers();
        return new Llama2Weights(c, random(c.vocabSize() * dim, random), random(layers, dim, random),
                random(layers, dim * dim, random), random(layers, kvDim * dim, random),
                random(layers, kvDim * dim, random), random(layers, dim * dim, random), random(layers, dim, random),
                random(layers, hidden * dim, random), random(layers, dim * hidden, random),
                random(layers, hidden * dim, random), random(dim, random), random(c.vocabSize() * dim, random));
    }

    private static float[] random(int n, Random random) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = random.nextFloat() * 2 - 1;
        }
        return a;
    }

    private static float[][] random(int layers, int n, Random random) {
        float[][] a = new float[layers][];
        for (int l = 0; l < layers; l++) {
            a[l] = random(n, random);
        }
        return a;
    }

    /** xb after the layer's attention of the step as laid out, from random garbage (so nothing stale can pass). */
    static float[] xbAfterAttention(DeviceLlama2 device, List<Entry> step, Random random) {
        fill(device, device.k.xb, random);
        launchAttention(device, step);
        device.launcher().get(device.k.xb);
        int tokens = step.stream().mapToInt(Entry::rows).sum();
        return java.util.Arrays.copyOf(device.k.xb, tokens * device.k.dim);
    }
}

package io.stepstream.gpu;

import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Models;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.OpenClTestSupport.greedyBatch;
import static io.stepstream.gpu.TiledAttentionTest.CTX;
import static io.stepstream.gpu.TiledAttentionTest.xbAfterAttention;
import static io.stepstream.gpu.TiledAttentionTest.Entry;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The split-over-keys (flash-decoding) build of attn_tiled plus attn_combine against a float64 reference of attention
 * on fresh random q and paged K/V behind shuffled block tables: every context 1..300 (most not a multiple of the key
 * tile) as decode rows of steps of 1..5 entries with mixed lengths, chunks forced to 1, 2, 3 and 7 (7 leaves empty
 * chunks at short contexts), GQA groups of 1, 2 and 4, heads of 8, 48 and 64, a split tile of two tokens a group
 * (small causal prefill chunks). Each split result is bitwise the same when run again and close to the unsplit
 * kernel. Plus the host rule, the property, the steps that must not split, and a whole-model greedy decode equal to
 * the CPU model's.
 *
 * <p>Tolerance: 1e-5 relative, to float64 and to the unsplit kernel (PoCL measured at most 1.1e-6 and 8.8e-7 over
 * these 2,000 steps). Each chunk's (m, l, acc) is the unsplit kernel's float32 arithmetic over fewer keys; the
 * combine adds one exp, one multiply-add per chunk (at most 7 here) and a division, a few ulps of each output, so
 * the bound is the unsplit kernel's (float32 dot products of 64 and sums of <= 300 terms: ~1e-6) plus ~S ulps.
 */
class SplitAttentionTest {
    private static final double TOLERANCE = 1e-5;
    /** Split against the unsplit kernel: both float32, summed in different orders. */
    private static final double VS_UNSPLIT = 1e-5;

    @ParameterizedTest(name = "head {0}, {1} heads over {2} KV heads, split tile ''{3}''")
    @CsvSource({
            "64, 8, 2, ''",
            "64, 4, 4, ''",
            "48, 8, 2, ''",
            "8, 8, 4, ''",
            "64, 8, 2, 'rows=8,lanes=8,keys=16'"})
    void splitStepsMatchAFloat64ReferenceAtEveryContext(int headSize, int nHeads, int nKvHeads, String splitTile) {
        ModelConfig c = new ModelConfig(headSize * nHeads, 16, 2, nHeads, nKvHeads, 7, CTX, 1e-5f, 10000f, false);
        Random random = new Random(17L * headSize + 5L * nHeads + nKvHeads + splitTile.hashCode());
        DeviceLlama2 device = OpenClTestSupport.withProperty(HandStep.ATTENTION_SPLIT_TILE_PROPERTY, splitTile,
                () -> new DeviceLlama2(TiledAttentionTest.randomWeights(c, random), OpenClTestSupport.device(), 96));
        try (device) {
            HandStep step = device.handStep();
            int tokensPerGroup = step.splitTile().tokens();
            device.attention(Attention.AUTO);
            device.decodeAttention(DecodeAttention.TILED); // this test is attn_tiled's; attn_decode has its own
            for (int chunks : new int[]{1, 2, 3, 7}) {
                device.attentionSplit(new AttentionSplit(chunks));
                List<List<Entry>> steps = decodeSteps(random, tokensPerGroup);
                for (int s = 0; s < steps.size(); s++) {
                    List<Entry> entries = steps.get(s);
                    int[][] tables = TiledAttentionTest.layout(device, entries, random);
                    TiledAttentionTest.fill(device, device.k.q, random, 3);
                    TiledAttentionTest.fill(device, device.k.kv, random);
                    double[] expected = TiledAttentionTest.reference(device.k, c, entries, tables);
                    long splitBefore = step.splitEnqueued();
                    float[] split = xbAfterAttention(device, entries, random);
                    assertEquals(splitBefore + 1, step.splitEnqueued(), "the split kernel ran");
                    String what = chunks + " chunks, contexts " + entries;
                    double err = OpenClTestSupport.relativeError(split, expected, expected.length);
                    assertTrue(err <= TOLERANCE, what + ": relative error " + err);
                    assertArrayEquals(split, xbAfterAttention(device, entries, random), what + ": not the same when run again");
                    if (s % 8 == 0) {
                        device.attentionSplit(AttentionSplit.OFF);
                        float[] unsplit = xbAfterAttention(device, entries, random);
                        assertEquals(splitBefore + 2, step.splitEnqueued(), "off ran the split kernel");
                        double[] u = new double[unsplit.length];
                        for (int i = 0; i < u.length; i++) {
                            u[i] = unsplit[i];
                        }
                        double vs = OpenClTestSupport.relativeError(split, u, u.length);
                        assertTrue(vs <= VS_UNSPLIT, what + ": against the unsplit kernel " + vs);
                        device.attentionSplit(new AttentionSplit(chunks));
                    }
                }
                assertEquals(chunks, step.mostChunks(), "the fixed chunk count was used");
            }
        }
    }

    /**
     * The chunks merged inside attn_tiled by the last chunk group ({@value HandStep#ATTENTION_COMBINE_PROPERTY} fused,
     * the default) against attn_combine after it (kernel): the same expressions in the same order, so bitwise equal,
     * on the same random steps (two models fed from equally seeded generators).
     */
    @ParameterizedTest(name = "head {0}, {1} heads over {2} KV heads")
    @CsvSource({"64, 8, 2", "48, 8, 8", "8, 8, 4"})
    void chunksMergedByTheLastGroupAreBitwiseTheCombineKernels(int headSize, int nHeads, int nKvHeads) {
        ModelConfig c = new ModelConfig(headSize * nHeads, 16, 2, nHeads, nKvHeads, 7, CTX, 1e-5f, 10000f, false);
        var weights = TiledAttentionTest.randomWeights(c, new Random(3L * headSize + nKvHeads));
        DeviceLlama2 fused = OpenClTestSupport.withProperty(HandStep.ATTENTION_COMBINE_PROPERTY, "fused",
                () -> new DeviceLlama2(weights, OpenClTestSupport.device(), 96));
        DeviceLlama2 kernel = OpenClTestSupport.withProperty(HandStep.ATTENTION_COMBINE_PROPERTY, "kernel",
                () -> new DeviceLlama2(weights, OpenClTestSupport.device(), 96));
        try (fused; kernel) {
            assertTrue(fused.handStep().fusedCombine());
            assertTrue(!kernel.handStep().fusedCombine());
            for (int chunks : new int[]{2, 3, 7}) {
                long seed = 1000L * chunks + headSize;
                List<float[]> outputs = new ArrayList<>();
                for (DeviceLlama2 device : List.of(fused, kernel)) {
                    Random random = new Random(seed);
                    device.attention(Attention.AUTO);
                    device.attentionSplit(new AttentionSplit(chunks));
                    List<float[]> runs = new ArrayList<>();
                    for (List<Entry> entries : decodeSteps(random, device.handStep().splitTile().tokens())) {
                        TiledAttentionTest.layout(device, entries, random);
                        TiledAttentionTest.fill(device, device.k.q, random, 3);
                        TiledAttentionTest.fill(device, device.k.kv, random);
                        runs.add(xbAfterAttention(device, entries, random));
                    }
                    int total = runs.stream().mapToInt(a -> a.length).sum();
                    float[] joined = new float[total];
                    int at = 0;
                    for (float[] a : runs) {
                        System.arraycopy(a, 0, joined, at, a.length);
                        at += a.length;
                    }
                    outputs.add(joined);
                }
                assertArrayEquals(outputs.get(1), outputs.get(0), chunks + " chunks: fused merge differs from attn_combine");
            }
        }
    }

    /**
     * Every context 1..300 once, shuffled, as steps of 1, 2, 3, 4, 5, 1, ... entries; with two tokens a group, every
     * other entry of two keys or more has two causal rows (a small prefill chunk) instead of one.
     */
    private static List<List<Entry>> decodeSteps(Random random, int tokensPerGroup) {
        List<Integer> contexts = new ArrayList<>();
        for (int i = 1; i <= 300; i++) {
            contexts.add(i);
        }
        Collections.shuffle(contexts, random);
        List<List<Entry>> steps = new ArrayList<>();
        int next = 0;
        for (int batch = 1; next < contexts.size(); batch = batch % 5 + 1) {
            List<Entry> step = new ArrayList<>();
            for (int i = 0; i < batch && next < contexts.size(); i++, next++) {
                int keys = contexts.get(next);
                int rows = tokensPerGroup > 1 && keys > 1 && next % 2 == 0 ? 2 : 1;
                step.add(Entry.causal(keys, rows));
            }
            steps.add(step);
        }
        return steps;
    }

    @Test
    void onlyStepsOfFewRowsAnEntrySplitAndSparseOnesKeepThePasses() {
        ModelConfig c = new ModelConfig(64 * 4, 16, 2, 4, 2, 7, CTX, 1e-5f, 10000f, false);
        Random random = new Random(9);
        try (DeviceLlama2 device = new DeviceLlama2(TiledAttentionTest.randomWeights(c, random),
                OpenClTestSupport.device(), 96)) {
            HandStep step = device.handStep();
            assertEquals(AttentionSplit.AUTO, step.split(), "auto by default");
            device.attentionSplit(new AttentionSplit(3));
            List<Entry> decodes = List.of(Entry.causal(40, 1), Entry.causal(200, 1));
            TiledAttentionTest.layout(device, decodes, random);
            TiledAttentionTest.launchAttention(device, decodes);
            assertEquals(1, step.splitEnqueued(), "a decode step splits");
            assertEquals(3, step.mostChunks());
            List<Entry> chunk = List.of(Entry.causal(40, 1), Entry.causal(200, 2));
            TiledAttentionTest.layout(device, chunk, random);
            long tiled = device.tiledAttentionPasses();
            TiledAttentionTest.launchAttention(device, chunk);
            assertEquals(1, step.splitEnqueued(), "two rows of an entry: the unsplit kernel (one token a group)");
            assertEquals(tiled + 1, device.tiledAttentionPasses());
            device.attention(Attention.PASSES);
            TiledAttentionTest.layout(device, decodes, random);
            TiledAttentionTest.launchAttention(device, decodes);
            assertEquals(1, step.splitEnqueued(), "passes mode never splits");
            device.attention(Attention.AUTO);
            device.attentionSplit(AttentionSplit.OFF);
            TiledAttentionTest.launchAttention(device, decodes);
            assertEquals(1, step.splitEnqueued(), "off never splits");
        }
        // Built with the split off: no split program, and asking for one later is a clear error.
        DeviceLlama2 off = OpenClTestSupport.withProperty(AttentionSplit.PROPERTY, "off",
                () -> new DeviceLlama2(TiledAttentionTest.randomWeights(c, random), OpenClTestSupport.device(), 96));
        try (off) {
            assertEquals(AttentionSplit.OFF, off.handStep().split());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> off.attentionSplit(AttentionSplit.AUTO));
            assertTrue(e.getMessage().contains(AttentionSplit.PROPERTY), e.getMessage());
        }
    }

    @Test
    void theHostRuleAndTheProperty() {
        // 1.1B at batch 1 (4 KV heads) on 132 compute units, 144 keys: one key tile a chunk, 5 chunks.
        assertEquals(new AttentionSplit.Plan(5, 32), AttentionSplit.AUTO.plan(4, 144, 32, 132));
        // Batch 32: 128 groups already; 3 chunks reach 2 a compute unit.
        assertEquals(new AttentionSplit.Plan(3, 64), AttentionSplit.AUTO.plan(128, 144, 32, 132));
        // A 4k context at batch 1: 66 chunks wanted, 2 tiles each, 64 chunks cover the 128 tiles.
        assertEquals(new AttentionSplit.Plan(64, 64), AttentionSplit.AUTO.plan(4, 4096, 32, 132));
        assertEquals(new AttentionSplit.Plan(1, 32), AttentionSplit.AUTO.plan(4, 1, 32, 132), "one key");
        assertEquals(new AttentionSplit.Plan(1, 320), AttentionSplit.AUTO.plan(600, 300, 32, 132), "enough groups");
        // Capped at MAX_CHUNKS: 3125 tiles over 256 chunks take 13 tiles a chunk, 241 chunks.
        assertEquals(new AttentionSplit.Plan(241, 13 * 32), AttentionSplit.AUTO.plan(1, 100_000, 32, 100_000));
        // Fixed: exactly N chunks of whole tiles covering the longest row (trailing ones may be empty).
        assertEquals(new AttentionSplit.Plan(7, 32), new AttentionSplit(7).plan(4, 1, 32, 132));
        assertEquals(new AttentionSplit.Plan(3, 128), new AttentionSplit(3).plan(4, 300, 32, 1));
        assertEquals(new AttentionSplit.Plan(1, 320), new AttentionSplit(1).plan(4, 300, 32, 132));
        for (int keys = 1; keys <= 700; keys += 13) {
            for (int groups : new int[]{1, 4, 40, 400}) {
                AttentionSplit.Plan p = AttentionSplit.AUTO.plan(groups, keys, 32, 132);
                assertTrue(p.chunkKeys() % 32 == 0 && (long) p.chunks() * p.chunkKeys() >= keys
                        && (long) (p.chunks() - 1) * p.chunkKeys() < keys, keys + " keys, " + groups + ": " + p);
            }
        }
        assertThrows(IllegalStateException.class, () -> AttentionSplit.OFF.plan(4, 10, 32, 1));

        assertEquals(AttentionSplit.AUTO, AttentionSplit.parse(" Auto "));
        assertEquals(AttentionSplit.OFF, AttentionSplit.parse("OFF"));
        assertEquals(new AttentionSplit(7), AttentionSplit.parse("7"));
        for (String bad : new String[]{"0", "-2", "x", "", "1000"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AttentionSplit.parse(bad));
            assertTrue(e.getMessage().contains(AttentionSplit.PROPERTY) && e.getMessage().contains("'" + bad + "'"),
                    e.getMessage());
        }
        // The split tile: one token a group, lanes up to ~128 items.
        assertEquals(new HandStep.AttentionTile(1, 16, 32), HandStep.AttentionTile.parseSplit("", 8));
        assertEquals(new HandStep.AttentionTile(1, 32, 32), HandStep.AttentionTile.parseSplit("", 1));
        assertEquals(new HandStep.AttentionTile(2, 16, 16), HandStep.AttentionTile.parseSplit("rows=8,keys=16", 4));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> HandStep.AttentionTile.parseSplit("lanes=3", 2));
        assertTrue(e.getMessage().contains(HandStep.ATTENTION_SPLIT_TILE_PROPERTY), e.getMessage());
    }

    /**
     * stories260K (head 8, kvGroup 2) with the split forced to 3 chunks through the property: three sequences of
     * different prompt lengths prefilled together, then decoded together greedily for 40 steps; each one's tokens
     * equal the CPU model's for that sequence alone.
     */
    @Test
    void greedyDecodeWithTheSplitEqualsTheCpuModel() {
        int[][] prompts = {{1, 403, 407}, {1, 200}, {1, 50, 60, 70, 80, 90, 100}};
        int steps = 40;
        OpenClLlama2Model gpu = OpenClTestSupport.withProperty(AttentionSplit.PROPERTY, "3",
                () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 64,
                        TensorType.F32, Dispatch.DIRECT));
        try (gpu; Model cpu = Models.load(Models.DEFAULT_MODEL)) {
            List<List<Integer>> got = greedyBatch(gpu, prompts, steps);
            assertTrue(gpu.splitAttentionPasses() >= (long) steps * gpu.config().nLayers(),
                    "decode steps split: " + gpu.splitAttentionPasses());
            assertEquals(3, gpu.attentionMostChunks());
            for (int i = 0; i < prompts.length; i++) {
                assertEquals(greedyBatch(cpu, new int[][]{prompts[i]}, steps).getFirst(), got.get(i), "sequence " + i);
            }
        }
    }
}

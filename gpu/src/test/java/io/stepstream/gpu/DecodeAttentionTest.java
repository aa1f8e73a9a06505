package io.stepstream.gpu;

import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.llama.LlamaLoader;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.bench.SyntheticLlama;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.OpenClTestSupport.greedyBatch;
import static io.stepstream.gpu.TiledAttentionTest.Entry;
import static io.stepstream.gpu.TiledAttentionTest.xbAfterAttention;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * step.cl's attn_decode (decode steps: one query row an entry) against a float64 reference of attention on fresh
 * random q and paged K/V behind shuffled block tables (blocks scattered over the pool): contexts 1, 15, 16, 17, 100,
 * 300 and 2100 (around and between the 16-position blocks and the kernel's key tiles) plus random ones, as steps of
 * 1..5 entries with mixed lengths, chunks forced to 1, 2, 3 and 7 and auto, KV groups of 1, 2 and 8, heads of 64,
 * 128 and 48 (head / 4 = 12 float4s: lanes 4, three float4s a lane; or lanes 8 with some idle) and 8, default
 * tiles and two set by the property. Each result is bitwise the same when run
 * again, bitwise the same with the chunks merged by attn_combine instead of the last chunk group, and close to
 * attn_tiled's split build on the same step. Plus the selection rule, the tile defaults, the property errors and a
 * whole-model greedy decode of a random-weight MHA model (head 128) equal to the CPU model's.
 *
 * <p>Tolerance: 1e-5 relative (of the whole output, as the other attention tests), to float64 and to attn_tiled.
 * Each score is float32 partial dot products of head / lanes terms summed over the lanes; the softmax and value sums
 * run over at most 2,100 keys split over slots (per-slot running sums, merged in slot order) and chunks, a few ulps
 * per term. PoCL measured at most 6.5e-7 to float64 and 1.8e-6 to attn_tiled (whose longer serial sums are the less
 * exact of the two at 2,100 keys) over these configurations.
 */
class DecodeAttentionTest {
    private static final double TOLERANCE = 1e-5;
    private static final double VS_TILED = 1e-5;
    private static final int CTX = 2112;
    private static final int[] CONTEXTS = {1, 15, 16, 17, 100, 300, 2100};

    @ParameterizedTest(name = "head {0}, {1} heads over {2} KV heads, tile ''{3}''")
    @CsvSource({
            "128, 2, 2, ''",
            "64, 4, 4, ''",
            "64, 8, 4, ''",
            "64, 8, 1, ''",
            "128, 4, 2, ''",
            "48, 4, 4, ''",
            "8, 8, 4, ''",
            "48, 4, 4, 'lanes=8,unroll=3'",
            "128, 4, 2, 'wg=64,lanes=8,unroll=1,groups=3'"})
    void decodeStepsMatchAFloat64ReferenceAndTheTiledKernel(int headSize, int nHeads, int nKvHeads, String tile) {
        ModelConfig c = new ModelConfig(headSize * nHeads, 16, 2, nHeads, nKvHeads, 7, CTX, 1e-5f, 10000f, false);
        Random random = new Random(13L * headSize + 3L * nHeads + nKvHeads + tile.hashCode());
        Llama2Weights weights = TiledAttentionTest.randomWeights(c, random);
        // Two models on the same weights: the chunks merged by the last chunk group (fused, the default) and by
        // attn_combine; fed the same steps, their results must be the same bits (merge_chunks either way).
        DeviceLlama2 fused = OpenClTestSupport.withProperty(DecodeAttention.TILE_PROPERTY, tile,
                () -> OpenClTestSupport.withProperty(HandStep.ATTENTION_COMBINE_PROPERTY, "fused",
                        () -> new DeviceLlama2(weights, OpenClTestSupport.device(), 700)));
        DeviceLlama2 kernel = OpenClTestSupport.withProperty(DecodeAttention.TILE_PROPERTY, tile,
                () -> OpenClTestSupport.withProperty(HandStep.ATTENTION_COMBINE_PROPERTY, "kernel",
                        () -> new DeviceLlama2(weights, OpenClTestSupport.device(), 700)));
        try (fused; kernel) {
            HandStep step = fused.handStep();
            assertTrue(step.decodeAvailable(), "attn_decode built for head " + headSize + ", tile "
                    + step.decodeTile().label());
            double worst = 0;
            double worstVsTiled = 0;
            for (DeviceLlama2 d : List.of(fused, kernel)) {
                d.attention(Attention.AUTO);
                d.decodeAttention(DecodeAttention.DECODE);
            }
            for (AttentionSplit split : List.of(new AttentionSplit(1), new AttentionSplit(2), new AttentionSplit(3),
                    new AttentionSplit(7), AttentionSplit.AUTO)) {
                fused.attentionSplit(split);
                kernel.attentionSplit(split);
                List<List<Entry>> steps = decodeSteps(random);
                for (int s = 0; s < steps.size(); s++) {
                    List<Entry> entries = steps.get(s);
                    String what = split.label() + " chunks, contexts " + entries;
                    long decodeBefore = fused.decodeAttentionPasses();
                    Checked checked = againstFloat64(fused, c, entries, random, what);
                    float[] got = checked.xb();
                    worst = Math.max(worst, checked.error());
                    assertArrayEquals(got, xbAfterAttention(fused, entries, random), what + ": not the same when run again");

                    // The same inputs on the attn_combine model.
                    copyStep(fused, kernel, entries);
                    assertArrayEquals(got, xbAfterAttention(kernel, entries, random), what + ": attn_combine's merge differs");

                    // attn_tiled's split build on the same step, same chunk mode.
                    fused.decodeAttention(DecodeAttention.TILED);
                    float[] tiled = xbAfterAttention(fused, entries, random);
                    assertEquals(decodeBefore + 2, fused.decodeAttentionPasses(), "tiled ran attn_decode");
                    fused.decodeAttention(DecodeAttention.DECODE);
                    double[] t = new double[tiled.length];
                    for (int i = 0; i < t.length; i++) {
                        t[i] = tiled[i];
                    }
                    double vs = OpenClTestSupport.relativeError(got, t, t.length);
                    worstVsTiled = Math.max(worstVsTiled, vs);
                    assertTrue(vs <= VS_TILED, what + ": against attn_tiled " + vs);
                }
                if (split.chunks() > 0) {
                    assertEquals(split.chunks(), step.mostChunks(), "the fixed chunk count was used");
                }
            }
            System.out.printf("attn_decode head %d, kvGroup %d, tile %s: worst relative error %.3g vs float64,"
                    + " %.3g vs attn_tiled%n", headSize, nHeads / nKvHeads, step.decodeTile().label(), worst,
                    worstVsTiled);
        }
    }

    /**
     * The named contexts and 8 random ones up to 2,100, shuffled, as steps of 1, 2, 3, 4, 5, 1, ... entries of one
     * decode row each.
     */
    private static List<List<Entry>> decodeSteps(Random random) {
        List<Integer> contexts = new ArrayList<>();
        for (int n : CONTEXTS) {
            contexts.add(n);
        }
        for (int i = 0; i < 8; i++) {
            contexts.add(1 + random.nextInt(2100));
        }
        Collections.shuffle(contexts, random);
        List<List<Entry>> steps = new ArrayList<>();
        int next = 0;
        for (int batch = 1; next < contexts.size(); batch = batch % 5 + 1) {
            List<Entry> step = new ArrayList<>();
            for (int i = 0; i < batch && next < contexts.size(); i++, next++) {
                step.add(Entry.causal(contexts.get(next), 1));
            }
            steps.add(step);
        }
        return steps;
    }

    /** The step inputs, q and KV of {@code from} sent to {@code to} (same shapes). */
    private static void copyStep(DeviceLlama2 from, DeviceLlama2 to, List<Entry> entries) {
        int tokens = entries.size();
        to.ensureCapacity(tokens, entries.size(), entries.size());
        Llama2Kernel a = from.k;
        Llama2Kernel b = to.k;
        System.arraycopy(a.tokenPos, 0, b.tokenPos, 0, tokens);
        System.arraycopy(a.tokenSeq, 0, b.tokenSeq, 0, tokens);
        System.arraycopy(a.tokenIds, 0, b.tokenIds, 0, tokens);
        System.arraycopy(a.entryLen, 0, b.entryLen, 0, entries.size());
        System.arraycopy(a.entryIndptr, 0, b.entryIndptr, 0, entries.size());
        System.arraycopy(a.logitRow, 0, b.logitRow, 0, entries.size());
        System.arraycopy(a.blockTable, 0, b.blockTable, 0, a.blockTable.length);
        to.putStepInputs();
        System.arraycopy(a.q, 0, b.q, 0, a.q.length);
        System.arraycopy(a.kv, 0, b.kv, 0, a.kv.length);
        to.launcher().put(b.q);
        to.launcher().put(b.kv);
    }

    /**
     * Steps where some entries have no row (fewer rows than entries): attn_decode then finds each entry's row by
     * search instead of taking row e, and an entry without a row writes nothing.
     */
    @Test
    void entriesWithoutARowAreSkipped() {
        ModelConfig c = new ModelConfig(64 * 4, 16, 2, 4, 2, 7, CTX, 1e-5f, 10000f, false);
        Random random = new Random(77);
        try (DeviceLlama2 device = new DeviceLlama2(TiledAttentionTest.randomWeights(c, random),
                OpenClTestSupport.device(), 300)) {
            device.attention(Attention.AUTO);
            device.decodeAttention(DecodeAttention.DECODE);
            List<List<Entry>> steps = List.of(
                    List.of(Entry.causal(300, 0), Entry.causal(100, 1)),
                    List.of(Entry.causal(17, 1), Entry.causal(2100, 0), Entry.causal(2100, 1), Entry.causal(64, 0)),
                    List.of(Entry.causal(1, 1), Entry.causal(5, 0), Entry.causal(16, 0), Entry.causal(1000, 1)));
            for (AttentionSplit split : List.of(new AttentionSplit(1), new AttentionSplit(3), AttentionSplit.AUTO)) {
                device.attentionSplit(split);
                for (List<Entry> entries : steps) {
                    againstFloat64(device, c, entries, random, split.label() + " chunks, " + entries);
                }
            }
        }
    }

    @Test
    void theRuleChoosesDecodeForSmallKvGroupsAndLongContexts() {
        ModelConfig c = new ModelConfig(64 * 4, 16, 2, 4, 2, 7, 320, 1e-5f, 10000f, false);
        Random random = new Random(21);
        DeviceLlama2 device = OpenClTestSupport.withProperty(HandStep.ATTENTION_SPLIT_TILE_PROPERTY, "rows=4",
                () -> new DeviceLlama2(TiledAttentionTest.randomWeights(c, random), OpenClTestSupport.device(), 96));
        try (device) {
            HandStep step = device.handStep();
            assertEquals(DecodeAttention.AUTO, step.decodeAttention(), "auto by default");
            assertEquals(2, step.splitTile().tokens(), "two tokens a split group");
            List<Entry> longOnes = List.of(Entry.causal(40, 1), Entry.causal(200, 1));
            TiledAttentionTest.layout(device, longOnes, random);
            TiledAttentionTest.launchAttention(device, longOnes);
            assertEquals(1, device.decodeAttentionPasses(), "kvGroup 2, 200 keys: attn_decode");
            List<Entry> shortOnes = List.of(Entry.causal(40, 1), Entry.causal(63, 1));
            TiledAttentionTest.layout(device, shortOnes, random);
            long split = device.splitAttentionPasses();
            TiledAttentionTest.launchAttention(device, shortOnes);
            assertEquals(1, device.decodeAttentionPasses(), "63 keys: attn_tiled's split build");
            assertEquals(split + 1, device.splitAttentionPasses());
            List<Entry> twoRows = List.of(Entry.causal(40, 1), Entry.causal(200, 2));
            TiledAttentionTest.layout(device, twoRows, random);
            device.decodeAttention(DecodeAttention.DECODE);
            TiledAttentionTest.launchAttention(device, twoRows);
            assertEquals(1, device.decodeAttentionPasses(), "two rows of an entry: split, never attn_decode");
            assertEquals(split + 2, device.splitAttentionPasses());
            TiledAttentionTest.layout(device, shortOnes, random);
            TiledAttentionTest.launchAttention(device, shortOnes);
            assertEquals(2, device.decodeAttentionPasses(), "decode: any context");
            device.decodeAttention(DecodeAttention.TILED);
            TiledAttentionTest.layout(device, longOnes, random);
            TiledAttentionTest.launchAttention(device, longOnes);
            assertEquals(2, device.decodeAttentionPasses(), "tiled: never");
            device.decodeAttention(DecodeAttention.DECODE);
            device.attentionSplit(AttentionSplit.OFF);
            TiledAttentionTest.launchAttention(device, longOnes);
            assertEquals(2, device.decodeAttentionPasses(), "split off: never");
        }
        // Built with tiled: no attn_decode, and asking for it later is a clear error.
        DeviceLlama2 tiled = OpenClTestSupport.withProperty(DecodeAttention.PROPERTY, "tiled",
                () -> new DeviceLlama2(TiledAttentionTest.randomWeights(c, random), OpenClTestSupport.device(), 96));
        try (tiled) {
            assertFalse(tiled.handStep().decodeAvailable());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> tiled.decodeAttention(DecodeAttention.AUTO));
            assertTrue(e.getMessage().contains(DecodeAttention.PROPERTY), e.getMessage());
        }

        assertTrue(DecodeAttention.AUTO.decodeFor(1, 64));
        assertTrue(DecodeAttention.AUTO.decodeFor(4, 5000));
        assertFalse(DecodeAttention.AUTO.decodeFor(1, 63));
        assertFalse(DecodeAttention.AUTO.decodeFor(8, 5000), "GQA 8 keeps attn_tiled under auto");
        assertTrue(DecodeAttention.DECODE.decodeFor(8, 1));
        assertFalse(DecodeAttention.TILED.decodeFor(1, 5000));
        assertEquals(DecodeAttention.DECODE, DecodeAttention.parse(" Decode "));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DecodeAttention.parse("x"));
        assertTrue(e.getMessage().contains(DecodeAttention.PROPERTY) && e.getMessage().contains("'x'"), e.getMessage());
    }

    @Test
    void tileDefaultsAndChunkRule() {
        // Llama-2-7B: head 128, MHA: 32 lanes of one float4, 4 slots of 8 keys, 32-key tiles.
        DecodeAttention.Tile t = DecodeAttention.Tile.parse("", 128, 1);
        assertEquals(new DecodeAttention.Tile(128, 32, 8, 8), t);
        assertEquals(32, t.keys());
        // 1.1B: head 64, kvGroup 8: 16 lanes, unroll halved for the 8 rows' scores.
        assertEquals(new DecodeAttention.Tile(128, 16, 4, 8), DecodeAttention.Tile.parse("", 64, 8));
        // Head 48: 12 float4s, 4 lanes of 3 float4s.
        assertEquals(new DecodeAttention.Tile(128, 4, 2, 8), DecodeAttention.Tile.parse("", 48, 1));
        assertEquals(new DecodeAttention.Tile(256, 8, 2, 16),
                DecodeAttention.Tile.parse("wg=256, lanes=8, unroll=2, groups=16", 128, 1));
        for (String bad : new String[]{"lanes=3", "wg=100,lanes=32", "unroll=0", "rows=2", "wg"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> DecodeAttention.Tile.parse(bad, 128, 1));
            assertTrue(e.getMessage().contains(DecodeAttention.TILE_PROPERTY), bad + ": " + e.getMessage());
        }
        // Llama-2-7B batch 1 at 2,080 keys on 132 compute units: 32 groups, 8 a unit wanted = 33 chunks of 2 tiles.
        assertEquals(new AttentionSplit.Plan(33, 64), AttentionSplit.AUTO.plan(32, 2080, 32, 132, 8));
        // Batch 8: 256 groups, 5 chunks of 13 tiles.
        assertEquals(new AttentionSplit.Plan(5, 13 * 32), AttentionSplit.AUTO.plan(256, 2080, 32, 132, 8));
        // The 4-argument plan keeps its 2 a unit.
        assertEquals(AttentionSplit.AUTO.plan(32, 2080, 32, 132, AttentionSplit.GROUPS_PER_COMPUTE_UNIT),
                AttentionSplit.AUTO.plan(32, 2080, 32, 132));
    }

    /**
     * A random-weight MHA model (2 heads of 128, 2 layers) with attn_decode forced: three sequences of different
     * prompt lengths prefilled together, then decoded together greedily for 40 steps; each one's tokens equal the
     * CPU model's for that sequence alone, and every decode step's attention ran attn_decode.
     */
    @Test
    void greedyDecodeOfAnMhaModelEqualsTheCpuModel() {
        ModelConfig c = new ModelConfig(256, 512, 2, 2, 2, 96, 256, 1e-5f, 10000f, false);
        Llama2Weights w = SyntheticLlama.weights(c, 41);
        Llama2Tokenizer tok = SyntheticLlama.tokenizer(c.vocabSize());
        Random random = new Random(5);
        int[][] prompts = new int[3][];
        int[] lengths = {3, 30, 75};
        for (int i = 0; i < prompts.length; i++) {
            prompts[i] = new int[lengths[i]];
            prompts[i][0] = 1;
            for (int j = 1; j < lengths[i]; j++) {
                prompts[i][j] = 3 + random.nextInt(c.vocabSize() - 3);
            }
        }
        int steps = 40;
        OpenClLlama2Model gpu = OpenClTestSupport.withProperty(DecodeAttention.PROPERTY, "decode",
                () -> new OpenClLlama2Model("gpu", w, tok, OpenClTestSupport.device(), 64, TensorType.F32,
                        Dispatch.DIRECT, Matmul.HAND));
        try (gpu; Model cpu = LlamaLoader.llama2c("cpu", w, tok, ModelOptions.defaults().withKvBlocks(64))) {
            List<List<Integer>> got = greedyBatch(gpu, prompts, steps);
            assertEquals((long) steps * c.nLayers(), gpu.decodeAttentionPasses(), "every decode step ran attn_decode");
            for (int i = 0; i < prompts.length; i++) {
                assertEquals(greedyBatch(cpu, new int[][]{prompts[i]}, steps).getFirst(), got.get(i), "sequence " + i);
            }
        }
    }

    /** A step's xb from attn_decode and its relative error against the float64 reference. */
    private record Checked(float[] xb, double error) {
    }

    /**
     * Lays the step out with fresh random q (scaled up: peaked rows) and KV, runs its attention, which must be one
     * attn_decode launch, and checks xb against the float64 reference within TOLERANCE.
     */
    private static Checked againstFloat64(DeviceLlama2 device, ModelConfig c, List<Entry> entries, Random random,
                                          String what) {
        int[][] tables = TiledAttentionTest.layout(device, entries, random);
        TiledAttentionTest.fill(device, device.k.q, random, 3);
        TiledAttentionTest.fill(device, device.k.kv, random);
        double[] expected = TiledAttentionTest.reference(device.k, c, entries, tables);
        long before = device.decodeAttentionPasses();
        float[] got = xbAfterAttention(device, entries, random);
        assertEquals(before + 1, device.decodeAttentionPasses(), what + ": attn_decode ran");
        double err = OpenClTestSupport.relativeError(got, expected, expected.length);
        assertTrue(err <= TOLERANCE, what + ": relative error " + err);
        return new Checked(got, err);
    }
}

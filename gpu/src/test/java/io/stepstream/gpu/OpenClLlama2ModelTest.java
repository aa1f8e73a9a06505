package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.Models;
import io.stepstream.engine.StreamingDecoder;
import io.stepstream.engine.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static io.stepstream.gpu.OpenClTestSupport.relativeError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** stories260K on the OpenCL device against the engine's CPU forward (LlamaModel). */
class OpenClLlama2ModelTest {
    /** The greedy story llama2.c publishes for stories260K from BOS. */
    static final String STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in"
            + " the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high";

    private static OpenClLlama2Model gpu;
    private static Model cpu;

    @BeforeAll
    static void load() {
        gpu = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 256);
        cpu = Models.load(Models.DEFAULT_MODEL);
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    private static float[] step(Model model, KvCache cache, int[] tokens, int offset, int length) {
        float[][] logits = new float[1][model.config().vocabSize()];
        model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, tokens, offset, length))), logits);
        return logits[0];
    }

    @Test
    void runsOnTheAskedDeviceInOneLaunchPerStep() {
        assertSame(OpenClTestSupport.device(), gpu.device());
        try (KvCache cache = gpu.newKvCache()) {
            step(gpu, cache, new int[]{1, 403, 407}, 0, 3);
            assertEquals(1, gpu.lastStepLaunches());
            step(gpu, cache, new int[]{261}, 0, 1);
            assertEquals(1, gpu.lastStepLaunches());
        }
        assertEquals(3 + 9 * gpu.config().nLayers(), gpu.passesPerStep());
    }

    @Test
    void prefillAndDecodeLogitsMatchTheCpuForward() {
        Random random = new Random(42);
        int vocab = gpu.config().vocabSize();
        int[] prompt = new int[37];
        prompt[0] = 1;
        for (int i = 1; i < prompt.length; i++) {
            prompt[i] = 3 + random.nextInt(vocab - 3);
        }
        try (KvCache g = gpu.newKvCache(); KvCache c = cpu.newKvCache()) {
            // A prefill crossing two block boundaries, then decodes fed with random (not greedy) tokens.
            float[] gl = step(gpu, g, prompt, 0, prompt.length);
            float[] cl = step(cpu, c, prompt, 0, prompt.length);
            assertTrue(relativeError(gl, cl) <= 1e-4, "prefill logits relative error " + relativeError(gl, cl));
            for (int s = 0; s < 12; s++) {
                int[] next = {3 + random.nextInt(vocab - 3)};
                gl = step(gpu, g, next, 0, 1);
                cl = step(cpu, c, next, 0, 1);
                double err = relativeError(gl, cl);
                assertTrue(err <= 1e-4, "decode " + s + " logits relative error " + err);
            }
            assertEquals(c.length(), g.length());
        }
    }

    @Test
    void greedyFromBosTellsThePublishedStoryLikeTheCpu() {
        List<Integer> gpuTokens = greedy(gpu, 80);
        List<Integer> cpuTokens = greedy(cpu, 80);
        assertTrue(gpuTokens.size() >= 64, "only " + gpuTokens.size() + " tokens before EOS");
        assertEquals(cpuTokens, gpuTokens);
        Tokenizer tok = gpu.tokenizer();
        StreamingDecoder decoder = tok.streamingDecoder();
        StringBuilder text = new StringBuilder();
        for (int t : gpuTokens) {
            text.append(decoder.push(t));
        }
        text.append(decoder.flush());
        assertTrue(text.toString().startsWith(STORY), "story: " + text);
    }

    private static List<Integer> greedy(Model model, int max) {
        List<Integer> out = new ArrayList<>();
        Tokenizer tok = model.tokenizer();
        try (KvCache cache = model.newKvCache()) {
            int token = tok.bosId();
            for (int i = 0; i < max; i++) {
                int next = argmax(step(model, cache, new int[]{token}, 0, 1));
                if (next == tok.eosId() || next == tok.bosId()) {
                    break;
                }
                out.add(next);
                token = next;
            }
        }
        return out;
    }

    @Test
    void aLongPromptPrefilledInChunksWithTiledAttentionOrThePassesMatchesTheCpu() {
        Random random = new Random(300);
        int vocab = cpu.config().vocabSize();
        int[] prompt = new int[300];
        prompt[0] = 1;
        for (int i = 1; i < prompt.length; i++) {
            prompt[i] = 3 + random.nextInt(vocab - 3);
        }
        int[] other = java.util.Arrays.copyOf(prompt, 20);
        int[] chunks = {0, 128, 256, 300};
        List<List<Integer>> greedy = new ArrayList<>();
        for (Attention mode : List.of(Attention.TILED, Attention.PASSES)) {
            try (OpenClLlama2Model dev = OpenClTestSupport.withAttention(mode,
                    () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 256));
                 KvCache g = dev.newKvCache(); KvCache c = cpu.newKvCache();
                 KvCache gOther = dev.newKvCache(); KvCache cOther = cpu.newKvCache()) {
                step(dev, gOther, other, 0, other.length);
                step(cpu, cOther, other, 0, other.length);
                dev.profile(true);
                OpTimes before = dev.profiledOpTimes();
                // Each chunk of the long prompt attends to every earlier chunk's keys, next to a decode of another
                // sequence in the same step (entries of 128 / 44 rows and of 1).
                float[][] gl = new float[2][vocab];
                float[][] cl = new float[2][vocab];
                for (int k = 0; k + 1 < chunks.length; k++) {
                    int[] next = {3 + random.nextInt(vocab - 3)};
                    ForwardBatch.Entry[] ge = {new ForwardBatch.Entry(g, prompt, chunks[k], chunks[k + 1] - chunks[k]),
                            new ForwardBatch.Entry(gOther, next, 0, 1)};
                    ForwardBatch.Entry[] ce = {new ForwardBatch.Entry(c, prompt, chunks[k], chunks[k + 1] - chunks[k]),
                            new ForwardBatch.Entry(cOther, next, 0, 1)};
                    dev.forward(new ForwardBatch(List.of(ge)), gl);
                    cpu.forward(new ForwardBatch(List.of(ce)), cl);
                    for (int i = 0; i < 2; i++) {
                        double err = relativeError(gl[i], cl[i]);
                        assertTrue(err <= 1e-4, mode + ": chunk " + k + " entry " + i + " logits relative error " + err);
                    }
                }
                dev.profile(false);
                OpTimes ops = dev.profiledOpTimes().minus(before);
                boolean tiled = mode == Attention.TILED;
                assertEquals(tiled, ops.nanos()[OpTimes.ATTENTION] > 0, mode + ": attention kernel time " + ops.msPerStep(1));
                assertEquals(!tiled, ops.nanos()[Llama2Kernel.OP_SCORES] > 0, mode + ": scores pass time " + ops.msPerStep(1));
                assertEquals(!tiled, ops.nanos()[Llama2Kernel.OP_ATTN_OUT] > 0, mode + ": attn-out pass time " + ops.msPerStep(1));
                // Then greedy decoding from the end of the prompt, equal to the CPU's.
                List<Integer> tokens = new ArrayList<>();
                float[] gNext = gl[0];
                float[] cNext = cl[0];
                for (int s = 0; s < 16; s++) {
                    int tok = argmax(gNext);
                    assertEquals(argmax(cNext), tok, mode + ": greedy token " + s);
                    tokens.add(tok);
                    gNext = step(dev, g, new int[]{tok}, 0, 1);
                    cNext = step(cpu, c, new int[]{tok}, 0, 1);
                }
                greedy.add(tokens);
            }
        }
        assertEquals(greedy.get(0), greedy.get(1), "tiled and passes continue the prompt alike");
    }

    @Test
    void sequencesBatchedInOneStepEqualEachAlone() {
        Random random = new Random(7);
        int vocab = gpu.config().vocabSize();
        int[] lengths = {1, 5, 17, 33};
        int[][] prompts = new int[lengths.length][];
        for (int i = 0; i < lengths.length; i++) {
            prompts[i] = new int[lengths[i] + 6];
            prompts[i][0] = 1;
            for (int j = 1; j < prompts[i].length; j++) {
                prompts[i][j] = 3 + random.nextInt(vocab - 3);
            }
        }
        // Alone: each sequence prefilled, then decoded greedily for 6 steps.
        int[][] aloneTokens = new int[lengths.length][6];
        float[][] aloneFirst = new float[lengths.length][];
        for (int i = 0; i < lengths.length; i++) {
            try (KvCache cache = gpu.newKvCache()) {
                float[] l = step(gpu, cache, prompts[i], 0, lengths[i]);
                aloneFirst[i] = l;
                for (int s = 0; s < 6; s++) {
                    int next = argmax(l);
                    aloneTokens[i][s] = next;
                    l = step(gpu, cache, new int[]{next}, 0, 1);
                }
            }
        }
        // Together: the four prefills of different lengths in one step, then batched decodes.
        List<KvCache> caches = new ArrayList<>();
        try {
            List<ForwardBatch.Entry> entries = new ArrayList<>();
            for (int i = 0; i < lengths.length; i++) {
                KvCache cache = gpu.newKvCache();
                caches.add(cache);
                entries.add(new ForwardBatch.Entry(cache, prompts[i], 0, lengths[i]));
            }
            float[][] logits = new float[lengths.length][vocab];
            gpu.forward(new ForwardBatch(entries), logits);
            assertEquals(1, gpu.lastStepLaunches());
            int[][] batchedTokens = new int[lengths.length][6];
            for (int i = 0; i < lengths.length; i++) {
                assertTrue(relativeError(logits[i], aloneFirst[i]) <= 1e-5, "entry " + i + " logits differ");
            }
            for (int s = 0; s < 6; s++) {
                entries.clear();
                for (int i = 0; i < lengths.length; i++) {
                    int next = argmax(logits[i]);
                    batchedTokens[i][s] = next;
                    entries.add(new ForwardBatch.Entry(caches.get(i), new int[]{next}, 0, 1));
                }
                gpu.forward(new ForwardBatch(entries), logits);
            }
            for (int i = 0; i < lengths.length; i++) {
                assertArrayEquals(aloneTokens[i], batchedTokens[i], "entry " + i + " tokens");
            }
        } finally {
            caches.forEach(KvCache::close);
        }
    }

    @Test
    void aDensePatternChangesNothingAndASparseOneReachesTheDevice() {
        int layers = gpu.config().nLayers();
        int heads = gpu.config().nHeads();
        int queryBlocks = (gpu.config().contextLength() + 15) / 16;
        Random random = new Random(11);
        int[] prompt = new int[50];
        prompt[0] = 1;
        for (int i = 1; i < prompt.length; i++) {
            prompt[i] = 3 + random.nextInt(gpu.config().vocabSize() - 3);
        }
        // Local attention: each query block sees only itself.
        int rows = layers * heads * queryBlocks;
        int[] indptr = new int[rows + 1];
        int[] indices = new int[rows];
        for (int r = 0; r < rows; r++) {
            indptr[r + 1] = r + 1;
            indices[r] = r % queryBlocks;
        }
        BlockSparsePattern local = new BlockSparsePattern(layers, heads, queryBlocks, indptr, indices);
        try (KvCache plain = gpu.newKvCache(); KvCache dense = gpu.newKvCache(); KvCache sparse = gpu.newKvCache()) {
            gpu.attentionPattern(dense, BlockSparsePattern.dense(layers, heads, queryBlocks));
            gpu.attentionPattern(sparse, local);
            float[][] logits = new float[3][gpu.config().vocabSize()];
            gpu.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(plain, prompt, 0, prompt.length),
                    new ForwardBatch.Entry(dense, prompt, 0, prompt.length),
                    new ForwardBatch.Entry(sparse, prompt, 0, prompt.length))), logits);
            assertTrue(relativeError(logits[1], logits[0]) <= 1e-5, "dense pattern vs none");
            // Position 49 sits in query block 3; without blocks 0..2 its attention, and so its logits, change.
            assertTrue(relativeError(logits[2], logits[0]) > 1e-3, "local pattern had no effect");
        }
    }
}

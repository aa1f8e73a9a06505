package io.stepstream.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Models;
import io.stepstream.engine.Sampler;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.spi.BackendModel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Greedy autoregressive decoding of stories260K on the OpenCL device through {@link BackendModel#forwardSummaries}
 * (each entry's logits row reduced on the device to its argmax and float64 probability) against the logits path
 * (the rows read back, the greedy {@link Sampler} on the host): 80 tokens, batched and alone, token for token, and
 * the logprobs within 1e-12; a kernel failure during a summary step loses nothing; bad input is still refused by
 * name, never taken for a device failure.
 */
class GreedySummariesTest {
    private static final int STEPS = 80;
    private static final int[][] PROMPTS = {{1}, {1, 403, 407, 261}, {1, 70, 300}, {1, 288, 11, 400, 7}};
    private static OpenClLlama2Model gpu;

    @BeforeAll
    static void load() {
        gpu = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 128);
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
    }

    /** Tokens and float64 logprobs of a greedy run of several sequences decoded together. */
    record Run(int[][] tokens, double[][] logprobs) {
    }

    /**
     * Prefill of every prompt in one step, then STEPS - 1 decode steps of all of them; the first token comes from
     * the prefill. Through summaries: each step's tokens are the device's argmaxes and the logprobs their log
     * confidences. Through logits: the greedy sampler's tokens and {@link Sampler#logprob} of the same rows.
     */
    static Run generate(BackendModel model, int[][] prompts, boolean summaries) {
        int n = prompts.length;
        int vocab = model.config().vocabSize();
        List<KvCache> caches = new ArrayList<>();
        int[][] tokens = new int[n][STEPS];
        double[][] logprobs = new double[n][STEPS];
        float[][] logits = new float[n][vocab];
        RowSummaries rows = RowSummaries.ofRows(n);
        Sampler[] samplers = new Sampler[n];
        List<ForwardBatch.Entry> entries = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            caches.add(model.newKvCache());
            samplers[i] = new Sampler(SamplingParams.GREEDY);
            entries.add(new ForwardBatch.Entry(caches.get(i), prompts[i], 0, prompts[i].length));
        }
        int[] next = new int[n];
        try {
            for (int s = 0; s < STEPS; s++) {
                ForwardBatch batch = new ForwardBatch(entries);
                if (summaries) {
                    Arrays.fill(rows.argmax(), -1);
                    Arrays.fill(logits[n - 1], Float.NaN);
                    model.forwardSummaries(batch, logits, rows);
                    if (model instanceof OpenClLlama2Model g) {
                        assertEquals(g.summarizesOnDevice(), Float.isNaN(logits[n - 1][vocab - 1]),
                                "on the device no logits come back, on the host they do");
                    }
                } else {
                    model.forward(batch, logits);
                }
                entries.clear();
                for (int i = 0; i < n; i++) {
                    next[i] = summaries ? rows.argmax()[i] : samplers[i].sample(logits[i]).tokenId();
                    tokens[i][s] = next[i];
                    logprobs[i][s] = summaries ? rows.logprob(i) : Sampler.logprob(logits[i], next[i]);
                    entries.add(new ForwardBatch.Entry(caches.get(i), next, i, 1));
                }
            }
            for (int i = 0; i < n; i++) {
                assertEquals(prompts[i].length + STEPS - 1, caches.get(i).length(), "sequence " + i + "'s cache");
            }
        } finally {
            caches.forEach(KvCache::close);
        }
        return new Run(tokens, logprobs);
    }

    static void assertSameRun(Run expected, Run actual, String what) {
        assertSameRun(expected, actual, what, 1e-12);
    }

    /** Tokens equal, logprobs within {@code tolerance} (1e-12: the same logits; looser: another forward's). */
    static void assertSameRun(Run expected, Run actual, String what, double tolerance) {
        for (int i = 0; i < expected.tokens().length; i++) {
            assertArrayEquals(expected.tokens()[i], actual.tokens()[i], what + ": sequence " + i + "'s tokens");
            for (int s = 0; s < STEPS; s++) {
                double e = expected.logprobs()[i][s];
                double a = actual.logprobs()[i][s];
                assertTrue(e < 0 && Math.abs(a - e) <= tolerance, what + ": sequence " + i + " step " + s + " logprob "
                        + a + " vs " + e);
            }
        }
    }

    @Test
    void greedyTokensFromDeviceSummariesEqualTheLogitsPathBatchedAndAlone() {
        assertEquals(gpu.dispatch() == Dispatch.DIRECT, gpu.summarizesOnDevice(),
                "PoCL has cl_khr_fp64: the direct dispatch reduces rows on the device");
        long passes = gpu.passesLaunched();
        Run logits = generate(gpu, PROMPTS, false);
        Run summaries = generate(gpu, PROMPTS, true);
        assertSameRun(logits, summaries, "batched");
        assertTrue(gpu.passesLaunched() > passes);
        for (int i = 0; i < PROMPTS.length; i++) {
            int[][] alone = {PROMPTS[i]};
            assertSameRun(generate(gpu, alone, false), generate(gpu, alone, true), "prompt " + i + " alone");
        }
        // The published greedy story of stories260K from BOS, through the summaries.
        StringBuilder text = new StringBuilder();
        io.stepstream.engine.StreamingDecoder decoder = gpu.tokenizer().streamingDecoder();
        for (int t : summaries.tokens()[0]) {
            text.append(decoder.push(t));
        }
        assertTrue(text.toString().startsWith(OpenClLlama2ModelTest.STORY), text.toString());
    }

    @Test
    void badInputIsRefusedByNameOnTheSummaryPathAndIsNoFailover() {
        OpenClLlama2Model device = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 16);
        try (FailoverModel model = new FailoverModel(device, () -> {
            throw new AssertionError("the fallback must not be built without a device failure");
        }); KvCache c = model.newKvCache(); KvCache other = gpu.newKvCache()) {
            int vocab = model.config().vocabSize();
            float[][] logits = new float[1][vocab];
            RowSummaries out = RowSummaries.ofRows(1);
            IllegalArgumentException token = assertThrows(IllegalArgumentException.class, () -> model.forwardSummaries(
                    new ForwardBatch(List.of(new ForwardBatch.Entry(c, new int[]{1, vocab + 3}, 0, 2))), logits, out));
            assertTrue(token.getMessage().contains("token id " + (vocab + 3) + " is outside [0, " + vocab + ")"),
                    token.getMessage());
            IllegalArgumentException foreign = assertThrows(IllegalArgumentException.class, () -> device.forwardSummaries(
                    new ForwardBatch(List.of(new ForwardBatch.Entry(other, new int[]{1}, 0, 1))), logits, out));
            assertTrue(foreign.getMessage().contains("KV cache was not created by model"), foreign.getMessage());
            IllegalArgumentException rows = assertThrows(IllegalArgumentException.class, () -> model.forwardSummaries(
                    new ForwardBatch(List.of(new ForwardBatch.Entry(c, new int[]{1}, 0, 1))), logits,
                    new RowSummaries(new int[0], new double[0])));
            assertTrue(rows.getMessage().contains("summaries must have a row per entry"), rows.getMessage());
            assertEquals(0, c.length(), "nothing ran");
            model.forwardSummaries(new ForwardBatch(List.of(new ForwardBatch.Entry(c, new int[]{1}, 0, 1))), logits,
                    out);
            assertEquals(1, c.length());
            assertEquals(0, model.failovers());
            assertEquals(device.summarizesOnDevice(), model.summarizesOnDevice());
        }
    }

    /** The real device model, with a kernel failure reported on one summary call after the device wrote junk. */
    private static final class FailingSummaries implements BackendModel {
        private final OpenClLlama2Model device;
        private final int failAt;
        private int calls;

        FailingSummaries(OpenClLlama2Model device, int failAt) {
            this.device = device;
            this.failAt = failAt;
        }

        public String name() {
            return device.name();
        }

        public String backendName() {
            return device.backendName();
        }

        public String deviceName() {
            return device.deviceName();
        }

        public ModelConfig config() {
            return device.config();
        }

        public Tokenizer tokenizer() {
            return device.tokenizer();
        }

        public KvCache newKvCache() {
            return device.newKvCache();
        }

        public void forward(ForwardBatch batch, float[][] logits) {
            throw new AssertionError("a summary step must not ask for logits");
        }

        @Override
        public boolean summarizesOnDevice() {
            return true;
        }

        @Override
        public void forwardSummaries(ForwardBatch batch, float[][] logits, RowSummaries out) {
            device.forwardSummaries(batch, logits, out);
            if (++calls == failAt) {
                Arrays.fill(out.argmax(), 7); // a half-finished step's ids must not leak out
                throw new OpenClException("injected: clEnqueueReadBuffer returned CL_OUT_OF_RESOURCES");
            }
        }

        public void close() {
            device.close();
        }
    }

    @Test
    void aKernelFailureDuringASummaryStepContinuesOnTheCpuWithTheSameTokens() {
        Run expected;
        try (Model cpu = Models.load(Models.DEFAULT_MODEL)) {
            expected = generate(new FailoverModel(cpu, () -> {
                throw new AssertionError("no failover");
            }), PROMPTS, false);
        }
        OpenClLlama2Model device = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 64);
        try (FailoverModel model = new FailoverModel(new FailingSummaries(device, 11),
                () -> Models.load(Models.DEFAULT_MODEL))) {
            assertTrue(model.summarizesOnDevice());
            Run got = generate(model, PROMPTS, true);
            assertEquals(1, model.failovers());
            assertFalse(model.summarizesOnDevice(), "after a failover the CPU runs, summarized on the host");
            // Device steps before the failure, CPU steps after: the logits are the two forwards' (within 1e-4).
            assertSameRun(expected, got, "failover at step 11", 1e-4);
        }
    }
}

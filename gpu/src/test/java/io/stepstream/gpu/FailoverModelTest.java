package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Models;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.spi.BackendModel;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A device failure in the middle of a greedy generation: the failover model goes on on the CPU and every
 * sequence, the ones in the failing step and one that sat the step out, ends with exactly the tokens of an
 * uninterrupted CPU run.
 */
class FailoverModelTest {
    private static final int STEPS = 24;
    private static final int FAIL_AT_CALL = 9;

    /** Runs the real OpenCL model but reports a kernel failure on one call, after the device did the work. */
    private static final class FailingOnce implements BackendModel {
        private final OpenClLlama2Model device;
        private int calls;

        FailingOnce(OpenClLlama2Model device) {
            this.device = device;
        }

        @Override
        public String name() {
            return device.name();
        }

        @Override
        public String backendName() {
            return device.backendName();
        }

        @Override
        public String deviceName() {
            return device.deviceName();
        }

        @Override
        public ModelConfig config() {
            return device.config();
        }

        @Override
        public Tokenizer tokenizer() {
            return device.tokenizer();
        }

        @Override
        public KvCache newKvCache() {
            return device.newKvCache();
        }

        @Override
        public void forward(ForwardBatch batch, float[][] logits) {
            device.forward(batch, logits);
            if (++calls == FAIL_AT_CALL) {
                // The device's caches have advanced: the failover must not trust them.
                throw new OpenClException("injected: clEnqueueNDRangeKernel returned CL_OUT_OF_RESOURCES");
            }
        }

        @Override
        public void close() {
            device.close();
        }
    }

    private static final int[][] PROMPTS = {{1, 403, 407, 261}, {1, 70, 300}, {1, 288}};

    /**
     * Sequences 0 and 1 decode together every step; sequence 2 decodes only on even steps, so at the failure
     * (an odd call) it is not in the batch and must be moved over later.
     */
    private static List<List<Integer>> generate(Model model) {
        List<KvCache> caches = new ArrayList<>();
        List<List<Integer>> out = new ArrayList<>();
        float[][] logits = new float[3][model.config().vocabSize()];
        List<ForwardBatch.Entry> prefill = new ArrayList<>();
        for (int[] p : PROMPTS) {
            KvCache c = model.newKvCache();
            caches.add(c);
            out.add(new ArrayList<>());
            prefill.add(new ForwardBatch.Entry(c, p, 0, p.length));
        }
        model.forward(new ForwardBatch(prefill), logits);
        int[] next = new int[3];
        for (int i = 0; i < 3; i++) {
            next[i] = argmax(logits[i]);
            out.get(i).add(next[i]);
        }
        for (int s = 0; s < STEPS; s++) {
            List<ForwardBatch.Entry> entries = new ArrayList<>();
            List<Integer> who = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                if (i < 2 || s % 2 == 0) {
                    entries.add(new ForwardBatch.Entry(caches.get(i), next, i, 1));
                    who.add(i);
                }
            }
            float[][] stepLogits = new float[entries.size()][model.config().vocabSize()];
            model.forward(new ForwardBatch(entries), stepLogits);
            for (int e = 0; e < who.size(); e++) {
                int i = who.get(e);
                next[i] = argmax(stepLogits[e]);
                out.get(i).add(next[i]);
            }
        }
        for (int i = 0; i < 3; i++) {
            assertEquals(PROMPTS[i].length + out.get(i).size() - 1, caches.get(i).length());
        }
        caches.forEach(KvCache::close);
        return out;
    }

    @Test
    void aKernelFailureMidGenerationContinuesOnTheCpuWithTheSameGreedyTokens() {
        List<List<Integer>> expected;
        try (Model cpu = Models.load(Models.DEFAULT_MODEL)) {
            expected = generate(cpu);
        }
        OpenClLlama2Model device = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 64);
        String deviceName = device.deviceName();
        try (FailoverModel model = new FailoverModel(new FailingOnce(device),
                () -> Models.load(Models.DEFAULT_MODEL))) {
            assertEquals(0, model.failovers());
            List<List<Integer>> got = generate(model);
            assertEquals(1, model.failovers());
            assertTrue(model.failedOver());
            assertEquals("cpu", model.backendName());
            assertTrue(model.deviceName().contains(deviceName), model.deviceName());
            for (int i = 0; i < expected.size(); i++) {
                assertArrayEquals(expected.get(i).stream().mapToInt(Integer::intValue).toArray(),
                        got.get(i).stream().mapToInt(Integer::intValue).toArray(), "sequence " + i);
            }
            // New sequences after the failover start on the CPU directly.
            try (KvCache c = model.newKvCache()) {
                float[][] logits = new float[1][model.config().vocabSize()];
                model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(c, PROMPTS[0], 0, 2))), logits);
                assertEquals(2, c.length());
            }
        }
    }

    @Test
    void withoutAFailureItRunsOnTheDeviceAndBadInputIsNotAFailure() {
        OpenClLlama2Model device = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 16);
        try (FailoverModel model = new FailoverModel(device, () -> {
            throw new AssertionError("the fallback must not be built without a device failure");
        })) {
            long launches = device.launches();
            try (KvCache c = model.newKvCache()) {
                float[][] logits = new float[1][model.config().vocabSize()];
                model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(c, new int[]{1, 5}, 0, 2))), logits);
                assertEquals(launches + 1, device.launches());
                assertThrows(IllegalArgumentException.class, () -> model.forward(new ForwardBatch(List.of(
                        new ForwardBatch.Entry(c, new int[]{100000}, 0, 1))), logits));
            }
            assertEquals(0, model.failovers());
            assertFalse(model.failedOver());
            assertEquals("opencl", model.backendName());
        }
    }
}

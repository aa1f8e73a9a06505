package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.LladaGeneration;
import io.stepstream.engine.dlm.RangeExecutor;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.dlm.RowSummaries;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The diffusion scheduler on a model that says it makes row summaries on its device (here the host default,
 * which is bitwise the logits path): steps whose requests are all greedy low-confidence run through
 * {@code forwardSummaries} and {@code applySummaries}, a step with a request that reads whole rows (random
 * remasking with temperature) runs the logits path, and every request streams exactly what it streams alone.
 */
class DiffusionSummaryStepTest {
    private static DiffusionModel model;
    private final AtomicLong clock = new AtomicLong(1_000);

    @BeforeAll
    static void load() {
        model = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults().withComputeThreads(1));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /** The real model, claiming device summaries; counts the steps of each path. */
    private static final class SummarizingModel implements DenoisingModel {
        final DenoisingModel real = DenoisingModel.of(model);
        int summarySteps;
        int logitSteps;
        private boolean inSummaries;

        @Override
        public boolean summarizesOnDevice() {
            return true;
        }

        @Override
        public void forwardSummaries(List<DenoiseInput> batch, float[][] logits, RowSummaries[] summaries) {
            summarySteps++;
            inSummaries = true;
            try {
                DenoisingModel.super.forwardSummaries(batch, logits, summaries);
            } finally {
                inSummaries = false;
            }
        }

        @Override
        public void forward(List<DenoiseInput> batch, float[][] logits) {
            logitSteps += inSummaries ? 0 : 1;
            real.forward(batch, logits);
        }

        @Override
        public String name() {
            return real.name();
        }

        @Override
        public Tokenizer tokenizer() {
            return real.tokenizer();
        }

        @Override
        public int maskId() {
            return real.maskId();
        }

        @Override
        public int vocabSize() {
            return real.vocabSize();
        }

        @Override
        public int contextLength() {
            return real.contextLength();
        }
    }

    private static SequenceRequest request(String id, String prompt, DiffusionParams p) {
        return SequenceRequest.diffusion(id, model.tokenizer().encode(prompt, true, false), p, List.of(), false);
    }

    @Test
    void greedyStepsRunOnSummariesAndEveryStreamEqualsItsRunAlone() {
        Map<String, SequenceRequest> requests = new LinkedHashMap<>();
        requests.put("a", request("a", "Once upon a time", new DiffusionParams(16, 8, 8, 0.0,
                Remasking.LOW_CONFIDENCE, null, 0L)));
        requests.put("b", request("b", "Tom had a red ball", new DiffusionParams(16, 8, 16, 0.0,
                Remasking.LOW_CONFIDENCE, 0.9, 0L)));
        requests.put("c", request("c", "The sun was", new DiffusionParams(8, 8, 4, 0.7, Remasking.RANDOM, null, 5L)));
        requests.put("d", request("d", "One day, a little", new DiffusionParams(24, 8, 12, 0.0,
                Remasking.LOW_CONFIDENCE, null, 0L)));
        SummarizingModel m = new SummarizingModel();
        SchedulerConfig config = new SchedulerConfig(4, 2048, 16);
        StepLoop l = new StepLoop(new DiffusionScheduler(m, config, clock::get, RangeExecutor.sameThread()), config);
        requests.values().forEach(r -> assertTrue(l.scheduler.add(r)));
        l.runToEnd();
        assertTrue(m.logitSteps >= 4, "steps with the sampled request read logits: " + m.logitSteps);
        assertTrue(m.summarySteps >= 4, "steps without it ran on summaries: " + m.summarySteps);
        assertEquals(l.plans.size(), m.logitSteps + m.summarySteps);
        for (SequenceRequest r : requests.values()) {
            LladaGeneration alone = DiffusionRuns.lladaAlone(DenoisingModel.of(model), r);
            l.outcome(r.requestId()).assertSameAs(DiffusionRuns.expectedStream(DenoisingModel.of(model), r, alone),
                    r.requestId());
        }
    }
}

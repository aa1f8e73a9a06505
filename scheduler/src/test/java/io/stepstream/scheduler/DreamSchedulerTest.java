package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.dlm.DiffusionFamily;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.DreamAlgorithm;
import io.stepstream.engine.dlm.DreamGeneration;
import io.stepstream.engine.dlm.DreamParams;
import io.stepstream.engine.dlm.RangeExecutor;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.tools.DreamSynth;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The diffusion scheduler serving a (synthetic) Dream model: requests of different prompt lengths, algorithms and
 * sampling settings batched into one forward per step must stream exactly what DreamGeneration gives alone, in
 * position order. Single-threaded; time is a counter.
 */
class DreamSchedulerTest {
    @TempDir
    static Path dir;
    private static DiffusionModel model;
    private final AtomicLong clock = new AtomicLong(1_000);

    @BeforeAll
    static void load() throws IOException {
        DreamSynth.write(dir, DreamSynth.Shape.DREAM_TINY, 3);
        model = Models.loadDiffusion(dir.toString(), ModelOptions.defaults().withComputeThreads(1));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private StepLoop loop(SchedulerConfig config) {
        return loop(DenoisingModel.of(model), config);
    }

    private StepLoop loop(DenoisingModel m, SchedulerConfig config) {
        return new StepLoop(new DiffusionScheduler(m, config, clock::get, RangeExecutor.sameThread()), config);
    }

    private static SequenceRequest request(String id, String prompt, DreamParams p) {
        return SequenceRequest.dream(id, model.tokenizer().encode(prompt, true, false), p, List.of(), false);
    }

    @Test
    void batchedDreamRequestsStreamWhatTheyGetAlone() {
        batchedEqualsAlone(DenoisingModel.of(model), FinishReason.STOP);
    }

    @Test
    void batchedDreamRequestsRunningToTheirLengthStreamTheirWholeCanvas() {
        batchedEqualsAlone(BendableModel.withoutEos(DenoisingModel.of(model)), FinishReason.LENGTH);
    }

    private void batchedEqualsAlone(DenoisingModel m, FinishReason expectedReason) {
        assertEquals(DiffusionFamily.DREAM, m.family());
        Map<String, SequenceRequest> requests = new LinkedHashMap<>();
        requests.put("a", request("a", "Once upon a time", DreamParams.greedy(16, 8, DreamAlgorithm.ENTROPY)));
        requests.put("b", request("b", "One day, a little girl went", DreamParams.greedy(24, 12,
                DreamAlgorithm.TOPK_MARGIN)));
        requests.put("c", request("c", "The sun", DreamParams.greedy(20, 10, DreamAlgorithm.MASKGIT_PLUS)
                .withSampling(0.7, 0.9, 40, 5L).withAlg(DreamAlgorithm.MASKGIT_PLUS, 0.3)));
        requests.put("d", request("d", "Tom had a red ball", DreamParams.greedy(16, 6, DreamAlgorithm.ORIGIN)
                .withSampling(1.0, null, null, 11L)));
        requests.put("e", request("e", "", DreamParams.greedy(8, 8, DreamAlgorithm.ENTROPY)));
        SchedulerConfig config = new SchedulerConfig(3, 2048, 16);
        StepLoop l = loop(m, config);
        assertTrue(l.scheduler.add(requests.get("a")));
        assertTrue(l.scheduler.add(requests.get("b")));
        l.step();
        l.step();
        assertTrue(l.scheduler.add(requests.get("c")));
        assertTrue(l.scheduler.add(requests.get("d")));
        l.step();
        assertTrue(l.scheduler.add(requests.get("e")));
        l.runToEnd();

        assertTrue(l.plans.stream().anyMatch(b -> b.denoises().size() == 3
                        && b.denoises().stream().map(StepBatch.DenoiseStep::step).distinct().count() == 3),
                "three requests at three different steps shared a forward pass");
        Map<String, Integer> steps = new HashMap<>();
        for (StepBatch b : l.plans) {
            for (StepBatch.DenoiseStep d : b.denoises()) {
                assertEquals(steps.getOrDefault(d.requestId(), 0), d.step(), "steps of " + d.requestId());
                steps.merge(d.requestId(), 1, Integer::sum);
            }
        }
        int streamedSomewhereBeforeTheEnd = 0;
        for (SequenceRequest r : requests.values()) {
            DreamGeneration alone = DiffusionRuns.dreamAlone(m, r);
            StepLoop.Outcome expected = DiffusionRuns.expectedStream(m, r, alone);
            assertEquals(expectedReason, expected.reason(), r.requestId());
            l.outcome(r.requestId()).assertSameAs(expected, r.requestId());
            System.out.println("[DreamSchedulerTest] " + r.requestId() + " " + expected.reason() + " "
                    + expected.completionTokens() + " tokens: " + expected.text().replace('\n', ' '));
            if (expected.reason() == FinishReason.LENGTH) {
                assertEquals(alone.forwards(), steps.get(r.requestId()), r.requestId() + " forward passes");
                assertEquals(r.dream().genLength(), expected.completionTokens(), r.requestId());
            }
            // Tokens reach the stream as their positions become final, not all at the last step.
            List<TokenEvent> events = l.events.get(r.requestId());
            if (events.getFirst() instanceof TokenEvent.Token) {
                streamedSomewhereBeforeTheEnd++;
            }
        }
        assertTrue(streamedSomewhereBeforeTheEnd > 0);
        assertTrue(l.scheduler.snapshot().running().isEmpty());
    }

    @Test
    void progressEventsCountTheChunksStreamed() {
        SequenceRequest r = SequenceRequest.dream("p", model.tokenizer().encode("Once", true, false),
                DreamParams.greedy(12, 6, DreamAlgorithm.ENTROPY), List.of(), true);
        StepLoop l = loop(SchedulerConfig.defaults());
        l.scheduler.add(r);
        l.runToEnd();
        long progress = l.events.get("p").stream().filter(e -> e instanceof TokenEvent.DenoiseProgress).count();
        assertTrue(progress >= 1 && progress <= 6, "one progress event per step: " + progress);
    }

    @Test
    void settingsOfTheOtherFamilyAreRefused() {
        StepLoop l = loop(SchedulerConfig.defaults());
        int[] prompt = model.tokenizer().encode("Tom", true, false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> l.scheduler.add(
                SequenceRequest.diffusion("x", prompt, new DiffusionParams(8, 8, 8, 0, Remasking.LOW_CONFIDENCE,
                        null, 0L), List.of(), false)));
        assertTrue(e.getMessage().startsWith("diffusion:") && e.getMessage().contains("Dream"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new SequenceRequest("y", prompt, 8, null, List.of(),
                new DiffusionParams(8, 8, 8, 0, Remasking.LOW_CONFIDENCE, null, 0L), false,
                DreamParams.greedy(8, 8, DreamAlgorithm.ORIGIN)));
        assertTrue(e.getMessage().startsWith("diffusion:"), e.getMessage());
        try (DiffusionModel llada = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults()
                .withComputeThreads(1))) {
            DiffusionScheduler s = new DiffusionScheduler(llada, SchedulerConfig.defaults(), clock::get,
                    RangeExecutor.sameThread());
            e = assertThrows(IllegalArgumentException.class, () -> s.add(SequenceRequest.dream("z", prompt,
                    DreamParams.greedy(8, 8, DreamAlgorithm.ORIGIN), List.of(), false)));
            assertTrue(e.getMessage().contains("LLaDA-style"), e.getMessage());
        }
    }
}

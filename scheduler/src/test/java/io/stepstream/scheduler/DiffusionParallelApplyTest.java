package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.DreamAlgorithm;
import io.stepstream.engine.dlm.DreamParams;
import io.stepstream.engine.dlm.RangeExecutor;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.tools.DreamSynth;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The scheduler's apply on a fork-join pool against the same scheduler applying on its own thread: a mixed batch
 * (LLaDA greedy, threshold, random remasking with temperature, low confidence with temperature; Dream greedy and
 * sampled) streams exactly the same events, progress included, in the same order. The test thread still plans and
 * completes; only the apply inside {@code execute} fans out (and its result is awaited there, so no sleeps).
 */
class DiffusionParallelApplyTest {
    @TempDir
    static Path dir;
    private static DiffusionModel llada;
    private static DiffusionModel dream;
    private static ForkJoinPool pool;

    @BeforeAll
    static void load() throws IOException {
        llada = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults().withComputeThreads(1));
        DreamSynth.write(dir, DreamSynth.Shape.DREAM_TINY, 3);
        dream = Models.loadDiffusion(dir.toString(), ModelOptions.defaults().withComputeThreads(1));
        pool = new ForkJoinPool(4);
    }

    @AfterAll
    static void close() {
        llada.close();
        dream.close();
        pool.shutdownNow();
    }

    private static StepLoop run(DiffusionModel m, List<SequenceRequest> requests, RangeExecutor executor) {
        AtomicLong clock = new AtomicLong(1_000);
        SchedulerConfig config = SchedulerConfig.defaults();
        StepLoop loop = new StepLoop(new DiffusionScheduler(DenoisingModel.of(m), config, clock::get, executor),
                config);
        for (SequenceRequest r : requests) {
            assertTrue(loop.scheduler.add(r));
        }
        loop.runToEnd();
        return loop;
    }

    private static void sameEvents(DiffusionModel m, List<SequenceRequest> requests) {
        StepLoop sequential = run(m, requests, RangeExecutor.sameThread());
        StepLoop parallel = run(m, requests, RangeExecutor.on(pool));
        assertEquals(requests.size(), sequential.events.size());
        assertEquals(sequential.events.keySet().stream().toList(), parallel.events.keySet().stream().toList());
        for (SequenceRequest r : requests) {
            assertEquals(sequential.events.get(r.requestId()), parallel.events.get(r.requestId()), r.requestId());
            assertTrue(sequential.events.get(r.requestId()).size() > 2, r.requestId() + " streamed nothing");
        }
        assertEquals(sequential.plans, parallel.plans);
    }

    @Test
    void lladaMixedBatchStreamsTheSameInParallel() {
        DiffusionParams greedy = new DiffusionParams(32, 16, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        List<String> prompts = List.of("Once upon a time", "The little dog ran to the park and",
                "Lily had a red ball. One day", "Tom and his mom went to the store");
        List<DiffusionParams> settings = List.of(greedy, greedy.withThreshold(0.9),
                greedy.withRemasking(Remasking.RANDOM).withTemperature(0.8, 7L), greedy.withTemperature(0.7, 11L),
                greedy.withGenLength(48, 16, 24));
        List<SequenceRequest> requests = new ArrayList<>();
        for (int i = 0; i < settings.size(); i++) {
            requests.add(SequenceRequest.diffusion("r" + i, llada.tokenizer().encode(prompts.get(i % prompts.size()),
                    true, false), settings.get(i), List.of(), i % 2 == 0));
        }
        sameEvents(llada, requests);
    }

    @Test
    void dreamMixedBatchStreamsTheSameInParallel() {
        List<DreamParams> settings = List.of(
                new DreamParams(24, 12, 0.0, null, null, DreamAlgorithm.MASKGIT_PLUS, null, DreamParams.DEFAULT_EPS,
                        0L),
                new DreamParams(24, 8, 0.8, 0.9, null, DreamAlgorithm.ORIGIN, null, DreamParams.DEFAULT_EPS, 5L),
                new DreamParams(32, 16, 0.5, null, 20, DreamAlgorithm.ENTROPY, 0.2, DreamParams.DEFAULT_EPS, 21L),
                new DreamParams(24, 10, 1.0, 0.95, 50, DreamAlgorithm.TOPK_MARGIN, 0.0, DreamParams.DEFAULT_EPS, 13L));
        List<String> prompts = List.of("Once upon a time", "The little dog", "Lily had a red ball", "Tom and");
        List<SequenceRequest> requests = new ArrayList<>();
        for (int i = 0; i < settings.size(); i++) {
            requests.add(SequenceRequest.dream("d" + i, dream.tokenizer().encode(prompts.get(i), true, false),
                    settings.get(i), List.of(), i % 2 == 1));
        }
        sameEvents(dream, requests);
    }
}

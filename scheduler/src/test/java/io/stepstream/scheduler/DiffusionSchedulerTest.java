package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.StreamingDecoder;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.DlmCacheMode;
import io.stepstream.engine.dlm.LladaGeneration;
import io.stepstream.engine.dlm.RangeExecutor;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.dlm.RowSummaries;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The diffusion scheduler on the real embedded tinystories-dlm, single-threaded (the test thread plans, executes
 * and completes; time is a counter). The reference for every request is the engine's LladaGeneration driven alone,
 * one forward pass of its canvas per step, and the text its generated tokens decode to.
 */
class DiffusionSchedulerTest {
    private static DiffusionModel model;
    private final AtomicLong clock = new AtomicLong(1_000);

    @BeforeAll
    static void load() {
        // One compute thread (the caller's): the model is tiny, and tests must not leave pools behind.
        model = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults().withComputeThreads(1));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private StepLoop loop(SchedulerConfig config) {
        return new StepLoop(new DiffusionScheduler(model, config, clock::get, RangeExecutor.sameThread()), config);
    }

    private static int[] prompt(String text) {
        return model.tokenizer().encode(text, true, false);
    }

    private static DiffusionParams params(int gen, int block, int steps) {
        return new DiffusionParams(gen, block, steps, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
    }

    private static SequenceRequest request(String id, String prompt, DiffusionParams p) {
        return SequenceRequest.diffusion(id, prompt(prompt), p, List.of(), false);
    }

    /** A reference run: the generation alone, plus what a stream of it must show. */
    record Reference(LladaGeneration generation, StepLoop.Outcome outcome) {
    }

    /**
     * The request run alone through LladaGeneration; the stream it implies: the generated tokens in position
     * order without mask ids, up to the first EOS (then STOP, the EOS counted), cut before a stop string.
     */
    private static Reference reference(SequenceRequest r) {
        return reference(r, DenoisingModel.of(model));
    }

    private static Reference reference(SequenceRequest r, DenoisingModel model) {
        LladaGeneration gen = DiffusionRuns.lladaAlone(model, r);
        return new Reference(gen, DiffusionRuns.expectedStream(model, r, gen));
    }

    /** Denoising steps each request took, from the plans. */
    private static Map<String, Integer> stepsPerRequest(StepLoop l) {
        Map<String, Integer> steps = new HashMap<>();
        for (StepBatch b : l.plans) {
            for (StepBatch.DenoiseStep d : b.denoises()) {
                assertEquals(steps.getOrDefault(d.requestId(), 0), d.step(), "steps of " + d.requestId()
                        + " are planned in order, one per plan");
                steps.merge(d.requestId(), 1, Integer::sum);
            }
        }
        return steps;
    }

    @Test
    void batchedRequestsGetExactlyTheCanvasesTheyGetAlone() {
        Map<String, SequenceRequest> requests = new LinkedHashMap<>();
        requests.put("a", request("a", "Once upon a time", params(16, 8, 8)));
        requests.put("b", request("b", "One day, a little", params(16, 16, 16)));
        requests.put("c", request("c", "The sun was", new DiffusionParams(24, 8, 12, 0.7, Remasking.RANDOM, null, 5L)));
        requests.put("d", request("d", "Tom had a red ball", new DiffusionParams(16, 8, 16, 0.0,
                Remasking.LOW_CONFIDENCE, 0.9, 0L)));
        requests.put("e", request("e", "", new DiffusionParams(8, 8, 4, 1.0, Remasking.LOW_CONFIDENCE, null, 3L)));
        SchedulerConfig config = new SchedulerConfig(3, 2048, 16);
        StepLoop l = loop(config);
        assertTrue(l.scheduler.add(requests.get("a")));
        assertTrue(l.scheduler.add(requests.get("b")));
        l.step();
        l.step();
        l.step();
        assertTrue(l.scheduler.add(requests.get("c")));
        assertTrue(l.scheduler.add(requests.get("d")));
        l.step();
        l.step();
        assertTrue(l.scheduler.add(requests.get("e")));
        l.runToEnd();

        boolean mixedStepsInOneForward = l.plans.stream().anyMatch(b -> b.denoises().size() == 3
                && b.denoises().stream().map(StepBatch.DenoiseStep::step).distinct().count() == 3);
        assertTrue(mixedStepsInOneForward, "three requests at three different steps shared a forward pass");
        Map<String, Integer> steps = stepsPerRequest(l);
        for (SequenceRequest r : requests.values()) {
            Reference ref = reference(r);
            l.outcome(r.requestId()).assertSameAs(ref.outcome(), r.requestId());
            assertEquals(ref.generation().forwards(), steps.get(r.requestId()), r.requestId() + " forward passes");
            if (ref.outcome().reason() == FinishReason.LENGTH) {
                int[] canvas = Arrays.stream(ref.generation().generated()).filter(t -> t != model.maskId()).toArray();
                assertEquals(Arrays.toString(canvas), Arrays.toString(l.outcome(r.requestId()).tokens()),
                        r.requestId() + ": the whole generated canvas is streamed");
            }
        }
        assertTrue(l.scheduler.snapshot().running().isEmpty());
    }

    /**
     * Fast-dLLM cached requests (prefix, dual) batched with an uncached one stream exactly what their generations
     * give alone; their keys and values are held while they run and freed when they end, finished or cancelled.
     */
    @Test
    void cachedRequestsBatchWithUncachedOnesAndFreeTheirKeysWhenTheyEnd() {
        Map<String, SequenceRequest> requests = new LinkedHashMap<>();
        requests.put("prefix", request("prefix", "Once upon a time", params(32, 16, 32).withCache(DlmCacheMode.PREFIX)));
        requests.put("dual", request("dual", "The cat", new DiffusionParams(32, 8, 16, 0.7, Remasking.RANDOM, 0.9, 3L)
                .withCache(DlmCacheMode.DUAL)));
        requests.put("plain", request("plain", "One day, a little", params(16, 8, 8)));
        StepLoop l = loop(new SchedulerConfig(4, 2048, 16));
        long before = model.kvCache().bytesHeld();
        requests.values().forEach(r -> assertTrue(l.scheduler.add(r)));
        l.scheduler.add(request("cancelled", "Tom", params(16, 8, 16).withCache(DlmCacheMode.DUAL)));
        l.step();
        l.step();
        assertTrue(l.scheduler.snapshot().kvBytes() > before, "cached requests hold keys and values");
        l.scheduler.cancel("cancelled");
        l.runToEnd();
        assertEquals(before, model.kvCache().bytesHeld(), "all freed: finished and cancelled");
        assertEquals(before, l.scheduler.snapshot().kvBytes());
        assertEquals(FinishReason.CANCELLED, ((TokenEvent.Finished) l.events.get("cancelled").getLast()).reason());
        Map<String, Integer> steps = stepsPerRequest(l);
        for (SequenceRequest r : requests.values()) {
            Reference ref = reference(r);
            l.outcome(r.requestId()).assertSameAs(ref.outcome(), r.requestId());
            assertEquals(ref.generation().forwards(), steps.get(r.requestId()), r.requestId() + " forward passes");
        }
        assertEquals(before, model.kvCache().bytesHeld());
    }

    @Test
    void theModelCardStoriesComeOutOfOneBatch() {
        // The three reference outputs quoted in the shipped MODEL_CARD.md, generated side by side.
        String once = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
                + " One day, she went to the park to play with her friends. They saw a big box with a big box of colors";
        String oneDay = "One day, a little boy named Tim went to the park with his mom. They saw a big box with a big"
                + " box. Tim boy was happy to see what was inside. He wanted to play with the box.\nTim want";
        String sun = "The sun was a little boy named Tim. Tim loved to play with his toys. He liked to play with his"
                + " toys and run around the park. One day, Tim saw a big box of toy car. He wanted to play with it";
        StepLoop l = loop(SchedulerConfig.defaults());
        l.scheduler.add(request("once", "Once upon a time", params(64, 64, 64)));
        l.scheduler.add(request("day", "One day, a little", params(64, 16, 32)));
        l.scheduler.add(request("sun", "The sun was", new DiffusionParams(64, 32, 64, 0.0, Remasking.LOW_CONFIDENCE,
                0.9, 0L)));
        l.runToEnd();
        assertEquals(once, "Once upon a time" + l.outcome("once").text());
        assertEquals(oneDay, "One day, a little" + l.outcome("day").text());
        assertEquals(sun, "The sun was" + l.outcome("sun").text());
        Map<String, Integer> steps = stepsPerRequest(l);
        assertEquals(Map.of("once", 64, "day", 32, "sun", 60), steps);
        assertEquals(3, l.plans.getFirst().denoises().size());
        for (String id : List.of("once", "day", "sun")) {
            assertEquals(FinishReason.LENGTH, l.outcome(id).reason(), id);
            assertEquals(64, l.outcome(id).completionTokens(), id);
        }
    }

    @Test
    void admissionIsFirstComeFirstServedWithinBothBudgets() {
        // Canvases: "Once upon a time" is 5 tokens + 16 = 21; the budget takes two of those, not three.
        List<SequenceRequest> requests = List.of(
                request("r0", "Once upon a time", params(16, 8, 8)),
                request("r1", "The sun was", params(16, 16, 8)),
                request("r2", "One day, a little girl went to the park", params(24, 8, 6)),
                request("r3", "Tom", params(8, 8, 8)),
                request("r4", "A cat", params(16, 8, 4)));
        SchedulerConfig config = new SchedulerConfig(2, 45, 16);
        StepLoop l = loop(config);
        for (SequenceRequest r : requests) {
            assertTrue(l.scheduler.add(r));
        }
        l.runToEnd(); // checkBudgets: at most 2 requests and 45 canvas tokens in every step
        List<String> firstSeen = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (StepBatch b : l.plans) {
            int tokens = 0;
            for (StepBatch.DenoiseStep d : b.denoises()) {
                tokens += d.canvasLength();
                if (seen.add(d.requestId())) {
                    firstSeen.add(d.requestId());
                }
            }
            assertTrue(tokens <= 45 && b.denoises().size() <= 2, "step " + b.stepId());
        }
        assertEquals(List.of("r0", "r1", "r2", "r3", "r4"), firstSeen, "admitted in arrival order");
        // r2 (canvas 34) waits while r0 and r1 run, although r3 behind it would fit: nobody jumps the queue.
        for (StepBatch b : l.plans) {
            Set<String> ids = StepLoop.idsIn(b);
            assertFalse(ids.contains("r3") && !seen.contains("r2"), "r3 before r2");
        }
        for (SequenceRequest r : requests) {
            l.outcome(r.requestId()).assertSameAs(reference(r).outcome(), r.requestId());
        }

        StepLoop small = loop(new SchedulerConfig(4, 20, 1));
        IllegalArgumentException tooBig = assertThrows(IllegalArgumentException.class,
                () -> small.scheduler.add(request("big", "Once upon a time", params(16, 8, 8))));
        assertTrue(tooBig.getMessage().startsWith("diffusion.gen_length:"), tooBig.getMessage());
        assertTrue(small.scheduler.add(request("w1", "Tom", params(8, 8, 8))));
        assertFalse(small.scheduler.add(request("w2", "Tom", params(8, 8, 8))), "maxWaiting 1");
    }

    @Test
    void cancelledRequestsLeaveTheNextPlanAndTheOthersAreUnchanged() {
        SequenceRequest keep = request("keep", "Once upon a time", params(16, 8, 8));
        StepLoop l = loop(new SchedulerConfig(2, 2048, 16));
        l.scheduler.add(keep);
        l.scheduler.add(request("inflight", "The sun was", params(16, 8, 8)));
        l.scheduler.add(request("waiting", "Tom", params(8, 8, 8)));
        l.step();
        // Cancelled between steps: gone from the next plan, its Finished comes with that step's events.
        l.scheduler.add(request("between", "A cat", params(8, 8, 8)));
        l.scheduler.cancel("waiting");
        StepBatch b = l.scheduler.plan();
        assertEquals(Set.of("keep", "inflight"), StepLoop.idsIn(b));
        l.scheduler.cancel("inflight"); // inside the step in flight: finished when it completes
        assertEquals(List.of("keep"), l.scheduler.snapshot().running());
        l.record(l.scheduler.complete(l.scheduler.execute(b)));
        l.plans.add(b);
        l.scheduler.cancel("between");
        l.runToEnd();
        for (String id : List.of("waiting", "inflight", "between")) {
            List<TokenEvent> events = l.events.get(id);
            assertEquals(1, events.size(), id + ": " + events);
            assertEquals(FinishReason.CANCELLED, ((TokenEvent.Finished) events.getFirst()).reason(), id);
        }
        for (StepBatch later : l.plans.subList(2, l.plans.size())) {
            assertEquals(Set.of("keep"), StepLoop.idsIn(later));
        }
        l.outcome("keep").assertSameAs(reference(keep).outcome(), "keep");
    }

    @Test
    void theFirstEosEndsTheRequestUnstreamedAndSkipsTheRemainingBlocks() {
        int[] once = prompt("Once upon a time");
        int eosAt = once.length + 11; // in the second block of 8
        DenoisingModel ending = BendableModel.endingAt(DenoisingModel.of(model), eosAt);
        SequenceRequest ends = SequenceRequest.diffusion("ends", once, params(32, 8, 16), List.of(), false);
        SequenceRequest other = request("other", "The sun was", params(16, 8, 8));
        StepLoop l = new StepLoop(new DiffusionScheduler(ending, SchedulerConfig.defaults(), clock::get,
                RangeExecutor.sameThread()),
                SchedulerConfig.defaults());
        l.scheduler.add(ends);
        l.runToEnd();
        Reference ref = reference(ends, ending);
        assertEquals(model.tokenizer().eosId(), ref.generation().canvas()[eosAt], "the bent model writes EOS there");
        StepLoop.Outcome got = l.outcome("ends");
        got.assertSameAs(ref.outcome(), "ends");
        assertEquals(FinishReason.STOP, got.reason());
        assertEquals(11, got.tokens().length, "the tokens before the EOS, in position order");
        assertEquals(12, got.completionTokens(), "the EOS counts");
        assertEquals(Arrays.toString(Arrays.copyOf(ref.generation().generated(), 11)), Arrays.toString(got.tokens()));
        assertEquals(8, stepsPerRequest(l).get("ends"), "two blocks of four steps; blocks 3 and 4 never run");
        assertTrue(l.events.get("ends").stream().noneMatch(e -> e instanceof TokenEvent.Token t
                && t.tokenId() == model.tokenizer().eosId()), "EOS is not streamed");
        // Batched with another request, both get what they get alone on the same (bent) model.
        StepLoop both = new StepLoop(new DiffusionScheduler(ending, SchedulerConfig.defaults(), clock::get,
                RangeExecutor.sameThread()), SchedulerConfig.defaults());
        both.scheduler.add(other);
        both.scheduler.add(ends);
        both.runToEnd();
        both.outcome("ends").assertSameAs(ref.outcome(), "ends batched");
        both.outcome("other").assertSameAs(reference(other, ending).outcome(), "other batched");
    }

    @Test
    void stopStringsCutTheTextAndEndTheRequestEarly() {
        SequenceRequest plain = request("plain", "Once upon a time", params(32, 8, 16));
        StepLoop.Outcome full = reference(plain).outcome();
        assertEquals(FinishReason.LENGTH, full.reason(), full.text());
        // Four characters of the third block's text: the request must stop there at the latest, without running
        // the fourth block.
        StreamingDecoder decoder = model.tokenizer().streamingDecoder().after(prompt("Once upon a time")[4]);
        StringBuilder twoBlocks = new StringBuilder();
        for (int i = 0; i < 18; i++) {
            twoBlocks.append(decoder.push(full.tokens()[i]));
        }
        String stop = full.text().substring(twoBlocks.length(), twoBlocks.length() + 4);
        SequenceRequest stopped = SequenceRequest.diffusion("stopped", prompt("Once upon a time"), params(32, 8, 16),
                List.of(stop, "never there"), false);
        StepLoop l = loop(SchedulerConfig.defaults());
        l.scheduler.add(stopped);
        l.runToEnd();
        StepLoop.Outcome got = l.outcome("stopped");
        got.assertSameAs(reference(stopped).outcome(), "stopped");
        assertEquals(FinishReason.STOP, got.reason());
        assertEquals(full.text().substring(0, full.text().indexOf(stop)), got.text(), "stop " + stop);
        assertTrue(stepsPerRequest(l).get("stopped") < 16, "blocks after the stop are not computed");
    }

    @Test
    void progressEventsComeOnlyWhenAskedOnePerStepBeforeTheBlock() {
        DiffusionParams p = params(16, 8, 8);
        StepLoop l = loop(SchedulerConfig.defaults());
        l.scheduler.add(SequenceRequest.diffusion("watched", prompt("The sun was"), p, List.of(), true));
        l.scheduler.add(request("quiet", "The sun was", p));
        l.runToEnd();
        assertTrue(l.events.get("quiet").stream().noneMatch(e -> e instanceof TokenEvent.DenoiseProgress));
        List<TokenEvent> events = l.events.get("watched");
        List<TokenEvent.DenoiseProgress> progress = new ArrayList<>();
        int tokensSeen = 0;
        for (TokenEvent e : events) {
            if (e instanceof TokenEvent.DenoiseProgress d) {
                progress.add(d);
                // A block's tokens come right after the progress of the step that completed it.
                assertEquals(d.step() < 4 ? 0 : 8, tokensSeen, "tokens before step " + d.step());
            } else if (e instanceof TokenEvent.Token) {
                tokensSeen++;
            }
        }
        assertEquals(8, progress.size());
        for (int s = 0; s < 8; s++) {
            assertEquals(s, progress.get(s).step());
            assertEquals(s / 4, progress.get(s).block());
            assertEquals(2 * (s + 1), progress.get(s).committed(), "two positions a step (8 per block, 4 steps)");
        }
        l.outcome("watched").assertSameAs(l.outcome("quiet"), "progress changes nothing else");
    }

    /** The real model, claiming device summaries (the host default: bitwise the logits path); counts each path's steps. */
    private static final class SummarizingModel extends BendableModel {
        int summarySteps;
        int logitSteps;
        private boolean inSummaries;

        SummarizingModel() {
            super(DenoisingModel.of(model));
        }

        @Override
        public boolean summarizesOnDevice() {
            return true;
        }

        @Override
        public void forwardSummaries(List<DenoiseInput> batch, float[][] logits, RowSummaries[] summaries) {
            summarySteps++;
            inSummaries = true;
            try {
                super.forwardSummaries(batch, logits, summaries);
            } finally {
                inSummaries = false;
            }
        }

        @Override
        public void forward(List<DenoiseInput> batch, float[][] logits) {
            logitSteps += inSummaries ? 0 : 1;
            super.forward(batch, logits);
        }
    }

    /**
     * On a model that says it makes row summaries on its device, steps whose requests are all greedy low-confidence
     * run through {@code forwardSummaries} and {@code applySummaries}, a step with a request that reads whole rows
     * (random remasking with temperature) runs the logits path, and every request streams exactly what it streams
     * alone.
     */
    @Test
    void greedyStepsRunOnSummariesAndEveryStreamEqualsItsRunAlone() {
        Map<String, SequenceRequest> requests = new LinkedHashMap<>();
        requests.put("a", request("a", "Once upon a time", params(16, 8, 8)));
        requests.put("b", request("b", "Tom had a red ball", new DiffusionParams(16, 8, 16, 0.0,
                Remasking.LOW_CONFIDENCE, 0.9, 0L)));
        requests.put("c", request("c", "The sun was", new DiffusionParams(8, 8, 4, 0.7, Remasking.RANDOM, null, 5L)));
        requests.put("d", request("d", "One day, a little", params(24, 8, 12)));
        SummarizingModel m = new SummarizingModel();
        SchedulerConfig config = new SchedulerConfig(4, 2048, 16);
        StepLoop l = new StepLoop(new DiffusionScheduler(m, config, clock::get, RangeExecutor.sameThread()), config);
        requests.values().forEach(r -> assertTrue(l.scheduler.add(r)));
        l.runToEnd();
        assertTrue(m.logitSteps >= 4, "steps with the sampled request read logits: " + m.logitSteps);
        assertTrue(m.summarySteps >= 4, "steps without it ran on summaries: " + m.summarySteps);
        assertEquals(l.plans.size(), m.logitSteps + m.summarySteps);
        for (SequenceRequest r : requests.values()) {
            l.outcome(r.requestId()).assertSameAs(reference(r).outcome(), r.requestId());
        }
    }

    @Test
    void aRequestOfTheWrongKindIsRefused() {
        StepLoop l = loop(SchedulerConfig.defaults());
        IllegalArgumentException ar = assertThrows(IllegalArgumentException.class, () -> l.scheduler.add(
                new SequenceRequest("ar", prompt("Tom"), 8, SamplingParams.GREEDY, List.of())));
        assertTrue(ar.getMessage().startsWith("diffusion:"), ar.getMessage());
        IllegalArgumentException mask = assertThrows(IllegalArgumentException.class, () -> l.scheduler.add(
                SequenceRequest.diffusion("m", new int[] {1, model.maskId()}, params(8, 8, 8), List.of(), false)));
        assertTrue(mask.getMessage().contains("mask id"), mask.getMessage());
        IllegalArgumentException context = assertThrows(IllegalArgumentException.class, () -> l.scheduler.add(
                request("ctx", "Tom", params(256, 256, 256))));
        assertTrue(context.getMessage().contains("context length"), context.getMessage());
        Scheduler autoregressive = new Scheduler(new FakeModel(96, h -> 3, 0f), SchedulerConfig.defaults(),
                clock::get);
        IllegalArgumentException dlm = assertThrows(IllegalArgumentException.class,
                () -> autoregressive.add(request("dlm", "Tom", params(8, 8, 8))));
        assertTrue(dlm.getMessage().startsWith("diffusion:"), dlm.getMessage());
        assertFalse(l.scheduler.hasWork());
    }
}

package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.LladaGeneration;
import io.stepstream.engine.dlm.RangeExecutor;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.sparse.PatternCache;
import io.stepstream.engine.sparse.SparseDPolicy;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * SparseD requests through the diffusion scheduler on the real tinystories-dlm (single-threaded, counter clock):
 * what they stream equals the engine's LladaGeneration run alone, their patterns are freed however they end, and a
 * tiny pattern budget never fails a request. Every test loads the model with a pattern cache of its own, so the
 * counters it reads are its own.
 */
class DiffusionSparseDSchedulerTest {
    private final AtomicLong clock = new AtomicLong(1_000);
    private DiffusionModel model;

    private DiffusionModel load(long capBytes) {
        model = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults().withComputeThreads(1),
                new PatternCache(capBytes));
        return model;
    }

    @AfterEach
    void close() {
        if (model != null) {
            model.close();
        }
    }

    private int[] prompt(String text) {
        return model.tokenizer().encode(text, true, false);
    }

    private static DiffusionParams params(int gen, int block, int steps, SparseDPolicy sparse) {
        return new DiffusionParams(gen, block, steps, 0.0, Remasking.LOW_CONFIDENCE, null, 0L).withSparseD(sparse);
    }

    private SequenceRequest request(String id, String text, DiffusionParams p) {
        return SequenceRequest.diffusion(id, prompt(text), p, List.of(), false);
    }

    private static LladaGeneration alone(DenoisingModel m, SequenceRequest r) {
        return DiffusionRuns.lladaAlone(m, r);
    }

    private int[] streamedTokens(LladaGeneration gen) {
        return DiffusionRuns.streamedTokens(DenoisingModel.of(model), gen);
    }

    private PatternCache cache() {
        return model.patternCache();
    }

    private void assertCacheEmpty(String when) {
        assertEquals(0, cache().bytesHeld(), when + ": pattern bytes");
        assertEquals(0, cache().patterns(), when + ": patterns");
        PatternCacheStats s = PatternCacheStats.of(cache());
        assertEquals(0, s.bytesInUse(), when);
        assertEquals(0, s.entries(), when);
    }

    private StepLoop loop(DenoisingModel m, SchedulerConfig config) {
        return new StepLoop(new DiffusionScheduler(m, config, clock::get, RangeExecutor.sameThread()), config);
    }

    @Test
    void selectOneThroughTheSchedulerEqualsDenseExactly() {
        load(PatternCache.DEFAULT_CAP_BYTES);
        DenoisingModel m = DenoisingModel.of(model);
        // Different prompt lengths, blocks, steps, block sizes and skips, batched together; select 1 keeps every
        // key block, so each must stream exactly what its dense twin streams alone.
        Map<String, SequenceRequest> sparse = new LinkedHashMap<>();
        sparse.put("a", request("a", "Once upon a time", params(32, 8, 16, new SparseDPolicy(0.2, 1.0, 8))));
        sparse.put("b", request("b", "One day, a little", params(24, 24, 24, new SparseDPolicy(0.0, 1.0, 4))));
        sparse.put("c", request("c", "The sun was", params(16, 8, 8, new SparseDPolicy(0.5, 1.0, 5))));
        StepLoop l = loop(m, SchedulerConfig.defaults());
        sparse.values().forEach(r -> assertTrue(l.scheduler.add(r)));
        l.runToEnd();
        assertTrue(cache().hits() > 0, "sparse steps ran through patterns: " + cache());
        for (SequenceRequest r : sparse.values()) {
            SequenceRequest dense = SequenceRequest.diffusion(r.requestId(), r.promptTokens(),
                    r.diffusion().withSparseD(null), List.of(), false);
            int[] expected = streamedTokens(alone(m, dense));
            assertArrayEquals(expected, l.outcome(r.requestId()).tokens(), r.requestId());
            assertEquals(FinishReason.LENGTH, l.outcome(r.requestId()).reason(), r.requestId());
        }
        assertCacheEmpty("after the batch");
    }

    @Test
    void sparseRequestsBatchedWithDenseOnesStreamWhatEachStreamsAlone() {
        load(PatternCache.DEFAULT_CAP_BYTES);
        DenoisingModel m = DenoisingModel.of(model);
        Map<String, SequenceRequest> requests = new LinkedHashMap<>();
        requests.put("s1", request("s1", "Once upon a time", params(32, 8, 16, new SparseDPolicy(0.2, 0.3, 4))));
        requests.put("d1", request("d1", "One day, a little", params(16, 8, 8, null)));
        requests.put("s2", request("s2", "Tom had a red ball and", params(24, 24, 24, new SparseDPolicy(0.1, 0.2, 8))));
        requests.put("s3", request("s3", "The sun", new DiffusionParams(16, 16, 16, 0.7, Remasking.RANDOM, null, 9L)
                .withSparseD(new SparseDPolicy(0.3, 0.5, 3))));
        requests.put("d2", request("d2", "A cat", params(16, 16, 16, null)));
        StepLoop l = loop(m, new SchedulerConfig(4, 2048, 16));
        assertTrue(l.scheduler.add(requests.get("s1")));
        assertTrue(l.scheduler.add(requests.get("d1")));
        l.step();
        l.step();
        l.step();
        assertTrue(l.scheduler.add(requests.get("s2")));
        assertTrue(l.scheduler.add(requests.get("s3")));
        l.step();
        assertTrue(l.scheduler.add(requests.get("d2")));
        l.runToEnd();
        boolean sparseAndDenseShared = l.plans.stream().anyMatch(b -> b.denoises().size() >= 4);
        assertTrue(sparseAndDenseShared, "sparse and dense requests shared forward passes");
        long hits = cache().hits();
        assertTrue(hits > 0, "the sparse requests attended through their patterns: " + cache());
        for (SequenceRequest r : requests.values()) {
            LladaGeneration ref = alone(m, r);
            assertArrayEquals(streamedTokens(ref), l.outcome(r.requestId()).tokens(), r.requestId());
        }
        assertCacheEmpty("after the batch and the solo runs");
    }

    /** Runs steps until the request holds a pattern (it is past its switch step). */
    private void untilItHoldsAPattern(StepLoop l, int atLeast) {
        for (int i = 0; i < 100 && cache().patterns() < atLeast; i++) {
            l.step();
        }
        assertTrue(cache().patterns() >= atLeast, "patterns held: " + cache());
    }

    @Test
    void everyWayARequestEndsFreesItsPattern() {
        load(PatternCache.DEFAULT_CAP_BYTES);
        BendableModel m = new BendableModel(DenoisingModel.of(model));
        SparseDPolicy early = new SparseDPolicy(0.1, 0.3, 4); // switches at step 1 of 8
        SchedulerConfig config = new SchedulerConfig(8, 4096, 16);

        // Finished: all blocks (LENGTH).
        StepLoop length = loop(m, config);
        length.scheduler.add(request("length", "Once upon a time", params(16, 8, 8, early)));
        untilItHoldsAPattern(length, 1);
        length.runToEnd();
        assertEquals(FinishReason.LENGTH, length.outcome("length").reason());
        assertEquals(16, length.outcome("length").completionTokens());
        assertCacheEmpty("after LENGTH");

        // Stopped at EOS: the story ends in the first block of two; the second never runs.
        int[] once = prompt("Once upon a time");
        m.eosFrom = once.length + 5;
        StepLoop eos = loop(m, config);
        eos.scheduler.add(SequenceRequest.diffusion("eos", once, params(16, 8, 8, early), List.of(), false));
        untilItHoldsAPattern(eos, 1);
        eos.runToEnd();
        assertEquals(FinishReason.STOP, eos.outcome("eos").reason());
        assertEquals(6, eos.outcome("eos").completionTokens(), "five tokens and the EOS");
        assertCacheEmpty("after EOS");
        m.eosFrom = Integer.MAX_VALUE;

        // Stopped by a stop string: the text of the story's first tokens stops it at its first block.
        SequenceRequest plain = request("plain", "The sun was", params(16, 8, 8, early));
        int[] story = streamedTokens(alone(m, plain));
        var decoder = model.tokenizer().streamingDecoder().after(plain.promptTokens()[plain.promptTokens().length - 1]);
        String firstText = decoder.push(story[0]) + decoder.push(story[1]) + decoder.push(story[2]);
        assertFalse(firstText.isBlank(), "the story's first tokens have text");
        StepLoop stop = loop(m, config);
        stop.scheduler.add(SequenceRequest.diffusion("stop", plain.promptTokens(), plain.diffusion(),
                List.of(firstText.strip()), false));
        untilItHoldsAPattern(stop, 1);
        stop.runToEnd();
        assertEquals(FinishReason.STOP, stop.outcome("stop").reason());
        assertTrue(stop.outcome("stop").completionTokens() <= 8, "stopped in the first block");
        assertCacheEmpty("after a stop string");

        // Cancelled: while waiting (no pattern yet), between steps and inside the step in flight (both holding one).
        StepLoop cancel = loop(m, new SchedulerConfig(2, 4096, 16));
        cancel.scheduler.add(request("between", "Once upon a time", params(32, 8, 16, early)));
        cancel.scheduler.add(request("inflight", "One day, a little", params(32, 8, 16, early)));
        cancel.scheduler.add(request("waiting", "Tom", params(16, 8, 8, early)));
        untilItHoldsAPattern(cancel, 2);
        cancel.scheduler.cancel("waiting");
        cancel.scheduler.cancel("between");
        StepBatch b = cancel.scheduler.plan();
        cancel.scheduler.cancel("inflight");
        cancel.record(cancel.scheduler.complete(cancel.scheduler.execute(b)));
        cancel.runToEnd();
        for (String id : List.of("between", "inflight", "waiting")) {
            assertEquals(FinishReason.CANCELLED, cancel.outcome(id).reason(), id);
        }
        assertCacheEmpty("after cancellations");

        // A failed step: its requests end with ERROR, their patterns freed.
        StepLoop failed = loop(m, config);
        failed.scheduler.add(request("f1", "Once upon a time", params(16, 8, 8, early)));
        failed.scheduler.add(request("f2", "The sun was", params(16, 16, 16, early)));
        untilItHoldsAPattern(failed, 2);
        m.failNext = true;
        StepBatch doomed = failed.scheduler.plan();
        RuntimeException thrown = assertThrows(IllegalStateException.class, () -> failed.scheduler.execute(doomed));
        failed.record(failed.scheduler.fail(doomed, thrown));
        assertEquals(FinishReason.ERROR, failed.outcome("f1").reason());
        assertEquals(FinishReason.ERROR, failed.outcome("f2").reason());
        assertCacheEmpty("after a failed step");

        // failAll (the model going away), with one running past its switch step and one still waiting.
        StepLoop all = loop(m, new SchedulerConfig(1, 4096, 16));
        all.scheduler.add(request("running", "Once upon a time", params(16, 8, 8, early)));
        all.scheduler.add(request("queued", "The sun was", params(16, 8, 8, early)));
        untilItHoldsAPattern(all, 1);
        all.record(all.scheduler.failAll());
        assertEquals(FinishReason.ERROR, all.outcome("running").reason());
        assertEquals(FinishReason.ERROR, all.outcome("queued").reason());
        assertCacheEmpty("after failAll");
        assertFalse(all.scheduler.hasWork());

        PatternCacheStats stats = all.scheduler.snapshot().patternCache();
        assertEquals(PatternCacheStats.of(cache()), stats, "the snapshot reports the model's cache");
        assertTrue(stats.hits() > 0 && stats.misses() > 0, stats.toString());
        assertEquals(0, stats.evictions());
    }

    @Test
    void aTinyPatternBudgetEvictsOrRefusesButNeverFailsARequest() {
        // One pattern's size: a request alone, read while it holds its pattern.
        load(PatternCache.DEFAULT_CAP_BYTES);
        SparseDPolicy policy = new SparseDPolicy(0.2, 0.3, 4);
        StepLoop probe = loop(DenoisingModel.of(model), SchedulerConfig.defaults());
        probe.scheduler.add(request("probe", "Once upon a time", params(32, 8, 16, policy)));
        untilItHoldsAPattern(probe, 1);
        long onePattern = cache().bytesHeld();
        assertTrue(onePattern > 0);
        probe.runToEnd();
        model.close();

        // Room for one pattern, two requests of the same shape: they evict each other, and both finish whole.
        load(onePattern + onePattern / 2);
        DenoisingModel m = DenoisingModel.of(model);
        StepLoop l = loop(m, SchedulerConfig.defaults());
        l.scheduler.add(request("x", "Once upon a time", params(32, 8, 16, policy)));
        l.scheduler.add(request("y", "Once upon a time", params(32, 8, 16, policy))); // same shape, same bytes
        l.runToEnd();
        for (String id : List.of("x", "y")) {
            assertEquals(FinishReason.LENGTH, l.outcome(id).reason(), id);
            assertEquals(32, l.outcome(id).completionTokens(), id + ": every token");
        }
        PatternCacheStats stats = l.scheduler.snapshot().patternCache();
        assertTrue(stats.evictions() > 0, "the two patterns did not fit together: " + stats);
        assertTrue(stats.hits() > 0, stats.toString());
        assertEquals(0, stats.refusals());
        assertEquals(onePattern + onePattern / 2, stats.capBytes());
        assertCacheEmpty("after the evicting pair");
        model.close();

        // No room at all: every pattern is refused, the requests run dense for life and equal dense exactly.
        load(0);
        DenoisingModel none = DenoisingModel.of(model);
        StepLoop dense = loop(none, SchedulerConfig.defaults());
        SequenceRequest r1 = request("r1", "Once upon a time", params(32, 8, 16, policy));
        SequenceRequest r2 = request("r2", "One day, a little", params(16, 16, 16, policy));
        dense.scheduler.add(r1);
        dense.scheduler.add(r2);
        dense.runToEnd();
        PatternCacheStats refused = dense.scheduler.snapshot().patternCache();
        assertEquals(2, refused.refusals(), refused.toString());
        assertEquals(0, refused.hits(), refused.toString());
        for (SequenceRequest r : List.of(r1, r2)) {
            SequenceRequest twin = SequenceRequest.diffusion(r.requestId(), r.promptTokens(),
                    r.diffusion().withSparseD(null), List.of(), false);
            assertArrayEquals(streamedTokens(alone(none, twin)), dense.outcome(r.requestId()).tokens(),
                    r.requestId());
        }
        assertCacheEmpty("after refusals");
    }

    @Test
    void anAutoregressiveSnapshotHasNoPatternCache() {
        load(PatternCache.DEFAULT_CAP_BYTES);
        Scheduler ar = new Scheduler(FakeModel.hashed(64), SchedulerConfig.defaults(), clock::get);
        assertNull(ar.snapshot().patternCache());
        PatternCacheStats fresh = new DiffusionScheduler(model, SchedulerConfig.defaults(), clock::get,
                RangeExecutor.sameThread()).snapshot()
                .patternCache();
        assertEquals(new PatternCacheStats(0, 0, 0, PatternCache.DEFAULT_CAP_BYTES, 0, 0, 0), fresh);
    }
}

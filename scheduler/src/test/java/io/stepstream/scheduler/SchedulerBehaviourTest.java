package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.Model;
import io.stepstream.engine.SamplingParams;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * The scheduler's behaviour against any model: batching gives each sequence exactly what it gets alone, budgets
 * hold, chunked prefill changes nothing, stops, cancellation, queue limit, failures. Single-threaded: the test
 * thread runs plan, execute and complete itself; time is a counter.
 */
abstract class SchedulerBehaviourTest {
    final AtomicLong clock = new AtomicLong(1_000);

    /** A fresh model instance (each scheduler gets its own, as each model gets its own scheduler). */
    abstract Model newModel();

    StepLoop loop(TrackingModel model, SchedulerConfig config) {
        return new StepLoop(new Scheduler(model, config, clock::get), config);
    }

    static SequenceRequest greedy(String id, int[] prompt, int maxTokens) {
        return new SequenceRequest(id, prompt, maxTokens, SamplingParams.GREEDY, List.of());
    }

    int[] randomPrompt(Random random, int length, int vocab) {
        int[] p = new int[length];
        p[0] = newModelBos();
        for (int i = 1; i < length; i++) {
            p[i] = 3 + random.nextInt(vocab - 3);
        }
        return p;
    }

    int newModelBos() {
        return newModel().tokenizer().bosId();
    }

    /** Runs one request on a fresh scheduler with the default budgets. */
    StepLoop.Outcome alone(SequenceRequest r) {
        StepLoop l = loop(new TrackingModel(newModel()), SchedulerConfig.defaults());
        assertTrue(l.scheduler.add(r));
        l.runToEnd();
        return l.outcome(r.requestId());
    }

    @Test
    void eightRequestsDecodedTogetherGetWhatEachGetsAlone() {
        Model probe = newModel();
        int vocab = probe.config().vocabSize();
        Random random = new Random(42);
        List<SequenceRequest> requests = new ArrayList<>();
        int[] promptLengths = {1, 3, 17, 40, 8, 29, 2, 12};
        for (int i = 0; i < 8; i++) {
            requests.add(greedy("r" + i, randomPrompt(random, promptLengths[i], vocab), 12 + random.nextInt(18)));
        }
        // Requests join at different steps, so they run next to sequences in every phase (prefill, decode).
        int[] joinAtStep = {0, 0, 0, 2, 2, 5, 9, 14};
        SchedulerConfig config = new SchedulerConfig(8, 24, 16);
        TrackingModel model = new TrackingModel(newModel());
        StepLoop together = loop(model, config);
        int step = 0;
        while (step <= joinAtStep[7] || together.scheduler.hasWork()) {
            for (int i = 0; i < 8; i++) {
                if (joinAtStep[i] == step) {
                    assertTrue(together.scheduler.add(requests.get(i)));
                }
            }
            together.step();
            step++;
        }
        int maxBatch = 0;
        for (StepBatch b : together.plans) {
            maxBatch = Math.max(maxBatch, StepLoop.idsIn(b).size());
        }
        assertTrue(maxBatch >= 5, "requests should overlap; largest step had " + maxBatch);
        for (SequenceRequest r : requests) {
            StepLoop.Outcome got = together.outcome(r.requestId());
            got.assertSameAs(alone(r), r.requestId());
            assertTrue(got.tokens().length > 0, r.requestId() + " generated nothing");
        }
        assertTrue(model.openCaches.isEmpty(), "caches left open: " + model.openCaches.size());
        assertEquals(0, together.scheduler.snapshot().kvBytes());
    }

    @Test
    void budgetsAreNeverExceeded() {
        Random random = new Random(7);
        SchedulerConfig config = new SchedulerConfig(3, 7, 100);
        TrackingModel model = new TrackingModel(newModel());
        StepLoop l = loop(model, config);
        int vocab = model.config().vocabSize();
        for (int i = 0; i < 20; i++) {
            assertTrue(l.scheduler.add(greedy("q" + i, randomPrompt(random, 1 + random.nextInt(30), vocab),
                    1 + random.nextInt(10))));
        }
        l.runToEnd(); // StepLoop checks every plan against both budgets
        boolean fullSeqs = false;
        boolean fullTokens = false;
        for (StepBatch b : l.plans) {
            fullSeqs |= StepLoop.idsIn(b).size() == 3;
            int tokens = b.decodes().size() + b.prefills().stream().mapToInt(StepBatch.PrefillChunk::length).sum();
            fullTokens |= tokens == 7;
        }
        assertTrue(fullSeqs && fullTokens, "the workload should reach both limits");
        for (var batch : model.forwards) {
            assertTrue(batch.entries().size() <= 3 && batch.totalTokens() <= 7, "forward over budget");
        }
        for (int i = 0; i < 20; i++) {
            l.outcome("q" + i);
        }
        assertTrue(model.openCaches.isEmpty());
    }

    @Test
    void chunkedPrefillEqualsUnchunked() {
        int vocab = newModel().config().vocabSize();
        SequenceRequest r = greedy("long", randomPrompt(new Random(3), 45, vocab), 20);
        SchedulerConfig small = new SchedulerConfig(4, 8, 4);
        StepLoop chunked = loop(new TrackingModel(newModel()), small);
        chunked.scheduler.add(r);
        chunked.runToEnd();
        List<StepBatch.PrefillChunk> chunks = new ArrayList<>();
        for (StepBatch b : chunked.plans) {
            chunks.addAll(b.prefills());
        }
        assertEquals(6, chunks.size(), "45 prompt tokens in chunks of 8");
        for (int i = 0; i < chunks.size(); i++) {
            assertEquals(8 * i, chunks.get(i).start());
            assertEquals(i == 5 ? 5 : 8, chunks.get(i).length());
            assertEquals(i == 5, chunks.get(i).last());
        }
        chunked.outcome("long").assertSameAs(alone(r), "chunked vs whole prompt");
    }

    @Test
    void maxTokensEndsWithLength() {
        int vocab = newModel().config().vocabSize();
        int[] prompt = randomPrompt(new Random(11), 5, vocab);
        StepLoop.Outcome full = alone(greedy("a", prompt, 40));
        int n = Math.min(6, full.tokens().length - 1);
        assertTrue(n >= 2, "reference output too short to cut");
        StepLoop.Outcome cut = alone(greedy("a", prompt, n));
        assertEquals(FinishReason.LENGTH, cut.reason());
        assertEquals(n, cut.completionTokens());
        assertEquals(List.of(java.util.Arrays.stream(full.tokens()).limit(n).boxed().toArray()),
                List.of(java.util.Arrays.stream(cut.tokens()).boxed().toArray()));
        assertTrue(full.text().startsWith(cut.text()));
    }

    @Test
    void fullContextEndsWithLength() {
        Model m = newModel();
        int ctx = m.config().contextLength();
        int[] prompt = randomPrompt(new Random(5), ctx - 3, m.config().vocabSize());
        StepLoop.Outcome o = alone(greedy("ctx", prompt, 1000));
        assertEquals(ctx - 3, o.promptTokens());
        assertTrue(o.completionTokens() <= 3);
        if (o.reason() == FinishReason.LENGTH) {
            assertEquals(3, o.completionTokens());
        }
        // A prompt filling the whole context still yields the token its last position predicts.
        StepLoop.Outcome whole = alone(greedy("whole", randomPrompt(new Random(6), ctx, m.config().vocabSize()), 9));
        assertEquals(1, whole.completionTokens());
        StepLoop l = loop(new TrackingModel(newModel()), SchedulerConfig.defaults());
        assertThrows(IllegalArgumentException.class, () -> l.scheduler.add(greedy("over", new int[ctx + 1], 1)));
    }

    @Test
    void stopStringAcrossTokenBoundariesIsCutAndNothingAfterItStreams() {
        int vocab = newModel().config().vocabSize();
        int[] prompt = randomPrompt(new Random(21), 4, vocab);
        StepLoop ref = loop(new TrackingModel(newModel()), SchedulerConfig.defaults());
        ref.scheduler.add(greedy("ref", prompt, 40));
        ref.runToEnd();
        List<String> pieces = ref.tokenTexts("ref");
        // A stop string from the middle of one token's text into a later token's text.
        int first = -1;
        for (int i = 2; i + 2 < pieces.size(); i++) {
            if (pieces.get(i).length() >= 2 && !pieces.get(i + 2).isEmpty()) {
                first = i;
                break;
            }
        }
        assertTrue(first >= 0, "reference text has no piece long enough: " + pieces);
        String before = String.join("", pieces.subList(0, first));
        String p = pieces.get(first);
        String stop = p.substring(1) + pieces.get(first + 1) + pieces.get(first + 2).substring(0, 1);
        String full = ref.outcome("ref").text();
        int cutAt = full.indexOf(stop);
        assertTrue(cutAt >= 0 && cutAt <= before.length() + 1);

        StepLoop l = loop(new TrackingModel(newModel()), SchedulerConfig.defaults());
        l.scheduler.add(new SequenceRequest("s", prompt, 40, SamplingParams.GREEDY, List.of("zzzz-unused", stop)));
        l.runToEnd();
        StepLoop.Outcome o = l.outcome("s");
        assertEquals(FinishReason.STOP, o.reason());
        assertEquals(full.substring(0, cutAt), o.text());
        // The token that completes the stop string is generated (counted) but nothing after it.
        int completes = 0;
        int length = 0;
        while (length < cutAt + stop.length()) {
            length += pieces.get(completes++).length();
        }
        assertEquals(completes, o.completionTokens());
        // Held-back text: while the stop string could still match, the streamed text stops short of it.
        List<String> streamed = l.tokenTexts("s");
        StringBuilder soFar = new StringBuilder();
        for (String s : streamed) {
            soFar.append(s);
            assertTrue(full.substring(0, cutAt).startsWith(soFar.toString()), "streamed past the stop: " + soFar);
        }
    }

    @Test
    void cancelBetweenStepsLeavesTheNextPlanAndFreesTheCache() {
        TrackingModel model = new TrackingModel(newModel());
        StepLoop l = loop(model, SchedulerConfig.defaults());
        int vocab = model.config().vocabSize();
        Random random = new Random(9);
        for (String id : List.of("a", "b", "c")) {
            l.scheduler.add(greedy(id, randomPrompt(random, 6, vocab), 30));
        }
        l.step();
        l.step();
        assertEquals(3, model.openCaches.size());
        long bytesBefore = l.scheduler.snapshot().kvBytes();
        l.scheduler.cancel("b");
        assertEquals(2, model.openCaches.size(), "cache freed at once between steps");
        assertTrue(l.scheduler.snapshot().kvBytes() < bytesBefore);
        assertEquals(List.of("a", "c"), l.scheduler.snapshot().running());
        List<SequenceOutput> out = l.step();
        assertFalse(StepLoop.idsIn(l.plans.getLast()).contains("b"));
        assertEquals(List.of(new TokenEvent.Finished(FinishReason.CANCELLED, 6, 2, "")),
                out.stream().filter(o -> o.requestId().equals("b")).map(SequenceOutput::event).toList());
        l.scheduler.cancel("b"); // again: ignored
        l.runToEnd();
        assertEquals(FinishReason.CANCELLED, l.outcome("b").reason());
        assertNotEquals(FinishReason.CANCELLED, l.outcome("a").reason());
        assertTrue(model.openCaches.isEmpty());
    }

    @Test
    void cancelDuringAStepDropsItsResultAndFreesTheCacheWhenTheStepEnds() {
        TrackingModel model = new TrackingModel(newModel());
        StepLoop l = loop(model, SchedulerConfig.defaults());
        int vocab = model.config().vocabSize();
        l.scheduler.add(greedy("a", randomPrompt(new Random(1), 4, vocab), 30));
        l.scheduler.add(greedy("b", randomPrompt(new Random(2), 4, vocab), 30));
        l.step();
        StepBatch b = l.scheduler.plan();
        assertTrue(StepLoop.idsIn(b).contains("b"));
        l.scheduler.cancel("b"); // the step is in flight: its cache is still in use
        assertEquals(2, model.openCaches.size());
        List<SequenceOutput> out = l.scheduler.complete(l.scheduler.execute(b));
        l.record(out);
        assertEquals(List.of(new TokenEvent.Finished(FinishReason.CANCELLED, 4, 1, "")),
                out.stream().filter(o -> o.requestId().equals("b")).map(SequenceOutput::event).toList());
        assertEquals(1, model.openCaches.size());
        assertEquals(List.of("a"), l.scheduler.snapshot().running());
        l.step();
        assertEquals(Set.of("a"), StepLoop.idsIn(l.plans.getLast()));
    }

    @Test
    void cancelWhileWaitingIsReportedByTheNextStep() {
        TrackingModel model = new TrackingModel(newModel());
        StepLoop l = loop(model, new SchedulerConfig(1, 64, 8));
        l.scheduler.add(greedy("run", new int[] {newModelBos()}, 3));
        l.scheduler.add(greedy("wait", new int[] {newModelBos()}, 3));
        l.step();
        assertEquals(List.of("wait"), l.scheduler.snapshot().waiting());
        l.scheduler.cancel("wait");
        assertEquals(List.of(), l.scheduler.snapshot().waiting());
        l.runToEnd();
        StepLoop.Outcome o = l.outcome("wait");
        assertEquals(FinishReason.CANCELLED, o.reason());
        assertEquals(0, o.completionTokens());
        // Alone, a cancelled waiting request still gets its Finished from an (empty) step.
        StepLoop idle = loop(new TrackingModel(newModel()), new SchedulerConfig(1, 64, 8));
        idle.scheduler.add(greedy("x", new int[] {newModelBos()}, 3));
        idle.scheduler.cancel("x");
        assertTrue(idle.scheduler.hasWork());
        idle.step();
        assertTrue(idle.plans.getLast().isEmpty());
        assertEquals(FinishReason.CANCELLED, idle.outcome("x").reason());
        assertFalse(idle.scheduler.hasWork());
    }

    @Test
    void queueLimitRefusesWhenFull() {
        StepLoop l = loop(new TrackingModel(newModel()), new SchedulerConfig(2, 64, 3));
        int bos = newModelBos();
        for (int i = 0; i < 3; i++) {
            assertTrue(l.scheduler.add(greedy("w" + i, new int[] {bos}, 2)));
        }
        assertFalse(l.scheduler.add(greedy("w3", new int[] {bos}, 2)));
        assertEquals(3, l.scheduler.snapshot().waiting().size());
        l.step(); // admits two
        assertEquals(1, l.scheduler.snapshot().waiting().size());
        assertTrue(l.scheduler.add(greedy("w3", new int[] {bos}, 2)));
        assertThrows(IllegalArgumentException.class, () -> l.scheduler.add(greedy("w3", new int[] {bos}, 2)));
        l.runToEnd();
        assertEquals(Set.of("w0", "w1", "w2", "w3"), l.events.keySet());
        assertFalse(l.events.containsKey("w4"));
    }

    @Test
    void engineFailureFailsOnlyThatStepsSequences() {
        TrackingModel model = new TrackingModel(newModel());
        StepLoop l = loop(model, new SchedulerConfig(2, 64, 8));
        int vocab = model.config().vocabSize();
        Random random = new Random(4);
        SequenceRequest later = greedy("later", randomPrompt(random, 5, vocab), 8);
        l.scheduler.add(greedy("x", randomPrompt(random, 5, vocab), 8));
        l.scheduler.add(greedy("y", randomPrompt(random, 5, vocab), 8));
        l.scheduler.add(later);
        l.step();
        StepBatch b = l.scheduler.plan();
        assertEquals(Set.of("x", "y"), StepLoop.idsIn(b));
        model.failNextForward = new IllegalStateException("device lost");
        RuntimeException e = assertThrows(RuntimeException.class, () -> l.scheduler.execute(b));
        List<SequenceOutput> out = l.scheduler.fail(b, e);
        l.record(out);
        assertEquals(2, out.size());
        for (SequenceOutput o : out) {
            assertEquals(new TokenEvent.Finished(FinishReason.ERROR, 5, 1, ""), o.event());
        }
        assertTrue(model.openCaches.isEmpty());
        l.runToEnd();
        l.outcome("later").assertSameAs(alone(later), "after a failed step");
    }

    @Test
    void timingsUseTheInjectedClock() {
        TrackingModel model = new TrackingModel(newModel());
        StepLoop l = loop(model, new SchedulerConfig(1, 64, 8));
        clock.set(100);
        l.scheduler.add(greedy("a", new int[] {newModelBos()}, 5));
        clock.set(200);
        l.scheduler.add(greedy("b", new int[] {newModelBos()}, 5));
        clock.set(300);
        l.step();
        Map<String, SchedulerSnapshot.SequenceStats> stats = new java.util.HashMap<>();
        l.scheduler.snapshot().sequences().forEach(s -> stats.put(s.requestId(), s));
        assertEquals(new SchedulerSnapshot.SequenceStats("a", 100, 300, 300, 1, 1, 1), stats.get("a"));
        assertEquals(new SchedulerSnapshot.SequenceStats("b", 200, -1, -1, 1, 0, 0), stats.get("b"));
        assertEquals(1, l.scheduler.snapshot().stepsRun());
    }

    @Test
    void planTwiceWithoutCompletingIsRefused() {
        StepLoop l = loop(new TrackingModel(newModel()), SchedulerConfig.defaults());
        l.scheduler.add(greedy("a", new int[] {newModelBos()}, 5));
        StepBatch b = l.scheduler.plan();
        assertThrows(IllegalStateException.class, l.scheduler::plan);
        StepResult r = l.scheduler.execute(b);
        assertThrows(IllegalStateException.class, () -> l.scheduler.complete(new StepResult(b.stepId() + 1, List.of())));
        l.scheduler.complete(r);
        Set<Long> ids = new HashSet<>();
        ids.add(b.stepId());
        assertTrue(ids.add(l.scheduler.plan().stepId()), "step ids are unique");
    }

    @Test
    void kvMemoryExhaustedDelaysAdmissionUntilMemoryIsFreed() {
        TrackingModel model = new TrackingModel(newModel());
        model.maxOpenCaches = 2;
        StepLoop l = loop(model, new SchedulerConfig(4, 64, 8));
        int vocab = model.config().vocabSize();
        Random random = new Random(8);
        List<SequenceRequest> requests = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            requests.add(greedy("m" + i, randomPrompt(random, 3 + i, vocab), 4 + i));
            l.scheduler.add(requests.getLast());
        }
        while (l.scheduler.hasWork()) {
            l.step();
            assertTrue(l.scheduler.snapshot().running().size() <= 2);
        }
        for (SequenceRequest r : requests) {
            l.outcome(r.requestId()).assertSameAs(alone(r), r.requestId());
        }
        // With no memory at all and nothing running to free any, the request fails instead of waiting forever.
        TrackingModel none = new TrackingModel(newModel());
        none.maxOpenCaches = 0;
        StepLoop n = loop(none, SchedulerConfig.defaults());
        n.scheduler.add(greedy("n", new int[] {newModelBos()}, 3));
        n.runToEnd();
        assertEquals(FinishReason.ERROR, n.outcome("n").reason());
    }
}

package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Drives a scheduler on the test thread (plan, execute, complete) and collects every request's events. */
final class StepLoop {
    final StepScheduler scheduler;
    final SchedulerConfig config;
    final List<StepBatch> plans = new ArrayList<>();
    final Map<String, List<TokenEvent>> events = new LinkedHashMap<>();

    StepLoop(StepScheduler scheduler, SchedulerConfig config) {
        this.scheduler = scheduler;
        this.config = config;
    }

    /** One full step; checks the step's budgets and the event protocol on the way. */
    List<SequenceOutput> step() {
        StepBatch b = scheduler.plan();
        checkBudgets(b);
        plans.add(b);
        List<SequenceOutput> out = scheduler.complete(scheduler.execute(b));
        record(out);
        return out;
    }

    void record(List<SequenceOutput> out) {
        for (SequenceOutput o : out) {
            List<TokenEvent> list = events.computeIfAbsent(o.requestId(), k -> new ArrayList<>());
            if (!list.isEmpty() && list.getLast() instanceof TokenEvent.Finished) {
                fail("event after Finished for " + o.requestId() + ": " + o.event());
            }
            list.add(o.event());
        }
    }

    void runToEnd() {
        for (int i = 0; scheduler.hasWork(); i++) {
            if (i > 100_000) {
                fail("scheduler never ran out of work");
            }
            step();
        }
    }

    void checkBudgets(StepBatch b) {
        Set<String> seqs = new HashSet<>();
        int tokens = 0;
        for (StepBatch.PrefillChunk p : b.prefills()) {
            assertTrue(seqs.add(p.requestId()), "sequence twice in one step: " + p.requestId());
            tokens += p.length();
        }
        for (StepBatch.Decode d : b.decodes()) {
            assertTrue(seqs.add(d.requestId()), "sequence twice in one step: " + d.requestId());
            tokens++;
        }
        for (StepBatch.DenoiseStep d : b.denoises()) {
            assertTrue(seqs.add(d.requestId()), "sequence twice in one step: " + d.requestId());
            tokens += d.canvasLength();
        }
        assertTrue(seqs.size() <= config.maxNumSeqs(), "step " + b.stepId() + " has " + seqs.size() + " sequences");
        assertTrue(tokens <= config.maxNumBatchedTokens(), "step " + b.stepId() + " has " + tokens + " tokens");
        assertTrue(scheduler.snapshot().running().size() <= config.maxNumSeqs());
    }

    Outcome outcome(String id) {
        List<TokenEvent> list = events.get(id);
        assertTrue(list != null && !list.isEmpty(), "no events for " + id);
        List<Integer> ids = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < list.size() - 1; i++) {
            if (list.get(i) instanceof TokenEvent.DenoiseProgress) {
                continue;
            }
            if (!(list.get(i) instanceof TokenEvent.Token t)) {
                throw new AssertionError("Finished before the end for " + id);
            }
            ids.add(t.tokenId());
            text.append(t.text());
        }
        if (!(list.getLast() instanceof TokenEvent.Finished f)) {
            throw new AssertionError("no Finished for " + id);
        }
        text.append(f.text());
        int stopTokens = f.completionTokens() - ids.size();
        assertTrue(stopTokens == 0 || stopTokens == 1 && f.reason() == FinishReason.STOP,
                "completion tokens " + f.completionTokens() + " vs " + ids.size() + " streamed, " + f.reason());
        return new Outcome(ids.stream().mapToInt(Integer::intValue).toArray(), text.toString(), f.reason(),
                f.promptTokens(), f.completionTokens());
    }

    List<String> tokenTexts(String id) {
        List<String> texts = new ArrayList<>();
        for (TokenEvent e : events.get(id)) {
            if (e instanceof TokenEvent.Token t) {
                texts.add(t.text());
            }
        }
        return texts;
    }

    /** Every request id the step mentions. */
    static Set<String> idsIn(StepBatch b) {
        Set<String> ids = new HashSet<>();
        b.prefills().forEach(p -> ids.add(p.requestId()));
        b.decodes().forEach(d -> ids.add(d.requestId()));
        b.denoises().forEach(d -> ids.add(d.requestId()));
        return ids;
    }

    record Outcome(int[] tokens, String text, FinishReason reason, int promptTokens, int completionTokens) {
        void assertSameAs(Outcome other, String what) {
            assertEquals(java.util.Arrays.toString(other.tokens), java.util.Arrays.toString(tokens), what);
            assertEquals(other.text, text, what);
            assertEquals(other.reason, reason, what);
            assertEquals(other.completionTokens, completionTokens, what);
            assertFalse(tokens.length == 0 && reason == FinishReason.LENGTH, what + ": empty LENGTH output");
        }
    }
}

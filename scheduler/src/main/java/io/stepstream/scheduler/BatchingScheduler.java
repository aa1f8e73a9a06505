package io.stepstream.scheduler;

import io.stepstream.engine.TokenLogprob;
import io.stepstream.engine.Tokenizer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * The bookkeeping both step schedulers share, whatever their step is: the waiting queue, the running requests in
 * admission order, the step in flight, cancellation, and the one way every request ends ({@link #finish}), so that
 * {@link Scheduler} and {@link DiffusionScheduler} differ only in how they plan, run and apply a step and in what
 * a request holds that must be freed ({@link #release}).
 *
 * <p>The contract is {@link StepScheduler}'s: one step in flight at a time; every method but {@code execute} on
 * the owner's thread; a cancel of a request inside the step in flight takes effect when that step completes or
 * fails, and every {@code Finished} produced between steps (cancellations, admissions that cannot run) is handed
 * out by the next {@code complete} or {@code fail}.
 *
 * @param <S> the scheduler's per-request state
 * @param <W> one request's part of a planned step
 */
abstract class BatchingScheduler<S extends TrackedSequence, W> implements StepScheduler {
    final SchedulerConfig config;
    final LongSupplier nanoClock;

    final ArrayDeque<S> waiting = new ArrayDeque<>();
    /** Admitted sequences in admission order. */
    final LinkedHashMap<String, S> running = new LinkedHashMap<>();
    private final Map<String, S> live = new HashMap<>();
    /** Events produced outside a step (cancellations), handed out by the next complete or fail. */
    final List<SequenceOutput> pending = new ArrayList<>();

    /** The planned step not yet completed; read by execute on the compute thread. */
    private volatile PlannedStep<W> inFlight;
    private long lastStepId;
    private long stepsRun;

    /** A planned step and each request's part in it, in the batch's order. */
    record PlannedStep<W>(StepBatch batch, List<W> work) {
        PlannedStep {
            work = List.copyOf(work);
        }
    }

    /** Applies one request's part of a completed step, for a request that was not cancelled meanwhile. */
    interface WorkResult<W> {
        void apply(W work, int index, List<SequenceOutput> out);
    }

    BatchingScheduler(SchedulerConfig config, LongSupplier nanoClock) {
        this.config = config;
        this.nanoClock = nanoClock;
    }

    /** The request a part of a step belongs to. */
    abstract S sequenceOf(W work);

    /**
     * Frees what the request holds beyond this class's books (KV cache, pattern, logits). Called once, when it
     * ends, never while it is in a forward pass.
     */
    abstract void release(S seq);

    /** The next step, numbered {@code stepId}: called only between steps. */
    abstract PlannedStep<W> planStep(long stepId);

    /** How a step's result applies to each of its parts. */
    abstract WorkResult<W> resultOf(StepResult result, PlannedStep<W> step);

    /** Bytes of keys and values the model holds for this scheduler's requests. */
    abstract long kvBytes();

    /** The model's SparseD pattern cache counters; null for a model without one. */
    PatternCacheStats patternCacheStats() {
        return null;
    }

    @Override
    public SchedulerConfig config() {
        return config;
    }

    /** @throws IllegalArgumentException when a request with that id is already queued or running */
    final void requireNewId(SequenceRequest r) {
        if (live.containsKey(r.requestId())) {
            throw new IllegalArgumentException("requestId: '" + r.requestId() + "' is already queued or running");
        }
    }

    /** True when {@code maxWaiting} requests already wait: {@code add} then queues nothing and returns false. */
    final boolean queueFull() {
        return waiting.size() >= config.maxWaiting();
    }

    final void enqueue(S seq) {
        waiting.addLast(seq);
        live.put(seq.id, seq);
    }

    /**
     * Moves a request from waiting to running: its stream's text follows {@code lastPromptToken} (after BOS the
     * leading space of the first piece is dropped, as llama2.c's run loop decodes it).
     */
    final void startRunning(S seq, Tokenizer tokenizer, int lastPromptToken, long now) {
        seq.decoder = tokenizer.streamingDecoder().after(lastPromptToken);
        seq.stopFilter = new StopStringFilter(seq.request.stopStrings());
        seq.admittedAtNanos = now;
        running.put(seq.id, seq);
    }

    /** Takes the sequence out of the next plan; unknown or finished ids are ignored. See the class comment. */
    @Override
    public final void cancel(String requestId) {
        S seq = live.get(requestId);
        if (seq == null || seq.cancelRequested) {
            return;
        }
        if (inFlightContains(seq)) {
            seq.cancelRequested = true; // it is in the forward pass; freed when the step completes or fails
            return;
        }
        waiting.remove(seq);
        pending.add(finish(seq, FinishReason.CANCELLED, ""));
    }

    @Override
    public final boolean hasWork() {
        return !waiting.isEmpty() || !running.isEmpty() || !pending.isEmpty();
    }

    @Override
    public final boolean stepInFlight() {
        return inFlight != null;
    }

    @Override
    public final StepBatch plan() {
        requireBetweenSteps();
        PlannedStep<W> step = planStep(lastStepId + 1);
        lastStepId = step.batch().stepId();
        inFlight = step;
        return step.batch();
    }

    /** The parts of the planned step {@code b}, for execute. */
    final List<W> plannedWork(StepBatch b) {
        PlannedStep<W> step = inFlight;
        if (step == null || step.batch().stepId() != b.stepId()) {
            throw new IllegalStateException("step " + b.stepId() + " is not the planned step");
        }
        return step.work();
    }

    /**
     * Applies a step's result; a request cancelled during the step is finished instead. Returns the events to
     * stream, per request in order, including those produced since the last step.
     */
    @Override
    public final List<SequenceOutput> complete(StepResult r) {
        PlannedStep<W> step = takeInFlight(r.stepId());
        WorkResult<W> result = resultOf(r, step);
        List<SequenceOutput> out = new ArrayList<>();
        for (int i = 0; i < step.work().size(); i++) {
            W w = step.work().get(i);
            S seq = sequenceOf(w);
            if (seq.cancelRequested) {
                out.add(finish(seq, FinishReason.CANCELLED, ""));
                continue;
            }
            result.apply(w, i, out);
        }
        return drainPending(out);
    }

    /**
     * The engine failed to run step {@code b}: every request in it finishes with ERROR (CANCELLED if it was
     * cancelled meanwhile) and is freed; the others go on.
     */
    @Override
    public final List<SequenceOutput> fail(StepBatch b, Throwable cause) {
        PlannedStep<W> step = takeInFlight(b.stepId());
        List<SequenceOutput> out = new ArrayList<>();
        for (W w : step.work()) {
            S seq = sequenceOf(w);
            out.add(finish(seq, seq.cancelRequested ? FinishReason.CANCELLED : FinishReason.ERROR, ""));
        }
        return drainPending(out);
    }

    /** Ends every live request with ERROR (the model is going away) and frees them. Only between steps. */
    @Override
    public final List<SequenceOutput> failAll() {
        requireBetweenSteps();
        List<SequenceOutput> out = drainPending(new ArrayList<>());
        for (S seq : List.copyOf(live.values())) {
            waiting.remove(seq);
            out.add(finish(seq, FinishReason.ERROR, ""));
        }
        return out;
    }

    private List<SequenceOutput> drainPending(List<SequenceOutput> out) {
        out.addAll(pending);
        pending.clear();
        return out;
    }

    private void requireBetweenSteps() {
        PlannedStep<W> step = inFlight;
        if (step != null) {
            throw new IllegalStateException("step " + step.batch().stepId() + " is still in flight");
        }
    }

    private PlannedStep<W> takeInFlight(long stepId) {
        PlannedStep<W> step = inFlight;
        if (step == null || step.batch().stepId() != stepId) {
            throw new IllegalStateException("step " + stepId + " is not the step in flight");
        }
        inFlight = null;
        stepsRun++;
        return step;
    }

    private boolean inFlightContains(S seq) {
        PlannedStep<W> step = inFlight;
        if (step == null) {
            return false;
        }
        for (W w : step.work()) {
            if (sequenceOf(w) == seq) {
                return true;
            }
        }
        return false;
    }

    /** Records the first streamed token's time, once. */
    final void markFirstToken(S seq) {
        if (seq.firstTokenAtNanos < 0) {
            seq.firstTokenAtNanos = nanoClock.getAsLong();
        }
    }

    /**
     * Streams one generated token through the request's decoder and stop strings. Returns true when a stop string
     * ended the request (its {@code Finished(STOP)} is then in {@code out}).
     */
    final boolean stream(S seq, int token, float logprob, List<TokenLogprob> top, List<SequenceOutput> out) {
        StopStringFilter.Release release = seq.stopFilter.push(seq.decoder.push(token));
        out.add(new SequenceOutput(seq.id, new TokenEvent.Token(token, release.text(), logprob, top)));
        if (release.stopped()) {
            out.add(finish(seq, FinishReason.STOP, ""));
            return true;
        }
        return false;
    }

    /** Finishes with whatever text was still held back (incomplete characters and stop-string prefixes). */
    final SequenceOutput finishWithText(S seq, FinishReason reason) {
        StopStringFilter.Release rest = seq.stopFilter.finish(seq.decoder.flush());
        return finish(seq, rest.stopped() ? FinishReason.STOP : reason, rest.text());
    }

    /** The one way out for every request: never called while the request is in a forward pass. */
    final SequenceOutput finish(S seq, FinishReason reason, String text) {
        live.remove(seq.id);
        running.remove(seq.id);
        release(seq);
        return new SequenceOutput(seq.id, new TokenEvent.Finished(reason, seq.promptLength, seq.completionTokens(),
                text));
    }

    /**
     * The state now; a request cancelled during the step in flight is no longer listed (what it holds is still
     * counted until that step ends).
     */
    @Override
    public final SchedulerSnapshot snapshot() {
        List<String> waitingIds = new ArrayList<>();
        List<SchedulerSnapshot.SequenceStats> stats = new ArrayList<>();
        for (S seq : waiting) {
            waitingIds.add(seq.id);
            stats.add(stats(seq));
        }
        List<String> runningIds = new ArrayList<>();
        for (S seq : running.values()) {
            if (!seq.cancelRequested) {
                runningIds.add(seq.id);
                stats.add(stats(seq));
            }
        }
        return new SchedulerSnapshot(waitingIds, runningIds, stepsRun, kvBytes(), stats, patternCacheStats());
    }

    private static SchedulerSnapshot.SequenceStats stats(TrackedSequence seq) {
        return new SchedulerSnapshot.SequenceStats(seq.id, seq.queuedAtNanos, seq.admittedAtNanos,
                seq.firstTokenAtNanos, seq.promptLength, seq.prefilledTokens(), seq.completionTokens());
    }
}

package io.stepstream.scheduler;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.KvCacheExhaustedException;
import io.stepstream.engine.Model;
import io.stepstream.engine.Sampler;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * Iteration-level batching for one model, in plain Java: sequences join and leave the batch at every step.
 *
 * <p>The step loop is {@code plan -> execute -> complete}. {@link #plan} decides what each sequence does this step
 * within the budgets: every running sequence past its prompt decodes one token, partly prefilled prompts
 * continue with their next chunk, then waiting sequences are admitted first-come first-served while fewer than
 * {@code maxNumSeqs} run and tokens are left in {@code maxNumBatchedTokens}; a prompt longer than what is left
 * is prefilled in chunks over several steps (chunked prefill). {@link #execute} runs the forward pass and samples
 * (it is the only method that may run on another thread). {@link #complete} appends the sampled tokens, checks
 * the stop conditions, frees finished sequences and returns the events to stream.
 *
 * <p>Exactly one step may be in flight: {@code plan} again before {@code complete} (or {@link #fail}) is an error.
 * Every method but {@code execute} must be called from one thread at a time (the owner's).
 *
 * <p>Cancellation: {@link #cancel} takes the sequence out of every later plan at once. A waiting sequence, or a
 * running one while no step is in flight, is freed right away; one inside the in-flight step is freed when that
 * step completes (its last result is dropped). In both cases its {@code Finished(CANCELLED)} is returned by the
 * next {@code complete} (or {@code fail}); {@link #hasWork} stays true until then, so a caller whose loop runs
 * while there is work gets it from an empty step.
 */
public final class Scheduler implements StepScheduler {
    private final Model model;
    private final SchedulerConfig config;
    private final LongSupplier nanoClock;
    private final int vocabSize;
    private final int contextLength;
    private final int eosId;
    private final int bosId;

    private final ArrayDeque<Sequence> waiting = new ArrayDeque<>();
    /** Admitted sequences in admission order. */
    private final LinkedHashMap<String, Sequence> running = new LinkedHashMap<>();
    private final Map<String, Sequence> live = new HashMap<>();
    /** Events produced outside a step (cancellations), handed out by the next complete or fail. */
    private final List<SequenceOutput> pending = new ArrayList<>();

    /** The planned step not yet completed; read by execute on the compute thread. */
    private volatile PlannedStep inFlight;
    private long lastStepId;
    private long stepsRun;
    /** Logit rows reused across steps; touched only by execute (one step at a time). */
    private float[][] logitRows = new float[0][];

    /** One sequence's part of a step: tokens {@code [offset, offset+length)} go into its cache. */
    private record Work(Sequence seq, int offset, int length, boolean prefill, boolean samples) {
    }

    private record PlannedStep(StepBatch batch, List<Work> work) {
    }

    public Scheduler(Model model, SchedulerConfig config, LongSupplier nanoClock) {
        this.model = model;
        this.config = config;
        this.nanoClock = nanoClock;
        this.vocabSize = model.config().vocabSize();
        this.contextLength = model.config().contextLength();
        this.eosId = model.tokenizer().eosId();
        this.bosId = model.tokenizer().bosId();
    }

    public Model model() {
        return model;
    }

    @Override
    public SchedulerConfig config() {
        return config;
    }

    /**
     * Queues a sequence. Returns false, and queues nothing, when {@code maxWaiting} requests are already waiting.
     *
     * @throws IllegalArgumentException when the request carries diffusion settings, the id is already live, the prompt does not fit the context or holds a
     *                                  token outside the vocabulary
     */
    @Override
    public boolean add(SequenceRequest r) {
        if (r.isDiffusion()) {
            throw new IllegalArgumentException("diffusion: model " + model.name() + " is autoregressive; diffusion"
                    + " settings are for diffusion models");
        }
        if (live.containsKey(r.requestId())) {
            throw new IllegalArgumentException("requestId: '" + r.requestId() + "' is already queued or running");
        }
        int[] prompt = r.promptTokens();
        if (prompt.length > contextLength) {
            throw new IllegalArgumentException("promptTokens: " + prompt.length
                    + " tokens do not fit the context of " + contextLength);
        }
        for (int t : prompt) {
            if (t < 0 || t >= vocabSize) {
                throw new IllegalArgumentException("promptTokens: token id " + t + " outside [0, " + vocabSize + ")");
            }
        }
        if (waiting.size() >= config.maxWaiting()) {
            return false;
        }
        Sequence seq = new Sequence(r, contextLength, nanoClock.getAsLong());
        waiting.addLast(seq);
        live.put(seq.id, seq);
        return true;
    }

    /** Takes the sequence out of the next plan; unknown or finished ids are ignored. See the class comment. */
    @Override
    public void cancel(String requestId) {
        Sequence seq = live.get(requestId);
        if (seq == null || seq.cancelRequested) {
            return;
        }
        if (running.containsKey(requestId) && inFlightContains(seq)) {
            seq.cancelRequested = true;
            return;
        }
        waiting.remove(seq);
        pending.add(finish(seq, FinishReason.CANCELLED, ""));
    }

    /** True while a step would do something: sequences wait or run, or events are still to be handed out. */
    @Override
    public boolean hasWork() {
        return !waiting.isEmpty() || !running.isEmpty() || !pending.isEmpty();
    }

    /** True between {@link #plan} and {@link #complete} / {@link #fail}. */
    @Override
    public boolean stepInFlight() {
        return inFlight != null;
    }

    /** The next step: decodes of running sequences, continued prefills, then new admissions; may be empty. */
    @Override
    public StepBatch plan() {
        if (inFlight != null) {
            throw new IllegalStateException("step " + inFlight.batch().stepId() + " is still in flight");
        }
        int budget = config.maxNumBatchedTokens();
        List<Work> work = new ArrayList<>();
        // Decodes first: one token each keeps every running stream moving while long prompts prefill.
        for (Sequence seq : running.values()) {
            if (budget == 0) {
                break;
            }
            if (!seq.prefilling()) {
                work.add(new Work(seq, seq.length - 1, 1, false, true));
                budget--;
            }
        }
        for (Sequence seq : running.values()) {
            if (budget == 0) {
                break;
            }
            if (seq.prefilling()) {
                budget -= addPrefill(seq, budget, work);
            }
        }
        long now = nanoClock.getAsLong();
        while (budget > 0 && !waiting.isEmpty() && running.size() < config.maxNumSeqs()) {
            Sequence seq = waiting.peekFirst();
            KvCache cache;
            try {
                cache = model.newKvCache();
            } catch (KvCacheExhaustedException cacheMemoryFull) {
                if (!running.isEmpty()) {
                    break; // stays first in line; retried once running sequences give memory back
                }
                // Nothing running will ever give memory back: waiting longer cannot help this request.
                waiting.removeFirst();
                pending.add(finish(seq, FinishReason.ERROR, ""));
                continue;
            }
            waiting.removeFirst();
            admit(seq, cache, now);
            budget -= addPrefill(seq, budget, work);
        }

        List<StepBatch.PrefillChunk> prefills = new ArrayList<>();
        List<StepBatch.Decode> decodes = new ArrayList<>();
        for (Work w : work) {
            if (w.prefill()) {
                prefills.add(new StepBatch.PrefillChunk(w.seq().id, w.offset(), w.length(), w.samples()));
            } else {
                decodes.add(new StepBatch.Decode(w.seq().id, w.offset()));
            }
        }
        StepBatch batch = new StepBatch(++lastStepId, prefills, decodes, List.of());
        inFlight = new PlannedStep(batch, List.copyOf(work));
        return batch;
    }

    private void admit(Sequence seq, KvCache cache, long now) {
        seq.cache = cache;
        seq.sampler = new Sampler(seq.request.sampling());
        // Text of the first generated token follows the last prompt token, as llama2.c's run loop decodes it
        // (after BOS the leading space of the first piece is dropped).
        seq.decoder = model.tokenizer().streamingDecoder().after(seq.tokens[seq.promptLength - 1]);
        seq.stopFilter = new StopStringFilter(seq.request.stopStrings());
        seq.admittedAtNanos = now;
        running.put(seq.id, seq);
    }

    private static int addPrefill(Sequence seq, int budget, List<Work> work) {
        int n = Math.min(seq.promptLength - seq.prefilled, budget);
        boolean last = seq.prefilled + n == seq.promptLength;
        work.add(new Work(seq, seq.prefilled, n, true, last));
        return n;
    }

    /**
     * Runs the planned step: one forward pass over all its sequences, then samples the next token of each that
     * decoded or finished its prompt. May run on another thread than the other methods; touches only the model
     * and the step's sequences.
     */
    @Override
    public StepResult execute(StepBatch b) {
        PlannedStep step = inFlight;
        if (step == null || step.batch().stepId() != b.stepId()) {
            throw new IllegalStateException("step " + b.stepId() + " is not the planned step");
        }
        List<Work> work = step.work();
        if (work.isEmpty()) {
            return new StepResult(b.stepId(), List.of());
        }
        List<ForwardBatch.Entry> entries = new ArrayList<>(work.size());
        for (Work w : work) {
            entries.add(new ForwardBatch.Entry(w.seq().cache, w.seq().tokens, w.offset(), w.length()));
        }
        float[][] logits = logitRows(work.size());
        model.forward(new ForwardBatch(entries), logits);
        List<StepResult.SampledToken> sampled = new ArrayList<>();
        for (int i = 0; i < work.size(); i++) {
            Work w = work.get(i);
            if (w.samples()) {
                var s = w.seq().sampler.sample(logits[i]);
                sampled.add(new StepResult.SampledToken(w.seq().id, s.tokenId(), s.logprob(), s.top()));
            }
        }
        return new StepResult(b.stepId(), sampled);
    }

    private float[][] logitRows(int n) {
        if (logitRows.length < n) {
            float[][] grown = new float[Math.max(n, logitRows.length * 2)][];
            System.arraycopy(logitRows, 0, grown, 0, logitRows.length);
            for (int i = logitRows.length; i < grown.length; i++) {
                grown[i] = new float[vocabSize];
            }
            logitRows = grown;
        }
        return n == logitRows.length ? logitRows : java.util.Arrays.copyOf(logitRows, n);
    }

    /**
     * Applies a step's result: advances prefills, appends sampled tokens, applies the stop conditions, frees the
     * sequences that ended. Returns the events to stream, per request in order, including cancellations.
     */
    @Override
    public List<SequenceOutput> complete(StepResult r) {
        PlannedStep step = takeInFlight(r.stepId());
        Map<String, StepResult.SampledToken> sampled = new HashMap<>();
        for (StepResult.SampledToken s : r.sampled()) {
            sampled.put(s.requestId(), s);
        }
        List<SequenceOutput> out = new ArrayList<>();
        for (Work w : step.work()) {
            Sequence seq = w.seq();
            if (seq.cancelRequested) {
                out.add(finish(seq, FinishReason.CANCELLED, ""));
                continue;
            }
            if (w.prefill()) {
                seq.prefilled += w.length();
            }
            if (w.samples()) {
                StepResult.SampledToken s = sampled.get(seq.id);
                if (s == null) {
                    throw new IllegalArgumentException("step " + r.stepId() + " has no token for " + seq.id);
                }
                accept(seq, s, out);
            }
        }
        out.addAll(pending);
        pending.clear();
        return out;
    }

    /**
     * The engine failed to run step {@code b}: every sequence in it finishes with ERROR and is freed; the others
     * go on. Returns their events (and any pending cancellations).
     */
    @Override
    public List<SequenceOutput> fail(StepBatch b, Throwable cause) {
        PlannedStep step = takeInFlight(b.stepId());
        List<SequenceOutput> out = new ArrayList<>();
        for (Work w : step.work()) {
            Sequence seq = w.seq();
            out.add(finish(seq, seq.cancelRequested ? FinishReason.CANCELLED : FinishReason.ERROR, ""));
        }
        out.addAll(pending);
        pending.clear();
        return out;
    }

    /**
     * Ends every live sequence with ERROR (the model is going away) and frees them. Only between steps.
     */
    @Override
    public List<SequenceOutput> failAll() {
        if (inFlight != null) {
            throw new IllegalStateException("step " + inFlight.batch().stepId() + " is still in flight");
        }
        List<SequenceOutput> out = new ArrayList<>(pending);
        pending.clear();
        for (Sequence seq : List.copyOf(live.values())) {
            waiting.remove(seq);
            out.add(finish(seq, FinishReason.ERROR, ""));
        }
        return out;
    }

    private PlannedStep takeInFlight(long stepId) {
        PlannedStep step = inFlight;
        if (step == null || step.batch().stepId() != stepId) {
            throw new IllegalStateException("step " + stepId + " is not the step in flight");
        }
        inFlight = null;
        stepsRun++;
        return step;
    }

    private void accept(Sequence seq, StepResult.SampledToken s, List<SequenceOutput> out) {
        int token = s.tokenId();
        seq.tokens[seq.length++] = token;
        if (seq.firstTokenAtNanos < 0) {
            seq.firstTokenAtNanos = nanoClock.getAsLong();
        }
        // llama2.c ends a story by emitting BOS; EOS ends it elsewhere. Neither is streamed, both are counted.
        if (token == eosId || token == bosId) {
            out.add(finishWithText(seq, FinishReason.STOP));
            return;
        }
        StopStringFilter.Release release = seq.stopFilter.push(seq.decoder.push(token));
        out.add(new SequenceOutput(seq.id, new TokenEvent.Token(token, release.text(), s.logprob(), s.top())));
        if (release.stopped()) {
            out.add(finish(seq, FinishReason.STOP, ""));
        } else if (seq.generated() >= seq.request.maxTokens() || seq.length >= contextLength) {
            out.add(finishWithText(seq, FinishReason.LENGTH));
        }
    }

    /** Finishes with whatever text was still held back (incomplete characters and stop-string prefixes). */
    private SequenceOutput finishWithText(Sequence seq, FinishReason reason) {
        StopStringFilter.Release rest = seq.stopFilter.finish(seq.decoder.flush());
        return finish(seq, rest.stopped() ? FinishReason.STOP : reason, rest.text());
    }

    private SequenceOutput finish(Sequence seq, FinishReason reason, String text) {
        live.remove(seq.id);
        running.remove(seq.id);
        if (seq.cache != null) {
            seq.cache.close();
            seq.cache = null;
        }
        return new SequenceOutput(seq.id, new TokenEvent.Finished(reason, seq.promptLength, seq.generated(), text));
    }

    private boolean inFlightContains(Sequence seq) {
        PlannedStep step = inFlight;
        if (step == null) {
            return false;
        }
        for (Work w : step.work()) {
            if (w.seq() == seq) {
                return true;
            }
        }
        return false;
    }

    /** The state now; a sequence cancelled during the step in flight is no longer listed (its memory still is). */
    @Override
    public SchedulerSnapshot snapshot() {
        List<String> waitingIds = new ArrayList<>();
        List<SchedulerSnapshot.SequenceStats> stats = new ArrayList<>();
        for (Sequence seq : waiting) {
            waitingIds.add(seq.id);
            stats.add(stats(seq));
        }
        List<String> runningIds = new ArrayList<>();
        long kvBytes = 0;
        for (Sequence seq : running.values()) {
            if (!seq.cancelRequested) {
                runningIds.add(seq.id);
                stats.add(stats(seq));
            }
            if (seq.cache != null) {
                kvBytes += seq.cache.bytes();
            }
        }
        return new SchedulerSnapshot(waitingIds, runningIds, stepsRun, kvBytes, stats);
    }

    private static SchedulerSnapshot.SequenceStats stats(Sequence seq) {
        return new SchedulerSnapshot.SequenceStats(seq.id, seq.queuedAtNanos, seq.admittedAtNanos,
                seq.firstTokenAtNanos, seq.promptLength, seq.prefilled, seq.generated());
    }
}

package io.stepstream.scheduler;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.KvCacheExhaustedException;
import io.stepstream.engine.Model;
import io.stepstream.engine.Sampler;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.spi.BackendModel;
import java.util.ArrayList;
import java.util.HashMap;
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
 * <p>A step whose sampling sequences are all greedy without logprobs, on a model that reduces logits rows on its
 * device ({@link BackendModel#summarizesOnDevice}, e.g. {@code serve --backend opencl}), asks the model for each
 * entry's argmax ({@link BackendModel#forwardSummaries}) instead of its logits: the same tokens bitwise (the argmax
 * ties to the lowest id, as the greedy sampler's), 12 bytes an entry read back from the device instead of the
 * vocabulary's logits. Any other step runs the logits path and the sequences' samplers.
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
public final class Scheduler extends BatchingScheduler<Sequence, Scheduler.Work> {
    private final Model model;
    private final int vocabSize;
    private final int contextLength;
    private final int eosId;
    private final int bosId;

    /** Logit rows reused across steps; touched only by execute (one step at a time). */
    private float[][] logitRows = new float[0][];
    /** Row summaries of greedy steps on a device that makes them, reused across steps; touched only by execute. */
    private RowSummaries summaryRows;

    /** One sequence's part of a step: tokens {@code [offset, offset+length)} go into its cache. */
    record Work(Sequence seq, int offset, int length, boolean prefill, boolean samples) {
    }

    public Scheduler(Model model, SchedulerConfig config, LongSupplier nanoClock) {
        super(config, nanoClock);
        this.model = model;
        this.vocabSize = model.config().vocabSize();
        this.contextLength = model.config().contextLength();
        this.eosId = model.tokenizer().eosId();
        this.bosId = model.tokenizer().bosId();
    }

    public Model model() {
        return model;
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
        requireNewId(r);
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
        if (queueFull()) {
            return false;
        }
        enqueue(new Sequence(r, contextLength, nanoClock.getAsLong()));
        return true;
    }

    /** The next step: decodes of running sequences, continued prefills, then new admissions; may be empty. */
    @Override
    PlannedStep<Work> planStep(long stepId) {
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
        return new PlannedStep<>(new StepBatch(stepId, prefills, decodes, List.of()), work);
    }

    private void admit(Sequence seq, KvCache cache, long now) {
        seq.cache = cache;
        seq.sampler = new Sampler(seq.request.sampling());
        startRunning(seq, model.tokenizer(), seq.tokens[seq.promptLength - 1], now);
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
        List<Work> work = plannedWork(b);
        if (work.isEmpty()) {
            return new StepResult(b.stepId(), List.of());
        }
        List<ForwardBatch.Entry> entries = new ArrayList<>(work.size());
        for (Work w : work) {
            entries.add(new ForwardBatch.Entry(w.seq().cache, w.seq().tokens, w.offset(), w.length()));
        }
        float[][] logits = logitRows(work.size());
        ForwardBatch batch = new ForwardBatch(entries);
        List<StepResult.SampledToken> sampled = new ArrayList<>();
        if (model instanceof BackendModel device && device.summarizesOnDevice() && onlyGreedyIds(work)) {
            RowSummaries rows = summaryRows(work.size());
            device.forwardSummaries(batch, logits, rows);
            for (int i = 0; i < work.size(); i++) {
                Work w = work.get(i);
                if (w.samples()) {
                    // What the greedy sampler returns without logprobs: the argmax (same ties), no logprob, no top.
                    sampled.add(new StepResult.SampledToken(w.seq().id, rows.argmax()[i], Float.NaN, List.of()));
                }
            }
            return new StepResult(b.stepId(), sampled);
        }
        model.forward(batch, logits);
        for (int i = 0; i < work.size(); i++) {
            Work w = work.get(i);
            if (w.samples()) {
                var s = w.seq().sampler.sample(logits[i]);
                sampled.add(new StepResult.SampledToken(w.seq().id, s.tokenId(), s.logprob(), s.top()));
            }
        }
        return new StepResult(b.stepId(), sampled);
    }

    /**
     * Whether every sequence that samples this step needs of its logits only the argmax: greedy (temperature 0; top-k,
     * top-p and the seed do not change a greedy pick, and a greedy pick draws nothing from the sampler's random stream)
     * and no logprobs (logprobs 0: no token logprob, no top list). Nothing else reads the logits (the stop conditions
     * look at tokens and text; there are no penalties), so such a step may ask the model for row summaries instead.
     * A step in which nobody samples (prefill chunks only) qualifies too: its logits are not read at all.
     */
    private static boolean onlyGreedyIds(List<Work> work) {
        for (Work w : work) {
            if (w.samples()) {
                SamplingParams p = w.seq().sampler.params();
                if (!p.greedy() || p.logprobs() != 0) {
                    return false;
                }
            }
        }
        return true;
    }

    private RowSummaries summaryRows(int n) {
        if (summaryRows == null || summaryRows.capacity() < n) {
            summaryRows = RowSummaries.ofRows(Math.max(n, summaryRows == null ? 1 : 2 * summaryRows.capacity()));
        }
        return summaryRows;
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

    /** Advances prefills and appends the sampled tokens, applying the stop conditions. */
    @Override
    WorkResult<Work> resultOf(StepResult r, PlannedStep<Work> step) {
        Map<String, StepResult.SampledToken> sampled = new HashMap<>();
        for (StepResult.SampledToken s : r.sampled()) {
            sampled.put(s.requestId(), s);
        }
        return (w, index, out) -> {
            Sequence seq = w.seq();
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
        };
    }

    private void accept(Sequence seq, StepResult.SampledToken s, List<SequenceOutput> out) {
        int token = s.tokenId();
        seq.tokens[seq.length++] = token;
        markFirstToken(seq);
        // llama2.c ends a story by emitting BOS; EOS ends it elsewhere. Neither is streamed, both are counted.
        if (token == eosId || token == bosId) {
            out.add(finishWithText(seq, FinishReason.STOP));
            return;
        }
        if (stream(seq, token, s.logprob(), s.top(), out)) {
            return;
        }
        if (seq.generated() >= seq.request.maxTokens() || seq.length >= contextLength) {
            out.add(finishWithText(seq, FinishReason.LENGTH));
        }
    }

    @Override
    Sequence sequenceOf(Work w) {
        return w.seq();
    }

    /** Gives the sequence's KV blocks back to the pool. */
    @Override
    void release(Sequence seq) {
        if (seq.cache != null) {
            seq.cache.close();
            seq.cache = null;
        }
    }

    /** What the running sequences' caches hold, a cancelled one's included until its step ends. */
    @Override
    long kvBytes() {
        long kvBytes = 0;
        for (Sequence seq : running.values()) {
            if (seq.cache != null) {
                kvBytes += seq.cache.bytes();
            }
        }
        return kvBytes;
    }
}

package io.stepstream.scheduler;

import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DenoiseOutcome;
import io.stepstream.engine.dlm.DenoisingGeneration;
import io.stepstream.engine.dlm.DiffusionFamily;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DreamGeneration;
import io.stepstream.engine.dlm.LladaGeneration;
import io.stepstream.engine.dlm.RangeExecutor;
import io.stepstream.engine.dlm.RowSummaries;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * Step batching for one diffusion LM: every step is one forward pass over the canvases of all running requests,
 * each at its own denoising step, with its own prompt length and LLaDA settings.
 *
 * <p>{@link #plan}: every running request takes its next denoising step; then waiting requests are admitted first
 * come first served while fewer than {@code maxNumSeqs} run and their canvas fits what is left of
 * {@code maxNumBatchedTokens} (a denoising step costs its whole canvas, prompt + gen_length, since a bidirectional
 * model reads all of it every step; a canvas cannot be split over steps, so {@link #add} refuses one larger than
 * the budget). The head of the queue waits for room rather than being overtaken, so admission order is arrival
 * order. A running request's cost never changes, so running requests always fit their next step.
 *
 * <p>{@link #execute}: one {@link DiffusionModel#forward} (through {@link DenoisingModel}) for the step, then
 * each request's {@link DenoisingGeneration#apply(float[], RangeExecutor)} (argmax, confidences, remasking) on the
 * scheduler's {@link RangeExecutor}: the requests in parallel, and inside each its block positions (see
 * {@link DenoisingGeneration#applyAll}). Since the model's logits of a canvas are the same alone or batched, and a
 * parallel apply is bitwise a sequential one, so is every request's canvas. When the model makes row summaries on
 * its device ({@link DenoisingModel#summarizesOnDevice}, e.g. {@code serve --backend opencl}) and every request of
 * the step accepts them ({@link DenoisingGeneration#acceptsSummaries}: greedy low-confidence LLaDA), the step runs
 * {@link DenoisingModel#forwardSummaries} instead and each request's {@link DenoisingGeneration#applySummaries}: the
 * argmax and confidence of each row come back instead of the row, and what is left on the host is the remasking.
 *
 * <p>{@link #complete} streams a block when it is committed: its tokens in position order as
 * {@link TokenEvent.Token}s (no log-probabilities), their text decoded after the prompt's last token. The model
 * pads a finished story with EOS: the first EOS ends the request with STOP (not streamed, but counted in the
 * completion tokens) and frees it without computing the remaining blocks. Stop strings cut the text as for
 * autoregressive requests. All blocks done without either: LENGTH. A position where the model kept the mask id
 * itself (LLaDA allows it) has no token and is skipped. With {@code progress}, each step also sends a
 * {@link TokenEvent.DenoiseProgress}, before the tokens of a block that step completed. A request with a Fast-dLLM
 * cache ({@code DiffusionParams.cache}) has its kept keys and values freed whenever it ends; its admission cost stays
 * its whole canvas, which its block-refresh steps run.
 *
 * <p>SparseD: a request whose settings carry a {@link io.stepstream.engine.sparse.SparseDPolicy} owns a pattern in
 * the model's cache from its switch step on; whatever ends the request (finished, stopped, cancelled, a failed
 * step, {@link #failAll}), the scheduler frees it through {@link DenoisingModel#releasePattern} at that moment, so
 * an idle model holds no pattern bytes. A pattern that does not fit the cache never fails the request: the cache
 * evicts idle ones or refuses it, and the request runs dense where it has no pattern.
 *
 * <p>A Dream model ({@link DiffusionFamily#DREAM}) is served the same way with {@link DreamGeneration}s: its
 * requests carry {@link SequenceRequest#dream()} settings, and what it reports as a "block" is the run of
 * positions that became final since the last one (a filled position never changes), so its stream too is in
 * position order and ends with the whole generated canvas.
 *
 * <p>Threading and cancellation are as in {@link StepScheduler}; exactly one step may be in flight.
 */
public final class DiffusionScheduler extends BatchingScheduler<DenoiseSequence, DenoiseSequence> {
    private final DenoisingModel model;
    private final int maskId;
    private final int eosId;
    private final RangeExecutor applyExecutor;

    public DiffusionScheduler(DiffusionModel model, SchedulerConfig config, LongSupplier nanoClock) {
        this(DenoisingModel.of(model), config, nanoClock);
    }

    /** Applies each step's results on {@link RangeExecutor#machine()}: as many threads as the machine has cores. */
    public DiffusionScheduler(DenoisingModel model, SchedulerConfig config, LongSupplier nanoClock) {
        this(model, config, nanoClock, RangeExecutor.machine());
    }

    public DiffusionScheduler(DiffusionModel model, SchedulerConfig config, LongSupplier nanoClock,
                              RangeExecutor applyExecutor) {
        this(DenoisingModel.of(model), config, nanoClock, applyExecutor);
    }

    /**
     * @param applyExecutor where a step's host work after the forward runs ({@link RangeExecutor#sameThread()} keeps
     *                      it all on the thread that calls {@link #execute})
     */
    public DiffusionScheduler(DenoisingModel model, SchedulerConfig config, LongSupplier nanoClock,
                              RangeExecutor applyExecutor) {
        super(config, nanoClock);
        if (applyExecutor == null) {
            throw new IllegalArgumentException("applyExecutor must not be null");
        }
        this.applyExecutor = applyExecutor;
        this.model = model;
        this.maskId = model.maskId();
        this.eosId = model.tokenizer().eosId();
    }

    /**
     * @throws IllegalArgumentException when the request has no diffusion settings, the id is already live, the
     *                                  prompt holds a token outside the text vocabulary or the mask id, the canvas
     *                                  does not fit the context, or it is larger than the step's token budget
     */
    @Override
    public boolean add(SequenceRequest r) {
        if (!r.isDiffusion()) {
            throw new IllegalArgumentException("diffusion: model " + model.name() + " is a diffusion model; the"
                    + " request needs diffusion settings");
        }
        requireNewId(r);
        boolean dream = model.family() == DiffusionFamily.DREAM;
        if (dream && r.dream() == null) {
            throw new IllegalArgumentException("diffusion: model " + model.name() + " is a Dream model; the request"
                    + " needs Dream settings (alg, alg_temp, top_p, top_k, eps), not LLaDA's");
        }
        if (!dream && r.dream() != null) {
            throw new IllegalArgumentException("diffusion: model " + model.name() + " is a LLaDA-style model; Dream"
                    + " settings do not apply to it");
        }
        // Checks the prompt's ids, the mask id and the context, naming what is wrong.
        DenoisingGeneration generation = dream
                ? new DreamGeneration(r.promptTokens(), r.dream(), model.maskId(), model.vocabSize(),
                        model.contextLength())
                : new LladaGeneration(r.promptTokens(), r.diffusion(), model.maskId(), model.vocabSize(),
                        model.contextLength());
        DenoiseSequence seq = new DenoiseSequence(r, generation, nanoClock.getAsLong());
        if (seq.canvasLength > config.maxNumBatchedTokens()) {
            throw new IllegalArgumentException("diffusion.gen_length: the canvas of " + seq.canvasLength
                    + " tokens (prompt " + seq.promptLength + " + gen_length " + (seq.canvasLength - seq.promptLength)
                    + ") is larger than a step's token budget of " + config.maxNumBatchedTokens()
                    + " (a canvas cannot be split over steps)");
        }
        if (queueFull()) {
            return false;
        }
        enqueue(seq);
        return true;
    }

    /** The next step: a denoising step of every running request, then new admissions; may be empty. */
    @Override
    PlannedStep<DenoiseSequence> planStep(long stepId) {
        int budget = config.maxNumBatchedTokens();
        List<DenoiseSequence> work = new ArrayList<>(running.values());
        for (DenoiseSequence seq : work) {
            budget -= seq.canvasLength;
        }
        long now = nanoClock.getAsLong();
        while (!waiting.isEmpty() && running.size() < config.maxNumSeqs()
                && waiting.peekFirst().canvasLength <= budget) {
            DenoiseSequence seq = waiting.removeFirst();
            admit(seq, now);
            work.add(seq);
            budget -= seq.canvasLength;
        }
        List<StepBatch.DenoiseStep> denoises = new ArrayList<>(work.size());
        for (DenoiseSequence seq : work) {
            denoises.add(new StepBatch.DenoiseStep(seq.id, seq.generation.forwards(),
                    seq.generation.currentBlock(), seq.canvasLength));
        }
        return new PlannedStep<>(new StepBatch(stepId, List.of(), List.of(), denoises), work);
    }

    private void admit(DenoiseSequence seq, long now) {
        seq.logits = new float[seq.generation.logitsLength()];
        if (model.summarizesOnDevice() && seq.generation.acceptsSummaries()) {
            seq.summaries = RowSummaries.ofRows(Math.max(1, seq.generation.logitsLength() / model.vocabSize()));
        }
        startRunning(seq, model.tokenizer(), seq.request.promptTokens()[seq.promptLength - 1], now);
    }

    /**
     * One forward pass over every canvas of the step, then each request's remasking. May run on another thread
     * than the other methods; touches only the model and the step's sequences.
     */
    @Override
    public StepResult execute(StepBatch b) {
        List<DenoiseSequence> work = plannedWork(b);
        if (work.isEmpty()) {
            return new StepResult(b.stepId(), List.of(), List.of());
        }
        List<DenoiseInput> inputs = new ArrayList<>(work.size());
        float[][] logits = new float[work.size()][];
        for (int i = 0; i < work.size(); i++) {
            inputs.add(work.get(i).generation.nextInput());
            logits[i] = work.get(i).logits;
        }
        DenoiseOutcome[] outcomes = summarized(work, inputs, logits);
        if (outcomes == null) {
            model.forward(inputs, logits);
            List<DenoisingGeneration> generations = new ArrayList<>(work.size());
            for (DenoiseSequence seq : work) {
                generations.add(seq.generation);
            }
            outcomes = DenoisingGeneration.applyAll(generations, logits, applyExecutor);
        }
        List<StepResult.Denoised> denoised = new ArrayList<>(work.size());
        for (int i = 0; i < work.size(); i++) {
            denoised.add(new StepResult.Denoised(work.get(i).id, outcomes[i]));
        }
        return new StepResult(b.stepId(), List.of(), denoised);
    }

    /**
     * The step through row summaries when the model makes them on its device and every request accepts them; null
     * (nothing run) otherwise. The applies are only the remasking then, so they run one after another here.
     */
    private DenoiseOutcome[] summarized(List<DenoiseSequence> work, List<DenoiseInput> inputs, float[][] logits) {
        if (!model.summarizesOnDevice()) {
            return null;
        }
        RowSummaries[] summaries = new RowSummaries[work.size()];
        for (int i = 0; i < work.size(); i++) {
            summaries[i] = work.get(i).summaries;
            if (summaries[i] == null) {
                return null;
            }
        }
        model.forwardSummaries(inputs, logits, summaries);
        DenoiseOutcome[] outcomes = new DenoiseOutcome[work.size()];
        for (int i = 0; i < work.size(); i++) {
            outcomes[i] = work.get(i).generation.applySummaries(summaries[i]);
        }
        return outcomes;
    }

    /** Streams the blocks committed this step and applies the stop conditions. */
    @Override
    WorkResult<DenoiseSequence> resultOf(StepResult r, PlannedStep<DenoiseSequence> step) {
        Map<String, DenoiseOutcome> outcomes = new HashMap<>();
        for (StepResult.Denoised d : r.denoised()) {
            outcomes.put(d.requestId(), d.outcome());
        }
        return (seq, index, out) -> {
            DenoiseOutcome outcome = outcomes.get(seq.id);
            if (outcome == null) {
                throw new IllegalArgumentException("step " + r.stepId() + " has no denoising outcome for " + seq.id);
            }
            accept(seq, outcome, step.batch().denoises().get(index).block(), out);
        };
    }

    private void accept(DenoiseSequence seq, DenoiseOutcome o, int block, List<SequenceOutput> out) {
        for (int token : o.committedTokens()) {
            if (token != maskId) {
                seq.committed++;
            }
        }
        if (seq.request.progress()) {
            out.add(new SequenceOutput(seq.id, new TokenEvent.DenoiseProgress(o.step(), seq.committed, block)));
        }
        if (o.blockCompleted()) {
            markFirstToken(seq);
            for (int token : o.textTokens(maskId)) {
                if (token == eosId) {
                    seq.stoppedAtEos = true;
                    out.add(finishWithText(seq, FinishReason.STOP));
                    return;
                }
                seq.streamed++;
                if (stream(seq, token, Float.NaN, List.of(), out)) {
                    return;
                }
            }
        }
        if (o.done()) {
            out.add(finishWithText(seq, FinishReason.LENGTH));
        }
    }

    @Override
    DenoiseSequence sequenceOf(DenoiseSequence work) {
        return work;
    }

    /** Frees the request's logits, SparseD pattern and Fast-dLLM keys and values. */
    @Override
    void release(DenoiseSequence seq) {
        seq.logits = null;
        seq.summaries = null;
        model.releasePattern(seq.generation.patternHandle());
        model.releaseKvCache(seq.generation.kvHandle()); // never in flight here: cancels mid-step wait for complete
    }

    /**
     * The Fast-dLLM keys and values held (0 when no request uses the cache: otherwise every step reads the whole
     * canvas). An admitted request counts its whole prompt as prefilled in the snapshot.
     */
    @Override
    long kvBytes() {
        return model.kvCacheBytes();
    }

    @Override
    PatternCacheStats patternCacheStats() {
        return model.patternCacheStats();
    }
}

package io.stepstream.engine.dlm;

import io.stepstream.engine.sparse.PatternHandle;

/**
 * One request's diffusion generation as a state machine a scheduler drives, one forward pass per step, whatever
 * the algorithm ({@link LladaGeneration}, {@link DreamGeneration}): ask {@link #nextInput()} for the canvas and the
 * rows whose logits it needs, batch it with other requests through {@link DiffusionModel#forward}, hand those
 * logits to {@link #apply(float[])}, until {@link #done()}.
 *
 * <p>What a request streams comes back in each {@link DenoiseOutcome} as "blocks": runs of canvas positions that
 * became final, in position order, never overlapping, together covering the generated part of the canvas once the
 * generation is done. For LLaDA a block is one of its semi-autoregressive blocks; for Dream see
 * {@link DreamGeneration}. Not thread-safe; one instance per request.
 */
public interface DenoisingGeneration {
    /** What the next forward needs; the canvas array is the generation's own: leave it alone during the forward. */
    DenoiseInput nextInput();

    /** Floats {@link #apply} reads at most (the largest logits range of any step x vocabulary). */
    int logitsLength();

    /** Takes the logits of the range {@link #nextInput()} asked for, position-major, and commits this step. */
    DenoiseOutcome apply(float[] logits);

    /**
     * {@link #apply(float[])} with its per-position work (argmax, softmax probabilities) split over {@code executor};
     * the outcome and every later step are bitwise the same as {@link #apply(float[])}'s: random draws keep their
     * documented order and each position's float64 sums their order. This default runs it all on the caller.
     */
    default DenoiseOutcome apply(float[] logits, RangeExecutor executor) {
        return apply(logits);
    }

    /**
     * Whether this step's decisions need of each logits row only its argmax and the argmax's float64 softmax
     * probability ({@link RowSummaries}), so that {@link #applySummaries} may stand in for {@link #apply(float[])}.
     * False by default (Dream, and LLaDA with sampling or random remasking, read more of each row).
     */
    default boolean acceptsSummaries() {
        return false;
    }

    /**
     * Commits this step from the summaries of the rows {@link #nextInput()} asked for (entry r = row r of its logits
     * range), only when {@link #acceptsSummaries()}. Host-made summaries give bitwise {@link #apply(float[])}'s
     * outcome; a device's confidences differ in the last bits (see {@link RowSummaries}).
     */
    default DenoiseOutcome applySummaries(RowSummaries summaries) {
        throw new UnsupportedOperationException(getClass().getSimpleName() + " needs whole logits rows, not row"
                + " summaries (acceptsSummaries() is false)");
    }

    /**
     * Applies {@code logits[i]} to {@code generations.get(i)} for every i: the requests in parallel on
     * {@code executor}, and each one's positions too (the calls nest), the outcomes returned by index so that what
     * follows sees them in the batch's order. Requests share nothing (each has its own canvas, scratch, random stream
     * and logits), so the outcomes are bitwise those of applying them one after another on one thread. Meant for
     * after the batch's forward has returned: the model's compute pool is idle then (it is not used here; it runs
     * one job at a time and cannot nest).
     */
    static DenoiseOutcome[] applyAll(java.util.List<? extends DenoisingGeneration> generations, float[][] logits,
                                     RangeExecutor executor) {
        DenoiseOutcome[] outcomes = new DenoiseOutcome[generations.size()];
        long floats = 0;
        for (DenoisingGeneration g : generations) {
            floats += g.logitsLength();
        }
        // Requests per chunk: small ones (a small vocabulary) share a chunk rather than pay a task each.
        int perRequest = (int) Math.max(1, floats / Math.max(1, generations.size()));
        int grain = Math.max(1, MIN_FLOATS_PER_CHUNK / perRequest);
        executor.run(generations.size(), grain, (from, to) -> {
            for (int i = from; i < to; i++) {
                outcomes[i] = generations.get(i).apply(logits[i], executor);
            }
        });
        return outcomes;
    }

    /**
     * Floats of vocabulary work below which a chunk is not worth a task of its own: about 0.2 ms of compare and exp
     * (some 5 ns a float on the development VM), well above a fork-join hand-off. Below it a small vocabulary's
     * requests run several to a chunk, and its positions all in one.
     */
    int MIN_FLOATS_PER_CHUNK = 1 << 15;

    /**
     * Positions per chunk for {@code positions} rows of {@code vocabSize}: at least {@link #MIN_FLOATS_PER_CHUNK}
     * floats each, and no more than about four chunks per thread.
     */
    static int positionGrain(int positions, int vocabSize, RangeExecutor executor) {
        int byWork = (int) Math.max(1, (MIN_FLOATS_PER_CHUNK + (long) vocabSize - 1) / Math.max(1, vocabSize));
        int byThreads = RangeExecutor.chunks(positions, 4 * Math.max(1, executor.parallelism()));
        return Math.max(byWork, byThreads);
    }

    boolean done();

    /** Forward passes applied so far. */
    int forwards();

    /** The block (stream chunk) the next step works on; for LLaDA the current block, for Dream chunks streamed. */
    int currentBlock();

    /** Tokens of the prompt at the start of the canvas. */
    int prefixLength();

    /** Prompt plus generated positions: the rows every step of this request puts through the model. */
    int canvasLength();

    int maskId();

    /** A copy of the whole canvas: prompt, committed tokens, masks still open. */
    int[] canvas();

    /** A copy of the generated part of the canvas (after the prompt). */
    int[] generated();

    /** The request's sparse pattern handle, or null when it attends densely; release it when the request ends. */
    PatternHandle patternHandle();

    /**
     * The request's Fast-dLLM cache handle, or null when it keeps no keys and values (the default: only LLaDA
     * generations with {@code DiffusionParams.cache} set have one); release it when the request ends.
     */
    default DlmKvHandle kvHandle() {
        return null;
    }

    /**
     * The canvas both algorithms start from: the prompt, then {@code genLength} masks. Checks the prompt (at least
     * one token, ids in the vocabulary, no mask) and that the canvas fits the context; {@code whyNonEmpty} says
     * why the algorithm needs a first token.
     */
    static int[] initialCanvas(int[] prompt, int genLength, int maskId, int vocabSize, int contextLength,
                               String whyNonEmpty) {
        if (prompt == null || prompt.length == 0) {
            throw new IllegalArgumentException("prompt must hold at least one token (" + whyNonEmpty + ")");
        }
        for (int i = 0; i < prompt.length; i++) {
            int t = prompt[i];
            if (t < 0 || t >= vocabSize) {
                throw new IllegalArgumentException("prompt token " + i + " is " + t + ", outside [0, " + vocabSize
                        + ")");
            }
            if (t == maskId) {
                throw new IllegalArgumentException("prompt token " + i + " is the mask id " + maskId
                        + "; prompts must not contain masks");
            }
        }
        if ((long) prompt.length + genLength > contextLength) {
            throw new IllegalArgumentException("gen_length " + genLength + " + prompt " + prompt.length
                    + " tokens exceed the model's context length " + contextLength);
        }
        int[] canvas = java.util.Arrays.copyOf(prompt, prompt.length + genLength);
        java.util.Arrays.fill(canvas, prompt.length, canvas.length, maskId);
        return canvas;
    }
}

package io.stepstream.engine.dlm;

import io.stepstream.engine.sparse.PatternHandle;
import io.stepstream.engine.sparse.SparseStep;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * One request's LLaDA generation as a state machine that a scheduler drives, one forward pass per step:
 * ask {@link #nextInput()} for the canvas and the logits range, batch it with other requests through
 * {@link DiffusionModel#forward}, hand the logits to {@link #apply(float[])}, until {@link #done()}.
 *
 * <p>The algorithm is LLaDA's {@code generate}. The canvas is the prompt (BOS included) followed by
 * gen_length mask ids, filled in blocks of block_length from left to right. With no threshold, each block gets
 * exactly steps / blocks forward passes, and step s of a block commits {@link #transferSchedule}{@code [s]}
 * positions: the block's mask count divided by its steps, the remainder spread one each over the first steps.
 * Each step, for every position of the current block:
 * <ul>
 *   <li>x0 = argmax over every id, the mask id included, ties to the lowest id: of the raw logits at
 *       temperature 0, else of the Gumbel-noised {@code exp(logit) / (-ln u)^temperature} in float64;</li>
 *   <li>confidence = the float64 softmax probability of x0 under the raw logits (LOW_CONFIDENCE), or a fresh
 *       uniform draw (RANDOM); positions that are no longer masked get -infinity;</li>
 * </ul>
 * then the most confident masked positions are committed to their x0, ties to the lower position. With a
 * threshold (Fast-dLLM), a step commits every masked position of the block whose confidence is at least the
 * threshold, and always the single most confident one; the block ends when it has no mask left (so the number of
 * forward passes varies), or, should the model keep choosing the mask id itself, after block_length passes.
 *
 * <p>Random draws come from the request's own {@link SplittableRandom} seeded with the params' seed, in this
 * order per step: with temperature above 0, one draw per (block position, vocabulary id), positions ascending
 * and ids ascending within a position, masked or not (like LLaDA's noise over the whole logits tensor); then,
 * with RANDOM remasking, one draw per block position, ascending. So the same seed and settings give the same
 * tokens whatever else shares the batch.
 *
 * <p>Logits outside the current block never change a decision (their confidence is -infinity), which is why
 * only the block's logits are asked for.
 *
 * <p>With SparseD settings in the params, each input also carries the request's {@link PatternHandle} and the
 * index of the forward pass, so the model can switch to the request's cached block pattern at the policy's switch
 * step (SparseD counts LLaDA's planned {@code steps} as the request's total). The scheduler must release the
 * handle ({@code model.patternCache().release(generation.patternHandle())}) when the request ends, done or not.
 *
 * <p>With a Fast-dLLM cache ({@link DlmCacheMode#PREFIX} or {@link DlmCacheMode#DUAL}), as Fast-dLLM's
 * {@code generate_with_prefix_cache} / {@code generate_with_dual_cache} do it: the first step of each block is a
 * refresh, running the whole canvas (as it stands before that step's commits) and keeping every layer's keys and
 * values; every later step of the block recomputes only the block and everything after it (PREFIX), or only the
 * block (DUAL), attending to the kept keys and values of the other positions. The decisions (x0, confidences, the
 * fixed schedule or the threshold, when a block ends) are exactly those above; only the logits differ, since the
 * kept keys and values are stale once tokens are committed. The input carries a {@link DlmCacheStep}; the scheduler
 * must free the request's keys and values ({@code model.releaseKvCache(generation.kvHandle())}) when it ends.
 * Not thread-safe; one instance per request.
 */
public final class LladaGeneration implements DenoisingGeneration {
    private final DiffusionParams params;
    private final int maskId;
    private final int vocabSize;
    private final int prefixLength;
    private final int[] canvas;
    private final SplittableRandom random;
    /** Null for dense attention. */
    private final PatternHandle patternHandle;
    /** Null without a Fast-dLLM cache. */
    private final DlmKvHandle kvHandle;

    private int block;
    private int blockStart;
    private DenoiseInput input;
    private int[] schedule;
    private int stepInBlock;
    private int forwards;
    private boolean done;

    // Per-step scratch over the block's positions.
    private final int[] x0;
    private final double[] confidence;
    private final boolean[] chosen;

    /**
     * @param prefix        the prompt as the model sees it, BOS first (e.g. {@code tokenizer.encode(text, true,
     *                      false)}); must not contain the mask id
     * @param maskId        the model's [MASK] id
     * @param vocabSize     logits per position
     * @param contextLength the model's longest canvas
     */
    public LladaGeneration(int[] prefix, DiffusionParams params, int maskId, int vocabSize, int contextLength) {
        if (params == null) {
            throw new IllegalArgumentException("params must not be null");
        }
        this.canvas = DenoisingGeneration.initialCanvas(prefix, params.genLength(), maskId, vocabSize, contextLength,
                "BOS");
        this.params = params;
        this.maskId = maskId;
        this.vocabSize = vocabSize;
        this.prefixLength = prefix.length;
        this.random = new SplittableRandom(params.seed());
        this.patternHandle = params.sparseD() == null ? null : new PatternHandle();
        this.kvHandle = params.cache() == DlmCacheMode.NONE ? null : new DlmKvHandle();
        int b = params.blockLength();
        this.x0 = new int[b];
        this.confidence = new double[b];
        this.chosen = new boolean[b];
        startBlock(0);
    }

    /** A generation for {@code model}'s mask id, vocabulary and context. */
    public static LladaGeneration start(DiffusionModel model, int[] prefix, DiffusionParams params) {
        return new LladaGeneration(prefix, params, model.maskId(), model.vocabSize(), model.contextLength());
    }

    /** Encodes {@code prompt} with the model's tokenizer, BOS first, and starts a generation. */
    public static LladaGeneration start(DiffusionModel model, String prompt, DiffusionParams params) {
        return start(model, model.tokenizer().encode(prompt, true, false), params);
    }

    /**
     * LLaDA's transfer counts for one block: {@code masked / steps} per step, plus one for each of the first
     * {@code masked % steps} steps.
     */
    public static int[] transferSchedule(int masked, int steps) {
        if (masked < 0 || steps < 1) {
            throw new IllegalArgumentException("need masked >= 0 and steps >= 1, got " + masked + ", " + steps);
        }
        int[] counts = new int[steps];
        Arrays.fill(counts, masked / steps);
        for (int s = 0; s < masked % steps; s++) {
            counts[s]++;
        }
        return counts;
    }

    private void startBlock(int b) {
        block = b;
        blockStart = prefixLength + b * params.blockLength();
        input = new DenoiseInput(canvas, blockStart, params.blockLength());
        int masked = 0;
        for (int p = blockStart; p < blockStart + params.blockLength(); p++) {
            if (canvas[p] == maskId) {
                masked++;
            }
        }
        schedule = transferSchedule(masked, params.stepsPerBlock());
        stepInBlock = 0;
    }

    /**
     * What the next forward needs: the whole canvas and the current block as the logits range. The canvas array is
     * the generation's own (not a copy): leave it alone, and do not call {@link #apply} during the forward.
     */
    public DenoiseInput nextInput() {
        requireRunning();
        if (kvHandle != null) {
            return new DenoiseInput(canvas, input.logitsStart(), input.logitsLength(), null,
                    new DlmCacheStep(kvHandle, params.cache(), stepInBlock == 0, blockStart,
                            blockStart + params.blockLength()));
        }
        if (patternHandle == null) {
            return input;
        }
        return new DenoiseInput(canvas, input.logitsStart(), input.logitsLength(),
                new SparseStep(patternHandle, params.sparseD(), forwards, params.steps(), prefixLength));
    }

    /** The request's sparse pattern handle, or null when it attends densely; release it when the request ends. */
    public PatternHandle patternHandle() {
        return patternHandle;
    }

    /** The request's Fast-dLLM cache handle, or null without a cache; free it when the request ends. */
    @Override
    public DlmKvHandle kvHandle() {
        return kvHandle;
    }

    /** Floats {@link #apply} reads: block_length positions x vocabulary. */
    public int logitsLength() {
        return params.blockLength() * vocabSize;
    }

    /**
     * Takes the logits of the current block (position-major, {@link #logitsLength()} floats, as
     * {@link DiffusionModel#forward} writes them), commits this step's positions and moves on.
     */
    public DenoiseOutcome apply(float[] logits) {
        return apply(logits, RangeExecutor.sameThread());
    }

    /**
     * {@link #apply(float[])} with the per-position argmax and softmax probability split over {@code executor}: at
     * temperature 0 both run per chunk of positions; above it, the noised argmax stays on the caller (its draws
     * follow the documented order) and only the probabilities, which draw nothing, are split. Each position's sums
     * run in the same order either way, so tokens and confidences are bitwise those of {@link #apply(float[])}.
     */
    @Override
    public DenoiseOutcome apply(float[] logits, RangeExecutor executor) {
        requireRunning();
        int b = params.blockLength();
        if (logits == null || logits.length < logitsLength()) {
            throw new IllegalArgumentException("logits must hold " + logitsLength() + " floats (" + b
                    + " positions x " + vocabSize + ")");
        }
        predict(logits, executor);
        return commit();
    }

    /**
     * True when a step's decisions need of each logits row only its argmax and that argmax's softmax probability:
     * greedy (temperature 0) low-confidence remasking, with or without a threshold. Gumbel noise (temperature above
     * 0) reads every logit, and random remasking ignores the probabilities.
     */
    @Override
    public boolean acceptsSummaries() {
        return params.temperature() == 0 && params.remasking() == Remasking.LOW_CONFIDENCE;
    }

    /**
     * {@link #apply(float[])} from the block's row summaries instead of its logits: row j's argmax is position j's
     * x0, its confidence position j's confidence. With summaries made on the host ({@link RowSummaries#summarize})
     * the outcome is bitwise that of applying the logits; from a device, the confidences may differ from the host's
     * in the last bits (see {@link RowSummaries}), which changes a decision only where two confidences tie that
     * closely.
     *
     * @throws IllegalStateException    when {@link #acceptsSummaries()} is false for these settings
     * @throws IllegalArgumentException when the summaries lack rows or hold an id outside the vocabulary
     */
    @Override
    public DenoiseOutcome applySummaries(RowSummaries summaries) {
        requireRunning();
        if (!acceptsSummaries()) {
            throw new IllegalStateException("row summaries are exact only for greedy low_confidence remasking; this"
                    + " generation has temperature " + params.temperature() + " and remasking " + params.remasking());
        }
        int b = params.blockLength();
        if (summaries == null || summaries.capacity() < b) {
            throw new IllegalArgumentException("summaries must hold the block's " + b + " rows, got "
                    + (summaries == null ? "null" : summaries.capacity()));
        }
        for (int j = 0; j < b; j++) {
            int id = summaries.argmax()[j];
            if (id < 0 || id >= vocabSize) {
                throw new IllegalArgumentException("summaries argmax[" + j + "] is " + id + ", outside [0, "
                        + vocabSize + ")");
            }
            x0[j] = id;
            confidence[j] = summaries.confidence()[j];
        }
        return commit();
    }

    /** Commits this step's positions from x0 and the confidences (of every block position) and moves on. */
    private DenoiseOutcome commit() {
        int b = params.blockLength();
        int masked = 0;
        for (int j = 0; j < b; j++) {
            chosen[j] = false;
            if (canvas[blockStart + j] != maskId) {
                confidence[j] = Double.NEGATIVE_INFINITY;
            } else {
                masked++;
            }
        }
        int commits;
        if (params.threshold() == null) {
            commits = Math.min(schedule[stepInBlock], masked);
            for (int c = 0; c < commits; c++) {
                chosen[mostConfidentUnchosen()] = true;
            }
        } else {
            commits = 0;
            if (masked > 0) {
                chosen[mostConfidentUnchosen()] = true;
                commits = 1;
                double threshold = params.threshold();
                for (int j = 0; j < b; j++) {
                    if (!chosen[j] && canvas[blockStart + j] == maskId && confidence[j] >= threshold) {
                        chosen[j] = true;
                        commits++;
                    }
                }
            }
        }
        int[] positions = new int[commits];
        int[] tokens = new int[commits];
        int c = 0;
        for (int j = 0; j < b; j++) {
            if (chosen[j]) {
                canvas[blockStart + j] = x0[j];
                positions[c] = blockStart + j;
                tokens[c++] = x0[j];
            }
        }
        int step = forwards++;
        stepInBlock++;
        int completed = -1;
        int completedStart = -1;
        int[] blockTokens = new int[0];
        if (blockFinished()) {
            completed = block;
            completedStart = blockStart;
            blockTokens = Arrays.copyOfRange(canvas, blockStart, blockStart + b);
            if (block + 1 == params.numBlocks()) {
                done = true;
                input = null;
            } else {
                startBlock(block + 1);
            }
        }
        return new DenoiseOutcome(step, positions, tokens, completed, completedStart, blockTokens, done);
    }

    private boolean blockFinished() {
        if (params.threshold() == null) {
            return stepInBlock == params.stepsPerBlock();
        }
        if (stepInBlock >= params.blockLength()) {
            return true; // only reachable when the model keeps committing the mask id itself
        }
        for (int p = blockStart; p < blockStart + params.blockLength(); p++) {
            if (canvas[p] == maskId) {
                return false;
            }
        }
        return true;
    }

    /** Fills x0 and confidence for every block position, drawing random numbers in the documented order. */
    private void predict(float[] logits, RangeExecutor executor) {
        int b = params.blockLength();
        double temperature = params.temperature();
        int grain = DenoisingGeneration.positionGrain(b, vocabSize, executor);
        if (temperature == 0) {
            executor.run(b, grain, (from, to) -> {
                for (int j = from; j < to; j++) {
                    x0[j] = argmax(logits, j * vocabSize);
                    lowConfidence(logits, j);
                }
            });
        } else {
            // The Gumbel draws run over every (position, id) in order on this thread; the probabilities after
            // them draw nothing, so they may run anywhere.
            for (int j = 0; j < b; j++) {
                x0[j] = noisedArgmax(logits, j * vocabSize, temperature);
            }
            if (params.remasking() == Remasking.LOW_CONFIDENCE) {
                executor.run(b, grain, (from, to) -> {
                    for (int j = from; j < to; j++) {
                        lowConfidence(logits, j);
                    }
                });
            }
        }
        if (params.remasking() == Remasking.RANDOM) {
            for (int j = 0; j < b; j++) {
                confidence[j] = random.nextDouble();
            }
        }
    }

    /** The raw logits' argmax of the row, ties to the lowest id (the code row summaries use too). */
    private int argmax(float[] logits, int row) {
        return RowSummaries.argmax(logits, row, vocabSize);
    }

    /** The argmax of exp(logit) / (-ln u)^temperature, one draw per id ascending, ties to the lowest id. */
    private int noisedArgmax(float[] logits, int row, double temperature) {
        int best = 0;
        double max = Double.NEGATIVE_INFINITY;
        for (int id = 0; id < vocabSize; id++) {
            double noise = Math.pow(-Math.log(random.nextDouble()), temperature);
            double score = Math.exp(logits[row + id]) / noise;
            if (score > max || id == 0) {
                max = score;
                best = id;
            }
        }
        return best;
    }

    /** With LOW_CONFIDENCE, position j's confidence: the probability of its x0, when it is still masked. */
    private void lowConfidence(float[] logits, int j) {
        // Unmasked positions get -infinity in apply(), so their probability is never needed.
        if (params.remasking() == Remasking.LOW_CONFIDENCE && canvas[blockStart + j] == maskId) {
            confidence[j] = probability(logits, j * vocabSize, x0[j]);
        }
    }

    /** softmax(logits[row ..])[id] in float64 (the code row summaries use too). */
    private double probability(float[] logits, int row, int id) {
        return RowSummaries.probability(logits, row, vocabSize, id);
    }

    /** The highest confidence not yet chosen, lowest position on ties; -infinity ones are never returned. */
    private int mostConfidentUnchosen() {
        int best = -1;
        for (int j = 0; j < params.blockLength(); j++) {
            if (!chosen[j] && confidence[j] != Double.NEGATIVE_INFINITY
                    && (best < 0 || confidence[j] > confidence[best])) {
                best = j;
            }
        }
        return best;
    }

    private void requireRunning() {
        if (done) {
            throw new IllegalStateException("generation is done");
        }
    }

    public boolean done() {
        return done;
    }

    public DiffusionParams params() {
        return params;
    }

    /** Forward passes applied so far. */
    public int forwards() {
        return forwards;
    }

    /** The block the next step works on (numBlocks once done). */
    public int currentBlock() {
        return done ? params.numBlocks() : block;
    }

    public int prefixLength() {
        return prefixLength;
    }

    @Override
    public int canvasLength() {
        return canvas.length;
    }

    public int maskId() {
        return maskId;
    }

    /** A copy of the whole canvas: prompt, committed tokens, masks still open. */
    public int[] canvas() {
        return canvas.clone();
    }

    /** A copy of the generated part of the canvas (after the prompt). */
    public int[] generated() {
        return Arrays.copyOfRange(canvas, prefixLength, canvas.length);
    }
}

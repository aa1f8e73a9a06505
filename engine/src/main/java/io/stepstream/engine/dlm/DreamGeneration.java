package io.stepstream.engine.dlm;

import io.stepstream.engine.sparse.PatternHandle;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * One request's Dream generation (Dream's {@code _sample}), driven one forward pass per step like
 * {@link LladaGeneration}.
 *
 * <p><b>Canvas.</b> The prompt ids exactly as given (Dream adds no BOS of its own: {@code x} is {@code input_ids}
 * padded on the right with the mask id up to prompt + max_new_tokens), then gen_length mask ids. Dream only builds
 * an attention mask and shifted position ids when the caller's attention_mask has zeros (left padding of a batch);
 * for an unpadded prompt it attends "full": every position sees the whole canvas, positions 0..len-1. That is what
 * this class asks of {@link DiffusionModel#forward}. (Dream's batch form also ranks masked positions of all rows of
 * the batch together; each request here is its own batch of one.)
 *
 * <p><b>Shift.</b> The logits Dream uses for position i are the model's output at position i - 1 (position 0 keeps
 * its own; it is always prompt here, since the prompt has at least one token). So for masked positions
 * {@code f..l} the input asks for the output rows {@code f-1 .. l-1}: the span from the first to the last masked
 * position, shifted left by one, the rows nothing else needs skipped.
 *
 * <p><b>Schedule.</b> timesteps = linspace(1, eps, steps + 1) in float32, computed as torch does (step =
 * (eps - 1) / steps; index i below (steps+1)/2 is 1 + step*i, else eps - step*(steps - i)); Dream's tensor has
 * torch's default dtype, float32, and so does 1 - s/t and the product with the mask count. At step i with
 * t = timesteps[i], s = timesteps[i+1]:
 * <ul>
 *   <li>origin: every masked position independently draws u and is filled when u < 1 - s/t (1 at the last step),
 *       with a token sampled as below; the others stay masked;</li>
 *   <li>maskgit_plus, topk_margin, entropy: every masked position gets a token x0 and a confidence (the probability
 *       of x0; top-1 minus top-2 probability; sum p log(p + 1e-10)); then int(masked * (1 - s/t)) positions (all at
 *       the last step) are filled with their x0: the most confident ones (ties to the lower position) when alg_temp
 *       is null or 0, else a sample without replacement from softmax(confidence / alg_temp), one position at a time
 *       (each draw picks from what is left, in proportion to its weight).</li>
 * </ul>
 * A token is chosen as Dream's {@code sample_tokens}: logits (float32 from the model, then float64) divided by the
 * temperature when it is above 0; then top_p (when below 1: sort descending, ties to the lower id; drop every token
 * after the first whose cumulative probability exceeds top_p), then top_k (drop logits below the k-th largest);
 * dropped tokens get probability 0; probabilities = float64 softmax. Temperature 0 takes the most probable id, ties
 * to the lowest id (the mask id included, as Dream does: a position "filled" with the mask id stays masked);
 * above 0 it samples by inverse CDF over ids ascending with one uniform draw.
 *
 * <p><b>Randomness.</b> The request's own {@link SplittableRandom} seeded with the params' seed (torch's generator
 * cannot be matched), {@code nextDouble()} per draw, in this order each step: origin: one draw per masked position
 * (ascending), then one per filled position (ascending) when temperature > 0; other algorithms: one per masked
 * position (ascending) when temperature > 0, then, with alg_temp > 0, one per position filled.
 *
 * <p><b>End.</b> Dream runs exactly steps forward passes. When no mask is left before that (origin can fill all,
 * and so can a step whose count rounds to all), the remaining passes could change nothing, so the generation ends
 * there with the same canvas.
 *
 * <p><b>Streaming.</b> A filled position never changes again, so text is final up to the first position still
 * masked. Each step's outcome reports as its "block" the run of positions from the end of what was already reported
 * up to (not including) the first mask; at the end, everything left (positions that kept the mask id have no text
 * and are skipped by {@link DenoiseOutcome#textTokens}). So the stream is always in position order, and its text
 * equals the final canvas's. {@link #currentBlock()} counts the runs reported so far.
 *
 * <p>Dense attention only (no SparseD). Not thread-safe; one instance per request.
 */
public final class DreamGeneration implements DenoisingGeneration {
    /** Dream adds it inside the log so that a zero probability has a finite log. */
    private static final double ENTROPY_EPSILON = 1e-10;

    private final DreamParams params;
    private final int maskId;
    private final int vocabSize;
    private final int prefixLength;
    private final int[] canvas;
    private final SplittableRandom random;
    private final float[] timesteps;

    private int forwards;
    private boolean done;
    /** Canvas positions before this one have been reported to the stream. */
    private int reported;
    private int chunks;
    /** The logits range the pending step asked for: masked positions first..last. */
    private int firstMasked;
    private int lastMasked;

    // Per-step scratch: masked positions, their x0 and confidence; per-position vocabulary work.
    private final int[] masked;
    private final int[] x0;
    private final double[] confidence;
    private final boolean[] fill;
    /** The uniform draw of each masked position's token sample (temperature above 0), drawn before the sampling. */
    private final double[] draw;
    /** Vocabulary scratch per chunk of positions ({@code from / grain}); chunk 0's made up front, others on demand. */
    private final Scratch[] scratch;

    /** One chunk's vocabulary work: z (scaled, filtered logits), their probabilities, the top_p order. */
    private record Scratch(double[] z, double[] probs, Integer[] order) {
        static Scratch of(int vocabSize, boolean topP) {
            return new Scratch(new double[vocabSize], new double[vocabSize], topP ? new Integer[vocabSize] : null);
        }
    }

    /**
     * @param prompt        the prompt ids exactly as the model sees them (at least one; Dream adds no BOS); must not
     *                      contain the mask id
     * @param maskId        the model's mask id
     * @param vocabSize     logits per position
     * @param contextLength the model's longest canvas
     */
    public DreamGeneration(int[] prompt, DreamParams params, int maskId, int vocabSize, int contextLength) {
        if (params == null) {
            throw new IllegalArgumentException("params must not be null");
        }
        this.canvas = DenoisingGeneration.initialCanvas(prompt, params.genLength(), maskId, vocabSize, contextLength,
                "Dream reads the logits of the first generated position from the last prompt position");
        if (params.topK() != null && params.topK() > vocabSize) {
            // Dream clamps top_k to the vocabulary; keeping every token is what that means.
            params = params.withSampling(params.temperature(), params.topP(), vocabSize, params.seed());
        }
        this.params = params;
        this.maskId = maskId;
        this.vocabSize = vocabSize;
        this.prefixLength = prompt.length;
        this.random = new SplittableRandom(params.seed());
        this.timesteps = timesteps(params.steps(), params.eps());
        int gen = params.genLength();
        this.masked = new int[gen];
        this.x0 = new int[gen];
        this.confidence = new double[gen];
        this.fill = new boolean[gen];
        this.draw = new double[gen];
        this.scratch = new Scratch[gen];
        this.scratch[0] = Scratch.of(vocabSize, usesTopP());
        this.reported = prefixLength;
        findMaskSpan();
    }

    /** A generation for {@code model}'s mask id, vocabulary and context. */
    public static DreamGeneration start(DiffusionModel model, int[] prompt, DreamParams params) {
        return new DreamGeneration(prompt, params, model.maskId(), model.vocabSize(), model.contextLength());
    }

    /**
     * torch.linspace(1, eps, steps + 1) in float32, as torch computes it: the first half counts up from 1, the
     * second half down from eps, with the same float32 step.
     */
    public static float[] timesteps(int steps, double eps) {
        int n = steps + 1;
        float start = 1f;
        float end = (float) eps;
        float step = (end - start) / (float) (n - 1);
        int halfway = n / 2;
        float[] t = new float[n];
        for (int i = 0; i < n; i++) {
            t[i] = i < halfway ? start + step * (float) i : end - step * (float) (n - i - 1);
        }
        return t;
    }

    /** Positions to fill at step i of {@code steps} with {@code maskCount} masks: Dream's int(n * (1 - s/t)). */
    public static int transferCount(float[] timesteps, int i, int maskCount) {
        if (i == timesteps.length - 2) {
            return maskCount;
        }
        float ratio = 1f - timesteps[i + 1] / timesteps[i];
        return (int) (maskCount * ratio); // float32 product, truncated toward zero like Python's int()
    }

    private void findMaskSpan() {
        firstMasked = -1;
        lastMasked = -1;
        for (int p = prefixLength; p < canvas.length; p++) {
            if (canvas[p] == maskId) {
                if (firstMasked < 0) {
                    firstMasked = p;
                }
                lastMasked = p;
            }
        }
    }

    /**
     * The whole canvas, and as the logits range the model's output rows {@code first-1 .. last-1} for the masked
     * positions {@code first .. last} (the shift). The canvas array is the generation's own.
     */
    @Override
    public DenoiseInput nextInput() {
        requireRunning();
        return new DenoiseInput(canvas, firstMasked - 1, lastMasked - firstMasked + 1);
    }

    /** The most {@link #apply} reads: gen_length positions x vocabulary (the first step's range). */
    @Override
    public int logitsLength() {
        return params.genLength() * vocabSize;
    }

    /**
     * Takes the logits of the range {@link #nextInput()} gave (row r is the output at canvas position first-1+r, so
     * it predicts position first+r), fills this step's positions and moves on.
     */
    @Override
    public DenoiseOutcome apply(float[] logits) {
        return apply(logits, RangeExecutor.sameThread());
    }

    /**
     * {@link #apply(float[])} with the masked positions' token sampling (filters, softmax, argmax or inverse CDF,
     * confidence) split over {@code executor}. The uniform draws of the samples are taken first, on this thread, in
     * the documented order (nothing else draws between them), and each position's float64 work keeps its order, so
     * the outcome is bitwise that of {@link #apply(float[])}.
     */
    @Override
    public DenoiseOutcome apply(float[] logits, RangeExecutor executor) {
        requireRunning();
        int span = lastMasked - firstMasked + 1;
        if (logits == null || logits.length < span * vocabSize) {
            throw new IllegalArgumentException("logits must hold " + span * vocabSize + " floats (" + span
                    + " positions x " + vocabSize + ")");
        }
        int n = 0;
        for (int p = firstMasked; p <= lastMasked; p++) {
            if (canvas[p] == maskId) {
                masked[n++] = p;
            }
        }
        int step = forwards;
        boolean last = step == params.steps() - 1;
        Arrays.fill(fill, 0, n, false);
        if (params.alg() == DreamAlgorithm.ORIGIN) {
            float pTransfer = last ? 1f : 1f - timesteps[step + 1] / timesteps[step];
            for (int m = 0; m < n; m++) {
                fill[m] = random.nextDouble() < pTransfer;
            }
            sampleTokens(logits, n, true, executor);
        } else {
            sampleTokens(logits, n, false, executor);
            int count = transferCount(timesteps, step, n);
            if (count > 0) {
                if (params.samplesPositions()) {
                    samplePositions(n, count);
                } else {
                    for (int c = 0; c < count; c++) {
                        fill[mostConfidentUnfilled(n)] = true;
                    }
                }
            }
        }
        int commits = 0;
        for (int m = 0; m < n; m++) {
            commits += fill[m] ? 1 : 0;
        }
        int[] positions = new int[commits];
        int[] tokens = new int[commits];
        int c = 0;
        for (int m = 0; m < n; m++) {
            if (fill[m]) {
                canvas[masked[m]] = x0[m];
                positions[c] = masked[m];
                tokens[c++] = x0[m];
            }
        }
        forwards++;
        findMaskSpan();
        done = last || firstMasked < 0;
        int from = reported;
        while (reported < canvas.length && (done || canvas[reported] != maskId)) {
            reported++;
        }
        if (reported == from) {
            return new DenoiseOutcome(step, positions, tokens, -1, -1, new int[0], done);
        }
        return new DenoiseOutcome(step, positions, tokens, chunks++, from, Arrays.copyOfRange(canvas, from, reported),
                done);
    }

    private boolean usesTopP() {
        return params.topP() != null && params.topP() < 1;
    }

    /**
     * Samples the first n masked positions (only the ones to fill when {@code onlyFilled}): their draws first, in
     * ascending order on this thread, then the vocabulary work of each position in chunks over {@code executor}.
     */
    private void sampleTokens(float[] logits, int n, boolean onlyFilled, RangeExecutor executor) {
        if (params.temperature() > 0) {
            for (int m = 0; m < n; m++) {
                if (!onlyFilled || fill[m]) {
                    draw[m] = random.nextDouble();
                }
            }
        }
        int grain = DenoisingGeneration.positionGrain(n, vocabSize, executor);
        executor.run(n, grain, (from, to) -> {
            int k = from / grain;
            if (scratch[k] == null) {
                scratch[k] = Scratch.of(vocabSize, usesTopP());
            }
            for (int m = from; m < to; m++) {
                if (!onlyFilled || fill[m]) {
                    sampleToken(logits, (masked[m] - firstMasked) * vocabSize, m, scratch[k]);
                }
            }
        });
    }

    /**
     * Dream's sample_tokens for one position: x0[m] and, for the confidence algorithms, confidence[m]; above
     * temperature 0 with the position's uniform draw {@code draw[m]}.
     */
    private void sampleToken(float[] logits, int row, int m, Scratch s) {
        double[] z = s.z();
        double[] probs = s.probs();
        double temperature = params.temperature();
        for (int id = 0; id < vocabSize; id++) {
            z[id] = temperature > 0 ? logits[row + id] / temperature : logits[row + id];
        }
        if (s.order() != null) {
            keepTopP(params.topP(), s);
        }
        if (params.topK() != null) {
            keepTopK(params.topK(), z);
        }
        softmax(z, probs);
        int token;
        if (temperature > 0) {
            double u = draw[m];
            double cumulative = 0;
            token = -1;
            for (int id = 0; id < vocabSize; id++) {
                if (probs[id] > 0) {
                    token = id; // the last id with any probability, should rounding leave u above the total
                    cumulative += probs[id];
                    if (u < cumulative) {
                        break;
                    }
                }
            }
        } else {
            token = 0;
            for (int id = 1; id < vocabSize; id++) {
                if (probs[id] > probs[token]) {
                    token = id;
                }
            }
        }
        x0[m] = token;
        confidence[m] = switch (params.alg()) {
            case ORIGIN, MASKGIT_PLUS -> probs[token];
            case TOPK_MARGIN -> margin(probs);
            case ENTROPY -> negativeEntropy(probs);
        };
    }

    /** Drops (to -infinity) every token after the first whose cumulative probability, most probable first, exceeds p. */
    private void keepTopP(double p, Scratch s) {
        double[] z = s.z();
        double[] probs = s.probs();
        Integer[] order = s.order();
        for (int id = 0; id < vocabSize; id++) {
            order[id] = id;
        }
        Arrays.sort(order, (a, b) -> z[a] != z[b] ? Double.compare(z[b], z[a]) : Integer.compare(a, b));
        softmax(z, probs);
        double cumulative = 0;
        boolean drop = false;
        for (int k = 0; k < vocabSize; k++) {
            int id = order[k];
            double pk = probs[id];
            if (drop) {
                z[id] = Double.NEGATIVE_INFINITY;
            }
            cumulative += pk;
            drop = cumulative > p; // the token that crosses p stays; the ones after it go
        }
    }

    /** Drops every logit below the k-th largest (ties with it stay). */
    private void keepTopK(int k, double[] z) {
        double[] sorted = z.clone();
        Arrays.sort(sorted);
        double kth = sorted[vocabSize - k];
        for (int id = 0; id < vocabSize; id++) {
            if (z[id] < kth) {
                z[id] = Double.NEGATIVE_INFINITY;
            }
        }
    }

    private double margin(double[] probs) {
        double top1 = Double.NEGATIVE_INFINITY;
        double top2 = Double.NEGATIVE_INFINITY;
        for (int id = 0; id < vocabSize; id++) {
            double p = probs[id];
            if (p > top1) {
                top2 = top1;
                top1 = p;
            } else if (p > top2) {
                top2 = p;
            }
        }
        return top1 - top2;
    }

    private double negativeEntropy(double[] probs) {
        double sum = 0;
        for (int id = 0; id < vocabSize; id++) {
            sum += probs[id] * Math.log(probs[id] + ENTROPY_EPSILON);
        }
        return sum;
    }

    private static void softmax(double[] in, double[] out) {
        double max = Double.NEGATIVE_INFINITY;
        for (double v : in) {
            max = Math.max(max, v);
        }
        double sum = 0;
        for (int i = 0; i < in.length; i++) {
            out[i] = Math.exp(in[i] - max);
            sum += out[i];
        }
        for (int i = 0; i < in.length; i++) {
            out[i] /= sum;
        }
    }

    /** The highest confidence among the first n masked positions not yet chosen, lowest position on ties. */
    private int mostConfidentUnfilled(int n) {
        int best = -1;
        for (int m = 0; m < n; m++) {
            if (!fill[m] && (best < 0 || confidence[m] > confidence[best])) {
                best = m;
            }
        }
        return best;
    }

    /**
     * {@code count} of the n masked positions, without replacement, each draw in proportion to
     * softmax(confidence / alg_temp) over the positions not yet drawn (inverse CDF over positions ascending).
     */
    private void samplePositions(int n, int count) {
        double algTemp = params.algTemp();
        double max = Double.NEGATIVE_INFINITY;
        for (int m = 0; m < n; m++) {
            max = Math.max(max, confidence[m] / algTemp);
        }
        double[] weight = new double[n];
        for (int m = 0; m < n; m++) {
            weight[m] = Math.exp(confidence[m] / algTemp - max);
        }
        for (int c = 0; c < count; c++) {
            double total = 0;
            for (int m = 0; m < n; m++) {
                total += fill[m] ? 0 : weight[m];
            }
            double u = random.nextDouble() * total;
            double cumulative = 0;
            int pick = -1;
            for (int m = 0; m < n; m++) {
                if (!fill[m]) {
                    pick = m; // the last one left, should rounding leave u above the total
                    cumulative += weight[m];
                    if (u < cumulative) {
                        break;
                    }
                }
            }
            fill[pick] = true;
        }
    }

    private void requireRunning() {
        if (done) {
            throw new IllegalStateException("generation is done");
        }
    }

    @Override
    public boolean done() {
        return done;
    }

    public DreamParams params() {
        return params;
    }

    @Override
    public int forwards() {
        return forwards;
    }

    /** Stream chunks (runs of final positions) reported so far. */
    @Override
    public int currentBlock() {
        return chunks;
    }

    @Override
    public int prefixLength() {
        return prefixLength;
    }

    @Override
    public int canvasLength() {
        return canvas.length;
    }

    @Override
    public int maskId() {
        return maskId;
    }

    @Override
    public int[] canvas() {
        return canvas.clone();
    }

    @Override
    public int[] generated() {
        return Arrays.copyOfRange(canvas, prefixLength, canvas.length);
    }

    /** Always null: Dream attends densely. */
    @Override
    public PatternHandle patternHandle() {
        return null;
    }
}

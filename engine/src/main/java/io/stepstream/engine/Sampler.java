package io.stepstream.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Picks the next token of one sequence from its logits. Holds its own random stream, seeded from
 * {@link SamplingParams#seed()}, so the same seed and settings give the same tokens. Scratch arrays are kept
 * between calls; only the small result is allocated. Not thread-safe (one per sequence).
 */
public final class Sampler {
    /** The chosen token, its log-probability (NaN unless logprobs were asked for) and the top alternatives. */
    public record Sample(int tokenId, float logprob, List<TokenLogprob> top) {
        public Sample {
            top = List.copyOf(top);
        }
    }

    private final SamplingParams params;
    private final SplittableRandom random;
    private float[] probs = new float[0];
    /** Candidates packed as (probability bits << 32 | ~id) so sorting longs orders by probability, then low id. */
    private long[] candidates = new long[0];
    private int[] topIds = new int[0];

    public Sampler(SamplingParams params) {
        if (params == null) {
            throw new IllegalArgumentException("sampling params must not be null");
        }
        if (!(params.temperature() >= 0f) || Float.isInfinite(params.temperature())) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0, got " + params.temperature());
        }
        if (params.topK() < 0) {
            throw new IllegalArgumentException("topK must be >= 0 (0 disables), got " + params.topK());
        }
        if (!(params.topP() > 0f && params.topP() <= 1f)) {
            throw new IllegalArgumentException("topP must be in (0, 1], got " + params.topP());
        }
        if (params.logprobs() < 0) {
            throw new IllegalArgumentException("logprobs must be >= 0, got " + params.logprobs());
        }
        this.params = params;
        this.random = new SplittableRandom(params.seed());
    }

    public SamplingParams params() {
        return params;
    }

    public Sample sample(float[] logits) {
        int n = logits.length;
        if (n == 0) {
            throw new IllegalArgumentException("logits are empty");
        }
        ensureCapacity(n);
        int token = params.greedy() ? argmax(logits) : draw(logits);
        if (params.logprobs() == 0) {
            return new Sample(token, Float.NaN, List.of());
        }
        return withLogprobs(logits, token);
    }

    private static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i; // strictly greater: ties stay with the lowest id
            }
        }
        return best;
    }

    private int draw(float[] logits) {
        int n = logits.length;
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        // softmax(logits / T), computed as exp((l - max) / T) so large logits cannot overflow
        double sum = 0;
        float t = params.temperature();
        for (int i = 0; i < n; i++) {
            float p = (float) Math.exp((logits[i] - max) / t);
            probs[i] = p;
            sum += p;
        }
        for (int i = 0; i < n; i++) {
            probs[i] = (float) (probs[i] / sum);
        }
        boolean topK = params.topK() > 0 && params.topK() < n;
        boolean topP = params.topP() < 1f;
        if (!topK && !topP) {
            return drawInIdOrder(n);
        }
        int kept = rankCandidates(n, topK ? params.topK() : n, topP);
        if (topP) {
            // nucleus of the distribution left after top-k (the whole one without top-k; the cutoff in
            // rankCandidates may have dropped its tail, so that mass is summed over all tokens)
            kept = nucleus(kept, topK ? massOf(kept) : massOfAll(n));
        }
        double r = random.nextDouble() * massOf(kept);
        double cdf = 0;
        for (int i = 0; i < kept; i++) {
            int id = idOf(candidates[i]);
            cdf += probs[id];
            if (r < cdf) {
                return id;
            }
        }
        return idOf(candidates[kept - 1]); // rounding left r just past the last bucket
    }

    private int drawInIdOrder(int n) {
        double r = random.nextDouble();
        double cdf = 0;
        int last = 0;
        for (int i = 0; i < n; i++) {
            if (probs[i] > 0f) {
                cdf += probs[i];
                last = i;
                if (r < cdf) {
                    return i;
                }
            }
        }
        return last;
    }

    /**
     * Fills candidates[0..m) with the most likely tokens, most likely first (ties to the lower id), and
     * returns m = min(limit, tokens considered). For nucleus sampling alone, tokens below (1-p)/(n-1) are
     * dropped before sorting: they can never be inside the nucleus, so the sort stays short.
     */
    private int rankCandidates(int n, int limit, boolean topP) {
        float cutoff = topP && limit == n && n > 1 ? (1f - params.topP()) / (n - 1) : 0f;
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (probs[i] >= cutoff) {
                candidates[m++] = pack(probs[i], i);
            }
        }
        if (m == 0) { // every probability under the cutoff is impossible; keep the full set then
            for (int i = 0; i < n; i++) {
                candidates[m++] = pack(probs[i], i);
            }
        }
        Arrays.sort(candidates, 0, m); // ascending; the most likely sit at the end
        reverse(candidates, m);
        return Math.min(limit, m);
    }

    /** The smallest prefix of the ranked candidates whose mass reaches topP (at least one token). */
    private int nucleus(int kept, double total) {
        double target = params.topP() * total;
        double cumulative = 0;
        for (int i = 0; i < kept; i++) {
            cumulative += probs[idOf(candidates[i])];
            if (cumulative >= target) {
                return i + 1;
            }
        }
        return kept;
    }

    private double massOf(int kept) {
        double mass = 0;
        for (int i = 0; i < kept; i++) {
            mass += probs[idOf(candidates[i])];
        }
        return mass;
    }

    private double massOfAll(int n) {
        double mass = 0;
        for (int i = 0; i < n; i++) {
            mass += probs[i];
        }
        return mass;
    }

    /**
     * The log-probability of {@code token} under softmax(logits) in float64, before the float rounding that
     * {@link Sample#logprob()} and the top list get: {@code l_token - (l_max + log sum_i exp((double) l_i - l_max))}.
     */
    public static double logprob(float[] logits, int token) {
        return logits[token] - logNormalizer(logits);
    }

    /** log sum_i exp(l_i), as l_max + log sum_i exp((double) l_i - l_max) so large logits cannot overflow. */
    private static double logNormalizer(float[] logits) {
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp((double) l - max);
        }
        return max + Math.log(sum);
    }

    private Sample withLogprobs(float[] logits, int token) {
        int n = logits.length;
        double logZ = logNormalizer(logits);
        // top-n by a small insertion list: n is a handful, the vocabulary is large
        int want = Math.min(params.logprobs(), n);
        int have = 0;
        for (int i = 0; i < n; i++) {
            if (have == want && logits[i] <= logits[topIds[have - 1]]) {
                continue;
            }
            int at = have < want ? have++ : have - 1;
            while (at > 0 && logits[topIds[at - 1]] < logits[i]) {
                topIds[at] = topIds[at - 1];
                at--;
            }
            topIds[at] = i;
        }
        List<TokenLogprob> top = new ArrayList<>(have);
        for (int i = 0; i < have; i++) {
            top.add(new TokenLogprob(topIds[i], (float) (logits[topIds[i]] - logZ)));
        }
        return new Sample(token, (float) (logits[token] - logZ), top);
    }

    private void ensureCapacity(int n) {
        if (probs.length < n) {
            probs = new float[n];
            candidates = new long[n];
        }
        int want = Math.min(params.logprobs(), n);
        if (topIds.length < want) {
            topIds = new int[want];
        }
    }

    private static long pack(float p, int id) {
        // p >= 0, so its raw bits order like the value; ~id makes the lower id the larger key on ties
        return ((long) Float.floatToRawIntBits(p) << 32) | (~id & 0xFFFFFFFFL);
    }

    private static int idOf(long packed) {
        return ~(int) packed;
    }

    private static void reverse(long[] a, int m) {
        for (int i = 0, j = m - 1; i < j; i++, j--) {
            long tmp = a[i];
            a[i] = a[j];
            a[j] = tmp;
        }
    }
}

package io.stepstream.engine.dlm;

/**
 * Settings of one Dream generation (Dream's {@code diffusion_generate} arguments). Errors name the field as the
 * wire protocol spells it.
 *
 * @param genLength   gen_length (Dream's max_new_tokens): mask tokens appended to the prompt
 * @param steps       steps: forward passes, exactly (Dream runs every one of them)
 * @param temperature temperature: 0 takes the most probable token (ties to the lowest id); above 0 the logits are
 *                    divided by it and the token is sampled
 * @param topP        top_p in (0, 1], or null: keep the smallest set of most probable tokens whose probability
 *                    reaches top_p (1 or null keeps all)
 * @param topK        top_k >= 1, or null: keep the tokens whose logit is at least the k-th largest
 * @param alg         alg: origin, maskgit_plus, topk_margin or entropy
 * @param algTemp     alg_temp >= 0, or null: null or 0 fills the most confident positions; above 0 samples them
 *                    from softmax(confidence / alg_temp) without replacement
 * @param eps         eps in (0, 1): the last timestep (timesteps run linearly from 1 down to eps)
 * @param seed        seed of the request's own random stream
 */
public record DreamParams(int genLength, int steps, double temperature, Double topP, Integer topK,
                          DreamAlgorithm alg, Double algTemp, double eps, long seed) {
    /** Dream's default eps. */
    public static final double DEFAULT_EPS = 1e-3;

    public DreamParams {
        if (genLength < 1) {
            throw new IllegalArgumentException("gen_length must be >= 1, got " + genLength);
        }
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be >= 1, got " + steps);
        }
        if (!(temperature >= 0) || !Double.isFinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0, got " + temperature);
        }
        if (topP != null && !(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top_p must be in (0, 1] (or absent), got " + topP);
        }
        if (topK != null && topK < 1) {
            throw new IllegalArgumentException("top_k must be >= 1 (or absent), got " + topK);
        }
        if (alg == null) {
            throw new IllegalArgumentException("alg must be origin, maskgit_plus, topk_margin or entropy, got null");
        }
        if (algTemp != null && (!(algTemp >= 0) || !Double.isFinite(algTemp))) {
            throw new IllegalArgumentException("alg_temp must be a finite number >= 0 (or absent), got " + algTemp);
        }
        if (!(eps > 0 && eps < 1)) {
            throw new IllegalArgumentException("eps must be in (0, 1), got " + eps);
        }
    }

    /** Temperature 0, no top-p/top-k, top-k positions by confidence (no alg_temp), eps 1e-3, seed 0. */
    public static DreamParams greedy(int genLength, int steps, DreamAlgorithm alg) {
        return new DreamParams(genLength, steps, 0.0, null, null, alg, null, DEFAULT_EPS, 0L);
    }

    public DreamParams withSampling(double temperature, Double topP, Integer topK, long seed) {
        return new DreamParams(genLength, steps, temperature, topP, topK, alg, algTemp, eps, seed);
    }

    public DreamParams withAlg(DreamAlgorithm alg, Double algTemp) {
        return new DreamParams(genLength, steps, temperature, topP, topK, alg, algTemp, eps, seed);
    }

    public DreamParams withEps(double eps) {
        return new DreamParams(genLength, steps, temperature, topP, topK, alg, algTemp, eps, seed);
    }

    /** True when the positions to fill are sampled from softmax(confidence / alg_temp), not taken by top-k. */
    public boolean samplesPositions() {
        return algTemp != null && algTemp > 0;
    }
}

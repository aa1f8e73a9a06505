package io.stepstream.actors;

/**
 * The diffusion-LM settings of a {@link GenerateRequest}, as the client sent them: a null field takes its default
 * (see {@link StepStream#generate}). Only for diffusion models.
 *
 * @param genLength   gen_length: tokens to generate (mask positions appended to the prompt)
 * @param blockLength block_length: the generated canvas is filled block by block, left to right
 * @param steps       steps: forward passes in all, split evenly over the blocks
 * @param remasking   remasking: "low_confidence" or "random"
 * @param threshold   threshold: Fast-dLLM decoding in (0, 1] instead of the fixed schedule
 * @param progress    progress: also stream a progress event after each denoising step
 * @param sparsed     sparsed: null for dense attention (the default); else SparseD with these settings
 * @param alg         alg (Dream models only): origin, maskgit_plus, topk_margin or entropy
 * @param algTemp     alg_temp (Dream models only): 0 fills the most confident positions, above 0 samples them
 * @param eps         eps (Dream models only): the last timestep, in (0, 1)
 * @param cache       cache (LLaDA models only): Fast-dLLM's approximate KV cache, "none" (default), "prefix" or "dual"
 */
public record DiffusionOptions(Integer genLength, Integer blockLength, Integer steps, String remasking,
                               Double threshold, boolean progress, SparseDOptions sparsed, String alg, Double algTemp,
                               Double eps, String cache) {
    /** Every setting at its default. */
    public static final DiffusionOptions DEFAULTS = new DiffusionOptions(null, null, null, null, null, false);

    /** LLaDA-style settings, dense attention, no Fast-dLLM cache. */
    public DiffusionOptions(Integer genLength, Integer blockLength, Integer steps, String remasking, Double threshold,
                            boolean progress) {
        this(genLength, blockLength, steps, remasking, threshold, progress, null, null, null, null, null);
    }

    /** LLaDA-style settings with SparseD ({@code null}: dense), no Fast-dLLM cache. */
    public DiffusionOptions(Integer genLength, Integer blockLength, Integer steps, String remasking, Double threshold,
                            boolean progress, SparseDOptions sparsed) {
        this(genLength, blockLength, steps, remasking, threshold, progress, sparsed, null, null, null, null);
    }

    /** Every setting but the Fast-dLLM cache (none). */
    public DiffusionOptions(Integer genLength, Integer blockLength, Integer steps, String remasking, Double threshold,
                            boolean progress, SparseDOptions sparsed, String alg, Double algTemp, Double eps) {
        this(genLength, blockLength, steps, remasking, threshold, progress, sparsed, alg, algTemp, eps, null);
    }

    /** The same settings with SparseD attention ({@code null}: dense). */
    public DiffusionOptions withSparseD(SparseDOptions sparsed) {
        return new DiffusionOptions(genLength, blockLength, steps, remasking, threshold, progress, sparsed, alg,
                algTemp, eps, cache);
    }

    /** The same settings with Fast-dLLM's cache ("none", "prefix", "dual"; {@code null}: none). */
    public DiffusionOptions withCache(String cache) {
        return new DiffusionOptions(genLength, blockLength, steps, remasking, threshold, progress, sparsed, alg,
                algTemp, eps, cache);
    }

    /** Dream settings: gen_length, steps, alg, alg_temp, eps, progress (temperature, top_p, top_k, seed from sampling). */
    public static DiffusionOptions dream(Integer genLength, Integer steps, String alg, Double algTemp, Double eps,
                                         boolean progress) {
        return new DiffusionOptions(genLength, null, steps, null, null, progress, null, alg, algTemp, eps, null);
    }
}

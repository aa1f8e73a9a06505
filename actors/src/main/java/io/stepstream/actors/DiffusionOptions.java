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
 * @param cache       cache: Fast-dLLM's approximate KV cache, "none" (default), "prefix" or "dual"
 */
public record DiffusionOptions(Integer genLength, Integer blockLength, Integer steps, String remasking,
                               Double threshold, boolean progress, String cache) {
    /** Every setting at its default. */
    public static final DiffusionOptions DEFAULTS = new DiffusionOptions(null, null, null, null, null, false, null);

    /** Without the Fast-dLLM cache. */
    public DiffusionOptions(Integer genLength, Integer blockLength, Integer steps, String remasking, Double threshold,
                            boolean progress) {
        this(genLength, blockLength, steps, remasking, threshold, progress, null);
    }
}

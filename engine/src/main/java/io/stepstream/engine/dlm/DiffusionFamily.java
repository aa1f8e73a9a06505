package io.stepstream.engine.dlm;

import io.stepstream.engine.format.safetensors.HfConfig;

/**
 * Which diffusion LM a checkpoint is, read from its config.json ({@code model_type}), never from a file name. Both
 * run through the same bidirectional {@link DiffusionModel#forward}; they differ in the weights they carry and in
 * how a generation reads the logits.
 */
public enum DiffusionFamily {
    /**
     * LLaDA style: a bidirectional Llama without biases; the logits at position i predict position i. Any
     * model_type other than Dream's (tinystories-dlm says "llada-tiny").
     */
    LLADA,
    /**
     * Dream (model_type "Dream"): a bidirectional Qwen2, so biases on the q, k and v projections (none on o) and
     * Hugging Face's rotate-half RoPE unless the config says rope_interleaved; trained from an autoregressive
     * model, so the logits that predict position i are the model's output at position i - 1 (see
     * {@link DreamGeneration}).
     */
    DREAM;

    /** The family config.json names: model_type "Dream" (any case) is Dream, anything else LLaDA style. */
    public static DiffusionFamily of(HfConfig config) {
        return "dream".equalsIgnoreCase(config.modelType()) ? DREAM : LLADA;
    }
}

package io.stepstream.engine.llama;

/**
 * Which elements of a head RoPE rotates together; it follows from how the file stores the q and k
 * projections, so the loader decides it per source, never per model name.
 */
public enum RopeLayout {
    /**
     * Adjacent pairs (2i, 2i+1) rotate by frequency i: llama2.c, and GGUF "llama" files, whose converter
     * permutes Hugging Face's q/k rows into this order (ggml's "normal" rope).
     */
    INTERLEAVED,
    /**
     * Element i and i + headSize/2 rotate by frequency i (Hugging Face's rotate_half, ggml's NEOX rope):
     * safetensors checkpoints and GGUF "qwen2" files.
     */
    NEOX
}

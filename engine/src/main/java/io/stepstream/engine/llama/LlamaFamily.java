package io.stepstream.engine.llama;

/**
 * The decoder-only families {@link LlamaModel} runs, as model files name them: GGUF's
 * {@code general.architecture}, and config.json's {@code model_type} / {@code architectures}.
 */
public enum LlamaFamily {
    /** Llama 2 and Llama 3 (and llama2.c checkpoints): no attention biases. */
    LLAMA("llama", "LlamaForCausalLM"),
    /** Qwen2: biases on the q, k and v projections. */
    QWEN2("qwen2", "Qwen2ForCausalLM");

    private final String id;
    private final String hfArchitecture;

    LlamaFamily(String id, String hfArchitecture) {
        this.id = id;
        this.hfArchitecture = hfArchitecture;
    }

    /** The name in GGUF's general.architecture and config.json's model_type. */
    public String id() {
        return id;
    }

    /** The class name in config.json's architectures. */
    public String hfArchitecture() {
        return hfArchitecture;
    }

    public boolean qkvBias() {
        return this == QWEN2;
    }

    /** The family with this GGUF architecture / model_type, or null. */
    public static LlamaFamily byId(String id) {
        for (LlamaFamily f : values()) {
            if (f.id.equals(id)) {
                return f;
            }
        }
        return null;
    }

    /** The family with this config.json architectures entry, or null. */
    public static LlamaFamily byHfArchitecture(String architecture) {
        for (LlamaFamily f : values()) {
            if (f.hfArchitecture.equals(architecture)) {
                return f;
            }
        }
        return null;
    }
}

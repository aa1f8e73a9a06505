package io.stepstream.engine.tools;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama.LlamaFamily;

import java.util.Arrays;

/** The real shapes {@code stepstream synth} builds random models in (the vocabulary size is chosen apart). */
public enum SynthShape {
    /** llama2.c's stories15M. */
    LLAMA2_15M("llama2-15m", LlamaFamily.LLAMA, 288, 768, 6, 6, 6, 256, 1e-5f, 10000f, false),
    /** llama2.c's stories110M. */
    LLAMA2_110M("llama2-110m", LlamaFamily.LLAMA, 768, 2048, 12, 12, 12, 1024, 1e-5f, 10000f, false),
    /** TinyLlama 1.1B: grouped-query attention, 4 KV heads. */
    LLAMA_1_1B("llama-1.1b", LlamaFamily.LLAMA, 2048, 5632, 22, 32, 4, 2048, 1e-5f, 10000f, false),
    /** Qwen2 0.5B: QKV biases, 2 KV heads, tied embedding. */
    QWEN2_0_5B("qwen2-0.5b", LlamaFamily.QWEN2, 896, 4864, 24, 14, 2, 32768, 1e-6f, 1000000f, true);

    private final String id;
    private final LlamaFamily family;
    private final int dim;
    private final int hidden;
    private final int layers;
    private final int heads;
    private final int kvHeads;
    private final int context;
    private final float eps;
    private final float theta;
    private final boolean tied;

    SynthShape(String id, LlamaFamily family, int dim, int hidden, int layers, int heads, int kvHeads, int context,
               float eps, float theta, boolean tied) {
        this.id = id;
        this.family = family;
        this.dim = dim;
        this.hidden = hidden;
        this.layers = layers;
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.context = context;
        this.eps = eps;
        this.theta = theta;
        this.tied = tied;
    }

    public String id() {
        return id;
    }

    public LlamaFamily family() {
        return family;
    }

    public ModelConfig config(int vocab) {
        return new ModelConfig(dim, hidden, layers, heads, kvHeads, vocab, context, eps, theta, tied);
    }

    public static SynthShape byId(String id) {
        for (SynthShape s : values()) {
            if (s.id.equals(id)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown shape '" + id + "' (known: "
                + Arrays.stream(values()).map(SynthShape::id).toList() + ")");
    }
}

package io.stepstream.engine.llama;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tokenizer.TokenizerSpec;
import io.stepstream.engine.tools.LlamaGgufExport;
import io.stepstream.engine.tools.SynthModel;
import io.stepstream.engine.tools.SyntheticVocab;

import java.io.IOException;
import java.nio.file.Path;

/** Small random models of each family, written as GGUF files for the tests. */
final class LlamaTestModels {
    /** What a test model is: family, attention shape, tied or not, Llama 3 rope scaling or not. */
    enum Kind {
        /** Llama 2 with grouped-query attention and its own classifier. */
        LLAMA2_GQA(LlamaFamily.LLAMA, 4, 2, false, false),
        /** Llama 3 style: GQA, theta 500000, rope_freqs scaling, byte-level vocabulary. */
        LLAMA3_SCALED(LlamaFamily.LLAMA, 4, 1, false, true),
        /** Qwen2: QKV biases, tied embedding, NEOX rope. */
        QWEN2_TIED(LlamaFamily.QWEN2, 4, 2, true, false),
        /** Qwen2 with its own classifier. */
        QWEN2_UNTIED(LlamaFamily.QWEN2, 4, 4, false, false);

        final LlamaFamily family;
        final int heads;
        final int kvHeads;
        final boolean tied;
        final boolean scaled;

        Kind(LlamaFamily family, int heads, int kvHeads, boolean tied, boolean scaled) {
            this.family = family;
            this.heads = heads;
            this.kvHeads = kvHeads;
            this.tied = tied;
            this.scaled = scaled;
        }
    }

    static final int DIM = 64;
    static final int HIDDEN = 96;
    static final int VOCAB = 400;
    static final int CONTEXT = 96;

    private LlamaTestModels() {
    }

    /** Width and FFN width of the K-quant models: rows must be whole 256-element super-blocks. */
    static final int K_DIM = 256;
    static final int K_HIDDEN = 512;

    static ModelConfig config(Kind kind) {
        return config(kind, DIM, HIDDEN);
    }

    static ModelConfig config(Kind kind, int dim, int hidden) {
        float theta = kind.scaled ? 500000f : kind.family == LlamaFamily.QWEN2 ? 1000000f : 10000f;
        return new ModelConfig(dim, hidden, 2, kind.heads, kind.kvHeads, VOCAB, CONTEXT, 1e-5f, theta, kind.tied);
    }

    static Path write(Path dir, Kind kind, TensorType type, long seed) throws IOException {
        return type.blockSize() == 256 ? write(dir, kind, type, seed, K_DIM, K_HIDDEN)
                : write(dir, kind, type, seed, DIM, HIDDEN);
    }

    static Path write(Path dir, Kind kind, TensorType type, long seed, int dim, int hidden) throws IOException {
        ModelConfig c = config(kind, dim, hidden);
        TokenizerSpec vocab = kind.family == LlamaFamily.QWEN2 ? SyntheticVocab.byteLevel(VOCAB, "qwen2")
                : kind.scaled ? SyntheticVocab.byteLevel(VOCAB, "llama-bpe") : SyntheticVocab.sentencePiece(VOCAB);
        // small original context, so the scaling's three regimes all occur over 16 pairs
        float[] factors = kind.scaled ? RopeScaling.llama3Factors(c.ropeTheta(), c.headSize(), 8, 1, 4, 64) : null;
        Path out = dir.resolve(kind.name().toLowerCase() + "-" + type.name().toLowerCase() + ".gguf");
        LlamaGgufExport.write(out, kind.name(), c, kind.family, factors, SynthModel.weights(c, seed), type, vocab);
        return out;
    }
}

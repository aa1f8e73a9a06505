package io.stepstream.engine.tools;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama.LlamaFamily;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * Random-weight Dream models (bidirectional Qwen2: q/k/v biases, rotate-half RoPE) as a Hugging Face style folder
 * that {@link Models#loadDiffusion(String)} reads: model.safetensors (F32, Hugging Face names), config.json with
 * model_type "Dream" and a mask_token_id, and tokenizer.bin (the llama2.c tok512 of the embedded tinystories-dlm,
 * ids 0..511, BOS 1, EOS 2). The vocabulary is those 512 text ids plus the mask id 512. Weights are
 * {@link SynthModel}'s (deterministic per seed, scaled so the best token clearly wins).
 */
public final class DreamSynth {
    /** Text ids of the shipped tok512 tokenizer; the mask id comes right after them. */
    public static final int TEXT_VOCAB = 512;
    public static final int MASK_ID = 512;
    /** EOS of tok512 (and BOS 1). */
    public static final int EOS_ID = 2;

    /** The shapes {@code stepstream synth --shape dream-...} writes. */
    public enum Shape {
        /** Small enough for unit tests against a float64 reference: 4 query heads over 2 KV heads, untied head. */
        DREAM_TINY("dream-tiny", 64, 176, 2, 4, 2, 256, false),
        /** As tiny with a tied classifier (the embedding is the output projection). */
        DREAM_TINY_TIED("dream-tiny-tied", 64, 176, 2, 4, 2, 256, true),
        /** A few million parameters, Dream 7B's proportions scaled down (7 query heads over 1 KV head). */
        DREAM_SMALL("dream-small", 448, 1184, 8, 7, 1, 1024, false);

        private final String id;
        private final int dim;
        private final int hidden;
        private final int layers;
        private final int heads;
        private final int kvHeads;
        private final int context;
        private final boolean tied;

        Shape(String id, int dim, int hidden, int layers, int heads, int kvHeads, int context, boolean tied) {
            this.id = id;
            this.dim = dim;
            this.hidden = hidden;
            this.layers = layers;
            this.heads = heads;
            this.kvHeads = kvHeads;
            this.context = context;
            this.tied = tied;
        }

        public String id() {
            return id;
        }

        /** Dream's own rms_norm_eps (1e-6) and rope_theta (1e6). */
        public ModelConfig config() {
            return new ModelConfig(dim, hidden, layers, heads, kvHeads, MASK_ID + 1, context, 1e-6f, 1_000_000f, tied);
        }

        public static Shape byId(String id) {
            for (Shape s : values()) {
                if (s.id.equals(id)) {
                    return s;
                }
            }
            throw new IllegalArgumentException("unknown Dream shape '" + id + "' (known: "
                    + Arrays.stream(values()).map(Shape::id).toList() + ")");
        }
    }

    private DreamSynth() {
    }

    /** True for the ids {@link Shape#byId} knows. */
    public static boolean isDreamShape(String id) {
        return Arrays.stream(Shape.values()).anyMatch(s -> s.id.equals(id));
    }

    /** Writes the folder (created if missing; its three files are replaced). */
    public static void write(Path dir, Shape shape, long seed) throws IOException {
        Files.createDirectories(dir);
        ModelConfig c = shape.config();
        SafetensorsExport.write(dir.resolve("model.safetensors"), c, LlamaFamily.QWEN2, weights(c, seed), false);
        Files.writeString(dir.resolve("config.json"), config(shape, c));
        String tokenizer = "/io/stepstream/engine/models/tinystories-dlm/tokenizer.bin";
        try (InputStream in = Models.class.getResourceAsStream(tokenizer)) {
            if (in == null) {
                throw new IOException("embedded resource " + tokenizer + " is missing from the jar");
            }
            Files.write(dir.resolve("tokenizer.bin"), in.readAllBytes());
        }
    }

    /**
     * {@link SynthModel}'s weights, with the classifier bent towards what a trained Dream does: the mask id's row is
     * zero (a trained model all but never predicts the mask), and the row of EOS, which SynthModel makes the
     * successor of the mask token (so after a masked position), is halved so that EOS competes without always
     * winning there.
     */
    static LlamaTensors.Source weights(ModelConfig c, long seed) {
        LlamaTensors.Source base = SynthModel.weights(c, seed);
        return t -> {
            float[] v = base.values(t);
            if (t.name().equals("output.weight")) {
                int dim = c.dim();
                java.util.Arrays.fill(v, MASK_ID * dim, (MASK_ID + 1) * dim, 0f);
                for (int i = EOS_ID * dim; i < (EOS_ID + 1) * dim; i++) {
                    v[i] *= 0.5f;
                }
            }
            return v;
        };
    }

    private static String config(Shape shape, ModelConfig c) {
        return String.format(Locale.ROOT, """
                {
                  "model_type": "Dream",
                  "architectures": ["DreamModel"],
                  "synth_shape": "%s",
                  "hidden_size": %d,
                  "intermediate_size": %d,
                  "num_hidden_layers": %d,
                  "num_attention_heads": %d,
                  "num_key_value_heads": %d,
                  "vocab_size": %d,
                  "tokenizer_vocab_size": %d,
                  "max_position_embeddings": %d,
                  "rope_theta": %.1f,
                  "rms_norm_eps": 1e-06,
                  "hidden_act": "silu",
                  "mask_token_id": %d,
                  "bos_token_id": 1,
                  "eos_token_id": 2,
                  "pad_token_id": 2,
                  "tie_word_embeddings": %b,
                  "use_sliding_window": false,
                  "torch_dtype": "float32"
                }
                """, shape.id(), c.dim(), c.hiddenDim(), c.nLayers(), c.nHeads(), c.nKvHeads(), c.vocabSize(),
                TEXT_VOCAB, c.contextLength(), (double) c.ropeTheta(), MASK_ID, c.sharedClassifier());
    }
}

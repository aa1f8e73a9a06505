package io.stepstream.engine.tools;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama.LlamaFamily;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tokenizer.TokenizerSpec;

import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Random-weight models with real shapes, for benchmarks and for comparing against llama.cpp. Values are scaled
 * so the model behaves like a trained one numerically: matrices have standard deviation 1/sqrt(fan_in) (each
 * projection keeps the activation scale), norms are near 1, biases small, and the classifier is scaled up so
 * logits spread over several units: greedy decoding then has clear winners and is stable under the rounding
 * differences between implementations. Each tensor's values come from its own generator seeded by the model
 * seed and the tensor's name, so the weights are the same per seed whatever the order they are made in.
 */
public final class SynthModel {
    /** Standard deviation of the logits, roughly: large enough that the best token clearly wins. */
    static final double LOGIT_SCALE = 4.0;

    private SynthModel() {
    }

    /** The tokenizer a synthetic model of this family gets. */
    public static TokenizerSpec vocab(LlamaFamily family, int size) {
        return family == LlamaFamily.QWEN2 ? SyntheticVocab.byteLevel(size, "qwen2") : SyntheticVocab.sentencePiece(size);
    }

    /** The values of every tensor of a model of this shape, a pure function of (seed, tensor name). */
    public static LlamaTensors.Source weights(ModelConfig c, long seed) {
        return t -> values(t, c, seed);
    }

    static float[] values(LlamaTensors.Entry t, ModelConfig c, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ t.name().hashCode());
        float[] v = new float[Math.toIntExact(t.elements())];
        String n = t.name();
        if (n.endsWith("norm.weight")) {
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (1.0 + 0.1 * rnd.nextGaussian());
            }
        } else if (n.endsWith(".bias")) {
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (0.1 * rnd.nextGaussian());
            }
        } else if (n.equals("output.weight")) {
            // row v is the embedding of the token that leads to v, plus noise: each token strongly predicts
            // a successor (a fixed permutation), so greedy decoding walks a long cycle with wide logit margins
            float[] embedding = values(new LlamaTensors.Entry("token_embd.weight", c.vocabSize(), c.dim(), false), c,
                    seed);
            int dim = c.dim();
            double scale = LOGIT_SCALE / Math.sqrt(dim);
            int[] predecessors = predecessors(c.vocabSize());
            for (int row = 0; row < c.vocabSize(); row++) {
                int from = predecessors[row];
                for (int i = 0; i < dim; i++) {
                    v[row * dim + i] = (float) (scale * (embedding[from * dim + i] + 0.5 * rnd.nextGaussian()));
                }
            }
        } else {
            double std;
            if (n.equals("token_embd.weight")) {
                // tied: the embedding is also the classifier, so it carries the logit scale; norms undo it on input
                std = c.sharedClassifier() ? LOGIT_SCALE / Math.sqrt(c.dim()) : 1.0;
            } else if (n.endsWith("attn_output.weight") || n.endsWith("ffn_down.weight")) {
                // what each block writes into the residual stream shrinks with depth (GPT-2 style), so the
                // token's own embedding still shows through at the top
                std = 0.5 / Math.sqrt(t.cols() * 2.0 * c.nLayers());
            } else {
                std = 1.0 / Math.sqrt(t.cols());
            }
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (std * rnd.nextGaussian());
            }
        }
        return v;
    }

    /**
     * For each token, the token whose successor it is: successors are t -> (5t + 7) mod vocab, a permutation when
     * 5 does not divide vocab (otherwise every token is its own successor: still wide margins, shorter walks).
     */
    static int[] predecessors(int vocab) {
        int[] pred = new int[vocab];
        for (int t = 0; t < vocab; t++) {
            pred[t] = t;
        }
        if (vocab % 5 != 0) {
            for (int t = 0; t < vocab; t++) {
                pred[(int) ((5L * t + 7) % vocab)] = t;
            }
        }
        return pred;
    }

    public static void writeGguf(Path out, SynthShape shape, TensorType type, int vocab, long seed) throws IOException {
        ModelConfig c = shape.config(vocab);
        LlamaGgufExport.write(out, "synth-" + shape.id() + "-" + type.name().toLowerCase(java.util.Locale.ROOT), c,
                shape.family(), null, weights(c, seed), type, vocab(shape.family(), vocab));
    }
}

package io.stepstream.engine.llama;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.tensor.WeightMatrix;

import java.util.List;

/**
 * Everything {@link LlamaModel} needs from a model file: the shape, the family, how RoPE pairs elements and
 * the weights. Matrices stay in their file encoding ({@link WeightMatrix}); norms and biases are float32.
 * The matrices may point into a file mapping, which must outlive the model using them.
 *
 * @param ropeFreqFactors per rotation pair (headSize/2 entries), the divisor of that pair's frequency
 *                        (Llama 3 rope scaling); null when frequencies are unscaled
 * @param output          the classifier; the token embedding itself when {@code config.sharedClassifier()}
 */
public record LlamaWeights(ModelConfig config, LlamaFamily family, RopeLayout rope, float[] ropeFreqFactors,
                           WeightMatrix tokenEmbedding, List<Layer> layers, float[] outputNorm,
                           WeightMatrix output) {
    public LlamaWeights {
        layers = List.copyOf(layers);
        int dim = config.dim();
        int kvDim = config.kvDim();
        int hidden = config.hiddenDim();
        if (config.headSize() % 2 != 0) {
            throw new IllegalArgumentException("head size " + config.headSize() + " must be even for RoPE");
        }
        if (ropeFreqFactors != null && ropeFreqFactors.length != config.headSize() / 2) {
            throw new IllegalArgumentException("rope frequency factors: " + ropeFreqFactors.length
                    + " entries, expected headSize/2 = " + config.headSize() / 2);
        }
        requireShape("token embedding", tokenEmbedding, config.vocabSize(), dim);
        requireShape("output", output, config.vocabSize(), dim);
        requireLength("output norm", outputNorm, dim);
        if (layers.size() != config.nLayers()) {
            throw new IllegalArgumentException(layers.size() + " layers, config says " + config.nLayers());
        }
        for (int l = 0; l < layers.size(); l++) {
            Layer y = layers.get(l);
            String p = "layer " + l + " ";
            requireLength(p + "attention norm", y.attnNorm, dim);
            requireShape(p + "wq", y.wq, dim, dim);
            requireShape(p + "wk", y.wk, kvDim, dim);
            requireShape(p + "wv", y.wv, kvDim, dim);
            requireShape(p + "wo", y.wo, dim, dim);
            requireLength(p + "ffn norm", y.ffnNorm, dim);
            requireShape(p + "gate", y.gate, hidden, dim);
            requireShape(p + "up", y.up, hidden, dim);
            requireShape(p + "down", y.down, dim, hidden);
            if (family.qkvBias()) {
                requireLength(p + "q bias", y.bq, dim);
                requireLength(p + "k bias", y.bk, kvDim);
                requireLength(p + "v bias", y.bv, kvDim);
            } else if (y.bq != null || y.bk != null || y.bv != null) {
                throw new IllegalArgumentException(p + "has attention biases, which family " + family + " has not");
            }
        }
    }

    /**
     * One transformer block. Matrices are [out rows x in cols]: wq [dim x dim], wk/wv [kvDim x dim],
     * wo [dim x dim], gate/up [hidden x dim], down [dim x hidden]; biases (Qwen2 only, else null) per output row.
     */
    public record Layer(float[] attnNorm, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv, float[] bq, float[] bk,
                        float[] bv, WeightMatrix wo, float[] ffnNorm, WeightMatrix gate, WeightMatrix up,
                        WeightMatrix down) {
        /** The seven matrices a token's forward multiplies in this layer: wq, wk, wv, wo, gate, up, down. */
        public java.util.List<WeightMatrix> matrices() {
            return java.util.List.of(wq, wk, wv, wo, gate, up, down);
        }
    }

    private static void requireShape(String what, WeightMatrix m, int rows, int cols) {
        if (m == null) {
            throw new IllegalArgumentException(what + " is missing");
        }
        if (m.rows() != rows || m.cols() != cols) {
            throw new IllegalArgumentException(what + " is " + m.rows() + " x " + m.cols() + ", expected " + rows
                    + " x " + cols);
        }
    }

    private static void requireLength(String what, float[] v, int n) {
        if (v == null) {
            throw new IllegalArgumentException(what + " is missing");
        }
        if (v.length != n) {
            throw new IllegalArgumentException(what + " has " + v.length + " values, expected " + n);
        }
    }
}

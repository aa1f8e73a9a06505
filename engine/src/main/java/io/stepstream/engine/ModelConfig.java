package io.stepstream.engine;

/**
 * Shape of a decoder-only transformer (Llama family). Immutable; read from the model file.
 *
 * @param dim          model (residual stream) width
 * @param hiddenDim    SwiGLU inner width
 * @param nLayers      number of transformer blocks
 * @param nHeads       query heads
 * @param nKvHeads     key/value heads (grouped-query attention when fewer than nHeads)
 * @param vocabSize    rows of the embedding and of the classifier
 * @param contextLength the longest sequence (prompt + generated) the model supports
 * @param rmsNormEps   epsilon inside RMSNorm
 * @param ropeTheta    RoPE base frequency
 * @param sharedClassifier true when the output projection reuses the token embedding
 */
public record ModelConfig(int dim, int hiddenDim, int nLayers, int nHeads, int nKvHeads, int vocabSize,
                          int contextLength, float rmsNormEps, float ropeTheta, boolean sharedClassifier) {
    public ModelConfig {
        if (dim <= 0 || hiddenDim <= 0 || nLayers <= 0 || nHeads <= 0 || nKvHeads <= 0 || vocabSize <= 0
                || contextLength <= 0) {
            throw new IllegalArgumentException("model dimensions must be positive: " + this);
        }
        if (dim % nHeads != 0 || nHeads % nKvHeads != 0) {
            throw new IllegalArgumentException("dim must divide into heads and heads into kv heads: " + this);
        }
    }

    public int headSize() {
        return dim / nHeads;
    }

    public int kvDim() {
        return headSize() * nKvHeads;
    }
}

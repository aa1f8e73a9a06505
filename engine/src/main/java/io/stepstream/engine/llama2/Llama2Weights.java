package io.stepstream.engine.llama2;

import io.stepstream.engine.ModelConfig;

/**
 * The float32 weights of a llama2.c checkpoint, one row-major array per matrix and layer
 * (a matrix [rows][cols] is stored as rows*cols floats, row r at r*cols).
 * {@code classifier} is the token embedding itself when the checkpoint shares it.
 */
public record Llama2Weights(ModelConfig config,
                            float[] tokenEmbedding,
                            float[][] rmsAtt,
                            float[][] wq,
                            float[][] wk,
                            float[][] wv,
                            float[][] wo,
                            float[][] rmsFfn,
                            float[][] w1,
                            float[][] w2,
                            float[][] w3,
                            float[] rmsFinal,
                            float[] classifier) {
}

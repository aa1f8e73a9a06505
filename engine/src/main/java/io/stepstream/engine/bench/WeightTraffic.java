package io.stepstream.engine.bench;

import io.stepstream.engine.llama.LlamaWeights;
import io.stepstream.engine.tensor.WeightMatrix;

/**
 * Weight bytes one forward step reads from memory, in their file encoding: every layer matrix and the output
 * matrix once whatever the batch (one pass serves all tokens), the norm and bias vectors, and one embedding row
 * per token. The KV cache is not counted: the bandwidth fraction is about weights, the part that batching
 * shares.
 *
 * @param matrices      layer matrices and the output matrix (the embedding itself when tied)
 * @param vectors       norm weights and biases (float32)
 * @param embeddingRows the embedding rows of the step's tokens
 */
public record WeightTraffic(long matrices, long vectors, long embeddingRows) {
    public WeightTraffic {
        if (matrices < 0 || vectors < 0 || embeddingRows < 0) {
            throw new IllegalArgumentException("byte counts must be >= 0: " + matrices + ", " + vectors + ", "
                    + embeddingRows);
        }
    }

    /** The bytes a step of {@code tokens} tokens reads (a decode step of B sequences has B tokens). */
    public static WeightTraffic perStep(LlamaWeights w, int tokens) {
        if (tokens < 1) {
            throw new IllegalArgumentException("tokens must be >= 1, got " + tokens);
        }
        long matrices = bytes(w.output());
        long vectors = 4L * w.outputNorm().length;
        for (LlamaWeights.Layer y : w.layers()) {
            for (WeightMatrix m : y.matrices()) {
                matrices += bytes(m);
            }
            vectors += 4L * (y.attnNorm().length + y.ffnNorm().length);
            if (y.bq() != null) {
                vectors += 4L * (y.bq().length + y.bk().length + y.bv().length);
            }
        }
        return new WeightTraffic(matrices, vectors, tokens * w.tokenEmbedding().rowBytes());
    }

    private static long bytes(WeightMatrix m) {
        return m.rows() * m.rowBytes();
    }

    public long total() {
        return matrices + vectors + embeddingRows;
    }
}

package io.stepstream.engine.bench;

import io.stepstream.engine.llama.LlamaWeights;
import io.stepstream.engine.tensor.WeightMatrix;

/**
 * Floating-point operations of a step's matmuls: 2 per weight per token (a multiply and an add), over every layer
 * matrix and the output matrix, whatever their encoding (a quantized weight is still one multiply-add per token
 * once decoded). Attention, norms and activations are not counted: this is the arithmetic that batching cannot
 * share, the counterpart of {@link WeightTraffic}'s bytes, which it can.
 */
public final class MatmulFlops {
    private MatmulFlops() {
    }

    /** Operations of one token's matmuls. */
    public static long perToken(LlamaWeights w) {
        long weights = elements(w.output());
        for (LlamaWeights.Layer y : w.layers()) {
            for (WeightMatrix m : y.matrices()) {
                weights += elements(m);
            }
        }
        return 2 * weights;
    }

    private static long elements(WeightMatrix m) {
        return (long) m.rows() * m.cols();
    }
}

package io.stepstream.engine;

/**
 * A loaded model ready to run forward passes. One forward call serves a whole batch of sequences,
 * each with its own KV cache and position. Not thread-safe: one step at a time per model.
 */
public interface Model extends AutoCloseable {
    String name();

    ModelConfig config();

    Tokenizer tokenizer();

    /** A new, empty KV cache for one sequence; memory is taken block by block as the sequence grows. */
    KvCache newKvCache();

    /**
     * Runs the batch through the model. For each entry, appends its tokens to its KV cache (positions
     * {@code cache.length() .. cache.length()+length-1}) and writes the logits of its last token into
     * {@code logits[i]} (length vocabSize), where i is the entry's index in the batch.
     */
    void forward(ForwardBatch batch, float[][] logits);

    @Override
    default void close() {
    }
}

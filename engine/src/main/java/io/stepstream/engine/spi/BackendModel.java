package io.stepstream.engine.spi;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.Model;
import io.stepstream.engine.dlm.RowSummaries;

/**
 * A model that knows where it runs, for ListModels' backend and device fields. May change over its life
 * (a failover model reports the CPU once it has failed over), so read it when reporting, not once.
 *
 * <p>It may also reduce a step's logits where they are made ({@link #forwardSummaries}): a greedy decode step needs
 * of each entry's logits row only its argmax (the token) and that token's probability, so a device that reduces
 * the rows itself reads back 12 bytes an entry instead of {@code 4 x vocab}.
 */
public interface BackendModel extends Model {
    /**
     * The engine's own CPU model as a backend model: backend and device "cpu", everything passed to {@code model},
     * summaries on the host (the default {@link #forwardSummaries}); closing it closes {@code model}.
     */
    static BackendModel onCpu(Model model) {
        return new CpuBackendProvider.CpuModel(model, CpuBackendProvider.NAME);
    }

    /** The provider's name: "cpu", "opencl". */
    String backendName();

    /** The device in words, e.g. "NVIDIA H200 (GPU, NVIDIA Corporation, 132 compute units, 143 GiB)" or "cpu". */
    String deviceName();

    /**
     * Whether {@link #forwardSummaries} reduces the rows where the logits are made (a device), so that a step that
     * needs only summaries gains by asking for them. False by default: the default {@link #forwardSummaries} does on
     * the host more than a greedy sampler's argmax (it also sums the row's exps for the confidence).
     * May change over the model's life (false once a device model has failed over to the CPU).
     */
    default boolean summarizesOnDevice() {
        return false;
    }

    /**
     * {@link #forward} for a step that needs of each entry's logits only {@link RowSummaries}: row {@code i} of
     * {@code out} gets entry i's argmax id (over every id, ties to the lowest: bitwise the token
     * {@link io.stepstream.engine.Sampler} picks greedily from the same logits) and its float64 softmax probability,
     * whose log ({@link RowSummaries#logprob}) is the token's log-probability. {@code logits} are checked and used as
     * {@link #forward} takes them (a row of vocabSize floats per entry), scratch for what is not reduced on a device;
     * their contents afterwards are unspecified. The KV caches advance exactly as in {@link #forward}.
     *
     * <p>This default runs {@link #forward} and summarizes each row on the calling thread with
     * {@link RowSummaries#summarizeRow}; a device's confidence differs from the host's in the last bits (its own
     * double exp and summation order, see {@link RowSummaries}), its argmax does not.
     *
     * @throws IllegalArgumentException as {@link #forward} does, and when {@code out} has fewer rows than entries
     */
    default void forwardSummaries(ForwardBatch batch, float[][] logits, RowSummaries out) {
        checkSummaries(batch, out);
        forward(batch, logits);
        summarizeOnHost(batch, logits, out, config().vocabSize());
    }

    /** Refuses summaries without a row for every entry of the batch. */
    static void checkSummaries(ForwardBatch batch, RowSummaries out) {
        int entries = batch.entries().size();
        if (out == null || out.capacity() < entries) {
            throw new IllegalArgumentException("summaries must have a row per entry: " + entries + " entries, "
                    + (out == null ? "null" : out.capacity() + " rows"));
        }
    }

    /** Entry i's logits row {@code logits[i]} into row i of {@code out}, for every entry, on the calling thread. */
    static void summarizeOnHost(ForwardBatch batch, float[][] logits, RowSummaries out, int vocab) {
        for (int i = 0; i < batch.entries().size(); i++) {
            out.summarizeRow(i, logits[i], 0, vocab);
        }
    }
}

package io.stepstream.engine.spi;

import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.RowSummaries;

import java.util.List;

/**
 * A diffusion LM placed on a backend ({@link BackendProvider#loadDiffusion}). The engine's CPU
 * {@link DiffusionModel} stays its identity (name, ids, tokenizer, family) and owns the per-request state (SparseD
 * patterns, Fast-dLLM keys and values); {@link #forward} is where the backend runs the canvases it can and hands
 * the rest to that CPU model in the same call.
 */
public interface DiffusionBackendModel extends AutoCloseable {
    /** The CPU model behind it: ids, limits, caches, and the forward for inputs the backend does not take. */
    DiffusionModel cpuModel();

    /** {@link DiffusionModel#forward}'s contract: {@code logits[i]} gets input i's logits range, position-major. */
    void forward(List<DenoiseInput> batch, float[][] logits);

    /**
     * Whether {@link #forwardSummaries} reduces the rows where the logits are made (a device), so that asking for
     * summaries saves reading back and reducing every logit on the host. False by default: the default
     * {@link #forwardSummaries} only does on one host thread what a caller's {@code apply} does in parallel.
     */
    default boolean summarizesOnDevice() {
        return false;
    }

    /**
     * {@link #forward} for callers whose every input needs only {@link RowSummaries} of its logits range (greedy
     * low-confidence LLaDA steps, see {@link io.stepstream.engine.dlm.DenoisingGeneration#acceptsSummaries}):
     * {@code summaries[i]} gets input i's rows. {@code logits} are rows as {@link #forward} takes them, scratch for the
     * inputs a backend does not summarize itself; their contents afterwards are unspecified. This default runs
     * {@link #forward} and summarizes every row on the calling thread with {@link RowSummaries#summarize}, so its
     * summaries give bitwise the decisions of applying the logits; a device's confidences may differ from those in
     * the last bits (see {@link RowSummaries}).
     */
    default void forwardSummaries(List<DenoiseInput> batch, float[][] logits, RowSummaries[] summaries) {
        RowSummaries.checkBatch(batch, summaries);
        forward(batch, logits);
        summarizeOnHost(batch, logits, summaries, cpuModel().vocabSize());
    }

    /** Input i's logits rows into {@code summaries[i]}, for every input, on the calling thread. */
    static void summarizeOnHost(List<DenoiseInput> batch, float[][] logits, RowSummaries[] summaries, int vocab) {
        for (int i = 0; i < batch.size(); i++) {
            summaries[i].summarize(logits[i], batch.get(i).logitsLength(), vocab);
        }
    }

    /** The provider's name ("cpu", "opencl"); may change over its life (a failed device reports "cpu"). */
    String backendName();

    /** The device in words. */
    String deviceName();

    /** Releases the device and closes the CPU model. */
    @Override
    void close();

    /** The CPU model as it is: every input on the engine's own forward. */
    static DiffusionBackendModel onCpu(DiffusionModel model) {
        return new DiffusionBackendModel() {
            @Override
            public DiffusionModel cpuModel() {
                return model;
            }

            @Override
            public void forward(List<DenoiseInput> batch, float[][] logits) {
                model.forward(batch, logits);
            }

            @Override
            public String backendName() {
                return CpuBackendProvider.NAME;
            }

            @Override
            public String deviceName() {
                return CpuBackendProvider.NAME;
            }

            @Override
            public void close() {
                model.close();
            }
        };
    }
}

package io.stepstream.engine.spi;

import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionModel;

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

package io.stepstream.engine.spi;

import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;

/**
 * A place a llama2-family model can run: the engine's CPU forward ("cpu") or a device backend such as OpenCL
 * ("opencl", in the gpu module). Found through {@link java.util.ServiceLoader}: a module offers one by listing
 * its class in {@code META-INF/services/io.stepstream.engine.spi.BackendProvider}; {@link Backends} picks one
 * by name.
 */
public interface BackendProvider {
    /** The name {@code --backend} selects it by, lower case: "cpu", "opencl". */
    String name();

    /**
     * Whether this backend can load a model on this machine now (for OpenCL: a driver with at least one
     * device). Cheap enough to call at startup; never throws.
     */
    boolean available();

    /**
     * Builds a model from the engine's float32 weights on the device {@code options.device()} names
     * (backend-specific selector; empty means the backend's default). The weights are copied or uploaded as
     * needed; the caller may drop them afterwards only if the backend says it copies them (OpenCL does, the
     * CPU backend reads them in place).
     *
     * @throws IllegalArgumentException naming the option when the options do not fit this backend
     */
    BackendModel load(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, BackendOptions options);

    /**
     * Places a diffusion LM (already loaded on the CPU, which stays its fallback and runs what the backend does not
     * take) on the device {@code options.device()} names. A backend that runs no diffusion models, or not this
     * family, refuses with a message that says so. On success the returned model owns {@code model}.
     *
     * @throws IllegalArgumentException naming the option or the config key that does not fit this backend
     */
    default DiffusionBackendModel loadDiffusion(DiffusionModel model, BackendOptions options) {
        throw new IllegalArgumentException("--backend " + name() + " does not run diffusion models");
    }
}

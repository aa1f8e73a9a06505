package io.stepstream.protocol.cli;

import io.stepstream.engine.spi.BackendOptions;
import io.stepstream.engine.spi.CpuBackendProvider;
import io.stepstream.engine.tensor.TensorType;
import java.util.Locale;
import picocli.CommandLine.Option;

/**
 * Where a command runs its models: {@code --backend}, {@code --device}, {@code --dtype}. The CPU backend with no
 * device and no dtype is the engine's own loader (every format, the file's own encodings); anything else goes
 * through the engine's BackendProvider SPI, which places llama2.c checkpoints and LLaDA-style diffusion models.
 */
final class BackendMixin {
    @Option(names = "--backend", paramLabel = "cpu|opencl", defaultValue = "cpu",
            description = "Compute backend (default: ${DEFAULT-VALUE}). opencl runs llama2.c checkpoints (stories260K "
                    + "or a .bin) and LLaDA-style diffusion models (tinystories-dlm or a folder) on an OpenCL device; "
                    + "a diffusion step with SparseD or the Fast-dLLM cache runs on the CPU in the same step, and "
                    + "Dream models run on the CPU backend only.")
    String backend = CpuBackendProvider.NAME;

    @Option(names = "--device", paramLabel = "SEL",
            description = "OpenCL device: auto (default), gpu, cpu, an index, or part of its name.")
    String device;

    @Option(names = "--dtype", paramLabel = "f32|f16|q8_0",
            description = "Weight encoding on the OpenCL device (default f32).")
    String dtype;

    @Option(names = "--kv-cache", paramLabel = "f32|f16",
            description = "KV cache element type on the OpenCL device (default f32, or -Dstepstream.opencl.kvCache): "
                    + "f16 halves the bytes decode attention reads and holds twice the positions; autoregressive "
                    + "models only (diffusion models keep f32; the CPU backend refuses f16).")
    String kvCache;

    /** The backend name, lower case. */
    String backend() {
        return backend == null ? CpuBackendProvider.NAME : backend.strip().toLowerCase(Locale.ROOT);
    }

    /** True for the engine's own CPU loader: --backend cpu with neither --device nor --dtype (nor --kv-cache f16). */
    boolean isEngineDefault() {
        return backend().equals(CpuBackendProvider.NAME) && device == null && dtype == null
                && kvCacheType() != TensorType.F16;
    }

    /** The options for a non-default placement; a named error for combinations that mean nothing. */
    BackendOptions options() {
        if (backend().equals(CpuBackendProvider.NAME)) {
            if (device != null) {
                throw CliFailure.badInput("--device: applies to --backend opencl only");
            }
            if (dtype != null) {
                throw CliFailure.badInput("--dtype: applies to --backend opencl only (the CPU backend serves the "
                        + "file's own encoding)");
            }
        }
        TensorType type;
        try {
            type = BackendOptions.parseWeightType(dtype);
        } catch (IllegalArgumentException e) {
            throw CliFailure.badInput(e.getMessage());
        }
        TensorType kv = kvCacheType();
        if (kv == TensorType.F16 && backend().equals(CpuBackendProvider.NAME)) {
            throw CliFailure.badInput("--kv-cache f16: applies to --backend opencl only (the CPU backend keeps an "
                    + "f32 KV cache)");
        }
        return BackendOptions.defaults().withDevice(device == null ? "" : device).withWeightType(type)
                .withKvCache(kv);
    }

    /** --kv-cache as a type (null when not given); a named error for anything but f32 or f16. */
    private TensorType kvCacheType() {
        try {
            return BackendOptions.parseKvCache(kvCache);
        } catch (IllegalArgumentException e) {
            throw CliFailure.badInput(e.getMessage());
        }
    }
}

package io.stepstream.engine.spi;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.tensor.TensorType;

import java.util.Locale;

/**
 * How a backend should place a model.
 *
 * @param device      backend-specific device selector ("" = the backend's default; OpenCL: auto, gpu, cpu, an
 *                    index or a name substring)
 * @param weightType  encoding of the matrices on the device: F32, F16 or Q8_0 (the CPU backend takes F32 only)
 * @param model       threads and KV blocks (kvBlocks 0 = the backend's default)
 */
public record BackendOptions(String device, TensorType weightType, ModelOptions model) {
    public BackendOptions {
        device = device == null ? "" : device.strip();
        if (weightType == null) {
            weightType = TensorType.F32;
        }
        if (weightType != TensorType.F32 && weightType != TensorType.F16 && weightType != TensorType.Q8_0) {
            throw new IllegalArgumentException("weightType must be F32, F16 or Q8_0, got " + weightType);
        }
        if (model == null) {
            model = ModelOptions.defaults();
        }
    }

    public static BackendOptions defaults() {
        return new BackendOptions("", TensorType.F32, ModelOptions.defaults());
    }

    public BackendOptions withDevice(String selector) {
        return new BackendOptions(selector, weightType, model);
    }

    public BackendOptions withWeightType(TensorType type) {
        return new BackendOptions(device, type, model);
    }

    public BackendOptions withModel(ModelOptions options) {
        return new BackendOptions(device, weightType, options);
    }

    /** "f32", "f16" or "q8_0" (any case) as a weight type; a clear error otherwise. */
    public static TensorType parseWeightType(String s) {
        return switch (s == null ? "" : s.strip().toLowerCase(Locale.ROOT)) {
            case "f32", "" -> TensorType.F32;
            case "f16" -> TensorType.F16;
            case "q8_0", "q8" -> TensorType.Q8_0;
            default -> throw new IllegalArgumentException("--dtype must be f32, f16 or q8_0, got '" + s + "'");
        };
    }
}

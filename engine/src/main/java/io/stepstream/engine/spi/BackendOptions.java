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
 * @param kvCache     element type of the KV cache: null for the backend's default, F32, or F16 (OpenCL
 *                    autoregressive models only, like vLLM's {@code --kv-cache-dtype}; the CPU keeps F32)
 */
public record BackendOptions(String device, TensorType weightType, ModelOptions model, TensorType kvCache) {
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
        if (kvCache != null && kvCache != TensorType.F32 && kvCache != TensorType.F16) {
            throw new IllegalArgumentException("kvCache must be F32 or F16, got " + kvCache);
        }
    }

    public static BackendOptions defaults() {
        return new BackendOptions("", TensorType.F32, ModelOptions.defaults(), null);
    }

    public BackendOptions withDevice(String selector) {
        return new BackendOptions(selector, weightType, model, kvCache);
    }

    public BackendOptions withWeightType(TensorType type) {
        return new BackendOptions(device, type, model, kvCache);
    }

    public BackendOptions withModel(ModelOptions options) {
        return new BackendOptions(device, weightType, options, kvCache);
    }

    /** The same with the KV cache's element type (null: the backend's default). */
    public BackendOptions withKvCache(TensorType type) {
        return new BackendOptions(device, weightType, model, type);
    }

    /** "f32" or "f16" (any case) as a KV cache element type, null for null or blank; a clear error otherwise. */
    public static TensorType parseKvCache(String s) {
        return switch (s == null ? "" : s.strip().toLowerCase(Locale.ROOT)) {
            case "" -> null;
            case "f32" -> TensorType.F32;
            case "f16" -> TensorType.F16;
            default -> throw new IllegalArgumentException("--kv-cache must be f32 or f16, got '" + s + "'");
        };
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

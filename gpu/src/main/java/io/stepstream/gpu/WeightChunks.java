package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.cl.ClQueue;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

/**
 * The device buffers of the layered weight kinds (wq, wk, wv, wo, w1, w2, w3) of a model whose kinds do not fit one
 * buffer each: every kind is split at the same layer boundaries ({@link Split}), so one pass's segments (wq | wk | wv,
 * w1 | w3) always sit in the same chunk at the same layer index. Chunk 0 stays the Aparapi field (the launcher
 * uploads it); the further chunks are buffers of our own, made and filled here in the launcher's context, and
 * released with it. The classifier is one matrix, never split.
 */
final class WeightChunks {
    /**
     * System property: the most bytes one chunk of a layered weight kind may take on the device (default and upper
     * bound: 2 GiB, the largest Java array Aparapi can hand over). Lower it to force splits on small models.
     */
    static final String MAX_BUFFER_BYTES_PROPERTY = "stepstream.opencl.maxBufferBytes";
    /** The kinds split by layers, in Llama2Kernel's K_* order, and their field name prefixes. */
    static final int[] LAYERED = {Llama2Kernel.K_WQ, Llama2Kernel.K_WK, Llama2Kernel.K_WV, Llama2Kernel.K_WO,
            Llama2Kernel.K_W1, Llama2Kernel.K_W2, Llama2Kernel.K_W3};
    static final String[] NAMES = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};

    /** Buffers of chunks 1.. of each field ({@code w1H}, {@code w1S}, ...); index 0 is null (the launcher's). */
    private final Map<String, MemorySegment[]> buffers;
    private final Split split;

    private WeightChunks(Split split, Map<String, MemorySegment[]> buffers) {
        this.split = split;
        this.buffers = buffers;
    }

    /**
     * How the layers are cut: chunks of {@code layersPerChunk} consecutive layers (the last may have fewer), the
     * same for every layered kind.
     */
    record Split(int layers, int layersPerChunk, long maxBufferBytes) {
        Split {
            if (layers < 1 || layersPerChunk < 1) {
                throw new IllegalArgumentException(layers + " layers in chunks of " + layersPerChunk);
            }
        }

        int chunks() {
            return (layers + layersPerChunk - 1) / layersPerChunk;
        }

        boolean isSplit() {
            return chunks() > 1;
        }

        int chunkOf(int layer) {
            java.util.Objects.checkIndex(layer, layers);
            return layer / layersPerChunk;
        }

        int layerInChunk(int layer) {
            return layer - chunkOf(layer) * layersPerChunk;
        }

        int firstLayer(int chunk) {
            return chunk * layersPerChunk;
        }

        int endLayer(int chunk) {
            return Math.min(layers, (chunk + 1) * layersPerChunk);
        }

        /** In words, for messages: "3 chunks of up to 2 layers (max buffer 123 bytes)". */
        String describe() {
            return chunks() + " chunks of up to " + layersPerChunk + " layers (" + MAX_BUFFER_BYTES_PROPERTY + " "
                    + maxBufferBytes + ")";
        }
    }

    /** {@value #MAX_BUFFER_BYTES_PROPERTY}: a byte count in [1, 2 GiB), 2 GiB - 1 when unset. */
    static long maxBufferBytesFromSystemProperty() {
        String v = System.getProperty(MAX_BUFFER_BYTES_PROPERTY);
        if (v == null || v.isBlank()) {
            return DeviceLlama2.MAX_BUFFER_BYTES;
        }
        try {
            long bytes = Long.parseLong(v.strip());
            if (bytes >= 1 && bytes <= DeviceLlama2.MAX_BUFFER_BYTES) {
                return bytes;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(MAX_BUFFER_BYTES_PROPERTY + " must be a byte count from 1 to "
                + DeviceLlama2.MAX_BUFFER_BYTES + ", got '" + v + "'");
    }

    /** Elements of one layer of each layered kind (LAYERED order). */
    static long[] layerElements(ModelConfig c) {
        long dim = c.dim();
        long kv = c.kvDim();
        long hidden = c.hiddenDim();
        return new long[]{dim * dim, kv * dim, kv * dim, dim * dim, hidden * dim, dim * hidden, hidden * dim};
    }

    /**
     * The most layers per chunk such that every layered kind's chunk stays within {@code maxBufferBytes} (and a
     * Java array, so that every element offset the kernels compute, {@code layer * lstride + row * cols}, is below
     * 2^31). Fails when one layer alone is larger, or when a split Q8_0 kind's layers are not whole scale blocks
     * (a chunk must start on a block for its quantization to equal the unsplit one).
     */
    static Split plan(ModelConfig c, TensorType type, long maxBufferBytes) {
        long bytesPerElement = switch (type) {
            case F32 -> 4;
            case F16 -> 2;
            case Q8_0 -> 1;
            default -> throw new IllegalArgumentException("weight type " + type + " is not supported on the device"
                    + " (F32, F16, Q8_0)");
        };
        long[] elements = layerElements(c);
        long fit = c.nLayers();
        for (int i = 0; i < elements.length; i++) {
            long byBytes = maxBufferBytes / (elements[i] * bytesPerElement);
            long byIndex = (Integer.MAX_VALUE - 64) / elements[i];
            long layers = Math.min(byBytes, byIndex);
            if (layers < 1) {
                throw new IllegalArgumentException(NAMES[i] + ": one layer of " + elements[i] + " " + type
                        + " elements (" + elements[i] * bytesPerElement + " bytes) does not fit one device buffer of "
                        + maxBufferBytes + " bytes (" + MAX_BUFFER_BYTES_PROPERTY + ")");
            }
            fit = Math.min(fit, layers);
        }
        Split split = new Split(c.nLayers(), (int) fit, maxBufferBytes);
        if (split.isSplit() && type == TensorType.Q8_0) {
            for (int i = 0; i < elements.length; i++) {
                if (elements[i] % 32 != 0) {
                    throw new IllegalArgumentException(NAMES[i] + ": Q8_0 weights split into " + split.describe()
                            + " need each layer to be whole 32-element scale blocks; a layer has " + elements[i]
                            + " elements");
                }
            }
        }
        return split;
    }

    /**
     * Makes and fills the buffers of chunks 1.. of every layered kind in {@code queue}'s context;
     * {@code chunks[kind][chunk]} is the encoded chunk (entries 1.. are cleared once uploaded, so the host copies can
     * go). {@code suffix}: the weight fields' suffix for the encoding ("", "H" or "Q").
     */
    static WeightChunks upload(ClQueue queue, Split split, DeviceWeights[][] chunks, TensorType type, String suffix) {
        Map<String, MemorySegment[]> buffers = new HashMap<>();
        for (int i = 0; i < LAYERED.length; i++) {
            DeviceWeights[] kind = chunks[LAYERED[i]];
            MemorySegment[] data = new MemorySegment[split.chunks()];
            MemorySegment[] scales = type == TensorType.Q8_0 ? new MemorySegment[split.chunks()] : null;
            for (int c = 1; c < split.chunks(); c++) {
                DeviceWeights d = kind[c];
                data[c] = switch (type) {
                    case F32 -> upload(queue, MemorySegment.ofArray(d.f32()), (long) d.f32().length * Float.BYTES);
                    case F16 -> upload(queue, MemorySegment.ofArray(d.f16()), (long) d.f16().length * Character.BYTES);
                    default -> upload(queue, MemorySegment.ofArray(d.q8()), d.q8().length);
                };
                if (scales != null) {
                    scales[c] = upload(queue, MemorySegment.ofArray(d.q8Scales()),
                            (long) d.q8Scales().length * Float.BYTES);
                }
                kind[c] = null;
            }
            buffers.put(NAMES[i] + suffix, data);
            if (scales != null) {
                buffers.put(NAMES[i] + "S", scales);
            }
        }
        return new WeightChunks(split, buffers);
    }

    private static MemorySegment upload(ClQueue queue, MemorySegment host, long bytes) {
        MemorySegment b = queue.createBuffer(bytes);
        queue.writeBlocking(b, host, bytes);
        return b;
    }

    Split split() {
        return split;
    }

    /**
     * The buffer of kernel field {@code field}'s chunk {@code chunk}, or null where the launcher's buffer of the field
     * is the one (chunk 0, the classifier, the unused scale fields of F32 and F16).
     */
    MemorySegment buffer(String field, int chunk) {
        MemorySegment[] b = buffers.get(field);
        return b == null ? null : b[chunk];
    }
}

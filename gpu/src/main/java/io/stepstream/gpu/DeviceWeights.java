package io.stepstream.gpu;

import io.stepstream.engine.format.gguf.Quants;
import io.stepstream.engine.tensor.TensorType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One weight kind of a range of layers (all of them, or one chunk of a kind split by {@link WeightChunks}),
 * concatenated and encoded for the device: F32 as is, F16 as IEEE half bits,
 * Q8_0 as int8 quants with one float scale per 32 consecutive elements (ggml's quantizer, bit for bit; the
 * last block is zero-padded; a chunk of whole 32-element layers quantizes as the same layers do unsplit). Each array
 * must stay under Java's and Aparapi's 2 GiB limit.
 */
record DeviceWeights(float[] f32, char[] f16, byte[] q8, float[] q8Scales, long elements) {
    static final float[] NO_FLOATS = new float[1];
    static final char[] NO_CHARS = new char[1];
    static final byte[] NO_BYTES = new byte[1];

    static DeviceWeights encode(String name, TensorType type, float[]... perLayer) {
        long total = 0;
        for (float[] a : perLayer) {
            total += a.length;
        }
        long bytesPerElement = switch (type) {
            case F32 -> 4;
            case F16 -> 2;
            case Q8_0 -> 1;
            default -> throw new IllegalArgumentException(name + ": weight type " + type + " is not supported on the"
                    + " device (F32, F16, Q8_0)");
        };
        if (total * bytesPerElement > DeviceLlama2.MAX_BUFFER_BYTES || total > Integer.MAX_VALUE - 64) {
            throw new IllegalArgumentException(name + ": " + total + " " + type + " elements over all layers exceed"
                    + " one 2 GiB device buffer");
        }
        int n = (int) total;
        return switch (type) {
            case F32 -> new DeviceWeights(concat(perLayer, n), NO_CHARS, NO_BYTES, NO_FLOATS, total);
            case F16 -> new DeviceWeights(NO_FLOATS, toF16(name, perLayer, n), NO_BYTES, NO_FLOATS, total);
            default -> q8(perLayer, n);
        };
    }

    private static float[] concat(float[][] perLayer, int n) {
        if (perLayer.length == 1 && perLayer[0].length == n) {
            return perLayer[0];
        }
        float[] out = new float[n];
        int at = 0;
        for (float[] a : perLayer) {
            System.arraycopy(a, 0, out, at, a.length);
            at += a.length;
        }
        return out;
    }

    private static char[] toF16(String name, float[][] perLayer, int n) {
        char[] out = new char[n];
        int at = 0;
        for (float[] a : perLayer) {
            for (float v : a) {
                if (!(Math.abs(v) <= 65504f)) {
                    throw new IllegalArgumentException(name + ": element " + at + " = " + v
                            + " does not fit a finite F16");
                }
                out[at++] = (char) Quants.floatToF16(v);
            }
        }
        return out;
    }

    private static DeviceWeights q8(float[][] perLayer, int n) {
        int blocks = (n + 31) / 32;
        byte[] quants = new byte[blocks * 32];
        float[] scales = new float[blocks];
        float[] block = new float[32];
        byte[] encoded = new byte[TensorType.Q8_0.blockBytes()];
        MemorySegment seg = MemorySegment.ofArray(encoded);
        int layer = 0;
        int inLayer = 0;
        for (int b = 0; b < blocks; b++) {
            for (int j = 0; j < 32; j++) {
                while (layer < perLayer.length && inLayer == perLayer[layer].length) {
                    layer++;
                    inLayer = 0;
                }
                block[j] = layer < perLayer.length ? perLayer[layer][inLayer++] : 0f;
            }
            Quants.quantize(TensorType.Q8_0, block, 0, 32, seg, 0);
            scales[b] = Quants.f16ToFloat(seg.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(
                    java.nio.ByteOrder.LITTLE_ENDIAN), 0));
            System.arraycopy(encoded, 2, quants, b * 32, 32);
        }
        return new DeviceWeights(NO_FLOATS, NO_CHARS, quants, scales, n);
    }

    /** Bytes the device reads to stream this kind once. */
    long deviceBytes() {
        return (long) f32.length * 4 + (f32 == NO_FLOATS ? -4 : 0)
                + (long) f16.length * 2 + (f16 == NO_CHARS ? -2 : 0)
                + (long) q8.length + (q8 == NO_BYTES ? -1 : 0)
                + (long) q8Scales.length * 4 + (q8Scales == NO_FLOATS ? -4 : 0);
    }
}

package io.stepstream.engine.bench;

import io.stepstream.engine.tensor.TensorType;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Encodes float weights into a ggml layout, with plain round-to-nearest quantization, for benchmarks. */
final class Weights {
    private Weights() {
    }

    static byte[] encode(TensorType type, float[] w) {
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(type.bytesFor(w.length))).order(ByteOrder.LITTLE_ENDIAN);
        switch (type) {
            case F32 -> {
                for (float v : w) {
                    b.putFloat(v);
                }
            }
            case F16 -> {
                for (float v : w) {
                    b.putShort(Float.floatToFloat16(v));
                }
            }
            case BF16 -> {
                for (float v : w) {
                    b.putShort((short) (Float.floatToRawIntBits(v) >>> 16));
                }
            }
            case Q8_0 -> {
                for (int i = 0; i < w.length; i += 32) {
                    float d = maxAbs(w, i) / 127f;
                    b.putShort(Float.floatToFloat16(d));
                    for (int j = 0; j < 32; j++) {
                        b.put((byte) (d == 0 ? 0 : Math.round(w[i + j] / d)));
                    }
                }
            }
            case Q4_0 -> {
                for (int i = 0; i < w.length; i += 32) {
                    float d = maxAbs(w, i) / 7f;
                    b.putShort(Float.floatToFloat16(d));
                    for (int j = 0; j < 16; j++) {
                        int lo = nibble(w[i + j], d);
                        int hi = nibble(w[i + j + 16], d);
                        b.put((byte) (lo | hi << 4));
                    }
                }
            }
            default -> throw new IllegalArgumentException("no encoder for " + type);
        }
        return b.array();
    }

    private static int nibble(float v, float d) {
        return d == 0 ? 8 : Math.clamp(Math.round(v / d) + 8, 0, 15);
    }

    private static float maxAbs(float[] w, int from) {
        float m = 0;
        for (int j = 0; j < 32; j++) {
            m = Math.max(m, Math.abs(w[from + j]));
        }
        return m;
    }
}

package io.stepstream.engine.format.gguf;

import io.stepstream.engine.tensor.TensorType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * Conversion between float32 and the block encodings of {@link TensorType}, bit for bit as ggml's plain C
 * code does it: dequantization of every type (ggml's dequantize_row_*), and quantization to F16, BF16, Q8_0
 * and Q4_0 as ggml's reference quantizers (quantize_row_*_ref) do. The float arithmetic is done in the same
 * order as ggml's so results are identical, not merely close.
 *
 * <p>Block layouts (little-endian, f16 = IEEE half):
 * <ul>
 * <li>Q8_0, 32 elements in 34 bytes: f16 d, int8 q[32]; x = q * d.</li>
 * <li>Q4_0, 32 elements in 18 bytes: f16 d, 16 bytes of nibbles; byte j holds element j in its low nibble and
 * element j + 16 in its high nibble; x = (q - 8) * d.</li>
 * <li>Q4_K, 256 elements in 144 bytes: f16 d, f16 dmin, 12 bytes of packed 6-bit (scale, min) pairs for the
 * eight 32-element sub-blocks, 128 bytes of nibbles; each 32 bytes of nibbles hold two sub-blocks (low nibbles
 * the first, high nibbles the second); x = d * scale * q - dmin * min.</li>
 * <li>Q6_K, 256 elements in 210 bytes: 128 bytes of low nibbles (ql), 64 bytes of 2-bit high parts (qh), 16
 * int8 scales (one per 16 elements), f16 d; x = d * scale * (q - 32) with q the 6-bit value.</li>
 * </ul>
 */
public final class Quants {
    private static final ValueLayout.OfShort LE_SHORT = GgufFile.U16;
    private static final ValueLayout.OfFloat LE_FLOAT = GgufFile.F32;

    private Quants() {
    }

    public static float f16ToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** Round to nearest even, as ggml's GGML_FP32_TO_FP16. */
    public static short floatToF16(float v) {
        return Float.floatToFloat16(v);
    }

    /** bf16 is the upper half of a float32. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** Round to nearest even; NaNs stay NaN (made quiet), as ggml's GGML_FP32_TO_BF16. */
    public static short floatToBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) {
            return (short) ((bits >>> 16) | 0x40); // truncating could leave an all-zero mantissa (infinity)
        }
        // adding 0x7FFF plus the lowest kept bit rounds ties to the even neighbour
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    /**
     * Decodes {@code count} elements (a whole number of blocks) of {@code type} starting at byte
     * {@code srcOffset} of {@code src} into {@code dst[dstOffset ..]}.
     */
    public static void dequantize(TensorType type, MemorySegment src, long srcOffset, float[] dst, int dstOffset,
                                  int count) {
        int blocks = blocks(type, count);
        Objects.checkFromIndexSize(dstOffset, count, dst.length);
        Objects.checkFromIndexSize(srcOffset, (long) blocks * type.blockBytes(), src.byteSize());
        switch (type) {
            case F32 -> MemorySegment.copy(src, LE_FLOAT, srcOffset, dst, dstOffset, count);
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = f16ToFloat(src.get(LE_SHORT, srcOffset + 2L * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = bf16ToFloat(src.get(LE_SHORT, srcOffset + 2L * i));
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < blocks; b++) {
                    dequantizeQ8_0(src, srcOffset + (long) b * type.blockBytes(), dst, dstOffset + b * 32);
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < blocks; b++) {
                    dequantizeQ4_0(src, srcOffset + (long) b * type.blockBytes(), dst, dstOffset + b * 32);
                }
            }
            case Q4_K -> {
                for (int b = 0; b < blocks; b++) {
                    dequantizeQ4K(src, srcOffset + (long) b * type.blockBytes(), dst, dstOffset + b * 256);
                }
            }
            case Q6_K -> {
                for (int b = 0; b < blocks; b++) {
                    dequantizeQ6K(src, srcOffset + (long) b * type.blockBytes(), dst, dstOffset + b * 256);
                }
            }
        }
    }

    /** All of {@code src}, which must be a whole number of blocks of {@code type}. */
    public static float[] dequantize(TensorType type, MemorySegment src) {
        if (src.byteSize() % type.blockBytes() != 0
                || src.byteSize() / type.blockBytes() * type.blockSize() > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException(src.byteSize() + " bytes is not a whole number of " + type
                    + " blocks that fit in a float[]");
        }
        float[] out = new float[(int) (src.byteSize() / type.blockBytes() * type.blockSize())];
        dequantize(type, src, 0, out, 0, out.length);
        return out;
    }

    /** Row {@code row} (dims[0] elements) of tensor {@code t}, whose bytes are {@code data}. */
    public static void dequantizeRow(TensorInfo t, MemorySegment data, long row, float[] dst, int dstOffset) {
        Objects.checkIndex(row, t.rowCount());
        long rowLength = t.rowLength();
        if (rowLength > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(t.name() + ": a row of " + rowLength + " elements");
        }
        dequantize(t.type(), data, row * t.rowBytes(), dst, dstOffset, (int) rowLength);
    }

    private static void dequantizeQ8_0(MemorySegment src, long block, float[] y, int at) {
        float d = f16ToFloat(src.get(LE_SHORT, block));
        for (int j = 0; j < 32; j++) {
            y[at + j] = src.get(ValueLayout.JAVA_BYTE, block + 2 + j) * d;
        }
    }

    private static void dequantizeQ4_0(MemorySegment src, long block, float[] y, int at) {
        float d = f16ToFloat(src.get(LE_SHORT, block));
        for (int j = 0; j < 16; j++) {
            int packed = src.get(ValueLayout.JAVA_BYTE, block + 2 + j) & 0xFF;
            y[at + j] = ((packed & 0x0F) - 8) * d;
            y[at + j + 16] = ((packed >>> 4) - 8) * d;
        }
    }

    private static void dequantizeQ4K(MemorySegment src, long block, float[] y, int at) {
        float d = f16ToFloat(src.get(LE_SHORT, block));
        float dmin = f16ToFloat(src.get(LE_SHORT, block + 2));
        long scales = block + 4;
        long qs = block + 16;
        // four rounds of 32 bytes of nibbles; each round is two 32-element sub-blocks
        for (int round = 0; round < 4; round++) {
            int sub = 2 * round;
            float d1 = d * q4kScale(src, scales, sub);
            float m1 = dmin * q4kMin(src, scales, sub);
            float d2 = d * q4kScale(src, scales, sub + 1);
            float m2 = dmin * q4kMin(src, scales, sub + 1);
            int out = at + 64 * round;
            for (int l = 0; l < 32; l++) {
                int q = src.get(ValueLayout.JAVA_BYTE, qs + 32L * round + l) & 0xFF;
                y[out + l] = d1 * (q & 0x0F) - m1;
                y[out + 32 + l] = d2 * (q >>> 4) - m2;
            }
        }
    }

    /**
     * The 6-bit scale of Q4_K sub-block {@code j}: sub-blocks 0..3 keep theirs in the low 6 bits of bytes
     * 0..3; sub-blocks 4..7 have their low 4 bits in the low nibble of bytes 8..11 and their top 2 bits in the
     * top 2 bits of bytes 0..3.
     */
    static int q4kScale(MemorySegment src, long scales, int j) {
        if (j < 4) {
            return u8(src, scales + j) & 63;
        }
        return (u8(src, scales + j + 4) & 0x0F) | ((u8(src, scales + j - 4) >>> 6) << 4);
    }

    /**
     * The 6-bit min of Q4_K sub-block {@code j}: sub-blocks 0..3 in the low 6 bits of bytes 4..7; sub-blocks
     * 4..7 with the low 4 bits in the high nibble of bytes 8..11 and the top 2 bits in the top of bytes 4..7.
     */
    static int q4kMin(MemorySegment src, long scales, int j) {
        if (j < 4) {
            return u8(src, scales + j + 4) & 63;
        }
        return (u8(src, scales + j + 4) >>> 4) | ((u8(src, scales + j) >>> 6) << 4);
    }

    private static void dequantizeQ6K(MemorySegment src, long block, float[] y, int at) {
        float d = f16ToFloat(src.get(LE_SHORT, block + 208));
        // two halves of 128 elements; each uses 64 bytes of ql, 32 of qh and 8 scales
        for (int half = 0; half < 2; half++) {
            long ql = block + 64L * half;
            long qh = block + 128 + 32L * half;
            long sc = block + 192 + 8L * half;
            int out = at + 128 * half;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int high = u8(src, qh + l);
                int lowA = u8(src, ql + l);
                int lowB = u8(src, ql + l + 32);
                int q1 = ((lowA & 0x0F) | ((high & 3) << 4)) - 32;
                int q2 = ((lowB & 0x0F) | (((high >>> 2) & 3) << 4)) - 32;
                int q3 = ((lowA >>> 4) | (((high >>> 4) & 3) << 4)) - 32;
                int q4 = ((lowB >>> 4) | (((high >>> 6) & 3) << 4)) - 32;
                y[out + l] = d * i8(src, sc + is) * q1;
                y[out + l + 32] = d * i8(src, sc + is + 2) * q2;
                y[out + l + 64] = d * i8(src, sc + is + 4) * q3;
                y[out + l + 96] = d * i8(src, sc + is + 6) * q4;
            }
        }
    }

    /**
     * Encodes {@code count} floats of {@code src[srcOffset ..]} (a whole number of blocks) as {@code type} at
     * byte {@code dstOffset} of {@code dst}. F32, F16, BF16, Q8_0 and Q4_0 as ggml's reference quantizers;
     * Q4_K and Q6_K with simpler quantizers of our own (see {@link #quantizeQ4K}, {@link #quantizeQ6K}) whose
     * blocks ggml decodes as usual but whose bytes differ from ggml's.
     */
    public static void quantize(TensorType type, float[] src, int srcOffset, int count, MemorySegment dst,
                                long dstOffset) {
        int blocks = blocks(type, count);
        Objects.checkFromIndexSize(srcOffset, count, src.length);
        Objects.checkFromIndexSize(dstOffset, (long) blocks * type.blockBytes(), dst.byteSize());
        switch (type) {
            case F32 -> MemorySegment.copy(src, srcOffset, dst, LE_FLOAT, dstOffset, count);
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(LE_SHORT, dstOffset + 2L * i, floatToF16(src[srcOffset + i]));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(LE_SHORT, dstOffset + 2L * i, floatToBf16(src[srcOffset + i]));
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < blocks; b++) {
                    quantizeQ8_0(src, srcOffset + 32 * b, dst, dstOffset + (long) b * type.blockBytes());
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < blocks; b++) {
                    quantizeQ4_0(src, srcOffset + 32 * b, dst, dstOffset + (long) b * type.blockBytes());
                }
            }
            case Q4_K -> {
                for (int b = 0; b < blocks; b++) {
                    quantizeQ4K(src, srcOffset + 256 * b, dst, dstOffset + (long) b * type.blockBytes());
                }
            }
            case Q6_K -> {
                for (int b = 0; b < blocks; b++) {
                    quantizeQ6K(src, srcOffset + 256 * b, dst, dstOffset + (long) b * type.blockBytes());
                }
            }
        }
    }

    /** {@code src} (a whole number of blocks) encoded as {@code type}. */
    public static byte[] quantize(TensorType type, float[] src) {
        byte[] out = new byte[Math.toIntExact(type.bytesFor(src.length))];
        quantize(type, src, 0, src.length, MemorySegment.ofArray(out), 0);
        return out;
    }

    /** d = amax / 127, q = round(x / d) (half away from zero, like C's roundf), via the reciprocal as ggml. */
    private static void quantizeQ8_0(float[] x, int from, MemorySegment dst, long block) {
        float amax = 0f;
        for (int j = 0; j < 32; j++) {
            amax = Math.max(amax, Math.abs(x[from + j]));
        }
        float d = amax / 127;
        float id = d != 0f ? 1.0f / d : 0f;
        dst.set(LE_SHORT, block, floatToF16(d));
        for (int j = 0; j < 32; j++) {
            dst.set(ValueLayout.JAVA_BYTE, block + 2 + j, (byte) roundHalfAway(x[from + j] * id));
        }
    }

    /**
     * d = max / -8 with max the element of largest magnitude (keeping its sign), so that element maps to
     * q = 0 exactly; q = min(15, trunc(x / d + 8.5)).
     */
    private static void quantizeQ4_0(float[] x, int from, MemorySegment dst, long block) {
        float amax = 0f;
        float max = 0f;
        for (int j = 0; j < 32; j++) {
            float v = x[from + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        float d = max / -8;
        float id = d != 0f ? 1.0f / d : 0f;
        dst.set(LE_SHORT, block, floatToF16(d));
        for (int j = 0; j < 16; j++) {
            int lo = Math.min(15, (int) (x[from + j] * id + 8.5f));
            int hi = Math.min(15, (int) (x[from + 16 + j] * id + 8.5f));
            dst.set(ValueLayout.JAVA_BYTE, block + 2 + j, (byte) (lo | (hi << 4)));
        }
    }

    /**
     * Q4_K, a plain min/max fit (not ggml's make_qkx2_quants search, so the bytes differ from ggml's and the
     * error is somewhat larger): per 32-element sub-block j, lo_j = min(0, min x) and step_j = (max x - lo_j) / 15;
     * the super-block scales d = max step_j / 63 and dmin = max(-lo_j) / 63 are stored as float16, rounded up
     * when rounding to nearest would leave a 6-bit code above 63; the 6-bit scale is ceil(step_j / d) (the grid
     * then reaches max x) and the 6-bit min round(-lo_j / dmin); q = round((x + dmin * min) / (d * scale))
     * clamped to [0, 15]. Each element is then within (d * scale + dmin) / 2 of x, plus float rounding.
     */
    private static void quantizeQ4K(float[] x, int from, MemorySegment dst, long block) {
        float[] step = new float[8];
        float[] negLo = new float[8];
        float maxStep = 0f;
        float maxNegLo = 0f;
        for (int j = 0; j < 8; j++) {
            float lo = 0f;
            float hi = -Float.MAX_VALUE;
            for (int i = 0; i < 32; i++) {
                float v = x[from + 32 * j + i];
                lo = Math.min(lo, v);
                hi = Math.max(hi, v);
            }
            step[j] = (hi - lo) / 15;
            negLo[j] = -lo;
            maxStep = Math.max(maxStep, step[j]);
            maxNegLo = Math.max(maxNegLo, negLo[j]);
        }
        short dBits = scaleCoveringMax(maxStep, 63, "Q4_K");
        short dminBits = scaleCoveringMax(maxNegLo, 63, "Q4_K");
        float d = f16ToFloat(dBits);
        float dmin = f16ToFloat(dminBits);
        int[] sc = new int[8];
        int[] mn = new int[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = d > 0f ? Math.min(63, (int) Math.ceil(step[j] / d)) : 0;
            mn[j] = dmin > 0f ? Math.min(63, roundHalfAway(negLo[j] / dmin)) : 0;
        }
        dst.set(LE_SHORT, block, dBits);
        dst.set(LE_SHORT, block + 2, dminBits);
        long scales = block + 4;
        for (int j = 0; j < 4; j++) {
            // sub-blocks 0..3: 6 bits in bytes 0..3 (scale) and 4..7 (min); 4..7 lend the top 2 bits of those
            // bytes and own the nibbles of bytes 8..11
            int hiSc = sc[j + 4];
            int hiMn = mn[j + 4];
            dst.set(ValueLayout.JAVA_BYTE, scales + j, (byte) (sc[j] | ((hiSc >>> 4) << 6)));
            dst.set(ValueLayout.JAVA_BYTE, scales + 4 + j, (byte) (mn[j] | ((hiMn >>> 4) << 6)));
            dst.set(ValueLayout.JAVA_BYTE, scales + 8 + j, (byte) ((hiSc & 0x0F) | ((hiMn & 0x0F) << 4)));
        }
        long qs = block + 16;
        for (int pair = 0; pair < 4; pair++) {
            int lo = 2 * pair;
            float dLo = d * sc[lo];
            float mLo = dmin * mn[lo];
            float dHi = d * sc[lo + 1];
            float mHi = dmin * mn[lo + 1];
            for (int i = 0; i < 32; i++) {
                int qLo = nearestLevel(x[from + 64 * pair + i], dLo, mLo, 15);
                int qHi = nearestLevel(x[from + 64 * pair + 32 + i], dHi, mHi, 15);
                dst.set(ValueLayout.JAVA_BYTE, qs + 32L * pair + i, (byte) (qLo | (qHi << 4)));
            }
        }
    }

    /**
     * Q6_K, a plain symmetric fit (not ggml's make_qx_quants search; bytes differ from ggml's): per 16-element
     * sub-block j, step_j = max |x| / 31; the super-block scale d = max step_j / 127 as float16 (rounded up
     * when needed so every 8-bit code stays <= 127); the int8 scale ceil(step_j / d) (so |x| / (d * scale) <= 31);
     * q = round(x / (d * scale)) clamped to [-32, 31]. Each element is then within d * scale / 2 of x, plus
     * float rounding.
     */
    private static void quantizeQ6K(float[] x, int from, MemorySegment dst, long block) {
        float[] step = new float[16];
        float maxStep = 0f;
        for (int j = 0; j < 16; j++) {
            float amax = 0f;
            for (int i = 0; i < 16; i++) {
                amax = Math.max(amax, Math.abs(x[from + 16 * j + i]));
            }
            step[j] = amax / 31;
            maxStep = Math.max(maxStep, step[j]);
        }
        short dBits = scaleCoveringMax(maxStep, 127, "Q6_K");
        float d = f16ToFloat(dBits);
        int[] sc = new int[16];
        for (int j = 0; j < 16; j++) {
            sc[j] = d > 0f ? Math.min(127, (int) Math.ceil(step[j] / d)) : 0;
            dst.set(ValueLayout.JAVA_BYTE, block + 192 + j, (byte) sc[j]);
        }
        dst.set(LE_SHORT, block + 208, dBits);
        MemorySegment.copy(new byte[192], 0, dst, ValueLayout.JAVA_BYTE, block, 192); // ql and qh are OR-ed in
        for (int e = 0; e < 256; e++) {
            float scale = d * sc[e / 16];
            int q = scale > 0f ? Math.clamp(roundHalfAway(x[from + e] / scale), -32, 31) + 32 : 32;
            // element e: half h, quarter k, position l (see dequantizeQ6K)
            int h = e / 128;
            int k = (e % 128) / 32;
            int l = e % 32;
            long ql = block + 64L * h + l + 32L * (k & 1);
            int nibble = k < 2 ? q & 0x0F : (q & 0x0F) << 4;
            dst.set(ValueLayout.JAVA_BYTE, ql, (byte) (u8(dst, ql) | nibble));
            long qh = block + 128 + 32L * h + l;
            dst.set(ValueLayout.JAVA_BYTE, qh, (byte) (u8(dst, qh) | ((q >>> 4) << (2 * k))));
        }
    }

    /**
     * The float16 scale s for which max / s is at most {@code codes}: max / codes rounded to nearest, or the
     * next float16 up when that leaves max / s above codes.
     */
    private static short scaleCoveringMax(float max, int codes, String type) {
        float s = max / codes;
        short bits = floatToF16(s);
        if (f16ToFloat(bits) * codes < max) {
            bits++; // s > 0 here, so the next bit pattern is the next larger float16
        }
        if (!Float.isFinite(f16ToFloat(bits)) || !Float.isFinite(max)) {
            throw new IllegalArgumentException(type + ": a super-block needs a scale of " + max + " / " + codes
                    + ", which is not a finite float16 (values too large or not finite)");
        }
        return bits;
    }

    /** The level q in [0, top] with step * q - offset nearest to v (0 when step is 0). */
    private static int nearestLevel(float v, float step, float offset, int top) {
        return step > 0f ? Math.clamp(roundHalfAway((v + offset) / step), 0, top) : 0;
    }

    /** C's roundf for the small values quantizers produce: halfway cases go away from zero. */
    static int roundHalfAway(float v) {
        return (int) Math.copySign(Math.floor(Math.abs((double) v) + 0.5), v);
    }

    private static int blocks(TensorType type, int count) {
        if (count < 0 || count % type.blockSize() != 0) {
            throw new IllegalArgumentException(count + " elements is not a whole number of " + type.blockSize()
                    + "-element " + type + " blocks");
        }
        return count / type.blockSize();
    }

    private static int u8(MemorySegment src, long at) {
        return src.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
    }

    private static int i8(MemorySegment src, long at) {
        return src.get(ValueLayout.JAVA_BYTE, at);
    }
}

package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static io.stepstream.engine.tensor.Lanes.BYTES;
import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;
import static io.stepstream.engine.tensor.Lanes.LE;

/**
 * ggml Q4_K: super-blocks of 256 weights in 144 bytes: float16 d, float16 dmin, 12 bytes of packed 6-bit
 * (scale, min) pairs for eight 32-element sub-blocks, then 128 bytes of nibbles, each 32 bytes holding two
 * sub-blocks (low nibbles the first, high nibbles the second). weight = (d * scale) * q - (dmin * min).
 *
 * <p>Decoding: d * scale (11 + 6 significant bits) and that times q (4 more) are exact in float32, as is
 * dmin * min; the one subtraction is rounded exactly as ggml's dequantize_row_q4_K rounds it (float multiply,
 * then float subtract, never fused), so every decoded lane equals the weight the file means bit for bit.
 * Accumulators: two per output element, the low-nibble sub-blocks and the high-nibble ones, each a multiply-add
 * per chunk in column order, summed at the end; the same in the one-token and four-token kernels.
 */
final class Q4_KMatrix extends WeightMatrix {
    private static final int BLOCK = 256;
    private static final int BLOCK_BYTES = 144;
    private static final int SCALES = 4;
    private static final int QS = 16;
    /** Elements per sub-block, and bytes of nibbles per pair of sub-blocks. */
    private static final int SUB = 32;
    private static final int PAIRS = 4;

    Q4_KMatrix(MemorySegment data, int rows, int cols) {
        super(TensorType.Q4_K, data, rows, cols);
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3, float[] lanes) {
        long block = rowBase(r);
        FloatVector e0 = FloatVector.zero(FLOATS);
        FloatVector e1 = e0, e2 = e0, e3 = e0, h0 = e0, h1 = e0, h2 = e0, h3 = e0;
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            float dmin = Lanes.f16(data, block + 2);
            for (int pair = 0; pair < PAIRS; pair++) {
                float dLo = d * scale(block, 2 * pair);
                float mLo = dmin * min(block, 2 * pair);
                float dHi = d * scale(block, 2 * pair + 1);
                float mHi = dmin * min(block, 2 * pair + 1);
                long qs = block + QS + (long) SUB * pair;
                int base = c + 2 * SUB * pair;
                for (int j = 0; j < SUB; j += L) {
                    ByteVector p = ByteVector.fromMemorySegment(BYTES, data, qs + Lanes.byteLoadStart(j), LE);
                    FloatVector w = Lanes.bytesToFloats(p.and((byte) 0x0F), j).mul(dLo).sub(mLo);
                    int at = base + j;
                    e0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + at), e0);
                    e1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + at), e1);
                    e2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + at), e2);
                    e3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + at), e3);
                    w = Lanes.bytesToFloats(p.lanewise(VectorOperators.LSHR, 4), j).mul(dHi).sub(mHi);
                    at += SUB;
                    h0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + at), h0);
                    h1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + at), h1);
                    h2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + at), h2);
                    h3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + at), h3);
                }
            }
        }
        e0.add(h0).intoArray(lanes, 0);
        e1.add(h1).intoArray(lanes, L);
        e2.add(h2).intoArray(lanes, 2 * L);
        e3.add(h3).intoArray(lanes, 3 * L);
        out[o0] = VectorKernels.sumLanes(lanes, 0);
        out[o1] = VectorKernels.sumLanes(lanes, L);
        out[o2] = VectorKernels.sumLanes(lanes, 2 * L);
        out[o3] = VectorKernels.sumLanes(lanes, 3 * L);
    }

    @Override
    void rowTimesToken(int r, float[] x, int xAt, float[] out, int o, float[] lanes) {
        long block = rowBase(r);
        FloatVector lo = FloatVector.zero(FLOATS);
        FloatVector hi = lo;
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            float dmin = Lanes.f16(data, block + 2);
            for (int pair = 0; pair < PAIRS; pair++) {
                float dLo = d * scale(block, 2 * pair);
                float mLo = dmin * min(block, 2 * pair);
                float dHi = d * scale(block, 2 * pair + 1);
                float mHi = dmin * min(block, 2 * pair + 1);
                long qs = block + QS + (long) SUB * pair;
                int at = xAt + c + 2 * SUB * pair;
                for (int j = 0; j < SUB; j += L) {
                    ByteVector p = ByteVector.fromMemorySegment(BYTES, data, qs + Lanes.byteLoadStart(j), LE);
                    lo = Lanes.bytesToFloats(p.and((byte) 0x0F), j).mul(dLo).sub(mLo)
                            .fma(FloatVector.fromArray(FLOATS, x, at + j), lo);
                    hi = Lanes.bytesToFloats(p.lanewise(VectorOperators.LSHR, 4), j).mul(dHi).sub(mHi)
                            .fma(FloatVector.fromArray(FLOATS, x, at + SUB + j), hi);
                }
            }
        }
        lo.add(hi).intoArray(lanes, 0);
        out[o] = VectorKernels.sumLanes(lanes, 0);
    }

    @Override
    void decodeRowUnchecked(int r, float[] dst, int dstOffset) {
        long block = rowBase(r);
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            float dmin = Lanes.f16(data, block + 2);
            for (int pair = 0; pair < PAIRS; pair++) {
                float dLo = d * scale(block, 2 * pair);
                float mLo = dmin * min(block, 2 * pair);
                float dHi = d * scale(block, 2 * pair + 1);
                float mHi = dmin * min(block, 2 * pair + 1);
                long qs = block + QS + (long) SUB * pair;
                int at = dstOffset + c + 2 * SUB * pair;
                for (int j = 0; j < SUB; j += L) {
                    ByteVector p = ByteVector.fromMemorySegment(BYTES, data, qs + Lanes.byteLoadStart(j), LE);
                    Lanes.bytesToFloats(p.and((byte) 0x0F), j).mul(dLo).sub(mLo).intoArray(dst, at + j);
                    Lanes.bytesToFloats(p.lanewise(VectorOperators.LSHR, 4), j).mul(dHi).sub(mHi)
                            .intoArray(dst, at + SUB + j);
                }
            }
        }
    }

    /**
     * The 6-bit scale of sub-block {@code j} of the super-block at {@code block}: sub-blocks 0..3 in the low 6
     * bits of scale bytes 0..3; 4..7 with their low 4 bits in the low nibble of bytes 8..11 and their top 2
     * bits in the top of bytes 0..3.
     */
    private int scale(long block, int j) {
        long s = block + SCALES;
        return j < 4 ? u8(s + j) & 63 : (u8(s + j + 4) & 0x0F) | ((u8(s + j - 4) >>> 6) << 4);
    }

    /** The 6-bit min of sub-block j: bytes 4..7 for 0..3; high nibble of bytes 8..11 plus top of 4..7 for 4..7. */
    private int min(long block, int j) {
        long s = block + SCALES;
        return j < 4 ? u8(s + j + 4) & 63 : (u8(s + j + 4) >>> 4) | ((u8(s + j) >>> 6) << 4);
    }

    private int u8(long at) {
        return data.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
    }
}

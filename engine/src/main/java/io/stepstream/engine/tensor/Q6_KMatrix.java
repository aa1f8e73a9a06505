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
 * ggml Q6_K: super-blocks of 256 weights in 210 bytes: 128 bytes of low nibbles (ql), 64 bytes of 2-bit high
 * parts (qh), 16 signed 8-bit scales (one per 16 weights), float16 d. Each half of 128 weights uses 64 bytes of
 * ql, 32 of qh and 8 scales: for l in 0..31, weights l, l+32, l+64, l+96 take the low nibble of ql[l], the low
 * nibble of ql[l+32], the high nibble of ql[l], the high nibble of ql[l+32], and bits 0-1, 2-3, 4-5, 6-7 of
 * qh[l] as their top two bits; weight = (d * scale) * (q - 32).
 *
 * <p>Decoding is exact: d * scale has at most 11 + 8 significant bits, times q - 32 (|q - 32| <= 32) at most
 * 24, so every lane equals the weight the file means (what ggml's dequantize_row_q6_K computes). One
 * accumulator per output element, a multiply-add per decoded chunk (for each l chunk the four quarters in
 * order), the same in the one-token and four-token kernels. L divides 16, so a chunk never straddles scales.
 */
final class Q6_KMatrix extends WeightMatrix {
    private static final int BLOCK = 256;
    private static final int BLOCK_BYTES = 210;
    private static final int QH = 128;
    private static final int SC = 192;
    private static final int D = 208;
    private static final int HALF = 128;
    private static final int QUARTER = 32;

    Q6_KMatrix(MemorySegment data, int rows, int cols) {
        super(TensorType.Q6_K, data, rows, cols);
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3, float[] lanes) {
        long block = rowBase(r);
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block + D);
            for (int half = 0; half < 2; half++) {
                long ql = block + (long) 64 * half;
                long qh = block + QH + (long) QUARTER * half;
                long sc = block + SC + 8L * half;
                int base = c + HALF * half;
                for (int l = 0; l < QUARTER; l += L) {
                    int is = l / 16;
                    long at = Lanes.byteLoadStart(l);
                    ByteVector lowA = ByteVector.fromMemorySegment(BYTES, data, ql + at, LE);
                    ByteVector lowB = ByteVector.fromMemorySegment(BYTES, data, ql + QUARTER + at, LE);
                    ByteVector high = ByteVector.fromMemorySegment(BYTES, data, qh + at, LE);
                    for (int k = 0; k < 4; k++) {
                        FloatVector w = Lanes.bytesToFloats(quarter(k, lowA, lowB, high), l)
                                .mul(d * i8(sc + is + 2 * k));
                        int xc = base + QUARTER * k + l;
                        a0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + xc), a0);
                        a1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + xc), a1);
                        a2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + xc), a2);
                        a3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + xc), a3);
                    }
                }
            }
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        out[o0] = VectorKernels.sumLanes(lanes, 0);
        out[o1] = VectorKernels.sumLanes(lanes, L);
        out[o2] = VectorKernels.sumLanes(lanes, 2 * L);
        out[o3] = VectorKernels.sumLanes(lanes, 3 * L);
    }

    @Override
    void rowTimesToken(int r, float[] x, int xAt, float[] out, int o, float[] lanes) {
        long block = rowBase(r);
        FloatVector a = FloatVector.zero(FLOATS);
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block + D);
            for (int half = 0; half < 2; half++) {
                long ql = block + (long) 64 * half;
                long qh = block + QH + (long) QUARTER * half;
                long sc = block + SC + 8L * half;
                int base = xAt + c + HALF * half;
                for (int l = 0; l < QUARTER; l += L) {
                    int is = l / 16;
                    long at = Lanes.byteLoadStart(l);
                    ByteVector lowA = ByteVector.fromMemorySegment(BYTES, data, ql + at, LE);
                    ByteVector lowB = ByteVector.fromMemorySegment(BYTES, data, ql + QUARTER + at, LE);
                    ByteVector high = ByteVector.fromMemorySegment(BYTES, data, qh + at, LE);
                    for (int k = 0; k < 4; k++) {
                        a = Lanes.bytesToFloats(quarter(k, lowA, lowB, high), l).mul(d * i8(sc + is + 2 * k))
                                .fma(FloatVector.fromArray(FLOATS, x, base + QUARTER * k + l), a);
                    }
                }
            }
        }
        a.intoArray(lanes, 0);
        out[o] = VectorKernels.sumLanes(lanes, 0);
    }

    @Override
    void decodeRowUnchecked(int r, float[] dst, int dstOffset) {
        long block = rowBase(r);
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block + D);
            for (int half = 0; half < 2; half++) {
                long ql = block + (long) 64 * half;
                long qh = block + QH + (long) QUARTER * half;
                long sc = block + SC + 8L * half;
                int base = dstOffset + c + HALF * half;
                for (int l = 0; l < QUARTER; l += L) {
                    int is = l / 16;
                    long at = Lanes.byteLoadStart(l);
                    ByteVector lowA = ByteVector.fromMemorySegment(BYTES, data, ql + at, LE);
                    ByteVector lowB = ByteVector.fromMemorySegment(BYTES, data, ql + QUARTER + at, LE);
                    ByteVector high = ByteVector.fromMemorySegment(BYTES, data, qh + at, LE);
                    for (int k = 0; k < 4; k++) {
                        Lanes.bytesToFloats(quarter(k, lowA, lowB, high), l).mul(d * i8(sc + is + 2 * k))
                                .intoArray(dst, base + QUARTER * k + l);
                    }
                }
            }
        }
    }

    /**
     * Quarter k (0..3) of a half as signed q - 32 bytes: its four low bits from the low (k = 0, 1) or high
     * (k = 2, 3) nibble of lowA (k even) or lowB (k odd), its top two from bits 2k..2k+1 of high.
     */
    private static ByteVector quarter(int k, ByteVector lowA, ByteVector lowB, ByteVector high) {
        ByteVector low = (k & 1) == 0 ? lowA : lowB;
        ByteVector nibble = k < 2 ? low.and((byte) 0x0F) : low.lanewise(VectorOperators.LSHR, 4);
        ByteVector top = high.lanewise(VectorOperators.LSHR, 2 * k).and((byte) 3).lanewise(VectorOperators.LSHL, 4);
        return nibble.or(top).sub((byte) 32);
    }

    private int i8(long at) {
        return data.get(ValueLayout.JAVA_BYTE, at);
    }
}

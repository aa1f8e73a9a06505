package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static io.stepstream.engine.tensor.Lanes.BYTES;
import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;
import static io.stepstream.engine.tensor.Lanes.LE;

/**
 * ggml Q4_0: blocks of 32 weights, each block a float16 scale d followed by 16 bytes; byte j holds weight j in
 * its low nibble and weight j + 16 in its high nibble; weight = (nibble - 8) * d, exact in float32. One byte
 * load gives a chunk of low-nibble weights and the matching chunk 16 further on, and both are used at once:
 * per accumulator the chunk order is [j, j+L), [16+j, 16+j+L) for j = 0, L, .. below 16.
 */
final class Q4_0Matrix extends WeightMatrix {
    private static final int BLOCK = 32;
    private static final int HALF = 16;
    private static final int BLOCK_BYTES = 18;
    private static final int QS = 2;

    Q4_0Matrix(MemorySegment data, int rows, int cols) {
        super(TensorType.Q4_0, data, rows, cols);
    }

    /** The bytes holding weights j.. and 16+j.. (j below 16) of the block at byte offset {@code block}. */
    private ByteVector packed(long block, int j) {
        return ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
    }

    private static FloatVector low(ByteVector packed, int j, float d) {
        return Lanes.bytesToFloats(packed.and((byte) 0x0F).sub((byte) 8), j).mul(d);
    }

    private static FloatVector high(ByteVector packed, int j, float d) {
        return Lanes.bytesToFloats(packed.lanewise(VectorOperators.LSHR, 4).sub((byte) 8), j).mul(d);
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3) {
        long block = rowBase(r);
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            for (int j = 0; j < HALF; j += L) {
                ByteVector p = packed(block, j);
                FloatVector lo = low(p, j, d);
                int at = c + j;
                a0 = lo.fma(FloatVector.fromArray(FLOATS, x, x0 + at), a0);
                a1 = lo.fma(FloatVector.fromArray(FLOATS, x, x1 + at), a1);
                a2 = lo.fma(FloatVector.fromArray(FLOATS, x, x2 + at), a2);
                a3 = lo.fma(FloatVector.fromArray(FLOATS, x, x3 + at), a3);
                FloatVector hi = high(p, j, d);
                at += HALF;
                a0 = hi.fma(FloatVector.fromArray(FLOATS, x, x0 + at), a0);
                a1 = hi.fma(FloatVector.fromArray(FLOATS, x, x1 + at), a1);
                a2 = hi.fma(FloatVector.fromArray(FLOATS, x, x2 + at), a2);
                a3 = hi.fma(FloatVector.fromArray(FLOATS, x, x3 + at), a3);
            }
        }
        out[o0] = VectorKernels.sum(a0);
        out[o1] = VectorKernels.sum(a1);
        out[o2] = VectorKernels.sum(a2);
        out[o3] = VectorKernels.sum(a3);
    }

    @Override
    void rows4TimesToken(int ra, int rb, int rc, int rd, float[] x, int xAt,
                         float[] out, int o0, int o1, int o2, int o3) {
        long b0 = rowBase(ra);
        long b1 = rowBase(rb);
        long b2 = rowBase(rc);
        long b3 = rowBase(rd);
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int c = 0; c < cols; c += BLOCK, b0 += BLOCK_BYTES, b1 += BLOCK_BYTES, b2 += BLOCK_BYTES,
                b3 += BLOCK_BYTES) {
            float d0 = Lanes.f16(data, b0);
            float d1 = Lanes.f16(data, b1);
            float d2 = Lanes.f16(data, b2);
            float d3 = Lanes.f16(data, b3);
            for (int j = 0; j < HALF; j += L) {
                ByteVector p0 = packed(b0, j);
                ByteVector p1 = packed(b1, j);
                ByteVector p2 = packed(b2, j);
                ByteVector p3 = packed(b3, j);
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xAt + c + j);
                a0 = low(p0, j, d0).fma(xv, a0);
                a1 = low(p1, j, d1).fma(xv, a1);
                a2 = low(p2, j, d2).fma(xv, a2);
                a3 = low(p3, j, d3).fma(xv, a3);
                xv = FloatVector.fromArray(FLOATS, x, xAt + c + HALF + j);
                a0 = high(p0, j, d0).fma(xv, a0);
                a1 = high(p1, j, d1).fma(xv, a1);
                a2 = high(p2, j, d2).fma(xv, a2);
                a3 = high(p3, j, d3).fma(xv, a3);
            }
        }
        out[o0] = VectorKernels.sum(a0);
        out[o1] = VectorKernels.sum(a1);
        out[o2] = VectorKernels.sum(a2);
        out[o3] = VectorKernels.sum(a3);
    }

    @Override
    void decodeRowUnchecked(int r, float[] dst, int dstOffset) {
        long block = rowBase(r);
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            for (int j = 0; j < HALF; j += L) {
                ByteVector p = packed(block, j);
                low(p, j, d).intoArray(dst, dstOffset + c + j);
                high(p, j, d).intoArray(dst, dstOffset + c + HALF + j);
            }
        }
    }
}

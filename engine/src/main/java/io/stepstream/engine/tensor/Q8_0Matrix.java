package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static io.stepstream.engine.tensor.Lanes.BYTES;
import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;
import static io.stepstream.engine.tensor.Lanes.LE;

/**
 * ggml Q8_0: blocks of 32 weights, each block a float16 scale d followed by 32 signed bytes q; weight = q * d.
 * q * d is exact in float32 (8 + 11 significant bits), so decoding adds no rounding. Chunk j of a block goes
 * to the even accumulator when j / L is even, else to the odd one.
 */
final class Q8_0Matrix extends WeightMatrix {
    private static final int BLOCK = 32;
    private static final int BLOCK_BYTES = 34;
    private static final int QS = 2;

    Q8_0Matrix(MemorySegment data, int rows, int cols) {
        super(TensorType.Q8_0, data, rows, cols);
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3, float[] lanes) {
        long block = rowBase(r);
        FloatVector e0 = FloatVector.zero(FLOATS);
        FloatVector e1 = e0, e2 = e0, e3 = e0, d0 = e0, d1 = e0, d2 = e0, d3 = e0;
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            for (int j = 0; j < BLOCK; j += 2 * L) {
                ByteVector q = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
                FloatVector w = Lanes.bytesToFloats(q, j).mul(d);
                int at = c + j;
                e0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + at), e0);
                e1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + at), e1);
                e2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + at), e2);
                e3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + at), e3);
                int j2 = j + L;
                q = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j2), LE);
                w = Lanes.bytesToFloats(q, j2).mul(d);
                at = c + j2;
                d0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + at), d0);
                d1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + at), d1);
                d2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + at), d2);
                d3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + at), d3);
            }
        }
        e0.add(d0).intoArray(lanes, 0);
        e1.add(d1).intoArray(lanes, L);
        e2.add(d2).intoArray(lanes, 2 * L);
        e3.add(d3).intoArray(lanes, 3 * L);
        out[o0] = VectorKernels.sumLanes(lanes, 0);
        out[o1] = VectorKernels.sumLanes(lanes, L);
        out[o2] = VectorKernels.sumLanes(lanes, 2 * L);
        out[o3] = VectorKernels.sumLanes(lanes, 3 * L);
    }

    @Override
    void rowTimesToken(int r, float[] x, int xAt, float[] out, int o, float[] lanes) {
        long block = rowBase(r);
        FloatVector even = FloatVector.zero(FLOATS);
        FloatVector odd = even;
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            for (int j = 0; j < BLOCK; j += 2 * L) {
                ByteVector q = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
                even = Lanes.bytesToFloats(q, j).mul(d).fma(FloatVector.fromArray(FLOATS, x, xAt + c + j), even);
                int j2 = j + L;
                q = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j2), LE);
                odd = Lanes.bytesToFloats(q, j2).mul(d).fma(FloatVector.fromArray(FLOATS, x, xAt + c + j2), odd);
            }
        }
        even.add(odd).intoArray(lanes, 0);
        out[o] = VectorKernels.sumLanes(lanes, 0);
    }

    @Override
    void decodeRowUnchecked(int r, float[] dst, int dstOffset) {
        long block = rowBase(r);
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            for (int j = 0; j < BLOCK; j += L) {
                ByteVector q = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
                Lanes.bytesToFloats(q, j).mul(d).intoArray(dst, dstOffset + c + j);
            }
        }
    }
}

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
 * q * d is exact in float32 (8 + 11 significant bits), so decoding adds no rounding.
 */
final class Q8_0Matrix extends WeightMatrix {
    private static final int BLOCK = 32;
    private static final int BLOCK_BYTES = 34;
    private static final int QS = 2;

    Q8_0Matrix(MemorySegment data, int rows, int cols) {
        super(TensorType.Q8_0, data, rows, cols);
    }

    /** Weights [j, j + L) of the block at byte offset {@code block}, whose scale is d. */
    private FloatVector chunk(long block, int j, float d) {
        ByteVector q = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
        return Lanes.bytesToFloats(q, j).mul(d);
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
            for (int j = 0; j < BLOCK; j += L) {
                FloatVector w = chunk(block, j, d);
                int at = c + j;
                a0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + at), a0);
                a1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + at), a1);
                a2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + at), a2);
                a3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + at), a3);
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
            for (int j = 0; j < BLOCK; j += L) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xAt + c + j);
                a0 = chunk(b0, j, d0).fma(xv, a0);
                a1 = chunk(b1, j, d1).fma(xv, a1);
                a2 = chunk(b2, j, d2).fma(xv, a2);
                a3 = chunk(b3, j, d3).fma(xv, a3);
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
            for (int j = 0; j < BLOCK; j += L) {
                chunk(block, j, d).intoArray(dst, dstOffset + c + j);
            }
        }
    }
}

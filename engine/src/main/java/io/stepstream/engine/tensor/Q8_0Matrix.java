package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;

import java.lang.foreign.MemorySegment;

import static io.stepstream.engine.tensor.Lanes.BYTES;
import static io.stepstream.engine.tensor.Lanes.BYTES_2L;
import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;
import static io.stepstream.engine.tensor.Lanes.LE;

/**
 * ggml Q8_0: blocks of 32 weights, each block a float16 scale d followed by 32 signed bytes q; weight = q * d.
 * q * d is exact in float32 (8 + 11 significant bits), so decoding adds no rounding. Every output element has
 * one accumulator and a multiply-add per decoded chunk in column order, in every tile shape.
 *
 * <p>Integer dot (activations as {@link QuantizedRows}; 16 float lanes): per block, the 32 products of weight and
 * activation bytes as shorts, folded into 16 exact pair sums, then acc += pairSums * (d_w * d_x) (a float
 * multiply-add per lane; blocks in column order, one accumulator per output element in both tile shapes), then
 * the fixed-order lane sum.
 */
final class Q8_0Matrix extends WeightMatrix {
    private static final int BLOCK = 32;
    private static final int BLOCK_BYTES = 34;
    private static final int QS = 2;

    Q8_0Matrix(MemorySegment data, int rows, int cols) {
        super(TensorType.Q8_0, data, rows, cols);
    }

    @Override
    boolean hasRowTiles() {
        return true;
    }

    /** q * d is exact and every kernel here is one accumulator of w.fma(x, acc) per chunk in column order. */
    @Override
    boolean decodesExactly() {
        return true;
    }

    @Override
    void rows4Tokens4(int r, int rowStep, float[] x, int x0, int xStep, float[] out, int o0, int oStep,
                      float[] lanes) {
        long stride = rowStep * rowBytes;
        long q0 = rowBase(r);
        long q1 = q0 + stride;
        long q2 = q1 + stride;
        long q3 = q2 + stride;
        int x1 = x0 + xStep;
        int x2 = x1 + xStep;
        int x3 = x2 + xStep;
        FloatVector a00 = FloatVector.zero(FLOATS);
        FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int c = 0; c < cols; c += BLOCK, q0 += BLOCK_BYTES, q1 += BLOCK_BYTES, q2 += BLOCK_BYTES,
                q3 += BLOCK_BYTES) {
            float d0 = Lanes.f16(data, q0);
            float d1 = Lanes.f16(data, q1);
            float d2 = Lanes.f16(data, q2);
            float d3 = Lanes.f16(data, q3);
            for (int j = 0; j < BLOCK; j += L) {
                int at = c + j;
                FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + at);
                FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + at);
                FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + at);
                FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + at);
                long qs = QS + Lanes.byteLoadStart(j);
                FloatVector w = Lanes.bytesToFloats(ByteVector.fromMemorySegment(BYTES, data, q0 + qs, LE), j).mul(d0);
                a00 = w.fma(v0, a00);
                a01 = w.fma(v1, a01);
                a02 = w.fma(v2, a02);
                a03 = w.fma(v3, a03);
                w = Lanes.bytesToFloats(ByteVector.fromMemorySegment(BYTES, data, q1 + qs, LE), j).mul(d1);
                a10 = w.fma(v0, a10);
                a11 = w.fma(v1, a11);
                a12 = w.fma(v2, a12);
                a13 = w.fma(v3, a13);
                w = Lanes.bytesToFloats(ByteVector.fromMemorySegment(BYTES, data, q2 + qs, LE), j).mul(d2);
                a20 = w.fma(v0, a20);
                a21 = w.fma(v1, a21);
                a22 = w.fma(v2, a22);
                a23 = w.fma(v3, a23);
                w = Lanes.bytesToFloats(ByteVector.fromMemorySegment(BYTES, data, q3 + qs, LE), j).mul(d3);
                a30 = w.fma(v0, a30);
                a31 = w.fma(v1, a31);
                a32 = w.fma(v2, a32);
                a33 = w.fma(v3, a33);
            }
        }
        // lanes[(4 * row + token) * L ..]
        a00.intoArray(lanes, 0);
        a01.intoArray(lanes, L);
        a02.intoArray(lanes, 2 * L);
        a03.intoArray(lanes, 3 * L);
        a10.intoArray(lanes, 4 * L);
        a11.intoArray(lanes, 5 * L);
        a12.intoArray(lanes, 6 * L);
        a13.intoArray(lanes, 7 * L);
        a20.intoArray(lanes, 8 * L);
        a21.intoArray(lanes, 9 * L);
        a22.intoArray(lanes, 10 * L);
        a23.intoArray(lanes, 11 * L);
        a30.intoArray(lanes, 12 * L);
        a31.intoArray(lanes, 13 * L);
        a32.intoArray(lanes, 14 * L);
        a33.intoArray(lanes, 15 * L);
        VectorKernels.sumTileLanes(lanes);
        for (int i = 0; i < ROW_TILE; i++) {
            for (int k = 0; k < TOKEN_TILE; k++) {
                out[o0 + k * oStep + i * rowStep] = lanes[ROW_TILE * i + k];
            }
        }
    }

    @Override
    void rows4Token(int r, int rowStep, float[] x, int xAt, float[] out, int o, float[] lanes) {
        long stride = rowStep * rowBytes;
        long q0 = rowBase(r);
        long q1 = q0 + stride;
        long q2 = q1 + stride;
        long q3 = q2 + stride;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += BLOCK, q0 += BLOCK_BYTES, q1 += BLOCK_BYTES, q2 += BLOCK_BYTES,
                q3 += BLOCK_BYTES) {
            float d0 = Lanes.f16(data, q0);
            float d1 = Lanes.f16(data, q1);
            float d2 = Lanes.f16(data, q2);
            float d3 = Lanes.f16(data, q3);
            for (int j = 0; j < BLOCK; j += L) {
                FloatVector v = FloatVector.fromArray(FLOATS, x, xAt + c + j);
                long qs = QS + Lanes.byteLoadStart(j);
                a0 = Lanes.bytesToFloats(ByteVector.fromMemorySegment(BYTES, data, q0 + qs, LE), j).mul(d0).fma(v, a0);
                a1 = Lanes.bytesToFloats(ByteVector.fromMemorySegment(BYTES, data, q1 + qs, LE), j).mul(d1).fma(v, a1);
                a2 = Lanes.bytesToFloats(ByteVector.fromMemorySegment(BYTES, data, q2 + qs, LE), j).mul(d2).fma(v, a2);
                a3 = Lanes.bytesToFloats(ByteVector.fromMemorySegment(BYTES, data, q3 + qs, LE), j).mul(d3).fma(v, a3);
            }
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        for (int i = 0; i < ROW_TILE; i++) {
            out[o + i * rowStep] = VectorKernels.sumLanes(lanes, i * L);
        }
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3, float[] lanes) {
        long block = rowBase(r);
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            for (int j = 0; j < BLOCK; j += L) {
                ByteVector q = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
                FloatVector w = Lanes.bytesToFloats(q, j).mul(d);
                int at = c + j;
                a0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + at), a0);
                a1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + at), a1);
                a2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + at), a2);
                a3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + at), a3);
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
            float d = Lanes.f16(data, block);
            for (int j = 0; j < BLOCK; j += L) {
                ByteVector q = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
                a = Lanes.bytesToFloats(q, j).mul(d).fma(FloatVector.fromArray(FLOATS, x, xAt + c + j), a);
            }
        }
        a.intoArray(lanes, 0);
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

    @Override
    public boolean hasIntegerDot() {
        return Lanes.INT_DOT;
    }

    @Override
    void intRowTokens4(int r, byte[] xq, float[] xd, int t, float[] out, int o0, int oStep, float[] lanes) {
        long q = rowBase(r);
        int blocks = cols / BLOCK;
        int x0 = t * cols;
        int x1 = x0 + cols;
        int x2 = x1 + cols;
        int x3 = x2 + cols;
        int s0 = t * blocks;
        int s1 = s0 + blocks;
        int s2 = s1 + blocks;
        int s3 = s2 + blocks;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0, c = 0; b < blocks; b++, c += BLOCK, q += BLOCK_BYTES) {
            float d = Lanes.f16(data, q);
            ShortVector w = Lanes.widen2L(ByteVector.fromMemorySegment(BYTES_2L, data, q + QS, LE));
            a0 = Lanes.pairSums(w.mul(Lanes.widen2L(ByteVector.fromArray(BYTES_2L, xq, x0 + c))))
                    .fma(FloatVector.broadcast(FLOATS, d * xd[s0 + b]), a0);
            a1 = Lanes.pairSums(w.mul(Lanes.widen2L(ByteVector.fromArray(BYTES_2L, xq, x1 + c))))
                    .fma(FloatVector.broadcast(FLOATS, d * xd[s1 + b]), a1);
            a2 = Lanes.pairSums(w.mul(Lanes.widen2L(ByteVector.fromArray(BYTES_2L, xq, x2 + c))))
                    .fma(FloatVector.broadcast(FLOATS, d * xd[s2 + b]), a2);
            a3 = Lanes.pairSums(w.mul(Lanes.widen2L(ByteVector.fromArray(BYTES_2L, xq, x3 + c))))
                    .fma(FloatVector.broadcast(FLOATS, d * xd[s3 + b]), a3);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        out[o0] = VectorKernels.sumLanes(lanes, 0);
        out[o0 + oStep] = VectorKernels.sumLanes(lanes, L);
        out[o0 + 2 * oStep] = VectorKernels.sumLanes(lanes, 2 * L);
        out[o0 + 3 * oStep] = VectorKernels.sumLanes(lanes, 3 * L);
    }

    @Override
    void intRowToken(int r, byte[] xq, float[] xd, int t, float[] out, int o, float[] lanes) {
        long q = rowBase(r);
        int blocks = cols / BLOCK;
        int x0 = t * cols;
        int s0 = t * blocks;
        FloatVector a = FloatVector.zero(FLOATS);
        for (int b = 0, c = 0; b < blocks; b++, c += BLOCK, q += BLOCK_BYTES) {
            float d = Lanes.f16(data, q);
            ShortVector w = Lanes.widen2L(ByteVector.fromMemorySegment(BYTES_2L, data, q + QS, LE));
            a = Lanes.pairSums(w.mul(Lanes.widen2L(ByteVector.fromArray(BYTES_2L, xq, x0 + c))))
                    .fma(FloatVector.broadcast(FLOATS, d * xd[s0 + b]), a);
        }
        a.intoArray(lanes, 0);
        out[o] = VectorKernels.sumLanes(lanes, 0);
    }
}

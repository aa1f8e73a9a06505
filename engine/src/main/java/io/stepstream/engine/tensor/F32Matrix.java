package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static io.stepstream.engine.tensor.Lanes.F32_LE;
import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;
import static io.stepstream.engine.tensor.Lanes.LE;

/**
 * float32 weights. Every output element: one accumulator, a fused multiply-add per vector chunk of the row in
 * column order ({@code w.fma(x, acc)}), the fixed-order lane sum, then the scalar tail of columns past the last
 * whole vector. The four-row tiles keep sixteen such accumulators side by side (16 independent chains, which
 * is also what hides the multiply-add latency); a token alone gets four chains from the four-row tile. Chunk
 * loads are written out in the loops (no helper returning a vector): a helper the JIT declines to inline would
 * box every vector it returns.
 */
final class F32Matrix extends WeightMatrix {
    /** Columns covered by whole vectors; the rest is a scalar tail. */
    private final int vectorCols;

    F32Matrix(MemorySegment data, int rows, int cols) {
        super(TensorType.F32, data, rows, cols);
        this.vectorCols = cols - cols % L;
    }

    @Override
    boolean hasRowTiles() {
        return true;
    }

    @Override
    void rows4Tokens4(int r, int rowStep, float[] x, int x0, int xStep, float[] out, int o0, int oStep,
                      float[] lanes) {
        long stride = rowStep * rowBytes;
        long b0 = rowBase(r);
        long b1 = b0 + stride;
        long b2 = b1 + stride;
        long b3 = b2 + stride;
        int x1 = x0 + xStep;
        int x2 = x1 + xStep;
        int x3 = x2 + xStep;
        FloatVector a00 = FloatVector.zero(FLOATS);
        FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int c = 0; c < vectorCols; c += L) {
            FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
            FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
            FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
            FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
            long at = 4L * c;
            FloatVector w = FloatVector.fromMemorySegment(FLOATS, data, b0 + at, LE);
            a00 = w.fma(v0, a00);
            a01 = w.fma(v1, a01);
            a02 = w.fma(v2, a02);
            a03 = w.fma(v3, a03);
            w = FloatVector.fromMemorySegment(FLOATS, data, b1 + at, LE);
            a10 = w.fma(v0, a10);
            a11 = w.fma(v1, a11);
            a12 = w.fma(v2, a12);
            a13 = w.fma(v3, a13);
            w = FloatVector.fromMemorySegment(FLOATS, data, b2 + at, LE);
            a20 = w.fma(v0, a20);
            a21 = w.fma(v1, a21);
            a22 = w.fma(v2, a22);
            a23 = w.fma(v3, a23);
            w = FloatVector.fromMemorySegment(FLOATS, data, b3 + at, LE);
            a30 = w.fma(v0, a30);
            a31 = w.fma(v1, a31);
            a32 = w.fma(v2, a32);
            a33 = w.fma(v3, a33);
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
        finish4x4(b0, rowStep, x, x0, xStep, out, o0, oStep, lanes);
    }

    private void finish4x4(long b0, int rowStep, float[] x, int x0, int xStep, float[] out, int o0, int oStep,
                           float[] lanes) {
        VectorKernels.sumTileLanes(lanes);
        // No scalar tail: the lane sums are the results. Decided here, not in tail(): C2 keeps tail() a call from this
        // method even when it returns at once (moving the test into tail() gave 75 against 86 GFLOP/s, 768x768).
        if (vectorCols == cols) {
            for (int i = 0; i < ROW_TILE; i++) {
                for (int k = 0; k < TOKEN_TILE; k++) {
                    out[o0 + k * oStep + i * rowStep] = lanes[ROW_TILE * i + k];
                }
            }
            return;
        }
        for (int i = 0; i < ROW_TILE; i++) {
            long base = b0 + i * rowStep * rowBytes;
            for (int k = 0; k < TOKEN_TILE; k++) {
                out[o0 + k * oStep + i * rowStep] = tail(base, x, x0 + k * xStep, lanes[ROW_TILE * i + k]);
            }
        }
    }

    @Override
    void rows4Token(int r, int rowStep, float[] x, int xAt, float[] out, int o, float[] lanes) {
        long stride = rowStep * rowBytes;
        long b0 = rowBase(r);
        long b1 = b0 + stride;
        long b2 = b1 + stride;
        long b3 = b2 + stride;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < vectorCols; c += L) {
            FloatVector v = FloatVector.fromArray(FLOATS, x, xAt + c);
            long at = 4L * c;
            a0 = FloatVector.fromMemorySegment(FLOATS, data, b0 + at, LE).fma(v, a0);
            a1 = FloatVector.fromMemorySegment(FLOATS, data, b1 + at, LE).fma(v, a1);
            a2 = FloatVector.fromMemorySegment(FLOATS, data, b2 + at, LE).fma(v, a2);
            a3 = FloatVector.fromMemorySegment(FLOATS, data, b3 + at, LE).fma(v, a3);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        for (int i = 0; i < ROW_TILE; i++) {
            out[o + i * rowStep] = tail(b0 + i * stride, x, xAt, VectorKernels.sumLanes(lanes, i * L));
        }
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3, float[] lanes) {
        long base = rowBase(r);
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < vectorCols; c += L) {
            FloatVector w = FloatVector.fromMemorySegment(FLOATS, data, base + 4L * c, LE);
            a0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + c), a0);
            a1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + c), a1);
            a2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + c), a2);
            a3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + c), a3);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        out[o0] = tail(base, x, x0, VectorKernels.sumLanes(lanes, 0));
        out[o1] = tail(base, x, x1, VectorKernels.sumLanes(lanes, L));
        out[o2] = tail(base, x, x2, VectorKernels.sumLanes(lanes, 2 * L));
        out[o3] = tail(base, x, x3, VectorKernels.sumLanes(lanes, 3 * L));
    }

    @Override
    void rowTimesToken(int r, float[] x, int xAt, float[] out, int o, float[] lanes) {
        long base = rowBase(r);
        FloatVector a = FloatVector.zero(FLOATS);
        for (int c = 0; c < vectorCols; c += L) {
            a = FloatVector.fromMemorySegment(FLOATS, data, base + 4L * c, LE)
                    .fma(FloatVector.fromArray(FLOATS, x, xAt + c), a);
        }
        a.intoArray(lanes, 0);
        out[o] = tail(base, x, xAt, VectorKernels.sumLanes(lanes, 0));
    }

    /** Adds the columns past the last whole vector, in column order. */
    private float tail(long base, float[] x, int xAt, float s) {
        for (int c = vectorCols; c < cols; c++) {
            s = Math.fma(data.get(F32_LE, base + 4L * c), x[xAt + c], s);
        }
        return s;
    }

    @Override
    void decodeRowUnchecked(int r, float[] dst, int dstOffset) {
        long base = rowBase(r);
        for (int c = 0; c < vectorCols; c += L) {
            FloatVector.fromMemorySegment(FLOATS, data, base + 4L * c, LE).intoArray(dst, dstOffset + c);
        }
        for (int c = vectorCols; c < cols; c++) {
            dst[dstOffset + c] = data.get(F32_LE, base + 4L * c);
        }
    }
}

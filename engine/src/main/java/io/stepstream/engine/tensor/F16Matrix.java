package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;

import java.lang.foreign.MemorySegment;

import static io.stepstream.engine.tensor.Lanes.I16_LE;
import static io.stepstream.engine.tensor.Lanes.SHORTS;
import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;
import static io.stepstream.engine.tensor.Lanes.LE;

/** float16 (IEEE half) weights; decoded in vector lanes by {@link Lanes#f16ToFloats}. */
final class F16Matrix extends WeightMatrix {
    /** Columns covered by whole vectors; the rest is a scalar tail. */
    private final int vectorCols;

    F16Matrix(MemorySegment data, int rows, int cols) {
        super(TensorType.F16, data, rows, cols);
        this.vectorCols = cols - cols % L;
    }

    private FloatVector chunk(long base, int c) {
        return Lanes.f16ToFloats(ShortVector.fromMemorySegment(SHORTS, data, base + 2L * c, LE));
    }

    private float element(long base, int c) {
        return Float.float16ToFloat(data.get(I16_LE, base + 2L * c));
    }

    /** The lane sum plus the scalar tail columns, in column order. */
    private float finish(FloatVector acc, long base, float[] x, int xAt) {
        float s = VectorKernels.sum(acc);
        for (int c = vectorCols; c < cols; c++) {
            s = Math.fma(element(base, c), x[xAt + c], s);
        }
        return s;
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3) {
        long base = rowBase(r);
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int c = 0; c < vectorCols; c += L) {
            FloatVector w = chunk(base, c);
            a0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + c), a0);
            a1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + c), a1);
            a2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + c), a2);
            a3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + c), a3);
        }
        out[o0] = finish(a0, base, x, x0);
        out[o1] = finish(a1, base, x, x1);
        out[o2] = finish(a2, base, x, x2);
        out[o3] = finish(a3, base, x, x3);
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
        for (int c = 0; c < vectorCols; c += L) {
            FloatVector xv = FloatVector.fromArray(FLOATS, x, xAt + c);
            a0 = chunk(b0, c).fma(xv, a0);
            a1 = chunk(b1, c).fma(xv, a1);
            a2 = chunk(b2, c).fma(xv, a2);
            a3 = chunk(b3, c).fma(xv, a3);
        }
        out[o0] = finish(a0, b0, x, xAt);
        out[o1] = finish(a1, b1, x, xAt);
        out[o2] = finish(a2, b2, x, xAt);
        out[o3] = finish(a3, b3, x, xAt);
    }

    @Override
    void decodeRowUnchecked(int r, float[] dst, int dstOffset) {
        long base = rowBase(r);
        for (int c = 0; c < vectorCols; c += L) {
            chunk(base, c).intoArray(dst, dstOffset + c);
        }
        for (int c = vectorCols; c < cols; c++) {
            dst[dstOffset + c] = element(base, c);
        }
    }
}

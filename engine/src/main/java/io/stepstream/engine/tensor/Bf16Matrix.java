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

/** bfloat16 weights: each is the upper 16 bits of a float32. */
final class Bf16Matrix extends WeightMatrix {
    /** Columns covered by pairs of vectors (even chunk, odd chunk); the rest is a scalar tail. */
    private final int pairCols;
    /** Columns covered by whole vectors (for decoding rows). */
    private final int vectorCols;

    Bf16Matrix(MemorySegment data, int rows, int cols) {
        super(TensorType.BF16, data, rows, cols);
        this.pairCols = cols - cols % (2 * L);
        this.vectorCols = cols - cols % L;
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3, float[] lanes) {
        long base = rowBase(r);
        FloatVector e0 = FloatVector.zero(FLOATS);
        FloatVector e1 = e0, e2 = e0, e3 = e0, d0 = e0, d1 = e0, d2 = e0, d3 = e0;
        int c = 0;
        for (; c < pairCols; c += 2 * L) {
            FloatVector w = Lanes.bf16ToFloats(ShortVector.fromMemorySegment(SHORTS, data, base + 2L * c, LE));
            e0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + c), e0);
            e1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + c), e1);
            e2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + c), e2);
            e3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + c), e3);
            int c2 = c + L;
            w = Lanes.bf16ToFloats(ShortVector.fromMemorySegment(SHORTS, data, base + 2L * c2, LE));
            d0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + c2), d0);
            d1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + c2), d1);
            d2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + c2), d2);
            d3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + c2), d3);
        }
        e0.add(d0).intoArray(lanes, 0);
        e1.add(d1).intoArray(lanes, L);
        e2.add(d2).intoArray(lanes, 2 * L);
        e3.add(d3).intoArray(lanes, 3 * L);
        out[o0] = tail(base, x, x0, VectorKernels.sumLanes(lanes, 0));
        out[o1] = tail(base, x, x1, VectorKernels.sumLanes(lanes, L));
        out[o2] = tail(base, x, x2, VectorKernels.sumLanes(lanes, 2 * L));
        out[o3] = tail(base, x, x3, VectorKernels.sumLanes(lanes, 3 * L));
    }

    @Override
    void rowTimesToken(int r, float[] x, int xAt, float[] out, int o, float[] lanes) {
        long base = rowBase(r);
        FloatVector even = FloatVector.zero(FLOATS);
        FloatVector odd = even;
        int c = 0;
        for (; c < pairCols; c += 2 * L) {
            even = Lanes.bf16ToFloats(ShortVector.fromMemorySegment(SHORTS, data, base + 2L * c, LE))
                    .fma(FloatVector.fromArray(FLOATS, x, xAt + c), even);
            odd = Lanes.bf16ToFloats(ShortVector.fromMemorySegment(SHORTS, data, base + 2L * (c + L), LE))
                    .fma(FloatVector.fromArray(FLOATS, x, xAt + c + L), odd);
        }
        even.add(odd).intoArray(lanes, 0);
        out[o] = tail(base, x, xAt, VectorKernels.sumLanes(lanes, 0));
    }

    /** Adds the columns past the last whole pair of vectors, in column order. */
    private float tail(long base, float[] x, int xAt, float s) {
        for (int c = pairCols; c < cols; c++) {
            s = Math.fma(Float.intBitsToFloat(data.get(I16_LE, base + 2L * c) << 16), x[xAt + c], s);
        }
        return s;
    }

    @Override
    void decodeRowUnchecked(int r, float[] dst, int dstOffset) {
        long base = rowBase(r);
        for (int c = 0; c < vectorCols; c += L) {
            Lanes.bf16ToFloats(ShortVector.fromMemorySegment(SHORTS, data, base + 2L * c, LE)).intoArray(dst, dstOffset + c);
        }
        for (int c = vectorCols; c < cols; c++) {
            dst[dstOffset + c] = Float.intBitsToFloat(data.get(I16_LE, base + 2L * c) << 16);
        }
    }
}

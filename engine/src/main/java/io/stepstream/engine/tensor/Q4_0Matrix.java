package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static io.stepstream.engine.tensor.Lanes.BYTES;
import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;
import static io.stepstream.engine.tensor.Lanes.LE;

/**
 * ggml Q4_0: blocks of 32 weights, each block a float16 scale d followed by 16 bytes; byte j holds weight j in
 * its low nibble and weight j + 16 in its high nibble; weight = (nibble - 8) * d, exact in float32. One byte
 * load gives a chunk of low-nibble weights (to the even accumulator) and the matching chunk 16 further on (to
 * the odd one).
 *
 * <p>Integer dot (activations as {@link QuantizedRows}): per chunk of L bytes, the low and high nibbles minus 8 as
 * shorts times the activation bytes at j and j + 16 as shorts, the two products added per lane (exact: at most
 * 2 * 8 * 127), then acc += that * (d_w * d_x) per lane; blocks and chunks in column order, one accumulator per
 * output element, then the fixed-order lane sum. Only the one-row one-token kernel: a four-token one (nibble
 * decode shared by four tokens) went past C2's node budget and ran five times slower, boxed.
 */
final class Q4_0Matrix extends WeightMatrix {
    private static final int BLOCK = 32;
    private static final int HALF = 16;
    private static final int BLOCK_BYTES = 18;
    private static final int QS = 2;

    Q4_0Matrix(MemorySegment data, int rows, int cols) {
        super(TensorType.Q4_0, data, rows, cols);
    }

    @Override
    void rowTimes4Tokens(int r, float[] x, int x0, int x1, int x2, int x3,
                         float[] out, int o0, int o1, int o2, int o3, float[] lanes) {
        long block = rowBase(r);
        FloatVector e0 = FloatVector.zero(FLOATS);
        FloatVector e1 = e0, e2 = e0, e3 = e0, d0 = e0, d1 = e0, d2 = e0, d3 = e0;
        for (int c = 0; c < cols; c += BLOCK, block += BLOCK_BYTES) {
            float d = Lanes.f16(data, block);
            for (int j = 0; j < HALF; j += L) {
                ByteVector p = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
                FloatVector w = Lanes.bytesToFloats(p.and((byte) 0x0F).sub((byte) 8), j).mul(d);
                int at = c + j;
                e0 = w.fma(FloatVector.fromArray(FLOATS, x, x0 + at), e0);
                e1 = w.fma(FloatVector.fromArray(FLOATS, x, x1 + at), e1);
                e2 = w.fma(FloatVector.fromArray(FLOATS, x, x2 + at), e2);
                e3 = w.fma(FloatVector.fromArray(FLOATS, x, x3 + at), e3);
                w = Lanes.bytesToFloats(p.lanewise(VectorOperators.LSHR, 4).sub((byte) 8), j).mul(d);
                at += HALF;
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
            for (int j = 0; j < HALF; j += L) {
                ByteVector p = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
                even = Lanes.bytesToFloats(p.and((byte) 0x0F).sub((byte) 8), j).mul(d)
                        .fma(FloatVector.fromArray(FLOATS, x, xAt + c + j), even);
                odd = Lanes.bytesToFloats(p.lanewise(VectorOperators.LSHR, 4).sub((byte) 8), j).mul(d)
                        .fma(FloatVector.fromArray(FLOATS, x, xAt + c + HALF + j), odd);
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
            for (int j = 0; j < HALF; j += L) {
                ByteVector p = ByteVector.fromMemorySegment(BYTES, data, block + QS + Lanes.byteLoadStart(j), LE);
                Lanes.bytesToFloats(p.and((byte) 0x0F).sub((byte) 8), j).mul(d).intoArray(dst, dstOffset + c + j);
                Lanes.bytesToFloats(p.lanewise(VectorOperators.LSHR, 4).sub((byte) 8), j).mul(d)
                        .intoArray(dst, dstOffset + c + HALF + j);
            }
        }
    }

    @Override
    public boolean hasIntegerDot() {
        return Lanes.INT_DOT;
    }

    private static ShortVector low(ShortVector packed) {
        return packed.and((short) 0x0F).sub((short) 8);
    }

    private static ShortVector high(ShortVector packed) {
        return packed.lanewise(VectorOperators.ASHR, 4).and((short) 0x0F).sub((short) 8);
    }

    /** Per lane lo * xLo + hi * xHi (exact in shorts), as floats. */
    private static FloatVector dot(ShortVector lo, ShortVector hi, ShortVector xLo, ShortVector xHi) {
        return Lanes.shortsToFloats(lo.mul(xLo).add(hi.mul(xHi)));
    }

    private static ShortVector xs(byte[] xq, int at) {
        return Lanes.widen(ByteVector.fromArray(BYTES, xq, at));
    }

    private ShortVector packed(long at) {
        return Lanes.widen(ByteVector.fromMemorySegment(BYTES, data, at, LE));
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
            for (int j = 0; j < HALF; j += L) {
                ShortVector p = packed(q + QS + j);
                int at = x0 + c + j;
                a = dot(low(p), high(p), xs(xq, at), xs(xq, at + HALF))
                        .fma(FloatVector.broadcast(FLOATS, d * xd[s0 + b]), a);
            }
        }
        a.intoArray(lanes, 0);
        out[o] = VectorKernels.sumLanes(lanes, 0);
    }
}

package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.FloatVector;

import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;

/**
 * Row x token tiles over weight rows already decoded to floats in a heap scratch array (the decode-once path of
 * {@link WeightMatrix}): each output element is one accumulator, a fused multiply-add {@code w.fma(x, acc)} per
 * vector chunk of its row in column order, then {@link VectorKernels#sumLanes} (for a 4 x 4 tile all 16 at once by
 * {@link VectorKernels#sumTileLanes}, bitwise the same). That is exactly the arithmetic
 * of the one-accumulator encodings' own kernels (F32, Q8_0), whose decode of a chunk is exact, so a result
 * computed here is bitwise the one those kernels give. Rows must be a whole number of vectors (no scalar tail).
 * Chunk loads are written out in the loops, as in the encodings' kernels, so that no vector crosses a call.
 */
final class DecodedTiles {
    private DecodedTiles() {
    }

    /**
     * Decoded rows at {@code w0 + i*cols} (i < 4) times four tokens (token k's input at {@code x0 + k*xStep});
     * row i's result for token k to {@code out[o0 + k*oStep + i*rowStep]}. {@code lanes} holds 16 vectors.
     */
    static void rows4Tokens4(float[] w, int w0, int cols, float[] x, int x0, int xStep, float[] out, int o0,
                             int oStep, int rowStep, float[] lanes) {
        int w1 = w0 + cols;
        int w2 = w1 + cols;
        int w3 = w2 + cols;
        int x1 = x0 + xStep;
        int x2 = x1 + xStep;
        int x3 = x2 + xStep;
        FloatVector a00 = FloatVector.zero(FLOATS);
        FloatVector a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int c = 0; c < cols; c += L) {
            FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
            FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
            FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
            FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
            FloatVector u = FloatVector.fromArray(FLOATS, w, w0 + c);
            a00 = u.fma(v0, a00);
            a01 = u.fma(v1, a01);
            a02 = u.fma(v2, a02);
            a03 = u.fma(v3, a03);
            u = FloatVector.fromArray(FLOATS, w, w1 + c);
            a10 = u.fma(v0, a10);
            a11 = u.fma(v1, a11);
            a12 = u.fma(v2, a12);
            a13 = u.fma(v3, a13);
            u = FloatVector.fromArray(FLOATS, w, w2 + c);
            a20 = u.fma(v0, a20);
            a21 = u.fma(v1, a21);
            a22 = u.fma(v2, a22);
            a23 = u.fma(v3, a23);
            u = FloatVector.fromArray(FLOATS, w, w3 + c);
            a30 = u.fma(v0, a30);
            a31 = u.fma(v1, a31);
            a32 = u.fma(v2, a32);
            a33 = u.fma(v3, a33);
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
        for (int i = 0; i < WeightMatrix.ROW_TILE; i++) {
            for (int k = 0; k < WeightMatrix.TOKEN_TILE; k++) {
                out[o0 + k * oStep + i * rowStep] = lanes[WeightMatrix.ROW_TILE * i + k];
            }
        }
    }

    /** Decoded rows at {@code w0 + i*cols} (i < 4) times one token (input at xAt); row i to out[o + i*rowStep]. */
    static void rows4Token(float[] w, int w0, int cols, float[] x, int xAt, float[] out, int o, int rowStep,
                           float[] lanes) {
        int w1 = w0 + cols;
        int w2 = w1 + cols;
        int w3 = w2 + cols;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += L) {
            FloatVector v = FloatVector.fromArray(FLOATS, x, xAt + c);
            a0 = FloatVector.fromArray(FLOATS, w, w0 + c).fma(v, a0);
            a1 = FloatVector.fromArray(FLOATS, w, w1 + c).fma(v, a1);
            a2 = FloatVector.fromArray(FLOATS, w, w2 + c).fma(v, a2);
            a3 = FloatVector.fromArray(FLOATS, w, w3 + c).fma(v, a3);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        for (int i = 0; i < WeightMatrix.ROW_TILE; i++) {
            out[o + i * rowStep] = VectorKernels.sumLanes(lanes, i * L);
        }
    }

    /** One decoded row at w0 times four tokens (token k's input at x0 + k*xStep), token k to out[o0 + k*oStep]. */
    static void rowTimes4Tokens(float[] w, int w0, int cols, float[] x, int x0, int xStep, float[] out, int o0,
                                int oStep, float[] lanes) {
        int x1 = x0 + xStep;
        int x2 = x1 + xStep;
        int x3 = x2 + xStep;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += L) {
            FloatVector u = FloatVector.fromArray(FLOATS, w, w0 + c);
            a0 = u.fma(FloatVector.fromArray(FLOATS, x, x0 + c), a0);
            a1 = u.fma(FloatVector.fromArray(FLOATS, x, x1 + c), a1);
            a2 = u.fma(FloatVector.fromArray(FLOATS, x, x2 + c), a2);
            a3 = u.fma(FloatVector.fromArray(FLOATS, x, x3 + c), a3);
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

    /** One decoded row at w0 times one token (input at xAt), result to out[o]. */
    static void rowTimesToken(float[] w, int w0, int cols, float[] x, int xAt, float[] out, int o, float[] lanes) {
        FloatVector a = FloatVector.zero(FLOATS);
        for (int c = 0; c < cols; c += L) {
            a = FloatVector.fromArray(FLOATS, w, w0 + c).fma(FloatVector.fromArray(FLOATS, x, xAt + c), a);
        }
        a.intoArray(lanes, 0);
        out[o] = VectorKernels.sumLanes(lanes, 0);
    }
}

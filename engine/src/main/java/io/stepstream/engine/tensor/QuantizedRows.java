package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.ComputePool;

import java.util.Objects;

/**
 * Activation rows (one per token) quantized to ggml Q8_0 blocks for the integer-dot matmuls of Q8_0 and Q4_0
 * weights ({@link WeightMatrix#matmul(QuantizedRows, float[], int, ComputePool)}): per block of 32 values a
 * scale d = amax / 127 (stored rounded to float16, as ggml stores it, and kept here as that float) and 32
 * signed bytes round(x / d), exactly as ggml's reference {@code quantize_row_q8_0_ref}: the bytes come from
 * x * (1 / d) with d unrounded, rounded half away from zero. llama.cpp quantizes a matmul's input this way, so
 * we see the same numbers it does. Each token row is quantized alone, so a token's bytes and scales do not
 * depend on the batch it is in.
 *
 * <p>Scratch: quantize once per matmul input, pass to every matmul that reads it; arrays grow only when a call
 * needs more than any before. Not thread-safe while quantizing; read-only (shareable by pool threads) after.
 */
public final class QuantizedRows {
    /** Values per block (ggml QK8_0). */
    public static final int BLOCK = 32;

    private byte[] q = new byte[0];
    private float[] d = new float[0];
    private int tokens;
    private int cols;

    /**
     * Quantizes {@code tokens} rows of {@code cols} floats from {@code x[xOffset ..]} (row t at
     * {@code xOffset + t * cols}); cols must be a multiple of 32. Replaces what was held before.
     */
    public QuantizedRows quantize(float[] x, int xOffset, int tokens, int cols) {
        Objects.requireNonNull(x, "x");
        if (tokens < 0) {
            throw new IllegalArgumentException("tokens must be >= 0, got " + tokens);
        }
        if (cols < BLOCK || cols % BLOCK != 0) {
            throw new IllegalArgumentException("cols (" + cols + ") must be a positive multiple of " + BLOCK);
        }
        long n = (long) tokens * cols;
        if (xOffset < 0 || xOffset + n > x.length) {
            throw new IndexOutOfBoundsException("x: " + tokens + " row(s) of " + cols + " floats from offset "
                    + xOffset + " do not fit in an array of " + x.length);
        }
        if (n > q.length) {
            q = new byte[Math.toIntExact(n)];
            d = new float[(int) (n / BLOCK)];
        }
        this.tokens = tokens;
        this.cols = cols;
        int blocks = (int) (n / BLOCK);
        for (int b = 0; b < blocks; b++) {
            quantizeBlock(x, xOffset + b * BLOCK, b);
        }
        return this;
    }

    private void quantizeBlock(float[] x, int at, int b) {
        float amax = 0f;
        for (int j = 0; j < BLOCK; j++) {
            amax = Math.max(amax, Math.abs(x[at + j]));
        }
        float scale = amax / 127f;
        float inverse = scale != 0f ? 1f / scale : 0f;
        d[b] = Float.float16ToFloat(Float.floatToFloat16(scale));
        int o = b * BLOCK;
        for (int j = 0; j < BLOCK; j++) {
            q[o + j] = (byte) roundHalfAway(x[at + j] * inverse);
        }
    }

    /**
     * C's roundf: to the nearest integer, halves away from zero (Math.round rounds -2.5 to -2, roundf to -3).
     * |v| <= 127 here (plus a rounding error), so the int conversion cannot overflow.
     */
    static int roundHalfAway(float v) {
        float a = Math.abs(v);
        float f = (float) Math.floor(a);
        int r = (int) f + (a - f >= 0.5f ? 1 : 0); // a - f is exact for a < 2^23
        return v < 0 ? -r : r;
    }

    public int tokens() {
        return tokens;
    }

    public int cols() {
        return cols;
    }

    /** Quantized values, row t at {@code t * cols}; valid up to {@code tokens * cols}. */
    byte[] values() {
        return q;
    }

    /** Block scales (float16-rounded), row t's at {@code t * cols / 32}. */
    float[] scales() {
        return d;
    }

    /** Quantized value {@code c} of row {@code t}. */
    public byte value(int t, int c) {
        Objects.checkIndex(t, tokens);
        Objects.checkIndex(c, cols);
        return q[t * cols + c];
    }

    /** Scale of block {@code c / 32} of row {@code t}. */
    public float scale(int t, int block) {
        Objects.checkIndex(t, tokens);
        Objects.checkIndex(block, cols / BLOCK);
        return d[t * (cols / BLOCK) + block];
    }
}

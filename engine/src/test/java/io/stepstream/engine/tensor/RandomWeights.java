package io.stepstream.engine.tensor;

import io.stepstream.engine.format.gguf.Quants;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

/**
 * Random encoded weight matrices for the tests, with their own plain decoder (written from the ggml layouts,
 * independent of the kernels' vector decoders) so kernels are checked against what the bytes mean.
 */
final class RandomWeights {
    /** The encoded bytes and their meaning, decoded here, row-major. */
    record Encoded(TensorType type, int rows, int cols, byte[] bytes, float[] values) {
        WeightMatrix onHeap() {
            return WeightMatrix.of(type, MemorySegment.ofArray(bytes), rows, cols);
        }

        WeightMatrix in(Arena arena) {
            MemorySegment s = arena.allocate(bytes.length, 64);
            s.copyFrom(MemorySegment.ofArray(bytes));
            return WeightMatrix.of(type, s, rows, cols);
        }
    }

    private RandomWeights() {
    }

    static Encoded encode(TensorType type, int rows, int cols, Random rnd) {
        ByteBuffer buf = ByteBuffer.allocate(Math.toIntExact(type.bytesFor((long) rows * cols)))
                .order(ByteOrder.LITTLE_ENDIAN);
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; ) {
            switch (type) {
                case F32 -> {
                    float v = (float) rnd.nextGaussian();
                    buf.putFloat(v);
                    values[i++] = v;
                }
                case F16 -> {
                    short h = randomFiniteHalf(rnd);
                    buf.putShort(h);
                    values[i++] = Float.float16ToFloat(h);
                }
                case BF16 -> {
                    // a float with a moderate exponent (no overflow when summed), cut to its upper 16 bits
                    float f = (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(41) - 20));
                    short b = (short) (Float.floatToRawIntBits(f) >>> 16);
                    buf.putShort(b);
                    values[i++] = Float.intBitsToFloat(b << 16);
                }
                case Q8_0 -> {
                    short dBits = randomFiniteHalf(rnd);
                    double d = Float.float16ToFloat(dBits);
                    buf.putShort(dBits);
                    for (int j = 0; j < 32; j++) {
                        byte q = (byte) rnd.nextInt(256);
                        buf.put(q);
                        values[i + j] = (float) (q * d);
                    }
                    i += 32;
                }
                case Q4_0 -> {
                    short dBits = randomFiniteHalf(rnd);
                    double d = Float.float16ToFloat(dBits);
                    buf.putShort(dBits);
                    for (int j = 0; j < 16; j++) {
                        int packed = rnd.nextInt(256);
                        buf.put((byte) packed);
                        values[i + j] = (float) (((packed & 0x0F) - 8) * d);
                        values[i + j + 16] = (float) (((packed >>> 4) - 8) * d);
                    }
                    i += 32;
                }
                case Q4_K, Q6_K -> {
                    // random bytes for the quants and packed scales, then sane float16 super-block scales (the
                    // magnitudes of real weights); the meaning of the bytes is ggml's dequantization (Quants,
                    // checked against ggml's C code in GgufQuantsTest)
                    byte[] block = new byte[type.blockBytes()];
                    rnd.nextBytes(block);
                    ByteBuffer b = ByteBuffer.wrap(block).order(ByteOrder.LITTLE_ENDIAN);
                    if (type == TensorType.Q4_K) {
                        b.putShort(0, saneHalf(rnd));
                        b.putShort(2, saneHalf(rnd));
                    } else {
                        b.putShort(208, saneHalf(rnd));
                    }
                    buf.put(block);
                    Quants.dequantize(type, MemorySegment.ofArray(block), 0, values, i, 256);
                    i += 256;
                }
                default -> throw new IllegalArgumentException("no encoder for " + type);
            }
        }
        return new Encoded(type, rows, cols, buf.array(), values);
    }

    /** Any finite float16: sign, exponent 0..30 (subnormals included), any mantissa. */
    static short randomFiniteHalf(Random rnd) {
        int sign = rnd.nextInt(2) << 15;
        int exponent = rnd.nextInt(31) << 10;
        int mantissa = rnd.nextInt(1 << 10);
        return (short) (sign | exponent | mantissa);
    }

    /** A float16 of either sign with magnitude in [2^-14, 2^2) (normal, like real super-block scales). */
    static short saneHalf(Random rnd) {
        int sign = rnd.nextInt(2) << 15;
        int exponent = (1 + rnd.nextInt(16)) << 10;
        return (short) (sign | exponent | rnd.nextInt(1 << 10));
    }

    static float[] gaussian(int n, Random rnd) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }

    /** out[t*rows + r] = sum_c w[r][c] * x[t*cols + c] in double, plus sum_c |w x| for the error bound. */
    static double[][] reference(Encoded w, float[] x, int xOffset, int tokens) {
        double[] out = new double[tokens * w.rows()];
        double[] magnitude = new double[tokens * w.rows()];
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < w.rows(); r++) {
                double s = 0;
                double m = 0;
                for (int c = 0; c < w.cols(); c++) {
                    double p = (double) w.values()[r * w.cols() + c] * x[xOffset + t * w.cols() + c];
                    s += p;
                    m += Math.abs(p);
                }
                out[t * w.rows() + r] = s;
                magnitude[t * w.rows() + r] = m;
            }
        }
        return new double[][] {out, magnitude};
    }
}

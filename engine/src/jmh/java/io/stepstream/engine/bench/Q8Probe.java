package io.stepstream.engine.bench;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.ByteOrder;
import java.util.Random;

/**
 * Q8_0 batch-1 four-row tile (rows spread as the engine's tiles spread them), one thread, thread CPU time:
 * "chunk" is the engine's arithmetic (each 16-byte chunk converted to floats, multiplied by the block scale,
 * multiply-added into the row's accumulator); "block" multiply-adds the raw converted bytes of a block into a
 * block sum and adds sum * scale to the accumulator once per block (one vector multiply fewer per chunk, but a
 * different rounding, so not the engine's result bit for bit). Arguments: ROWS COLS [WORKING_SET_MB] (no third
 * argument: one cache-resident matrix), e.g. {@code Q8Probe 2048 768 384}.
 */
public final class Q8Probe {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(L, 8) * 8));
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    public static void main(String[] args) {
        int rows = Integer.parseInt(args[0]);
        int cols = Integer.parseInt(args[1]);
        long mb = args.length > 2 ? Long.parseLong(args[2]) : 0;
        long rowBytes = cols / 32 * 34L;
        long bytes = rowBytes * rows;
        int n = (int) Math.max(1, (mb << 20) / bytes);
        Random rnd = new Random(1);
        MemorySegment[] ms = new MemorySegment[n];
        for (int i = 0; i < n; i++) {
            ms[i] = Arena.global().allocate(bytes, 64);
            for (long b = 0; b < bytes; b += 34) {
                ms[i].set(I16, b, Float.floatToFloat16(0.001f * (1 + rnd.nextInt(100))));
                for (int j = 0; j < 32; j++) ms[i].set(ValueLayout.JAVA_BYTE, b + 2 + j, (byte) (rnd.nextInt(255) - 127));
            }
        }
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float) rnd.nextGaussian();
        float[] out = new float[rows];
        float[] lanes = new float[4 * L];
        ThreadMXBean tm = ManagementFactory.getThreadMXBean();
        String[] vs = {"chunk", "block"};
        int reps = (int) Math.max(1, (128L << 20) / (bytes * n));
        for (String v : vs) for (int w = 0; w < 3 * reps; w++) run(v, ms, rows, cols, rowBytes, x, out, lanes);
        double[] best = {1e9, 1e9};
        for (int round = 0; round < 9; round++) {
            for (int k = 0; k < 2; k++) {
                long t0 = tm.getCurrentThreadCpuTime();
                for (int i = 0; i < reps; i++) run(vs[k], ms, rows, cols, rowBytes, x, out, lanes);
                best[k] = Math.min(best[k], (tm.getCurrentThreadCpuTime() - t0) / 1e9 / reps);
            }
        }
        System.out.printf("Q8_0 %dx%d x%d GB/s: chunk %.1f block %.1f%n", rows, cols, n, bytes * n / best[0] / 1e9, bytes * n / best[1] / 1e9);
    }

    static void run(String v, MemorySegment[] ms, int rows, int cols, long rowBytes, float[] x, float[] out, float[] lanes) {
        int q = rows / 4;
        for (MemorySegment m : ms) {
            if (v.equals("chunk")) {
                for (int r = 0; r < q; r++) chunk(m, r, q, rowBytes, cols, x, out, lanes);
            } else {
                for (int r = 0; r < q; r++) block(m, r, q, rowBytes, cols, x, out, lanes);
            }
        }
    }

    static void chunk(MemorySegment data, int r, int step, long rowBytes, int cols, float[] x, float[] out, float[] lanes) {
        long s = step * rowBytes;
        long q0 = r * rowBytes, q1 = q0 + s, q2 = q1 + s, q3 = q2 + s;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += 32, q0 += 34, q1 += 34, q2 += 34, q3 += 34) {
            float d0 = Float.float16ToFloat(data.get(I16, q0));
            float d1 = Float.float16ToFloat(data.get(I16, q1));
            float d2 = Float.float16ToFloat(data.get(I16, q2));
            float d3 = Float.float16ToFloat(data.get(I16, q3));
            for (int j = 0; j < 32; j += L) {
                FloatVector v = FloatVector.fromArray(F, x, c + j);
                a0 = ((FloatVector) ByteVector.fromMemorySegment(B, data, q0 + 2 + j, LE).castShape(F, 0)).mul(d0).fma(v, a0);
                a1 = ((FloatVector) ByteVector.fromMemorySegment(B, data, q1 + 2 + j, LE).castShape(F, 0)).mul(d1).fma(v, a1);
                a2 = ((FloatVector) ByteVector.fromMemorySegment(B, data, q2 + 2 + j, LE).castShape(F, 0)).mul(d2).fma(v, a2);
                a3 = ((FloatVector) ByteVector.fromMemorySegment(B, data, q3 + 2 + j, LE).castShape(F, 0)).mul(d3).fma(v, a3);
            }
        }
        a0.intoArray(lanes, 0); a1.intoArray(lanes, L); a2.intoArray(lanes, 2 * L); a3.intoArray(lanes, 3 * L);
        for (int i = 0; i < 4; i++) out[r + i * step] = StreamProbe.sumLanes(lanes, i * L);
    }

    static void block(MemorySegment data, int r, int step, long rowBytes, int cols, float[] x, float[] out, float[] lanes) {
        long s = step * rowBytes;
        long q0 = r * rowBytes, q1 = q0 + s, q2 = q1 + s, q3 = q2 + s;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += 32, q0 += 34, q1 += 34, q2 += 34, q3 += 34) {
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            for (int j = 0; j < 32; j += L) {
                FloatVector v = FloatVector.fromArray(F, x, c + j);
                s0 = ((FloatVector) ByteVector.fromMemorySegment(B, data, q0 + 2 + j, LE).castShape(F, 0)).fma(v, s0);
                s1 = ((FloatVector) ByteVector.fromMemorySegment(B, data, q1 + 2 + j, LE).castShape(F, 0)).fma(v, s1);
                s2 = ((FloatVector) ByteVector.fromMemorySegment(B, data, q2 + 2 + j, LE).castShape(F, 0)).fma(v, s2);
                s3 = ((FloatVector) ByteVector.fromMemorySegment(B, data, q3 + 2 + j, LE).castShape(F, 0)).fma(v, s3);
            }
            a0 = s0.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, q0))), a0);
            a1 = s1.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, q1))), a1);
            a2 = s2.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, q2))), a2);
            a3 = s3.fma(FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, q3))), a3);
        }
        a0.intoArray(lanes, 0); a1.intoArray(lanes, L); a2.intoArray(lanes, 2 * L); a3.intoArray(lanes, 3 * L);
        for (int i = 0; i < 4; i++) out[r + i * step] = StreamProbe.sumLanes(lanes, i * L);
    }
}

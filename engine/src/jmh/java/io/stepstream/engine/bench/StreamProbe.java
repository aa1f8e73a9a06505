package io.stepstream.engine.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.ByteOrder;
import java.util.Random;

/**
 * F32 batch-1 kernel shapes (one token) compared on one thread, thread CPU time, the variants measured in
 * round-robin so that load drifting on a shared machine hits them alike. Weights are distinct ROWS x COLS
 * matrices filling {@code -Dprobe.mb} megabytes (default 512: from memory; 1: cache-resident), walked in order.
 * Every variant computes each row with one accumulator in column order (what the engine's kernels do); they
 * differ only in which rows go together and how many chunks per loop step (r1a4 alone changes the order).
 * Variants: read (sum of the weights, no activations: the one-thread streaming ceiling), r1 (one row at a time),
 * r1a4 (one row, four accumulators), r2/r4/r8 (2/4/8 neighbouring rows: the engine's old four-row tile is r4),
 * r4u2/r2u2 (two chunks per step), s2/s4 (rows i and i + n/2, or i + k*n/4: two or four long streams), s4k/s4k512
 * (s4 in column blocks of 1024/512, every tile per block), smallx (s4 over a 3 KB activation slice), c4/c4big/c1
 * (s4 or r1 within chunks of n/8 or n/2 rows, as a pool splits rows). Arguments: ROWS COLS [VARIANT,...], e.g.
 * (after {@code -P jmh test-compile})
 * <pre>
 * java --add-modules jdk.incubator.vector -cp engine/target/classes:engine/target/test-classes \
 *     io.stepstream.engine.bench.StreamProbe 768 768 read,r1,r4,s2,s4,c4,c4big,c1
 * </pre>
 */
public final class StreamProbe {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    public static void main(String[] args) {
        int rows = Integer.parseInt(args[0]);
        int cols = Integer.parseInt(args[1]);
        long bytes = 4L * rows * cols;
        int n = (int) Math.max(1, (Long.getLong("probe.mb", 512L) << 20) / bytes);
        MemorySegment[] ms = new MemorySegment[n];
        Random rnd = new Random(1);
        for (int i = 0; i < n; i++) {
            ms[i] = Arena.global().allocate(bytes, 64);
            for (long o = 0; o < bytes; o += 4) {
                ms[i].set(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, o, (float) rnd.nextGaussian());
            }
        }
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float) rnd.nextGaussian();
        float[] out = new float[rows];
        float[] lanes = new float[8 * L];
        ThreadMXBean tm = ManagementFactory.getThreadMXBean();
        String[] variants = args.length > 2 ? args[2].split(",") : new String[]{"read", "r1", "r4", "r4u2", "r8", "r2u2"};
        int reps = (int) Math.max(1, (256L << 20) / (bytes * n));
        for (String v : variants) {
            for (int w = 0; w < 3 * reps; w++) run(v, ms, rows, cols, x, out, lanes);
        }
        double[] best = new double[variants.length];
        java.util.Arrays.fill(best, Double.MAX_VALUE);
        for (int round = 0; round < Integer.getInteger("probe.rounds", 9); round++) {
            for (int k = 0; k < variants.length; k++) {
                long t0 = tm.getCurrentThreadCpuTime();
                for (int i = 0; i < reps; i++) run(variants[k], ms, rows, cols, x, out, lanes);
                best[k] = Math.min(best[k], (tm.getCurrentThreadCpuTime() - t0) / 1e9 / reps);
            }
        }
        StringBuilder sb = new StringBuilder(String.format("%dx%d x%d GB/s:", rows, cols, n));
        for (int k = 0; k < variants.length; k++) sb.append(String.format(" %s %.1f", variants[k], bytes * n / best[k] / 1e9));
        System.out.println(sb);
    }

    static float sink;

    static void chunked(MemorySegment m, int rows, int cols, float[] x, float[] out, float[] lanes, int g) {
        for (int r0 = 0; r0 < rows; r0 += g) {
            int n = Math.min(g, rows - r0);
            int q = n / 4;
            for (int i = 0; i < q; i++) r4s(m, r0 + i, q, cols, x, out, lanes);
            for (int i = r0 + 4 * q; i < r0 + n; i++) r1(m, i, cols, x, out, lanes);
        }
    }

    static void run(String v, MemorySegment[] ms, int rows, int cols, float[] x, float[] out, float[] lanes) {
        for (MemorySegment m : ms) {
            switch (v) {
                case "read" -> sink += read(m);
                case "r1" -> { for (int r = 0; r < rows; r++) r1(m, r, cols, x, out, lanes); }
                case "r1a4" -> { for (int r = 0; r < rows; r++) r1a4(m, r, cols, x, out, lanes); }
                case "s4k" -> s4Blocked(m, rows, cols, x, out, lanes, 1024);
                case "smallx" -> { for (int r = 0; r < rows / 4; r++) r4sSmallX(m, r, rows / 4, cols, x, out, lanes); }
                case "s4k512" -> s4Blocked(m, rows, cols, x, out, lanes, 512);
                case "r4" -> { for (int r = 0; r < rows; r += 4) r4(m, r, cols, x, out, lanes); }
                case "r4u2" -> { for (int r = 0; r < rows; r += 4) r4u2(m, r, cols, x, out, lanes); }
                case "r8" -> { for (int r = 0; r < rows; r += 8) r8(m, r, cols, x, out, lanes); }
                case "r2u2" -> { for (int r = 0; r < rows; r += 2) r2u2(m, r, cols, x, out, lanes); }
                case "r2" -> { for (int r = 0; r < rows; r += 2) rN(m, r, 1, cols, x, out, lanes); }
                case "s2" -> { for (int r = 0; r < rows / 2; r++) rN(m, r, rows / 2, cols, x, out, lanes); }
                case "s4" -> { for (int r = 0; r < rows / 4; r++) r4s(m, r, rows / 4, cols, x, out, lanes); }
                case "c4" -> chunked(m, rows, cols, x, out, lanes, Math.max(4, rows / 8 / 4 * 4));
                case "c4big" -> chunked(m, rows, cols, x, out, lanes, Math.max(4, rows / 2 / 4 * 4));
                case "c1" -> { int g = Math.max(4, rows / 8 / 4 * 4); for (int r = 0; r < rows; r += g) for (int i = r; i < Math.min(rows, r + g); i++) r1(m, i, cols, x, out, lanes); }
                default -> throw new IllegalArgumentException(v);
            }
        }
    }

    static float read(MemorySegment m) {
        FloatVector a = FloatVector.zero(F), b = a, c = a, d = a;
        long n = m.byteSize();
        for (long o = 0; o < n; o += 16L * L) {
            a = a.add(FloatVector.fromMemorySegment(F, m, o, LE));
            b = b.add(FloatVector.fromMemorySegment(F, m, o + 4L * L, LE));
            c = c.add(FloatVector.fromMemorySegment(F, m, o + 8L * L, LE));
            d = d.add(FloatVector.fromMemorySegment(F, m, o + 12L * L, LE));
        }
        return a.add(b).add(c).add(d).lane(0);
    }

    static float sumLanes(float[] v, int at) {
        for (int half = L / 2; half >= 1; half >>= 1) {
            for (int i = 0; i < half; i++) v[at + i] += v[at + i + half];
        }
        return v[at];
    }

    static void r1(MemorySegment m, int r, int cols, float[] x, float[] out, float[] lanes) {
        long b = 4L * r * cols;
        FloatVector a = FloatVector.zero(F);
        for (int c = 0; c < cols; c += L) {
            a = FloatVector.fromMemorySegment(F, m, b + 4L * c, LE).fma(FloatVector.fromArray(F, x, c), a);
        }
        a.intoArray(lanes, 0);
        out[r] = sumLanes(lanes, 0);
    }

    /**
     * One row, one sequential stream, four accumulators over consecutive chunks: NOT the engine's summation order
     * (each row would need it in every kernel); it measures what one stream with enough chains in flight reads.
     */
    static void r1a4(MemorySegment m, int r, int cols, float[] x, float[] out, float[] lanes) {
        long b = 4L * r * cols;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int c = 0;
        for (; c + 4 * L <= cols; c += 4 * L) {
            long at = b + 4L * c;
            a0 = FloatVector.fromMemorySegment(F, m, at, LE).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = FloatVector.fromMemorySegment(F, m, at + 4L * L, LE).fma(FloatVector.fromArray(F, x, c + L), a1);
            a2 = FloatVector.fromMemorySegment(F, m, at + 8L * L, LE).fma(FloatVector.fromArray(F, x, c + 2 * L), a2);
            a3 = FloatVector.fromMemorySegment(F, m, at + 12L * L, LE).fma(FloatVector.fromArray(F, x, c + 3 * L), a3);
        }
        for (; c < cols; c += L) {
            a0 = FloatVector.fromMemorySegment(F, m, b + 4L * c, LE).fma(FloatVector.fromArray(F, x, c), a0);
        }
        a0.add(a1).add(a2).add(a3).intoArray(lanes, 0);
        out[r] = sumLanes(lanes, 0);
    }

    static void r4(MemorySegment m, int r, int cols, float[] x, float[] out, float[] lanes) {
        long rb = 4L * cols;
        long b0 = rb * r, b1 = b0 + rb, b2 = b1 + rb, b3 = b2 + rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += L) {
            FloatVector v = FloatVector.fromArray(F, x, c);
            long at = 4L * c;
            a0 = FloatVector.fromMemorySegment(F, m, b0 + at, LE).fma(v, a0);
            a1 = FloatVector.fromMemorySegment(F, m, b1 + at, LE).fma(v, a1);
            a2 = FloatVector.fromMemorySegment(F, m, b2 + at, LE).fma(v, a2);
            a3 = FloatVector.fromMemorySegment(F, m, b3 + at, LE).fma(v, a3);
        }
        a0.intoArray(lanes, 0); a1.intoArray(lanes, L); a2.intoArray(lanes, 2 * L); a3.intoArray(lanes, 3 * L);
        for (int i = 0; i < 4; i++) out[r + i] = sumLanes(lanes, i * L);
    }

    static void r4u2(MemorySegment m, int r, int cols, float[] x, float[] out, float[] lanes) {
        long rb = 4L * cols;
        long b0 = rb * r, b1 = b0 + rb, b2 = b1 + rb, b3 = b2 + rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += 2 * L) {
            FloatVector v = FloatVector.fromArray(F, x, c);
            FloatVector u = FloatVector.fromArray(F, x, c + L);
            long at = 4L * c, at2 = at + 4L * L;
            FloatVector w0 = FloatVector.fromMemorySegment(F, m, b0 + at, LE);
            FloatVector w1 = FloatVector.fromMemorySegment(F, m, b1 + at, LE);
            FloatVector w2 = FloatVector.fromMemorySegment(F, m, b2 + at, LE);
            FloatVector w3 = FloatVector.fromMemorySegment(F, m, b3 + at, LE);
            FloatVector y0 = FloatVector.fromMemorySegment(F, m, b0 + at2, LE);
            FloatVector y1 = FloatVector.fromMemorySegment(F, m, b1 + at2, LE);
            FloatVector y2 = FloatVector.fromMemorySegment(F, m, b2 + at2, LE);
            FloatVector y3 = FloatVector.fromMemorySegment(F, m, b3 + at2, LE);
            a0 = y0.fma(u, w0.fma(v, a0));
            a1 = y1.fma(u, w1.fma(v, a1));
            a2 = y2.fma(u, w2.fma(v, a2));
            a3 = y3.fma(u, w3.fma(v, a3));
        }
        a0.intoArray(lanes, 0); a1.intoArray(lanes, L); a2.intoArray(lanes, 2 * L); a3.intoArray(lanes, 3 * L);
        for (int i = 0; i < 4; i++) out[r + i] = sumLanes(lanes, i * L);
    }

    static void r2u2(MemorySegment m, int r, int cols, float[] x, float[] out, float[] lanes) {
        long rb = 4L * cols;
        long b0 = rb * r, b1 = b0 + rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int c = 0; c < cols; c += 2 * L) {
            FloatVector v = FloatVector.fromArray(F, x, c);
            FloatVector u = FloatVector.fromArray(F, x, c + L);
            long at = 4L * c, at2 = at + 4L * L;
            FloatVector w0 = FloatVector.fromMemorySegment(F, m, b0 + at, LE);
            FloatVector w1 = FloatVector.fromMemorySegment(F, m, b1 + at, LE);
            FloatVector y0 = FloatVector.fromMemorySegment(F, m, b0 + at2, LE);
            FloatVector y1 = FloatVector.fromMemorySegment(F, m, b1 + at2, LE);
            a0 = y0.fma(u, w0.fma(v, a0));
            a1 = y1.fma(u, w1.fma(v, a1));
        }
        a0.intoArray(lanes, 0); a1.intoArray(lanes, L);
        for (int i = 0; i < 2; i++) out[r + i] = sumLanes(lanes, i * L);
    }

    static void rN(MemorySegment m, int r, int gap, int cols, float[] x, float[] out, float[] lanes) {
        long rb = 4L * cols;
        long b0 = rb * r, b1 = b0 + rb * gap;
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int c = 0; c < cols; c += L) {
            FloatVector v = FloatVector.fromArray(F, x, c);
            long at = 4L * c;
            a0 = FloatVector.fromMemorySegment(F, m, b0 + at, LE).fma(v, a0);
            a1 = FloatVector.fromMemorySegment(F, m, b1 + at, LE).fma(v, a1);
        }
        a0.intoArray(lanes, 0); a1.intoArray(lanes, L);
        out[r] = sumLanes(lanes, 0);
        out[r + gap] = sumLanes(lanes, L);
    }

    static void r4s(MemorySegment m, int r, int gap, int cols, float[] x, float[] out, float[] lanes) {
        long rb = 4L * cols;
        long g = rb * gap;
        long b0 = rb * r, b1 = b0 + g, b2 = b1 + g, b3 = b2 + g;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < cols; c += L) {
            FloatVector v = FloatVector.fromArray(F, x, c);
            long at = 4L * c;
            a0 = FloatVector.fromMemorySegment(F, m, b0 + at, LE).fma(v, a0);
            a1 = FloatVector.fromMemorySegment(F, m, b1 + at, LE).fma(v, a1);
            a2 = FloatVector.fromMemorySegment(F, m, b2 + at, LE).fma(v, a2);
            a3 = FloatVector.fromMemorySegment(F, m, b3 + at, LE).fma(v, a3);
        }
        a0.intoArray(lanes, 0); a1.intoArray(lanes, L); a2.intoArray(lanes, 2 * L); a3.intoArray(lanes, 3 * L);
        for (int i = 0; i < 4; i++) out[r + i * gap] = sumLanes(lanes, i * L);
    }

    /**
     * s4 in column blocks of {@code block}: every tile takes its rows' block segment before any tile takes the next
     * block, so the activations' block stays in L1 from tile to tile; each row's accumulator waits in a scratch
     * between blocks, which keeps one chain per row in column order (the engine's sums, bit for bit).
     */
    static void s4Blocked(MemorySegment m, int rows, int cols, float[] x, float[] out, float[] lanes, int block) {
        int quarter = rows / 4;
        float[] acc = ACC.length >= rows * L ? ACC : (ACC = new float[rows * L]);
        java.util.Arrays.fill(acc, 0, rows * L, 0f);
        long rb = 4L * cols;
        long g = rb * quarter;
        for (int k0 = 0; k0 < cols; k0 += block) {
            int k1 = Math.min(cols, k0 + block);
            for (int r = 0; r < quarter; r++) {
                long b0 = rb * r, b1 = b0 + g, b2 = b1 + g, b3 = b2 + g;
                int s0 = r * L, s1 = (r + quarter) * L, s2 = (r + 2 * quarter) * L, s3 = (r + 3 * quarter) * L;
                FloatVector a0 = FloatVector.fromArray(F, acc, s0), a1 = FloatVector.fromArray(F, acc, s1);
                FloatVector a2 = FloatVector.fromArray(F, acc, s2), a3 = FloatVector.fromArray(F, acc, s3);
                for (int c = k0; c < k1; c += L) {
                    FloatVector v = FloatVector.fromArray(F, x, c);
                    long at = 4L * c;
                    a0 = FloatVector.fromMemorySegment(F, m, b0 + at, LE).fma(v, a0);
                    a1 = FloatVector.fromMemorySegment(F, m, b1 + at, LE).fma(v, a1);
                    a2 = FloatVector.fromMemorySegment(F, m, b2 + at, LE).fma(v, a2);
                    a3 = FloatVector.fromMemorySegment(F, m, b3 + at, LE).fma(v, a3);
                }
                a0.intoArray(acc, s0); a1.intoArray(acc, s1); a2.intoArray(acc, s2); a3.intoArray(acc, s3);
            }
        }
        for (int r = 0; r < rows; r++) {
            out[r] = sumLanes(acc, r * L);
        }
    }

    private static float[] ACC = new float[0];

    /**
     * s4 with the activations read from their first 768 columns over and over (3 KB, L1-resident): a timing probe of
     * what the weight streams read when the activation operand never misses L1 (wrong results).
     */
    static void r4sSmallX(MemorySegment m, int r, int step, int cols, float[] x, float[] out, float[] lanes) {
        long rb = 4L * cols;
        long b0 = rb * r, b1 = b0 + rb * step, b2 = b1 + rb * step, b3 = b2 + rb * step;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int xc = 0;
        for (int c = 0; c < cols; c += L) {
            FloatVector v = FloatVector.fromArray(F, x, xc);
            xc = xc + L == 768 ? 0 : xc + L;
            long at = 4L * c;
            a0 = FloatVector.fromMemorySegment(F, m, b0 + at, LE).fma(v, a0);
            a1 = FloatVector.fromMemorySegment(F, m, b1 + at, LE).fma(v, a1);
            a2 = FloatVector.fromMemorySegment(F, m, b2 + at, LE).fma(v, a2);
            a3 = FloatVector.fromMemorySegment(F, m, b3 + at, LE).fma(v, a3);
        }
        a0.intoArray(lanes, 0);
        out[r] = sumLanes(lanes, 0) + a1.lane(0) + a2.lane(0) + a3.lane(0);
    }

    static void r8(MemorySegment m, int r, int cols, float[] x, float[] out, float[] lanes) {
        long rb = 4L * cols;
        long b0 = rb * r, b1 = b0 + rb, b2 = b1 + rb, b3 = b2 + rb, b4 = b3 + rb, b5 = b4 + rb, b6 = b5 + rb, b7 = b6 + rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int c = 0; c < cols; c += L) {
            FloatVector v = FloatVector.fromArray(F, x, c);
            long at = 4L * c;
            a0 = FloatVector.fromMemorySegment(F, m, b0 + at, LE).fma(v, a0);
            a1 = FloatVector.fromMemorySegment(F, m, b1 + at, LE).fma(v, a1);
            a2 = FloatVector.fromMemorySegment(F, m, b2 + at, LE).fma(v, a2);
            a3 = FloatVector.fromMemorySegment(F, m, b3 + at, LE).fma(v, a3);
            a4 = FloatVector.fromMemorySegment(F, m, b4 + at, LE).fma(v, a4);
            a5 = FloatVector.fromMemorySegment(F, m, b5 + at, LE).fma(v, a5);
            a6 = FloatVector.fromMemorySegment(F, m, b6 + at, LE).fma(v, a6);
            a7 = FloatVector.fromMemorySegment(F, m, b7 + at, LE).fma(v, a7);
        }
        a0.intoArray(lanes, 0); a1.intoArray(lanes, L); a2.intoArray(lanes, 2 * L); a3.intoArray(lanes, 3 * L);
        a4.intoArray(lanes, 4 * L); a5.intoArray(lanes, 5 * L); a6.intoArray(lanes, 6 * L); a7.intoArray(lanes, 7 * L);
        for (int i = 0; i < 8; i++) out[r + i] = sumLanes(lanes, i * L);
    }
}

package io.stepstream.engine.tensor;

import io.stepstream.engine.cpu.VectorKernels;
import jdk.incubator.vector.FloatVector;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.SplittableRandom;

import static io.stepstream.engine.tensor.Lanes.FLOATS;
import static io.stepstream.engine.tensor.Lanes.L;

/**
 * One-thread probe of the batched (decode-once) tile loop orders on float rows in heap memory: where a 32-token
 * matmul loses its multiply-add rate on a core (L1/L2 traffic of the activations against the weights). Every
 * variant computes every output with the engine's arithmetic (one accumulator per output, chunks in column order,
 * the fixed-order lane sum), so all give the same bits; the probe checks that, then prints GFLOP/s per variant,
 * best of the rounds, thread CPU time:
 * <pre>
 * java --add-modules jdk.incubator.vector -cp engine/target/classes:engine/target/test-classes \
 *     io.stepstream.engine.tensor.TileProbe ROWS COLS TOKENS [WORKING_SET_MB]
 * </pre>
 * Variants: {@code rows} = the engine's order (a 4-row tile passes over every 4-token group of the batch);
 * {@code rowsN} = N 4-row tiles take turns on each 4-token group while it is in L1 (the activations are read from
 * L2 once per N tiles instead of once per tile); {@code 8x2} = 8-row x 2-token tiles.
 */
public final class TileProbe {
    private TileProbe() {
    }

    public static void main(String[] args) {
        int rows = Integer.parseInt(args[0]);
        int cols = Integer.parseInt(args[1]);
        int tokens = Integer.parseInt(args[2]);
        long mb = args.length > 3 ? Long.parseLong(args[3]) : 0;
        int copies = (int) Math.max(1, mb * 1024 * 1024 / (4L * rows * cols));
        SplittableRandom r = new SplittableRandom(7);
        float[][] w = new float[copies][];
        for (int i = 0; i < copies; i++) {
            w[i] = new float[rows * cols];
            for (int j = 0; j < w[i].length; j++) {
                w[i][j] = (float) (r.nextDouble() * 2 - 1);
            }
        }
        float[] x = new float[tokens * cols];
        for (int j = 0; j < x.length; j++) {
            x[j] = (float) (r.nextDouble() * 2 - 1);
        }
        String[] variants = {"rows", "rows2", "rows3", "8x2"};
        float[][] outs = new float[variants.length][tokens * rows];
        long[] best = new long[variants.length];
        Arrays.fill(best, Long.MAX_VALUE);
        ThreadMXBean bean = ManagementFactory.getThreadMXBean();
        float[] lanes = new float[16 * L];
        int rounds = Integer.getInteger("rounds", 9);
        for (int round = 0; round < rounds + 3; round++) {
            for (int v = 0; v < variants.length; v++) {
                long t0 = bean.getCurrentThreadCpuTime();
                for (float[] m : w) {
                    run(variants[v], m, rows, cols, x, tokens, outs[v], lanes);
                }
                long t = bean.getCurrentThreadCpuTime() - t0;
                if (round >= 3) {
                    best[v] = Math.min(best[v], t);
                }
            }
        }
        for (int v = 1; v < variants.length; v++) {
            if (!Arrays.equals(outs[0], outs[v])) {
                throw new AssertionError(variants[v] + " differs from rows");
            }
        }
        double flops = 2.0 * rows * cols * tokens * copies;
        StringBuilder line = new StringBuilder(String.format("%dx%d tokens=%d copies=%d lanes=%d GFLOP/s:", rows,
                cols, tokens, copies, L));
        for (int v = 0; v < variants.length; v++) {
            line.append(String.format(" %s %.1f", variants[v], flops / best[v]));
        }
        System.out.println(line);
    }

    private static void run(String variant, float[] w, int rows, int cols, float[] x, int tokens, float[] out,
                            float[] lanes) {
        switch (variant) {
            case "rows" -> rowsThenTokens(w, rows, cols, x, tokens, out, lanes, 1);
            case "rows2" -> rowsThenTokens(w, rows, cols, x, tokens, out, lanes, 2);
            case "rows3" -> rowsThenTokens(w, rows, cols, x, tokens, out, lanes, 3);
            case "8x2" -> eightByTwo(w, rows, cols, x, tokens, out, lanes);
            default -> throw new IllegalArgumentException(variant);
        }
    }

    /** Blocks of {@code tiles} 4-row tiles; each 4-token group visits every tile of the block in turn. */
    private static void rowsThenTokens(float[] w, int rows, int cols, float[] x, int tokens, float[] out,
                                       float[] lanes, int tiles) {
        int block = 4 * tiles;
        int r = 0;
        for (; r + block <= rows; r += block) {
            for (int t = 0; t < tokens; t += 4) {
                for (int i = 0; i < tiles; i++) {
                    int rr = r + 4 * i;
                    DecodedTiles.rows4Tokens4(w, rr * cols, cols, x, t * cols, cols, out, t * rows + rr, rows, 1,
                            lanes);
                }
            }
        }
        for (; r < rows; r += 4) {
            for (int t = 0; t < tokens; t += 4) {
                DecodedTiles.rows4Tokens4(w, r * cols, cols, x, t * cols, cols, out, t * rows + r, rows, 1, lanes);
            }
        }
    }

    private static void eightByTwo(float[] w, int rows, int cols, float[] x, int tokens, float[] out,
                                   float[] lanes) {
        for (int r = 0; r < rows; r += 8) {
            for (int t = 0; t < tokens; t += 2) {
                rows8Tokens2(w, r * cols, cols, x, t * cols, cols, out, t * rows + r, rows, lanes);
            }
        }
    }

    /** 8 rows x 2 tokens, 16 accumulators (j = 2 * row + token), summed by the 4 x 4 tile's vector lane sums. */
    static void rows8Tokens2(float[] w, int w0, int cols, float[] x, int x0, int xStep, float[] out, int o0,
                             int oStep, float[] lanes) {
        int x1 = x0 + xStep;
        FloatVector a00 = FloatVector.zero(FLOATS);
        FloatVector a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        FloatVector a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;
        for (int c = 0; c < cols; c += L) {
            FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
            FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
            FloatVector u = FloatVector.fromArray(FLOATS, w, w0 + c);
            a00 = u.fma(v0, a00);
            a01 = u.fma(v1, a01);
            u = FloatVector.fromArray(FLOATS, w, w0 + cols + c);
            a10 = u.fma(v0, a10);
            a11 = u.fma(v1, a11);
            u = FloatVector.fromArray(FLOATS, w, w0 + 2 * cols + c);
            a20 = u.fma(v0, a20);
            a21 = u.fma(v1, a21);
            u = FloatVector.fromArray(FLOATS, w, w0 + 3 * cols + c);
            a30 = u.fma(v0, a30);
            a31 = u.fma(v1, a31);
            u = FloatVector.fromArray(FLOATS, w, w0 + 4 * cols + c);
            a40 = u.fma(v0, a40);
            a41 = u.fma(v1, a41);
            u = FloatVector.fromArray(FLOATS, w, w0 + 5 * cols + c);
            a50 = u.fma(v0, a50);
            a51 = u.fma(v1, a51);
            u = FloatVector.fromArray(FLOATS, w, w0 + 6 * cols + c);
            a60 = u.fma(v0, a60);
            a61 = u.fma(v1, a61);
            u = FloatVector.fromArray(FLOATS, w, w0 + 7 * cols + c);
            a70 = u.fma(v0, a70);
            a71 = u.fma(v1, a71);
        }
        a00.intoArray(lanes, 0);
        a01.intoArray(lanes, L);
        a10.intoArray(lanes, 2 * L);
        a11.intoArray(lanes, 3 * L);
        a20.intoArray(lanes, 4 * L);
        a21.intoArray(lanes, 5 * L);
        a30.intoArray(lanes, 6 * L);
        a31.intoArray(lanes, 7 * L);
        a40.intoArray(lanes, 8 * L);
        a41.intoArray(lanes, 9 * L);
        a50.intoArray(lanes, 10 * L);
        a51.intoArray(lanes, 11 * L);
        a60.intoArray(lanes, 12 * L);
        a61.intoArray(lanes, 13 * L);
        a70.intoArray(lanes, 14 * L);
        a71.intoArray(lanes, 15 * L);
        VectorKernels.sumTileLanes(lanes);
        for (int i = 0; i < 8; i++) {
            out[o0 + i] = lanes[2 * i];
            out[o0 + oStep + i] = lanes[2 * i + 1];
        }
    }
}

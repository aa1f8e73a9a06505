package io.stepstream.engine.bench;

import io.stepstream.engine.tensor.QuantizedRows;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tensor.WeightMatrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.Random;

/**
 * One-thread matmul cost in thread CPU time rather than wall time, for machines shared with other work:
 * time the thread spends descheduled is not counted (cache and memory contention still are). Best of seven
 * rounds (system property {@code rounds}) after a warm-up, the TYPEs taking turns in each round. Arguments:
 * ROWS COLS TYPES TOKENS, e.g. {@code 2048 2048 F32,Q8_0 1,4,8,32}; a type
 * with an {@code i} suffix ({@code Q8_0i}, {@code Q4_0i}) runs the integer-dot matmul, the activations quantized
 * to Q8_0 once per call as the model does (the quantization is counted); a {@code t} suffix ({@code Q8_0t}) runs the
 * encoding's own row x token tiles at every token count (the engine before the decode-once path), a {@code d}
 * suffix ({@code Q8_0d}) the decode-once path at every token count; no suffix is what the engine picks:
 * <pre>
 * ./mvnw -q -B -pl engine -P jmh test-compile exec:exec -Djmh.main=io.stepstream.engine.bench.MatmulCpuTime \
 *     -Djmh.args="2048 2048 F32,Q8_0 1,4,8,32"
 * </pre>
 * An optional fifth argument MB streams the weights from memory: as many distinct copies of the matrix as fill
 * MB megabytes (say 512, well past the L3 cache), one call per copy in turn, as a model's decode step walks its
 * layers; the times are then per matrix, and GB/s is weight bytes read per CPU second.
 */
public final class MatmulCpuTime {
    private MatmulCpuTime() {
    }

    public static void main(String[] args) {
        if (args.length != 4 && args.length != 5) {
            System.err.println("usage: MatmulCpuTime ROWS COLS TYPE[,TYPE...] TOKENS[,TOKENS...] [WORKING_SET_MB]");
            System.exit(2);
        }
        int rows = Integer.parseInt(args[0]);
        int cols = Integer.parseInt(args[1]);
        long workingSet = args.length == 5 ? Long.parseLong(args[4]) << 20 : 0;
        int[] tokenCounts = Arrays.stream(args[3].split(",")).mapToInt(Integer::parseInt).toArray();
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        Random rnd = new Random(1);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.02);
        }
        String[] names = args[2].split(",");
        Variant[] variants = new Variant[names.length];
        for (int v = 0; v < names.length; v++) {
            variants[v] = Variant.of(names[v], w, rows, cols, workingSet);
        }
        for (int tokens : tokenCounts) {
            float[] x = new float[tokens * cols];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            float[] out = new float[tokens * rows];
            Runnable[] calls = new Runnable[variants.length];
            int[] reps = new int[variants.length];
            for (int v = 0; v < variants.length; v++) {
                calls[v] = variants[v].call(x, tokens, out);
                reps[v] = Math.max(5, 400 / tokens / variants[v].ms.length);
                for (int i = 0; i < Math.max(30 / variants[v].ms.length, 3); i++) {
                    calls[v].run();
                }
            }
            // the variants take turns, round by round, so a burst of other work on the machine hits them alike
            double[] best = new double[variants.length];
            Arrays.fill(best, Double.MAX_VALUE);
            for (int round = 0; round < ROUNDS; round++) {
                for (int v = 0; v < variants.length; v++) {
                    long t0 = threads.getCurrentThreadCpuTime();
                    for (int i = 0; i < reps[v]; i++) {
                        calls[v].run();
                    }
                    best[v] = Math.min(best[v],
                            (threads.getCurrentThreadCpuTime() - t0) / 1e6 / reps[v] / variants[v].ms.length);
                }
            }
            for (int v = 0; v < variants.length; v++) {
                Variant a = variants[v];
                int copies = a.ms.length;
                System.out.printf("%s%s %dx%d tokens=%d%s: %.3f ms CPU per call, %.3f ms per token, %.1f GFLOP/s,"
                                + " %.1f GB/s%n", a.type, a.label(tokens), rows, cols, tokens,
                        copies > 1 ? " (" + copies + " copies, from memory)" : "", best[v], best[v] / tokens,
                        2.0 * rows * cols * tokens / best[v] / 1e6, a.bytes / best[v] / 1e6);
            }
        }
    }

    private static final int ROUNDS = Integer.getInteger("rounds", 7);

    /** One TYPE argument: the matrices (one, or copies filling the working set) and how they are called. */
    private record Variant(TensorType type, boolean integer, boolean ownTiles, boolean decodeOnce, WeightMatrix[] ms,
                           long bytes, QuantizedRows quantized) {
        static Variant of(String name, float[] w, int rows, int cols, long workingSet) {
            boolean integer = name.endsWith("i");
            boolean ownTiles = name.endsWith("t");
            boolean decodeOnce = name.endsWith("d");
            TensorType type = TensorType.valueOf(integer || ownTiles || decodeOnce
                    ? name.substring(0, name.length() - 1) : name);
            byte[] bytes = Weights.encode(type, w);
            int copies = (int) Math.max(1, workingSet / bytes.length);
            WeightMatrix[] ms = new WeightMatrix[copies];
            for (int i = 0; i < copies; i++) {
                MemorySegment data = Arena.global().allocate(bytes.length, 64);
                data.copyFrom(MemorySegment.ofArray(bytes));
                ms[i] = WeightMatrix.of(type, data, rows, cols);
                if (ownTiles || decodeOnce) {
                    ms[i] = ms[i].withDecodeOnceFrom(ownTiles ? Integer.MAX_VALUE : 1);
                }
            }
            return new Variant(type, integer, ownTiles, decodeOnce, ms, bytes.length, new QuantizedRows());
        }

        Runnable call(float[] x, int tokens, float[] out) {
            int cols = ms[0].cols();
            return integer
                    ? () -> {
                        for (WeightMatrix m : ms) {
                            m.matmul(quantized.quantize(x, 0, tokens, cols), out, 0, null);
                        }
                    }
                    : () -> {
                        for (WeightMatrix m : ms) {
                            m.matmul(x, 0, tokens, out, 0, null);
                        }
                    };
        }

        String label(int tokens) {
            return integer ? " int-dot" : ownTiles ? " own-tiles"
                    : decodeOnce || ms[0].decodesOnceAt(tokens) ? " decode-once" : "";
        }
    }
}

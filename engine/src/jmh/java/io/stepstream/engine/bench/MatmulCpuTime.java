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
 * time the thread spends descheduled is not counted (cache and memory contention still are). Best of five
 * rounds after a warm-up. Arguments: ROWS COLS TYPES TOKENS, e.g. {@code 2048 2048 F32,Q8_0 1,4,8,32}; a type
 * with an {@code i} suffix ({@code Q8_0i}, {@code Q4_0i}) runs the integer-dot matmul, the activations quantized
 * to Q8_0 once per call as the model does (the quantization is counted):
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
        for (String name : args[2].split(",")) {
            boolean integer = name.endsWith("i");
            TensorType type = TensorType.valueOf(integer ? name.substring(0, name.length() - 1) : name);
            QuantizedRows quantized = new QuantizedRows();
            byte[] bytes = Weights.encode(type, w);
            int copies = (int) Math.max(1, workingSet / bytes.length);
            WeightMatrix[] ms = new WeightMatrix[copies];
            for (int i = 0; i < copies; i++) {
                MemorySegment data = Arena.global().allocate(bytes.length, 64);
                data.copyFrom(MemorySegment.ofArray(bytes));
                ms[i] = WeightMatrix.of(type, data, rows, cols);
            }
            for (int tokens : tokenCounts) {
                float[] x = new float[tokens * cols];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) rnd.nextGaussian();
                }
                float[] out = new float[tokens * rows];
                Runnable call = integer
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
                int calls = Math.max(5, 400 / tokens / copies);
                for (int i = 0; i < Math.max(30 / copies, 3); i++) {
                    call.run();
                }
                double best = Double.MAX_VALUE;
                for (int round = 0; round < 5; round++) {
                    long t0 = threads.getCurrentThreadCpuTime();
                    for (int i = 0; i < calls; i++) {
                        call.run();
                    }
                    best = Math.min(best, (threads.getCurrentThreadCpuTime() - t0) / 1e6 / calls / copies);
                }
                System.out.printf("%s%s %dx%d tokens=%d%s: %.3f ms CPU per call, %.3f ms per token, %.1f GFLOP/s,"
                                + " %.1f GB/s%n", type, integer ? " int-dot" : "", rows, cols, tokens,
                        copies > 1 ? " (" + copies + " copies, from memory)" : "", best, best / tokens,
                        2.0 * rows * cols * tokens / best / 1e6, bytes.length / best / 1e6);
            }
        }
    }
}

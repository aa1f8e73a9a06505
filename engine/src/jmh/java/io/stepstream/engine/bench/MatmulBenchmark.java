package io.stepstream.engine.bench;

import io.stepstream.engine.cpu.Kernels;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tensor.WeightMatrix;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.OptionsBuilder;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Collection;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * One thread, one matmul of [rows x cols] weights by {@code tokens} activation rows: the plain
 * {@link Kernels#matmulRows} loop over float[] weights ("PLAIN") against {@link WeightMatrix#matmul} for each
 * encoding, weights in native memory as a mapped model file would be. {@link #main} prints weight GB/s.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class MatmulBenchmark {
    @Param({"PLAIN", "F32", "F16", "BF16", "Q8_0", "Q4_0"})
    public String kernel;
    @Param({"2048x2048", "5632x2048"})
    public String shape;
    @Param({"1", "8", "32"})
    public int tokens;

    private int rows;
    private int cols;
    private float[] plain;
    private WeightMatrix matrix;
    private float[] x;
    private float[] out;

    @Setup
    public void setUp() {
        String[] rc = shape.split("x");
        rows = Integer.parseInt(rc[0]);
        cols = Integer.parseInt(rc[1]);
        Random rnd = new Random(42);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.02);
        }
        x = new float[tokens * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        out = new float[tokens * rows];
        if (kernel.equals("PLAIN")) {
            plain = w;
        } else {
            TensorType type = TensorType.valueOf(kernel);
            byte[] bytes = Weights.encode(type, w);
            MemorySegment native_ = Arena.global().allocate(bytes.length, 64);
            native_.copyFrom(MemorySegment.ofArray(bytes));
            matrix = WeightMatrix.of(type, native_, rows, cols);
        }
    }

    @Benchmark
    public float[] matmul() {
        if (plain != null) {
            Kernels.matmulRows(plain, rows, cols, x, 0, tokens, out, 0, rows);
        } else {
            matrix.matmul(x, 0, tokens, out, 0, null);
        }
        return out;
    }

    /** Weight bytes one matmul reads. */
    static long weightBytes(String kernel, long rows, long cols) {
        TensorType type = kernel.equals("PLAIN") ? TensorType.F32 : TensorType.valueOf(kernel);
        return type.bytesFor(rows * cols);
    }

    /** Runs this benchmark with JMH options from the command line, then prints ms/op and weight GB/s. */
    public static void main(String[] args) throws Exception {
        CommandLineOptions cli = new CommandLineOptions(args);
        Collection<RunResult> results = new Runner(new OptionsBuilder().parent(cli)
                .include(MatmulBenchmark.class.getSimpleName()).build()).run();
        System.out.println();
        System.out.printf("%-6s %-10s %6s %10s %8s %9s%n", "kernel", "shape", "tokens", "ms/op", "+-", "GB/s");
        for (RunResult r : results) {
            var p = r.getParams();
            String[] rc = p.getParam("shape").split("x");
            double ms = r.getPrimaryResult().getScore();
            double bytes = weightBytes(p.getParam("kernel"), Long.parseLong(rc[0]), Long.parseLong(rc[1]));
            System.out.printf("%-6s %-10s %6s %10.3f %8.3f %9.2f%n", p.getParam("kernel"), p.getParam("shape"),
                    p.getParam("tokens"), ms, r.getPrimaryResult().getScoreError(), bytes / (ms * 1e-3) / 1e9);
        }
    }
}

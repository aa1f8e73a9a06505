package io.stepstream.engine.bench;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.cpu.ComputePool;
import io.stepstream.engine.llama.LlamaLoader;
import io.stepstream.engine.llama.LlamaModel;
import io.stepstream.engine.llama.LlamaWeights;
import io.stepstream.engine.tensor.WeightMatrix;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Where a batch-1 decode step of a Llama model goes. Thread CPU time on one thread (robust on a shared machine:
 * time spent descheduled is not counted) splits the work: the step on a one-thread model, and every matmul of
 * the step (layers in order, then the output) on the caller alone; the difference is the serial work (norms,
 * rope, attention, residuals, swiglu). The step's wall time on a THREADS model then shows what the pool costs:
 * its overhead (handoffs, end-of-run waits, imbalance, a parked worker's wake-up) is that wall time minus the
 * ideal split (matmuls / THREADS + serial). Also the wall time of as many empty pool runs as the step has
 * matmuls (the handoff alone, workers hot), and a hash of the raw bits of every logit of the run, to check that
 * a change left the arithmetic bitwise the same. Each time is the 10th percentile of its repetitions (on a
 * shared machine the slow tail is other work; the fast end is what the code costs). Arguments: MODEL.gguf THREADS [STEPS], e.g.
 * <pre>
 * ./mvnw -q -B -pl engine -P jmh test-compile exec:exec -Djmh.main=io.stepstream.engine.bench.StepProfile \
 *     -Djmh.args="/tmp/bm/llama2-110m-f32.gguf 2"
 * </pre>
 */
public final class StepProfile {
    private static final ThreadMXBean CPU = ManagementFactory.getThreadMXBean();

    private StepProfile() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: StepProfile MODEL.gguf THREADS [STEPS]");
            System.exit(2);
        }
        Path file = Path.of(args[0]);
        int threads = Integer.parseInt(args[1]);
        int steps = args.length > 2 ? Integer.parseInt(args[2]) : 64;
        try (LlamaModel one = LlamaLoader.gguf(file, ModelOptions.defaults().withComputeThreads(1));
             LlamaModel many = LlamaLoader.gguf(file, ModelOptions.defaults().withComputeThreads(threads));
             ComputePool pool = new ComputePool(threads, "profile")) {
            long[] hash = new long[1];
            double stepCpu1 = steps(one, steps, true, null);
            double stepWall = steps(many, steps, false, hash);
            List<WeightMatrix> matrices = new ArrayList<>();
            for (LlamaWeights.Layer y : one.weights().layers()) {
                matrices.addAll(List.of(y.wq(), y.wk(), y.wv(), y.wo(), y.gate(), y.up(), y.down()));
            }
            matrices.add(one.weights().output());
            int maxDim = matrices.stream().mapToInt(m -> Math.max(m.rows(), m.cols())).max().orElseThrow();
            float[] x = new float[maxDim];
            Random rnd = new Random(1);
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            float[] out = new float[maxDim];
            double matmulCpu1 = fast(true, () -> {
                for (WeightMatrix m : matrices) {
                    m.matmul(x, 0, 1, out, 0, null);
                }
            });
            double matmulPool = fast(false, () -> {
                for (WeightMatrix m : matrices) {
                    m.matmul(x, 0, 1, out, 0, pool);
                }
            });
            // every row chunk of every matrix in one index space: one pool run for all the matmuls of a step,
            // so its wall time is the matmuls' split with (almost) no synchronisation
            List<int[]> chunks = new ArrayList<>();
            for (int i = 0; i < matrices.size(); i++) {
                int rows = matrices.get(i).rows();
                int grain = WeightMatrix.rowGrain(rows, threads);
                for (int r = 0; r < rows; r += grain) {
                    chunks.add(new int[] {i, r, Math.min(rows, r + grain)});
                }
            }
            float[][] outs = new float[threads][maxDim];
            ComputePool.RangeTask all = (from, to, worker) -> {
                for (int c = from; c < to; c++) {
                    int[] ch = chunks.get(c);
                    matrices.get(ch[0]).matmulRows(x, 0, 1, outs[worker], 0, ch[1], ch[2]);
                }
            };
            double matmulOneRun = fast(false, () -> pool.run(all, chunks.size(), 1, true));
            ComputePool.RangeTask nothing = (from, to, worker) -> { };
            int runs = matrices.size();
            double empty = fast(false, () -> {
                for (int i = 0; i < runs; i++) {
                    pool.run(nothing, 64, 16, true);
                }
            });
            double serial = stepCpu1 - matmulCpu1;
            double ideal = matmulCpu1 / threads + serial;
            System.out.printf("%s, batch 1, logits hash %016x%n", file.getFileName(), hash[0]);
            System.out.printf("  1 thread, CPU time:  step %.2f ms = %d matmuls %.2f ms + serial %.2f ms%n",
                    stepCpu1, runs, matmulCpu1, serial);
            System.out.printf("  %d threads, wall:     step %.2f ms; ideal (matmuls/%d + serial) %.2f ms; pool overhead %.2f ms%n",
                    threads, stepWall, threads, ideal, stepWall - ideal);
            System.out.printf("  %d threads, wall:     %d matmuls as %d pool runs %.2f ms, as one pool run %.2f ms%n",
                    threads, runs, runs, matmulPool, matmulOneRun);
            System.out.printf("  %d empty pool runs:  %.3f ms (%.2f us each)%n", runs, empty, empty * 1000 / runs);
        }
    }

    /** 10th-percentile decode step of one sequence: thread CPU time or wall time; hash (if not null) gets the logits' bits. */
    private static double steps(LlamaModel model, int steps, boolean cpuTime, long[] hash) {
        int vocab = model.config().vocabSize();
        float[][] logits = new float[1][vocab];
        double[] times = new double[steps];
        for (int round = 0; round < 2; round++) { // the first round warms up
            long h = 1125899906842597L;
            try (KvCache cache = model.newKvCache()) {
                int[] prompt = {1, 5, 9, 13, 17, 21, 25, 29};
                model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, prompt, 0, prompt.length))), logits);
                int[] next = {Prompts.argmax(logits[0], vocab)};
                ForwardBatch step = new ForwardBatch(List.of(new ForwardBatch.Entry(cache, next, 0, 1)));
                for (int s = 0; s < steps; s++) {
                    long t0 = now(cpuTime);
                    model.forward(step, logits);
                    times[s] = (now(cpuTime) - t0) / 1e6;
                    for (int i = 0; i < vocab; i++) {
                        h = 31 * h + Float.floatToRawIntBits(logits[0][i]);
                    }
                    next[0] = Prompts.argmax(logits[0], vocab);
                }
            }
            if (hash != null) {
                hash[0] = h;
            }
        }
        Arrays.sort(times);
        return times[steps / 10];
    }

    private static long now(boolean cpuTime) {
        return cpuTime ? CPU.getCurrentThreadCpuTime() : System.nanoTime();
    }

    private static double fast(boolean cpuTime, Runnable r) {
        for (int i = 0; i < 20; i++) {
            r.run();
        }
        double[] times = new double[61];
        for (int i = 0; i < times.length; i++) {
            long t0 = now(cpuTime);
            r.run();
            times[i] = (now(cpuTime) - t0) / 1e6;
        }
        Arrays.sort(times);
        return times[times.length / 10];
    }
}

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
 * shared machine the slow tail is other work; the fast end is what the code costs). Arguments: MODEL.gguf THREADS
 * [STEPS [BATCH]], e.g.
 * <pre>
 * ./mvnw -q -B -pl engine -P jmh test-compile exec:exec -Djmh.main=io.stepstream.engine.bench.StepProfile \
 *     -Djmh.args="/tmp/bm/llama2-110m-f32.gguf 2"
 * </pre>
 * With BATCH (default 1), BATCH sequences decode together, one token each per step (their 8-token prompts
 * prefilled in one forward first), and the one-thread step is also split by op in thread CPU time through
 * {@link LlamaModel#profileOps} (matmuls, attention, norms, rope and KV stores, residuals, the rest), plus the
 * greedy pick of the next tokens (argmax over each sequence's logits) as sampling. The matmuls are then timed
 * alone with BATCH tokens.
 */
public final class StepProfile {
    private static final ThreadMXBean CPU = ManagementFactory.getThreadMXBean();

    private StepProfile() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: StepProfile MODEL.gguf THREADS [STEPS [BATCH]]");
            System.exit(2);
        }
        Path file = Path.of(args[0]);
        int threads = Integer.parseInt(args[1]);
        int steps = args.length > 2 ? Integer.parseInt(args[2]) : 64;
        int batch = args.length > 3 ? Integer.parseInt(args[3]) : 1;
        try (LlamaModel one = LlamaLoader.gguf(file, ModelOptions.defaults().withComputeThreads(1));
             LlamaModel many = LlamaLoader.gguf(file, ModelOptions.defaults().withComputeThreads(threads));
             ComputePool pool = new ComputePool(threads, "profile")) {
            long[] hash = new long[1];
            long[] opNanos = new long[LlamaModel.Op.values().length + 1]; // + sampling
            double[] stepCpu = steps(one, steps, batch, true, null, opNanos);
            double stepCpu1 = stepCpu[0];
            double stepWall = steps(many, steps, batch, false, hash, null)[0];
            List<WeightMatrix> matrices = new ArrayList<>();
            for (LlamaWeights.Layer y : one.weights().layers()) {
                matrices.addAll(List.of(y.wq(), y.wk(), y.wv(), y.wo(), y.gate(), y.up(), y.down()));
            }
            matrices.add(one.weights().output());
            int maxDim = matrices.stream().mapToInt(m -> Math.max(m.rows(), m.cols())).max().orElseThrow();
            float[] x = new float[maxDim * batch];
            Random rnd = new Random(1);
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            float[] out = new float[maxDim * batch];
            double[] matmulCpu = fast(true, () -> {
                for (WeightMatrix m : matrices) {
                    m.matmul(x, 0, batch, out, 0, null);
                }
            });
            double matmulCpu1 = matmulCpu[0];
            double matmulPool = fast(false, () -> {
                for (WeightMatrix m : matrices) {
                    m.matmul(x, 0, batch, out, 0, pool);
                }
            })[0];
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
            float[][] outs = new float[threads][maxDim * batch];
            ComputePool.RangeTask all = (from, to, worker) -> {
                for (int c = from; c < to; c++) {
                    int[] ch = chunks.get(c);
                    matrices.get(ch[0]).matmulRows(x, 0, batch, outs[worker], 0, ch[1], ch[2]);
                }
            };
            double matmulOneRun = fast(false, () -> pool.run(all, chunks.size(), 1, true))[0];
            ComputePool.RangeTask nothing = (from, to, worker) -> { };
            int runs = matrices.size();
            double empty = fast(false, () -> {
                for (int i = 0; i < runs; i++) {
                    pool.run(nothing, 64, 16, true);
                }
            })[0];
            double serial = stepCpu1 - matmulCpu1;
            double ideal = matmulCpu1 / threads + serial;
            System.out.printf("%s, batch %d, logits hash %016x%n", file.getFileName(), batch, hash[0]);
            System.out.printf("  1 thread, CPU time:  step %.2f ms = %d matmuls %.2f ms + serial %.2f ms"
                    + " (10th percentiles; means: step %.2f ms, the matmuls alone %.2f ms)%n",
                    stepCpu1, runs, matmulCpu1, serial, stepCpu[1], matmulCpu[1]);
            System.out.printf("  %d threads, wall:     step %.2f ms; ideal (matmuls/%d + serial) %.2f ms; pool overhead %.2f ms%n",
                    threads, stepWall, threads, ideal, stepWall - ideal);
            System.out.printf("  %d threads, wall:     %d matmuls as %d pool runs %.2f ms, as one pool run %.2f ms%n",
                    threads, runs, runs, matmulPool, matmulOneRun);
            System.out.printf("  %d empty pool runs:  %.3f ms (%.2f us each)%n", runs, empty, empty * 1000 / runs);
            double total = Arrays.stream(opNanos).sum() / 1e6 / steps;
            StringBuilder split = new StringBuilder("  1 thread, CPU time by op (mean per step of " + steps
                    + ", total " + String.format("%.2f ms", total) + "):");
            for (LlamaModel.Op op : LlamaModel.Op.values()) {
                double ms = opNanos[op.ordinal()] / 1e6 / steps;
                split.append(String.format(" %s %.2f ms (%.1f%%)", op.name().toLowerCase(java.util.Locale.ROOT), ms,
                        100 * ms / total));
            }
            double sampling = opNanos[LlamaModel.Op.values().length] / 1e6 / steps;
            split.append(String.format(" sampling %.2f ms (%.1f%%)", sampling, 100 * sampling / total));
            System.out.println(split);
        }
    }

    /**
     * 10th-percentile and mean decode step of {@code batch} sequences: thread CPU time or wall time; hash (if not
     * null) gets the logits' bits; opNanos (if not null) the timed round's CPU time by op, sampling in its last
     * slot. The split by op is a mean over the steps, so compare it with means, not with 10th percentiles.
     */
    private static double[] steps(LlamaModel model, int steps, int batch, boolean cpuTime, long[] hash,
                                long[] opNanos) {
        int vocab = model.config().vocabSize();
        float[][] logits = new float[batch][vocab];
        double[] times = new double[steps];
        for (int round = 0; round < 2; round++) { // the first round warms up
            long h = 1125899906842597L;
            List<KvCache> caches = new ArrayList<>();
            try {
                int[][] next = new int[batch][1];
                ForwardBatch step = Prompts.prefillThenDecodeStep(model, batch, caches, logits, next);
                boolean profile = opNanos != null && round == 1;
                model.profileOps(profile ? opNanos : null);
                for (int s = 0; s < steps; s++) {
                    long t0 = now(cpuTime);
                    model.forward(step, logits);
                    times[s] = (now(cpuTime) - t0) / 1e6;
                    long p0 = profile ? CPU.getCurrentThreadCpuTime() : 0;
                    for (int b = 0; b < batch; b++) {
                        next[b][0] = Prompts.argmax(logits[b], vocab);
                    }
                    if (profile) {
                        opNanos[opNanos.length - 1] += CPU.getCurrentThreadCpuTime() - p0;
                    }
                    for (int b = 0; b < batch; b++) {
                        for (int i = 0; i < vocab; i++) {
                            h = 31 * h + Float.floatToRawIntBits(logits[b][i]);
                        }
                    }
                }
                model.profileOps(null);
            } finally {
                for (KvCache c : caches) {
                    c.close();
                }
            }
            if (hash != null) {
                hash[0] = h;
            }
        }
        double mean = Arrays.stream(times).average().orElseThrow();
        Arrays.sort(times);
        return new double[] {times[steps / 10], mean};
    }

    private static long now(boolean cpuTime) {
        return cpuTime ? CPU.getCurrentThreadCpuTime() : System.nanoTime();
    }

    /** 10th percentile and mean of 61 timed runs after 20 warm-up runs. */
    private static double[] fast(boolean cpuTime, Runnable r) {
        for (int i = 0; i < 20; i++) {
            r.run();
        }
        double[] times = new double[61];
        for (int i = 0; i < times.length; i++) {
            long t0 = now(cpuTime);
            r.run();
            times[i] = (now(cpuTime) - t0) / 1e6;
        }
        double mean = Arrays.stream(times).average().orElseThrow();
        Arrays.sort(times);
        return new double[] {times[times.length / 10], mean};
    }
}

package io.stepstream.engine.bench;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.cpu.ComputePool;
import io.stepstream.engine.llama.LlamaLoader;
import io.stepstream.engine.llama.LlamaModel;
import io.stepstream.engine.llama.LlamaWeights;
import io.stepstream.engine.tensor.WeightMatrix;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Where a batch-1 decode step of a Llama model goes, in wall time (median of many repetitions):
 * <ul>
 *   <li>step: one {@link LlamaModel#forward} of one token;</li>
 *   <li>matmuls on the pool: every matrix of the step (layers in order, then the output), each its own pool run,
 *       as the model ran them before q/k/v and gate/up were fused;</li>
 *   <li>matmuls on one thread: the same on the caller alone (their pure work, times threads = ideal split);</li>
 *   <li>empty pool runs: as many pool runs of a task that does nothing (the handoff alone, workers hot).</li>
 * </ul>
 * The rest of the step (norms, rope, attention, residuals, the pool runs' imbalance) is step minus matmuls on
 * the pool. Arguments: MODEL.gguf THREADS [STEPS], e.g.
 * <pre>
 * ./mvnw -q -B -pl engine -P jmh test-compile exec:exec -Djmh.main=io.stepstream.engine.bench.StepProfile \
 *     -Djmh.args="/tmp/bm/llama2-110m-f32.gguf 2"
 * </pre>
 */
public final class StepProfile {
    private StepProfile() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: StepProfile MODEL.gguf THREADS [STEPS]");
            System.exit(2);
        }
        int threads = Integer.parseInt(args[1]);
        int steps = args.length > 2 ? Integer.parseInt(args[2]) : 64;
        try (LlamaModel model = LlamaLoader.gguf(Path.of(args[0]), ModelOptions.defaults().withComputeThreads(threads));
             ComputePool pool = new ComputePool(threads, "profile")) {
            double step = stepMillis(model, steps);
            List<WeightMatrix> matrices = new ArrayList<>();
            for (LlamaWeights.Layer y : model.weights().layers()) {
                matrices.addAll(List.of(y.wq(), y.wk(), y.wv(), y.wo(), y.gate(), y.up(), y.down()));
            }
            matrices.add(model.weights().output());
            int maxDim = matrices.stream().mapToInt(m -> Math.max(m.rows(), m.cols())).max().orElseThrow();
            float[] x = new float[maxDim];
            Random rnd = new Random(1);
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            float[] out = new float[maxDim];
            double onPool = median(() -> {
                for (WeightMatrix m : matrices) {
                    m.matmul(x, 0, 1, out, 0, pool);
                }
            });
            double oneThread = median(() -> {
                for (WeightMatrix m : matrices) {
                    m.matmul(x, 0, 1, out, 0, null);
                }
            });
            ComputePool.RangeTask nothing = (from, to, worker) -> { };
            int runs = matrices.size();
            double empty = median(() -> {
                for (int i = 0; i < runs; i++) {
                    pool.run(nothing, 64, 16, true);
                }
            });
            System.out.printf("%s, %d threads, batch 1:%n", Path.of(args[0]).getFileName(), threads);
            System.out.printf("  step (forward of one token)      %7.2f ms%n", step);
            System.out.printf("  %d matmuls, each a pool run      %7.2f ms%n", runs, onPool);
            System.out.printf("  same matmuls on one thread       %7.2f ms (/%d = %.2f ms ideal split)%n",
                    oneThread, threads, oneThread / threads);
            System.out.printf("  %d empty pool runs               %7.2f ms (%.1f us each)%n", runs, empty,
                    empty * 1000 / runs);
            System.out.printf("  step - matmuls on pool (serial)  %7.2f ms%n", step - onPool);
        }
    }

    private static double stepMillis(LlamaModel model, int steps) {
        int vocab = model.config().vocabSize();
        float[][] logits = new float[1][vocab];
        double[] times = new double[steps];
        for (int round = 0; round < 2; round++) { // the first round warms up
            try (KvCache cache = model.newKvCache()) {
                int[] prompt = {1, 5, 9, 13, 17, 21, 25, 29};
                model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, prompt, 0, prompt.length))), logits);
                int[] next = {Prompts.argmax(logits[0], vocab)};
                ForwardBatch step = new ForwardBatch(List.of(new ForwardBatch.Entry(cache, next, 0, 1)));
                for (int s = 0; s < steps; s++) {
                    long t0 = System.nanoTime();
                    model.forward(step, logits);
                    times[s] = (System.nanoTime() - t0) / 1e6;
                    next[0] = Prompts.argmax(logits[0], vocab);
                }
            }
        }
        Arrays.sort(times);
        return times[steps / 2];
    }

    private static double median(Runnable r) {
        for (int i = 0; i < 20; i++) {
            r.run();
        }
        double[] times = new double[41];
        for (int i = 0; i < times.length; i++) {
            long t0 = System.nanoTime();
            r.run();
            times[i] = (System.nanoTime() - t0) / 1e6;
        }
        Arrays.sort(times);
        return times[times.length / 2];
    }
}

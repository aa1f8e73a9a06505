package io.stepstream.engine.bench;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.cpu.Kernels;
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
 * Why the matmuls of a step seemed to cost more inside it than alone: one thread, thread CPU time, the variants
 * taking turns step by step in one process (so load hits them alike), each reported as mean, 10th percentile and
 * median. "alone" is StepProfile's loop (every matrix whole, one shared input and output); "step-shaped" runs
 * them as a one-thread forward does (q/k/v and gate/up in their pool chunks, the step's own input and output
 * arrays), "+swiglu" adds the swiglu inside the gate/up chunks, "+kvsweep" reads a KV-sized array (what the
 * attention streams) between each layer's q/k/v and wo (the sweep itself not counted); "forward" is the real
 * step, split by op. Arguments: MODEL.gguf BATCH [ROUNDS of 32 steps], e.g.
 * <pre>
 * java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
 *     -cp engine/target/classes:engine/target/test-classes io.stepstream.engine.bench.StepGap /tmp/cpu32/110m-q8_0.gguf 32 4
 * </pre>
 */
public final class StepGap {
    private static final ThreadMXBean CPU = ManagementFactory.getThreadMXBean();

    public static void main(String[] args) throws Exception {
        Path file = Path.of(args[0]);
        int batch = Integer.parseInt(args[1]);
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 6;
        int steps = 32;
        try (LlamaModel model = LlamaLoader.gguf(file, ModelOptions.defaults().withComputeThreads(1))) {
            LlamaWeights w = model.weights();
            int dim = model.config().dim();
            int hidden = model.config().hiddenDim();
            int kvDim = model.config().kvDim();
            Random rnd = new Random(1);
            float[] xb = gauss(rnd, batch * dim);
            float[] hbIn = gauss(rnd, batch * hidden);
            float[] q = new float[batch * dim], k = new float[batch * kvDim], v = new float[batch * kvDim];
            float[] xb2 = new float[batch * dim], hb = new float[batch * hidden], hb2 = new float[batch * hidden];
            float[] logits = new float[batch * model.config().vocabSize()];
            float[] sweep = new float[(int) Math.min(Integer.MAX_VALUE - 8, 2L * kvDim * batch * 48)];
            int maxDim = Math.max(Math.max(dim, hidden), model.config().vocabSize());
            float[] x = gauss(rnd, maxDim * batch);
            float[] out = new float[maxDim * batch];
            List<WeightMatrix> all = new ArrayList<>();
            for (LlamaWeights.Layer y : w.layers()) {
                all.addAll(List.of(y.wq(), y.wk(), y.wv(), y.wo(), y.gate(), y.up(), y.down()));
            }
            all.add(w.output());
            String[] names = {"alone", "step-shaped", "step-shaped+swiglu", "step-shaped+kvsweep", "forward"};
            double[][] ms = new double[names.length][rounds * steps];
            long[] opNanos = new long[LlamaModel.Op.values().length];
            long[] sink = new long[1];
            int n = 0;
            // warm-up
            for (int i = 0; i < 10; i++) {
                for (WeightMatrix m : all) m.matmul(x, 0, batch, out, 0, null);
                stepShaped(w, batch, xb, hbIn, q, k, v, xb2, hb, hb2, logits, false, null, sink);
            }
            for (int r = 0; r < rounds; r++) {
                for (int s = 0; s < steps; s++, n++) {
                    long t0 = CPU.getCurrentThreadCpuTime();
                    for (WeightMatrix m : all) m.matmul(x, 0, batch, out, 0, null);
                    long t1 = CPU.getCurrentThreadCpuTime();
                    stepShaped(w, batch, xb, hbIn, q, k, v, xb2, hb, hb2, logits, false, null, sink);
                    long t2 = CPU.getCurrentThreadCpuTime();
                    stepShaped(w, batch, xb, hbIn, q, k, v, xb2, hb, hb2, logits, true, null, sink);
                    long t3 = CPU.getCurrentThreadCpuTime();
                    long sweepNanos = stepShaped(w, batch, xb, hbIn, q, k, v, xb2, hb, hb2, logits, false, sweep, sink);
                    long t4 = CPU.getCurrentThreadCpuTime();
                    ms[0][n] = (t1 - t0) / 1e6;
                    ms[1][n] = (t2 - t1) / 1e6;
                    ms[2][n] = (t3 - t2) / 1e6;
                    ms[3][n] = (t4 - t3 - sweepNanos) / 1e6;
                }
                double[] f = forward(model, batch, steps, opNanos);
                System.arraycopy(f, 0, ms[4], r * steps, steps);
            }
            for (int i = 0; i < names.length; i++) {
                double[] a = ms[i].clone();
                Arrays.sort(a);
                System.out.printf("%-22s mean %7.2f  p10 %7.2f  p50 %7.2f ms%n", names[i],
                        Arrays.stream(a).average().orElseThrow(), a[a.length / 10], a[a.length / 2]);
            }
            StringBuilder sb = new StringBuilder("forward by op, mean:");
            for (LlamaModel.Op op : LlamaModel.Op.values()) {
                sb.append(String.format(" %s %.2f", op, opNanos[op.ordinal()] / 1e6 / (rounds * steps)));
            }
            System.out.println(sb + " (sink " + sink[0] + ")");
        }
    }

    private static float[] gauss(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) rnd.nextGaussian();
        return a;
    }

    /** The matmuls in the step's order, outputs and one-thread chunking; returns the nanos spent sweeping. */
    private static long stepShaped(LlamaWeights w, int batch, float[] xb, float[] hbIn, float[] q, float[] k,
                                   float[] v, float[] xb2, float[] hb, float[] hb2, float[] logits, boolean swiglu,
                                   float[] sweep, long[] sink) {
        long sweepNanos = 0;
        int hidden = hb.length / batch;
        for (LlamaWeights.Layer y : w.layers()) {
            chunked(y.wq(), xb, batch, q);
            chunked(y.wk(), xb, batch, k);
            chunked(y.wv(), xb, batch, v);
            if (sweep != null) {
                long s0 = CPU.getCurrentThreadCpuTime();
                float acc = 0;
                for (int i = 0; i < sweep.length; i += 16) acc += sweep[i];
                sink[0] += (long) acc;
                sweepNanos += CPU.getCurrentThreadCpuTime() - s0;
            }
            y.wo().matmulRows(xb, 0, batch, xb2, 0, 0, y.wo().rows());
            int g = WeightMatrix.rowGrain(y.gate().rows(), 1);
            for (int r0 = 0; r0 < y.gate().rows(); r0 += g) {
                int r1 = Math.min(y.gate().rows(), r0 + g);
                y.gate().matmulRows(xb, 0, batch, hb, 0, r0, r1);
                y.up().matmulRows(xb, 0, batch, hb2, 0, r0, r1);
                if (swiglu) {
                    for (int t = 0; t < batch; t++) Kernels.swiglu(hb, hb2, t * hidden + r0, t * hidden + r1);
                }
            }
            y.down().matmulRows(hbIn, 0, batch, xb2, 0, 0, y.down().rows());
        }
        w.output().matmulRows(xb, 0, batch, logits, 0, 0, w.output().rows());
        return sweepNanos;
    }

    private static void chunked(WeightMatrix m, float[] in, int batch, float[] out) {
        int g = WeightMatrix.rowGrain(m.rows(), 1);
        for (int r0 = 0; r0 < m.rows(); r0 += g) {
            m.matmulRows(in, 0, batch, out, 0, r0, Math.min(m.rows(), r0 + g));
        }
    }

    private static double[] forward(LlamaModel model, int batch, int steps, long[] opNanos) {
        int vocab = model.config().vocabSize();
        float[][] logits = new float[batch][vocab];
        double[] times = new double[steps];
        List<KvCache> caches = new ArrayList<>();
        try {
            int[][] next = new int[batch][1];
            ForwardBatch step = Prompts.prefillThenDecodeStep(model, batch, caches, logits, next);
            model.profileOps(opNanos);
            com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) CPU;
            long a0 = mx.getCurrentThreadAllocatedBytes();
            for (int s = 0; s < steps; s++) {
                long t0 = CPU.getCurrentThreadCpuTime();
                model.forward(step, logits);
                times[s] = (CPU.getCurrentThreadCpuTime() - t0) / 1e6;
                for (int b = 0; b < batch; b++) next[b][0] = Prompts.argmax(logits[b], vocab);
            }
            model.profileOps(null);
            System.out.printf("forward allocated %.1f KB per step%n",
                    (mx.getCurrentThreadAllocatedBytes() - a0) / 1024.0 / steps);
        } finally {
            for (KvCache c : caches) c.close();
        }
        return times;
    }
}

package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.format.safetensors.HfConfig;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.sparse.PatternCache;
import io.stepstream.engine.sparse.SparseDPolicy;
import io.stepstream.engine.sparse.SparsePattern;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * End to end SparseD against dense on a synthetic diffusion LM: random weights in memory with real shapes (LLaDA
 * style Llama, ~110M: dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000), one request with a random prompt of
 * each given length, the same generation dense and with SparseD, timed side by side in one JVM. Not a unit test.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp engine/target/classes:JACKSON_JARS \
 *     io.stepstream.engine.dlm.SparseDBench --prompts 2048,8192 [--layers 12] [--gen 32 --block 32 --steps 8]
 *     [--skip 0.2 --select 0.3 --sparse-block 128] [--threads N]
 * </pre>
 */
public final class SparseDBench {
    public static void main(String[] args) throws Exception {
        List<Integer> prompts = new ArrayList<>(List.of(2048));
        int layers = 12;
        int gen = 32;
        int block = 32;
        int steps = 8;
        double skip = 0.2;
        double select = 0.3;
        int sparseBlock = 128;
        int threads = Runtime.getRuntime().availableProcessors();
        for (int i = 0; i < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--prompts" -> {
                    prompts.clear();
                    for (String p : v.split(",")) {
                        prompts.add(Integer.parseInt(p.trim()));
                    }
                }
                case "--layers" -> layers = Integer.parseInt(v);
                case "--gen" -> gen = Integer.parseInt(v);
                case "--block" -> block = Integer.parseInt(v);
                case "--steps" -> steps = Integer.parseInt(v);
                case "--skip" -> skip = Double.parseDouble(v);
                case "--select" -> select = Double.parseDouble(v);
                case "--sparse-block" -> sparseBlock = Integer.parseInt(v);
                case "--threads" -> threads = Integer.parseInt(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        int maxPrompt = prompts.stream().mapToInt(Integer::intValue).max().orElseThrow();
        int context = maxPrompt + gen + 1;
        long t0 = System.nanoTime();
        DiffusionModel m = syntheticModel(new SplittableRandom(1234), 768, 2048, layers, 12, 12, 32000, context,
                threads);
        System.out.printf("synthetic DLM: dim 768, %d layers, 12 heads, hidden 2048, vocab 32000, %d threads; built"
                + " in %.1f s%n", layers, threads, (System.nanoTime() - t0) / 1e9);
        SparseDPolicy policy = new SparseDPolicy(skip, select, sparseBlock);
        DiffusionParams dense = new DiffusionParams(gen, block, steps, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        System.out.printf("generation: gen %d, block %d, steps %d, greedy; SparseD skip %.2f select %.2f block %d"
                + " (switch step %d)%n", gen, block, steps, skip, select, sparseBlock, policy.switchStep(steps));
        // Warm the JIT on both paths first: otherwise the dense run, which goes first, pays the compilation.
        int[] warm = new int[Math.min(256, maxPrompt)];
        java.util.Arrays.fill(warm, 5);
        warm[0] = 1;
        m.releasePattern(run(m, LladaGeneration.start(m, warm, dense)).patternHandle());
        m.releasePattern(run(m, LladaGeneration.start(m, warm, dense.withSparseD(policy.withBlockSize(
                Math.min(policy.blockSize(), 32))))).patternHandle());
        System.out.println("| prompt | dense s | SparseD s | speedup | tokens as dense | pattern bytes | density |");
        System.out.println("|---:|---:|---:|---:|---:|---:|---:|");
        SplittableRandom r = new SplittableRandom(99);
        for (int promptLength : prompts) {
            int[] prefix = new int[promptLength];
            prefix[0] = 1;
            for (int i = 1; i < promptLength; i++) {
                prefix[i] = 3 + r.nextInt(m.maskId() - 3);
            }
            long a = System.nanoTime();
            LladaGeneration d = run(m, LladaGeneration.start(m, prefix, dense));
            long b = System.nanoTime();
            LladaGeneration s = run(m, LladaGeneration.start(m, prefix, dense.withSparseD(policy)));
            long c = System.nanoTime();
            SparsePattern pattern = m.patternCache().lookup(s.patternHandle());
            int same = 0;
            int[] x = d.generated();
            int[] y = s.generated();
            for (int i = 0; i < x.length; i++) {
                same += x[i] == y[i] ? 1 : 0;
            }
            System.out.printf("| %d | %.1f | %.1f | %.2fx | %d/%d | %s | %s |%n", promptLength, (b - a) / 1e9,
                    (c - b) / 1e9, (b - a) / (double) (c - b), same, x.length,
                    pattern == null ? "-" : Long.toString(pattern.bytes()),
                    pattern == null ? "-" : String.format("%.3f", pattern.density()));
            m.releasePattern(s.patternHandle());
        }
        System.out.println("cache after release: " + m.patternCache());
        m.close();
    }

    /** Runs one request alone to the end, one forward per step. */
    static LladaGeneration run(DiffusionModel m, LladaGeneration gen) {
        float[][] logits = {new float[gen.logitsLength()]};
        while (!gen.done()) {
            m.forward(List.of(gen.nextInput()), logits);
            gen.apply(logits[0]);
        }
        return gen;
    }

    /**
     * A DiffusionModel from random weights in memory, scaled so activations stay O(1) through the layers (public for
     * the GPU module's DLM batching bench, which puts the same shape on the device).
     */
    public static DiffusionModel syntheticModel(SplittableRandom r, int dim, int hidden, int layers, int heads, int kvHeads,
                                         int vocab, int context, int threads) throws Exception {
        int headDim = dim / heads;
        int kvDim = kvHeads * headDim;
        int maskId = vocab - 1;
        HfConfig hf = new HfConfig("llada-synthetic", dim, hidden, layers, heads, kvHeads, headDim, vocab, context,
                10000.0, 1e-5, "silu", false, false, false, 1, 2, maskId, 512, false, true);
        ModelConfig c = DiffusionModel.modelConfig("synthetic", hf);
        float[][] attNorm = new float[layers][];
        float[][] wq = new float[layers][];
        float[][] wk = new float[layers][];
        float[][] wv = new float[layers][];
        float[][] wo = new float[layers][];
        float[][] ffnNorm = new float[layers][];
        float[][] gate = new float[layers][];
        float[][] up = new float[layers][];
        float[][] down = new float[layers][];
        for (int l = 0; l < layers; l++) {
            attNorm[l] = ones(dim);
            // Larger q/k scales than 1/sqrt(dim) give peaked attention, as trained models have.
            wq[l] = uniform(r, dim * dim, 2.0 / Math.sqrt(dim));
            wk[l] = uniform(r, kvDim * dim, 2.0 / Math.sqrt(dim));
            wv[l] = uniform(r, kvDim * dim, 1 / Math.sqrt(dim));
            wo[l] = uniform(r, dim * dim, 1 / Math.sqrt(dim));
            ffnNorm[l] = ones(dim);
            gate[l] = uniform(r, hidden * dim, 1 / Math.sqrt(dim));
            up[l] = uniform(r, hidden * dim, 1 / Math.sqrt(dim));
            down[l] = uniform(r, dim * hidden, 1 / Math.sqrt(hidden));
        }
        DiffusionWeights w = new DiffusionWeights(c, uniform(r, vocab * dim, 1.0), attNorm, wq, wk, wv, wo, ffnNorm,
                gate, up, down, ones(dim), uniform(r, vocab * dim, 1 / Math.sqrt(dim)));
        // Only the text ids' tokenizer is needed (the bench never decodes): llama2.c's tok512, embedded with stories260K.
        String res = "/io/stepstream/engine/models/stories260K/tok512.bin";
        byte[] bytes;
        try (var in = SparseDBench.class.getResourceAsStream(res)) {
            if (in == null) {
                throw new IllegalStateException("embedded " + res + " is missing from the engine jar");
            }
            bytes = in.readAllBytes();
        }
        Tokenizer tokenizer = Llama2Tokenizer.read(res, bytes, 512);
        return new DiffusionModel("synthetic", hf, w, tokenizer, ModelOptions.defaults().withComputeThreads(threads),
                PatternCache.withDefaultCap());
    }

    /** Uniform in [-a, a) with a = scale * sqrt(3): standard deviation {@code scale}. */
    private static float[] uniform(SplittableRandom r, int n, double scale) {
        float[] x = new float[n];
        double a = scale * Math.sqrt(3);
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((2 * r.nextDouble() - 1) * a);
        }
        return x;
    }

    private static float[] ones(int n) {
        float[] x = new float[n];
        java.util.Arrays.fill(x, 1f);
        return x;
    }
}

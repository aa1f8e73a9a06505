package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.sparse.PatternHandle;
import io.stepstream.engine.sparse.PatternRecall;
import io.stepstream.engine.sparse.SparseDBuilder;
import io.stepstream.engine.sparse.SparseDPolicy;
import io.stepstream.engine.sparse.SparsePattern;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

/**
 * How faithful SparseD is to dense attention, measured in ways that do not cascade. A sparse generation runs step by
 * step; at every step that attends through its cached pattern, the same canvas also runs dense, and two things are
 * compared on that identical canvas (teacher forced):
 * <ul>
 *   <li>argmax agreement: the share of the current block's still-masked positions whose argmax (ties to the lower
 *       id, as LLaDA's) is the dense forward's;</li>
 *   <li>attention-mass recall: per layer and head, the share of each query row's dense softmax mass that lies in
 *       its query block's kept key blocks ({@link PatternRecall}), averaged over the head's rows; reported as the
 *       mean over (layer, head) and the lowest (layer, head), and the lowest single query block.</li>
 * </ul>
 * Plus end-to-end agreement: generated tokens equal to the dense generation's (this one cascades: one early
 * difference changes later commits).
 *
 * <p>The {@code main} runs it on the shipped tinystories-dlm (256-token context) over a grid of SparseD settings:
 * <pre>
 * java --add-modules jdk.incubator.vector -cp engine/target/classes:JACKSON_JARS \
 *     io.stepstream.engine.dlm.SparseDFidelity [--gens 64,128] [--blocks 8,16,32] [--selects 0.3,0.5] [--skip 0.2]
 *     [--divisor head_dim|num_heads] [--rebuild-per-block false|true] [--force-own-block false|true]
 *     [--per-layer false|true] [--threads N]
 * </pre>
 * {@code --divisor num_heads} selects with scores divided by sqrt(num_heads), as SparseD's LLaDA code does, instead
 * of sqrt(head_dim) (the attention's own scale, our default).
 */
public final class SparseDFidelity {
    /** TinyStories-style prompts of different lengths (all leave room for 128 generated tokens in 256). */
    static final String[] PROMPTS = {
            "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her"
                    + " friends. One day, she saw a big red ball under a tree.",
            "One day, a little boy named Tim went to the park with his mom. They saw a big dog. The dog was brown"
                    + " and it liked to run.",
            "Sam had a small boat. He took it to the lake every day.",
            "The sun was hot and the sky was blue. A little bird sat on a branch and sang a happy song. A cat"
                    + " looked up at the bird and"
    };

    private SparseDFidelity() {
    }

    /** What one sparse generation measured against dense. */
    public record Result(int generated, int sameTokens, int sparseSteps, long forcedPositions, long forcedSame,
                         double recallMean, double recallMinHead, double recallMinBlock, double density,
                         double[] layerRecallMean, double[] layerRecallMin) {
        /** Pools results: sums counts, averages recall means over steps, keeps the lowest minima. */
        static Result pool(List<Result> rs) {
            int gen = 0;
            int same = 0;
            int steps = 0;
            long pos = 0;
            long fsame = 0;
            double recallSum = 0;
            double minHead = 1;
            double minBlock = 1;
            double density = 0;
            int layers = rs.getFirst().layerRecallMean.length;
            double[] layerSum = new double[layers];
            double[] layerMin = new double[layers];
            java.util.Arrays.fill(layerMin, 1);
            for (Result r : rs) {
                for (int l = 0; l < layers; l++) {
                    layerSum[l] += r.layerRecallMean[l] * r.sparseSteps;
                    layerMin[l] = Math.min(layerMin[l], r.layerRecallMin[l]);
                }
                gen += r.generated;
                same += r.sameTokens;
                steps += r.sparseSteps;
                pos += r.forcedPositions;
                fsame += r.forcedSame;
                recallSum += r.recallMean * r.sparseSteps;
                minHead = Math.min(minHead, r.recallMinHead);
                minBlock = Math.min(minBlock, r.recallMinBlock);
                density += r.density / rs.size();
            }
            for (int l = 0; l < layers; l++) {
                layerSum[l] = steps == 0 ? Double.NaN : layerSum[l] / steps;
            }
            return new Result(gen, same, steps, pos, fsame, steps == 0 ? Double.NaN : recallSum / steps, minHead,
                    minBlock, density, layerSum, layerMin);
        }

        double forcedAgreement() {
            return forcedPositions == 0 ? Double.NaN : forcedSame / (double) forcedPositions;
        }
    }

    /**
     * Runs {@code params}' SparseD generation of {@code prefix} on {@code m}, and at each sparse step a dense forward
     * of the same canvas; compares with {@code denseTokens} (the dense generation's output) at the end.
     *
     * @param selectionDivisor 0 to keep the model's own pattern; else the pattern the model built at the switch step
     *                         is replaced by one selected (from the same canvas) with scores divided by this
     * @param maxMeasured      measure at most this many sparse steps (the first ones), the rest only run
     */
    public static Result measure(DiffusionModel m, int[] prefix, DiffusionParams params, int[] denseTokens,
                                 float selectionDivisor, int maxMeasured) {
        return measure(m, prefix, params, denseTokens, selectionDivisor, maxMeasured, false, false);
    }

    /**
     * As above; with {@code rebuildPerBlock} (an experiment, not SparseD: SparseD builds once per request), the first
     * step of every semi-autoregressive block after the switch step also runs dense and rebuilds the pattern from
     * its canvas, so the pattern follows the block being denoised; with {@code forceOwnBlock} (also not SparseD)
     * every built pattern is widened so each query block keeps its own key block.
     */
    public static Result measure(DiffusionModel m, int[] prefix, DiffusionParams params, int[] denseTokens,
                                 float selectionDivisor, int maxMeasured, boolean rebuildPerBlock,
                                 boolean forceOwnBlock) {
        SparseDPolicy policy = params.sparseD();
        if (policy == null) {
            throw new IllegalArgumentException("params must carry SparseD settings");
        }
        ModelConfig c = m.config();
        int layers = c.nLayers();
        int heads = c.nHeads();
        int hs = c.headSize();
        int group = heads / c.nKvHeads();
        int vocab = m.vocabSize();
        float attentionDivisor = (float) Math.sqrt(hs);
        int switchStep = policy.switchStep(params.steps());
        LladaGeneration s = LladaGeneration.start(m, prefix, params);
        PatternHandle handle = s.patternHandle();
        float[] logits = new float[s.logitsLength()];
        float[] denseLogits = new float[s.logitsLength()];
        int sparseSteps = 0;
        long positions = 0;
        long same = 0;
        double recallSum = 0;
        double minHead = 1;
        double minBlock = 1;
        double density = Double.NaN;
        double[] layerSum = new double[layers];
        double[] layerMin = new double[layers];
        java.util.Arrays.fill(layerMin, 1);
        ThreadLocal<PatternRecall.Scratch> recallScratch = ThreadLocal.withInitial(
                () -> new PatternRecall.Scratch(prefix.length + params.genLength()));
        try {
            while (!s.done()) {
                DenoiseInput in = s.nextInput();
                int step = s.forwards();
                int[] canvas = in.tokens();
                DenoiseInput dense = new DenoiseInput(canvas, in.logitsStart(), in.logitsLength());
                boolean rebuild = rebuildPerBlock && step > switchStep && step % params.stepsPerBlock() == 0
                        && m.patternCache().holds(handle);
                SparsePattern pattern = !rebuild && step > switchStep && sparseSteps < maxMeasured
                        ? m.patternCache().lookup(handle) : null;
                m.forward(List.of(rebuild ? dense : in), new float[][]{logits});
                if (pattern != null) {
                    double[] headRecall = new double[layers * heads];
                    double[] blockMin = new double[layers * heads];
                    m.forwardProbed(dense, denseLogits, (l, q, qStride, k, kStride) ->
                            IntStream.range(0, heads).parallel().forEach(h -> {
                                double[] r = PatternRecall.queryBlocks(pattern, l, h, q, h * hs, qStride, k,
                                        (h / group) * hs, kStride, hs, attentionDivisor, recallScratch.get());
                                headRecall[l * heads + h] = PatternRecall.headMean(r, pattern.tokens(),
                                        pattern.blockSize());
                                double lo = 1;
                                for (double x : r) {
                                    lo = Math.min(lo, x);
                                }
                                blockMin[l * heads + h] = lo;
                            }));
                    double stepMean = 0;
                    for (int u = 0; u < headRecall.length; u++) {
                        stepMean += headRecall[u] / headRecall.length;
                        minHead = Math.min(minHead, headRecall[u]);
                        minBlock = Math.min(minBlock, blockMin[u]);
                        layerSum[u / heads] += headRecall[u] / heads;
                        layerMin[u / heads] = Math.min(layerMin[u / heads], headRecall[u]);
                    }
                    recallSum += stepMean;
                    for (int j = 0; j < in.logitsLength(); j++) {
                        if (canvas[in.logitsStart() + j] == m.maskId()) {
                            positions++;
                            if (argmax(logits, j * vocab, vocab) == argmax(denseLogits, j * vocab, vocab)) {
                                same++;
                            }
                        }
                    }
                    density = pattern.density();
                    sparseSteps++;
                } else if (rebuild || step == switchStep && selectionDivisor > 0 && m.patternCache().holds(handle)) {
                    SparseDBuilder b = new SparseDBuilder(policy, layers, heads, canvas.length, prefix.length,
                            selectionDivisor);
                    ThreadLocal<SparseDBuilder.Scratch> bs = ThreadLocal.withInitial(b::newScratch);
                    m.forwardProbed(dense, denseLogits, (l, q, qStride, k, kStride) ->
                            IntStream.range(0, heads * b.blocks()).parallel().forEach(u -> {
                                int h = u / b.blocks();
                                b.selectQueryBlock(l, h, u % b.blocks(), q, h * hs, qStride, k, (h / group) * hs,
                                        kStride, hs, bs.get());
                            }));
                    m.patternCache().store(handle, b.finish());
                }
                if (forceOwnBlock && (rebuild || step == switchStep) && m.patternCache().holds(handle)) {
                    m.patternCache().store(handle, withOwnBlocks(m.patternCache().lookup(handle)));
                }
                s.apply(logits);
            }
        } finally {
            m.releasePattern(handle);
        }
        int[] out = s.generated();
        int sameTokens = 0;
        for (int i = 0; i < out.length; i++) {
            sameTokens += out[i] == denseTokens[i] ? 1 : 0;
        }
        for (int l = 0; l < layers; l++) {
            layerSum[l] = sparseSteps == 0 ? Double.NaN : layerSum[l] / sparseSteps;
        }
        return new Result(out.length, sameTokens, sparseSteps, positions, same,
                sparseSteps == 0 ? Double.NaN : recallSum / sparseSteps, minHead, minBlock, density, layerSum,
                layerMin);
    }

    /** {@code p} with every query block's own key block added to its row. */
    static SparsePattern withOwnBlocks(SparsePattern p) {
        int units = p.layers() * p.heads();
        int[][] indptr = new int[units][];
        int[][] indices = new int[units][];
        for (int l = 0; l < p.layers(); l++) {
            for (int h = 0; h < p.heads(); h++) {
                int u = l * p.heads() + h;
                List<Integer> idx = new ArrayList<>();
                indptr[u] = new int[p.blocks() + 1];
                for (int qb = 0; qb < p.blocks(); qb++) {
                    java.util.TreeSet<Integer> row = new java.util.TreeSet<>();
                    for (int kb : p.keyBlocks(l, h, qb)) {
                        row.add(kb);
                    }
                    row.add(qb);
                    idx.addAll(row);
                    indptr[u][qb + 1] = idx.size();
                }
                indices[u] = idx.stream().mapToInt(Integer::intValue).toArray();
            }
        }
        return SparsePattern.of(p.layers(), p.heads(), p.tokens(), p.blockSize(), indptr, indices);
    }

    /** The lowest id with the largest logit, as LLaDA's argmax. */
    static int argmax(float[] logits, int offset, int n) {
        int best = 0;
        for (int v = 1; v < n; v++) {
            if (logits[offset + v] > logits[offset + best]) {
                best = v;
            }
        }
        return best;
    }

    /** One row of the results table. */
    static String row(String label, Result r) {
        return String.format("| %s | %.3f | %d/%d (%.1f%%) | %.1f%% | %.4f | %.4f | %.4f |", label, r.density(),
                r.sameTokens(), r.generated(), 100.0 * r.sameTokens() / r.generated(), 100 * r.forcedAgreement(),
                r.recallMean(), r.recallMinHead(), r.recallMinBlock());
    }

    static final String HEADER = "| density | tokens as dense | teacher-forced argmax | recall mean | recall min head"
            + " | recall min block |";

    public static void main(String[] args) {
        List<Integer> gens = List.of(64, 128);
        List<Integer> blocks = List.of(8, 16, 32);
        List<Double> selects = List.of(0.3, 0.5);
        double skip = 0.2;
        String divisor = "head_dim";
        boolean rebuildPerBlock = false;
        boolean forceOwnBlock = false;
        boolean perLayer = false;
        int threads = Runtime.getRuntime().availableProcessors();
        for (int i = 0; i + 1 < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--gens" -> gens = ints(v);
                case "--blocks" -> blocks = ints(v);
                case "--selects" -> selects = java.util.Arrays.stream(v.split(",")).map(String::trim)
                        .map(Double::valueOf).toList();
                case "--skip" -> skip = Double.parseDouble(v);
                case "--divisor" -> divisor = v;
                case "--rebuild-per-block" -> rebuildPerBlock = Boolean.parseBoolean(v);
                case "--force-own-block" -> forceOwnBlock = Boolean.parseBoolean(v);
                case "--per-layer" -> perLayer = Boolean.parseBoolean(v);
                case "--threads" -> threads = Integer.parseInt(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if (args.length % 2 != 0) {
            throw new IllegalArgumentException("options come in pairs: --name value");
        }
        DiffusionModel m = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults().withComputeThreads(threads));
        float selectionDivisor = switch (divisor) {
            case "head_dim" -> 0f;
            case "num_heads" -> (float) Math.sqrt(m.config().nHeads());
            default -> throw new IllegalArgumentException("--divisor must be head_dim or num_heads, got " + divisor);
        };
        List<int[]> prefixes = new ArrayList<>();
        StringBuilder lengths = new StringBuilder();
        for (String p : PROMPTS) {
            int[] prefix = m.tokenizer().encode(p, true, false);
            prefixes.add(prefix);
            lengths.append(lengths.isEmpty() ? "" : ", ").append(prefix.length);
        }
        System.out.printf("tinystories-dlm, %d prompts of %s tokens (BOS included), greedy, low-confidence remasking,"
                + " block_length 32, steps = gen_length; SparseD skip %.2f, selection scores / %s%s%n", PROMPTS.length,
                lengths, skip, divisor.equals("head_dim") ? "sqrt(head_dim)" : "sqrt(num_heads)",
                (rebuildPerBlock ? "; EXPERIMENT (not SparseD): pattern rebuilt densely at each block's first step"
                        : "") + (forceOwnBlock ? "; EXPERIMENT (not SparseD): own block forced" : ""));
        System.out.println("| gen | sparse block | select " + HEADER);
        System.out.println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (int gen : gens) {
            DiffusionParams dense = new DiffusionParams(gen, 32, gen, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
            List<int[]> denseTokens = new ArrayList<>();
            for (int[] prefix : prefixes) {
                denseTokens.add(SparseDBench.run(m, LladaGeneration.start(m, prefix, dense)).generated());
            }
            for (int block : blocks) {
                for (double select : selects) {
                    SparseDPolicy policy = new SparseDPolicy(skip, select, block);
                    List<Result> rs = new ArrayList<>();
                    for (int i = 0; i < prefixes.size(); i++) {
                        rs.add(measure(m, prefixes.get(i), dense.withSparseD(policy), denseTokens.get(i),
                                selectionDivisor, Integer.MAX_VALUE, rebuildPerBlock, forceOwnBlock));
                    }
                    Result pooled = Result.pool(rs);
                    System.out.println(row(gen + " | " + block + " | " + select, pooled));
                    if (perLayer) {
                        StringBuilder sb = new StringBuilder("  recall per layer (mean / lowest head):");
                        for (int l = 0; l < pooled.layerRecallMean().length; l++) {
                            sb.append(String.format(" L%d %.3f / %.3f", l, pooled.layerRecallMean()[l],
                                    pooled.layerRecallMin()[l]));
                        }
                        System.out.println(sb);
                    }
                }
            }
        }
        m.close();
    }

    private static List<Integer> ints(String csv) {
        return java.util.Arrays.stream(csv.split(",")).map(String::trim).map(Integer::valueOf).toList();
    }
}

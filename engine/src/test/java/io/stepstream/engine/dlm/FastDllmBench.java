package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * End to end Fast-dLLM cache against no cache: one request at a time, the same generation with cache none, prefix
 * and dual, timed side by side in one JVM (best of --repeat runs each, after a warm-up), with the token agreement of
 * each cached run with the uncached one. Not a unit test.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp engine/target/classes:engine/target/test-classes:JACKSON_JARS \
 *     io.stepstream.engine.dlm.FastDllmBench [--model tinystories-dlm|synthetic] [--prompt-tokens 8,190]
 *     [--gens 64,128] [--block 32] [--thresholds none,0.9] [--repeat 3] [--threads N] [--layers 4]
 * </pre>
 * tinystories-dlm prompts are the start of a fixed story, cut to the asked token count; synthetic ones (random
 * weights, dim 768, 12 heads, hidden 2048, vocab 32000) are random ids. steps = gen_length.
 */
public final class FastDllmBench {
    private static final String STORY = "Once upon a time, there was a little girl named Lily. She loved to play"
            + " outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to the"
            + " ball and picked it up. Her friend Tom came to play with her. They threw the ball high in the sky and"
            + " laughed. The sun was warm and the birds sang. Lily was very happy. Then it started to rain, so they ran"
            + " home. Mom gave them hot milk and cookies. Lily said, \"Thank you, Mom!\" Tom and Lily played with"
            + " their toys until the rain stopped. The next day, they went to the park again and found a little dog."
            + " The dog was lost and sad. Lily and Tom helped the dog find its home. The dog's owner was a kind old"
            + " man. He thanked them and gave them a big hug.";

    public static void main(String[] args) throws Exception {
        String modelName = "tinystories-dlm";
        List<Integer> promptTokens = new ArrayList<>(List.of(8));
        List<Integer> gens = new ArrayList<>(List.of(64, 128));
        List<Double> thresholds = new ArrayList<>();
        thresholds.add(null);
        thresholds.add(0.9);
        int block = 32;
        int repeat = 3;
        int threads = Runtime.getRuntime().availableProcessors();
        int layers = 4;
        for (int i = 0; i < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--model" -> modelName = v;
                case "--prompt-tokens" -> promptTokens = ints(v);
                case "--gens" -> gens = ints(v);
                case "--block" -> block = Integer.parseInt(v);
                case "--repeat" -> repeat = Integer.parseInt(v);
                case "--threads" -> threads = Integer.parseInt(v);
                case "--layers" -> layers = Integer.parseInt(v);
                case "--thresholds" -> {
                    thresholds.clear();
                    for (String t : v.split(",")) {
                        thresholds.add(t.trim().equals("none") ? null : Double.parseDouble(t.trim()));
                    }
                }
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        boolean synthetic = modelName.equals("synthetic");
        int maxCanvas = promptTokens.stream().mapToInt(Integer::intValue).max().orElseThrow()
                + gens.stream().mapToInt(Integer::intValue).max().orElseThrow();
        DiffusionModel m = synthetic
                ? SparseDBench.syntheticModel(new SplittableRandom(1234), 768, 2048, layers, 12, 12, 32000,
                maxCanvas + 1, threads)
                : Models.loadDiffusion(modelName, ModelOptions.defaults().withComputeThreads(threads));
        System.out.printf("model %s (%s), %d compute threads, %d cores; best of %d runs%n", m.name(),
                synthetic ? layers + " layers, dim 768, vocab 32000, random weights" : "embedded", threads,
                Runtime.getRuntime().availableProcessors(), repeat);
        System.out.println("| prompt tok | gen | block | steps | threshold | cache | forwards | s | tok/s | speedup"
                + " | tokens as no cache |");
        System.out.println("|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|");
        int[] story = m.tokenizer().encode(STORY, true, false);
        SplittableRandom r = new SplittableRandom(99);
        boolean warm = false;
        for (int promptLength : promptTokens) {
            int[] prefix;
            if (synthetic) {
                prefix = new int[promptLength];
                prefix[0] = 1;
                for (int i = 1; i < promptLength; i++) {
                    prefix[i] = 3 + r.nextInt(m.tokenizer().vocabSize() - 3);
                }
            } else {
                if (promptLength > story.length) {
                    throw new IllegalArgumentException("--prompt-tokens " + promptLength + ": the story has only "
                            + story.length + " tokens");
                }
                prefix = java.util.Arrays.copyOf(story, promptLength);
            }
            for (int gen : gens) {
                for (Double threshold : thresholds) {
                    DiffusionParams base = new DiffusionParams(gen, block, gen, 0.0, Remasking.LOW_CONFIDENCE,
                            threshold, 0L);
                    if (!warm) {
                        for (DlmCacheMode mode : DlmCacheMode.values()) {
                            run(m, prefix, base.withCache(mode));
                        }
                        warm = true;
                    }
                    int[] exact = null;
                    double noneSeconds = 0;
                    for (DlmCacheMode mode : DlmCacheMode.values()) {
                        double best = Double.MAX_VALUE;
                        LladaGeneration g = null;
                        for (int k = 0; k < repeat; k++) {
                            long a = System.nanoTime();
                            g = run(m, prefix, base.withCache(mode));
                            best = Math.min(best, (System.nanoTime() - a) / 1e9);
                        }
                        if (mode == DlmCacheMode.NONE) {
                            exact = g.generated();
                            noneSeconds = best;
                        }
                        int same = 0;
                        int[] y = g.generated();
                        for (int i = 0; i < y.length; i++) {
                            same += exact[i] == y[i] ? 1 : 0;
                        }
                        System.out.printf("| %d | %d | %d | %d | %s | %s | %d | %.3f | %.1f | %.2fx | %d/%d |%n",
                                promptLength, gen, block, gen, threshold == null ? "-" : threshold, mode.wireName(),
                                g.forwards(), best, gen / best, noneSeconds / best, same, gen);
                    }
                }
            }
        }
        System.out.println("kv cache after release: " + m.kvCache().bytesHeld() + " bytes held, "
                + m.kvCache().hits() + " hits, " + m.kvCache().misses() + " misses, " + m.kvCache().refusals()
                + " refusals");
        m.close();
    }

    private static LladaGeneration run(DiffusionModel m, int[] prefix, DiffusionParams p) {
        LladaGeneration g = DlmTestSupport.run(m, LladaGeneration.start(m, prefix, p));
        m.releaseKvCache(g.kvHandle());
        return g;
    }

    private static List<Integer> ints(String v) {
        List<Integer> out = new ArrayList<>();
        for (String s : v.split(",")) {
            out.add(Integer.parseInt(s.trim()));
        }
        return out;
    }
}

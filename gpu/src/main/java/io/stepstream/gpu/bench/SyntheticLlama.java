package io.stepstream.gpu.bench;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * A llama2-family model with seeded random weights, built in memory for benchmarks and tests: matrices uniform
 * with standard deviation 1/sqrt(fan_in), embeddings with standard deviation 1, norm weights near 1. Each
 * array has its own random stream (seed, kind, layer), so arrays are filled in parallel and the result does
 * not depend on the thread count.
 */
public final class SyntheticLlama {
    /**
     * Shapes by name: stories260k, llama2-110m, llama-1.1b (TinyLlama: dim 2048, 22 layers, 4 KV heads), llama2-7b
     * (dim 4096, hidden 11008, 32 layers, 32 heads and KV heads, context 4096: its w1, w2 and w3 exceed one 2 GiB
     * buffer in F16 and Q8_0, so the device splits them by layers).
     */
    public static ModelConfig shape(String name) {
        return switch (name == null ? "" : name.strip().toLowerCase(Locale.ROOT)) {
            case "stories260k" -> new ModelConfig(64, 172, 5, 8, 4, 512, 512, 1e-5f, 10000f, false);
            case "llama2-110m" -> new ModelConfig(768, 2048, 12, 12, 12, 32000, 1024, 1e-5f, 10000f, false);
            case "llama-1.1b" -> new ModelConfig(2048, 5632, 22, 32, 4, 32000, 2048, 1e-5f, 10000f, false);
            case "llama2-7b" -> new ModelConfig(4096, 11008, 32, 32, 32, 32000, 4096, 1e-5f, 10000f, false);
            default -> throw new IllegalArgumentException("--shape must be stories260k, llama2-110m, llama-1.1b or"
                    + " llama2-7b, got '" + name + "'");
        };
    }

    private SyntheticLlama() {
    }

    public static Llama2Weights weights(ModelConfig c, long seed) {
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        int layers = c.nLayers();
        // One task per array; arrays are allocated and filled inside the tasks, in parallel.
        record Task(float[][] into, int index, int length, float scale, float offset, long stream) {
        }
        float[][] emb = new float[1][];
        float[][] cls = new float[1][];
        float[][] rmsFinal = new float[1][];
        float[][] rmsAtt = new float[layers][];
        float[][] rmsFfn = new float[layers][];
        float[][] wq = new float[layers][];
        float[][] wk = new float[layers][];
        float[][] wv = new float[layers][];
        float[][] wo = new float[layers][];
        float[][] w1 = new float[layers][];
        float[][] w2 = new float[layers][];
        float[][] w3 = new float[layers][];
        List<Task> tasks = new ArrayList<>();
        long s = 0;
        tasks.add(new Task(emb, 0, c.vocabSize() * dim, 1f, 0f, s++));
        tasks.add(new Task(cls, 0, c.vocabSize() * dim, inverseSqrt(dim), 0f, s++));
        tasks.add(new Task(rmsFinal, 0, dim, 0.1f, 1f, s++));
        for (int l = 0; l < layers; l++) {
            tasks.add(new Task(rmsAtt, l, dim, 0.1f, 1f, s++));
            tasks.add(new Task(rmsFfn, l, dim, 0.1f, 1f, s++));
            tasks.add(new Task(wq, l, dim * dim, inverseSqrt(dim), 0f, s++));
            tasks.add(new Task(wk, l, kvDim * dim, inverseSqrt(dim), 0f, s++));
            tasks.add(new Task(wv, l, kvDim * dim, inverseSqrt(dim), 0f, s++));
            tasks.add(new Task(wo, l, dim * dim, inverseSqrt(dim), 0f, s++));
            tasks.add(new Task(w1, l, hidden * dim, inverseSqrt(dim), 0f, s++));
            tasks.add(new Task(w2, l, dim * hidden, inverseSqrt(hidden), 0f, s++));
            tasks.add(new Task(w3, l, hidden * dim, inverseSqrt(dim), 0f, s++));
        }
        IntStream.range(0, tasks.size()).parallel().forEach(i -> {
            Task t = tasks.get(i);
            SplittableRandom random = new SplittableRandom(seed * 1_000_003L + t.stream());
            float[] a = new float[t.length()];
            // uniform on [-sqrt(3), sqrt(3)] has standard deviation 1
            float half = (float) Math.sqrt(3) * t.scale();
            for (int j = 0; j < a.length; j++) {
                a[j] = t.offset() + (random.nextFloat() * 2f - 1f) * half;
            }
            t.into()[t.index()] = a;
        });
        return new Llama2Weights(c, emb[0], rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal[0], cls[0]);
    }

    /** A tokenizer of {@code vocabSize} distinct made-up pieces (ids 0..2 are unk, BOS, EOS). */
    public static Llama2Tokenizer tokenizer(int vocabSize) {
        byte[][] pieces = new byte[vocabSize][];
        float[] scores = new float[vocabSize];
        for (int i = 0; i < vocabSize; i++) {
            String p = switch (i) {
                case 0 -> "<unk>";
                case 1 -> "<s>";
                case 2 -> "</s>";
                default -> " t" + i;
            };
            pieces[i] = p.getBytes(StandardCharsets.UTF_8);
            scores[i] = -i;
        }
        return new Llama2Tokenizer(pieces, scores, 8);
    }

    private static float inverseSqrt(int n) {
        return (float) (1 / Math.sqrt(n));
    }
}

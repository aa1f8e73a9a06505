package io.stepstream.engine.llama;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.format.gguf.GgufFile;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LlamaModel against the double-precision reference on random small models of every family and weight type,
 * loaded from GGUF through Models.load; and the same sequences alone versus batched, bitwise.
 */
class LlamaForwardTest {
    /** Float32 against double over a few layers; quantized weights are dequantized exactly by the reference. */
    private static final double TOLERANCE = 2e-4;
    private static final int[] PROMPT_LENGTHS = {1, 4, 13, 30};

    @TempDir
    Path dir;

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (LlamaTestModels.Kind kind : LlamaTestModels.Kind.values()) {
            for (TensorType type : new TensorType[]{TensorType.F32, TensorType.F16, TensorType.Q8_0, TensorType.Q4_0,
                    TensorType.Q4_K, TensorType.Q6_K}) { // K-quants: a 256-wide model (whole super-blocks)
                out.add(Arguments.of(kind, type));
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void matchesReferenceAndIsBatchInvariant(LlamaTestModels.Kind kind, TensorType type) throws IOException {
        long seed = 31L * kind.ordinal() + type.ordinal();
        Path file = LlamaTestModels.write(dir, kind, type, seed);
        try (Model batched = Models.load(file.toString(),
                ModelOptions.defaults().withComputeThreads(3).withParallelThreshold(0));
             Model alone = Models.load(file.toString(), ModelOptions.defaults().withComputeThreads(1));
             GgufFile gguf = GgufFile.open(file)) {
            LlamaWeights w = ((LlamaModel) batched).weights();
            assertEquals(kind.family, w.family());
            assertEquals(kind.tied, batched.config().sharedClassifier());
            assertEquals(kind.scaled, w.ropeFreqFactors() != null);
            assertEquals(kind.family == LlamaFamily.QWEN2 ? RopeLayout.NEOX : RopeLayout.INTERLEAVED, w.rope());
            assertEquals(type, w.layers().getFirst().wq().type());
            run(batched, alone, gguf, 5, new Random(seed));
        }
    }

    /**
     * Feeds one prompt per length in chunks of at most {@code chunk} tokens, all sequences in each step, then
     * random decode tokens; every logits row is compared with the reference, and with the same sequence run
     * alone one token at a time on a single thread (bitwise).
     */
    static void run(Model batched, Model alone, GgufFile gguf, int chunk, Random rnd) {
        int vocab = batched.config().vocabSize();
        int n = PROMPT_LENGTHS.length;
        int[][] prompts = new int[n][];
        List<KvCache> caches = new ArrayList<>();
        List<KvCache> aloneCaches = new ArrayList<>();
        LlamaReference[] refs = new LlamaReference[n];
        int[] fed = new int[n];
        for (int s = 0; s < n; s++) {
            prompts[s] = rnd.ints(PROMPT_LENGTHS[s], 0, vocab).toArray();
            caches.add(batched.newKvCache());
            aloneCaches.add(alone.newKvCache());
            refs[s] = new LlamaReference(gguf);
        }
        double worst = 0;
        int checked = 0;
        for (int step = 0; step < 10; step++) {
            List<ForwardBatch.Entry> entries = new ArrayList<>();
            int[][] inputs = new int[n][];
            for (int s = 0; s < n; s++) {
                if (fed[s] < prompts[s].length) {
                    int len = Math.min(chunk, prompts[s].length - fed[s]);
                    inputs[s] = Arrays.copyOfRange(prompts[s], fed[s], fed[s] + len);
                    fed[s] += len;
                } else {
                    inputs[s] = new int[]{rnd.nextInt(vocab)};
                }
                entries.add(new ForwardBatch.Entry(caches.get(s), inputs[s], 0, inputs[s].length));
            }
            float[][] logits = new float[n][vocab];
            batched.forward(new ForwardBatch(entries), logits);
            for (int s = 0; s < n; s++) {
                double[] expected = null;
                float[] single = new float[vocab];
                for (int t : inputs[s]) {
                    expected = refs[s].next(t);
                    alone.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(aloneCaches.get(s),
                            new int[]{t}, 0, 1))), new float[][]{single});
                }
                double err = relativeError(logits[s], expected);
                worst = Math.max(worst, err);
                assertTrue(err <= TOLERANCE, "sequence " + s + " step " + step + ": relative error " + err);
                assertArrayEquals(single, logits[s], "sequence " + s + " step " + step + ": batched != alone");
                checked++;
            }
        }
        caches.forEach(KvCache::close);
        aloneCaches.forEach(KvCache::close);
        assertEquals(10 * n, checked);
        assertTrue(worst > 0, "float and double cannot agree exactly; zero error means nothing was compared");
    }

    static double relativeError(float[] actual, double[] expected) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = actual[i] - expected[i];
            num += d * d;
            den += expected[i] * expected[i];
        }
        return Math.sqrt(num / den);
    }
}

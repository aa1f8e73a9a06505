package io.stepstream.engine.llama;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.reference.LlamaCpp;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tools.Llama2cConvert;
import io.stepstream.engine.tools.SynthModel;
import io.stepstream.engine.tools.SynthShape;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The same GGUF files through LlamaModel and through llama.cpp b4916 (its C API over FFM): greedy tokens equal
 * for 64+ tokens; on F32 weights with an F32 KV cache, the top-5 log-probabilities within 1e-3 at every step.
 */
class LlamaCppComparisonTest {
    private static final int TOKENS = 64;
    private static final double LOGPROB_TOLERANCE = 1e-3;

    @TempDir
    static Path dir;

    @BeforeAll
    static void needsLlamaCpp() {
        assumeTrue(LlamaCpp.available(), "llama.cpp's native library is not available on this platform");
    }

    @Test
    void stories260KGguf() throws IOException {
        Path bin = dir.resolve("stories260K.bin");
        Files.write(bin, LlamaThreeFormatTest.resource("stories260K.bin"));
        Files.write(dir.resolve("tok512.bin"), LlamaThreeFormatTest.resource("tok512.bin"));
        Llama2Weights w = Llama2Checkpoint.read(bin);
        Llama2Tokenizer t = Llama2Tokenizer.read(dir.resolve("tok512.bin"), w.config().vocabSize());
        Path gguf = dir.resolve("stories260K.gguf");
        Llama2cConvert.toGguf(w, t, "stories260K", TensorType.F32, gguf);
        compare(gguf, true);
    }

    @Test
    void synthetic15MShapeF32Q80Q40() throws IOException {
        for (TensorType type : List.of(TensorType.F32, TensorType.Q8_0, TensorType.Q4_0)) {
            Path gguf = dir.resolve("synth-15m-" + type + ".gguf");
            SynthModel.writeGguf(gguf, SynthShape.LLAMA2_15M, type, 512, 7);
            compare(gguf, type == TensorType.F32);
        }
    }

    /**
     * K-quants need rows that are whole 256-element super-blocks: the 110M shape (dim 768, hidden 2048) has them
     * in every matrix, so each one is written in Q4_K (Q6_K) by our quantizers and served by our kernels.
     */
    @Test
    void synthetic110MShapeQ4KQ6K() throws IOException {
        for (TensorType type : List.of(TensorType.Q4_K, TensorType.Q6_K)) {
            Path gguf = dir.resolve("synth-110m-" + type + ".gguf");
            SynthModel.writeGguf(gguf, SynthShape.LLAMA2_110M, type, 512, 13);
            try (Model ours = Models.load(gguf.toString(), ModelOptions.defaults())) {
                assertTrue(((LlamaModel) ours).weights().layers().getFirst().gate().type() == type,
                        gguf + ": matrices written in " + type);
            }
            double gap = compare(gguf, false);
            System.out.printf("%s: top-5 logprob gap to llama.cpp %.3g%n", type, gap);
            // llama.cpp rounds the activations of K-quant matmuls to 8 bits and keeps an F16 KV cache: 0.16 (Q4_K)
            // and 0.13 (Q6_K) here, over 72 steps of 72 distinct tokens; a decoding error would be far larger
            assertTrue(gap < 0.5, type + ": top-5 logprob gap to llama.cpp " + gap);
            Files.delete(gguf);
        }
    }

    /**
     * With {@link LlamaModel#INT8_DOT_PROPERTY} on, our Q8_0/Q4_0 matmuls quantize activations as llama.cpp does:
     * greedy tokens still equal for 64+ tokens, and the top-5 logprobs come closer to llama.cpp's than the float
     * path's (llama.cpp computes these matmuls on quantized activations too).
     */
    @Test
    void synthetic15MShapeQ80Q40WithIntegerDot() throws IOException {
        for (TensorType type : List.of(TensorType.Q8_0, TensorType.Q4_0)) {
            Path gguf = dir.resolve("synth-15m-int8-" + type + ".gguf");
            SynthModel.writeGguf(gguf, SynthShape.LLAMA2_15M, type, 512, 11);
            double floatGap = compare(gguf, false);
            String before = System.getProperty(LlamaModel.INT8_DOT_PROPERTY);
            System.setProperty(LlamaModel.INT8_DOT_PROPERTY, "true");
            double intGap;
            try {
                intGap = compare(gguf, false);
            } finally {
                if (before == null) {
                    System.clearProperty(LlamaModel.INT8_DOT_PROPERTY);
                } else {
                    System.setProperty(LlamaModel.INT8_DOT_PROPERTY, before);
                }
            }
            System.out.printf("%s: top-5 logprob gap to llama.cpp, float path %.3g, integer dot %.3g%n", type,
                    floatGap, intGap);
            assertTrue(intGap < floatGap, type + ": integer dot gap " + intGap + " vs float path " + floatGap);
        }
    }

    @Test
    void smallQwen2AndLlama3ScaledF32() throws IOException {
        compare(LlamaTestModels.write(dir, LlamaTestModels.Kind.QWEN2_TIED, TensorType.F32, 3), true);
        compare(LlamaTestModels.write(dir, LlamaTestModels.Kind.LLAMA3_SCALED, TensorType.F32, 4), true);
        compare(LlamaTestModels.write(dir, LlamaTestModels.Kind.QWEN2_UNTIED, TensorType.Q8_0, 5), false);
    }

    /**
     * Greedy from BOS (or token 0 when the vocabulary adds none) in both engines, step by step; returns the
     * largest top-5 logprob gap seen (asserted within the tolerance only when {@code logprobs}).
     */
    private static double compare(Path gguf, boolean logprobs) {
        try (Model ours = Models.load(gguf.toString(), ModelOptions.defaults().withComputeThreads(2));
             LlamaCpp.Model theirsModel = LlamaCpp.get().load(gguf, false);
             LlamaCpp.Context theirs = theirsModel.newContext(256, 2, true);
             KvCache cache = ours.newKvCache()) {
            int vocab = ours.config().vocabSize();
            int steps = Math.min(TOKENS + 8, ours.config().contextLength() - 1);
            int token = Math.max(0, ours.tokenizer().bosId());
            int[] ourTokens = new int[steps];
            int[] theirTokens = new int[steps];
            float[][] logits = new float[1][vocab];
            double worst = 0;
            for (int i = 0; i < steps; i++) {
                ours.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, new int[]{token}, 0, 1))), logits);
                float[] ref = theirs.decode(new int[]{token});
                ourTokens[i] = argmax(logits[0]);
                theirTokens[i] = argmax(ref);
                double[] a = logSoftmax(logits[0]);
                double[] b = logSoftmax(ref);
                for (int id : top(a, 5)) {
                    worst = Math.max(worst, Math.abs(a[id] - b[id]));
                }
                token = ourTokens[i];
            }
            assertArrayEquals(theirTokens, ourTokens, gguf.getFileName() + ": greedy tokens");
            assertTrue(steps >= TOKENS, "compared " + steps + " tokens");
            if (logprobs) {
                assertTrue(worst <= LOGPROB_TOLERANCE, gguf.getFileName() + ": top-5 logprob gap " + worst);
            }
            return worst;
        }
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    private static double[] logSoftmax(float[] v) {
        double max = Double.NEGATIVE_INFINITY;
        for (float x : v) {
            max = Math.max(max, x);
        }
        double sum = 0;
        for (float x : v) {
            sum += Math.exp(x - max);
        }
        double log = max + Math.log(sum);
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i] - log;
        }
        return out;
    }

    private static int[] top(double[] v, int k) {
        return java.util.stream.IntStream.range(0, v.length).boxed()
                .sorted((x, y) -> Double.compare(v[y], v[x])).limit(k).mapToInt(Integer::intValue).toArray();
    }
}

package io.stepstream.engine.llama;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tools.LlamaGgufExport;
import io.stepstream.engine.tools.SynthModel;
import io.stepstream.engine.tools.SyntheticVocab;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The step kernels' fast forms (attention by head groups position by position, the vector swiglu) against the
 * session-6 forms: every logit bit for bit, over prefill and decode batches of several sizes (so head groups of
 * every size, an uneven last group, GQA, head sizes with and without a scalar tail) and thread splits.
 */
class StepKernelsTest {
    @TempDir
    Path dir;

    @Test
    void unevenHeadGroupsWithScalarTailsF32() throws IOException {
        // 5 heads of 28 (one 16-lane vector and a 12-element tail), one KV head shared by all
        compare(write(new ModelConfig(140, 96, 2, 5, 1, LlamaTestModels.VOCAB, 96, 1e-5f, 10000f, false),
                TensorType.F32), 41);
    }

    @Test
    void groupedQueryAttentionQ8() throws IOException {
        compare(write(LlamaTestModels.config(LlamaTestModels.Kind.LLAMA2_GQA), TensorType.Q8_0), 42);
    }

    @Test
    void qwen2WithBiases() throws IOException {
        compare(LlamaTestModels.write(dir, LlamaTestModels.Kind.QWEN2_TIED, TensorType.F32, 43), 43);
    }

    private Path write(ModelConfig c, TensorType type) throws IOException {
        Path out = dir.resolve("step-" + c.nHeads() + "-" + type + ".gguf");
        LlamaGgufExport.write(out, "step", c, LlamaFamily.LLAMA, null, SynthModel.weights(c, 7), type,
                SyntheticVocab.sentencePiece(c.vocabSize()));
        return out;
    }

    private static void compare(Path file, long seed) {
        for (int threads : new int[] {1, 3}) {
            ModelOptions options = ModelOptions.defaults().withComputeThreads(threads).withParallelThreshold(0);
            try (LlamaModel fast = LlamaLoader.gguf(file, options);
                 LlamaModel plain = LlamaLoader.gguf(file, options)) {
                fast.useStepKernels(true, threads > 1); // the per-token split where there is a pool
                plain.useStepKernels(false, false);
                run(fast, plain, new Random(seed + threads), "threads " + threads);
            }
        }
    }

    /** Seven sequences: prefilled together, then decoded all together, in a pair and alone, 18 steps. */
    private static void run(LlamaModel fast, LlamaModel plain, Random rnd, String what) {
        int vocab = fast.config().vocabSize();
        int seqs = 7;
        List<KvCache> fastCaches = new ArrayList<>();
        List<KvCache> plainCaches = new ArrayList<>();
        try {
            List<int[]> tokens = new ArrayList<>();
            for (int s = 0; s < seqs; s++) {
                fastCaches.add(fast.newKvCache());
                plainCaches.add(plain.newKvCache());
                int[] prompt = new int[1 + rnd.nextInt(20)];
                for (int i = 0; i < prompt.length; i++) {
                    prompt[i] = 1 + rnd.nextInt(vocab - 1);
                }
                tokens.add(prompt);
            }
            int[] all = new int[seqs];
            for (int s = 0; s < seqs; s++) {
                all[s] = s;
            }
            step(fast, plain, fastCaches, plainCaches, tokens, all, what + ", prefill");
            for (int i = 0; i < 18; i++) {
                int[] which = i % 3 == 0 ? all
                        : i % 3 == 1 ? new int[] {i % seqs, (i + 3) % seqs} : new int[] {i % seqs};
                for (int s : which) {
                    tokens.set(s, new int[] {1 + rnd.nextInt(vocab - 1)});
                }
                step(fast, plain, fastCaches, plainCaches, tokens, which, what + ", step " + i);
            }
        } finally {
            fastCaches.forEach(KvCache::close);
            plainCaches.forEach(KvCache::close);
        }
    }

    private static void step(LlamaModel fast, LlamaModel plain, List<KvCache> fastCaches, List<KvCache> plainCaches,
                             List<int[]> tokens, int[] which, String what) {
        int vocab = fast.config().vocabSize();
        List<ForwardBatch.Entry> fe = new ArrayList<>();
        List<ForwardBatch.Entry> pe = new ArrayList<>();
        for (int s : which) {
            int[] t = tokens.get(s);
            fe.add(new ForwardBatch.Entry(fastCaches.get(s), t, 0, t.length));
            pe.add(new ForwardBatch.Entry(plainCaches.get(s), t, 0, t.length));
        }
        float[][] fl = new float[which.length][vocab];
        float[][] pl = new float[which.length][vocab];
        fast.forward(new ForwardBatch(fe), fl);
        plain.forward(new ForwardBatch(pe), pl);
        for (int i = 0; i < which.length; i++) {
            boolean varied = false;
            for (int j = 0; j < vocab; j++) {
                assertEquals(Float.floatToRawIntBits(pl[i][j]), Float.floatToRawIntBits(fl[i][j]),
                        what + ", sequence " + which[i] + ", logit " + j);
                varied |= fl[i][j] != fl[i][0];
                assertTrue(Float.isFinite(fl[i][j]), what + ": logit " + j + " is " + fl[i][j]);
            }
            assertTrue(varied, what + ": logits all equal");
        }
    }
}

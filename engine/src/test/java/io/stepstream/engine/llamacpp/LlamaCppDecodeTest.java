package io.stepstream.engine.llamacpp;

import io.stepstream.engine.reference.LlamaCpp;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Models;
import io.stepstream.engine.StreamingDecoder;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.format.gguf.GgufWriter;
import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tokenizer.TestVocabularies;
import io.stepstream.engine.tokenizer.TokenizerSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Smoke test of the decode half of the binding (context creation, llama_batch_get_one, llama_decode, float32
 * logits): stories260K written as an F32 GGUF runs in llama.cpp and in our engine side by side, greedy from BOS.
 */
class LlamaCppDecodeTest {
    static final String STORY_START = "Once upon a time, there was a little girl named Lily. She loved to play outside";

    @TempDir
    Path dir;

    @Test
    void stories260KGivesTheSameLogitsAndGreedyTokensInLlamaCppAndOurEngine() throws IOException {
        assumeTrue(LlamaCpp.available(), "llama.cpp reference needs linux-x86_64");
        Path models = TestVocabularies.sharedModels().resolve("stories260K");
        Path gguf = writeStoriesGguf(models.resolve("stories260K.bin"), dir.resolve("stories260K-f32.gguf"));

        try (LlamaCpp.Model ref = LlamaCpp.get().load(gguf, false);
             LlamaCpp.Context ctx = ref.newContext(512, 2, true);
             Model ours = Models.load(models.resolve("stories260K.bin"), models.resolve("tok512.bin"));
             KvCache cache = ours.newKvCache()) {
            assertEquals(512, ctx.contextSize());
            Tokenizer tok = ours.tokenizer();
            StreamingDecoder decoder = tok.streamingDecoder();
            StringBuilder text = new StringBuilder();
            int token = tok.bosId();
            double worst = 0;
            float[] first = null;
            for (int step = 0; step < 80; step++) {
                float[] expected = ctx.decode(new int[]{token});
                org.junit.jupiter.api.Assertions.assertArrayEquals(expected, ctx.lastLogits(),
                        "llama_get_logits and llama_get_logits_ith(-1) agree");
                first = first == null ? expected : first;
                float[][] logits = new float[1][ours.config().vocabSize()];
                ours.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, new int[]{token}, 0, 1))), logits);
                worst = Math.max(worst, relativeError(logits[0], expected));
                assertTrue(worst < 1e-4, "step " + step + ": logits differ from llama.cpp by " + worst);
                int next = argmax(expected);
                assertEquals(next, argmax(logits[0]), "greedy token at step " + step);
                text.append(decoder.push(next));
                token = next;
            }
            assertTrue(text.toString().startsWith(STORY_START), "llama.cpp's greedy story: " + text);

            // after llama_kv_self_clear the sequence starts over: BOS gives the first step's logits again
            ctx.clear();
            org.junit.jupiter.api.Assertions.assertArrayEquals(first, ctx.decode(new int[]{tok.bosId()}));
            // a prompt of several tokens in one batch ends on the same logits as feeding them one by one
            int[] prompt = ((io.stepstream.engine.tokenizer.VocabTokenizer) TestVocabularies.tok512(null, null, null)
                    .create()).tokenize("Once upon a time", true, false);
            ctx.clear();
            float[] batched = ctx.decode(prompt);
            ctx.clear();
            float[] single = null;
            for (int t : prompt) {
                single = ctx.decode(new int[]{t});
            }
            assertTrue(relativeError(batched, single) < 1e-5, "batched prompt vs one by one");
            assertEquals(2, ref.eos());
        }
    }

    /** The checkpoint's F32 weights under llama.cpp's tensor names; llama2.c's q/k rows are already in ggml's order. */
    static Path writeStoriesGguf(Path checkpoint, Path file) throws IOException {
        Llama2Weights w = Llama2Checkpoint.read(checkpoint);
        ModelConfig c = w.config();
        TokenizerSpec vocab = TestVocabularies.tok512(null, null, null);
        GgufWriter g = TestVocabularies.gguf(vocab, c);
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        f32(g, "token_embd.weight", w.tokenEmbedding(), dim, c.vocabSize());
        f32(g, "output_norm.weight", w.rmsFinal(), dim);
        if (!c.sharedClassifier()) {
            f32(g, "output.weight", w.classifier(), dim, c.vocabSize());
        }
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "blk." + l + ".";
            f32(g, p + "attn_norm.weight", w.rmsAtt()[l], dim);
            f32(g, p + "attn_q.weight", w.wq()[l], dim, dim);
            f32(g, p + "attn_k.weight", w.wk()[l], dim, kvDim);
            f32(g, p + "attn_v.weight", w.wv()[l], dim, kvDim);
            f32(g, p + "attn_output.weight", w.wo()[l], dim, dim);
            f32(g, p + "ffn_norm.weight", w.rmsFfn()[l], dim);
            f32(g, p + "ffn_gate.weight", w.w1()[l], dim, hidden);
            f32(g, p + "ffn_down.weight", w.w2()[l], hidden, dim);
            f32(g, p + "ffn_up.weight", w.w3()[l], dim, hidden);
        }
        g.write(file);
        return file;
    }

    /** An F32 tensor; dims in GGUF order (the row length first). */
    private static void f32(GgufWriter g, String name, float[] data, long... dims) {
        g.addTensor(name, TensorType.F32, dims, java.lang.foreign.MemorySegment.ofArray(data));
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    /** max |a-b| / max |b|. */
    static double relativeError(float[] actual, float[] reference) {
        double diff = 0;
        double scale = 0;
        for (int i = 0; i < reference.length; i++) {
            diff = Math.max(diff, Math.abs(actual[i] - reference[i]));
            scale = Math.max(scale, Math.abs(reference[i]));
        }
        return diff / scale;
    }
}

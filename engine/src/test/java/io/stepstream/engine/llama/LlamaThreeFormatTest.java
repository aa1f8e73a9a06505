package io.stepstream.engine.llama;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.tokenizer.HfTokenizerJsonTest;
import io.stepstream.engine.tokenizer.TokenizerSpec;
import io.stepstream.engine.tools.Llama2cConvert;
import io.stepstream.engine.tools.LlamaGgufExport;
import io.stepstream.engine.tools.SafetensorsExport;
import io.stepstream.engine.tools.SynthModel;
import io.stepstream.engine.tools.SyntheticVocab;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** stories260K as llama2.c, GGUF and safetensors: the same greedy tokens from each, and near-equal logits. */
class LlamaThreeFormatTest {
    private static final int TOKENS = 80;

    @TempDir
    Path dir;

    static byte[] resource(String name) throws IOException {
        try (InputStream in = LlamaThreeFormatTest.class.getResourceAsStream(
                "/io/stepstream/engine/models/stories260K/" + name)) {
            return in.readAllBytes();
        }
    }

    @Test
    void stories260KGivesTheSameTokensInAllThreeFormats() throws IOException {
        Path bin = dir.resolve("stories260K.bin");
        Path tok = dir.resolve("tok512.bin");
        Files.write(bin, resource("stories260K.bin"));
        Files.write(tok, resource("tok512.bin"));
        Llama2Weights w = Llama2Checkpoint.read(bin);
        Llama2Tokenizer t = Llama2Tokenizer.read(tok, w.config().vocabSize());
        Path gguf = dir.resolve("stories260K.gguf");
        Llama2cConvert.toGguf(w, t, "stories260K", TensorType.F32, gguf);
        Path hf = dir.resolve("stories260K-hf");
        Llama2cConvert.toSafetensors(w, tok, hf);

        try (Model a = Models.load(bin.toString()); Model b = Models.load(gguf.toString());
             Model c = Models.load(hf.toString())) {
            assertEquals(RopeLayout.INTERLEAVED, ((LlamaModel) b).weights().rope());
            assertEquals(RopeLayout.NEOX, ((LlamaModel) c).weights().rope());
            int[] ta = greedy(a);
            assertArrayEquals(ta, greedy(b), "GGUF tokens");
            assertArrayEquals(ta, greedy(c), "safetensors tokens");
            assertTrue(java.util.Arrays.stream(ta).distinct().count() > 10, "a real story, not one repeated token");
            String prompt = "Once upon a time, Lily saw a big dog.";
            assertArrayEquals(a.tokenizer().encode(prompt, true, false), b.tokenizer().encode(prompt, true, false),
                    "the GGUF tokenizer encodes like llama2.c's");
        }
    }

    @Test
    void quantizedGgufConversionsLoadAndTellAStory() throws IOException {
        Path bin = dir.resolve("stories260K.bin");
        Files.write(bin, resource("stories260K.bin"));
        Files.write(dir.resolve("tok512.bin"), resource("tok512.bin"));
        Llama2Weights w = Llama2Checkpoint.read(bin);
        Llama2Tokenizer t = Llama2Tokenizer.read(dir.resolve("tok512.bin"), w.config().vocabSize());
        for (TensorType type : List.of(TensorType.F16, TensorType.Q8_0, TensorType.Q4_0)) {
            Path gguf = dir.resolve("stories260K-" + type + ".gguf");
            Llama2cConvert.toGguf(w, t, "stories260K", type, gguf);
            try (Model m = Models.load(gguf.toString())) {
                // dim 64 rows quantize; the 172-wide ffn_down rows are no whole number of blocks: F16
                assertEquals(type, ((LlamaModel) m).weights().layers().getFirst().wq().type());
                assertEquals(TensorType.F16,
                        ((LlamaModel) m).weights().layers().getFirst().down().type());
                int[] tokens = greedy(m);
                assertTrue(java.util.Arrays.stream(tokens).distinct().count() > 10, type + ": " + tokens.length);
            }
        }
    }

    @Test
    void qwen2SafetensorsWithTokenizerJsonMatchesItsGguf() throws IOException {
        ModelConfig c = new ModelConfig(64, 96, 2, 4, 2, 400, 96, 1e-5f, 1000000f, true);
        TokenizerSpec vocab = SyntheticVocab.byteLevel(c.vocabSize(), "qwen2");
        Path gguf = dir.resolve("qwen2.gguf");
        LlamaGgufExport.write(gguf, "qwen2", c, LlamaFamily.QWEN2, null, SynthModel.weights(c, 5), TensorType.F32,
                vocab);
        Path hf = Files.createDirectories(dir.resolve("qwen2-hf"));
        SafetensorsExport.write(hf.resolve("model.safetensors"), c, LlamaFamily.QWEN2, SynthModel.weights(c, 5), false);
        HfTokenizerJsonTest.writeHf(vocab, hf, true, false);
        Files.writeString(hf.resolve("config.json"), """
                {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
                 "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "vocab_size": 400, "max_position_embeddings": 96, "rms_norm_eps": 1e-5, "rope_theta": 1000000.0,
                 "tie_word_embeddings": true, "hidden_act": "silu", "bos_token_id": 399, "eos_token_id": 399}
                """);
        try (Model a = Models.load(gguf.toString()); Model b = Models.load(hf.toString())) {
            String prompt = "Once upon a time, 12345 cats sat  on\n the mat!";
            assertArrayEquals(a.tokenizer().encode(prompt, true, false), b.tokenizer().encode(prompt, true, false));
            assertEquals(a.tokenizer().bosId(), b.tokenizer().bosId());
            assertArrayEquals(greedy(a), greedy(b), "safetensors + tokenizer.json tokens");
            // The same prompt's last logits from both files: equal to float rounding, and not flat.
            int[] ids = a.tokenizer().encode(prompt, true, false);
            float[][] la = new float[1][c.vocabSize()];
            float[][] lb = new float[1][c.vocabSize()];
            try (KvCache ca = a.newKvCache(); KvCache cb = b.newKvCache()) {
                a.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(ca, ids, 0, ids.length))), la);
                b.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cb, ids, 0, ids.length))), lb);
            }
            double spread = 0;
            double diff = 0;
            for (int v = 0; v < c.vocabSize(); v++) {
                spread = Math.max(spread, Math.abs(la[0][v] - la[0][0]));
                diff = Math.max(diff, Math.abs(la[0][v] - lb[0][v]));
            }
            assertTrue(spread > 0.01 && diff < 1e-4, "spread " + spread + ", diff " + diff);
        }
    }

    private static int[] greedy(Model model) {
        int[] out = new int[TOKENS];
        try (KvCache cache = model.newKvCache()) {
            int token = model.tokenizer().bosId();
            float[][] logits = new float[1][model.config().vocabSize()];
            for (int i = 0; i < TOKENS; i++) {
                model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, new int[]{token}, 0, 1))), logits);
                int best = 0;
                for (int v = 1; v < logits[0].length; v++) {
                    if (logits[0][v] > logits[0][best]) {
                        best = v;
                    }
                }
                out[i] = best;
                token = best;
            }
        }
        return out;
    }
}

package io.stepstream.engine.tools;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama.LlamaFamily;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tokenizer.TokenType;
import io.stepstream.engine.tokenizer.TokenizerSpec;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * llama2.c checkpoints to GGUF (as llama.cpp's llama2.c converter lays them out: q/k rows unpermuted, since
 * llama2.c's RoPE already rotates adjacent pairs like ggml's normal rope) and to a Hugging Face folder
 * (config.json, model.safetensors in F32, and the llama2.c tokenizer.bin), where q/k rows are permuted to
 * Hugging Face's rotate-half order so that folder means the same model to any Hugging Face reader.
 */
public final class Llama2cConvert {
    private Llama2cConvert() {
    }

    /** The weights under their GGUF names. */
    public static LlamaTensors.Source source(Llama2Weights w) {
        return t -> {
            String n = t.name();
            if (n.equals("token_embd.weight")) {
                return w.tokenEmbedding();
            }
            if (n.equals("output_norm.weight")) {
                return w.rmsFinal();
            }
            if (n.equals("output.weight")) {
                return w.classifier();
            }
            int l = Integer.parseInt(n.substring(4, n.indexOf('.', 4)));
            return switch (n.substring(n.indexOf('.', 4) + 1)) {
                case "attn_norm.weight" -> w.rmsAtt()[l];
                case "attn_q.weight" -> w.wq()[l];
                case "attn_k.weight" -> w.wk()[l];
                case "attn_v.weight" -> w.wv()[l];
                case "attn_output.weight" -> w.wo()[l];
                case "ffn_norm.weight" -> w.rmsFfn()[l];
                case "ffn_gate.weight" -> w.w1()[l];
                case "ffn_up.weight" -> w.w3()[l];
                case "ffn_down.weight" -> w.w2()[l];
                default -> throw new IllegalArgumentException("llama2.c has no tensor " + n);
            };
        };
    }

    /**
     * The llama2.c vocabulary as GGUF SentencePiece data: ids 0-2 are &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, "&lt;0xXX&gt;"
     * pieces are byte tokens, and spaces are SentencePiece's U+2581 again (llama2.c's export replaced them).
     */
    public static TokenizerSpec tokenizerSpec(Llama2Tokenizer tok) {
        int n = tok.vocabSize();
        List<String> tokens = new ArrayList<>(n);
        float[] scores = new float[n];
        int[] types = new int[n];
        for (int i = 0; i < n; i++) {
            String piece = new String(tok.piece(i), StandardCharsets.UTF_8);
            TokenType type = TokenType.NORMAL;
            if (i == Llama2Tokenizer.UNK) {
                piece = "<unk>";
                type = TokenType.UNKNOWN;
            } else if (i == Llama2Tokenizer.BOS) {
                piece = "<s>";
                type = TokenType.CONTROL;
            } else if (i == Llama2Tokenizer.EOS) {
                piece = "</s>";
                type = TokenType.CONTROL;
            } else if (piece.matches("<0x[0-9A-F]{2}>")) {
                type = TokenType.BYTE;
            } else {
                piece = piece.replace(' ', '\u2581');
            }
            tokens.add(piece);
            scores[i] = tok.score(i);
            types[i] = type.code;
        }
        return new TokenizerSpec(TokenizerSpec.SENTENCEPIECE, null, tokens, scores, types, null,
                Llama2Tokenizer.BOS, Llama2Tokenizer.EOS, Llama2Tokenizer.UNK, true, false, true);
    }

    public static void toGguf(Llama2Weights w, Llama2Tokenizer tok, String name, TensorType type, Path out)
            throws IOException {
        LlamaGgufExport.write(out, name, w.config(), LlamaFamily.LLAMA, null, source(w), type, tokenizerSpec(tok));
    }

    /** A Hugging Face folder: config.json, model.safetensors (F32) and the llama2.c tokenizer.bin as given. */
    public static void toSafetensors(Llama2Weights w, Path tokenizerBin, Path dir) throws IOException {
        ModelConfig c = w.config();
        Files.createDirectories(dir);
        SafetensorsExport.write(dir.resolve("model.safetensors"), c, LlamaFamily.LLAMA, source(w), true);
        ObjectMapper json = new ObjectMapper();
        ObjectNode cfg = json.createObjectNode();
        cfg.putArray("architectures").add(LlamaFamily.LLAMA.hfArchitecture());
        cfg.put("model_type", LlamaFamily.LLAMA.id());
        cfg.put("hidden_size", c.dim());
        cfg.put("intermediate_size", c.hiddenDim());
        cfg.put("num_hidden_layers", c.nLayers());
        cfg.put("num_attention_heads", c.nHeads());
        cfg.put("num_key_value_heads", c.nKvHeads());
        cfg.put("vocab_size", c.vocabSize());
        cfg.put("max_position_embeddings", c.contextLength());
        cfg.put("rms_norm_eps", (double) c.rmsNormEps());
        cfg.put("rope_theta", (double) c.ropeTheta());
        cfg.put("hidden_act", "silu");
        cfg.put("tie_word_embeddings", c.sharedClassifier());
        cfg.put("bos_token_id", Llama2Tokenizer.BOS);
        cfg.put("eos_token_id", Llama2Tokenizer.EOS);
        cfg.put("torch_dtype", "float32");
        Files.writeString(dir.resolve("config.json"), json.writerWithDefaultPrettyPrinter().writeValueAsString(cfg));
        Files.copy(tokenizerBin, dir.resolve("tokenizer.bin"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
}

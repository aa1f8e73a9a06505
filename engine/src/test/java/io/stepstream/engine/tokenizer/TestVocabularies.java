package io.stepstream.engine.tokenizer;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.format.gguf.GgufValue;
import io.stepstream.engine.format.gguf.GgufWriter;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Real vocabularies for the tokenizer tests, as TokenizerSpecs and as vocab-only GGUF files llama.cpp loads:
 * stories260K's tok512 in SentencePiece form, and a byte-level BPE trained here on an embedded corpus.
 */
public final class TestVocabularies {
    private TestVocabularies() {
    }

    /** /work/shared/models (or wherever shared/models sits above the working directory). */
    public static Path sharedModels() {
        for (Path d = Path.of(System.getProperty("user.dir")).toAbsolutePath(); d != null; d = d.getParent()) {
            Path candidate = d.resolve("shared").resolve("models");
            if (Files.isDirectory(candidate)) {
                return candidate;
            }
        }
        throw new IllegalStateException("no shared/models above " + System.getProperty("user.dir"));
    }

    /**
     * tok512 as a SentencePiece vocabulary: pieces with spaces back to U+2581, {@code <0xHH>} pieces typed BYTE,
     * {@code <unk>} UNKNOWN, {@code <s>} and {@code </s>} CONTROL (llama2.c stored them as "\n<s>\n" and "\n</s>\n").
     */
    public static TokenizerSpec tok512(Boolean addBos, Boolean addEos, Boolean addSpacePrefix) throws IOException {
        Llama2Tokenizer llama2 = Llama2Tokenizer.read(sharedModels().resolve("stories260K/tok512.bin"), 512);
        List<String> tokens = new ArrayList<>();
        float[] scores = new float[512];
        int[] types = new int[512];
        for (int i = 0; i < 512; i++) {
            String piece = utf8Strict(llama2.piece(i), i);
            scores[i] = llama2.score(i);
            TokenType type;
            if (i == 0) {
                piece = "<unk>";
                type = TokenType.UNKNOWN;
            } else if (i == 1 || i == 2) {
                piece = i == 1 ? "<s>" : "</s>";
                type = TokenType.CONTROL;
            } else if (piece.matches("<0x[0-9A-F]{2}>")) {
                type = TokenType.BYTE;
            } else {
                piece = piece.replace(' ', '\u2581');
                type = TokenType.NORMAL;
            }
            tokens.add(piece);
            types[i] = type.code;
        }
        return new TokenizerSpec("llama", null, tokens, scores, types, null, 1, 2, 0, addBos, addEos, addSpacePrefix);
    }

    private static String utf8Strict(byte[] bytes, int id) throws CharacterCodingException {
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalStateException("tok512 token " + id + " is not UTF-8: " + Arrays.toString(bytes), e);
        }
    }

    /** Special tokens of the byte-level vocabulary; one contains another, so longest-first matters. */
    static final List<String> BPE_CONTROL = List.of("<|begin_of_text|>", "<|end_of_text|>", "<|endoftext|>",
            "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|im_start|>system");
    /** A USER_DEFINED token: llama.cpp finds it in the text even without parse_special. */
    static final String BPE_USER_DEFINED = "<tool_call>";
    /** NORMAL tokens no merge produces: with Llama 3's ignore_merges a word equal to one is taken whole. */
    static final List<String> BPE_ORPHANS = List.of("\u0120zyxw", "qqqq", "\u0120\u0120\u0120\u0120\u0120\u0120");

    private static BpeTrainer.Result trained;

    static synchronized BpeTrainer.Result trainedBpe() {
        if (trained == null) {
            trained = BpeTrainer.train(TrainingText.corpus(), 2500);
        }
        return trained;
    }

    /** The trained byte-level BPE with its special tokens, for pre "llama-bpe" (Llama 3) or "qwen2". */
    static TokenizerSpec byteLevel(String pre, Boolean addBos) {
        BpeTrainer.Result r = trainedBpe();
        List<String> tokens = new ArrayList<>(r.tokens());
        List<Integer> types = new ArrayList<>();
        tokens.forEach(t -> types.add(TokenType.NORMAL.code));
        for (String orphan : BPE_ORPHANS) {
            if (!tokens.contains(orphan)) {
                tokens.add(orphan);
                types.add(TokenType.NORMAL.code);
            }
        }
        for (String s : BPE_CONTROL) {
            tokens.add(s);
            types.add(TokenType.CONTROL.code);
        }
        tokens.add(BPE_USER_DEFINED);
        types.add(TokenType.USER_DEFINED.code);
        int bos = tokens.indexOf(pre.equals("qwen2") ? "<|endoftext|>" : "<|begin_of_text|>");
        int eos = tokens.indexOf(pre.equals("qwen2") ? "<|im_end|>" : "<|end_of_text|>");
        return new TokenizerSpec("gpt2", pre, tokens, null, types.stream().mapToInt(Integer::intValue).toArray(),
                r.merges(), bos, eos, null, addBos, null, null);
    }

    /** Writes a spec as a vocab-only GGUF with general.architecture "llama" and small llama hyper-parameters. */
    static Path writeGguf(TokenizerSpec spec, Path file) throws IOException {
        ModelConfig small = new ModelConfig(64, 172, 1, 8, 4, spec.tokens().size(), 512, 1e-5f, 10000f, true);
        gguf(spec, small).write(file);
        return file;
    }

    /** A GGUF writer holding a llama model's hyper-parameters and the vocabulary; tensors may be added. */
    public static GgufWriter gguf(TokenizerSpec spec, ModelConfig c) {
        GgufWriter w = new GgufWriter()
                .putString("general.architecture", "llama")
                .putString("general.name", "stepstream-test")
                .putUInt32("llama.context_length", c.contextLength())
                .putUInt32("llama.embedding_length", c.dim())
                .putUInt32("llama.block_count", c.nLayers())
                .putUInt32("llama.feed_forward_length", c.hiddenDim())
                .putUInt32("llama.attention.head_count", c.nHeads())
                .putUInt32("llama.attention.head_count_kv", c.nKvHeads())
                .putUInt32("llama.rope.dimension_count", c.headSize())
                .putFloat32("llama.rope.freq_base", c.ropeTheta())
                .putFloat32("llama.attention.layer_norm_rms_epsilon", c.rmsNormEps())
                .putString("tokenizer.ggml.model", spec.model());
        if (spec.pre() != null) {
            w.putString("tokenizer.ggml.pre", spec.pre());
        }
        w.putArray("tokenizer.ggml.tokens", GgufValue.Array.strings(spec.tokens()));
        if (spec.scores() != null) {
            w.putArray("tokenizer.ggml.scores", GgufValue.Array.float32s(spec.scores()));
        }
        if (spec.tokenTypes() != null) {
            w.putArray("tokenizer.ggml.token_type", GgufValue.Array.int32s(spec.tokenTypes()));
        }
        if (spec.merges() != null) {
            w.putArray("tokenizer.ggml.merges", GgufValue.Array.strings(spec.merges()));
        }
        if (spec.bosId() != null) {
            w.putUInt32("tokenizer.ggml.bos_token_id", spec.bosId());
        }
        if (spec.eosId() != null) {
            w.putUInt32("tokenizer.ggml.eos_token_id", spec.eosId());
        }
        if (spec.unknownId() != null) {
            w.putUInt32("tokenizer.ggml.unknown_token_id", spec.unknownId());
        }
        if (spec.addBos() != null) {
            w.putBool("tokenizer.ggml.add_bos_token", spec.addBos());
        }
        if (spec.addEos() != null) {
            w.putBool("tokenizer.ggml.add_eos_token", spec.addEos());
        }
        if (spec.addSpacePrefix() != null) {
            w.putBool("tokenizer.ggml.add_space_prefix", spec.addSpacePrefix());
        }
        return w;
    }
}

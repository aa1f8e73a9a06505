package io.stepstream.engine.tokenizer;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.format.gguf.GgufFile;
import io.stepstream.engine.format.gguf.GgufValue;

import java.util.List;

/**
 * A tokenizer as plain data, field for field what GGUF's {@code tokenizer.ggml.*} keys hold, so a file loader only
 * maps keys: model ({@code tokenizer.ggml.model}: "llama" for SentencePiece BPE, "gpt2" for byte-level BPE),
 * pre ({@code .pre}), tokens ({@code .tokens}), scores ({@code .scores}), token types ({@code .token_type}, the
 * {@link TokenType} codes), merges ({@code .merges}, "left right" lines in rank order), special ids
 * ({@code .bos_token_id}, {@code .eos_token_id}, {@code .unknown_token_id}) and flags ({@code .add_bos_token},
 * {@code .add_eos_token}, {@code .add_space_prefix}). Optional keys the file lacks are null; {@link #create()}
 * then applies llama.cpp's defaults for the model kind.
 */
public record TokenizerSpec(
        String model,
        String pre,
        List<String> tokens,
        float[] scores,
        int[] tokenTypes,
        List<String> merges,
        Integer bosId,
        Integer eosId,
        Integer unknownId,
        Boolean addBos,
        Boolean addEos,
        Boolean addSpacePrefix) {

    public static final String SENTENCEPIECE = "llama";
    public static final String BYTE_LEVEL_BPE = "gpt2";

    public TokenizerSpec {
        if (model == null) {
            throw new IllegalArgumentException("tokenizer.ggml.model is missing");
        }
        if (tokens == null || tokens.isEmpty()) {
            throw new IllegalArgumentException("tokenizer.ggml.tokens is missing or empty");
        }
        tokens = List.copyOf(tokens);
        int n = tokens.size();
        if (scores != null) {
            if (scores.length < n) {
                throw new IllegalArgumentException("tokenizer.ggml.scores has " + scores.length + " entries for "
                        + n + " tokens");
            }
            scores = scores.clone();
        }
        if (tokenTypes != null) {
            if (tokenTypes.length < n) {
                throw new IllegalArgumentException("tokenizer.ggml.token_type has " + tokenTypes.length
                        + " entries for " + n + " tokens");
            }
            tokenTypes = tokenTypes.clone();
        }
        merges = merges == null ? null : List.copyOf(merges);
    }

    @Override
    public float[] scores() {
        return scores == null ? null : scores.clone();
    }

    @Override
    public int[] tokenTypes() {
        return tokenTypes == null ? null : tokenTypes.clone();
    }

    /**
     * The tokenizer.ggml.* keys of a GGUF file. Scores may be FLOAT32 or INT32 (as llama.cpp accepts); a key of the
     * wrong type or a bad value fails with the file and key named.
     */
    public static TokenizerSpec fromGguf(GgufFile f) {
        String p = "tokenizer.ggml.";
        try {
            float[] scores = null;
            if (f.containsKey(p + "scores")) {
                GgufValue.Array a = f.getArray(p + "scores");
                if (a.elementType() == io.stepstream.engine.format.gguf.GgufValueType.FLOAT32) {
                    scores = a.floats();
                } else {
                    int[] ints = f.getInts(p + "scores");
                    scores = new float[ints.length];
                    for (int i = 0; i < ints.length; i++) {
                        scores[i] = ints[i];
                    }
                }
            }
            return new TokenizerSpec(
                    f.getString(p + "model"),
                    f.getString(p + "pre", null),
                    stringList(f, p + "tokens"),
                    scores,
                    f.containsKey(p + "token_type") ? f.getInts(p + "token_type") : null,
                    f.containsKey(p + "merges") ? stringList(f, p + "merges") : null,
                    f.containsKey(p + "bos_token_id") ? f.getInt(p + "bos_token_id") : null,
                    f.containsKey(p + "eos_token_id") ? f.getInt(p + "eos_token_id") : null,
                    f.containsKey(p + "unknown_token_id") ? f.getInt(p + "unknown_token_id") : null,
                    f.containsKey(p + "add_bos_token") ? f.getBool(p + "add_bos_token") : null,
                    f.containsKey(p + "add_eos_token") ? f.getBool(p + "add_eos_token") : null,
                    f.containsKey(p + "add_space_prefix") ? f.getBool(p + "add_space_prefix") : null);
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new ModelLoadException(f.name() + ": " + e.getMessage(), e);
        }
    }

    private static List<String> stringList(GgufFile f, String key) {
        try {
            return f.getArray(key).strings();
        } catch (IllegalStateException e) {
            throw new ModelLoadException(f.name() + ": metadata '" + key + "': " + e.getMessage(), e);
        }
    }

    /** The tokenizer this data describes. */
    public Tokenizer create() {
        return switch (model) {
            case SENTENCEPIECE -> new SentencePieceBpeTokenizer(this);
            case BYTE_LEVEL_BPE -> new ByteLevelBpeTokenizer(this);
            default -> throw new IllegalArgumentException("tokenizer.ggml.model '" + model
                    + "' is not supported; supported: llama (SentencePiece BPE), gpt2 (byte-level BPE)");
        };
    }

    float score(int id) {
        return scores == null ? 0f : scores[id];
    }

    TokenType type(int id) {
        return tokenTypes == null ? TokenType.NORMAL : TokenType.ofCode(tokenTypes[id]);
    }
}

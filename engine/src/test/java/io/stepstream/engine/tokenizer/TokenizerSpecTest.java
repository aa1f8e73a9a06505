package io.stepstream.engine.tokenizer;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad tokenizer data fails with a message naming the GGUF key and the problem; defaults follow llama.cpp. */
class TokenizerSpecTest {
    private static final List<String> BYTES_AND_MORE = bytesAnd("<s>", "</s>");

    private static List<String> bytesAnd(String... extra) {
        List<String> t = new java.util.ArrayList<>();
        for (int b = 0; b < 256; b++) {
            t.add(Gpt2Bytes.encode(new byte[]{(byte) b}));
        }
        t.addAll(List.of(extra));
        return t;
    }

    private static TokenizerSpec bpe(String pre, List<String> tokens, List<String> merges, Integer bos) {
        return new TokenizerSpec("gpt2", pre, tokens, null, null, merges, bos, null, null, null, null, null);
    }

    private static void assertMessage(Runnable r, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "message '" + e.getMessage() + "' should name " + p);
        }
    }

    @Test
    void unknownModelAndPreAreNamed() {
        assertMessage(() -> new TokenizerSpec("bert", null, List.of("a"), null, null, null, null, null, null,
                null, null, null).create(), "tokenizer.ggml.model", "bert");
        assertMessage(() -> bpe("gpt-4o", BYTES_AND_MORE, List.of(), null).create(), "tokenizer.ggml.pre", "gpt-4o");
        assertMessage(() -> bpe(null, BYTES_AND_MORE, List.of(), null).create(), "tokenizer.ggml.pre");
    }

    @Test
    void missingPiecesAreNamed() {
        assertMessage(() -> bpe("qwen2", BYTES_AND_MORE, null, null).create(), "tokenizer.ggml.merges");
        assertMessage(() -> bpe("qwen2", List.of(), List.of(), null), "tokenizer.ggml.tokens");
        assertMessage(() -> new TokenizerSpec("llama", null, List.of("a", "b"), new float[1], null, null, null,
                null, null, null, null, null), "tokenizer.ggml.scores", "1", "2");
        assertMessage(() -> new TokenizerSpec("llama", null, List.of("a", "b"), null, new int[]{1}, null, null,
                null, null, null, null, null), "tokenizer.ggml.token_type");
    }

    @Test
    void badIdsAndDuplicatesAreNamed() {
        assertMessage(() -> bpe("qwen2", BYTES_AND_MORE, List.of(), 9999).create(),
                "tokenizer.ggml.bos_token_id", "9999");
        assertMessage(() -> bpe("qwen2", bytesAnd("xy", "xy"), List.of(), null).create(), "'xy' twice", "256", "257");
        // llama3 adds BOS by default; the default id 11 exists here, so that works, but not with too few tokens
        assertMessage(() -> new TokenizerSpec("gpt2", "llama3", List.of("a", "b"), null, null, List.of(), null, null,
                null, null, null, null).create(), "add_bos_token");
    }

    @Test
    void defaultsFollowLlamaCpp() {
        var qwen = (ByteLevelBpeTokenizer) bpe("qwen2", BYTES_AND_MORE, List.of(), null).create();
        assertEquals(11, qwen.bosId());
        assertEquals(false, qwen.addsBos());
        var llama3 = (ByteLevelBpeTokenizer) bpe("llama-bpe", BYTES_AND_MORE, List.of(), 256).create();
        assertEquals(true, llama3.addsBos());
        assertEquals(256, llama3.bosId());
        var spm = new TokenizerSpec("llama", null, List.of("<unk>", "<s>", "</s>", "a"), null,
                new int[]{2, 3, 3, 1}, null, null, null, null, null, null, null).create();
        assertInstanceOf(SentencePieceBpeTokenizer.class, spm);
        assertEquals(1, spm.bosId());
        assertEquals(2, spm.eosId());
    }

    @Test
    void ggufWithAWrongKeyTypeNamesFileAndKey(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws java.io.IOException {
        java.nio.file.Path file = dir.resolve("bad.gguf");
        new io.stepstream.engine.format.gguf.GgufWriter()
                .putString("tokenizer.ggml.model", "gpt2")
                .putString("tokenizer.ggml.tokens", "not an array")
                .write(file);
        try (var f = io.stepstream.engine.format.gguf.GgufFile.open(file)) {
            var e = assertThrows(io.stepstream.engine.ModelLoadException.class, () -> TokenizerSpec.fromGguf(f));
            assertTrue(e.getMessage().contains("bad.gguf") && e.getMessage().contains("tokenizer.ggml.tokens"),
                    e.getMessage());
        }
    }

    @Test
    void missingByteFallbackIsAClearError() {
        var spm = new TokenizerSpec("llama", null, List.of("<unk>", "<s>", "</s>", "\u2581"), null,
                new int[]{2, 3, 3, 1}, null, null, null, null, null, null, null).create();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> spm.encode("\u00e9", false, false));
        assertTrue(e.getMessage().contains("<0xC3>"), e.getMessage());
    }
}

package io.stepstream.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * tokenizer.json as Hugging Face writes it for Llama 3 and Qwen2 (the trained byte-level vocabulary laid out in that
 * format here) reads back as the same tokenizer the GGUF keys give, which the GGUF tests hold equal to llama.cpp.
 */
public class HfTokenizerJsonTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final String LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
            + " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
            + " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final int PADDING = 3;

    /** Writes {@code spec} the way the tokenizers library saves a byte-level BPE, plus its config files. */
    public static void writeHf(TokenizerSpec spec, Path dir, boolean mergesAsPairs, boolean withTokenizerConfig)
            throws IOException {
        boolean llama3 = spec.pre().equals("llama-bpe");
        ObjectNode root = JSON.createObjectNode().put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        ObjectNode vocab = JSON.createObjectNode();
        int[] types = spec.tokenTypes();
        for (int id = 0; id < spec.tokens().size(); id++) {
            String token = spec.tokens().get(id);
            TokenType type = TokenType.ofCode(types[id]);
            if (type == TokenType.CONTROL || type == TokenType.USER_DEFINED) {
                added.addObject().put("id", id).put("content", token).put("single_word", false)
                        .put("lstrip", false).put("rstrip", false).put("normalized", type != TokenType.CONTROL)
                        .put("special", type == TokenType.CONTROL);
            } else {
                vocab.put(token, id);
            }
        }
        if (llama3) {
            root.putNull("normalizer");
        } else {
            root.putObject("normalizer").put("type", "NFC");
        }
        ObjectNode pre = root.putObject("pre_tokenizer").put("type", "Sequence");
        ArrayNode pres = pre.putArray("pretokenizers");
        ObjectNode split = pres.addObject().put("type", "Split");
        split.putObject("pattern").put("Regex", llama3 ? LLAMA3_REGEX : QWEN2_REGEX);
        split.put("behavior", "Isolated").put("invert", false);
        pres.addObject().put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", !llama3)
                .put("use_regex", false);
        if (llama3) {
            ObjectNode post = root.putObject("post_processor").put("type", "Sequence");
            ArrayNode processors = post.putArray("processors");
            processors.addObject().put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", false)
                    .put("use_regex", true);
            ObjectNode template = processors.addObject().put("type", "TemplateProcessing");
            ArrayNode single = template.putArray("single");
            single.addObject().putObject("SpecialToken").put("id", "<|begin_of_text|>").put("type_id", 0);
            single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        } else {
            root.putObject("post_processor").put("type", "ByteLevel").put("add_prefix_space", false)
                    .put("trim_offsets", false).put("use_regex", false);
        }
        root.putObject("decoder").put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", true)
                .put("use_regex", true);
        ObjectNode model = root.putObject("model").put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.put("fuse_unk", false).put("byte_fallback", false).put("ignore_merges", llama3);
        model.set("vocab", vocab);
        ArrayNode merges = model.putArray("merges");
        for (String m : spec.merges()) {
            if (mergesAsPairs) {
                int space = m.indexOf(' ');
                merges.addArray().add(m.substring(0, space)).add(m.substring(space + 1));
            } else {
                merges.add(m);
            }
        }
        JSON.writeValue(dir.resolve("tokenizer.json").toFile(), root);
        String bos = spec.tokens().get(spec.bosId());
        String eos = spec.tokens().get(spec.eosId());
        if (withTokenizerConfig) {
            ObjectNode tc = JSON.createObjectNode().put("bos_token", bos);
            tc.putObject("eos_token").put("content", eos).put("special", true);
            if (!llama3) {
                tc.put("add_bos_token", false);
            }
            JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), tc);
        }
        JSON.writeValue(dir.resolve("config.json").toFile(), JSON.createObjectNode()
                .put("bos_token_id", spec.bosId()).put("eos_token_id", spec.eosId())
                .put("vocab_size", spec.tokens().size() + PADDING));
    }

    private static void sameTokenizer(TokenizerSpec expected, TokenizerSpec read) {
        int n = expected.tokens().size();
        assertEquals(n + PADDING, read.tokens().size());
        assertEquals(expected.tokens(), read.tokens().subList(0, n));
        assertEquals("[PAD" + n + "]", read.tokens().get(n));
        int[] types = read.tokenTypes();
        assertArrayEquals(expected.tokenTypes(), java.util.Arrays.copyOf(types, n));
        assertEquals(TokenType.UNUSED.code, types[n + PADDING - 1]);
        assertEquals(expected.merges(), read.merges());
        assertEquals(expected.pre(), read.pre());
        assertEquals(expected.bosId(), read.bosId());
        assertEquals(expected.eosId(), read.eosId());
        Tokenizer a = expected.create();
        Tokenizer b = read.create();
        List<String> texts = new ArrayList<>(TrickyStrings.FIXED);
        texts.addAll(TrickyStrings.random(11, 200));
        texts.add(String.join(" ", TestVocabularies.BPE_CONTROL) + " " + TestVocabularies.BPE_USER_DEFINED + " x");
        for (String text : texts) {
            assertArrayEquals(a.encode(text, true, false), b.encode(text, true, false), text);
            assertArrayEquals(a.encode(text, false, true), b.encode(text, false, true), text);
        }
    }

    @Test
    void llama3TokenizerJsonEqualsItsGgufTokenizer(@TempDir Path dir) throws IOException {
        TokenizerSpec spec = TestVocabularies.byteLevel("llama-bpe", true);
        writeHf(spec, dir, false, true);
        TokenizerSpec read = HfTokenizerJson.read(dir, spec.tokens().size() + PADDING);
        sameTokenizer(spec, read);
        assertEquals(Boolean.TRUE, read.addBos(), "the template's leading special token means add BOS");
    }

    @Test
    void qwen2TokenizerJsonWithPairMergesAndOnlyConfigIds(@TempDir Path dir) throws IOException {
        TokenizerSpec spec = TestVocabularies.byteLevel("qwen2", false);
        writeHf(spec, dir, true, false);
        TokenizerSpec read = HfTokenizerJson.read(dir, spec.tokens().size() + PADDING);
        sameTokenizer(spec, read);
    }

    @Test
    void unsupportedOrBrokenFilesNameTheFileAndTheProblem(@TempDir Path dir) throws IOException {
        TokenizerSpec spec = TestVocabularies.byteLevel("qwen2", false);
        writeHf(spec, dir, false, true);
        Path file = dir.resolve("tokenizer.json");
        String good = Files.readString(file);
        int vocab = spec.tokens().size() + PADDING;
        List<String[]> cases = List.of(
                new String[] {good.replace("\"byte_fallback\":false", "\"byte_fallback\":true"), "SentencePiece"},
                new String[] {good.replace("\\\\p{N}|", "\\\\d+|"), "pre_tokenizer"},
                new String[] {good.replace("\"type\":\"BPE\"", "\"type\":\"Unigram\""), "only BPE"},
                new String[] {good.substring(0, good.length() / 2), "not valid JSON"},
                new String[] {good.replaceAll("\"merges\":\\[.*?\\]\\}", "\"merges\":[]}"), "merges"});
        for (String[] c : cases) {
            Files.writeString(file, c[0]);
            var e = assertThrows(ModelLoadException.class, () -> HfTokenizerJson.read(dir, vocab), c[1]);
            assertTrue(e.getMessage().startsWith(file.toString()) && e.getMessage().contains(c[1]), e.getMessage());
        }
        Files.writeString(file, good);
        var tooSmall = assertThrows(ModelLoadException.class, () -> HfTokenizerJson.read(dir, 10));
        assertTrue(tooSmall.getMessage().contains("outside the model's vocabulary"), tooSmall.getMessage());
    }
}

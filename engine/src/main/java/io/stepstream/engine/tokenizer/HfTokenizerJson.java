package io.stepstream.engine.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.engine.ModelLoadException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A Hugging Face {@code tokenizer.json} (with {@code tokenizer_config.json} and {@code config.json} beside it when
 * present) as the {@link TokenizerSpec} llama.cpp's converter would write into a GGUF, so that a safetensors
 * checkpoint tokenizes exactly like its GGUF conversion. Byte-level BPE only (Llama 3, Qwen2): the pre-tokenizer is
 * recognised from its Split regex; a SentencePiece-style tokenizer.json is refused with the reason.
 *
 * <p>The mapping follows the converter: ids without a token up to the model's vocabulary size become
 * {@code [PAD<id>]} (UNUSED); added tokens that are special, or look like {@code <|...|>}, are CONTROL, other added
 * tokens USER_DEFINED, the rest NORMAL. BOS/EOS come from tokenizer_config.json's bos_token/eos_token (names looked
 * up in the vocabulary), else config.json's ids; add_bos/add_eos from tokenizer_config.json, else from the
 * post-processor's template (a special token before the sequence means BOS is added).
 */
public final class HfTokenizerJson {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Digits in runs of up to three: Llama 3's pattern (llama.cpp pre "llama-bpe"). */
    private static final String LLAMA3_DIGITS = "\\p{N}{1,3}";
    /** Single digits: Qwen2's pattern. */
    private static final String QWEN2_DIGITS = "|\\p{N}|";

    private HfTokenizerJson() {
    }

    /**
     * Reads {@code dir/tokenizer.json}; {@code modelVocabSize} is the model's vocabulary (embedding rows), to which
     * the token list is padded.
     */
    public static TokenizerSpec read(Path dir, int modelVocabSize) {
        Path file = dir.resolve("tokenizer.json");
        JsonNode root = readJson(file);
        try {
            JsonNode model = root.path("model");
            if (!"BPE".equals(model.path("type").asText())) {
                throw new IllegalArgumentException("model.type is '" + model.path("type").asText()
                        + "'; only BPE is supported");
            }
            if (model.path("byte_fallback").asBoolean(false) || !mentionsByteLevel(root)) {
                throw new IllegalArgumentException("a SentencePiece-style BPE (byte_fallback, no ByteLevel "
                        + "pre-tokenizer) is not read from tokenizer.json; use its GGUF conversion or tokenizer.bin");
            }
            String pre = preTokenizerName(root.path("pre_tokenizer"));

            Map<Integer, String> byId = new HashMap<>();
            JsonNode vocab = model.path("vocab");
            if (!vocab.isObject() || vocab.isEmpty()) {
                throw new IllegalArgumentException("model.vocab is missing or empty");
            }
            vocab.properties().forEach(e -> put(byId, e.getValue().asInt(-1), e.getKey()));
            Map<Integer, JsonNode> added = new HashMap<>();
            for (JsonNode t : root.path("added_tokens")) {
                int id = t.path("id").asInt(-1);
                String content = t.path("content").asText(null);
                if (content == null) {
                    throw new IllegalArgumentException("added_tokens: an entry without content (id " + id + ")");
                }
                put(byId, id, content);
                added.put(id, t);
            }
            int maxId = byId.keySet().stream().mapToInt(Integer::intValue).max().orElse(-1);
            if (maxId >= modelVocabSize) {
                throw new IllegalArgumentException("token id " + maxId + " is outside the model's vocabulary of "
                        + modelVocabSize);
            }
            List<String> tokens = new ArrayList<>(modelVocabSize);
            int[] types = new int[modelVocabSize];
            for (int id = 0; id < modelVocabSize; id++) {
                String token = byId.get(id);
                if (token == null) {
                    tokens.add("[PAD" + id + "]");
                    types[id] = TokenType.UNUSED.code;
                } else if (added.containsKey(id)) {
                    boolean special = added.get(id).path("special").asBoolean(false) || looksSpecial(token);
                    tokens.add(special ? token : token.replace('\u2581', ' '));
                    types[id] = (special ? TokenType.CONTROL : TokenType.USER_DEFINED).code;
                } else {
                    tokens.add(token);
                    types[id] = TokenType.NORMAL.code;
                }
            }
            List<String> merges = new ArrayList<>();
            for (JsonNode m : model.path("merges")) {
                if (m.isTextual()) {
                    merges.add(m.asText());
                } else if (m.isArray() && m.size() == 2) {
                    merges.add(m.get(0).asText() + " " + m.get(1).asText());
                } else {
                    throw new IllegalArgumentException("model.merges: entry " + merges.size()
                            + " is neither \"a b\" nor [a, b]: " + m);
                }
            }
            if (merges.isEmpty()) {
                throw new IllegalArgumentException("model.merges is missing or empty");
            }

            JsonNode tokenizerConfig = readOptional(dir.resolve("tokenizer_config.json"));
            JsonNode config = readOptional(dir.resolve("config.json"));
            Map<String, Integer> idOf = new HashMap<>();
            for (int id = 0; id < tokens.size(); id++) {
                idOf.putIfAbsent(byId.getOrDefault(id, ""), id);
            }
            Integer bos = specialId(tokenizerConfig.path("bos_token"), idOf, config.path("bos_token_id"));
            Integer eos = specialId(tokenizerConfig.path("eos_token"), idOf, config.path("eos_token_id"));
            Boolean addBos = templateStartsWithSpecial(root.path("post_processor"));
            if (tokenizerConfig.has("add_bos_token")) {
                addBos = tokenizerConfig.path("add_bos_token").asBoolean();
            }
            Boolean addEos = null;
            if (tokenizerConfig.has("add_eos_token")) {
                addEos = tokenizerConfig.path("add_eos_token").asBoolean();
            }
            return new TokenizerSpec(TokenizerSpec.BYTE_LEVEL_BPE, pre, tokens, null, types, merges, bos, eos, null,
                    addBos, addEos, null);
        } catch (IllegalArgumentException e) {
            throw new ModelLoadException(file + ": " + e.getMessage(), e);
        }
    }

    private static void put(Map<Integer, String> byId, int id, String token) {
        if (id < 0) {
            throw new IllegalArgumentException("token '" + token + "' has no valid id");
        }
        String previous = byId.put(id, token);
        if (previous != null && !previous.equals(token)) {
            throw new IllegalArgumentException("id " + id + " is both '" + previous + "' and '" + token + "'");
        }
    }

    private static boolean mentionsByteLevel(JsonNode root) {
        return root.path("pre_tokenizer").toString().contains("\"ByteLevel\"")
                || root.path("decoder").toString().contains("\"ByteLevel\"");
    }

    /** The llama.cpp pre-tokenizer name for the Split regex inside {@code pre_tokenizer}. */
    static String preTokenizerName(JsonNode preTokenizer) {
        List<String> regexes = new ArrayList<>();
        collectRegexes(preTokenizer, regexes);
        for (String regex : regexes) {
            if (regex.contains(LLAMA3_DIGITS)) {
                return "llama-bpe";
            }
            if (regex.contains(QWEN2_DIGITS)) {
                return "qwen2";
            }
        }
        throw new IllegalArgumentException("pre_tokenizer: no Split regex of a supported kind (Llama 3 or Qwen2) in "
                + (regexes.isEmpty() ? "it" : regexes));
    }

    private static void collectRegexes(JsonNode node, List<String> out) {
        if (node.isObject()) {
            if ("Split".equals(node.path("type").asText()) && node.path("pattern").has("Regex")) {
                out.add(node.path("pattern").path("Regex").asText());
            }
            node.forEach(child -> collectRegexes(child, out));
        } else if (node.isArray()) {
            node.forEach(child -> collectRegexes(child, out));
        }
    }

    private static boolean looksSpecial(String token) {
        return token.length() > 4 && token.startsWith("<|") && token.endsWith("|>");
    }

    /** A token name (string or {"content": ...}) looked up in the vocabulary, else the numeric fallback. */
    private static Integer specialId(JsonNode name, Map<String, Integer> idOf, JsonNode fallbackId) {
        String text = name.isTextual() ? name.asText() : name.path("content").asText(null);
        if (text != null && idOf.containsKey(text)) {
            return idOf.get(text);
        }
        return fallbackId.isInt() ? fallbackId.asInt() : null;
    }

    /** True when the single-sequence template puts a special token first; null when there is no template. */
    private static Boolean templateStartsWithSpecial(JsonNode postProcessor) {
        List<JsonNode> templates = new ArrayList<>();
        collectTemplates(postProcessor, templates);
        if (templates.isEmpty()) {
            return null;
        }
        JsonNode single = templates.getFirst().path("single");
        return single.isArray() && !single.isEmpty() && single.get(0).has("SpecialToken");
    }

    private static void collectTemplates(JsonNode node, List<JsonNode> out) {
        if (node.isObject()) {
            if ("TemplateProcessing".equals(node.path("type").asText())) {
                out.add(node);
            }
            node.forEach(child -> collectTemplates(child, out));
        } else if (node.isArray()) {
            node.forEach(child -> collectTemplates(child, out));
        }
    }

    private static JsonNode readJson(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new ModelLoadException(file + ": not found");
        }
        try {
            return JSON.readTree(file.toFile());
        } catch (JsonProcessingException e) {
            throw new ModelLoadException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new ModelLoadException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static JsonNode readOptional(Path file) {
        return Files.isRegularFile(file) ? readJson(file) : JSON.createObjectNode();
    }
}

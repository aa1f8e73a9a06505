package io.stepstream.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Token texts, types and scores, the text-to-id index, and the first step every llama.cpp tokenizer takes: cutting
 * special tokens out of the text. Immutable.
 */
final class Vocabulary {
    private final String[] texts;
    private final TokenType[] types;
    private final float[] scores;
    private final Map<String, Integer> ids;
    /** Special tokens, longest text (in UTF-8 bytes) first: that order decides overlaps, as in llama.cpp. */
    private final int[] specialsLongestFirst;

    Vocabulary(TokenizerSpec spec) {
        int n = spec.tokens().size();
        texts = spec.tokens().toArray(new String[0]);
        types = new TokenType[n];
        scores = new float[n];
        ids = HashMap.newHashMap(n);
        List<Integer> specials = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (texts[i] == null) {
                throw new IllegalArgumentException("tokenizer.ggml.tokens[" + i + "] is null");
            }
            types[i] = spec.type(i);
            scores[i] = spec.score(i);
            Integer previous = ids.putIfAbsent(texts[i], i);
            if (previous != null) {
                throw new IllegalArgumentException("tokenizer.ggml.tokens has '" + texts[i] + "' twice: ids "
                        + previous + " and " + i);
            }
            if (types[i].special() && !texts[i].isEmpty()) {
                specials.add(i);
            }
        }
        specialsLongestFirst = specials.stream()
                .sorted(Comparator.comparingInt((Integer id) -> -utf8Length(texts[id])).thenComparingInt(id -> id))
                .mapToInt(Integer::intValue).toArray();
    }

    private static int utf8Length(String s) {
        return s.getBytes(StandardCharsets.UTF_8).length;
    }

    int size() {
        return texts.length;
    }

    String text(int id) {
        return texts[id];
    }

    TokenType type(int id) {
        return types[id];
    }

    float score(int id) {
        return scores[id];
    }

    /** The id of a token text, or -1. */
    int id(String text) {
        Integer id = ids.get(text);
        return id == null ? -1 : id;
    }

    void checkId(int id) {
        if (id < 0 || id >= texts.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + texts.length + ")");
        }
    }

    /** A piece of the input: either text still to tokenize ({@code token} -1) or a special token found in it. */
    record Fragment(String text, int token) {
        boolean isText() {
            return token < 0;
        }
    }

    /**
     * Cuts special tokens out of text: for each special token, longest first, every occurrence in every remaining
     * text fragment becomes a token fragment. Without parseSpecial only USER_DEFINED tokens are cut (CONTROL and
     * UNKNOWN ones stay plain text), as llama.cpp does.
     */
    List<Fragment> partition(String text, boolean parseSpecial) {
        List<Fragment> fragments = new ArrayList<>();
        if (text.isEmpty()) {
            return fragments;
        }
        fragments.add(new Fragment(text, -1));
        for (int special : specialsLongestFirst) {
            if (!parseSpecial && types[special] != TokenType.USER_DEFINED) {
                continue;
            }
            String needle = texts[special];
            List<Fragment> next = new ArrayList<>(fragments.size() + 2);
            for (Fragment f : fragments) {
                if (!f.isText()) {
                    next.add(f);
                    continue;
                }
                String t = f.text();
                int from = 0;
                for (int at = t.indexOf(needle); at >= 0; at = t.indexOf(needle, from)) {
                    if (at > from) {
                        next.add(new Fragment(t.substring(from, at), -1));
                    }
                    next.add(new Fragment(null, special));
                    from = at + needle.length();
                }
                if (from < t.length()) {
                    next.add(new Fragment(from == 0 ? t : t.substring(from), -1));
                }
            }
            fragments = next;
        }
        return fragments;
    }

    @Override
    public String toString() {
        return "Vocabulary[" + texts.length + " tokens, " + specialsLongestFirst.length + " special: "
                + Arrays.toString(Arrays.copyOf(specialsLongestFirst, Math.min(8, specialsLongestFirst.length))) + "]";
    }
}

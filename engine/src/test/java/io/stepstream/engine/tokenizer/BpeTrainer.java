package io.stepstream.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small deterministic byte-level BPE trainer for test vocabularies: words from the Llama 3 pre-tokenizer, written
 * with GPT-2's byte table, and then repeatedly the most frequent adjacent pair is merged (ties to the
 * lexicographically smallest pair) until every word is one token or maxMerges is reached. Plain and quadratic on purpose: a reference, not a fast path.
 */
final class BpeTrainer {
    /** The trained vocabulary: the 256 byte characters first, then merged tokens in merge order. */
    record Result(List<String> tokens, List<String> merges) {
    }

    private BpeTrainer() {
    }

    static Result train(String corpus, int maxMerges) {
        Map<String, Integer> wordCounts = new LinkedHashMap<>();
        for (String w : PreTokenizer.LLAMA3.words(corpus)) {
            wordCounts.merge(Gpt2Bytes.encode(w.getBytes(StandardCharsets.UTF_8)), 1, Integer::sum);
        }
        List<List<String>> words = new ArrayList<>();
        List<Integer> counts = new ArrayList<>();
        wordCounts.forEach((w, c) -> {
            List<String> symbols = new ArrayList<>();
            for (char ch : w.toCharArray()) {
                symbols.add(String.valueOf(ch));
            }
            words.add(symbols);
            counts.add(c);
        });

        List<String> tokens = new ArrayList<>();
        java.util.Set<String> known = new java.util.HashSet<>();
        for (int b = 0; b < 256; b++) {
            String t = Gpt2Bytes.encode(new byte[]{(byte) b});
            tokens.add(t);
            known.add(t);
        }
        List<String> merges = new ArrayList<>();
        for (int m = 0; m < maxMerges; m++) {
            Map<String, Integer> pairCounts = new HashMap<>();
            for (int i = 0; i < words.size(); i++) {
                List<String> s = words.get(i);
                for (int j = 0; j + 1 < s.size(); j++) {
                    pairCounts.merge(s.get(j) + ' ' + s.get(j + 1), counts.get(i), Integer::sum);
                }
            }
            String best = null;
            int bestCount = 0; // once frequent pairs run out, pairs seen once still merge: more long tokens
            for (Map.Entry<String, Integer> e : pairCounts.entrySet()) {
                int c = e.getValue();
                if (c > bestCount || (c == bestCount && best != null && e.getKey().compareTo(best) < 0)) {
                    best = e.getKey();
                    bestCount = c;
                }
            }
            if (best == null) {
                break;
            }
            int space = best.indexOf(' ');
            String left = best.substring(0, space);
            String right = best.substring(space + 1);
            merges.add(best);
            if (known.add(left + right)) {
                tokens.add(left + right);
            }
            for (List<String> s : words) {
                for (int j = 0; j + 1 < s.size(); j++) {
                    if (s.get(j).equals(left) && s.get(j + 1).equals(right)) {
                        s.set(j, left + right);
                        s.remove(j + 1);
                    }
                }
            }
        }
        return new Result(tokens, merges);
    }
}

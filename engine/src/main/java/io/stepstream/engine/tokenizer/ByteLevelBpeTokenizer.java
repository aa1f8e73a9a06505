package io.stepstream.engine.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * llama.cpp's byte-level BPE tokenizer ({@code tokenizer.ggml.model = "gpt2"}, Llama 3, Qwen2): each text fragment
 * is cut into words by the {@link PreTokenizer} the file names, each word's UTF-8 bytes are written with GPT-2's
 * byte-to-character table, and adjacent symbols are merged by merge rank (lowest first, ties to the leftmost).
 * With Llama 3's pre-tokenizer a word that is already a token is taken whole (ignore_merges). Defaults as in
 * llama.cpp: BOS and EOS id 11, add BOS for Llama 3 only, never EOS.
 */
public final class ByteLevelBpeTokenizer extends VocabTokenizer {
    private final PreTokenizer preTokenizer;
    private final Map<String, Integer> mergeRanks;
    private final boolean ignoreMerges;

    public ByteLevelBpeTokenizer(TokenizerSpec spec) {
        super(spec, 11, 11, PreTokenizer.forName(spec.pre()) == PreTokenizer.LLAMA3, false);
        this.preTokenizer = PreTokenizer.forName(spec.pre());
        this.ignoreMerges = preTokenizer == PreTokenizer.LLAMA3;
        if (spec.merges() == null) {
            throw new IllegalArgumentException("tokenizer.ggml.merges is missing; a gpt2 tokenizer needs merges");
        }
        List<String> merges = spec.merges();
        this.mergeRanks = HashMap.newHashMap(merges.size());
        for (int rank = 0; rank < merges.size(); rank++) {
            String line = merges.get(rank);
            // split at the first space after the first character, as llama.cpp does; lines without one never match
            int space = line == null ? -1 : line.indexOf(' ', 1);
            if (space >= 0) {
                mergeRanks.putIfAbsent(line, rank);
            }
        }
    }

    public PreTokenizer preTokenizer() {
        return preTokenizer;
    }

    @Override
    boolean addsSpacePrefix() {
        return false;
    }

    @Override
    boolean cleansSpaces() {
        return preTokenizer == PreTokenizer.LLAMA3; // llama.cpp turns clean_spaces off for qwen2
    }

    @Override
    void encodeFragments(List<Vocabulary.Fragment> fragments, IntList out) {
        List<int[]> words = new ArrayList<>();
        for (Vocabulary.Fragment f : fragments) {
            if (!f.isText()) {
                out.add(f.token());
                continue;
            }
            words.clear();
            preTokenizer.split(f.text().codePoints().toArray(), words);
            for (int[] word : words) {
                encodeWord(Gpt2Bytes.encode(new String(word, 0, word.length).getBytes(StandardCharsets.UTF_8)), out);
            }
        }
    }

    @Override
    byte[] normalPiece(int id) {
        return Gpt2Bytes.decode(vocab.text(id));
    }

    /** Merges one byte-level word; its characters are all in the BMP (one per byte). */
    private void encodeWord(String word, IntList out) {
        if (ignoreMerges && vocab.id(word) >= 0) {
            out.add(vocab.id(word));
            return;
        }
        int n = word.length();
        String[] symbols = new String[n];
        int[] next = new int[n];
        int[] prev = new int[n];
        for (int i = 0; i < n; i++) {
            symbols[i] = String.valueOf(word.charAt(i));
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        PriorityQueue<Candidate> heap = new PriorityQueue<>();
        for (int i = 1; i < n; i++) {
            offer(heap, symbols, i - 1, i);
        }
        while (!heap.isEmpty()) {
            Candidate c = heap.poll();
            if (symbols[c.left] == null || symbols[c.right] == null || next[c.left] != c.right
                    || !(symbols[c.left] + symbols[c.right]).equals(c.merged)) {
                continue; // a side has merged since this pair was offered
            }
            symbols[c.left] = c.merged;
            symbols[c.right] = null;
            int after = next[c.right];
            next[c.left] = after;
            if (after >= 0) {
                prev[after] = c.left;
            }
            offer(heap, symbols, prev[c.left], c.left);
            offer(heap, symbols, c.left, after);
        }
        for (int i = 0; i >= 0 && n > 0; i = next[i]) {
            int id = vocab.id(symbols[i]);
            if (id >= 0) {
                out.add(id);
                continue;
            }
            // llama.cpp looks each byte of the symbol's text up as a one-byte token and drops what it cannot find
            for (byte b : symbols[i].getBytes(StandardCharsets.UTF_8)) {
                int single = b >= 0 ? vocab.id(String.valueOf((char) b)) : -1;
                if (single >= 0) {
                    out.add(single);
                }
            }
        }
    }

    private void offer(PriorityQueue<Candidate> heap, String[] symbols, int left, int right) {
        if (left < 0 || right < 0) {
            return;
        }
        Integer rank = mergeRanks.get(symbols[left] + ' ' + symbols[right]);
        if (rank != null) {
            heap.add(new Candidate(left, right, symbols[left] + symbols[right], rank));
        }
    }

    private record Candidate(int left, int right, String merged, int rank) implements Comparable<Candidate> {
        @Override
        public int compareTo(Candidate o) {
            return rank != o.rank ? Integer.compare(rank, o.rank) : Integer.compare(left, o.left);
        }
    }
}

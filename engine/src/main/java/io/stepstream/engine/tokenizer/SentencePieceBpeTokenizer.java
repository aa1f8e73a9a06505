package io.stepstream.engine.tokenizer;

import java.util.List;
import java.util.PriorityQueue;

/**
 * llama.cpp's SentencePiece BPE tokenizer ({@code tokenizer.ggml.model = "llama"}, Llama 2 and relatives). A text
 * fragment at the start or right after a special token gets a space in front (add_space_prefix, default true),
 * spaces become U+2581, the fragment is split into code points, and the adjacent pair whose concatenation is a token
 * with the highest score is merged until none is left (ties go to the leftmost pair). A code point that is no token
 * falls back to its UTF-8 bytes as {@code <0xHH>} tokens. Defaults: BOS 1, EOS 2, add BOS, no EOS.
 */
public final class SentencePieceBpeTokenizer extends VocabTokenizer {
    static final char SPACE_MARK = '\u2581';

    private final boolean addSpacePrefix;

    public SentencePieceBpeTokenizer(TokenizerSpec spec) {
        super(spec, 1, 2, true, false);
        this.addSpacePrefix = spec.addSpacePrefix() == null || spec.addSpacePrefix();
    }

    @Override
    boolean addsSpacePrefix() {
        return addSpacePrefix;
    }

    @Override
    boolean cleansSpaces() {
        return false;
    }

    @Override
    void encodeFragments(List<Vocabulary.Fragment> fragments, IntList out) {
        boolean afterSpecial = true; // the first fragment is prefixed too
        for (Vocabulary.Fragment f : fragments) {
            if (!f.isText()) {
                out.add(f.token());
                afterSpecial = true;
                continue;
            }
            String text = addSpacePrefix && afterSpecial ? " " + f.text() : f.text();
            encodeText(text.replace(' ', SPACE_MARK), out);
            afterSpecial = false;
        }
    }

    @Override
    byte[] normalPiece(int id) {
        return utf8(vocab.text(id).replace(SPACE_MARK, ' '));
    }

    /** Symbols are code points in a linked list; a heap of candidate merges holds (score desc, left asc). */
    private void encodeText(String text, IntList out) {
        int[] cps = text.codePoints().toArray();
        int n = cps.length;
        if (n == 0) {
            return;
        }
        String[] symbols = new String[n];
        int[] next = new int[n];
        int[] prev = new int[n];
        for (int i = 0; i < n; i++) {
            symbols[i] = Character.toString(cps[i]);
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        PriorityQueue<Candidate> heap = new PriorityQueue<>();
        for (int i = 1; i < n; i++) {
            offer(heap, symbols, i - 1, i);
        }
        while (!heap.isEmpty()) {
            Candidate c = heap.poll();
            // stale when either side has merged since: its text is no longer what the candidate joined
            if (symbols[c.left] == null || symbols[c.right] == null || next[c.left] != c.right
                    || symbols[c.left].length() + symbols[c.right].length() != c.merged.length()) {
                continue;
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
        for (int i = 0; i >= 0; i = next[i]) {
            int id = vocab.id(symbols[i]);
            if (id >= 0) {
                out.add(id);
            } else {
                for (byte b : utf8(symbols[i])) {
                    out.add(byteToken(b & 0xFF));
                }
            }
        }
    }

    private void offer(PriorityQueue<Candidate> heap, String[] symbols, int left, int right) {
        if (left < 0 || right < 0) {
            return;
        }
        String merged = symbols[left] + symbols[right];
        int id = vocab.id(merged);
        if (id >= 0) {
            heap.add(new Candidate(left, right, merged, vocab.score(id)));
        }
    }

    /** The {@code <0xHH>} token of a byte, else a token whose text is that single (ASCII) byte. */
    private int byteToken(int b) {
        int id = vocab.id(String.format("<0x%02X>", b));
        if (id < 0 && b < 0x80) {
            id = vocab.id(String.valueOf((char) b));
        }
        if (id < 0) {
            throw new IllegalStateException(String.format(
                    "the vocabulary has no byte-fallback token <0x%02X> for a character it cannot spell", b));
        }
        return id;
    }

    private record Candidate(int left, int right, String merged, float score) implements Comparable<Candidate> {
        @Override
        public int compareTo(Candidate o) {
            if (score != o.score) {
                return score > o.score ? -1 : 1;
            }
            return Integer.compare(left, o.left);
        }
    }
}

package io.stepstream.engine;

import java.util.List;

/**
 * The work of one forward pass: for each sequence, a run of tokens to append at the end of its KV cache.
 * A decode is an entry of length 1; a prefill chunk is a longer one.
 */
public record ForwardBatch(List<Entry> entries) {
    public ForwardBatch {
        entries = List.copyOf(entries);
    }

    /** Tokens {@code tokens[offset .. offset+length)} appended to {@code cache}. */
    public record Entry(KvCache cache, int[] tokens, int offset, int length) {
        public Entry {
            if (length < 1 || offset < 0 || offset + length > tokens.length) {
                throw new IllegalArgumentException("bad token range " + offset + "+" + length + " of " + tokens.length);
            }
        }
    }

    public int totalTokens() {
        int n = 0;
        for (Entry e : entries) {
            n += e.length();
        }
        return n;
    }
}

package io.stepstream.engine.llama2;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.Tokenizer;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * The llama2.c tokenizer: a vocabulary of byte strings with merge scores. Encoding follows run.c's
 * {@code encode}: optional BOS, a dummy-prefix " " token for non-empty text, one token per UTF-8 codepoint
 * (or its bytes as byte-fallback ids b+3), then repeatedly the adjacent pair whose concatenation is in the
 * vocabulary with the highest score is merged (strictly higher wins, so the leftmost of equal scores),
 * optional EOS. Vocabulary strings are kept as exact bytes (keys are ISO-8859-1 strings, one char per byte).
 */
public final class Llama2Tokenizer implements Tokenizer {
    public static final int UNK = 0;
    public static final int BOS = 1;
    public static final int EOS = 2;
    /** run.c's merge loop starts from this score, so pairs scoring at or below it never merge. */
    private static final float NO_MERGE_SCORE = -1e10f;

    private final byte[][] pieces;
    private final float[] scores;
    private final Map<String, Integer> ids;
    private final int maxTokenLength;

    public Llama2Tokenizer(byte[][] pieces, float[] scores, int maxTokenLength) {
        if (pieces.length != scores.length || pieces.length <= EOS) {
            throw new IllegalArgumentException("need at least 3 tokens with one score each");
        }
        this.pieces = pieces.clone();
        this.scores = scores.clone();
        this.maxTokenLength = maxTokenLength;
        this.ids = new HashMap<>(pieces.length * 2);
        for (int i = 0; i < pieces.length; i++) {
            // run.c finds duplicates by binary search (either may win); we keep the lowest id.
            ids.putIfAbsent(key(pieces[i]), i);
        }
    }

    /** Reads tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length, bytes. */
    public static Llama2Tokenizer read(Path file, int vocabSize) {
        try (ByteSource src = ByteSource.open(file)) {
            return read(src, vocabSize);
        }
    }

    public static Llama2Tokenizer read(String name, byte[] bytes, int vocabSize) {
        try (ByteSource src = ByteSource.of(name, bytes)) {
            return read(src, vocabSize);
        }
    }

    private static Llama2Tokenizer read(ByteSource src, int vocabSize) {
        String file = src.name();
        int maxLen = src.readInt("max_token_length");
        if (maxLen <= 0) {
            throw new ModelLoadException(file + ": bad tokenizer: max_token_length must be positive, got " + maxLen);
        }
        byte[][] pieces = new byte[vocabSize][];
        float[] scores = new float[vocabSize];
        for (int i = 0; i < vocabSize; i++) {
            scores[i] = src.readFloat("score of token " + i);
            int len = src.readInt("length of token " + i);
            if (len < 0 || len > src.remaining()) {
                throw new ModelLoadException(file + ": truncated or corrupt tokenizer: token " + i + " claims "
                        + len + " bytes, " + src.remaining() + " left (the model's vocab_size is " + vocabSize + ")");
            }
            pieces[i] = src.readBytes(len, "token " + i);
        }
        if (src.remaining() != 0) {
            throw new ModelLoadException(file + ": tokenizer does not match the model: " + src.remaining()
                    + " bytes left after the model's " + vocabSize + " tokens");
        }
        return new Llama2Tokenizer(pieces, scores, maxLen);
    }

    private static String key(byte[] bytes) {
        return new String(bytes, StandardCharsets.ISO_8859_1);
    }

    @Override
    public int vocabSize() {
        return pieces.length;
    }

    @Override
    public int bosId() {
        return BOS;
    }

    @Override
    public int eosId() {
        return EOS;
    }

    public int maxTokenLength() {
        return maxTokenLength;
    }

    public float score(int id) {
        checkId(id);
        return scores[id];
    }

    /** The vocabulary entry of a token, exactly as stored. */
    public byte[] piece(int id) {
        checkId(id);
        return pieces[id].clone();
    }

    @Override
    public int[] encode(String text, boolean addBos, boolean addEos) {
        if (text == null) {
            throw new IllegalArgumentException("text must not be null");
        }
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        int[] tokens = new int[utf8.length + 3];
        int n = 0;
        if (addBos) {
            tokens[n++] = BOS;
        }
        if (utf8.length > 0) {
            n = appendPiece(tokens, n, new byte[]{' '}, 1);
        }
        byte[] cp = new byte[4];
        int cpLen = 0;
        for (int i = 0; i < utf8.length; i++) {
            if ((utf8[i] & 0xC0) != 0x80) {
                cpLen = 0; // a lead byte starts a new codepoint
            }
            cp[cpLen++] = utf8[i];
            boolean nextContinues = i + 1 < utf8.length && (utf8[i + 1] & 0xC0) == 0x80;
            if (nextContinues && cpLen < 4) {
                continue;
            }
            n = appendPiece(tokens, n, cp, cpLen);
            cpLen = 0;
        }
        n = mergePairs(tokens, n);
        if (addEos) {
            tokens[n++] = EOS;
        }
        return Arrays.copyOf(tokens, n);
    }

    private int appendPiece(int[] tokens, int n, byte[] bytes, int len) {
        Integer id = ids.get(new String(bytes, 0, len, StandardCharsets.ISO_8859_1));
        if (id != null) {
            tokens[n++] = id;
            return n;
        }
        for (int i = 0; i < len; i++) {
            int fallback = (bytes[i] & 0xFF) + 3;
            if (fallback >= pieces.length) {
                throw new IllegalStateException("byte fallback id " + fallback + " is outside the vocabulary of "
                        + pieces.length + " tokens");
            }
            tokens[n++] = fallback;
        }
        return n;
    }

    /**
     * run.c rescans all adjacent pairs after every merge (quadratic). The same choice - highest score,
     * leftmost among equal scores - comes from a heap ordered by (score desc, original position asc) over a
     * linked list of the live tokens, with stale candidates skipped when popped.
     */
    private int mergePairs(int[] tokens, int n) {
        if (n < 2) {
            return n;
        }
        int[] next = new int[n];
        int[] prev = new int[n];
        boolean[] dead = new boolean[n];
        for (int i = 0; i < n; i++) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        PriorityQueue<Candidate> heap = new PriorityQueue<>();
        for (int i = 0; i + 1 < n; i++) {
            offer(heap, tokens, i, i + 1);
        }
        while (!heap.isEmpty()) {
            Candidate c = heap.poll();
            if (dead[c.left] || dead[c.right] || next[c.left] != c.right
                    || tokens[c.left] != c.leftToken || tokens[c.right] != c.rightToken) {
                continue; // one side has merged since this pair was offered
            }
            tokens[c.left] = c.merged;
            dead[c.right] = true;
            int after = next[c.right];
            next[c.left] = after;
            if (after >= 0) {
                prev[after] = c.left;
                offer(heap, tokens, c.left, after);
            }
            if (prev[c.left] >= 0) {
                offer(heap, tokens, prev[c.left], c.left);
            }
        }
        int m = 0;
        for (int i = 0; i >= 0; i = next[i]) {
            tokens[m++] = tokens[i];
        }
        return m;
    }

    private void offer(PriorityQueue<Candidate> heap, int[] tokens, int left, int right) {
        byte[] a = pieces[tokens[left]];
        byte[] b = pieces[tokens[right]];
        byte[] ab = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, ab, a.length, b.length);
        Integer id = ids.get(key(ab));
        if (id != null && scores[id] > NO_MERGE_SCORE) {
            heap.add(new Candidate(left, right, tokens[left], tokens[right], id, scores[id]));
        }
    }

    private record Candidate(int left, int right, int leftToken, int rightToken, int merged, float score)
            implements Comparable<Candidate> {
        @Override
        public int compareTo(Candidate o) {
            // float comparison as in C: -0.0 equals 0.0, so such ties fall to the leftmost pair
            if (score > o.score) {
                return -1;
            }
            if (score < o.score) {
                return 1;
            }
            return Integer.compare(left, o.left);
        }
    }

    @Override
    public byte[] decodeBytes(int previous, int token) {
        checkId(token);
        byte[] piece = pieces[token];
        int start = previous == BOS && piece.length > 0 && piece[0] == ' ' ? 1 : 0;
        int hex = rawByte(piece, start);
        if (hex >= 0) {
            return new byte[]{(byte) hex};
        }
        return Arrays.copyOfRange(piece, start, piece.length);
    }

    /** The byte of a piece written "<0xHH>", else -1. */
    private static int rawByte(byte[] p, int start) {
        if (p.length - start != 6 || p[start] != '<' || p[start + 1] != '0' || p[start + 2] != 'x'
                || p[start + 5] != '>') {
            return -1;
        }
        int hi = Character.digit(p[start + 3], 16);
        int lo = Character.digit(p[start + 4], 16);
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }

    private void checkId(int id) {
        if (id < 0 || id >= pieces.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, "
                    + pieces.length + ")");
        }
    }
}

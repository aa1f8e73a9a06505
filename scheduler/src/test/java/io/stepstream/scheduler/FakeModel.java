package io.stepstream.scheduler;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.ToIntFunction;

/**
 * A deterministic stand-in for a language model, for scheduler tests before a real engine is at hand: the
 * logits after a token depend on the WHOLE history in that sequence's cache (a hash of it), so feeding a wrong
 * token, a wrong position or another sequence's cache changes what comes next. Optionally a script forces the
 * next token of a history. Its tokenizer has letters, space-letters and '.', with llama2.c's rule that the
 * leading space of a piece right after BOS is dropped.
 */
public final class FakeModel implements Model {
    static final int UNK = 0;
    public static final int BOS = 1;
    public static final int EOS = 2;
    static final int VOCAB = 3 + 26 + 26 + 1;

    private final ModelConfig config;
    private String name = "fake";
    private final FakeTokenizer tokenizer = new FakeTokenizer();
    /** Given the history so far (cache contents), the forced next token or -1 to use the hash logits. */
    private final ToIntFunction<int[]> script;
    /** Added to EOS and BOS logits so that hash-driven stories run long enough to be interesting. */
    private final float stopBias;

    FakeModel(int contextLength, ToIntFunction<int[]> script, float stopBias) {
        this.config = new ModelConfig(8, 16, 1, 2, 2, VOCAB, contextLength, 1e-5f, 10000f, true);
        this.script = script;
        this.stopBias = stopBias;
    }

    /** Hash-driven, EOS/BOS rare. */
    public static FakeModel hashed(int contextLength) {
        return new FakeModel(contextLength, h -> -1, -3f);
    }

    /** Emits {@code text} (letters, spaces, '.') token by token after any prompt, then EOS. */
    public static FakeModel scripted(int contextLength, String text) {
        int[] script = new FakeTokenizer().encode(text, false, false);
        return new FakeModel(contextLength, history -> {
            int generated = generatedSoFar(history);
            return generated < script.length ? script[generated] : EOS;
        }, 0f);
    }

    /** In scripted tests every prompt is [BOS] plus letters before a '.', and the output follows the '.'. */
    private static int generatedSoFar(int[] history) {
        for (int i = 0; i < history.length; i++) {
            if (history[i] == FakeTokenizer.DOT) {
                return history.length - i - 1;
            }
        }
        throw new IllegalArgumentException("scripted prompts must end with '.'");
    }

    @Override
    public String name() {
        return name;
    }

    /** Renames this model (several fakes served side by side need their own names). */
    public FakeModel named(String newName) {
        this.name = newName;
        return this;
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    @Override
    public KvCache newKvCache() {
        return new FakeCache(config.contextLength());
    }

    @Override
    public void forward(ForwardBatch batch, float[][] logits) {
        for (int i = 0; i < batch.entries().size(); i++) {
            ForwardBatch.Entry e = batch.entries().get(i);
            FakeCache cache = (FakeCache) e.cache();
            cache.append(e.tokens(), e.offset(), e.length());
            fillLogits(cache.history(), logits[i]);
        }
    }

    private void fillLogits(int[] history, float[] out) {
        long h = 0x9E3779B97F4A7C15L;
        for (int t : history) {
            h = mix(h ^ t);
        }
        for (int v = 0; v < out.length; v++) {
            long x = mix(h + v * 0xBF58476D1CE4E5B9L);
            out[v] = ((x >>> 40) / (float) (1 << 24)) * 8f - 4f;
        }
        out[EOS] += stopBias;
        out[BOS] += stopBias;
        out[UNK] = -10f;
        int forced = script.applyAsInt(history);
        if (forced >= 0) {
            out[forced] = 20f;
        }
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Records the tokens written to it; 64 bytes per position, taken in blocks of 16 positions. */
    static final class FakeCache implements KvCache {
        private final int capacity;
        private int[] tokens = new int[16];
        private int length;
        private boolean closed;

        FakeCache(int capacity) {
            this.capacity = capacity;
        }

        synchronized void append(int[] src, int offset, int n) {
            if (closed) {
                throw new IllegalStateException("forward on a closed cache");
            }
            if (length + n > capacity) {
                throw new IllegalStateException("cache overflow: " + length + " + " + n + " > " + capacity);
            }
            if (length + n > tokens.length) {
                tokens = Arrays.copyOf(tokens, Math.max(length + n, tokens.length * 2));
            }
            System.arraycopy(src, offset, tokens, length, n);
            length += n;
        }

        synchronized int[] history() {
            return Arrays.copyOf(tokens, length);
        }

        @Override
        public synchronized int length() {
            return length;
        }

        @Override
        public int capacity() {
            return capacity;
        }

        @Override
        public synchronized long bytes() {
            return closed ? 0 : ((length + 15) / 16) * 16L * 64L;
        }

        @Override
        public synchronized void close() {
            if (closed) {
                throw new IllegalStateException("cache closed twice");
            }
            closed = true;
        }
    }

    /** Letters, space+letter and '.' pieces; encodes text greedily into them. */
    static final class FakeTokenizer implements Tokenizer {
        static final int DOT = VOCAB - 1;

        @Override
        public int vocabSize() {
            return VOCAB;
        }

        @Override
        public int bosId() {
            return BOS;
        }

        @Override
        public int eosId() {
            return EOS;
        }

        static String piece(int token) {
            if (token >= 3 && token < 29) {
                return String.valueOf((char) ('a' + token - 3));
            }
            if (token >= 29 && token < 55) {
                return " " + (char) ('a' + token - 29);
            }
            if (token == DOT) {
                return ".";
            }
            return "";
        }

        @Override
        public int[] encode(String text, boolean addBos, boolean addEos) {
            List<Integer> ids = new ArrayList<>();
            if (addBos) {
                ids.add(BOS);
            }
            for (int i = 0; i < text.length(); i++) {
                char c = text.charAt(i);
                if (c == ' ' && i + 1 < text.length() && Character.isLowerCase(text.charAt(i + 1))) {
                    ids.add(29 + text.charAt(++i) - 'a');
                } else if (c >= 'a' && c <= 'z') {
                    ids.add(3 + c - 'a');
                } else if (c == '.') {
                    ids.add(DOT);
                } else {
                    ids.add(UNK);
                }
            }
            if (addEos) {
                ids.add(EOS);
            }
            return ids.stream().mapToInt(Integer::intValue).toArray();
        }

        @Override
        public byte[] decodeBytes(int previous, int token) {
            String p = piece(token);
            if (previous == BOS && p.startsWith(" ")) {
                p = p.substring(1);
            }
            return p.getBytes(StandardCharsets.UTF_8);
        }
    }
}

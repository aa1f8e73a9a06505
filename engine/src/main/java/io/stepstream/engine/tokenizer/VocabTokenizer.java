package io.stepstream.engine.tokenizer;

import io.stepstream.engine.Tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * What llama.cpp's tokenizers share: special tokens are cut out of the text first, each remaining text fragment is
 * encoded by the model's own algorithm, BOS/EOS follow the file's flags; pieces and detokenization follow
 * llama_token_to_piece and llama_detokenize. Immutable and thread-safe.
 */
public abstract sealed class VocabTokenizer implements Tokenizer permits SentencePieceBpeTokenizer, ByteLevelBpeTokenizer {
    private static final int NO_TOKEN = -1;

    final Vocabulary vocab;
    private final int bos;
    private final int eos;
    private final boolean addBos;
    private final boolean addEos;

    VocabTokenizer(TokenizerSpec spec, int defaultBos, int defaultEos, boolean defaultAddBos, boolean defaultAddEos) {
        this.vocab = new Vocabulary(spec);
        this.bos = specialId(spec.bosId(), defaultBos, "tokenizer.ggml.bos_token_id");
        this.eos = specialId(spec.eosId(), defaultEos, "tokenizer.ggml.eos_token_id");
        this.addBos = spec.addBos() != null ? spec.addBos() : defaultAddBos;
        this.addEos = spec.addEos() != null ? spec.addEos() : defaultAddEos;
        if (addBos && bos == NO_TOKEN) {
            throw new IllegalArgumentException("tokenizer.ggml.add_bos_token is true, but there is no BOS token");
        }
        if (addEos && eos == NO_TOKEN) {
            throw new IllegalArgumentException("tokenizer.ggml.add_eos_token is true, but there is no EOS token");
        }
    }

    /** A special id from the file if it is in range, else the model kind's default if that is, else none. */
    private int specialId(Integer fromFile, int fallback, String key) {
        if (fromFile != null) {
            if (fromFile < 0 || fromFile >= vocab.size()) {
                throw new IllegalArgumentException(key + " = " + fromFile + " is outside the vocabulary [0, "
                        + vocab.size() + ")");
            }
            return fromFile;
        }
        return fallback >= 0 && fallback < vocab.size() ? fallback : NO_TOKEN;
    }

    @Override
    public int vocabSize() {
        return vocab.size();
    }

    /** The BOS id, or -1 when the vocabulary has none. */
    @Override
    public int bosId() {
        return bos;
    }

    /** The EOS id, or -1 when the vocabulary has none. */
    @Override
    public int eosId() {
        return eos;
    }

    /** Whether the file asks for BOS in front of a prompt (tokenizer.ggml.add_bos_token or the model default). */
    public boolean addsBos() {
        return addBos;
    }

    public boolean addsEos() {
        return addEos;
    }

    public String tokenText(int id) {
        vocab.checkId(id);
        return vocab.text(id);
    }

    public TokenType tokenType(int id) {
        vocab.checkId(id);
        return vocab.type(id);
    }

    public float score(int id) {
        vocab.checkId(id);
        return vocab.score(id);
    }

    /** The id of a token text, or -1. */
    public int tokenId(String text) {
        return vocab.id(text);
    }

    /**
     * llama_tokenize: with addSpecial, BOS/EOS as the file says; with parseSpecial, CONTROL and UNKNOWN tokens
     * written in the text become those tokens (USER_DEFINED ones always do).
     */
    public int[] tokenize(String text, boolean addSpecial, boolean parseSpecial) {
        return encode(text, addSpecial && addBos, addSpecial && addEos, parseSpecial);
    }

    /** Encodes text with special tokens in it recognised, as llama.cpp does for a prompt; BOS/EOS as asked. */
    @Override
    public int[] encode(String text, boolean addBos, boolean addEos) {
        return encode(text, addBos, addEos, true);
    }

    private int[] encode(String text, boolean withBos, boolean withEos, boolean parseSpecial) {
        if (text == null) {
            throw new IllegalArgumentException("text must not be null");
        }
        if ((withBos && bos == NO_TOKEN) || (withEos && eos == NO_TOKEN)) {
            throw new IllegalStateException("this vocabulary has no " + (withBos && bos == NO_TOKEN ? "BOS" : "EOS")
                    + " token");
        }
        IntList out = new IntList();
        if (withBos) {
            out.add(bos);
        }
        encodeFragments(vocab.partition(text, parseSpecial), out);
        if (withEos) {
            out.add(eos);
        }
        return out.toArray();
    }

    /** Appends the ids of the fragments: special-token fragments as they are, text by the model's algorithm. */
    abstract void encodeFragments(List<Vocabulary.Fragment> fragments, IntList out);

    /** The bytes of a NORMAL token. */
    abstract byte[] normalPiece(int id);

    /** Whether decoding strips the space the encoder put in front of the text (SentencePiece's add_space_prefix). */
    abstract boolean addsSpacePrefix();

    /** Whether llama_detokenize tidies spaces before punctuation and contractions for this vocabulary. */
    abstract boolean cleansSpaces();

    /**
     * llama_token_to_piece with lstrip 0: CONTROL and UNKNOWN tokens give their text only when special is set,
     * USER_DEFINED tokens their text, BYTE tokens their byte, NORMAL tokens their decoded text, others nothing.
     */
    public byte[] piece(int id, boolean special) {
        vocab.checkId(id);
        TokenType type = vocab.type(id);
        return switch (type) {
            case CONTROL, UNKNOWN -> special ? utf8(vocab.text(id)) : new byte[0];
            case USER_DEFINED -> utf8(vocab.text(id));
            case NORMAL -> normalPiece(id);
            case BYTE -> new byte[]{(byte) byteValue(vocab.text(id))};
            case UNUSED, UNDEFINED -> new byte[0];
        };
    }

    /** The byte of a "<0xHH>" token, read as strtol reads the two hex digits (what does not parse counts as 0). */
    static int byteValue(String text) {
        int value = 0;
        for (int i = 3; i < Math.min(5, text.length()); i++) {
            int d = Character.digit(text.charAt(i), 16);
            if (d < 0) {
                break;
            }
            value = value * 16 + d;
        }
        return value;
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * The piece of a token in a stream; right after BOS a SentencePiece vocabulary drops the leading space its
     * encoder added (llama.cpp strips it the same way from the first piece it detokenizes).
     */
    @Override
    public byte[] decodeBytes(int previous, int token) {
        byte[] p = piece(token, false);
        if (previous == bos && bos != NO_TOKEN && addsSpacePrefix() && p.length > 0 && p[0] == ' ') {
            return java.util.Arrays.copyOfRange(p, 1, p.length);
        }
        return p;
    }

    /**
     * llama_detokenize: removeSpecial drops a leading BOS and trailing EOS where the file adds them (and keeps the
     * first piece's leading space after a dropped BOS); otherwise the first piece loses one leading space when the
     * vocabulary adds a space prefix. unparseSpecial writes CONTROL/UNKNOWN tokens as text. Byte-level vocabularies
     * that ask for it then get llama.cpp's space clean-up.
     */
    public byte[] detokenize(int[] tokens, boolean removeSpecial, boolean unparseSpecial) {
        int from = 0;
        int to = tokens.length;
        boolean stripSpace = addsSpacePrefix();
        if (removeSpecial && addBos && to > from && tokens[from] == bos) {
            stripSpace = false;
            from++;
        }
        if (removeSpecial && addEos && to > from && tokens[to - 1] == eos) {
            to--;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = from; i < to; i++) {
            byte[] p = piece(tokens[i], unparseSpecial);
            int skip = stripSpace && p.length > 0 && p[0] == ' ' ? 1 : 0;
            out.write(p, skip, p.length - skip);
            stripSpace = false;
        }
        byte[] text = out.toByteArray();
        return cleansSpaces() ? cleanSpaces(text) : text;
    }

    /**
     * llama.cpp's three passes, in place as there (the second pass blanks the space after a lone apostrophe, which
     * the next character then sees as its predecessor): drop a space before ? ! . , ; collapse " ' " to "'";
     * drop the space before 's 'm 're 've.
     */
    static byte[] cleanSpaces(byte[] text) {
        byte[] t = text.clone();
        int total = t.length;

        int n = total;
        total = n > 0 ? 1 : 0;
        for (int i = 1; i < n; i++) {
            byte x = t[i];
            if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) {
                total--;
            }
            t[total++] = x;
        }

        n = total;
        total = n > 0 ? 1 : 0;
        for (int i = 1; i < n; i++) {
            byte x = t[i];
            if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
                total--;
                t[++i] = 0;
            }
            t[total++] = x;
        }

        n = total;
        total = n > 0 ? 1 : 0;
        for (int i = 1; i < n; i++) {
            byte x = t[i];
            if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
                byte x1 = t[i + 1];
                if (x1 == 's' || x1 == 'm') {
                    total--;
                } else if (x1 != 't' && x1 != 'd' && i + 2 < n) {
                    byte x2 = t[i + 2];
                    if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) {
                        total--;
                    }
                }
            }
            t[total++] = x;
        }
        return java.util.Arrays.copyOf(t, total);
    }
}

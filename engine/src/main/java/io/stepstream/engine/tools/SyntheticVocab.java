package io.stepstream.engine.tools;

import io.stepstream.engine.tokenizer.TokenType;
import io.stepstream.engine.tokenizer.TokenizerSpec;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.SequencedSet;

/**
 * Small made-up vocabularies of the two kinds llama.cpp tokenizes, for synthetic models: every printable ASCII
 * character, then pieces of common English words grown one character at a time (so each piece is a merge of two
 * shorter ones), until the vocabulary has the asked-for size (unused placeholder tokens fill any rest).
 */
public final class SyntheticVocab {
    private static final String[] WORDS = ("the and was she he they it to a of in that with his her for on you"
            + " one day time little big play said there what were had have are not but saw went friends happy"
            + " once upon girl boy named lily tom ball park tree dog cat sun water want help look love mom dad"
            + " from this then could would will can all so very good new more make some like just know take come").split(" ");

    private SyntheticVocab() {
    }

    /** Word pieces in the order they become mergeable: each is a known piece plus one character. */
    private static SequencedSet<String> pieces(String space) {
        SequencedSet<String> out = new LinkedHashSet<>();
        out.add(space);
        for (char ch = 33; ch < 127; ch++) {
            out.add(String.valueOf(ch));
        }
        for (int len = 2; len <= 12; len++) {
            for (String word : WORDS) {
                String w = space + word;
                if (w.length() >= len) {
                    out.add(w.substring(0, len));
                }
            }
        }
        return out;
    }

    /**
     * A SentencePiece-style vocabulary (tokenizer.ggml.model "llama"): &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256 byte
     * tokens, then pieces with descending scores (longer pieces merge later, as in a trained model).
     */
    public static TokenizerSpec sentencePiece(int size) {
        if (size < 3 + 256 + 96) {
            throw new IllegalArgumentException("a SentencePiece vocabulary needs at least " + (3 + 256 + 96)
                    + " tokens, got " + size);
        }
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
        List<Integer> types = new ArrayList<>(List.of(TokenType.UNKNOWN.code, TokenType.CONTROL.code,
                TokenType.CONTROL.code));
        for (int b = 0; b < 256; b++) {
            tokens.add(String.format("<0x%02X>", b));
            types.add(TokenType.BYTE.code);
        }
        for (String p : pieces("\u2581")) {
            if (tokens.size() == size) {
                break;
            }
            tokens.add(p);
            types.add(TokenType.NORMAL.code);
        }
        while (tokens.size() < size) {
            tokens.add("<unused" + tokens.size() + ">");
            types.add(TokenType.UNUSED.code);
        }
        float[] scores = new float[size];
        for (int i = 0; i < size; i++) {
            scores[i] = types.get(i) == TokenType.NORMAL.code ? -i : 0f;
        }
        return new TokenizerSpec(TokenizerSpec.SENTENCEPIECE, null, tokens, scores,
                types.stream().mapToInt(Integer::intValue).toArray(), null, 1, 2, 0, true, false, true);
    }

    /**
     * A byte-level BPE vocabulary (tokenizer.ggml.model "gpt2", pre-tokenizer {@code pre}): the 256 byte symbols,
     * then merged pieces with their merges in rank order, then {@code <|endoftext|>} as BOS and EOS.
     */
    public static TokenizerSpec byteLevel(int size, String pre) {
        if (size < 256 + 96 + 1) {
            throw new IllegalArgumentException("a byte-level vocabulary needs at least " + (256 + 96 + 1)
                    + " tokens, got " + size);
        }
        List<String> tokens = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            tokens.add(byteSymbol(b));
        }
        LinkedHashSet<String> known = new LinkedHashSet<>(tokens);
        List<String> merges = new ArrayList<>();
        String space = byteSymbol(' ');
        for (String p : pieces(space)) {
            if (tokens.size() == size - 1) {
                break;
            }
            if (known.contains(p)) {
                continue;
            }
            // the piece is its prefix (already a token) plus its last character
            String left = p.substring(0, p.length() - 1);
            merges.add(left + " " + p.substring(p.length() - 1));
            tokens.add(p);
            known.add(p);
        }
        while (tokens.size() < size - 1) {
            tokens.add("[unused" + tokens.size() + "]");
        }
        tokens.add("<|endoftext|>");
        int[] types = new int[size];
        java.util.Arrays.fill(types, TokenType.NORMAL.code);
        for (int i = 0; i < size; i++) {
            if (tokens.get(i).startsWith("[unused")) {
                types[i] = TokenType.UNUSED.code;
            }
        }
        types[size - 1] = TokenType.CONTROL.code;
        return new TokenizerSpec(TokenizerSpec.BYTE_LEVEL_BPE, pre, tokens, null, types, merges, size - 1, size - 1,
                null, false, false, null);
    }

    /** GPT-2's printable stand-in for a byte: printable Latin-1 bytes stand for themselves, the rest map past 255. */
    static String byteSymbol(int b) {
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            return String.valueOf((char) b);
        }
        int n = 0;
        for (int x = 0; x < b; x++) {
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) {
                n++;
            }
        }
        return String.valueOf((char) (256 + n));
    }
}

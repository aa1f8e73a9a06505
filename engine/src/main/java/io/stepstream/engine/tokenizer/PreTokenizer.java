package io.stepstream.engine.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.stepstream.engine.tokenizer.CodepointClass.LETTER;
import static io.stepstream.engine.tokenizer.CodepointClass.NUMBER;
import static io.stepstream.engine.tokenizer.CodepointClass.WHITESPACE;
import static io.stepstream.engine.tokenizer.CodepointClass.is;

/**
 * How a byte-level BPE model cuts text into words before merging, named as GGUF's {@code tokenizer.ggml.pre}.
 * Both follow llama.cpp (b4916) rather than the regex engines of Hugging Face, because the goal is llama.cpp's ids:
 * <ul>
 *   <li>LLAMA3: the Llama 3 pattern {@code (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+}, which llama.cpp runs as a hand-written scanner; the scanner
 *   is reproduced here, including where it differs from the regex.</li>
 *   <li>QWEN2: the same pattern with single digits ({@code \p{N}}), which llama.cpp runs with std::regex over a
 *   "collapsed" text: every non-ASCII code point becomes one stand-in character per class (whitespace becomes
 *   U+000B, letters U+00D2, numbers U+00D1, punctuation U+00D3, marks U+00D4, symbols U+00D5, others U+00D0), and
 *   the classes in the pattern are rewritten to ASCII ranges plus the stand-in. The same is done here with
 *   java.util.regex, whose backtracking alternation and \s set match ECMAScript's.</li>
 * </ul>
 */
public enum PreTokenizer {
    LLAMA3 {
        @Override
        void split(int[] cps, List<int[]> words) {
            splitLlama3(cps, words);
        }
    },
    QWEN2 {
        @Override
        void split(int[] cps, List<int[]> words) {
            splitCollapsed(cps, QWEN2_COLLAPSED, words);
        }
    };

    private static final String LETTER_CLASS = "\u00D2A-Za-z";
    private static final String NUMBER_CLASS = "\u00D10-9";
    private static final Pattern QWEN2_COLLAPSED = Pattern.compile(
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
                    + "|[^\\r\\n" + LETTER_CLASS + NUMBER_CLASS + "]?[" + LETTER_CLASS + "]+"
                    + "|[" + NUMBER_CLASS + "]"
                    + "| ?[^\\s" + LETTER_CLASS + NUMBER_CLASS + "]+[\\r\\n]*"
                    + "|\\s*[\\r\\n]+"
                    + "|\\s+(?!\\S)"
                    + "|\\s+");

    /** The pre-tokenizer for a GGUF {@code tokenizer.ggml.pre} value. */
    public static PreTokenizer forName(String pre) {
        if (pre == null) {
            throw new IllegalArgumentException("tokenizer.ggml.pre is missing; supported: llama3, llama-bpe, qwen2");
        }
        return switch (pre.toLowerCase(Locale.ROOT)) {
            case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe" -> LLAMA3;
            case "qwen2", "deepseek-r1-qwen", "stablelm2", "megrez" -> QWEN2;
            default -> throw new IllegalArgumentException("tokenizer.ggml.pre '" + pre
                    + "' is not supported; supported: llama3, llama-bpe, qwen2");
        };
    }

    /** Splits text (as code points) into words, appended as code point arrays; every code point lands in one. */
    abstract void split(int[] cps, List<int[]> words);

    /** The words of a text, for tests and tools. */
    public List<String> words(String text) {
        List<int[]> words = new ArrayList<>();
        split(text.codePoints().toArray(), words);
        List<String> out = new ArrayList<>(words.size());
        for (int[] w : words) {
            out.add(new String(w, 0, w.length));
        }
        return out;
    }

    private static final int NONE = -1;

    /** A cursor over one run of code points; outside the run there is no code point and no class. */
    private static final class Scan {
        final int[] cps;
        final List<int[]> words;
        int emitted;

        Scan(int[] cps, List<int[]> words) {
            this.cps = cps;
            this.words = words;
        }

        int cp(int pos) {
            return pos >= 0 && pos < cps.length ? cps[pos] : NONE;
        }

        int flags(int pos) {
            return pos >= 0 && pos < cps.length ? CodepointClass.of(cps[pos]) : 0;
        }

        /** Ends the current word at end (nothing if it would be empty); returns its length. */
        int emit(int end) {
            int len = end - emitted;
            if (len > 0) {
                words.add(java.util.Arrays.copyOfRange(cps, emitted, end));
            }
            emitted = end;
            return len;
        }
    }

    private static boolean isLineBreak(int cp) {
        return cp == '\r' || cp == '\n';
    }

    private static void splitLlama3(int[] cps, List<int[]> words) {
        Scan s = new Scan(cps, words);
        int end = cps.length;
        int pos = 0;
        while (pos < end) {
            int cp = s.cp(pos);
            int flags = s.flags(pos);

            // 's 't 're 've 'm 'll 'd, either case
            if (cp == '\'' && pos + 1 < end) {
                int next = Character.toLowerCase(s.cp(pos + 1));
                if (next == 's' || next == 't' || next == 'm' || next == 'd') {
                    pos += s.emit(pos + 2);
                    continue;
                }
                if (pos + 2 < end) {
                    int next2 = Character.toLowerCase(s.cp(pos + 2));
                    if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l')) {
                        pos += s.emit(pos + 3);
                        continue;
                    }
                }
            }

            // [^\r\n\p{L}\p{N}]?\p{L}+ : the scanner takes the lead character whatever it is (even a letter)
            if (!isLineBreak(cp) && !is(flags, NUMBER)) {
                if (is(flags, LETTER) || is(s.flags(pos + 1), LETTER)) {
                    pos++;
                    while (is(s.flags(pos), LETTER)) {
                        pos++;
                    }
                    s.emit(pos);
                    continue;
                }
            }

            // \p{N}{1,3}
            if (is(flags, NUMBER)) {
                int groupStart = pos;
                while (is(s.flags(pos), NUMBER)) {
                    pos++;
                    if (pos - groupStart >= 3) {
                        s.emit(pos);
                        groupStart = pos;
                    }
                }
                s.emit(pos);
                continue;
            }

            //  ?[^\s\p{L}\p{N}]+[\r\n]*  (the scanner tests the first character's own class for being known)
            int runFlags = cp == ' ' ? s.flags(pos + 1) : flags;
            if (!is(runFlags, WHITESPACE | LETTER | NUMBER) && flags != 0) {
                if (cp == ' ') {
                    pos++;
                }
                while (!is(runFlags, WHITESPACE | LETTER | NUMBER) && runFlags != 0) {
                    runFlags = s.flags(++pos);
                }
                while (isLineBreak(s.cp(pos))) {
                    pos++;
                }
                s.emit(pos);
                continue;
            }

            int spaces = 0;
            int afterLastBreak = 0;
            while (is(s.flags(pos + spaces), WHITESPACE)) {
                if (isLineBreak(s.cp(pos + spaces))) {
                    afterLastBreak = pos + spaces + 1;
                }
                spaces++;
            }
            // \s*[\r\n]+
            if (afterLastBreak > 0) {
                pos = afterLastBreak;
                s.emit(pos);
                continue;
            }
            // \s+(?!\S): leave the last space to lead the next word
            if (spaces > 1 && s.cp(pos + spaces) != NONE) {
                pos += spaces - 1;
                s.emit(pos);
                continue;
            }
            // \s+
            if (spaces > 0) {
                pos += spaces;
                s.emit(pos);
                continue;
            }
            s.emit(++pos);
        }
    }

    /** One stand-in character per code point, so a regex with ASCII classes sees Unicode classes. */
    private static char collapse(int cp) {
        if (cp < 128) {
            return (char) cp;
        }
        int flags = CodepointClass.of(cp);
        if (is(flags, WHITESPACE)) {
            return '\u000B';
        }
        if (is(flags, NUMBER)) {
            return '\u00D1';
        }
        if (is(flags, LETTER)) {
            return '\u00D2';
        }
        if (is(flags, CodepointClass.PUNCTUATION)) {
            return '\u00D3';
        }
        if (is(flags, CodepointClass.MARK)) {
            return '\u00D4';
        }
        if (is(flags, CodepointClass.SYMBOL)) {
            return '\u00D5';
        }
        return '\u00D0';
    }

    private static void splitCollapsed(int[] cps, Pattern pattern, List<int[]> words) {
        char[] collapsed = new char[cps.length];
        for (int i = 0; i < cps.length; i++) {
            collapsed[i] = collapse(cps[i]);
        }
        Scan s = new Scan(cps, words);
        Matcher m = pattern.matcher(java.nio.CharBuffer.wrap(collapsed));
        while (m.find()) {
            s.emit(m.start()); // text no alternative matched stays a word of its own, as in llama.cpp
            s.emit(m.end());
        }
        s.emit(cps.length);
    }
}

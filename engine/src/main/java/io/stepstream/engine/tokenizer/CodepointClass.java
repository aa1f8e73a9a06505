package io.stepstream.engine.tokenizer;

/**
 * The character classes the pre-tokenizer regexes of llama.cpp test: \p{L}, \p{N}, \p{P}, \p{M}, \p{S}, \p{C} by
 * Unicode general category, and \s as the Unicode White_Space property (not Java's Character.isWhitespace, which
 * drops U+00A0 and adds U+001C..U+001F). Unassigned code points count as \p{C}, as in Python's regex module that
 * generated llama.cpp's tables.
 */
final class CodepointClass {
    static final int NUMBER = 1;
    static final int LETTER = 1 << 1;
    static final int SEPARATOR = 1 << 2;
    static final int MARK = 1 << 3;
    static final int PUNCTUATION = 1 << 4;
    static final int SYMBOL = 1 << 5;
    static final int CONTROL = 1 << 6;
    static final int WHITESPACE = 1 << 7;

    private CodepointClass() {
    }

    static int of(int cp) {
        int category = switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                 Character.MODIFIER_LETTER, Character.OTHER_LETTER -> LETTER;
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> NUMBER;
            case Character.NON_SPACING_MARK, Character.ENCLOSING_MARK, Character.COMBINING_SPACING_MARK -> MARK;
            case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
                 Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
                 Character.OTHER_PUNCTUATION -> PUNCTUATION;
            case Character.MATH_SYMBOL, Character.CURRENCY_SYMBOL, Character.MODIFIER_SYMBOL,
                 Character.OTHER_SYMBOL -> SYMBOL;
            case Character.SPACE_SEPARATOR, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR -> SEPARATOR;
            default -> CONTROL; // Cc, Cf, Cs, Co and unassigned
        };
        return isWhiteSpace(cp) ? category | WHITESPACE : category;
    }

    /** Unicode's White_Space property. */
    static boolean isWhiteSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
                || cp == 0x205F || cp == 0x3000;
    }

    static boolean is(int flags, int mask) {
        return (flags & mask) != 0;
    }
}

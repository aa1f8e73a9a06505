package io.stepstream.engine.tokenizer;

/**
 * The token types of GGUF's {@code tokenizer.ggml.token_type} array (llama.cpp's llama_token_type codes), and the
 * attribute bits llama.cpp derives from them. Tokens typed CONTROL, UNKNOWN or USER_DEFINED are special: they are
 * found in the text before the model's own splitting runs.
 */
public enum TokenType {
    UNDEFINED(0, 0),
    NORMAL(1, 1 << 2),
    UNKNOWN(2, 1),
    CONTROL(3, 1 << 3),
    USER_DEFINED(4, 1 << 4),
    UNUSED(5, 1 << 1),
    BYTE(6, 1 << 5);

    /** The integer stored in GGUF files. */
    public final int code;
    /** llama.cpp's llama_token_attr bit for this type (UNDEFINED has none). */
    final int attribute;

    TokenType(int code, int attribute) {
        this.code = code;
        this.attribute = attribute;
    }

    /** The type of a GGUF code; codes llama.cpp does not know load as UNDEFINED, as they do there. */
    public static TokenType ofCode(int code) {
        for (TokenType t : values()) {
            if (t.code == code) {
                return t;
            }
        }
        return UNDEFINED;
    }

    boolean special() {
        return this == CONTROL || this == UNKNOWN || this == USER_DEFINED;
    }
}

package io.stepstream.engine;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Turns a stream of token ids into text pieces, holding back the bytes of a UTF-8 character that
 * byte-fallback tokens have only partly produced, so every piece is valid text. One per sequence.
 */
public final class StreamingDecoder {
    private final Tokenizer tokenizer;
    private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPLACE)
            .onUnmappableCharacter(CodingErrorAction.REPLACE);
    private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
    private int previous;

    public StreamingDecoder(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
        this.previous = tokenizer.bosId();
    }

    /** Sets the token that came before the first one pushed (BOS by default). */
    public StreamingDecoder after(int previousToken) {
        this.previous = previousToken;
        return this;
    }

    /** The text completed by this token; empty while a multi-byte character is still incomplete. */
    public String push(int token) {
        pending.writeBytes(tokenizer.decodeBytes(previous, token));
        previous = token;
        return drain(false);
    }

    /** Whatever is still held back, with incomplete characters replaced by U+FFFD. */
    public String flush() {
        return drain(true);
    }

    private String drain(boolean endOfInput) {
        byte[] bytes = pending.toByteArray();
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length + 1);
        utf8.reset();
        CoderResult result = utf8.decode(in, out, endOfInput);
        if (result.isOverflow()) {
            throw new IllegalStateException("UTF-8 output larger than input");
        }
        if (endOfInput) {
            utf8.flush(out);
        }
        pending.reset();
        pending.write(bytes, in.position(), in.remaining());
        out.flip();
        return out.toString();
    }
}

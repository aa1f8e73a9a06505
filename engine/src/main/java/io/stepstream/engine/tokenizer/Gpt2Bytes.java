package io.stepstream.engine.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * GPT-2's reversible byte-to-character table: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * (controls, space, DEL, the C1 range, NBSP, soft hyphen) get code points 256, 257, ... in byte order, so every
 * byte string becomes a string of visible characters with no spaces.
 */
final class Gpt2Bytes {
    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[512];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) next++;
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private Gpt2Bytes() {
    }

    /** The byte-level form of text: one character per UTF-8 byte. */
    static String encode(byte[] utf8) {
        char[] out = new char[utf8.length];
        for (int i = 0; i < utf8.length; i++) {
            out[i] = BYTE_TO_CHAR[utf8[i] & 0xFF];
        }
        return new String(out);
    }

    /** The byte a character stands for, or -1 when it is not one of the 256. */
    static int byteOf(int cp) {
        return cp >= 0 && cp < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[cp] : -1;
    }

    /**
     * The bytes a byte-level token text stands for. A character outside the table is written the way llama.cpp
     * writes it, as "[UNK_BYTE_0x..." with its UTF-8 bytes in hex and the whole token text, then "]".
     */
    static byte[] decode(String tokenText) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(tokenText.length());
        tokenText.codePoints().forEach(cp -> {
            int b = byteOf(cp);
            if (b >= 0) {
                out.write(b);
            } else {
                StringBuilder s = new StringBuilder("[UNK_BYTE_0x");
                for (byte u : Character.toString(cp).getBytes(StandardCharsets.UTF_8)) {
                    s.append(String.format("%02x", u & 0xFF));
                }
                s.append(tokenText).append(']');
                out.writeBytes(s.toString().getBytes(StandardCharsets.UTF_8));
            }
        });
        return out.toByteArray();
    }
}

package io.stepstream.engine;

import io.stepstream.engine.llama2.Llama2Tokenizer;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TokenizerTest {
    private static final String[] ALPHABET = {"a", "b", "e", "o", "t", "h", "L", "y", " ", " ", "  ", "\n", "\t",
            "0", "1", "7", ".", ",", "!", "é", "ü", "ж", "中", "€", "😀", "🦄", "\u0001"};

    /** A vocabulary read straight from the file bytes, for the reference encoder. */
    record Vocab(byte[][] pieces, float[] scores) {
        static Vocab parse(byte[] file, int size) {
            ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
            b.getInt();
            byte[][] pieces = new byte[size][];
            float[] scores = new float[size];
            for (int i = 0; i < size; i++) {
                scores[i] = b.getFloat();
                pieces[i] = new byte[b.getInt()];
                b.get(pieces[i]);
            }
            return new Vocab(pieces, scores);
        }

        /** Linear search, lowest id first. */
        int find(byte[] s) {
            for (int i = 0; i < pieces.length; i++) {
                if (Arrays.equals(pieces[i], s)) {
                    return i;
                }
            }
            return -1;
        }
    }

    /** Naive transcription of run.c encode: rescan every pair after every merge. */
    static int[] referenceEncode(Vocab v, String text, boolean bos, boolean eos) {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        List<Integer> toks = new ArrayList<>();
        if (bos) {
            toks.add(1);
        }
        if (b.length > 0) {
            toks.add(v.find(new byte[]{' '}));
        }
        int i = 0;
        while (i < b.length) {
            int j = i + 1;
            while (j < b.length && (b[j] & 0xC0) == 0x80 && j - i < 4) {
                j++;
            }
            byte[] cp = Arrays.copyOfRange(b, i, j);
            int id = v.find(cp);
            if (id >= 0) {
                toks.add(id);
            } else {
                for (byte x : cp) {
                    toks.add((x & 0xFF) + 3);
                }
            }
            i = j;
        }
        while (true) {
            float best = -1e10f;
            int bestAt = -1;
            int bestId = -1;
            for (int k = 0; k + 1 < toks.size(); k++) {
                byte[] a = v.pieces()[toks.get(k)];
                byte[] c = v.pieces()[toks.get(k + 1)];
                byte[] ab = Arrays.copyOf(a, a.length + c.length);
                System.arraycopy(c, 0, ab, a.length, c.length);
                int id = v.find(ab);
                if (id >= 0 && v.scores()[id] > best) {
                    best = v.scores()[id];
                    bestAt = k;
                    bestId = id;
                }
            }
            if (bestAt < 0) {
                break;
            }
            toks.set(bestAt, bestId);
            toks.remove(bestAt + 1);
        }
        if (eos) {
            toks.add(2);
        }
        return toks.stream().mapToInt(Integer::intValue).toArray();
    }

    static byte[] tok512Bytes() throws IOException {
        try (InputStream in = TokenizerTest.class.getResourceAsStream(
                "/io/stepstream/engine/models/stories260K/tok512.bin")) {
            return in.readAllBytes();
        }
    }

    static String randomText(Random rnd) {
        StringBuilder sb = new StringBuilder();
        int n = rnd.nextInt(25);
        for (int i = 0; i < n; i++) {
            sb.append(ALPHABET[rnd.nextInt(ALPHABET.length)]);
        }
        return sb.toString();
    }

    @Test
    void handCheckedIds() throws IOException {
        Tokenizer tok = Llama2Tokenizer.read("tok512", tok512Bytes(), 512);
        assertArrayEquals(new int[]{1}, tok.encode("", true, false));
        assertArrayEquals(new int[]{}, tok.encode("", false, false));
        assertArrayEquals(new int[]{1, 2}, tok.encode("", true, true));
        assertArrayEquals(new int[]{1, 259}, tok.encode("t", true, false)); // " t" is the first merge
        assertArrayEquals(new int[]{1, 403, 407, 261, 378, 2}, tok.encode("Once upon a time", true, true));
        // é is a vocabulary piece of its own; the emoji falls back to its four bytes (b + 3)
        assertArrayEquals(new int[]{270, 485, 306, 414, 410, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3},
                tok.encode("héllo 😀", false, false));
    }

    @Test
    void matchesNaiveReferenceOnRandomText() throws IOException {
        byte[] real = tok512Bytes();
        byte[] synthetic = TestCheckpoint.randomTokenizer(new Random(5), 320);
        for (byte[] file : List.of(real, synthetic)) {
            int size = file == real ? 512 : 320;
            Tokenizer tok = Llama2Tokenizer.read("test", file, size);
            Vocab vocab = Vocab.parse(file, size);
            Random rnd = new Random(size);
            int merged = 0;
            for (int i = 0; i < 400; i++) {
                String text = randomText(rnd);
                boolean bos = rnd.nextBoolean();
                boolean eos = rnd.nextBoolean();
                int[] expected = referenceEncode(vocab, text, bos, eos);
                assertArrayEquals(expected, tok.encode(text, bos, eos), () -> "text " + escape(text));
                if (expected.length < text.getBytes(StandardCharsets.UTF_8).length) {
                    merged++;
                }
            }
            assertTrue(merged > 100, "random texts must exercise merges: " + merged);
        }
    }

    @Test
    void decodeOfEncodeRoundTrips() throws IOException {
        Tokenizer tok = Llama2Tokenizer.read("tok512", tok512Bytes(), 512);
        Random rnd = new Random(9);
        for (int i = 0; i < 300; i++) {
            String text = randomText(rnd);
            int[] ids = tok.encode(text, true, false);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            for (int k = 1; k < ids.length; k++) {
                out.writeBytes(tok.decodeBytes(ids[k - 1], ids[k]));
            }
            assertEquals(text, out.toString(StandardCharsets.UTF_8), () -> "text " + escape(text));
        }
    }

    @Test
    void decodeBytesRules() throws IOException {
        Tokenizer tok = Llama2Tokenizer.read("tok512", tok512Bytes(), 512);
        assertArrayEquals(new byte[]{'t'}, tok.decodeBytes(1, 259), "leading space dropped after BOS");
        assertArrayEquals(new byte[]{' ', 't'}, tok.decodeBytes(300, 259));
        assertArrayEquals(new byte[]{(byte) 0xF0}, tok.decodeBytes(300, 0xF0 + 3), "<0xF0> is one raw byte");
        assertArrayEquals(new byte[]{'A'}, tok.decodeBytes(1, 'A' + 3));
        assertThrows(IllegalArgumentException.class, () -> tok.decodeBytes(1, 512));
        assertThrows(IllegalArgumentException.class, () -> tok.decodeBytes(1, -1));
    }

    @Test
    void streamingDecoderHoldsBackSplitCharacters() throws IOException {
        Tokenizer tok = Llama2Tokenizer.read("tok512", tok512Bytes(), 512);
        String text = "Hi 😀 and 中文 ж🦄!";
        int[] ids = tok.encode(text, true, false);
        StreamingDecoder decoder = tok.streamingDecoder();
        StringBuilder all = new StringBuilder();
        int emptyPieces = 0;
        for (int k = 1; k < ids.length; k++) {
            String piece = decoder.push(ids[k]);
            assertTrue(piece.codePoints().noneMatch(c -> c == 0xFFFD), "no replacement characters: " + piece);
            assertTrue(piece.isEmpty() || !Character.isHighSurrogate(piece.charAt(piece.length() - 1)));
            if (piece.isEmpty()) {
                emptyPieces++;
            }
            all.append(piece);
        }
        all.append(decoder.flush());
        assertEquals(text, all.toString());
        assertTrue(emptyPieces >= 3, "the emoji's first three fallback bytes produce no text yet");
    }

    private static String escape(String s) {
        StringBuilder sb = new StringBuilder();
        s.codePoints().forEach(c -> sb.append(c < 128 && c >= 32 ? String.valueOf((char) c) : "\\u{" + Integer.toHexString(c) + "}"));
        return sb.toString();
    }
}

package io.stepstream.engine.tokenizer;

import io.stepstream.engine.StreamingDecoder;
import io.stepstream.engine.reference.LlamaCpp;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Checks one of our tokenizers against llama.cpp on the same vocabulary file. */
final class LlamaCppComparison {
    private LlamaCppComparison() {
    }

    static String show(String s) {
        StringBuilder b = new StringBuilder("\"");
        s.codePoints().forEach(cp -> b.append(cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)
                ? String.format("\\u%04X", cp) : Character.toString(cp)));
        return b.append('"').toString();
    }

    /** Our ids must equal llama_tokenize's for every text, with and without add_special and parse_special. */
    static void sameIds(VocabTokenizer ours, LlamaCpp.Model ref, List<String> texts) {
        List<String> failures = new ArrayList<>();
        for (String text : texts) {
            for (boolean addSpecial : new boolean[]{true, false}) {
                for (boolean parseSpecial : new boolean[]{true, false}) {
                    int[] expected = ref.tokenize(text, addSpecial, parseSpecial);
                    int[] actual = ours.tokenize(text, addSpecial, parseSpecial);
                    if (!Arrays.equals(expected, actual)) {
                        failures.add(show(text) + " add_special=" + addSpecial + " parse_special=" + parseSpecial
                                + "\n   llama.cpp " + Arrays.toString(expected) + "\n   ours      "
                                + Arrays.toString(actual));
                    }
                }
            }
        }
        assertTrue(failures.isEmpty(), failures.size() + " mismatches, first ones:\n"
                + String.join("\n", failures.subList(0, Math.min(10, failures.size()))));
    }

    /** Every token's piece equals llama_token_to_piece (special on and off); after BOS the one-space lstrip. */
    static void samePieces(VocabTokenizer ours, LlamaCpp.Model ref) {
        assertEquals(ref.vocabSize(), ours.vocabSize(), "vocabulary size");
        for (int id = 0; id < ours.vocabSize(); id++) {
            for (boolean special : new boolean[]{true, false}) {
                assertArrayEquals(ref.tokenToPiece(id, 0, special), ours.piece(id, special),
                        "piece of token " + id + " " + show(ours.tokenText(id)) + " special=" + special);
            }
            int lstrip = ours instanceof SentencePieceBpeTokenizer ? 1 : 0;
            assertArrayEquals(ref.tokenToPiece(id, lstrip, false), ours.decodeBytes(ours.bosId(), id),
                    "piece after BOS of token " + id + " " + show(ours.tokenText(id)));
        }
    }

    /** llama_detokenize on the ids of each text, all four flag combinations. */
    static void sameDetokenize(VocabTokenizer ours, LlamaCpp.Model ref, List<String> texts) {
        for (String text : texts) {
            int[] ids = ours.tokenize(text, true, true);
            for (boolean removeSpecial : new boolean[]{true, false}) {
                for (boolean unparseSpecial : new boolean[]{true, false}) {
                    assertEquals(new String(ref.detokenize(ids, removeSpecial, unparseSpecial), StandardCharsets.UTF_8),
                            new String(ours.detokenize(ids, removeSpecial, unparseSpecial), StandardCharsets.UTF_8),
                            "detokenize of " + show(text) + " " + Arrays.toString(ids) + " remove_special="
                                    + removeSpecial + " unparse_special=" + unparseSpecial);
                }
            }
        }
    }

    /** Encoding with BOS then streaming the ids back gives the text again (specials written in it excepted). */
    static void roundTrips(VocabTokenizer ours, List<String> texts) {
        for (String text : texts) {
            int[] ids = ours.tokenize(text, false, false);
            StreamingDecoder decoder = ours.streamingDecoder();
            StringBuilder back = new StringBuilder();
            for (int id : ids) {
                back.append(decoder.push(id));
            }
            back.append(decoder.flush());
            assertEquals(text, back.toString(), "round trip of " + show(text) + " " + Arrays.toString(ids));
        }
    }
}

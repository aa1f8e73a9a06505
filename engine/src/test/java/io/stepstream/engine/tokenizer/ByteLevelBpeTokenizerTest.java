package io.stepstream.engine.tokenizer;

import io.stepstream.engine.reference.LlamaCpp;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A byte-level BPE trained here, with Llama 3's and Qwen2's pre-tokenizers, written as GGUF vocabularies: our ids,
 * pieces and text equal llama.cpp's.
 */
class ByteLevelBpeTokenizerTest {
    @TempDir
    static Path dir;

    private static ByteLevelBpeTokenizer llama3;
    private static LlamaCpp.Model llama3Ref;
    private static ByteLevelBpeTokenizer qwen2;
    private static LlamaCpp.Model qwen2Ref;

    @BeforeAll
    static void load() throws IOException {
        assumeTrue(LlamaCpp.available(), "llama.cpp reference needs linux-x86_64");
        TokenizerSpec l3 = TestVocabularies.byteLevel("llama-bpe", null);
        llama3 = (ByteLevelBpeTokenizer) l3.create();
        llama3Ref = LlamaCpp.get().load(TestVocabularies.writeGguf(l3, dir.resolve("llama3.gguf")), true);
        TokenizerSpec q2 = TestVocabularies.byteLevel("qwen2", false);
        qwen2 = (ByteLevelBpeTokenizer) q2.create();
        qwen2Ref = LlamaCpp.get().load(TestVocabularies.writeGguf(q2, dir.resolve("qwen2.gguf")), true);
    }

    @AfterAll
    static void free() {
        if (llama3Ref != null) {
            llama3Ref.close();
        }
        if (qwen2Ref != null) {
            qwen2Ref.close();
        }
    }

    @Test
    void vocabularyIsARealBpe() {
        assertTrue(TestVocabularies.trainedBpe().merges().size() >= 2000,
                "trained merges: " + TestVocabularies.trainedBpe().merges().size());
        assertEquals(PreTokenizer.LLAMA3, llama3.preTokenizer());
        assertEquals(PreTokenizer.QWEN2, qwen2.preTokenizer());
    }

    @Test
    void theGgufKeysReadBackGiveTheSameTokenizer() {
        for (String name : new String[]{"llama3.gguf", "qwen2.gguf"}) {
            try (var file = io.stepstream.engine.format.gguf.GgufFile.open(dir.resolve(name))) {
                var fromFile = (ByteLevelBpeTokenizer) TokenizerSpec.fromGguf(file).create();
                LlamaCppComparison.sameIds(fromFile, name.equals("llama3.gguf") ? llama3Ref : qwen2Ref,
                        TrickyStrings.FIXED);
            }
        }
    }

    @Test
    void specialIdsAndFlagsMatch() {
        for (var pair : List.of(new Object[]{llama3, llama3Ref}, new Object[]{qwen2, qwen2Ref})) {
            ByteLevelBpeTokenizer ours = (ByteLevelBpeTokenizer) pair[0];
            LlamaCpp.Model ref = (LlamaCpp.Model) pair[1];
            assertEquals(ref.vocabSize(), ours.vocabSize());
            assertEquals(ref.bos(), ours.bosId());
            assertEquals(ref.eos(), ours.eosId());
            assertEquals(ref.addsBos(), ours.addsBos(), "add_bos of " + ours.preTokenizer());
            assertEquals(ref.addsEos(), ours.addsEos());
        }
        assertTrue(llama3.addsBos(), "llama3 adds BOS by default");
    }

    @Test
    void digitsGroupByThreeForLlama3AndSingleForQwen2() {
        assertEquals(List.of("123", "456", "7"), PreTokenizer.LLAMA3.words("1234567"));
        assertEquals(List.of("1", "2", "3", "4"), PreTokenizer.QWEN2.words("1234"));
        LlamaCppComparison.sameIds(llama3, llama3Ref, List.of("1234567", "x 12345 y"));
        LlamaCppComparison.sameIds(qwen2, qwen2Ref, List.of("1234567", "x 12345 y"));
    }

    @Test
    void trickyStringsTokenizeAsLlamaCpp() {
        LlamaCppComparison.sameIds(llama3, llama3Ref, TrickyStrings.FIXED);
        LlamaCppComparison.sameIds(qwen2, qwen2Ref, TrickyStrings.FIXED);
    }

    @Test
    void randomStringsTokenizeAsLlamaCpp() {
        List<String> texts = TrickyStrings.random(System.nanoTime(), 400);
        LlamaCppComparison.sameIds(llama3, llama3Ref, texts);
        LlamaCppComparison.sameIds(qwen2, qwen2Ref, texts);
    }

    @Test
    void trainingTextTokenizesAsLlamaCpp() {
        List<String> lines = TrainingText.CORPUS.lines().toList();
        LlamaCppComparison.sameIds(llama3, llama3Ref, lines);
        LlamaCppComparison.sameIds(qwen2, qwen2Ref, lines);
        LlamaCppComparison.sameIds(llama3, llama3Ref, List.of(TrainingText.CORPUS));
        LlamaCppComparison.sameIds(qwen2, qwen2Ref, List.of(TrainingText.CORPUS));
    }

    @Test
    void piecesMatchLlamaCpp() {
        LlamaCppComparison.samePieces(llama3, llama3Ref);
        LlamaCppComparison.samePieces(qwen2, qwen2Ref);
    }

    @Test
    void detokenizeMatchesLlamaCpp() {
        LlamaCppComparison.sameDetokenize(llama3, llama3Ref, TrickyStrings.FIXED);
        LlamaCppComparison.sameDetokenize(qwen2, qwen2Ref, TrickyStrings.FIXED);
    }

    @Test
    void decodingRoundTrips() {
        List<String> random = TrickyStrings.random(System.nanoTime(), 200);
        for (ByteLevelBpeTokenizer t : List.of(llama3, qwen2)) {
            LlamaCppComparison.roundTrips(t, TrickyStrings.FIXED);
            LlamaCppComparison.roundTrips(t, random);
        }
    }
}

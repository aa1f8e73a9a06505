package io.stepstream.engine.tokenizer;

import io.stepstream.engine.reference.LlamaCpp;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** stories260K's tok512 as a SentencePiece GGUF vocabulary: our ids, pieces and text equal llama.cpp's. */
class SentencePieceBpeTokenizerTest {
    @TempDir
    static Path dir;

    private static SentencePieceBpeTokenizer ours;
    private static LlamaCpp.Model ref;
    /** The same vocabulary with add_space_prefix off and EOS added: the file's flags must steer both. */
    private static SentencePieceBpeTokenizer oursFlags;
    private static LlamaCpp.Model refFlags;

    @BeforeAll
    static void load() throws IOException {
        assumeTrue(LlamaCpp.available(), "llama.cpp reference needs linux-x86_64");
        TokenizerSpec spec = TestVocabularies.tok512(null, null, null);
        ours = (SentencePieceBpeTokenizer) spec.create();
        ref = LlamaCpp.get().load(TestVocabularies.writeGguf(spec, dir.resolve("tok512.gguf")), true);
        TokenizerSpec flags = TestVocabularies.tok512(true, true, false);
        oursFlags = (SentencePieceBpeTokenizer) flags.create();
        refFlags = LlamaCpp.get().load(TestVocabularies.writeGguf(flags, dir.resolve("tok512-flags.gguf")), true);
    }

    @AfterAll
    static void free() {
        if (ref != null) {
            ref.close();
        }
        if (refFlags != null) {
            refFlags.close();
        }
    }

    @Test
    void theGgufKeysReadBackGiveTheSameTokenizer() {
        for (String name : new String[]{"tok512.gguf", "tok512-flags.gguf"}) {
            try (var file = io.stepstream.engine.format.gguf.GgufFile.open(dir.resolve(name))) {
                var fromFile = (SentencePieceBpeTokenizer) TokenizerSpec.fromGguf(file).create();
                LlamaCppComparison.sameIds(fromFile, name.equals("tok512.gguf") ? ref : refFlags, TrickyStrings.FIXED);
            }
        }
    }

    @Test
    void specialIdsAndFlagsMatch() {
        assertEquals(ref.vocabSize(), ours.vocabSize());
        assertEquals(ref.bos(), ours.bosId());
        assertEquals(ref.eos(), ours.eosId());
        assertEquals(ref.addsBos(), ours.addsBos());
        assertEquals(ref.addsEos(), ours.addsEos());
        assertEquals(refFlags.addsEos(), oursFlags.addsEos());
        assertEquals(1, ours.bosId());
        assertEquals(2, ours.eosId());
    }

    @Test
    void trickyStringsTokenizeAsLlamaCpp() {
        LlamaCppComparison.sameIds(ours, ref, TrickyStrings.FIXED);
        LlamaCppComparison.sameIds(oursFlags, refFlags, TrickyStrings.FIXED);
    }

    @Test
    void randomStringsTokenizeAsLlamaCpp() {
        long seed = System.nanoTime();
        List<String> texts = TrickyStrings.random(seed, 400);
        LlamaCppComparison.sameIds(ours, ref, texts);
        LlamaCppComparison.sameIds(oursFlags, refFlags, texts.subList(0, 100));
    }

    @Test
    void storyTextTokenizesAsLlamaCpp() {
        LlamaCppComparison.sameIds(ours, ref, TrainingText.CORPUS.lines().toList());
        LlamaCppComparison.sameIds(ours, ref, List.of(TrainingText.CORPUS));
    }

    @Test
    void piecesMatchLlamaCpp() {
        LlamaCppComparison.samePieces(ours, ref);
    }

    @Test
    void detokenizeMatchesLlamaCpp() {
        LlamaCppComparison.sameDetokenize(ours, ref, TrickyStrings.FIXED);
        LlamaCppComparison.sameDetokenize(oursFlags, refFlags, TrickyStrings.FIXED);
    }

    @Test
    void decodingRoundTrips() {
        LlamaCppComparison.roundTrips(ours, TrickyStrings.FIXED);
        LlamaCppComparison.roundTrips(ours, TrickyStrings.random(System.nanoTime(), 200));
    }

    @Test
    void encodeRecognisesSpecialTokensAndAddsWhatIsAsked() {
        int[] ids = ours.encode("<s>hi", false, true);
        assertEquals(1, ids[0], "<s> in the text is BOS");
        assertEquals(2, ids[ids.length - 1]);
        assertArrayEquals(ref.tokenize("<s>hi", false, true), java.util.Arrays.copyOf(ids, ids.length - 1));
    }

    @Test
    void agreesWithTheLlama2cTokenizerOnPlainText() throws IOException {
        // run.c's encoder and llama.cpp's SPM differ only on special tokens and ties below -1e10
        var llama2 = io.stepstream.engine.llama2.Llama2Tokenizer.read(
                TestVocabularies.sharedModels().resolve("stories260K/tok512.bin"), 512);
        for (String text : TrainingText.CORPUS.lines().toList()) {
            if (!text.isEmpty()) {
                assertArrayEquals(llama2.encode(text, true, false), ours.encode(text, true, false),
                        LlamaCppComparison.show(text));
            }
        }
    }
}

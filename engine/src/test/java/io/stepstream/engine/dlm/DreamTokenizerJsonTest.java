package io.stepstream.engine.dlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.tokenizer.HfTokenizerJsonTest;
import io.stepstream.engine.tokenizer.TokenType;
import io.stepstream.engine.tokenizer.TokenizerSpec;
import io.stepstream.engine.tokenizer.VocabTokenizer;
import io.stepstream.engine.tools.DreamSynth;
import io.stepstream.engine.tools.SyntheticVocab;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A diffusion checkpoint as Hugging Face ships it, with tokenizer.json instead of a llama2.c tokenizer.bin: the
 * mask is one of the tokenizer's control tokens (Dream's "<|mask|>"), which the loader accepts, and generation from
 * the same ids is the same as with the tokenizer.bin folder; a mask that is ordinary text is refused.
 */
class DreamTokenizerJsonTest {
    /** A byte-level vocabulary of the text ids, plus the mask token at DreamSynth.MASK_ID typed as given. */
    private static TokenizerSpec vocabWithMask(TokenType maskType) {
        TokenizerSpec text = SyntheticVocab.byteLevel(DreamSynth.TEXT_VOCAB, "qwen2");
        List<String> tokens = new ArrayList<>(text.tokens());
        tokens.add("<|mask|>");
        int[] types = java.util.Arrays.copyOf(text.tokenTypes(), tokens.size());
        types[DreamSynth.MASK_ID] = maskType.code;
        return new TokenizerSpec(TokenizerSpec.BYTE_LEVEL_BPE, "qwen2", tokens, null, types, text.merges(),
                text.bosId(), text.eosId(), null, false, false, null);
    }

    /** The DreamSynth folder with its tokenizer.bin replaced by a tokenizer.json (config.json kept as written). */
    private static Path withTokenizerJson(Path dir, Path scratch, TokenType maskType) throws IOException {
        DreamSynth.write(dir, DreamSynth.Shape.DREAM_TINY, 7);
        Files.createDirectories(scratch);
        HfTokenizerJsonTest.writeHf(vocabWithMask(maskType), scratch, false, false);
        Files.copy(scratch.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        Files.delete(dir.resolve("tokenizer.bin"));
        return dir;
    }

    private static int[] generate(DiffusionModel m, int[] prompt) {
        DreamParams p = new DreamParams(12, 6, 0.0, null, null, DreamAlgorithm.ENTROPY, null, DreamParams.DEFAULT_EPS,
                0L);
        DreamGeneration g = DreamGeneration.start(m, prompt, p);
        float[][] logits = {new float[g.logitsLength()]};
        while (!g.done()) {
            m.forward(List.of(g.nextInput()), logits);
            g.apply(logits[0]);
        }
        return g.canvas();
    }

    @Test
    void aTokenizerJsonWithTheMaskAsControlTokenLoadsAndGeneratesAsTheBinFolder(@TempDir Path tmp)
            throws IOException {
        Path json = withTokenizerJson(tmp.resolve("json"), tmp.resolve("scratch"), TokenType.CONTROL);
        Path bin = tmp.resolve("bin");
        DreamSynth.write(bin, DreamSynth.Shape.DREAM_TINY, 7);
        ModelOptions one = ModelOptions.defaults().withComputeThreads(1);
        try (DiffusionModel a = Models.loadDiffusion(json.toString(), one);
             DiffusionModel b = Models.loadDiffusion(bin.toString(), one)) {
            assertEquals(DreamSynth.TEXT_VOCAB + 1, a.tokenizer().vocabSize());
            assertEquals(TokenType.CONTROL, ((VocabTokenizer) a.tokenizer()).tokenType(a.maskId()));
            int[] spelled = a.tokenizer().encode("a <|mask|> b", false, false);
            assertTrue(java.util.Arrays.stream(spelled).anyMatch(id -> id == a.maskId()),
                    "the control token is recognised in text, which is why requests must refuse it");
            int[] prompt = {5, 77, 140, 9, 300};
            assertArrayEquals(generate(b, prompt), generate(a, prompt));
        }
    }

    @Test
    void aMaskThatIsOrdinaryTextIsRefused(@TempDir Path tmp) throws IOException {
        Path json = withTokenizerJson(tmp.resolve("json"), tmp.resolve("scratch"), TokenType.NORMAL);
        var e = assertThrows(ModelLoadException.class, () -> Models.loadDiffusion(json.toString()));
        assertTrue(e.getMessage().contains("mask id " + DreamSynth.MASK_ID), e.getMessage());
    }
}

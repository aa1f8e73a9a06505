package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.dlm.DiffusionFamily;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DreamAlgorithm;
import io.stepstream.engine.dlm.DreamGeneration;
import io.stepstream.engine.dlm.DreamParams;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code stepstream synth --shape dream-tiny DIR}, then {@code generate --model DIR --alg ...} in this process. */
class DreamCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Dream alone on the folder's model: generated ids before the first EOS, without mask ids. */
    private static List<Integer> alone(Path dir, String prompt, DreamParams p) {
        try (DiffusionModel m = Models.loadDiffusion(dir.toString(), ModelOptions.defaults().withComputeThreads(1))) {
            assertEquals(DiffusionFamily.DREAM, m.family());
            DreamGeneration gen = DreamGeneration.start(m, m.tokenizer().encode(prompt, true, false), p);
            float[][] logits = {new float[gen.logitsLength()]};
            while (!gen.done()) {
                m.forward(List.of(gen.nextInput()), logits);
                gen.apply(logits[0]);
            }
            List<Integer> ids = new ArrayList<>();
            for (int t : gen.generated()) {
                if (t == m.tokenizer().eosId()) {
                    break;
                }
                if (t != m.maskId()) {
                    ids.add(t);
                }
            }
            return ids;
        }
    }

    private static List<Integer> tokenIds(String jsonLines) throws Exception {
        List<Integer> ids = new ArrayList<>();
        List<String> lines = jsonLines.lines().toList();
        for (String line : lines.subList(0, lines.size() - 1)) {
            ids.add(JSON.readTree(line).get("token_id").asInt());
        }
        JsonNode last = JSON.readTree(lines.getLast());
        assertTrue(last.has("finish_reason"), lines.getLast());
        return ids;
    }

    @Test
    void synthWritesADreamFolderThatGenerateServes(@TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("dream");
        var synth = RealEngineCliTest.cli("synth", "--shape", "dream-tiny", "--seed", "4", dir.toString());
        assertEquals(0, synth.exitCode(), synth.err());
        assertTrue(Files.isRegularFile(dir.resolve("model.safetensors")) && Files.isRegularFile(dir.resolve(
                "tokenizer.bin")) && Files.readString(dir.resolve("config.json")).contains("\"Dream\""));

        var greedy = RealEngineCliTest.cli("generate", "--model", dir.toString(), "--alg", "entropy", "--gen-length",
                "16", "--steps", "8", "--json", "Once upon a time");
        assertEquals(0, greedy.exitCode(), greedy.err());
        List<Integer> want = alone(dir, "Once upon a time", DreamParams.greedy(16, 8, DreamAlgorithm.ENTROPY));
        assertTrue(want.size() > 2, "a few tokens before any EOS: " + want);
        assertEquals(want, tokenIds(greedy.out()));

        var sampled = RealEngineCliTest.cli("generate", "--model", dir.toString(), "--alg", "topk_margin",
                "--alg-temp", "0.5", "--eps", "0.01", "--temperature", "0.5", "--top-p", "0.9", "--top-k", "40",
                "--seed", "3", "--gen-length", "12", "--steps", "6", "--json", "The sun");
        assertEquals(0, sampled.exitCode(), sampled.err());
        assertEquals(alone(dir, "The sun", new DreamParams(12, 6, 0.5, (double) 0.9f, 40, DreamAlgorithm.TOPK_MARGIN,
                0.5, 0.01, 3L)), tokenIds(sampled.out()));

        var bad = RealEngineCliTest.cli("generate", "--model", dir.toString(), "--alg", "sideways", "x");
        assertEquals(2, bad.exitCode());
        assertTrue(bad.err().contains("diffusion.alg: alg must be one of"), bad.err());
        var llada = RealEngineCliTest.cli("generate", "--model", dir.toString(), "--block-length", "8", "x");
        assertEquals(2, llada.exitCode());
        assertTrue(llada.err().contains("diffusion.block_length"), llada.err());
        var badShape = RealEngineCliTest.cli("synth", "--shape", "dream-tiny", "--type", "q8_0", tmp.resolve("q")
                .toString());
        assertEquals(2, badShape.exitCode());
        assertTrue(badShape.err().contains("--type"), badShape.err());
    }
}

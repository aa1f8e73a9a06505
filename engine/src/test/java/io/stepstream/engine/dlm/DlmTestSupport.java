package io.stepstream.engine.dlm;

import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.StreamingDecoder;
import io.stepstream.engine.Tokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

/** Shared pieces of the diffusion tests: the shipped model, its float64 reference, a driver and a decoder. */
final class DlmTestSupport {
    private static DiffusionModel model;
    private static ReferenceDlm reference;

    private DlmTestSupport() {
    }

    /** The embedded tinystories-dlm, loaded once per test JVM (tests run one class at a time). */
    static synchronized DiffusionModel model() {
        if (model == null) {
            model = Models.loadDiffusion("tinystories-dlm", ModelOptions.defaults());
        }
        return model;
    }

    /** The reference reads the model from the engine's resources folder (the same bytes as the jar). */
    static synchronized ReferenceDlm reference() {
        if (reference == null) {
            try {
                reference = new ReferenceDlm(resourceDir());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return reference;
    }

    static Path resourceDir() {
        Path dir = Path.of(System.getProperty("user.dir"))
                .resolve("src/main/resources/io/stepstream/engine/models/tinystories-dlm");
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("run the tests from the engine module: " + dir + " not found");
        }
        return dir;
    }

    /** Drives one generation to the end alone, one forward per step. */
    static LladaGeneration run(DiffusionModel m, LladaGeneration gen) {
        float[][] logits = {new float[gen.logitsLength()]};
        while (!gen.done()) {
            m.forward(List.of(gen.nextInput()), logits);
            gen.apply(logits[0]);
        }
        return gen;
    }

    /** A random prompt of {@code length} ids in [1, vocab - 2]: never id 0, never the mask (the last id). */
    static int[] randomPrompt(int length, int vocab, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] p = new int[length];
        for (int i = 0; i < length; i++) {
            p[i] = 1 + r.nextInt(vocab - 2);
        }
        return p;
    }

    /**
     * A step's logits: {@code rows} rows of {@code vocab} gaussians (sd 2) at the start of {@code length} floats,
     * about a third of the rows peaked on one id by {@code peak} + [0, 5), so that thresholds and confidence order
     * matter.
     */
    static float[] randomLogits(int rows, int length, int vocab, int peak, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] l = new float[length];
        for (int row = 0; row < rows; row++) {
            for (int id = 0; id < vocab; id++) {
                l[row * vocab + id] = (float) (2 * r.nextGaussian());
            }
            if (r.nextInt(3) == 0) {
                l[row * vocab + r.nextInt(vocab)] += peak + r.nextInt(5);
            }
        }
        return l;
    }

    static String decode(Tokenizer tok, int[] tokens) {
        StreamingDecoder d = tok.streamingDecoder();
        StringBuilder sb = new StringBuilder();
        for (int t : tokens) {
            sb.append(d.push(t));
        }
        return sb.append(d.flush()).toString();
    }
}

package io.stepstream.engine;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Small helpers shared by the engine tests. */
final class TestSupport {
    private TestSupport() {
    }

    /** /work/shared/models (or wherever `shared/models` sits above the working directory), or null. */
    static Path sharedModels() {
        for (Path d = Path.of(System.getProperty("user.dir")).toAbsolutePath(); d != null; d = d.getParent()) {
            Path candidate = d.resolve("shared").resolve("models");
            if (Files.isDirectory(candidate)) {
                return candidate;
            }
        }
        return null;
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    /** One step for a single sequence: tokens[offset..offset+length) appended to the cache, logits out. */
    static float[] step(Model model, KvCache cache, int[] tokens, int offset, int length) {
        float[][] logits = new float[1][model.config().vocabSize()];
        model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, tokens, offset, length))), logits);
        return logits[0];
    }

    /** max |a-b| / max |b|: relative error of a vector against a reference. */
    static double relativeError(float[] actual, double[] reference) {
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < reference.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(actual[i] - reference[i]));
            maxRef = Math.max(maxRef, Math.abs(reference[i]));
        }
        return maxDiff / maxRef;
    }
}

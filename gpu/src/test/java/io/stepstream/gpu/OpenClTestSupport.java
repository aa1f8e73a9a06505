package io.stepstream.gpu;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import java.util.ArrayList;
import java.util.List;

/** The device every OpenCL test runs on, chosen once per JVM; no device is a test failure, never a skip. */
final class OpenClTestSupport {
    /** Selector for the tests' device: -Dstepstream.test.device=..., default the first GPU else any device. */
    static final String SELECTOR = System.getProperty("stepstream.test.device", "auto");
    private static OpenCLDevice device;

    private OpenClTestSupport() {
    }

    static synchronized OpenCLDevice device() {
        if (device == null) {
            try {
                device = OpenClDevices.select(SELECTOR);
            } catch (OpenClException e) {
                throw new AssertionError("the OpenCL tests need a real OpenCL device (CI installs PoCL through"
                        + " .ci/run): " + e.getMessage(), e);
            }
        }
        return device;
    }

    /**
     * Builds something (a model) with {@link Attention#PROPERTY} set to {@code mode}, as a JVM started with
     * {@code -Dstepstream.opencl.attention=...} would, restoring the property afterwards.
     */
    static <T> T withAttention(Attention mode, java.util.function.Supplier<T> build) {
        return withProperty(Attention.PROPERTY, mode.label(), build);
    }

    /**
     * Builds something (a model) with system property {@code name} set to {@code value} (null: cleared), as a JVM
     * started with that -D option would, restoring the property afterwards.
     */
    static <T> T withProperty(String name, String value, java.util.function.Supplier<T> build) {
        String before = System.getProperty(name);
        if (value == null) {
            System.clearProperty(name);
        } else {
            System.setProperty(name, value);
        }
        try {
            return build.get();
        } finally {
            if (before == null) {
                System.clearProperty(name);
            } else {
                System.setProperty(name, before);
            }
        }
    }

    /** max |a-b| / max |b| over the first n elements. */
    static double relativeError(float[] actual, double[] reference, int n) {
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < n; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(actual[i] - reference[i]));
            maxRef = Math.max(maxRef, Math.abs(reference[i]));
        }
        if (maxRef == 0) {
            throw new AssertionError("reference is all zeros: the comparison would prove nothing");
        }
        return maxDiff / maxRef;
    }

    static double relativeError(float[] actual, float[] reference) {
        double[] ref = new double[reference.length];
        for (int i = 0; i < ref.length; i++) {
            ref[i] = reference[i];
        }
        return relativeError(actual, ref, ref.length);
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

    /**
     * Greedy decode of one sequence from BOS, one token a forward: {@code count} tokens, or fewer when
     * {@code stopAtEos} and the model picks EOS or BOS (not included).
     */
    static java.util.List<Integer> greedy(io.stepstream.engine.Model model, int count, boolean stopAtEos) {
        java.util.List<Integer> out = new java.util.ArrayList<>();
        io.stepstream.engine.Tokenizer tok = model.tokenizer();
        try (io.stepstream.engine.KvCache cache = model.newKvCache()) {
            int token = tok.bosId();
            float[][] logits = new float[1][model.config().vocabSize()];
            for (int i = 0; i < count; i++) {
                model.forward(new io.stepstream.engine.ForwardBatch(java.util.List.of(
                        new ForwardBatch.Entry(cache, new int[]{token}, 0, 1))), logits);
                token = argmax(logits[0]);
                if (stopAtEos && (token == tok.eosId() || token == tok.bosId())) {
                    break;
                }
                out.add(token);
            }
        }
        return out;
    }

    /** One forward of {@code model} over entries (cache i, tokens i from position 0): each entry's logits. */
    static float[][] forward(OpenClLlama2Model model, int vocab, List<KvCache> caches,
                             List<int[]> tokens) {
        List<ForwardBatch.Entry> entries = new ArrayList<>();
        for (int i = 0; i < caches.size(); i++) {
            entries.add(new ForwardBatch.Entry(caches.get(i), tokens.get(i), 0, tokens.get(i).length));
        }
        float[][] logits = new float[caches.size()][vocab];
        model.forward(new ForwardBatch(entries), logits);
        return logits;
    }

    /** Greedy decode of the prompts batched in one forward per step: each sequence's tokens after its prompt. */
    static java.util.List<java.util.List<Integer>> greedyBatch(io.stepstream.engine.Model model, int[][] prompts,
                                                               int steps) {
        int vocab = model.config().vocabSize();
        java.util.List<io.stepstream.engine.KvCache> caches = new java.util.ArrayList<>();
        java.util.List<java.util.List<Integer>> out = new java.util.ArrayList<>();
        try {
            java.util.List<io.stepstream.engine.ForwardBatch.Entry> entries = new java.util.ArrayList<>();
            for (int[] p : prompts) {
                io.stepstream.engine.KvCache cache = model.newKvCache();
                caches.add(cache);
                out.add(new java.util.ArrayList<>());
                entries.add(new io.stepstream.engine.ForwardBatch.Entry(cache, p, 0, p.length));
            }
            float[][] logits = new float[prompts.length][vocab];
            model.forward(new io.stepstream.engine.ForwardBatch(entries), logits);
            for (int s = 0; s < steps; s++) {
                entries.clear();
                for (int i = 0; i < prompts.length; i++) {
                    int token = argmax(logits[i]);
                    out.get(i).add(token);
                    entries.add(new io.stepstream.engine.ForwardBatch.Entry(caches.get(i), new int[]{token}, 0, 1));
                }
                model.forward(new io.stepstream.engine.ForwardBatch(entries), logits);
            }
        } finally {
            caches.forEach(io.stepstream.engine.KvCache::close);
        }
        return out;
    }
}

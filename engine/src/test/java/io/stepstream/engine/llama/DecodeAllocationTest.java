package io.stepstream.engine.llama;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A decode step allocates nothing once the JIT has compiled it: the step's scratch lives in the model, the kernels'
 * vectors in registers. Before C2 compiles a Vector API kernel every vector is an object (megabytes a step), so the
 * probe decodes until the JVM's allocation counters, summed over every thread (the caller and the compute pool's),
 * show at most {@link #BYTES_PER_STEP} a step over a window of steps, and fails if that never happens within
 * {@link #TIME_LIMIT_SECONDS}. A per-token {@code new float[dim]} anywhere in the step (128+ bytes) fails it.
 *
 * <p>Each case runs in a fresh JVM ({@link #main}): in the test JVM, other tests' shapes change what C2 compiles (a
 * kernel compiled against a polluted profile may leave a few vectors boxed, ~2 KB a step seen), and this test is
 * about the engine's code, not about the JIT's luck.
 */
class DecodeAllocationTest {
    /** A few small objects a step are tolerated (the measurement's own bookkeeping is not free); a buffer is not. */
    private static final long BYTES_PER_STEP = 96;
    private static final long TIME_LIMIT_SECONDS = 90;
    private static final int STEPS_PER_CACHE = 80;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}, batch {1}, {2} threads")
    @CsvSource({"F32, 1, 2", "Q8_0, 1, 2", "F32, 3, 2", "Q8_0, 3, 1"})
    void steadyDecodeStepsDoNotAllocate(TensorType type, int batch, int threads) throws Exception {
        Path file = LlamaTestModels.write(dir, LlamaTestModels.Kind.LLAMA2_GQA, type, 11);
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), DecodeAllocationTest.class.getName(),
                file.toString(), Integer.toString(batch), Integer.toString(threads)));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out;
        try (var in = p.getInputStream()) {
            out = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        assertTrue(p.waitFor(TIME_LIMIT_SECONDS + 60, TimeUnit.SECONDS), out);
        assertEquals(0, p.exitValue(), type + " batch " + batch + ": " + out);
    }

    /** The probe: MODEL BATCH THREADS; exit 0 once a window of steps allocated at most BYTES_PER_STEP a step. */
    public static void main(String[] args) throws IOException {
        int batch = Integer.parseInt(args[1]);
        int threads = Integer.parseInt(args[2]);
        var bean = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (Model model = Models.load(args[0],
                ModelOptions.defaults().withComputeThreads(threads).withParallelThreshold(0))) {
            int vocab = model.config().vocabSize();
            float[][] logits = new float[batch][vocab];
            Random rnd = new Random(3);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIME_LIMIT_SECONDS);
            double last = Double.NaN;
            while (System.nanoTime() < deadline) {
                List<KvCache> caches = new ArrayList<>();
                try {
                    List<ForwardBatch.Entry> prefill = new ArrayList<>();
                    List<ForwardBatch.Entry> decode = new ArrayList<>();
                    int[][] next = new int[batch][1];
                    for (int s = 0; s < batch; s++) {
                        KvCache cache = model.newKvCache();
                        caches.add(cache);
                        int[] prompt = rnd.ints(4, 0, vocab).toArray();
                        prefill.add(new ForwardBatch.Entry(cache, prompt, 0, prompt.length));
                        next[s][0] = rnd.nextInt(vocab);
                        decode.add(new ForwardBatch.Entry(cache, next[s], 0, 1));
                    }
                    model.forward(new ForwardBatch(prefill), logits);
                    ForwardBatch step = new ForwardBatch(decode);
                    long before = allocatedByAllThreads(bean);
                    for (int i = 0; i < STEPS_PER_CACHE; i++) {
                        model.forward(step, logits);
                    }
                    last = (allocatedByAllThreads(bean) - before) / (double) STEPS_PER_CACHE;
                } finally {
                    caches.forEach(KvCache::close);
                }
                if (last <= BYTES_PER_STEP) {
                    System.out.printf("%.0f bytes a step%n", last);
                    System.exit(0);
                }
            }
            System.out.printf("decode steps still allocate %.0f bytes a step after %d s%n", last, TIME_LIMIT_SECONDS);
            System.exit(1);
        }
    }

    private static long allocatedByAllThreads(com.sun.management.ThreadMXBean bean) {
        long sum = 0;
        for (long bytes : bean.getThreadAllocatedBytes(bean.getAllThreadIds())) {
            sum += Math.max(0, bytes); // -1 for a thread that ended meanwhile
        }
        return sum;
    }
}

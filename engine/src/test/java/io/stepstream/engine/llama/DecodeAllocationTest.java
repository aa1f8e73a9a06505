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
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * A decode step allocates nothing once the JIT has compiled it: the step's scratch lives in the model, the kernels'
 * vectors in registers. Before C2 compiles a Vector API kernel every vector is an object (megabytes a step), so the
 * test decodes until the JVM's allocation counters, summed over every thread (the caller and the compute pool's),
 * show at most {@link #BYTES_PER_STEP} a step over a window of steps, and fails if that never happens within
 * {@link #TIME_LIMIT_NANOS}. A per-token {@code new float[dim]} anywhere in the step (128+ bytes) fails it.
 */
class DecodeAllocationTest {
    /** A few small objects a step are tolerated (the measurement's own bookkeeping is not free); a buffer is not. */
    private static final long BYTES_PER_STEP = 96;
    private static final long TIME_LIMIT_NANOS = 90_000_000_000L;
    private static final int STEPS_PER_CACHE = 80;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}, batch {1}, {2} threads")
    @CsvSource({"F32, 1, 2", "Q8_0, 1, 2", "F32, 3, 2", "Q8_0, 3, 1"})
    void steadyDecodeStepsDoNotAllocate(TensorType type, int batch, int threads) throws IOException {
        Path file = LlamaTestModels.write(dir, LlamaTestModels.Kind.LLAMA2_GQA, type, 11);
        var bean = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (Model model = Models.load(file.toString(),
                ModelOptions.defaults().withComputeThreads(threads).withParallelThreshold(0))) {
            int vocab = model.config().vocabSize();
            float[][] logits = new float[batch][vocab];
            Random rnd = new Random(3);
            long deadline = System.nanoTime() + TIME_LIMIT_NANOS;
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
                    return;
                }
            }
            fail(String.format("%s batch %d: decode steps still allocate %.0f bytes a step after %d s", type, batch,
                    last, TIME_LIMIT_NANOS / 1_000_000_000L));
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

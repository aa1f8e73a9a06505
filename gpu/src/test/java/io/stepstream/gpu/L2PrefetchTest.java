package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Models;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The matvecs' L2 prefetch ({@value L2Prefetch#PROPERTY}): the plan of which weight lines a matvec asks for
 * (pure), the property's parsing, and on real OpenCL (PoCL: OpenCL C's prefetch built-in, the PTX kinds fall back
 * to it) that a model with prefetch gives bitwise the logits of one without, over prefill and decode steps, while its
 * matvecs did get lines to fetch.
 */
class L2PrefetchTest {
    private static final MemorySegment A = MemorySegment.ofAddress(0x1000);
    private static final MemorySegment B = MemorySegment.ofAddress(0x2000);
    private static final MemorySegment C = MemorySegment.ofAddress(0x3000);

    private static PrefetchPlan.Phase one(MemorySegment buffer, long bufferBytes, long offset, long bytes) {
        return new PrefetchPlan.Phase(List.of(new PrefetchPlan.Stream(buffer, bufferBytes, offset, bytes)));
    }

    @Test
    void planCoversTheBudgetInReadingOrderAcrossPhases() {
        // 1000 bytes of A from 256, then 4096 of B from 0; budget 1500: all of A's 1000, then 500 of B.
        List<PrefetchPlan.Range> r = PrefetchPlan.plan(List.of(one(A, 8192, 256, 1000), one(B, 8192, 0, 4096)),
                1500, 128, 4);
        assertEquals(List.of(new PrefetchPlan.Range(A, 2, 8), new PrefetchPlan.Range(B, 0, 4)), r);
    }

    @Test
    void interleavedStreamsShareTheBudgetEvenly() {
        PrefetchPlan.Phase w1w3 = new PrefetchPlan.Phase(List.of(new PrefetchPlan.Stream(A, 1 << 20, 4096, 65536),
                new PrefetchPlan.Stream(B, 1 << 20, 4096, 65536)));
        List<PrefetchPlan.Range> r = PrefetchPlan.plan(List.of(w1w3, one(C, 1 << 20, 0, 1 << 20)), 2048, 128, 4);
        assertEquals(List.of(new PrefetchPlan.Range(A, 32, 8), new PrefetchPlan.Range(B, 32, 8)), r);
    }

    @Test
    void linesStayInsideTheBufferAndRangesAreCapped() {
        // 1000 bytes at 100 of a 1100-byte buffer: lines 0..7 end at 1024 <= 1100; line 8 would pass its end
        List<PrefetchPlan.Range> r = PrefetchPlan.plan(List.of(one(A, 1100, 100, 1000)), 1 << 20, 128, 4);
        assertEquals(List.of(new PrefetchPlan.Range(A, 0, 8)), r);
        // five one-stream phases, four ranges at most
        List<PrefetchPlan.Phase> five = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            five.add(one(MemorySegment.ofAddress(0x1000L * (i + 1)), 4096, 0, 4096));
        }
        assertEquals(4, PrefetchPlan.plan(five, 1 << 20, 128, 4).size());
        assertEquals(List.of(), PrefetchPlan.plan(five, 0, 128, 4));
        assertThrows(IllegalArgumentException.class, () -> new PrefetchPlan.Stream(A, 100, 50, 51));
    }

    @Test
    void parsesTheProperty() {
        assertEquals(L2Prefetch.OFF, L2Prefetch.parse("off"));
        assertEquals(new L2Prefetch(16 << 20, L2Prefetch.Kind.LINE, true, 128), L2Prefetch.parse("16m"));
        assertEquals(new L2Prefetch(512 << 10, L2Prefetch.Kind.BULK, false, 4096),
                L2Prefetch.parse(" 512k, kind=bulk, at=begin, line=4k "));
        for (String bad : new String[]{"lots", "16m,kind=far", "16m,at=middle", "16m,line=100", "16m,depth=2"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> L2Prefetch.parse(bad));
            assertTrue(e.getMessage().startsWith(L2Prefetch.PROPERTY), e.getMessage());
        }
    }

    private static <T> T withPrefetch(String value, Supplier<T> build) {
        String previous = System.setProperty(L2Prefetch.PROPERTY, value);
        try {
            return build.get();
        } finally {
            if (previous == null) {
                System.clearProperty(L2Prefetch.PROPERTY);
            } else {
                System.setProperty(L2Prefetch.PROPERTY, previous);
            }
        }
    }

    private static OpenClLlama2Model load(TensorType type, String prefetch) {
        return withPrefetch(prefetch, () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL,
                OpenClTestSupport.device(), 64, type, Dispatch.DIRECT, Matmul.HAND));
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "Q8_0"})
    void prefetchingModelGivesTheSameLogitsBitForBit(TensorType type) {
        // PoCL has no PTX: "kind=line" must fall back to the built-in, which builds and runs; 24k is several layers'
        // worth of stories260K's matrices, so the plans span passes and wrap to the next step's first QKV.
        try (OpenClLlama2Model with = load(type, "24k,kind=line"); OpenClLlama2Model without = load(type, "off")) {
            int vocab = without.config().vocabSize();
            Random random = new Random(77 + type.ordinal());
            List<KvCache> wc = new ArrayList<>();
            List<KvCache> oc = new ArrayList<>();
            int[] next = new int[2];
            try {
                for (int step = 0; step < 10; step++) {
                    if (step == 0 || step == 4) {
                        wc.add(with.newKvCache());
                        oc.add(without.newKvCache());
                    }
                    List<ForwardBatch.Entry> we = new ArrayList<>();
                    List<ForwardBatch.Entry> oe = new ArrayList<>();
                    for (int i = 0; i < wc.size(); i++) {
                        int[] tokens;
                        if (wc.get(i).length() == 0) {
                            tokens = new int[4 + 3 * i];
                            for (int j = 0; j < tokens.length; j++) {
                                tokens[j] = 3 + random.nextInt(vocab - 3);
                            }
                            tokens[0] = 1;
                        } else {
                            tokens = new int[]{next[i]};
                        }
                        we.add(new ForwardBatch.Entry(wc.get(i), tokens, 0, tokens.length));
                        oe.add(new ForwardBatch.Entry(oc.get(i), tokens, 0, tokens.length));
                    }
                    float[][] wl = new float[wc.size()][vocab];
                    float[][] ol = new float[wc.size()][vocab];
                    with.forward(new ForwardBatch(we), wl);
                    without.forward(new ForwardBatch(oe), ol);
                    for (int i = 0; i < wc.size(); i++) {
                        assertArrayEquals(ol[i], wl[i], type + " step " + step + " sequence " + i);
                        next[i] = argmax(ol[i]);
                    }
                }
            } finally {
                wc.forEach(KvCache::close);
                oc.forEach(KvCache::close);
            }
            assertEquals(0, without.prefetchedLines());
            assertTrue(with.prefetchedLines() > 0, "the matvecs were given no lines to prefetch");
        }
    }
}

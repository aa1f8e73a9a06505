package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.bench.SyntheticLlama;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Weight kinds split by layer ranges ({@link WeightChunks}), forced on small models by lowering
 * {@value WeightChunks#MAX_BUFFER_BYTES_PROPERTY} to two layers of the largest kind (stories260K's 5 layers: chunks of
 * 2 + 2 + 1; the synthetic model's 3 layers: 2 + 1). The split model runs the same kernels on the same numbers as the
 * unsplit one, only from other buffers at other layer indices, so its logits must be bitwise the unsplit model's: a
 * 40-token prefill (tiled or tensor-core kernel), a batch of a decode and a 7-token prefill (matvec), greedy decodes at
 * batch 1. Every layer's weights differ, so a wrong chunk or layer offset changes the logits; the last test shows it
 * does for the bug most likely to slip through (every pass reading the first chunk).
 */
class WeightChunksTest {
    /** dim 64, hidden 96, 3 layers, 4 heads over 2 KV heads, vocab 160: every kind's layer is whole Q8_0 blocks. */
    private static final ModelConfig SYNTHETIC = new ModelConfig(64, 96, 3, 4, 2, 160, 128, 1e-5f, 10000f, false);

    /** Builds with {@value WeightChunks#MAX_BUFFER_BYTES_PROPERTY} set to {@code bytes} (null: unset), then restores it. */
    private static <T> T withMaxBufferBytes(Long bytes, Supplier<T> build) {
        return OpenClTestSupport.withProperty(WeightChunks.MAX_BUFFER_BYTES_PROPERTY,
                bytes == null ? null : Long.toString(bytes), build);
    }

    /** A limit that holds exactly two layers of the largest layered kind of {@code c} in {@code type}. */
    private static long twoLayers(ModelConfig c, TensorType type) {
        long largest = 0;
        for (long e : WeightChunks.layerElements(c)) {
            largest = Math.max(largest, e);
        }
        long bytesPerElement = type == TensorType.F32 ? 4 : type == TensorType.F16 ? 2 : 1;
        return 2 * largest * bytesPerElement + 1;
    }

    private static OpenClLlama2Model synthetic(Llama2Weights w, TensorType type, Dispatch dispatch, Matmul matmul) {
        return new OpenClLlama2Model("synthetic", w, SyntheticLlama.tokenizer(w.config().vocabSize()),
                OpenClTestSupport.device(), 64, type, dispatch, matmul,
                TensorCores.EMULATE.withMinTokens(9).withF32(type == TensorType.F32));
    }

    /**
     * The logits of a fixed script: a 40-token prefill of sequence a; a's next token with a 7-token prefill of b; six
     * greedy decodes of a alone; one more step of both. Tokens after the prompts are each row's argmax, so equal
     * logits also mean equal greedy tokens.
     */
    private static List<float[]> script(OpenClLlama2Model m, long seed) {
        int vocab = m.config().vocabSize();
        Random random = new Random(seed);
        List<float[]> out = new ArrayList<>();
        try (KvCache a = m.newKvCache(); KvCache b = m.newKvCache()) {
            int[] promptA = prompt(random, 40, vocab);
            int[] promptB = prompt(random, 7, vocab);
            float[][] one = new float[1][vocab];
            m.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(a, promptA, 0, promptA.length))), one);
            out.add(one[0].clone());
            float[][] two = new float[2][vocab];
            m.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(a, new int[]{argmax(one[0])}, 0, 1),
                    new ForwardBatch.Entry(b, promptB, 0, promptB.length))), two);
            out.add(two[0].clone());
            out.add(two[1].clone());
            int nextA = argmax(two[0]);
            for (int i = 0; i < 6; i++) {
                m.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(a, new int[]{nextA}, 0, 1))), one);
                out.add(one[0].clone());
                nextA = argmax(one[0]);
            }
            m.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(a, new int[]{nextA}, 0, 1),
                    new ForwardBatch.Entry(b, new int[]{argmax(two[1])}, 0, 1))), two);
            out.add(two[0].clone());
            out.add(two[1].clone());
        }
        return out;
    }

    private static int[] prompt(Random random, int length, int vocab) {
        int[] p = new int[length];
        p[0] = 1;
        for (int i = 1; i < length; i++) {
            p[i] = 3 + random.nextInt(vocab - 3);
        }
        return p;
    }

    private static void assertBitwiseEqual(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            int[] e = bits(expected.get(i));
            int[] a = bits(actual.get(i));
            assertArrayEquals(e, a, what + ": logits row " + i + " of the script differ from the unsplit model's");
        }
    }

    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = Float.floatToRawIntBits(v[i]);
        }
        return b;
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "Q8_0"})
    void stories260kSplitInThreeChunksIsBitwiseTheUnsplitModel(TensorType type) {
        List<float[]> unsplit;
        try (OpenClLlama2Model m = withMaxBufferBytes(null, () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL,
                OpenClTestSupport.device(), 64, type, Dispatch.DIRECT, Matmul.HAND))) {
            assertEquals(1, m.weightChunks());
            unsplit = script(m, 11);
        }
        long limit = twoLayers(SyntheticLlama.shape("stories260k"), type);
        try (OpenClLlama2Model m = withMaxBufferBytes(limit, () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL,
                OpenClTestSupport.device(), 64, type, Dispatch.DIRECT, Matmul.HAND))) {
            assertEquals(3, m.weightChunks(), m.weightSplitDescription());
            assertTrue(m.kvDeviceOnly(), "a 1.3 MB KV pool over the lowered limit stays on the device only");
            assertBitwiseEqual(unsplit, script(m, 11), "stories260K " + type + " in 2+2+1 layers");
        }
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "Q8_0"})
    void syntheticSplitInTwoChunksIsBitwiseTheUnsplitModelOnTensorCores(TensorType type) {
        Llama2Weights w = SyntheticLlama.weights(SYNTHETIC, 5);
        List<float[]> unsplit;
        try (OpenClLlama2Model m = withMaxBufferBytes(null, () -> synthetic(w, type, Dispatch.DIRECT, Matmul.HAND))) {
            assertEquals(1, m.weightChunks());
            assertTrue(m.tensorCores().startsWith("emulated"), m.tensorCores());
            unsplit = script(m, 12);
        }
        try (OpenClLlama2Model m = withMaxBufferBytes(twoLayers(SYNTHETIC, type),
                () -> synthetic(w, type, Dispatch.DIRECT, Matmul.HAND))) {
            assertEquals(2, m.weightChunks(), m.weightSplitDescription());
            long before = m.tensorCorePasses();
            assertBitwiseEqual(unsplit, script(m, 12), "synthetic " + type + " in 2+1 layers");
            assertTrue(m.tensorCorePasses() > before, "the 40-token prefill ran no tensor-core pass");
        }
    }

    /**
     * The comparison above sees a chunk bug: a model whose layers are what every pass would read if it always bound
     * the first chunk (layer l reads chunk 0's layer l mod 2: layers 0, 1, 0) gives other logits than the split model.
     */
    @Test
    void readingTheFirstChunkForEveryLayerWouldChangeTheLogits() {
        TensorType type = TensorType.F16;
        Llama2Weights w = SyntheticLlama.weights(SYNTHETIC, 5);
        List<float[]> split;
        try (OpenClLlama2Model m = withMaxBufferBytes(twoLayers(SYNTHETIC, type),
                () -> synthetic(w, type, Dispatch.DIRECT, Matmul.HAND))) {
            split = script(m, 13);
        }
        int[] firstChunk = {0, 1, 0};
        Llama2Weights wrong = new Llama2Weights(w.config(), w.tokenEmbedding(), w.rmsAtt(), pick(w.wq(), firstChunk),
                pick(w.wk(), firstChunk), pick(w.wv(), firstChunk), pick(w.wo(), firstChunk), w.rmsFfn(),
                pick(w.w1(), firstChunk), pick(w.w2(), firstChunk), pick(w.w3(), firstChunk), w.rmsFinal(),
                w.classifier());
        try (OpenClLlama2Model m = withMaxBufferBytes(null, () -> synthetic(wrong, type, Dispatch.DIRECT, Matmul.HAND))) {
            List<float[]> bug = script(m, 13);
            int[] expected = bits(split.get(0));
            int[] actual = bits(bug.get(0));
            assertFalse(java.util.Arrays.equals(expected, actual),
                    "layer 2 reading layer 0's weights left the prefill's logits unchanged: the test could not see it");
        }
    }

    private static float[][] pick(float[][] perLayer, int[] layers) {
        float[][] out = new float[layers.length][];
        for (int i = 0; i < layers.length; i++) {
            out[i] = perLayer[layers[i]];
        }
        return out;
    }

    /**
     * A KV pool over the limit with weights under it: the pool is a device buffer with no Java mirror, and every
     * logit is the mirrored pool's (the attention and the QKV store index it with 64-bit offsets).
     */
    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "Q8_0"})
    void aDeviceOnlyKvPoolGivesTheMirroredPoolsLogits(TensorType type) {
        Llama2Weights w = SyntheticLlama.weights(SYNTHETIC, 6);
        List<float[]> mirrored;
        try (OpenClLlama2Model m = withMaxBufferBytes(null, () -> synthetic(w, type, Dispatch.DIRECT, Matmul.HAND))) {
            assertFalse(m.kvDeviceOnly());
            mirrored = script(m, 14);
        }
        // w1's 3 layers are 73,728 bytes in F32; 64 KV blocks of 3 layers x 2 x 16 x 32 floats are 786,432
        try (OpenClLlama2Model m = withMaxBufferBytes(100_000L, () -> synthetic(w, type, Dispatch.DIRECT, Matmul.HAND))) {
            assertEquals(1, m.weightChunks());
            assertTrue(m.kvDeviceOnly());
            assertBitwiseEqual(mirrored, script(m, 14), "device-only KV pool, " + type);
        }
    }

    @Test
    void pathsThatReadTheKvPoolAsOneArrayRefuseADeviceOnlyPool() {
        Llama2Weights w = SyntheticLlama.weights(SYNTHETIC, 6);
        IllegalArgumentException aparapi = assertThrows(IllegalArgumentException.class, () -> withMaxBufferBytes(
                100_000L, () -> synthetic(w, TensorType.F32, Dispatch.APARAPI, Matmul.HAND)));
        assertTrue(aparapi.getMessage().startsWith("KV pool of 64 blocks") && aparapi.getMessage().contains(
                "the Aparapi dispatch"), aparapi.getMessage());
        String before = System.getProperty(Matmul.HAND_PASSES_PROPERTY);
        System.setProperty(Matmul.HAND_PASSES_PROPERTY, "matmul");
        try {
            IllegalArgumentException steps = assertThrows(IllegalArgumentException.class, () -> withMaxBufferBytes(
                    100_000L, () -> synthetic(w, TensorType.F32, Dispatch.DIRECT, Matmul.HAND)));
            assertTrue(steps.getMessage().contains(Matmul.HAND_PASSES_PROPERTY + "=matmul"), steps.getMessage());
        } finally {
            if (before == null) {
                System.clearProperty(Matmul.HAND_PASSES_PROPERTY);
            } else {
                System.setProperty(Matmul.HAND_PASSES_PROPERTY, before);
            }
        }
        // one block more than the device's largest buffer: refused before anything is allocated
        long blockBytes = 3L * 2 * 16 * SYNTHETIC.kvDim() * Float.BYTES;
        int blocks = (int) (OpenClTestSupport.device().getMaxMemAllocSize() / blockBytes + 1);
        IllegalArgumentException tooBig = assertThrows(IllegalArgumentException.class, () -> new DeviceLlama2(w,
                OpenClTestSupport.device(), blocks, TensorType.F32, Dispatch.DIRECT, Matmul.HAND, MatmulTiles.DEFAULT));
        assertTrue(tooBig.getMessage().contains("CL_DEVICE_MAX_MEM_ALLOC_SIZE"), tooBig.getMessage());
    }

    @Test
    void pathsThatReadOneArrayPerKindRefuseASplitModel() {
        Llama2Weights w = SyntheticLlama.weights(SYNTHETIC, 5);
        long limit = twoLayers(SYNTHETIC, TensorType.F32);
        IllegalArgumentException aparapi = assertThrows(IllegalArgumentException.class, () -> withMaxBufferBytes(limit,
                () -> synthetic(w, TensorType.F32, Dispatch.APARAPI, Matmul.HAND)));
        assertTrue(aparapi.getMessage().contains("the Aparapi dispatch") && aparapi.getMessage().contains("2 chunks"),
                aparapi.getMessage());
        IllegalArgumentException matmul = assertThrows(IllegalArgumentException.class, () -> withMaxBufferBytes(limit,
                () -> synthetic(w, TensorType.F32, Dispatch.DIRECT, Matmul.APARAPI)));
        assertTrue(matmul.getMessage().contains("-Dstepstream.opencl.matmul=aparapi"), matmul.getMessage());
    }

    @Test
    void theSplitKeepsWholeLayersWithinTheLimitAndRefusesWhatCannotSplit() {
        ModelConfig c = SyntheticLlama.shape("stories260k"); // w1: 172 x 64 = 11008 elements a layer
        WeightChunks.Split s = WeightChunks.plan(c, TensorType.F16, 2 * 11008 * 2 + 1);
        assertEquals(2, s.layersPerChunk());
        assertEquals(3, s.chunks());
        assertEquals(2, s.chunkOf(4));
        assertEquals(0, s.layerInChunk(4));
        assertEquals(1, s.layerInChunk(3));
        assertEquals(5, s.endLayer(2));
        assertEquals(1, WeightChunks.plan(c, TensorType.F16, DeviceLlama2.MAX_BUFFER_BYTES).chunks());

        IllegalArgumentException tooSmall = assertThrows(IllegalArgumentException.class,
                () -> WeightChunks.plan(c, TensorType.F32, 11008 * 4 - 1));
        assertTrue(tooSmall.getMessage().startsWith("w1: one layer") && tooSmall.getMessage()
                .contains(WeightChunks.MAX_BUFFER_BYTES_PROPERTY), tooSmall.getMessage());

        // dim 20 with 20-wide KV: 400 elements a layer are not whole 32-element Q8_0 blocks
        ModelConfig odd = new ModelConfig(20, 64, 4, 2, 2, 64, 32, 1e-5f, 10000f, false);
        IllegalArgumentException q8 = assertThrows(IllegalArgumentException.class,
                () -> WeightChunks.plan(odd, TensorType.Q8_0, 2 * 64 * 20 + 1));
        assertTrue(q8.getMessage().contains("whole 32-element scale blocks"), q8.getMessage());
        assertEquals(1, WeightChunks.plan(odd, TensorType.Q8_0, DeviceLlama2.MAX_BUFFER_BYTES).chunks());

        String before = System.getProperty(WeightChunks.MAX_BUFFER_BYTES_PROPERTY);
        try {
            for (String bad : new String[]{"0", "-5", "lots", Long.toString(1L << 31)}) {
                System.setProperty(WeightChunks.MAX_BUFFER_BYTES_PROPERTY, bad);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        WeightChunks::maxBufferBytesFromSystemProperty);
                assertTrue(e.getMessage().startsWith(WeightChunks.MAX_BUFFER_BYTES_PROPERTY), e.getMessage());
            }
        } finally {
            if (before == null) {
                System.clearProperty(WeightChunks.MAX_BUFFER_BYTES_PROPERTY);
            } else {
                System.setProperty(WeightChunks.MAX_BUFFER_BYTES_PROPERTY, before);
            }
        }
    }
}

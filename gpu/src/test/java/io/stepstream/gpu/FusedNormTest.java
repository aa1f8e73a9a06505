package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.Models;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static io.stepstream.gpu.Llama2Kernel.*;
import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * RMSNorm fused into the matvec ({@code -Dstepstream.opencl.fuseNorm=auto}): the matvec makes its input rows from
 * the residual stream as step.cl's rmsnorm would write them into xb (same sum-of-squares order, same expressions),
 * so the fused matmul's outputs are BITWISE those of the norm kernel followed by the matvec.
 * <ul>
 * <li>Pass level, on fresh random residuals, norm weights and matrices (F32, F16, Q8_0; n = 1..8; the XH build of
 * emulated tensor cores): a launch of [norm, matmul] (fused: the norm's kernel is skipped) against [norm] then
 * [matmul] as two launches (a norm with no consumer after it in its launch is never fused), for the attention norm
 * into QKV (+ RoPE, KV writes), the FFN norm into W1/W3 (+ SwiGLU) and the final norm into the classifier (rows
 * through logitRow).</li>
 * <li>Whole steps of stories260K: the same decode and prefill steps on a fused and an unfused model give bitwise
 * the same logits (steps past the matvec's 8 tokens keep the norm kernel), and the fused model's greedy story is
 * the CPU backend's.</li>
 * </ul>
 */
class FusedNormTest {
    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (TensorType type : new TensorType[]{TensorType.F32, TensorType.F16, TensorType.Q8_0}) {
            out.add(Arguments.of(type, TensorCores.OFF));
        }
        out.add(Arguments.of(TensorType.F16, TensorCores.EMULATE));
        return out.stream();
    }

    private static <T> T withFuseNorm(String value, Supplier<T> build) {
        String previous = System.setProperty(HandMatmul.FUSE_NORM_PROPERTY, value);
        try {
            return build.get();
        } finally {
            if (previous == null) {
                System.clearProperty(HandMatmul.FUSE_NORM_PROPERTY);
            } else {
                System.setProperty(HandMatmul.FUSE_NORM_PROPERTY, previous);
            }
        }
    }

    @ParameterizedTest(name = "{0}, tensor cores {1}")
    @MethodSource("cases")
    void fusedNormAndMatvecGiveTheBitsOfNormThenMatvec(TensorType type, TensorCores tensorCores) {
        Random random = new Random(500L + type.ordinal() + tensorCores.mode().ordinal());
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        try (DeviceLlama2 device = withFuseNorm("auto", () -> new DeviceLlama2(w, OpenClTestSupport.device(), 12,
                type, Dispatch.DIRECT, Matmul.HAND, MatmulTiles.DEFAULT, tensorCores))) {
            assertTrue(device.handMatmul().fuseNorm());
            Llama2Kernel k = device.k;
            int[][] pairs = {{OP_RMSNORM_ATT, OP_QKV_ROPE}, {OP_RMSNORM_FFN, OP_FFN_SWIGLU}, {OP_FINAL_NORM, OP_LOGITS}};
            long fused = 0;
            for (int n = 1; n <= MatmulTiles.DEFAULT.mvTokens(); n++) {
                HandMatmulTest.Case c = new HandMatmulTest.Case(device, random, n);
                int layer = n % 2; // both layers' norm weights
                for (int[] pair : pairs) {
                    float[][] fields = {k.x, k.xb, k.hb, k.q, k.kv, k.logits};
                    float[][] start = new float[fields.length][];
                    for (int f = 0; f < fields.length; f++) {
                        start[f] = new float[fields[f].length];
                        for (int i = 0; i < start[f].length; i++) {
                            // residuals of varied magnitude, so the norm's scale matters
                            start[f][i] = (random.nextFloat() * 2 - 1) * (f == 0 ? 1 + (i % 7) : 1);
                        }
                    }
                    int[] layers = {layer, layer};
                    reset(device, fields, start);
                    device.launchPasses(new int[]{pair[0]}, new int[]{layer}, n, c.entries, 40);
                    device.launchPasses(new int[]{pair[1]}, new int[]{layer}, n, c.entries, 40);
                    int[] unfused = outputBits(device, pair[1]);
                    assertEquals(fused, device.fusedNorms(), "a norm alone in its launch is not fused");
                    reset(device, fields, start);
                    device.launchPasses(new int[]{pair[0], pair[1]}, layers, n, c.entries, 40);
                    int[] bits = outputBits(device, pair[1]);
                    assertEquals(++fused, device.fusedNorms(), "op " + pair[0] + " fused into " + pair[1]);
                    assertArrayEquals(unfused, bits, "op " + pair[1] + " fused with norm " + pair[0] + ", " + n
                            + " tokens, layer " + layer);
                    assertTrue(differs(bits, start, pair[1]), "op " + pair[1] + " wrote its outputs");
                }
            }
        }
    }

    private static void reset(DeviceLlama2 device, float[][] fields, float[][] start) {
        for (int f = 0; f < fields.length; f++) {
            System.arraycopy(start[f], 0, fields[f], 0, start[f].length);
            device.launcher().put(fields[f]);
        }
    }

    /** The bits of every buffer op writes, read back from the device. */
    static int[] outputBits(DeviceLlama2 device, int op) {
        Llama2Kernel k = device.k;
        float[][] outs = switch (op) {
            case OP_QKV_ROPE -> new float[][]{k.q, k.kv};
            case OP_FFN_SWIGLU -> new float[][]{k.hb};
            default -> new float[][]{k.logits};
        };
        int total = 0;
        for (float[] o : outs) {
            device.launcher().get(o);
            total += o.length;
        }
        int[] bits = new int[total];
        int i = 0;
        for (float[] o : outs) {
            for (float v : o) {
                bits[i++] = Float.floatToRawIntBits(v);
            }
        }
        return bits;
    }

    private static boolean differs(int[] bits, float[][] start, int op) {
        float[] before = switch (op) {
            case OP_QKV_ROPE -> start[3];
            case OP_FFN_SWIGLU -> start[2];
            default -> start[5];
        };
        return Float.floatToRawIntBits(before[0]) != bits[0] && Float.floatToRawIntBits(before[1]) != bits[1];
    }

    private static OpenClLlama2Model load(TensorType type, String fuseNorm) {
        return withFuseNorm(fuseNorm, () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL,
                OpenClTestSupport.device(), 64, type, Dispatch.DIRECT, Matmul.HAND));
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "Q8_0"})
    void wholeStepsGiveTheSameLogitsFusedAndUnfused(TensorType type) {
        try (OpenClLlama2Model fused = load(type, "auto"); OpenClLlama2Model plain = load(type, "off")) {
            int vocab = plain.config().vocabSize();
            Random random = new Random(900 + type.ordinal());
            List<KvCache> fc = new ArrayList<>();
            List<KvCache> pc = new ArrayList<>();
            int[] next = new int[3];
            int layers = plain.config().nLayers();
            long expectFused = 0;
            try {
                for (int step = 0; step < 12; step++) {
                    if (step == 0 || step == 1 || step == 5) {
                        fc.add(fused.newKvCache());
                        pc.add(plain.newKvCache());
                    }
                    List<ForwardBatch.Entry> fe = new ArrayList<>();
                    List<ForwardBatch.Entry> pe = new ArrayList<>();
                    for (int i = 0; i < fc.size(); i++) {
                        int[] tokens;
                        if (fc.get(i).length() == 0 || step == 8) {
                            // prompts of 3, 5, 7 tokens, and at step 8 7 more for each (21 tokens: the tiled kernel)
                            tokens = new int[fc.get(i).length() == 0 ? 3 + 2 * i : 7];
                            for (int j = 0; j < tokens.length; j++) {
                                tokens[j] = 3 + random.nextInt(vocab - 3);
                            }
                            if (fc.get(i).length() == 0) {
                                tokens[0] = 1;
                            }
                        } else {
                            tokens = new int[]{next[i]};
                        }
                        fe.add(new ForwardBatch.Entry(fc.get(i), tokens, 0, tokens.length));
                        pe.add(new ForwardBatch.Entry(pc.get(i), tokens, 0, tokens.length));
                    }
                    int n = fe.stream().mapToInt(ForwardBatch.Entry::length).sum();
                    // Up to 8 tokens every norm fuses; past that only the final norm (at most 3 logit rows) does.
                    expectFused += n <= 8 ? 2L * layers + 1 : 1;
                    float[][] fl = new float[fc.size()][vocab];
                    float[][] pl = new float[fc.size()][vocab];
                    fused.forward(new ForwardBatch(fe), fl);
                    plain.forward(new ForwardBatch(pe), pl);
                    for (int i = 0; i < fc.size(); i++) {
                        assertArrayEquals(bits(pl[i]), bits(fl[i]), type + " step " + step + " sequence " + i);
                        next[i] = argmax(pl[i]);
                    }
                }
            } finally {
                fc.forEach(KvCache::close);
                pc.forEach(KvCache::close);
            }
            assertEquals(0, plain.fusedNorms());
            assertEquals(expectFused, fused.fusedNorms());
            assertTrue(expectFused < 12L * (2 * layers + 1), "some steps ran the tiled kernel with the norm kernels");
        }
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32"})
    void fusedGreedyStoryIsTheCpus(TensorType type) {
        try (OpenClLlama2Model fused = load(type, "auto"); Model cpu = Models.load(Models.DEFAULT_MODEL)) {
            List<Integer> g = greedy(fused, 60);
            assertEquals(greedy(cpu, 60), g);
            assertTrue(g.size() >= 48, "only " + g.size() + " tokens");
            assertEquals(60L * (2 * fused.config().nLayers() + 1), fused.fusedNorms());
        }
    }

    private static List<Integer> greedy(Model model, int count) {
        List<Integer> out = new ArrayList<>();
        try (KvCache cache = model.newKvCache()) {
            int token = model.tokenizer().bosId();
            float[][] logits = new float[1][model.config().vocabSize()];
            for (int i = 0; i < count; i++) {
                model.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, new int[]{token}, 0, 1))), logits);
                token = argmax(logits[0]);
                out.add(token);
            }
        }
        return out;
    }

    private static int[] bits(float[] a) {
        int[] b = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            b[i] = Float.floatToRawIntBits(a[i]);
        }
        return b;
    }
}

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
import static io.stepstream.gpu.OpenClTestSupport.greedy;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * RMSNorm fused into the matvec ({@code -Dstepstream.opencl.fuseNorm=on}: wherever the consumer runs a matvec;
 * {@code auto}, the default, only at its 1-token tier): the matvec multiplies against g * x
 * from the residual stream, sums x^2 from the same loads and scales each token's sums by rs = 1/sqrt(ss/dim + eps)
 * in the epilogue: W . (g * rs * x) = rs * (W . (g * x)), equal to the unfused norm-then-matvec up to f32 rounding.
 * <ul>
 * <li>Pass level, on fresh random residuals (of varied magnitude), norm weights and matrices (F32, F16, Q8_0;
 * n = 1..8): a launch of [norm, matmul] (fused: the norm's kernel is skipped) against [norm] then [matmul] as two
 * launches (a norm with no consumer after it in its launch is never fused), for the attention norm into QKV (+ RoPE,
 * KV writes), the FFN norm into W1/W3 (+ SwiGLU) and the final norm into the classifier (rows through logitRow):
 * within {@value #F32_TOLERANCE} relative (max |diff| / max |unfused|). Why that bound: both paths add the same
 * 48-80 products in the same order; they differ by where rs enters (a product's relative rounding, ~6e-8 each),
 * by the sum of squares' order (its rounding reaches rs as half its relative error) and by rs times the sum
 * (one more rounding): a few times 1e-7, accumulated over at most 80 terms; SwiGLU's product of two such results
 * doubles it. With XH (emulated tensor cores) the activations are rounded to f16 as g * x instead of g * rs * x:
 * each rounding is off by up to 2^-11 relative, independently per element, so the sums move by ~1e-3 of their
 * scale: {@value #XH_TOLERANCE}.</li>
 * <li>Whole steps of stories260K: the same prefill and decode steps on a fused and an unfused model give logits
 * within 1e-5 relative (the pass-level bound compounded over 5 layers and the classifier; PoCL: ~1e-6) and the
 * same argmax; steps past the matvec's 8 tokens keep the norm kernels. The fused model's greedy story is the CPU
 * backend's (auto: every norm of a 1-token step fused, none of a 2-token step).</li>
 * </ul>
 */
class FusedNormTest {
    static final double F32_TOLERANCE = 2e-6;
    static final double XH_TOLERANCE = 2e-3;

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (TensorType type : new TensorType[]{TensorType.F32, TensorType.F16, TensorType.Q8_0}) {
            out.add(Arguments.of(type, TensorCores.OFF));
        }
        // tensor cores from 9 tokens on: every n = 1..8 here stays on the matvec, whose XH rounding is the point
        out.add(Arguments.of(TensorType.F16, TensorCores.EMULATE.withMinTokens(9)));
        return out.stream();
    }

    private static <T> T withFuseNorm(String value, Supplier<T> build) {
        return OpenClTestSupport.withProperty(HandMatmul.FUSE_NORM_PROPERTY, value, build);
    }

    @ParameterizedTest(name = "{0}, tensor cores {1}")
    @MethodSource("cases")
    void fusedNormAndMatvecGiveNormThenMatvecWithinRounding(TensorType type, TensorCores tensorCores) {
        double tolerance = tensorCores.mode() == TensorCores.Mode.OFF ? F32_TOLERANCE : XH_TOLERANCE;
        double worst = 0;
        Random random = new Random(500L + type.ordinal() + tensorCores.mode().ordinal());
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        try (DeviceLlama2 device = withFuseNorm("on", () -> new DeviceLlama2(w, OpenClTestSupport.device(), 12,
                type, Dispatch.DIRECT, Matmul.HAND, MatmulTiles.DEFAULT, tensorCores))) {
            assertEquals(HandMatmul.FuseNorm.ON, device.handMatmul().fuseNorm());
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
                    float[] unfused = outputs(device, pair[1], n, c.entries);
                    assertEquals(fused, device.fusedNorms(), "a norm alone in its launch is not fused");
                    reset(device, fields, start);
                    device.launchPasses(new int[]{pair[0], pair[1]}, layers, n, c.entries, 40);
                    float[] got = outputs(device, pair[1], n, c.entries);
                    assertEquals(++fused, device.fusedNorms(), "op " + pair[0] + " fused into " + pair[1]);
                    double err = OpenClTestSupport.relativeError(got, unfused);
                    worst = Math.max(worst, err);
                    assertTrue(err <= tolerance, "op " + pair[1] + " fused with norm " + pair[0] + ", " + n
                            + " tokens, layer " + layer + ": relative error " + err);
                    assertTrue(differs(got, start, pair[1]), "op " + pair[1] + " wrote its outputs");
                }
            }
        }
        System.out.printf("fused vs unfused, %s, tensor cores %s: worst relative error %.2e%n", type,
                tensorCores.mode(), worst);
    }

    private static void reset(DeviceLlama2 device, float[][] fields, float[][] start) {
        for (int f = 0; f < fields.length; f++) {
            System.arraycopy(start[f], 0, fields[f], 0, start[f].length);
            device.launcher().put(fields[f]);
        }
    }

    /** What op wrote for n tokens (entries logit rows), read back: q's rows and the whole KV pool, hb's or logits' rows. */
    static float[] outputs(DeviceLlama2 device, int op, int n, int entries) {
        Llama2Kernel k = device.k;
        return switch (op) {
            case OP_QKV_ROPE -> {
                device.launcher().get(k.q);
                device.launcher().get(k.kv);
                float[] out = java.util.Arrays.copyOf(k.q, n * k.dim + k.kv.length);
                System.arraycopy(k.kv, 0, out, n * k.dim, k.kv.length);
                yield out;
            }
            case OP_FFN_SWIGLU -> {
                device.launcher().get(k.hb);
                yield java.util.Arrays.copyOf(k.hb, n * k.hidden);
            }
            default -> {
                device.launcher().get(k.logits);
                yield java.util.Arrays.copyOf(k.logits, entries * k.vocab);
            }
        };
    }

    private static boolean differs(float[] got, float[][] start, int op) {
        float[] before = switch (op) {
            case OP_QKV_ROPE -> start[3];
            case OP_FFN_SWIGLU -> start[2];
            default -> start[5];
        };
        return before[0] != got[0] && before[1] != got[1];
    }

    private static OpenClLlama2Model load(TensorType type, String fuseNorm) {
        return withFuseNorm(fuseNorm, () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL,
                OpenClTestSupport.device(), 64, type, Dispatch.DIRECT, Matmul.HAND));
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "Q8_0"})
    void wholeStepsGiveTheUnfusedLogitsWithinRounding(TensorType type) {
        double worst = 0;
        try (OpenClLlama2Model fused = load(type, "on"); OpenClLlama2Model plain = load(type, "off")) {
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
                        double err = OpenClTestSupport.relativeError(fl[i], pl[i]);
                        worst = Math.max(worst, err);
                        assertTrue(err <= 1e-5, type + " step " + step + " sequence " + i + ": relative error " + err);
                        assertEquals(argmax(pl[i]), argmax(fl[i]), type + " step " + step + " sequence " + i);
                        next[i] = argmax(pl[i]);
                    }
                }
            } finally {
                fc.forEach(KvCache::close);
                pc.forEach(KvCache::close);
            }
            System.out.printf("whole steps fused vs unfused, %s: worst relative error %.2e%n", type, worst);
            assertEquals(0, plain.fusedNorms());
            assertEquals(expectFused, fused.fusedNorms());
            assertTrue(expectFused < 12L * (2 * layers + 1), "some steps ran the tiled kernel with the norm kernels");
        }
    }

    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32"})
    void fusedGreedyStoryIsTheCpus(TensorType type) {
        // auto (the default) fuses where the consumer runs the 1-token tier: every norm of a one-token step.
        try (OpenClLlama2Model fused = load(type, "auto"); Model cpu = Models.load(Models.DEFAULT_MODEL)) {
            List<Integer> g = greedy(fused, 60, false);
            assertEquals(greedy(cpu, 60, false), g);
            assertTrue(g.size() >= 48, "only " + g.size() + " tokens");
            long perStep = 2L * fused.config().nLayers() + 1;
            assertEquals(60 * perStep, fused.fusedNorms());
            // Two sequences of one token each: the 2-token tier, no norm fuses under auto.
            try (KvCache a = fused.newKvCache(); KvCache b = fused.newKvCache()) {
                float[][] logits = new float[2][fused.config().vocabSize()];
                fused.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(a, new int[]{1}, 0, 1),
                        new ForwardBatch.Entry(b, new int[]{1}, 0, 1))), logits);
                assertEquals(60 * perStep, fused.fusedNorms());
                fused.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(a, new int[]{argmax(logits[0])}, 0, 1))),
                        logits);
                assertEquals(61 * perStep, fused.fusedNorms());
            }
        }
    }
}

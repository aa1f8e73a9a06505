package io.stepstream.gpu;

import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.bench.SyntheticLlama;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static io.stepstream.gpu.OpenClTestSupport.relativeError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A whole synthetic F16 (and Q8_0) model with tensor cores emulated (mmt on every pass of more than 8 tokens) against the
 * same model with them off (mm / mv on f32 activations): a 21-token prefill of each of 12 sequences, then 10
 * greedy steps decoding all 12 together (12 tokens a step: mmt again), the same greedy tokens every step and
 * logits close.
 *
 * <p>Tolerance: the two differ only in mmt rounding each matmul input to f16, a relative change of at most
 * 2^-11 per activation. Over a K-term dot product with random signs that moves an output by about 2^-11 of its
 * typical size; through 2 layers of 4 matmuls plus the classifier (RMSNorm keeps the scale) the logits move by a
 * few times that, ~1e-3 of max |logit| (7.4e-4 measured here). 5e-3 leaves room for that; a wrong index or
 * epilogue moves them by O(1).
 * The difference must also not be zero: the tensor-core path did round.
 *
 * <p>The same for Q8_0 weights (dim 64, hidden 96, kvDim 32: every matrix's columns a multiple of 32, so every pass
 * can run mmt): both paths multiply the same int8 values and block scales; besides the f16 activations mmt only
 * groups the f32 sums by block (sum of scale x block sum instead of sum of (q x scale) x x), a change of f32
 * rounding size (~1e-7), so the bound above holds unchanged (7.0e-4 measured here).
 *
 * <p>F32 weights run 3xTF32 on mmt (activations not rounded; no f16 anywhere): each product within ~3 * 2^-22 of
 * fp32's and the sums in another order, so the logits differ by f32 rounding only (9.4e-7 of max |logit| measured);
 * {@value #F32_TOLERANCE} holds that with room and fails a single tf32 mma per product (10 mantissa bits, as f16:
 * ~1e-3 like the F16 row above). They still differ (worst > 0): mmt's sums are not mm's.
 */
class TensorCoreForwardTest {
    /** dim, hidden and kvDim multiples of 8 (mmt's 16-byte weight loads), 100-token vocabulary. */
    private static final ModelConfig C = new ModelConfig(64, 96, 2, 4, 2, 100, 64, 1e-5f, 10000f, false);
    private static final double TOLERANCE = 5e-3;
    private static final double F32_TOLERANCE = 1e-5;
    private static final int SEQUENCES = 12;

    @ParameterizedTest(name = "{0}")
    @EnumSource(value = TensorType.class, names = {"F16", "Q8_0", "F32"})
    void emulatedTensorCoresGiveTheSameGreedyTokensAndCloseLogits(TensorType type) {
        Llama2Weights w = SyntheticLlama.weights(C, 11);
        Llama2Tokenizer tok = SyntheticLlama.tokenizer(C.vocabSize());
        Random random = new Random(12);
        double tolerance = type == TensorType.F32 ? F32_TOLERANCE : TOLERANCE;
        try (OpenClLlama2Model off = new OpenClLlama2Model("off", w, tok, OpenClTestSupport.device(), 64,
                type, Dispatch.DIRECT, Matmul.HAND, TensorCores.OFF);
             OpenClLlama2Model tc = new OpenClLlama2Model("tc", w, tok, OpenClTestSupport.device(), 64,
                     type, Dispatch.DIRECT, Matmul.HAND,
                     TensorCores.EMULATE.withMinTokens(9).withF32(type == TensorType.F32))) {
            assertEquals("off", off.tensorCores());
            assertTrue(tc.tensorCores().startsWith("emulated"), tc.tensorCores());
            assertTrue(tc.deviceName().contains(type.name() + " tensor cores emulated"), tc.deviceName());
            List<KvCache> offCaches = new ArrayList<>();
            List<KvCache> tcCaches = new ArrayList<>();
            int[][] next = new int[SEQUENCES][];
            try {
                for (int s = 0; s < SEQUENCES; s++) {
                    offCaches.add(off.newKvCache());
                    tcCaches.add(tc.newKvCache());
                    next[s] = new int[21];
                    for (int i = 0; i < next[s].length; i++) {
                        next[s][i] = random.nextInt(C.vocabSize());
                    }
                }
                double worst = 0;
                for (int step = 0; step < 11; step++) {
                    // step 0: one 21-token prefill per sequence (a pass each); then all 12 decode together
                    List<float[]> a = new ArrayList<>();
                    List<float[]> b = new ArrayList<>();
                    if (step == 0) {
                        for (int s = 0; s < SEQUENCES; s++) {
                            a.add(OpenClTestSupport.forward(off, C.vocabSize(), List.of(offCaches.get(s)), List.of(next[s]))[0]);
                            b.add(OpenClTestSupport.forward(tc, C.vocabSize(), List.of(tcCaches.get(s)), List.of(next[s]))[0]);
                        }
                    } else {
                        a = List.of(OpenClTestSupport.forward(off, C.vocabSize(), offCaches, List.of(next)));
                        b = List.of(OpenClTestSupport.forward(tc, C.vocabSize(), tcCaches, List.of(next)));
                    }
                    for (int s = 0; s < SEQUENCES; s++) {
                        double err = relativeError(b.get(s), a.get(s));
                        worst = Math.max(worst, err);
                        assertTrue(err <= tolerance, "step " + step + " sequence " + s + ": relative error " + err);
                        int greedy = argmax(a.get(s));
                        assertEquals(greedy, argmax(b.get(s)), "step " + step + " sequence " + s + ": greedy token");
                        next[s] = new int[]{greedy};
                    }
                }
                System.out.printf(java.util.Locale.ROOT, "%s: worst relative logit difference tc vs off %.3g%n", type,
                        worst);
                assertTrue(worst > 0, "the tensor-core path adds in another order (F16, Q8_0: on f16-rounded"
                        + " activations): logits cannot be identical");
                // 2 layers x 4 matmul passes on mmt for each of 12 prefills (their classifier: one row, mv), and
                // those 8 + the classifier (12 rows) for each of 10 decode steps
                assertEquals(12L * 8 + 10L * 9, tc.tensorCorePasses());
            } finally {
                offCaches.forEach(KvCache::close);
                tcCaches.forEach(KvCache::close);
            }
        }
    }
}

package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.Models;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static io.stepstream.gpu.OpenClTestSupport.greedy;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The direct dispatch against Aparapi's on stories260K: the same generated OpenCL C on the same device and
 * ranges must give bit-for-bit the same logits, step after step, for batches mixing prefill chunks and decodes
 * (the direct model runs Aparapi's matmul pass here: the hand kernels add in another order, see
 * HandMatmulForwardTest);
 * and the direct model's greedy story is the CPU model's.
 */
class DispatchEquivalenceTest {
    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16", "Q8_0"})
    void directAndAparapiDispatchGiveBitwiseIdenticalLogits(TensorType type) {
        try (OpenClLlama2Model aparapi = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL,
                OpenClTestSupport.device(), 64, type, Dispatch.APARAPI);
             OpenClLlama2Model direct = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL,
                     OpenClTestSupport.device(), 64, type, Dispatch.DIRECT, Matmul.APARAPI)) {
            assertEquals(Dispatch.APARAPI, aparapi.dispatch());
            assertEquals(Dispatch.DIRECT, direct.dispatch());
            assertEquals(type, direct.weightType());
            int vocab = direct.config().vocabSize();
            Random random = new Random(100 + type.ordinal());
            List<KvCache> ac = new ArrayList<>();
            List<KvCache> dc = new ArrayList<>();
            List<Integer> next = new ArrayList<>();
            try {
                // Each step: every live sequence decodes one token or takes a random prefill chunk (1..20 tokens),
                // and from time to time a new sequence joins with its first chunk.
                for (int step = 0; step < 8; step++) {
                    if (step == 0 || step == 3 || step == 5) {
                        ac.add(aparapi.newKvCache());
                        dc.add(direct.newKvCache());
                        next.add(-1);
                    }
                    List<ForwardBatch.Entry> ae = new ArrayList<>();
                    List<ForwardBatch.Entry> de = new ArrayList<>();
                    int prefills = 0;
                    for (int i = 0; i < dc.size(); i++) {
                        int[] tokens;
                        if (next.get(i) < 0 || random.nextInt(3) == 0) {
                            tokens = new int[1 + random.nextInt(20)];
                            for (int j = 0; j < tokens.length; j++) {
                                tokens[j] = 3 + random.nextInt(vocab - 3);
                            }
                            if (dc.get(i).length() == 0) {
                                tokens[0] = 1;
                            }
                            prefills += tokens.length > 1 ? 1 : 0;
                        } else {
                            tokens = new int[]{next.get(i)};
                        }
                        ae.add(new ForwardBatch.Entry(ac.get(i), tokens, 0, tokens.length));
                        de.add(new ForwardBatch.Entry(dc.get(i), tokens, 0, tokens.length));
                    }
                    float[][] al = new float[dc.size()][vocab];
                    float[][] dl = new float[dc.size()][vocab];
                    aparapi.forward(new ForwardBatch(ae), al);
                    direct.forward(new ForwardBatch(de), dl);
                    assertEquals(1, direct.lastStepLaunches());
                    for (int i = 0; i < dc.size(); i++) {
                        assertArrayEquals(bits(al[i]), bits(dl[i]), type + " step " + step + " sequence " + i
                                + " (" + prefills + " prefill chunks in the step)");
                        assertEquals(ac.get(i).length(), dc.get(i).length());
                        next.set(i, argmax(dl[i]));
                    }
                }
                assertEquals(8, direct.launches());
                assertEquals(8L * aparapi.passesPerStep(), aparapi.passesLaunched());
                assertEquals(aparapi.passesLaunched(), direct.passesLaunched());
                assertTrue(dc.stream().mapToInt(KvCache::length).max().orElse(0) > 16, "a sequence crossed a block");
            } finally {
                ac.forEach(KvCache::close);
                dc.forEach(KvCache::close);
            }
        }
    }

    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = Float.floatToRawIntBits(v[i]);
        }
        return b;
    }

    @Test
    void directGreedyTokensEqualTheCpuModelFor64Tokens() {
        try (OpenClLlama2Model direct = OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL,
                OpenClTestSupport.device(), 16, TensorType.F32, Dispatch.DIRECT);
             Model cpu = Models.load(Models.DEFAULT_MODEL)) {
            List<Integer> d = greedy(direct, 64, true);
            List<Integer> c = greedy(cpu, 64, true);
            assertEquals(64, c.size(), "the CPU story ended early");
            assertEquals(c, d);
            assertEquals(64, direct.launches());
            assertEquals(64L * direct.passesPerStep(), direct.passesLaunched());
        }
    }

    @Test
    void theDispatchPropertyIsParsedWithAClearError() {
        assertEquals(Dispatch.DIRECT, Dispatch.parse(" Direct "));
        assertEquals(Dispatch.APARAPI, Dispatch.parse("aparapi"));
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> Dispatch.parse("cuda"));
        assertTrue(e.getMessage().contains("aparapi or direct") && e.getMessage().contains("cuda"), e.getMessage());
    }
}

package io.stepstream.gpu;

import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static io.stepstream.gpu.Llama2Kernel.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The matvec's token tiers (mv.cl as mv_t1, mv_t2, mv_t4, mv_t8 ...): a token's outputs are BITWISE the same in
 * every tier that holds the step's token count, for each of the five matmul passes and their epilogues (QKV +
 * RoPE + KV writes, WO + residual, W1/W3 + SwiGLU, W2 + residual, classifier), for F32, F16 and Q8_0 weights on
 * fresh random weights and inputs, n = 1..8. The inputs and outputs are reset to the same random contents before
 * each tier runs; which tier ran is read back from the pass. (HandMatmulTest checks the default tier against a
 * double reference.) Also with a top tier that is not a power of two, a 16-lane row and the XH (f16-rounded
 * activations) build that tensor cores bring.
 */
class MatvecTierTest {
    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (TensorType type : new TensorType[]{TensorType.F32, TensorType.F16, TensorType.Q8_0}) {
            out.add(Arguments.of(type, MatmulTiles.DEFAULT, TensorCores.OFF));
        }
        out.add(Arguments.of(TensorType.F32, MatmulTiles.DEFAULT.with("mv_wg=64,mv_lpr=16,mv_tokens=6,mv_unroll=2"),
                TensorCores.OFF));
        // Emulated tensor cores from 16 tokens: the matvecs are built with XH and round the activations to f16.
        // tensor cores past the largest tier, so every tier's matvec runs with XH rounding
        out.add(Arguments.of(TensorType.F16, MatmulTiles.DEFAULT, TensorCores.EMULATE.withMinTokens(9)));
        return out.stream();
    }

    @ParameterizedTest(name = "{0}, {1}, tensor cores {2}")
    @MethodSource("cases")
    void everyTierGivesEachTokenTheSameBits(TensorType type, MatmulTiles tiles, TensorCores tensorCores) {
        Random random = new Random(77L + type.ordinal() + tiles.mvTokens());
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, type, Dispatch.DIRECT,
                Matmul.HAND, tiles, tensorCores)) {
            HandMatmul hook = device.handMatmul();
            int[] tiers = tiles.mvTiers();
            int[] ops = {OP_QKV_ROPE, OP_WO_RESIDUAL, OP_FFN_SWIGLU, OP_W2_RESIDUAL, OP_LOGITS};
            int compared = 0;
            for (int n = 1; n <= tiles.mvTokens(); n++) {
                HandMatmulTest.Case c = new HandMatmulTest.Case(device, random, n);
                Llama2Kernel k = device.k;
                float[][] fields = {k.xb, k.hb, k.x, k.q, k.kv, k.logits};
                float[][] start = new float[fields.length][];
                for (int f = 0; f < fields.length; f++) {
                    start[f] = fields[f].clone();
                    for (int i = 0; i < start[f].length; i++) {
                        start[f][i] = random.nextFloat() * 2 - 1;
                    }
                }
                for (int op : ops) {
                    int[] first = null;
                    for (int tier : tiers) {
                        if (tier < n) {
                            continue;
                        }
                        hook.forceMvTier(tier);
                        for (int f = 0; f < fields.length; f++) {
                            System.arraycopy(start[f], 0, fields[f], 0, start[f].length);
                            device.launcher().put(fields[f]);
                        }
                        c.run(op);
                        assertEquals(tier, hook.lastMvTier(op), "op " + op + " at " + n + " tokens ran tier " + tier);
                        int[] bits = outputBits(device, op);
                        if (first == null) {
                            first = bits;
                        } else {
                            assertArrayEquals(first, bits, "op " + op + ", " + n + " tokens: tier " + tier
                                    + " against tier " + tiers[firstTier(tiers, n)]);
                            compared++;
                        }
                    }
                    assertTrue(changed(first, start, op, device.k), "op " + op + " wrote its outputs");
                }
            }
            hook.forceMvTier(0);
            assertTrue(compared > 0);
        }
    }

    /**
     * {@code stepstream.opencl.longRowMvMaxTokens}: passes of at least longRowCols columns (here every pass: 4) run
     * the matvec up to that many tokens (2) and the tiled kernel above; the results stay the double reference's
     * (HandMatmulTest's checks).
     */
    @org.junit.jupiter.api.Test
    void longRowPassesTakeTheTiledKernelAboveTheirMatvecCap() {
        String[] keys = {MatmulTiles.LONG_ROWS_MIN_COLS_PROPERTY, MatmulTiles.LONG_ROWS_MV_MAX_TOKENS_PROPERTY};
        String[] values = {"4", "2"};
        Random random = new Random(91);
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        DeviceLlama2 built;
        for (int i = 0; i < keys.length; i++) {
            System.setProperty(keys[i], values[i]);
        }
        try {
            built = new DeviceLlama2(w, OpenClTestSupport.device(), 12, TensorType.F32, Dispatch.DIRECT, Matmul.HAND,
                    MatmulTiles.DEFAULT, TensorCores.OFF);
        } finally {
            for (String key : keys) {
                System.clearProperty(key);
            }
        }
        try (DeviceLlama2 device = built) {
            for (int n = 1; n <= 3; n++) {
                new HandMatmulTest.Case(device, random, n).checkAll();
                for (int op : new int[]{OP_QKV_ROPE, OP_WO_RESIDUAL, OP_FFN_SWIGLU, OP_W2_RESIDUAL}) {
                    assertEquals(n <= 2 ? MatmulTiles.DEFAULT.mvTiers()[n - 1] : 0,
                            device.handMatmul().lastMvTier(op), "op " + op + " at " + n + " tokens");
                }
            }
        }
    }

    private static int firstTier(int[] tiers, int n) {
        for (int i = 0; i < tiers.length; i++) {
            if (tiers[i] >= n) {
                return i;
            }
        }
        return -1;
    }

    /** The bits of every buffer op writes, read back from the device. */
    private static int[] outputBits(DeviceLlama2 device, int op) {
        Llama2Kernel k = device.k;
        float[][] outs = switch (op) {
            case OP_QKV_ROPE -> new float[][]{k.q, k.kv};
            case OP_WO_RESIDUAL, OP_W2_RESIDUAL -> new float[][]{k.x};
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

    /** Whether the first output of op differs from the reset contents (so the comparison saw real results). */
    private static boolean changed(int[] bits, float[][] start, int op, Llama2Kernel k) {
        int field = switch (op) {
            case OP_QKV_ROPE -> 3;
            case OP_WO_RESIDUAL, OP_W2_RESIDUAL -> 2;
            case OP_FFN_SWIGLU -> 1;
            default -> 5;
        };
        return Float.floatToRawIntBits(start[field][0]) != bits[0] && !Arrays.stream(bits).allMatch(b -> b == bits[0]);
    }
}

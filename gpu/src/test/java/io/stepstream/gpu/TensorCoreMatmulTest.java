package io.stepstream.gpu;

import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The tensor-core matmul kernel (matmul.cl's mmt on mma.cl's emulated m16n8k16, so every index of the real
 * kernel runs on PoCL) with each of the five passes' epilogues, against HandMatmulTest's float64 reference of
 * f16 weights times f16-rounded activations, on fresh random inputs. Row counts 48, 80, 97, 160 (none a multiple
 * of the 64-row tile), token counts 2..70 (a 1-token matvec, so every other count goes to mmt), tiles of 16..128
 * tokens, K-slices of 32, 64 and 128 (48- and 80-column matrices: a short last slice), split-K off and forced.
 *
 * <p>Tolerance: the products of two halves are exact in f32 and the emulation adds at most 80 of them in f32,
 * each add off by at most 2^-24 of its partial sum: about 80 * 6e-8 of the sum of |w x| in the worst case and
 * ~sqrt(80) * 6e-8 in practice, while a wrong fragment index, tile offset or epilogue row is off by O(1). The
 * shared 1e-4 of max |reference| covers the former with room and fails on any of the latter.
 */
class TensorCoreMatmulTest {
    /** A one-token matvec: 2 tokens and up reach the tiled kernels. */
    private static final MatmulTiles ONE_TOKEN_MV = MatmulTiles.DEFAULT.with("mv_tokens=1");

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        TensorCores any = TensorCores.EMULATE.withMinTokens(1);
        for (int tokens : new int[]{2, 7, 9, 16, 17, 33, 64, 70}) {
            out.add(Arguments.of(tokens, any, ONE_TOKEN_MV.with("ks=1")));
        }
        out.add(Arguments.of(5, any.withTiles(16, 64), ONE_TOKEN_MV.with("ks=1")));
        out.add(Arguments.of(37, any.withTiles(16, 64), ONE_TOKEN_MV.with("ks=1")));
        out.add(Arguments.of(70, any.withTiles(128, 32), ONE_TOKEN_MV.with("ks=1")));
        out.add(Arguments.of(33, any.withTiles(32, 64), ONE_TOKEN_MV.with("ks=1")));
        // one 128-column K-slice covers all 48 or 80 columns (zero-filled past the end)
        out.add(Arguments.of(40, any.withTiles(32, 128), ONE_TOKEN_MV.with("ks=1")));
        // Split-K: 2 or 3 slices of 32 columns (48 and 80 columns), partial sums added in slice order by the last
        // group of each tile to finish (an atomic counter per tile).
        out.add(Arguments.of(3, any, ONE_TOKEN_MV.with("ks=3")));
        out.add(Arguments.of(21, any, ONE_TOKEN_MV.with("ks=3")));
        out.add(Arguments.of(70, any.withTiles(32, 32), ONE_TOKEN_MV.with("ks=2")));
        // fr=0: the partial sums go to a second kernel, mm_reduce, instead of the tile's last group
        out.add(Arguments.of(21, any.withTilesSpec("tn=16,tk=32,fr=0"), ONE_TOKEN_MV.with("ks=3")));
        out.add(Arguments.of(70, any.withTilesSpec("tn=64,tk=32,fr=0"), ONE_TOKEN_MV.with("ks=2")));
        // tiers: each token count runs its tier's kernel (mmt0 up to 12 tokens, mmt1 up to 40, mmt2 above)
        TensorCores tiers = any.withTilesSpec("12:tn=16,tk=64/40:tn=32,tk=128,occ=4/tn=64,tk=32");
        for (int tokens : new int[]{3, 12, 13, 40, 41, 70}) {
            out.add(Arguments.of(tokens, tiers, ONE_TOKEN_MV));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} tokens, {1}, {2}")
    @MethodSource("cases")
    void everyPassAndEpilogueOnEmulatedTensorCoresMatchesTheReference(int tokens, TensorCores tc, MatmulTiles tiles) {
        Random random = new Random(977L * tokens + tc.label().hashCode() + tiles.ks());
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, TensorType.F16,
                Dispatch.DIRECT, Matmul.HAND, tiles, tc)) {
            assertTrue(device.tensorCores().startsWith("emulated " + tc.label()), device.tensorCores());
            new HandMatmulTest.Case(device, random, tokens, true).checkAll();
            assertEquals(5, device.handMatmulPasses());
            assertEquals(5, device.tensorCorePasses(), "each of the five matmul passes ran on mmt");
            if (tiles.ks() > 1) {
                assertTrue(device.handMatmulMaxSplit() > 1, "split-K ran");
            }
        }
    }

    /**
     * Q8_0 needs columns that are multiples of 32 (a row's scale blocks start with it): dim 96, hidden 160 (3 and 5
     * blocks; 64-column K-slices leave a half slice, 128-column ones a slice with one or three blocks past the end),
     * kvDim 32; rows 160 (QKV), 96, 320 (W1/W3), 96, 97 (classifier): four of five not a multiple of 64.
     */
    static final ModelConfig Q8 = new ModelConfig(96, 160, 2, 6, 2, 97, 64, 1e-5f, 10000f, false);

    static Stream<Arguments> q8Cases() {
        List<Arguments> out = new ArrayList<>();
        TensorCores any = TensorCores.EMULATE.withMinTokens(1);
        for (int tokens : new int[]{2, 9, 17, 33, 70}) {
            out.add(Arguments.of(tokens, any, ONE_TOKEN_MV.with("ks=1")));
        }
        out.add(Arguments.of(37, any.withTiles(16, 32), ONE_TOKEN_MV.with("ks=1")));
        out.add(Arguments.of(40, any.withTiles(32, 128), ONE_TOKEN_MV.with("ks=1")));
        out.add(Arguments.of(70, any.withTiles(128, 64), ONE_TOKEN_MV.with("ks=1")));
        // split-K: 96 columns in 3 slices of 32, 160 in 64 + 64 + 32; fused and with mm_reduce
        out.add(Arguments.of(21, any, ONE_TOKEN_MV.with("ks=3")));
        out.add(Arguments.of(21, any.withTilesSpec("tn=16,tk=32,fr=0"), ONE_TOKEN_MV.with("ks=3")));
        out.add(Arguments.of(70, any.withTiles(32, 32), ONE_TOKEN_MV.with("ks=2")));
        TensorCores tiers = any.withTilesSpec("12:tn=16,tk=64/40:tn=32,tk=128,occ=4/tn=64,tk=32");
        for (int tokens : new int[]{12, 13, 41}) {
            out.add(Arguments.of(tokens, tiers, ONE_TOKEN_MV));
        }
        return out.stream();
    }

    /**
     * Q8_0 weights on mmt against the float64 reference of the int8 values times their block scales (HandMatmulTest's
     * decoding) and f16-rounded activations. The kernel sums each block's 32 exact products q x xh in f32 and adds
     * the block sum times its scale with one fma, so it is off by f32 rounding of sums of at most 160 terms: the
     * same bound as F16's, far under the shared 1e-4 of max |reference|; a wrong scale (block, row or segment) is
     * off by O(1) of the block's share.
     */
    @ParameterizedTest(name = "q8_0: {0} tokens, {1}, {2}")
    @MethodSource("q8Cases")
    void q8WeightsOnEmulatedTensorCoresMatchTheReferenceForEveryEpilogue(int tokens, TensorCores tc,
                                                                        MatmulTiles tiles) {
        Random random = new Random(613L * tokens + tc.label().hashCode() + tiles.ks());
        Llama2Weights w = HandMatmulTest.randomWeights(random, Q8);
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, TensorType.Q8_0,
                Dispatch.DIRECT, Matmul.HAND, tiles, tc)) {
            assertTrue(device.tensorCores().startsWith("emulated " + tc.label()), device.tensorCores());
            new HandMatmulTest.Case(device, random, tokens, true, Q8).checkAll();
            assertEquals(5, device.handMatmulPasses());
            assertEquals(5, device.tensorCorePasses(), "each of the five matmul passes ran on mmt");
            if (tiles.ks() > 1) {
                assertTrue(device.handMatmulMaxSplit() > 1, "split-K ran");
            }
        }
    }

    static Stream<Arguments> f32Cases() {
        List<Arguments> out = new ArrayList<>();
        // 3xTF32 on (off by default); the default tiers become F32's (tk=32, activations split when staged)
        TensorCores any = TensorCores.EMULATE.withMinTokens(1).withF32(true);
        // 1 token too: with the threshold at 1 every count runs mmt (the diffusion canvases' setting)
        for (int tokens : new int[]{1, 2, 7, 9, 16, 17, 33, 64, 70}) {
            out.add(Arguments.of(tokens, any, ONE_TOKEN_MV.with("ks=1")));
        }
        out.add(Arguments.of(37, any.withTiles(16, 32), ONE_TOKEN_MV.with("ks=1")));
        // one 128-column K-slice covers all 48 or 80 columns (zero-filled past the end); over 48 KiB with the
        // activations staged twice, so this tier splits them at every use
        out.add(Arguments.of(23, any.withTiles(16, 128), ONE_TOKEN_MV.with("ks=1")));
        out.add(Arguments.of(40, any.withTiles(64, 64), ONE_TOKEN_MV.with("ks=1")));
        out.add(Arguments.of(70, any.withTiles(32, 32), ONE_TOKEN_MV.with("ks=2")));
        // split-K: fused (the tile's last group adds the slices) and with mm_reduce
        out.add(Arguments.of(21, any, ONE_TOKEN_MV.with("ks=3")));
        out.add(Arguments.of(21, any.withTilesSpec("tn=16,tk=32,fr=0"), ONE_TOKEN_MV.with("ks=3")));
        TensorCores tiers = any.withTilesSpec("12:tn=16,tk=64/40:tn=32,tk=32,occ=4/tn=64,tk=32");
        for (int tokens : new int[]{12, 13, 41}) {
            out.add(Arguments.of(tokens, tiers, ONE_TOKEN_MV));
        }
        // split-K fixed per tier (ks=2 in the spec) or by shape (48 / 80 columns: a slice per 32 columns or more,
        // rows x slices up to 256: 1..2 slices), whatever MatmulTiles' ks=1 says
        out.add(Arguments.of(33, any.withTilesSpec("tn=32,tk=32,ks=2"), ONE_TOKEN_MV.with("ks=1")));
        out.add(Arguments.of(50, any.withShapeSplit(new TensorCores.ShapeSplit(32, 256)), ONE_TOKEN_MV.with("ks=1")));
        // a fill no pass reaches on 2 compute units: every count on the tier of most groups (tn=16)
        out.add(Arguments.of(45, any.withFill(64), ONE_TOKEN_MV.with("ks=1")));
        return out.stream();
    }

    /**
     * The bound of the F32 checks, relative to max |reference| (HandMatmulTest's measure). 3xTF32 loses at most
     * ~3 * 2^-22 (7e-7) of each product |w x| in the split; the emulation adds the 3 x 80 partial products of a row
     * in f32 as mm adds its 80 (about 2^-24 of the running sum per addition, ~sqrt(80) 2^-24 in practice), so both
     * land near 1e-7 of max |reference| for these uniform inputs (measured: 3xTF32 0.6-3.7e-7, mm 0.6-5.4e-7).
     * One plain tf32 mma (no split) is off by ~2^-12 of each product: 2.3-2.9e-4 here (checked by dropping the two
     * small-term mma), so 2e-6 fails it by 100x and holds 3xTF32 within ~10x of fp32.
     */
    static final double F32_TOLERANCE = 2e-6;

    /**
     * F32 weights on mmt (3xTF32 on the emulated m16n8k8 tf32) against the float64 reference of the f32 weights
     * times the f32 activations (not rounded), every epilogue; the plain fp32 {@code mm} runs on the same data
     * (same seeds) first and its error per check is printed beside 3xTF32's when one fails.
     */
    @ParameterizedTest(name = "f32: {0} tokens, {1}, {2}")
    @MethodSource("f32Cases")
    void f32WeightsOn3xTf32MatchTheReferenceForEveryEpilogueAsCloselyAsMm(int tokens, TensorCores tc,
                                                                         MatmulTiles tiles) {
        long seed = 331L * tokens + tc.label().hashCode() + tiles.ks();
        java.util.Map<String, Double> mmErrors;
        try (DeviceLlama2 device = new DeviceLlama2(HandMatmulTest.randomWeights(new Random(seed)),
                OpenClTestSupport.device(), 12, TensorType.F32, Dispatch.DIRECT, Matmul.HAND, tiles,
                tc.withMode(TensorCores.Mode.OFF))) {
            HandMatmulTest.Case mm = new HandMatmulTest.Case(device, new Random(seed + 1), tokens, false);
            mm.tolerance = F32_TOLERANCE;
            mm.checkAll();
            assertEquals(0, device.tensorCorePasses());
            mmErrors = mm.errors;
        }
        try (DeviceLlama2 device = new DeviceLlama2(HandMatmulTest.randomWeights(new Random(seed)),
                OpenClTestSupport.device(), 12, TensorType.F32, Dispatch.DIRECT, Matmul.HAND, tiles, tc)) {
            assertTrue(device.tensorCores().startsWith("emulated " + tc.forWeights(Llama2Kernel.WT_F32).label())
                    && device.tensorCores().endsWith("(3xtf32)"), device.tensorCores());
            HandMatmulTest.Case c = new HandMatmulTest.Case(device, new Random(seed + 1), tokens, false);
            c.tolerance = F32_TOLERANCE;
            c.baseline = mmErrors;
            c.checkAll();
            assertEquals(5, device.handMatmulPasses());
            assertEquals(5, device.tensorCorePasses(), "each of the five matmul passes ran on mmt");
            if (tiles.ks() > 1 || tc.tiles().getLast().ks() > 1 || tc.shapeSplit().cols() > 0) {
                assertTrue(device.handMatmulMaxSplit() > 1, "split-K ran");
            }
        }
    }

    @Test
    void belowTheThresholdAndForOtherEncodingsThePassesStayOnMm() {
        Random random = new Random(5);
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, TensorType.F16,
                Dispatch.DIRECT, Matmul.HAND, ONE_TOKEN_MV, TensorCores.EMULATE.withMinTokens(16))) {
            // mm, but on f16-rounded activations like mmt (XH): the reference rounds them too
            new HandMatmulTest.Case(device, random, 15, true).checkAll();
            assertEquals(0, device.tensorCorePasses(), "15 tokens < 16: mm");
        }
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, TensorType.F32,
                Dispatch.DIRECT, Matmul.HAND, ONE_TOKEN_MV, TensorCores.EMULATE.withMinTokens(1))) {
            assertEquals("off", device.tensorCores(), "f32TensorCores is off by default: F32 weights stay on mm");
            new HandMatmulTest.Case(device, random, 20, false).checkAll();
            assertEquals(0, device.tensorCorePasses());
        }
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, TensorType.Q8_0,
                Dispatch.DIRECT, Matmul.HAND, ONE_TOKEN_MV, TensorCores.EMULATE.withMinTokens(1))) {
            // 48 and 80 columns: Q8_0 blocks of 32 straddle rows, which mmt's per-row scales cannot take
            assertTrue(device.tensorCores().startsWith("emulated"), device.tensorCores());
            new HandMatmulTest.Case(device, random, 20, true).checkAll();
            assertEquals(0, device.tensorCorePasses(), "columns not a multiple of 32: mm");
        }
        try (DeviceLlama2 device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, TensorType.F16,
                Dispatch.DIRECT, Matmul.HAND, ONE_TOKEN_MV, TensorCores.AUTO)) {
            assertEquals("off", device.tensorCores(), "auto on a device without NVIDIA compute capability 8.0+");
        }
    }

    @Test
    void optionsAreValidatedWithClearErrors() {
        assertEquals(TensorCores.Mode.EMULATE, TensorCores.parseMode(" Emulate "));
        assertEquals(TensorCores.Mode.AUTO, TensorCores.parseMode(null));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TensorCores.parseMode("on"));
        assertTrue(e.getMessage().contains(TensorCores.PROPERTY) && e.getMessage().contains("'on'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.AUTO.withTilesSpec("tn=24"));
        assertTrue(e.getMessage().contains("tn must be a multiple of 16"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.AUTO.withTilesSpec("tk=48"));
        assertTrue(e.getMessage().contains("tk must be 32, 64 or 128"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.AUTO.withTilesSpec("tm=64"));
        assertTrue(e.getMessage().contains("'tm=64'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.AUTO.withMinTokens(0));
        assertTrue(e.getMessage().contains(TensorCores.MIN_TOKENS_PROPERTY), e.getMessage());
        assertEquals(new TensorCores(TensorCores.Mode.AUTO, TensorCores.DEFAULT_MIN_TOKENS, List.of(new TensorCores.Tile(Integer.MAX_VALUE, 32, 64,
                4, true))), TensorCores.AUTO.withTilesSpec("tn=32, tk=64,occ=4"));
        // the default tiers: 16 tokens per group up to 16 tokens, 32 up to 32, 64 above
        TensorCores tiered = TensorCores.AUTO;
        assertEquals("mmt64x16k64<=16,mmt64x32k64<=32,mmt64x64k64", tiered.label());
        assertEquals(List.of(0, 0, 1, 1, 2), java.util.stream.IntStream.of(9, 16, 17, 32, 33).map(tiered::tierFor)
                .boxed().toList());
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.AUTO.withTilesSpec("tn=16/tn=32"));
        assertTrue(e.getMessage().contains("needs 'UPTO:'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> TensorCores.AUTO.withTilesSpec("32:tn=16/16:tn=32/tn=64"));
        assertTrue(e.getMessage().contains("bounds must increase"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.AUTO.withTilesSpec("fr=2"));
        assertTrue(e.getMessage().contains("fr must be 0 or 1"), e.getMessage());
        assertEquals("mmt64x32k32+reduce", TensorCores.AUTO.withTilesSpec("tn=32,tk=32,fr=0").label());
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.AUTO.withTilesSpec("occ=0"));
        assertTrue(e.getMessage().contains("occ must be 1..16"), e.getMessage());
        // split-K: 32 row tiles of a 2048-row pass at 32 tokens on 132 units; occ 4 reaches 16 slices of 128
        assertEquals(9, MatmulTiles.splitFor(32, 2048, 132, 32, 0, 2, TensorCores.MAX_SPLIT));
        assertEquals(16, MatmulTiles.splitFor(32, 2048, 132, 32, 0, 4, TensorCores.MAX_SPLIT));
        assertEquals(8, MatmulTiles.splitFor(32, 2048, 132, 128, 0, 4, TensorCores.MAX_SPLIT));
        // F32: off unless asked; with the default tiers its own (tk=32), explicit tiers as given
        assertTrue(!TensorCores.AUTO.f32() && !TensorCores.AUTO.appliesTo(Llama2Kernel.WT_F32)
                && TensorCores.AUTO.withF32(true).appliesTo(Llama2Kernel.WT_F32));
        assertEquals("mmt64x16k32<=16,mmt64x32k32<=32,mmt64x64k32",
                TensorCores.AUTO.forWeights(Llama2Kernel.WT_F32).label());
        assertEquals("mmt64x32k64", TensorCores.AUTO.withTiles(32, 64).forWeights(Llama2Kernel.WT_F32).label());
        assertEquals(TensorCores.AUTO, TensorCores.AUTO.forWeights(Llama2Kernel.WT_F16));
        assertTrue(TensorCores.parseF32("3xtf32") && !TensorCores.parseF32(null) && !TensorCores.parseF32("off"));
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.parseF32("1xtf32"));
        assertTrue(e.getMessage().contains(TensorCores.F32_PROPERTY), e.getMessage());
    }
}

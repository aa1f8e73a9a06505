package io.stepstream.gpu;

import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static io.stepstream.gpu.Llama2Kernel.OP_LOGITS;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A token's matmul result must not depend on the batch around it (diffusion step batching compares batched
 * requests with their runs alone). The classifier pass (97 rows, 48 columns) of the same activation rows alone
 * (n tokens) and as the first rows of a 70-token batch, on emulated tensor cores:
 * <ul>
 *   <li>mmt for every count with the split fixed: bitwise equal, although the default tiers run 16-, 32- and
 *       64-token tiles for these counts (same 64-column K-slices), so mmt's result for a token depends neither on
 *       its tile, lane or neighbours nor on the tier (no race, no stale local memory);</li>
 *   <li>default kernel choice (1..8 tokens mv, 9..15 mm, 16+ mmt): equal up to the f32 summation order, 1e-5 of
 *       max |logit|. Before XH, mv and mm multiplied f32 activations where mmt rounds them to f16, a 2^-11
 *       relative change per activation: ~1e-4 here, which flipped greedy picks of diffusion requests.</li>
 * </ul>
 */
class TensorCoreBatchInvarianceTest {
    private static final int BIG = 70;

    @Test
    void sameKernelAndSplitGiveBitwiseEqualRowsAloneAndBatched() {
        for (String ks : new String[]{"ks=1", "ks=2"}) {
            MatmulTiles tiles = MatmulTiles.DEFAULT.with("mv_tokens=1," + ks);
            try (Pass p = new Pass(tiles, TensorCores.EMULATE.withMinTokens(1), 5)) {
                float[] batched = p.logits(BIG);
                for (int n : new int[]{2, 9, 20, 33, 64}) {
                    assertArrayEquals(Arrays.copyOf(batched, n * p.vocab), p.logits(n), ks + ", " + n + " tokens");
                }
            }
        }
    }

    /** A threshold of 1 takes even the matvec's counts (1..8 tokens) onto mmt: bitwise equal from one token. */
    @Test
    void thresholdOfOneTakesEveryCountOntoMmtBitwise() {
        try (Pass p = new Pass(MatmulTiles.DEFAULT.with("ks=1"), TensorCores.EMULATE.withMinTokens(1), 7)) {
            float[] batched = p.logits(BIG);
            for (int n : new int[]{1, 3, 8, 9}) {
                assertArrayEquals(Arrays.copyOf(batched, n * p.vocab), p.logits(n), n + " tokens");
            }
        }
    }

    /**
     * Q8_0 weights (96 columns: 3 scale blocks in a 64-column slice and a half one) on mmt from one token, split
     * fixed: bitwise equal too, so diffusion canvases of Q8_0 weights can batch on tensor cores as F16's do.
     */
    @Test
    void q8WeightsOnMmtFromOneTokenAreBitwiseEqualAloneAndBatched() {
        try (Pass p = new Pass(MatmulTiles.DEFAULT.with("ks=1"), TensorCores.EMULATE.withMinTokens(1), 8,
                TensorType.Q8_0)) {
            float[] batched = p.logits(BIG);
            for (int n : new int[]{1, 3, 9, 20, 33}) {
                assertArrayEquals(Arrays.copyOf(batched, n * p.vocab), p.logits(n), n + " tokens");
            }
            assertTrue(p.device.tensorCorePasses() > 0, "the Q8_0 classifier ran on mmt");
        }
    }

    /** F32 weights on 3xTF32 from one token, split fixed: bitwise equal alone and batched, as F16's and Q8_0's. */
    @Test
    void f32WeightsOn3xTf32FromOneTokenAreBitwiseEqualAloneAndBatched() {
        try (Pass p = new Pass(MatmulTiles.DEFAULT.with("ks=1"), TensorCores.EMULATE.withMinTokens(1).withF32(true),
                9, TensorType.F32)) {
            float[] batched = p.logits(BIG);
            for (int n : new int[]{1, 3, 9, 20, 33}) {
                assertArrayEquals(Arrays.copyOf(batched, n * p.vocab), p.logits(n), n + " tokens");
            }
            assertTrue(p.device.tensorCorePasses() > 0, "the F32 classifier ran on mmt");
        }
    }

    /**
     * Splitting the activations once when staged (the default where the tile fits 48 KiB) gives the same bits as
     * splitting them at every use ({@code tf32StageSplit=false}), for each tier and with split-K (the same split of
     * the same values, the same mma order).
     */
    @Test
    void stagedActivationSplitGivesTheSameBits() {
        MatmulTiles tiles = MatmulTiles.DEFAULT.with("ks=2");
        TensorCores tc = TensorCores.EMULATE.withMinTokens(1).withF32(true)
                .withTilesSpec("12:tn=16,tk=64/tn=64,tk=32");
        int[] counts = {9, 40};
        float[][] staged = new float[counts.length][];
        try (Pass p = new Pass(tiles, tc, 11, TensorType.F32)) {
            for (int i = 0; i < counts.length; i++) {
                staged[i] = p.logits(counts[i]);
            }
            assertTrue(p.device.tensorCorePasses() > 0 && p.device.handMatmulMaxSplit() > 1, "mmt with split-K ran");
        }
        assertTrue(tc.tiles().stream().allMatch(t -> t.stageSplit(true) && !t.stageSplit(false)));
        String before = System.getProperty(TensorCores.TF32_STAGE_SPLIT_PROPERTY);
        System.setProperty(TensorCores.TF32_STAGE_SPLIT_PROPERTY, "false");
        try (Pass p = new Pass(tiles, tc, 11, TensorType.F32)) {
            assertTrue(tc.tiles().stream().noneMatch(t -> t.stageSplit(true)), "the switch turns it off");
            for (int i = 0; i < counts.length; i++) {
                assertArrayEquals(staged[i], p.logits(counts[i]), counts[i] + " tokens");
            }
        } finally {
            if (before == null) {
                System.clearProperty(TensorCores.TF32_STAGE_SPLIT_PROPERTY);
            } else {
                System.setProperty(TensorCores.TF32_STAGE_SPLIT_PROPERTY, before);
            }
        }
        // tn=64 with tk=64 would need (64 + 128) x 68 words staged split, over 48 KiB: it splits at every use
        TensorCores.Tile big = new TensorCores.Tile(Integer.MAX_VALUE, 64, 64, 2, true);
        assertTrue(!big.stageSplit(true) && big.localBytes(false, true) == 128L * 68 * 4);
        assertEquals(192L * 36 * 4, new TensorCores.Tile(Integer.MAX_VALUE, 64, 32, 2, true).localBytes(false, true));
    }

    @Test
    void defaultKernelChoiceKeepsRowsAloneWithinSummationOrder() {
        try (Pass p = new Pass(MatmulTiles.DEFAULT, TensorCores.EMULATE, 6)) {
            float[] batched = p.logits(BIG);
            for (int n : new int[]{1, 5, 8, 12, 15, 16, 40}) {
                double err = OpenClTestSupport.relativeError(p.logits(n), toDouble(Arrays.copyOf(batched,
                        n * p.vocab)), n * p.vocab);
                assertTrue(err <= 1e-5, n + " tokens alone vs in a batch of " + BIG + ": relative error " + err);
            }
        }
    }

    private static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    /** A device model whose classifier pass runs alone on fixed random activation rows. */
    private static final class Pass implements AutoCloseable {
        final DeviceLlama2 device;
        final int vocab;

        Pass(MatmulTiles tiles, TensorCores tc, long seed) {
            this(tiles, tc, seed, TensorType.F16);
        }

        /** Q8_0: the shape of TensorCoreMatmulTest.Q8 (columns a multiple of 32). */
        Pass(MatmulTiles tiles, TensorCores tc, long seed, TensorType type) {
            Random random = new Random(seed);
            Llama2Weights w = type == TensorType.Q8_0 ? HandMatmulTest.randomWeights(random, TensorCoreMatmulTest.Q8)
                    : HandMatmulTest.randomWeights(random);
            device = new DeviceLlama2(w, OpenClTestSupport.device(), 12, type, Dispatch.DIRECT,
                    Matmul.HAND, tiles, tc);
            vocab = w.config().vocabSize();
            Llama2Kernel k = device.k;
            device.ensureCapacity(BIG, BIG);
            for (int t = 0; t < BIG; t++) {
                k.logitRow[t] = t;
            }
            device.putStepInputs();
            for (int i = 0; i < BIG * w.config().dim(); i++) {
                k.xb[i] = random.nextFloat() * 2 - 1;
            }
            device.launcher().put(k.xb);
        }

        /** Logits of activation rows 0..n-1 (the classifier pass alone, n rows). */
        float[] logits(int n) {
            Arrays.fill(device.k.logits, Float.NaN);
            device.launcher().put(device.k.logits);
            device.launchPasses(new int[]{OP_LOGITS}, new int[]{0}, n, n, 40);
            device.launcher().get(device.k.logits);
            return Arrays.copyOf(device.k.logits, n * vocab);
        }

        @Override
        public void close() {
            device.close();
        }
    }
}

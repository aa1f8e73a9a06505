package io.stepstream.gpu;

import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.bench.SyntheticLlama;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.OpenClTestSupport.argmax;
import static io.stepstream.gpu.OpenClTestSupport.relativeError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * How a pass picks its tier and split-K without depending on the batch: {@link TensorCores#FILL_PROPERTY} (a pass
 * short of groups takes a smaller-tn tier) and {@link TensorCores.ShapeSplit} / a tier's {@code ks} (a split-K by
 * shape). On a whole synthetic F32 model with emulated 3xTF32 from one token (every pass of every count on mmt, as
 * diffusion canvases run): a 21-token prefill of each of 12 sequences, then 10 greedy steps of all 12 together.
 * <ul>
 *   <li>with a fill no pass reaches on 2 compute units, every pass runs the tier of most groups (tn=16) instead of
 *       its token count's (21-token prefills: tn=32), and the logits are bitwise those without the fill: tiers of
 *       one tk with one K-slice do the same mma in the same order for every token;</li>
 *   <li>its greedy tokens equal those of F32 off tensor cores (fp32 mv / mm) at every step, the logits within 1e-5
 *       of max |logit| of theirs (TensorCoreForwardTest's F32 bound).</li>
 * </ul>
 * The split-K by shape changes the sums (more slices), so it is checked alone vs batched on diffusion canvases
 * (OpenClDiffusionModelTest) and against float64 (TensorCoreMatmulTest); here its rule.
 */
class TensorCoreFillTest {
    private static final ModelConfig C = new ModelConfig(64, 96, 2, 4, 2, 100, 64, 1e-5f, 10000f, false);
    private static final int SEQUENCES = 12;

    @Test
    void aFillChangesTheTilesNotTheBitsAndKeepsOffsGreedyTokens() {
        Llama2Weights w = SyntheticLlama.weights(C, 23);
        Llama2Tokenizer tok = SyntheticLlama.tokenizer(C.vocabSize());
        TensorCores tc = TensorCores.EMULATE.withMinTokens(1).withF32(true);
        List<OpenClLlama2Model> models = new ArrayList<>();
        List<List<KvCache>> caches = new ArrayList<>();
        try {
            models.add(model("off", w, tok, TensorCores.OFF));
            models.add(model("tc", w, tok, tc));
            models.add(model("tc fill", w, tok, tc.withFill(64)));
            assertTrue(models.getLast().tensorCores().contains("fill=64")
                    && models.getLast().tensorCores().endsWith("(3xtf32)"), models.getLast().tensorCores());
            Random random = new Random(29);
            int[][] next = new int[SEQUENCES][];
            for (OpenClLlama2Model m : models) {
                List<KvCache> c = new ArrayList<>();
                for (int s = 0; s < SEQUENCES; s++) {
                    c.add(m.newKvCache());
                }
                caches.add(c);
            }
            for (int s = 0; s < SEQUENCES; s++) {
                next[s] = random.ints(21, 0, C.vocabSize()).toArray();
            }
            double worst = 0;
            for (int step = 0; step < 11; step++) {
                // step 0: one 21-token prefill per sequence; then the 12 sequences decode together
                float[][][] logits = new float[models.size()][][];
                for (int m = 0; m < models.size(); m++) {
                    if (step == 0) {
                        logits[m] = new float[SEQUENCES][];
                        for (int s = 0; s < SEQUENCES; s++) {
                            logits[m][s] = OpenClTestSupport.forward(models.get(m), C.vocabSize(), List.of(caches.get(m).get(s)),
                                    List.of(next[s]))[0];
                        }
                    } else {
                        logits[m] = OpenClTestSupport.forward(models.get(m), C.vocabSize(), caches.get(m), List.of(next));
                    }
                }
                for (int s = 0; s < SEQUENCES; s++) {
                    assertArrayEquals(logits[1][s], logits[2][s], "step " + step + " sequence " + s
                            + ": with the fill vs without");
                    double err = relativeError(logits[2][s], logits[0][s]);
                    worst = Math.max(worst, err);
                    assertTrue(err <= 1e-5, "step " + step + " sequence " + s + ": 3xTF32 vs off, relative error "
                            + err);
                    int greedy = argmax(logits[0][s]);
                    assertEquals(greedy, argmax(logits[2][s]), "step " + step + " sequence " + s + ": greedy token");
                    next[s] = new int[]{greedy};
                }
            }
            assertTrue(worst > 0, "3xTF32 adds in another order than fp32 mm: the logits cannot be identical");
            for (int m = 1; m < models.size(); m++) {
                // 12 prefills and 10 decode steps, each 2 layers x 4 passes + the classifier, all on mmt
                assertEquals(22L * 9, models.get(m).tensorCorePasses(), models.get(m).tensorCores());
            }
        } finally {
            caches.forEach(c -> c.forEach(KvCache::close));
            models.forEach(OpenClLlama2Model::close);
        }
    }

    /** F32's default tiers (tn 16 / 32 / 64, all tk=32) on an H200's 132 compute units. */
    @Test
    void fillPicksTheLargestTileThatMakesEnoughGroups() {
        TensorCores tc = TensorCores.AUTO.withF32(true).forWeights(Llama2Kernel.WT_F32);
        assertEquals(2, tc.tierFor(600, 768, 768, 132), "fill off: the token count's tier");
        TensorCores fill = tc.withFill(2);
        // 768 rows (12 row tiles) at 600 tokens: tn=64 120 groups, tn=32 228, tn=16 456 of the 264 wanted
        assertEquals(0, fill.tierFor(600, 768, 768, 132));
        // 2304 rows: tn=64 already makes 360
        assertEquals(2, fill.tierFor(600, 2304, 768, 132));
        // 1,200 tokens over 768 rows: tn=32 makes 456
        assertEquals(1, fill.tierFor(1200, 768, 768, 132));
        // nothing reaches it: the most groups; never a larger tn than the count's own tier
        assertEquals(0, fill.tierFor(40, 64, 768, 132));
        assertEquals(0, fill.tierFor(10, 64000, 768, 132));
        // a split by shape counts: 768x768 in 3 slices makes 360 groups at tn=64
        assertEquals(2, fill.withShapeSplit(TensorCores.AUTO_SPLIT).tierFor(600, 768, 768, 132));
        assertEquals(1, fill.withShapeSplit(TensorCores.AUTO_SPLIT).tierFor(300, 768, 768, 132));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> tc.withFill(-1));
        assertTrue(e.getMessage().contains(TensorCores.FILL_PROPERTY), e.getMessage());
    }

    /** The canvases' split-K by shape: never by token count. */
    @Test
    void shapeSplitFollowsTheShapeOnly() {
        TensorCores.ShapeSplit auto = TensorCores.ShapeSplit.parse("auto");
        assertEquals(TensorCores.AUTO_SPLIT, auto);
        assertEquals(3, auto.slices(768, 768));
        assertEquals(4, auto.slices(768, 2048));
        assertEquals(2, auto.slices(2304, 768));
        assertEquals(1, auto.slices(4096, 768));
        assertEquals(1, auto.slices(32000, 768));
        assertEquals(0, TensorCores.ShapeSplit.parse("off").slices(768, 768), "off: the tiers' rule");
        assertEquals(new TensorCores.ShapeSplit(128, 1024), TensorCores.ShapeSplit.parse(" 128/1024 "));
        TensorCores tc = TensorCores.AUTO.withF32(true).forWeights(Llama2Kernel.WT_F32).withShapeSplit(auto);
        assertEquals(3, tc.fixedSplit(2, 768, 768));
        assertEquals(1, tc.fixedSplit(2, 768, 32), "at most the K-slices in the columns");
        assertTrue(tc.label().endsWith(",split=256/3072"), tc.label());
        // a tier's own ks comes first
        TensorCores tier = TensorCores.AUTO.withTilesSpec("tn=64,tk=32,ks=2").withShapeSplit(auto);
        assertEquals(2, tier.fixedSplit(0, 768, 768));
        assertEquals("mmt64x64k32s2", tier.tiles().getFirst().label());
        assertEquals(0, TensorCores.AUTO.fixedSplit(0, 768, 768), "neither: MatmulTiles and occ decide");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TensorCores.ShapeSplit.parse("256"));
        assertTrue(e.getMessage().contains(TensorCores.SHAPE_SPLIT_PROPERTY), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TensorCores.AUTO.withTilesSpec("ks=17"));
        assertTrue(e.getMessage().contains("ks (a fixed split-K)"), e.getMessage());
    }

    private static OpenClLlama2Model model(String name, Llama2Weights w, Llama2Tokenizer tok, TensorCores tc) {
        return new OpenClLlama2Model(name, w, tok, OpenClTestSupport.device(), 64, TensorType.F32, Dispatch.DIRECT,
                Matmul.HAND, tc);
    }
}

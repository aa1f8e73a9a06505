package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Models;
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

import static io.stepstream.gpu.Llama2Kernel.*;
import static io.stepstream.gpu.OpenClTestSupport.greedy;
import static io.stepstream.gpu.OpenClTestSupport.withProperty;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The persistent layer tail (tail.cl's {@code tail_t1}, {@link PersistentTail}) against the kernels it replaces, on
 * PoCL, where its ticket scheme runs as on a GPU (groups on several threads, a group spinning on another's count).
 * <ul>
 * <li>Pass level, fresh random weights (F32, F16, Q8_0; F16 with emulated tensor cores, whose matvecs round the
 * activations to f16) and fresh random residual, activations and KV pool for every case: a layer's schedule from WO to
 * W2, plus the next layer's attention norm + QKV when there is a next layer, run once as the kernels (mv_t1, mv_t1n
 * staged, ...) and once as the tail, for 1, 3, 7, 64 and 1000 groups (one unit a phase; a few blocks a unit; one block;
 * more groups than blocks: the extra ones find no ticket). x, xb, hb, q and the KV pool must be bitwise equal: each
 * phase is the replaced kernel's arithmetic in its order (same staging float4 per item, same lanes a row, same lane
 * tree, same epilogue), so any visibility or ordering bug (a phase reading a stale or half-written activation) or a
 * skipped or doubled unit shows up. Each case is a new launch on the same counters: the counters must be zero after it
 * (unreset counters hand out no tickets, and nothing would be written).</li>
 * <li>A split model (weights in chunks of whole layers) whose tail reads the layer's chunk and the next layer's QKV from
 * the next chunk: logits bitwise the unsplit model's without the tail.</li>
 * <li>Whole model: stories260K's greedy decode with the tail on equals the one with it off and the CPU's, and the tail
 * ran for every layer of every decode step.</li>
 * </ul>
 */
class PersistentTailTest {
    /**
     * Weight type, tensor cores, the tail's shape and the matvec tiles of the kernels it is compared with (the tail
     * takes their lanes). The 4-lane cases have 2 loads before the wait and 3 after (rows of 48 and 80 columns: 3 and
     * 5 float4s a lane), so the post-wait loop and its partial unroll run; 48 items of 4 lanes are blocks of 12 rows,
     * which divide none of the phases' 160 and 80 rows; sb=1 stages one float4 at a time.
     */
    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (TensorType type : new TensorType[]{TensorType.F32, TensorType.F16, TensorType.Q8_0}) {
            out.add(Arguments.of(type, TensorCores.OFF, "", ""));
        }
        out.add(Arguments.of(TensorType.F16, TensorCores.EMULATE, "", ""));
        out.add(Arguments.of(TensorType.Q8_0, TensorCores.OFF, "pf=2,unroll=3,sb=1", "mv_wg=32,mv_lpr=4"));
        out.add(Arguments.of(TensorType.Q8_0, TensorCores.OFF, "pf=2,unroll=3,early=0", "mv_wg=32,mv_lpr=4"));
        out.add(Arguments.of(TensorType.F32, TensorCores.OFF, "pf=2,unroll=3,upg=2", "mv_wg=48,mv_lpr=4"));
        out.add(Arguments.of(TensorType.F16, TensorCores.OFF, "pf=1,unroll=2,upg=3,act=cg", "mv_wg=16,mv_lpr=2"));
        // 16 lanes a row against the matvec's 16 (blocks of 8 rows)
        out.add(Arguments.of(TensorType.F32, TensorCores.OFF, "pf=1,unroll=2", "mv_lpr=16"));
        // the default shape (16 lanes) against kernels of 16 lanes
        out.add(Arguments.of(TensorType.Q8_0, TensorCores.OFF, "DEFAULT", "mv_lpr=16"));
        // W2 reading hb in its dot (as mv_t1 reads its input), with tensor cores' f16 rounding of it
        out.add(Arguments.of(TensorType.F16, TensorCores.EMULATE, "stage3=0,pf=2,unroll=2", ""));
        // the one-launch-per-phase diagnostic runs the same units, so it is bitwise the kernels too
        out.add(Arguments.of(TensorType.F32, TensorCores.OFF, "split=1", ""));
        return out.stream();
    }

    @ParameterizedTest(name = "{0}, tensor cores {1}, tail ''{2}'', tiles ''{3}''")
    @MethodSource("cases")
    void tailIsBitwiseTheKernelsItReplaces(TensorType type, TensorCores tensorCores, String shape, String tiles) {
        Random random = new Random(4100L + type.ordinal() * 7L + tensorCores.mode().ordinal() + shape.hashCode());
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        MatmulTiles matmulTiles = MatmulTiles.DEFAULT.with(tiles);
        // lpr=0: the matvec's lanes (the default shape's 16 are not the default matvec's 32)
        String spec = shape.equals("DEFAULT") ? "" : "lpr=0" + (shape.isEmpty() ? "" : "," + shape);
        try (DeviceLlama2 device = withProperty(PersistentTail.PROPERTY, "on", () -> withProperty(
                PersistentTail.SHAPE_PROPERTY, spec, () -> new DeviceLlama2(w, OpenClTestSupport.device(), 12, type,
                        Dispatch.DIRECT, Matmul.HAND, matmulTiles, tensorCores)))) {
            HandMatmul hand = device.handMatmul();
            PersistentTail tail = hand.tail();
            assertNotNull(tail, "the tail is built with " + PersistentTail.PROPERTY + "=on");
            assertEquals(matmulTiles.mvWg(), tail.shape().wg(), "wg 0: the matvec's");
            Llama2Kernel k = device.k;
            int layers = w.config().nLayers();
            long tails = 0;
            for (int layer = 0; layer < layers; layer++) {
                boolean next = layer + 1 < layers;
                int[] ops = next
                        ? new int[]{OP_WO_RESIDUAL, OP_RMSNORM_FFN, OP_FFN_SWIGLU, OP_W2_RESIDUAL, OP_RMSNORM_ATT,
                        OP_QKV_ROPE}
                        : new int[]{OP_WO_RESIDUAL, OP_RMSNORM_FFN, OP_FFN_SWIGLU, OP_W2_RESIDUAL};
                int[] opLayers = new int[ops.length];
                for (int i = 0; i < ops.length; i++) {
                    opLayers[i] = i < 4 ? layer : layer + 1;
                }
                for (int groups : new int[]{1, 3, 7, 64, 1000}) {
                    String what = type + " layer " + layer + " groups " + groups;
                    new HandMatmulTest.Case(device, random, 1); // fresh token, position and block table
                    float[][] fields = {k.x, k.xb, k.hb, k.q, k.kv};
                    float[][] start = new float[fields.length][];
                    for (int f = 0; f < fields.length; f++) {
                        start[f] = new float[fields[f].length];
                        for (int i = 0; i < start[f].length; i++) {
                            // residuals of varied magnitude, so the fused norms' scale matters
                            start[f][i] = (random.nextFloat() * 2 - 1) * (f == 0 ? 1 + (i % 7) : 1);
                        }
                    }
                    hand.persistentTail(false);
                    reset(device, fields, start);
                    device.launchPasses(ops, opLayers, 1, 1, 40);
                    float[][] expected = read(device, fields);
                    assertEquals(tails, device.persistentTailLaunches(), what + ": tail off");

                    hand.persistentTail(true);
                    tail.groups(groups);
                    reset(device, fields, start);
                    device.launchPasses(ops, opLayers, 1, 1, 40);
                    float[][] got = read(device, fields);
                    assertEquals(++tails, device.persistentTailLaunches(), what + ": the tail ran");
                    assertArrayEquals(new int[tail.counters().length], tail.counters(),
                            what + ": the last group out left every counter zero");
                    String[] names = {"x", "xb", "hb", "q", "kv"};
                    for (int f = 0; f < fields.length; f++) {
                        assertArrayEquals(expected[f], got[f], what + ": " + names[f]);
                    }
                    assertTrue(differs(start[0], got[0]) && differs(start[2], got[2])
                            && (!next || differs(start[3], got[3]) && differs(start[4], got[4])),
                            what + ": the tail wrote x, hb and (with a next layer) q and the KV pool");
                }
            }
        }
    }

    @Test
    void tailRunsOnlyForAOneTokenLayerTail() {
        Random random = new Random(4200);
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        try (DeviceLlama2 device = withProperty(PersistentTail.PROPERTY, "on", () -> new DeviceLlama2(w,
                OpenClTestSupport.device(), 12, TensorType.F32, Dispatch.DIRECT, Matmul.HAND, MatmulTiles.DEFAULT,
                TensorCores.OFF))) {
            int[] ops = {OP_SCORES, OP_SOFTMAX, OP_ATTN_OUT, OP_WO_RESIDUAL, OP_RMSNORM_FFN, OP_FFN_SWIGLU,
                    OP_W2_RESIDUAL};
            int[] layers = new int[ops.length];
            new HandMatmulTest.Case(device, random, 2);
            device.launchPasses(ops, layers, 2, 2, 40);
            assertEquals(0, device.persistentTailLaunches(), "two tokens keep the kernels");
            new HandMatmulTest.Case(device, random, 1);
            device.launchPasses(ops, layers, 1, 1, 40);
            assertEquals(1, device.persistentTailLaunches(), "one token after its attention");
            // a schedule that is not the layer's whole tail keeps the kernels
            device.launchPasses(new int[]{OP_SCORES, OP_SOFTMAX, OP_ATTN_OUT, OP_WO_RESIDUAL, OP_RMSNORM_FFN},
                    new int[5], 1, 1, 40);
            assertEquals(1, device.persistentTailLaunches());
        }
        try (DeviceLlama2 plain = new DeviceLlama2(w, OpenClTestSupport.device(), 12, TensorType.F32, Dispatch.DIRECT,
                Matmul.HAND, MatmulTiles.DEFAULT, TensorCores.OFF)) {
            assertNull(plain.handMatmul().tail(), "auto by default: NVIDIA GPUs only");
        }
        for (String mode : new String[]{"off", "auto"}) {
            try (DeviceLlama2 off = withProperty(PersistentTail.PROPERTY, mode, () -> new DeviceLlama2(w,
                    OpenClTestSupport.device(), 12, TensorType.F32, Dispatch.DIRECT, Matmul.HAND, MatmulTiles.DEFAULT,
                    TensorCores.OFF))) {
                boolean built = off.handMatmul().tail() != null;
                io.stepstream.gpu.cl.ClDevice cl = ((DirectLauncher) off.launcher()).device();
                assertEquals(mode.equals("auto") && PersistentTail.autoTakes(cl.kind()
                        == io.stepstream.gpu.cl.ClDevice.Kind.GPU && io.stepstream.gpu.cl.ClRuntime.nvComputeCapability(
                        cl) >= PersistentTail.MIN_COMPUTE_CAPABILITY, Llama2Kernel.WT_F32, w.config().dim()), built,
                        mode + ": built on NVIDIA GPUs only under auto");
                if (!built) {
                    assertThrows(IllegalStateException.class, () -> off.handMatmul().persistentTail(true));
                }
            }
        }
    }

    /** The nowork diagnostic keeps the sync structure (it ends, counters zero) and does no weight work (x unchanged). */
    @Test
    void noworkDiagnosticSynchronisesAndWritesNothing() {
        Random random = new Random(4600);
        Llama2Weights w = HandMatmulTest.randomWeights(random);
        try (DeviceLlama2 device = withProperty(PersistentTail.PROPERTY, "on", () -> withProperty(
                PersistentTail.SHAPE_PROPERTY, "nowork=1,groups=5", () -> new DeviceLlama2(w,
                        OpenClTestSupport.device(), 12, TensorType.F32, Dispatch.DIRECT, Matmul.HAND,
                        MatmulTiles.DEFAULT, TensorCores.OFF)))) {
            new HandMatmulTest.Case(device, random, 1);
            float[] x = device.k.x;
            for (int i = 0; i < x.length; i++) {
                x[i] = random.nextFloat() * 2 - 1;
            }
            float[] before = x.clone();
            device.launcher().put(x);
            device.launchPasses(new int[]{OP_WO_RESIDUAL, OP_RMSNORM_FFN, OP_FFN_SWIGLU, OP_W2_RESIDUAL,
                    OP_RMSNORM_ATT, OP_QKV_ROPE}, new int[]{0, 0, 0, 0, 1, 1}, 1, 1, 40);
            device.launcher().get(x);
            assertEquals(1, device.persistentTailLaunches());
            assertArrayEquals(before, x);
            PersistentTail tail = device.handMatmul().tail();
            assertArrayEquals(new int[tail.counters().length], tail.counters());
        }
    }

    @Test
    void propertiesAreCheckedWithTheirNames() {
        assertEquals(new PersistentTail.Shape(40, 4, 128, 64, 8, 2, 3, 4, PersistentTail.Act.CG, 64, 0, 0, 0, 1, 1),
                PersistentTail.Shape.parse("groups=40, per_cu=4, wg=128,lpr=64,pf=8,unroll=2,upg=3,sb=4,act=cg,"
                        + "maxreg=64,shfl=0,early=0,stage3=0,nowork=1,split=1"));
        assertEquals(PersistentTail.Shape.DEFAULT, PersistentTail.Shape.parse(""));
        assertEquals(new PersistentTail.Shape(0, 4, 128, 16, 8, 8, 1, 4, PersistentTail.Act.RELAXED, 80, 1, 1, 1, 0, 0),
                PersistentTail.Shape.DEFAULT.resolved(MatmulTiles.DEFAULT));
        // groups an SM from ptxas' counts: 148 registers x 4 warps -> 3 groups (64K registers); 40 -> 8 by registers,
        // 9 by 24 KB of shared memory (228 KiB), so 8; 8 warps of 24 registers -> 8 groups by the 64-warp limit
        assertEquals(3, PersistentTail.residentPerSm("Used 148 registers, used 1 barriers, 24084 bytes smem", 128));
        assertEquals(8, PersistentTail.residentPerSm("Used 64 registers, used 1 barriers, 24084 bytes smem", 128));
        assertEquals(8, PersistentTail.residentPerSm("Used 24 registers, 1000 bytes smem", 256));
        assertEquals(0, PersistentTail.residentPerSm("no counts", 128));
        // per_cu=0 launches what ptxas says fits, or the fallback without its counts (a cached build has no log)
        PersistentTail.Shape resident = PersistentTail.Shape.parse("per_cu=0");
        assertEquals(4, PersistentTail.groupsPerCu(resident, 4));
        assertEquals(PersistentTail.FALLBACK_PER_CU, PersistentTail.groupsPerCu(resident, 0));
        assertEquals(3, PersistentTail.groupsPerCu(PersistentTail.Shape.parse("per_cu=3"), 4));
        // auto: F32 weights on an NVIDIA GPU with the tail's PTX only (F16 / Q8_0 were slower on the H200)
        assertTrue(PersistentTail.autoTakes(true, Llama2Kernel.WT_F32, 2048));
        assertFalse(PersistentTail.autoTakes(true, Llama2Kernel.WT_F16, 2048));
        assertFalse(PersistentTail.autoTakes(true, Llama2Kernel.WT_Q8_0, 2048));
        assertFalse(PersistentTail.autoTakes(false, Llama2Kernel.WT_F32, 2048));
        // wider models too (Llama-2-7B's 4096 was slower with it on the H200)
        assertFalse(PersistentTail.autoTakes(true, Llama2Kernel.WT_F32, 4096));
        // ptxas' counts of the tail kernel from a -cl-nv-verbose log, not those of the other kernels
        String log = String.join("\n", "ptxas info    : Compiling entry function 'mm' for 'sm_90'",
                "ptxas info    : Used 64 registers, 9000 bytes smem",
                "ptxas info    : Compiling entry function 'tail_t1' for 'sm_90'",
                "ptxas info    : Function properties for tail_t1",
                "    0 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads",
                "ptxas info    : Used 128 registers, 24584 bytes smem, 536 bytes cmem[0]");
        assertEquals("0 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads; Used 128 registers, 24584 bytes"
                + " smem, 536 bytes cmem[0]", PersistentTail.ptxasInfo(log));
        for (String bad : new String[]{"wg=96,lpr=32", "lpr=24", "pf=0", "upg=0", "sb=0", "act=weak", "depth=4",
                "groups=x", "per_cu=-1", "maxreg=300", "shfl=2", "early=-1", "stage3=2", "nowork=2", "split=2"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> PersistentTail.Shape.parse(bad), bad);
            assertTrue(e.getMessage().contains(PersistentTail.SHAPE_PROPERTY), e.getMessage());
        }
        Llama2Weights w = HandMatmulTest.randomWeights(new Random(4300));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> withProperty(PersistentTail.PROPERTY, "sometimes", () -> new DeviceLlama2(w,
                        OpenClTestSupport.device(), 12, TensorType.F32, Dispatch.DIRECT, Matmul.HAND,
                        MatmulTiles.DEFAULT, TensorCores.OFF)));
        assertTrue(e.getMessage().contains(PersistentTail.PROPERTY), e.getMessage());
    }

    /**
     * A model split into chunks of two layers (3 layers: 2 + 1): layer 1's tail reads WO..W2 from chunk 0 and layer 2's
     * QKV from chunk 1. Prefill, then one-token decodes: logits bitwise the unsplit model's without the tail.
     */
    @Test
    void splitModelTailReadsEachLayersChunk() {
        ModelConfig c = new ModelConfig(64, 96, 3, 4, 2, 160, 128, 1e-5f, 10000f, false);
        Llama2Weights w = HandMatmulTest.randomWeights(new Random(4400), c);
        long largest = 0;
        for (long e : WeightChunks.layerElements(c)) {
            largest = Math.max(largest, e);
        }
        long twoLayers = 2 * largest * Float.BYTES + 1;
        List<float[]> expected;
        try (OpenClLlama2Model off = synthetic(w)) {
            expected = decode(off, 8);
            assertEquals(0, off.persistentTailLaunches());
        }
        try (OpenClLlama2Model on = withProperty(WeightChunks.MAX_BUFFER_BYTES_PROPERTY, Long.toString(twoLayers),
                () -> withProperty(PersistentTail.PROPERTY, "on", () -> withProperty(PersistentTail.SHAPE_PROPERTY,
                        "lpr=0", () -> synthetic(w))))) {
            assertTrue(on.weightSplitDescription().contains("chunk"), on.weightSplitDescription());
            List<float[]> got = decode(on, 8);
            assertEquals(8L * c.nLayers(), on.persistentTailLaunches(), "every layer of every decode step");
            for (int i = 0; i < expected.size(); i++) {
                assertArrayEquals(expected.get(i), got.get(i), "logits of step " + i);
            }
        }
    }

    /**
     * An f16 KV pool (kvhalf): the tail's QKV phase stores K and V through kv.cl's rounding store, as the matvec's
     * epilogue does, so prefill + one-token decodes give logits bitwise the tail-off model's with the same f16 pool.
     */
    @Test
    void f16KvPoolTailIsBitwiseTheKernels() {
        ModelConfig c = new ModelConfig(64, 96, 3, 4, 2, 160, 128, 1e-5f, 10000f, false);
        Llama2Weights w = HandMatmulTest.randomWeights(new Random(4450), c);
        List<float[]> expected;
        try (OpenClLlama2Model off = withProperty(KvCacheType.PROPERTY, "f16", () -> synthetic(w))) {
            assertEquals(KvCacheType.F16, off.kvCache());
            expected = decode(off, 8);
            assertEquals(0, off.persistentTailLaunches());
        }
        try (OpenClLlama2Model on = withProperty(KvCacheType.PROPERTY, "f16", () -> withProperty(
                PersistentTail.PROPERTY, "on", () -> withProperty(PersistentTail.SHAPE_PROPERTY, "lpr=0",
                        () -> synthetic(w))))) {
            List<float[]> got = decode(on, 8);
            assertEquals(8L * c.nLayers(), on.persistentTailLaunches(), "every layer of every decode step");
            for (int i = 0; i < expected.size(); i++) {
                assertArrayEquals(expected.get(i), got.get(i), "logits of step " + i);
            }
        }
    }

    private static OpenClLlama2Model synthetic(Llama2Weights w) {
        return new OpenClLlama2Model("synthetic", w, io.stepstream.gpu.bench.SyntheticLlama.tokenizer(
                w.config().vocabSize()), OpenClTestSupport.device(), 64, TensorType.F32, Dispatch.DIRECT, Matmul.HAND,
                TensorCores.OFF);
    }

    /** A 9-token prefill then {@code steps} greedy one-token decodes: the logits of each forward. */
    private static List<float[]> decode(OpenClLlama2Model m, int steps) {
        int vocab = m.config().vocabSize();
        Random random = new Random(4500);
        List<float[]> out = new ArrayList<>();
        float[][] logits = new float[1][vocab];
        try (KvCache cache = m.newKvCache()) {
            int[] tokens = new int[9];
            tokens[0] = 1;
            for (int i = 1; i < tokens.length; i++) {
                tokens[i] = 3 + random.nextInt(vocab - 3);
            }
            for (int s = 0; s <= steps; s++) {
                m.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cache, tokens, 0, tokens.length))), logits);
                out.add(logits[0].clone());
                int best = 0;
                for (int i = 1; i < vocab; i++) {
                    best = logits[0][i] > logits[0][best] ? i : best;
                }
                tokens = new int[]{best};
            }
        }
        return out;
    }

    /** stories260K's greedy story with the tail on is the tail-off model's and the CPU's; every layer ran the tail. */
    @Test
    void greedyDecodeWithTheTailIsTheKernelsAndTheCpus() {
        int count = 40;
        List<Integer> cpuTokens;
        try (Model cpu = Models.load(Models.DEFAULT_MODEL)) {
            cpuTokens = greedy(cpu, count, false);
        }
        try (OpenClLlama2Model off = load()) {
            assertEquals(cpuTokens, greedy(off, count, false));
            assertEquals(0, off.persistentTailLaunches());
        }
        try (OpenClLlama2Model on = withProperty(PersistentTail.PROPERTY, "on", PersistentTailTest::load)) {
            assertEquals(cpuTokens, greedy(on, count, false));
            assertTrue(on.persistentTailLaunches() >= (long) (count - 1) * on.config().nLayers(),
                    on.persistentTailLaunches() + " tails");
        }
    }

    private static OpenClLlama2Model load() {
        return OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 64, TensorType.F32,
                Dispatch.DIRECT, Matmul.HAND);
    }

    private static void reset(DeviceLlama2 device, float[][] fields, float[][] start) {
        for (int f = 0; f < fields.length; f++) {
            System.arraycopy(start[f], 0, fields[f], 0, start[f].length);
            device.launcher().put(fields[f]);
        }
    }

    private static float[][] read(DeviceLlama2 device, float[][] fields) {
        float[][] out = new float[fields.length][];
        for (int f = 0; f < fields.length; f++) {
            device.launcher().get(fields[f]);
            out[f] = fields[f].clone();
        }
        return out;
    }

    private static boolean differs(float[] a, float[] b) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] != b[i]) {
                return true;
            }
        }
        return false;
    }
}

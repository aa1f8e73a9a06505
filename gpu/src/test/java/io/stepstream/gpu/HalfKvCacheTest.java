package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Models;
import io.stepstream.engine.Sampler;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static io.stepstream.gpu.TiledAttentionTest.Entry;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The f16 KV pool ({@link KvCacheType#F16}, {@value KvCacheType#PROPERTY}) on real OpenCL (PoCL here):
 * <ul>
 * <li>every attention kernel that reads the pool (attn_tiled plain and split, attn_decode, the three passes) against
 * a float64 reference of the half-rounded keys and values ({@code Float.floatToFloat16}), fresh random q and K/V
 * behind shuffled block tables, MHA and GQA heads; and, so that a float pool could not pass, farther from the
 * reference of the unrounded values;</li>
 * <li>the QKV epilogue's stores (matvec tiers, the tiled matmul, and the emulated tensor-core matmul) write exactly
 * {@code Float.floatToFloat16} (round to nearest even) of what the f32 pool gets, for a prefill and decode steps;</li>
 * <li>stories260K's greedy decode with an f16 pool keeps the f32 pool's tokens, logprobs close;</li>
 * <li>the pool's bytes and the default pool's blocks (twice the positions in the same memory);</li>
 * <li>bad property values and paths that cannot keep an f16 pool fail naming the property.</li>
 * </ul>
 */
class HalfKvCacheTest {
    private static final int CTX = 320;
    private static final int LAYER = TiledAttentionTest.LAYER;
    /**
     * Against float64 of the same half values the kernels' only error is f32 arithmetic: scores of <= 128 products,
     * an online softmax and value sums over <= 300 keys (PoCL: at most ~7e-7 for the split kernels and attn_decode, as
     * with an f32 pool, SplitAttentionTest / DecodeAttentionTest). Rounding the inputs to half moves the outputs by
     * ~1e-4 relative (2^-11 per element), far past this bound: the second check below.
     */
    private static final double TOLERANCE = 1e-5;

    private static final List<Entry> MIXED = List.of(Entry.causal(300, 300), Entry.canvas(100), Entry.causal(37, 5),
            Entry.causal(100, 1), Entry.canvas(1), Entry.causal(65, 64), Entry.causal(17, 17));
    private static final List<Entry> DECODES = List.of(Entry.causal(1, 1), Entry.causal(31, 1), Entry.causal(300, 1),
            Entry.causal(64, 1), Entry.causal(17, 1));

    static DeviceLlama2 device(Llama2Weights w, int blocks, TensorType type, TensorCores tc, KvCacheType kv) {
        return new DeviceLlama2(w, OpenClTestSupport.device(), blocks, type, Dispatch.DIRECT, Matmul.HAND,
                MatmulTiles.fromSystemProperty(), tc, kv);
    }

    /** Which attention kernel a variant runs, how it is asked for, and which counter proves it ran. */
    private enum Variant {
        TILED, PASSES, TILED_DECODE, SPLIT_3, DECODE_1, DECODE_3, DECODE_AUTO;

        List<Entry> step() {
            return this == TILED || this == PASSES ? MIXED : DECODES;
        }
    }

    /**
     * Heads and KV groups; an empty tile is attn_decode's f16 default (16-byte loads of 8 halves where the head allows),
     * {@code lanes=32} at head 128 (and lanes=4 at head 48) its 8-byte loads of 4 halves.
     */
    @ParameterizedTest(name = "head {0}, {1} heads over {2} KV heads, decode tile ''{3}''")
    @CsvSource({"64, 4, 4, ''", "128, 2, 2, ''", "128, 2, 2, 'lanes=32'", "64, 8, 2, ''", "64, 8, 1, ''",
            "48, 4, 4, ''", "48, 4, 4, 'lanes=4'", "8, 8, 4, ''"})
    void everyAttentionKernelReadsTheHalfPoolAsTheFloat64ReferenceOfItsHalves(int headSize, int nHeads, int nKvHeads,
                                                                             String tile) {
        ModelConfig c = new ModelConfig(headSize * nHeads, 16, 2, nHeads, nKvHeads, 7, CTX, 1e-5f, 10000f, false);
        Random random = new Random(17L * headSize + 5L * nHeads + nKvHeads + tile.hashCode());
        Llama2Weights w = TiledAttentionTest.randomWeights(c, random);
        DeviceLlama2 device = OpenClTestSupport.withProperty(DecodeAttention.TILE_PROPERTY, tile,
                () -> device(w, 96, TensorType.F32, TensorCores.OFF, KvCacheType.F16));
        try (DeviceLlama2 d = device) {
            assertEquals(DecodeAttention.Tile.parse(tile, headSize, nHeads / nKvHeads, KvCacheType.F16),
                    d.handStep().decodeTile());
            assertEquals(KvCacheType.F16, d.kvCache());
            assertTrue(d.kvDeviceOnly(), "an f16 pool has no Java mirror");
            assertEquals((long) d.maxBlocks() * d.k.blockFloats * 2, d.kvPoolBytes());
            assertTrue(d.handStep().decodeAvailable(), "attn_decode built");
            int elements = d.maxBlocks() * d.k.blockFloats;
            double worst = 0;
            for (Variant v : Variant.values()) {
                List<Entry> step = v.step();
                int[][] tables = TiledAttentionTest.layout(d, step, random);
                TiledAttentionTest.fill(d, d.k.q, random, 3);
                float[] raw = new float[elements];
                float[] halves = new float[elements];
                for (int i = 0; i < elements; i++) {
                    raw[i] = random.nextFloat() * 2 - 1;
                    halves[i] = Float.float16ToFloat(Float.floatToFloat16(raw[i]));
                }
                d.writeKv(0, raw, 0, elements);
                d.attention(v == Variant.PASSES ? Attention.PASSES : v == Variant.TILED ? Attention.TILED
                        : Attention.AUTO);
                d.attentionSplit(switch (v) {
                    case TILED, PASSES, TILED_DECODE -> AttentionSplit.OFF;
                    case SPLIT_3, DECODE_3 -> new AttentionSplit(3);
                    case DECODE_1 -> new AttentionSplit(1);
                    case DECODE_AUTO -> AttentionSplit.AUTO;
                });
                if (v == Variant.TILED_DECODE) {
                    d.attention(Attention.TILED);
                }
                d.decodeAttention(v.name().startsWith("DECODE") ? DecodeAttention.DECODE : DecodeAttention.TILED);
                long tiled = d.tiledAttentionPasses();
                long split = d.splitAttentionPasses();
                long decode = d.decodeAttentionPasses();
                float[] xb = TiledAttentionTest.xbAfterAttention(d, step, random);
                assertEquals(tiled + (v == Variant.PASSES ? 0 : 1), d.tiledAttentionPasses(), v + ": attn_tiled");
                assertEquals(split + (v == Variant.SPLIT_3 || v.name().startsWith("DECODE") ? 1 : 0),
                        d.splitAttentionPasses(), v + ": split build");
                assertEquals(decode + (v.name().startsWith("DECODE") ? 1 : 0), d.decodeAttentionPasses(),
                        v + ": attn_decode");

                double err = OpenClTestSupport.relativeError(xb, TiledAttentionTest.reference(d.k, halves, c, step,
                        tables), xb.length);
                double errRaw = OpenClTestSupport.relativeError(xb, TiledAttentionTest.reference(d.k, raw, c, step,
                        tables), xb.length);
                worst = Math.max(worst, err);
                assertTrue(err <= TOLERANCE, v + ": relative error " + err + " against float64 of the halves");
                assertTrue(errRaw > 10 * TOLERANCE, v + ": " + errRaw + " from float64 of the unrounded values: the"
                        + " pool did not hold halves");
            }
            System.out.printf("f16 KV head %d, %d/%d heads, tile %s: worst relative error %.3g vs float64 of the"
                    + " halves%n", headSize, nHeads, nKvHeads, d.handStep().decodeTile().label(), worst);
        }
    }

    /**
     * The QKV pass of both layers on the same random activations, f32 pool and f16 pool, same weights: steps that run
     * the tiled matmul (or, F16 weights, the emulated tensor-core matmul) and the matvec tiers. Every pool element of
     * the f16 model is {@code Float.floatToFloat16} of the f32 model's (round to nearest even), and q is the same bits.
     */
    @ParameterizedTest
    @EnumSource(value = TensorType.class, names = {"F32", "F16"})
    void theQkvEpilogueStoresKAndVRoundedToNearestEven(TensorType type) {
        ModelConfig c = new ModelConfig(64, 96, 2, 4, 2, 7, CTX, 1e-5f, 10000f, false);
        Random random = new Random(41 + type.ordinal());
        Llama2Weights w = TiledAttentionTest.randomWeights(c, random);
        TensorCores tc = type == TensorType.F16 ? TensorCores.EMULATE.withMinTokens(4) : TensorCores.OFF;
        try (DeviceLlama2 f32 = device(w, 96, type, tc, KvCacheType.F32);
             DeviceLlama2 f16 = device(w, 96, type, tc, KvCacheType.F16)) {
            assertTrue(!f32.kvDeviceOnly() && f16.kvDeviceOnly());
            int elements = f32.maxBlocks() * f32.k.blockFloats;
            // A prefill of three prompts (the tiled / tensor-core matmul), then decode steps of 3 and 1 entries and a
            // step of 2 x 2 tokens (matvec tiers 4, 1 and 4), each at later positions of its sequences.
            List<List<Entry>> steps = List.of(
                    List.of(Entry.causal(40, 40), Entry.causal(17, 17), Entry.causal(5, 5)),
                    List.of(Entry.causal(41, 1), Entry.causal(18, 1), Entry.causal(6, 1)),
                    List.of(Entry.causal(42, 1)),
                    List.of(Entry.causal(44, 2), Entry.causal(20, 2)));
            long tcBefore = f16.tensorCorePasses();
            for (int s = 0; s < steps.size(); s++) {
                List<Entry> step = steps.get(s);
                long seed = random.nextLong();
                TiledAttentionTest.layout(f32, step, new Random(seed));
                TiledAttentionTest.layout(f16, step, new Random(seed));
                int tokens = step.stream().mapToInt(Entry::rows).sum();
                float[] xb = new float[tokens * c.dim()];
                for (int i = 0; i < xb.length; i++) {
                    xb[i] = random.nextFloat() * 2 - 1;
                }
                for (DeviceLlama2 d : List.of(f32, f16)) {
                    System.arraycopy(xb, 0, d.k.xb, 0, xb.length);
                    d.launcher().put(d.k.xb);
                    d.launchPasses(new int[]{Llama2Kernel.OP_QKV_ROPE, Llama2Kernel.OP_QKV_ROPE}, new int[]{0, 1},
                            tokens, step.size(), TiledAttentionTest.maxLen(step));
                    d.launcher().finish();
                    d.launcher().get(d.k.q);
                }
                assertArrayEquals(java.util.Arrays.copyOf(f32.k.q, xb.length), java.util.Arrays.copyOf(f16.k.q,
                        xb.length), "step " + s + ": q");
                float[] pool = new float[elements];
                f32.readKv(0, pool, 0, elements);
                short[] bits = f16.readKvBits(0, elements);
                int written = 0;
                for (int i = 0; i < elements; i++) {
                    if (pool[i] != 0) {
                        written++;
                    }
                    if (bits[i] != Float.floatToFloat16(pool[i])) {
                        throw new AssertionError("step " + s + ", pool element " + i + ": f16 pool holds 0x"
                                + Integer.toHexString(bits[i] & 0xffff) + ", the f32 pool " + pool[i] + " (half 0x"
                                + Integer.toHexString(Float.floatToFloat16(pool[i]) & 0xffff) + ")");
                    }
                }
                // every step's K and V rows (2 layers x tokens x 2 x kvDim), of the earlier steps' what was not
                // overwritten: the comparison covered written values, not a zeroed pool
                assertTrue(written >= 2 * tokens * 2 * c.kvDim() * 9 / 10, "step " + s + ": " + written
                        + " nonzero pool elements");
                float[] widened = new float[elements];
                f16.readKv(0, widened, 0, elements);
                for (int i = 0; i < elements; i++) {
                    if (widened[i] != Float.float16ToFloat(bits[i])) {
                        throw new AssertionError("readKv widened element " + i + " to " + widened[i]);
                    }
                }
            }
            if (type == TensorType.F16) {
                assertTrue(f16.tensorCorePasses() > tcBefore, "the prefill ran the tensor-core matmul");
            }
        }
    }

    /**
     * stories260K, three prompts decoded greedily together for {@value #GREEDY_STEPS} steps, f32 pool against f16 pool
     * (the hand path for both). Observed on PoCL: sequences 0 and 1 keep the same tokens for all 120 steps, sequence 2
     * for its first 86 (at step 86 its top two logits are within the f16 pool's ~1e-3 change and swap; after that the
     * two runs are different stories); the chosen tokens' logprobs, up to each sequence's first different token, differ
     * by at most ~4.2e-3. Asserted: the same tokens for the first {@value #SAME_TOKENS} steps of every sequence, and
     * logprobs within 2e-2 up to the first different token: a half holds K and V to 2^-11 relative, which moves
     * logits by ~1e-3 relative (as f16 weights do; GpuBench's check), so a chosen token's logprob by a few 1e-3.
     */
    private static final int GREEDY_STEPS = 120;
    private static final int SAME_TOKENS = 64;

    @Test
    void stories260KGreedyDecodeWithAnF16PoolKeepsTheF32PoolsTokens() {
        int[][] prompts = {{1}, {1, 403, 407, 261}, {1, 300, 31, 265, 297, 9, 260}};
        Greedy f32 = greedy(KvCacheType.F32, prompts);
        Greedy f16 = greedy(KvCacheType.F16, prompts);
        double worst = 0;
        StringBuilder same = new StringBuilder();
        for (int i = 0; i < prompts.length; i++) {
            int first = 0;
            while (first < GREEDY_STEPS && f32.tokens()[i][first] == f16.tokens()[i][first]) {
                worst = Math.max(worst, Math.abs(f32.logprobs()[i][first] - f16.logprobs()[i][first]));
                first++;
            }
            same.append(i == 0 ? "" : ", ").append(first);
            assertTrue(first >= SAME_TOKENS, "sequence " + i + ": the f16 pool's token " + first + " differs: "
                    + java.util.Arrays.toString(java.util.Arrays.copyOf(f32.tokens()[i], first + 1)) + " vs "
                    + java.util.Arrays.toString(java.util.Arrays.copyOf(f16.tokens()[i], first + 1)));
        }
        System.out.printf("stories260K f16 KV: the same tokens for the first %s of %d steps, worst logprob difference"
                + " before a different token %.3g%n", same, GREEDY_STEPS, worst);
        assertTrue(worst <= 2e-2, "logprobs differ by " + worst);
        assertTrue(worst > 0, "an f16 pool changed no logprob at all: was it f16?");
    }

    private record Greedy(int[][] tokens, double[][] logprobs) {
    }

    private static Greedy greedy(KvCacheType kv, int[][] prompts) {
        OpenClLlama2Model model = OpenClTestSupport.withProperty(KvCacheType.PROPERTY, kv.label(),
                () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 64,
                        TensorType.F32, Dispatch.DIRECT, Matmul.HAND));
        try (model) {
            assertEquals(kv, model.kvCache());
            assertEquals(kv == KvCacheType.F16, model.deviceName().endsWith(", f16 KV cache"), model.deviceName());
            int vocab = model.config().vocabSize();
            int n = prompts.length;
            int[][] tokens = new int[n][GREEDY_STEPS];
            double[][] logprobs = new double[n][GREEDY_STEPS];
            List<KvCache> caches = new ArrayList<>();
            try {
                List<ForwardBatch.Entry> entries = new ArrayList<>();
                for (int[] p : prompts) {
                    KvCache cache = model.newKvCache();
                    caches.add(cache);
                    entries.add(new ForwardBatch.Entry(cache, p, 0, p.length));
                }
                float[][] logits = new float[n][vocab];
                model.forward(new ForwardBatch(entries), logits);
                for (int s = 0; s < GREEDY_STEPS; s++) {
                    entries.clear();
                    for (int i = 0; i < n; i++) {
                        int token = OpenClTestSupport.argmax(logits[i]);
                        tokens[i][s] = token;
                        logprobs[i][s] = Sampler.logprob(logits[i], token);
                        entries.add(new ForwardBatch.Entry(caches.get(i), new int[]{token}, 0, 1));
                    }
                    model.forward(new ForwardBatch(entries), logits);
                }
            } finally {
                caches.forEach(KvCache::close);
            }
            return new Greedy(tokens, logprobs);
        }
    }

    /**
     * kv.cl's loads widen every one of the 65,536 half bit patterns exactly ({@code Float.float16ToFloat}: the same
     * float bits; NaNs stay NaNs), through KV_LOAD8, KV_LOAD8_RAW + kv_halves4, KV_LOAD4 and KV_LOAD1, with each
     * conversion of {@value KvCacheType#HALF_CONVERT_PROPERTY} (ptx and auto build as vload where the inline PTX does
     * not: PoCL); and KV_STORE2 rounds floats next to and between halves to nearest even as {@code Float.floatToFloat16}.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"vload", "bits", "ptx", "auto"})
    void kvClWidensEveryHalfExactlyAndStoresToNearestEven(String convert) {
        String source = MatmulProgram.resource("kv.cl") + """

                __kernel void widen(__global const KV_T *kv, __global float *out8, __global float *out4,
                                    __global float *out1, __global float *outRaw) {
                    int i = get_global_id(0);
                    float4 lo;
                    float4 hi;
                    KV_LOAD8(kv, 8 * i, lo, hi);
                    vstore4(lo, 2 * i, out8);
                    vstore4(hi, 2 * i + 1, out8);
                    uint4 raw = KV_LOAD8_RAW(kv, 8 * i);
                    vstore4(kv_halves4(raw.xy), 2 * i, outRaw);
                    vstore4(kv_halves4(raw.zw), 2 * i + 1, outRaw);
                    vstore4(KV_LOAD4(kv, 8 * i), 2 * i, out4);
                    vstore4(KV_LOAD4(kv, 8 * i + 4), 2 * i + 1, out4);
                    for (int k = 0; k < 8; k++) {
                        out1[8 * i + k] = KV_LOAD1(kv, 8 * i + k);
                    }
                }

                __kernel void narrow(__global const float *in, __global KV_T *kv) {
                    int i = get_global_id(0);
                    KV_STORE2(kv, 2 * i, in[2 * i], in[2 * i + 1]);
                }
                """;
        int n = 1 << 16;
        short[] halves = new short[n];
        for (int i = 0; i < n; i++) {
            halves[i] = (short) i;
        }
        // Floats to store: every half's value, the midpoints between neighbours (ties: to even), a quarter and three
        // quarters of the way (to the nearer), and random floats, including past the largest half (to infinity).
        Random random = new Random(77);
        float[] floats = new float[4 * n];
        for (int i = 0; i < n; i++) {
            float a = Float.float16ToFloat((short) i);
            float b = Float.float16ToFloat((short) (i + 1));
            boolean finite = Float.isFinite(a) && Float.isFinite(b) && (i & 0x8000) == ((i + 1) & 0x8000);
            floats[4 * i] = a;
            floats[4 * i + 1] = finite ? (float) (((double) a + b) / 2) : random.nextFloat();
            floats[4 * i + 2] = finite ? (float) (a + ((double) b - a) / 4) : -random.nextFloat();
            floats[4 * i + 3] = Float.intBitsToFloat(random.nextInt());
        }
        var dev = io.stepstream.gpu.cl.ClRuntime.byHandle(OpenClTestSupport.device().getDeviceId(),
                OpenClTestSupport.device().getName());
        try (io.stepstream.gpu.cl.ClQueue q = new io.stepstream.gpu.cl.ClQueue(dev)) {
            KvCacheType.Built built = OpenClTestSupport.withProperty(KvCacheType.HALF_CONVERT_PROPERTY, convert,
                    () -> KvCacheType.F16.build(q, source, ""));
            boolean nvidia = io.stepstream.gpu.cl.ClRuntime.nvComputeCapability(dev) > 0;
            assertEquals(switch (convert) {
                case "bits" -> "bits";
                case "ptx" -> nvidia ? "ptx" : "vload (ptx did not build)";
                case "auto" -> nvidia ? "ptx" : "vload";
                default -> "vload";
            }, built.convert());
            var program = built.program();
            var widen = q.createKernel(program, "widen");
            var narrow = q.createKernel(program, "narrow");
            var kv = q.createBuffer(2L * floats.length);
            var in = q.createBuffer(4L * floats.length);
            java.lang.foreign.MemorySegment[] outs = {q.createBuffer(4L * n), q.createBuffer(4L * n), q.createBuffer(4L * n),
                    q.createBuffer(4L * n)};
            q.writeBlocking(kv, java.lang.foreign.MemorySegment.ofArray(halves), 2L * n);
            q.setArgBuffer(widen, 0, kv);
            for (int o = 0; o < outs.length; o++) {
                q.setArgBuffer(widen, 1 + o, outs[o]);
            }
            q.enqueue(widen, n / 8, 64, java.lang.foreign.MemorySegment.NULL);
            String[] names = {"KV_LOAD8", "KV_LOAD4", "KV_LOAD1", "KV_LOAD8_RAW"};
            for (int o = 0; o < outs.length; o++) {
                float[] got = new float[n];
                q.readBlocking(outs[o], java.lang.foreign.MemorySegment.ofArray(got), 4L * n);
                for (int i = 0; i < n; i++) {
                    float want = Float.float16ToFloat((short) i);
                    boolean same = Float.isNaN(want) ? Float.isNaN(got[i])
                            : Float.floatToRawIntBits(got[i]) == Float.floatToRawIntBits(want);
                    if (!same) {
                        throw new AssertionError(convert + " " + names[o] + ": half 0x" + Integer.toHexString(i)
                                + " widened to " + got[i] + " (0x" + Integer.toHexString(Float.floatToRawIntBits(got[i]))
                                + "), want " + want);
                    }
                }
            }
            q.writeBlocking(in, java.lang.foreign.MemorySegment.ofArray(floats), 4L * floats.length);
            q.setArgBuffer(narrow, 0, in);
            q.setArgBuffer(narrow, 1, kv);
            q.enqueue(narrow, floats.length / 2, 64, java.lang.foreign.MemorySegment.NULL);
            short[] stored = new short[floats.length];
            q.readBlocking(kv, java.lang.foreign.MemorySegment.ofArray(stored), 2L * floats.length);
            for (int i = 0; i < floats.length; i++) {
                short want = Float.floatToFloat16(floats[i]);
                boolean nan = Float.isNaN(floats[i]);
                if (nan ? !Float.isNaN(Float.float16ToFloat(stored[i])) : stored[i] != want) {
                    throw new AssertionError("KV_STORE2 of " + floats[i] + " stored 0x"
                            + Integer.toHexString(stored[i] & 0xffff) + ", want 0x" + Integer.toHexString(want & 0xffff));
                }
            }
            for (var b : outs) {
                q.releaseBuffer(b);
            }
            q.releaseBuffer(kv);
            q.releaseBuffer(in);
        }
    }

    /**
     * attn_decode's f16 defaults: lanes dividing head / 8 (one 16-byte load of 8 halves), unroll for ~4 such loads a
     * tile (halved for KV groups of 4 and more, as f32's); lanes that cannot pair keep f32's rule.
     */
    @Test
    void decodeTileDefaultsForAnF16Pool() {
        assertEquals(new DecodeAttention.Tile(128, 16, 4, 8), DecodeAttention.Tile.parse("", 128, 1, KvCacheType.F16));
        assertEquals(new DecodeAttention.Tile(128, 32, 8, 8), DecodeAttention.Tile.parse("", 128, 1, KvCacheType.F32));
        assertEquals(new DecodeAttention.Tile(128, 8, 2, 8), DecodeAttention.Tile.parse("", 64, 8, KvCacheType.F16));
        assertEquals(new DecodeAttention.Tile(128, 2, 1, 8), DecodeAttention.Tile.parse("", 48, 1, KvCacheType.F16));
        assertEquals(new DecodeAttention.Tile(128, 1, 4, 8), DecodeAttention.Tile.parse("", 8, 2, KvCacheType.F16));
        assertEquals(new DecodeAttention.Tile(128, 32, 8, 8),
                DecodeAttention.Tile.parse("lanes=32", 128, 1, KvCacheType.F16), "given lanes are kept");
        var dev = io.stepstream.gpu.cl.ClRuntime.byHandle(OpenClTestSupport.device().getDeviceId(),
                OpenClTestSupport.device().getName());
        try (io.stepstream.gpu.cl.ClQueue q = new io.stepstream.gpu.cl.ClQueue(dev)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> OpenClTestSupport
                    .withProperty(KvCacheType.HALF_CONVERT_PROPERTY, "fast", () -> KvCacheType.F16.build(q,
                            "__kernel void k(void) {}", "")));
            assertTrue(e.getMessage().contains(KvCacheType.HALF_CONVERT_PROPERTY) && e.getMessage().contains("'fast'"),
                    e.getMessage());
        }
        assertEquals("", KvCacheType.F32.define());
    }

    @Test
    void anF16PoolHoldsTwiceThePositionsInTheSameBytes() {
        ModelConfig c = new ModelConfig(4096, 11008, 32, 32, 32, 32000, 4096, 1e-5f, 10000f, false);
        long gib = 1L << 30;
        long f32Block = (long) c.nLayers() * 2 * KvBlockPool.BLOCK_POSITIONS * c.kvDim() * Float.BYTES;
        // 40 GiB, 7B f16 weights: the budget left after the weights, in blocks of half the bytes
        int f32 = OpenClLlama2Model.defaultBlocks(c, TensorType.F16, KvCacheType.F32, 40 * gib, 0.9, Long.MAX_VALUE, "d");
        int f16 = OpenClLlama2Model.defaultBlocks(c, TensorType.F16, KvCacheType.F16, 40 * gib, 0.9, Long.MAX_VALUE, "d");
        long budget = (long) (0.9 * 40 * gib) - OpenClLlama2Model.deviceWeightBytes(c, TensorType.F16)
                - OpenClLlama2Model.ACTIVATION_RESERVE_BYTES;
        assertEquals(budget / f32Block, f32);
        assertEquals(budget / (f32Block / 2), f16);
        assertTrue(f16 == 2 * f32 || f16 == 2 * f32 + 1, f32 + " vs " + f16);
        // the old signature is the f32 pool
        assertEquals(f32, OpenClLlama2Model.defaultBlocks(c, TensorType.F16, 40 * gib, 0.9, Long.MAX_VALUE, "d"));
        // one buffer's limit (NVIDIA: a quarter of the memory) holds twice the blocks too
        long h200 = 143155L << 20;
        assertEquals(2236, OpenClLlama2Model.defaultBlocks(c, TensorType.F16, KvCacheType.F32, h200, 0.9, h200 / 4, "H200"));
        assertEquals(4096, OpenClLlama2Model.defaultBlocks(c, TensorType.F16, KvCacheType.F16, h200, 0.9, h200 / 4,
                "H200"), "16 full contexts: 64 GiB as f32, 32 GiB as f16, under the 35.8 GiB buffer");

        // On the device: the same blocks in half the bytes, the engine's accounting unchanged (blocks are positions).
        ModelConfig small = new ModelConfig(64, 96, 2, 4, 2, 7, CTX, 1e-5f, 10000f, false);
        Llama2Weights w = TiledAttentionTest.randomWeights(small, new Random(3));
        try (DeviceLlama2 a = device(w, 40, TensorType.F32, TensorCores.OFF, KvCacheType.F32);
             DeviceLlama2 b = device(w, 40, TensorType.F32, TensorCores.OFF, KvCacheType.F16)) {
            assertEquals(2 * b.kvPoolBytes(), a.kvPoolBytes());
            assertEquals(b.kvPoolBytes(), ((DirectLauncher) b.launcher()).deviceOnlyBytes("kv"));
            assertEquals(1, b.k.kv.length, "no Java mirror of an f16 pool");
        }
    }

    @Test
    void badValuesAndPathsThatCannotKeepAnF16PoolFailNamingTheProperty() {
        for (String bad : new String[]{"bf16", "fp8", "half", "f 16"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> OpenClTestSupport.withProperty(
                    KvCacheType.PROPERTY, bad, KvCacheType::fromSystemProperty));
            assertTrue(e.getMessage().contains(KvCacheType.PROPERTY) && e.getMessage().contains("'" + bad + "'")
                    && e.getMessage().contains("f32 or f16"), e.getMessage());
        }
        assertEquals(KvCacheType.F16, KvCacheType.parse(" F16 "));
        assertEquals(KvCacheType.F32, OpenClTestSupport.withProperty(KvCacheType.PROPERTY, null,
                KvCacheType::fromSystemProperty));
        ModelConfig c = new ModelConfig(64, 96, 2, 4, 2, 7, CTX, 1e-5f, 10000f, false);
        Llama2Weights w = TiledAttentionTest.randomWeights(c, new Random(9));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new DeviceLlama2(w,
                OpenClTestSupport.device(), 8, TensorType.F32, Dispatch.APARAPI, Matmul.HAND, MatmulTiles.DEFAULT,
                TensorCores.OFF, KvCacheType.F16));
        assertTrue(e.getMessage().contains(KvCacheType.PROPERTY + "=f16") && e.getMessage().contains("Aparapi dispatch"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new DeviceLlama2(w, OpenClTestSupport.device(), 8,
                TensorType.F32, Dispatch.DIRECT, Matmul.APARAPI, MatmulTiles.DEFAULT, TensorCores.OFF, KvCacheType.F16));
        assertTrue(e.getMessage().contains(KvCacheType.PROPERTY) && e.getMessage().contains(Matmul.PROPERTY),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OpenClTestSupport.withProperty(
                Matmul.HAND_PASSES_PROPERTY, "matmul", () -> new DeviceLlama2(w, OpenClTestSupport.device(), 8,
                        TensorType.F32, Dispatch.DIRECT, Matmul.HAND, MatmulTiles.DEFAULT, TensorCores.OFF,
                        KvCacheType.F16)));
        assertTrue(e.getMessage().contains(KvCacheType.PROPERTY) && e.getMessage().contains(Matmul.HAND_PASSES_PROPERTY),
                e.getMessage());
        // the model's constructor reads the property: a bad value fails there, naming it
        e = assertThrows(IllegalArgumentException.class, () -> OpenClTestSupport.withProperty(KvCacheType.PROPERTY,
                "f8", () -> OpenClLlama2Model.loadEmbedded(Models.DEFAULT_MODEL, OpenClTestSupport.device(), 8)));
        assertTrue(e.getMessage().contains(KvCacheType.PROPERTY) && e.getMessage().contains("'f8'"), e.getMessage());
    }
}

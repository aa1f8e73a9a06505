package io.stepstream.gpu;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Weights;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The decode attention of one model shape on its own, for the device: a one-layer model of that shape (zero weights:
 * only its attention runs) whose KV pool and q are filled with random values, decode steps of the given batches
 * (one query row an entry, about {@code --keys} keys each, block tables shuffled over the pool), run by each variant
 * (attn_tiled's split build, or attn_decode with a {@link DecodeAttention.Tile} spec). Per variant and batch: the
 * relative error of the result against a float64 reference (on the host), the attention kernels' device time per
 * layer from profiling events, and the KV bytes it read per second. Not for serving; one thread.
 *
 * <pre>
 * DecodeAttentionProbe [--device SEL] [--head 128] [--heads 32] [--kv-heads 32] [--keys 2080] [--batches 1,8]
 *                      [--reps 20] [--variants "tiled|decode|decode:groups=4|decode:groups=16|tiled"] [--kv-cache f32|f16]
 * </pre>
 * With {@code --kv-cache f16} the pool holds half bits (the random keys and values rounded to nearest even, and the
 * float64 reference reads those rounded values); GB/s of KV count 2 bytes an element then.
 * <pre>
 * </pre>
 */
public final class DecodeAttentionProbe {
    /** Layers of the model: one, so the pool (one Java array and one device buffer, < 2 GiB) holds the most keys. */
    private static final int LAYERS = 1;

    private DecodeAttentionProbe() {
    }

    public static void main(String[] args) {
        run(args, System.out::println);
    }

    /** Runs the probe, each output line to {@code out}; a result further than 1e-4 from float64 says so. */
    static void run(String[] args, java.util.function.Consumer<String> out) {
        String selector = "auto";
        int head = 128;
        int heads = 32;
        int kvHeads = 32;
        int keys = 2080;
        int reps = 20;
        int[] batches = {1, 8};
        String variants = "tiled|decode|decode:groups=4|decode:groups=16|tiled";
        KvCacheType kvCache = KvCacheType.F32;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(a + " needs a value");
            }
            String v = args[++i];
            switch (a) {
                case "--device" -> selector = v;
                case "--head" -> head = Integer.parseInt(v);
                case "--heads" -> heads = Integer.parseInt(v);
                case "--kv-heads" -> kvHeads = Integer.parseInt(v);
                case "--keys" -> keys = Integer.parseInt(v);
                case "--reps" -> reps = Integer.parseInt(v);
                case "--batches" -> batches = Arrays.stream(v.split(",")).map(String::strip)
                        .mapToInt(Integer::parseInt).toArray();
                case "--variants" -> variants = v;
                case "--kv-cache" -> kvCache = KvCacheType.parse(v);
                default -> throw new IllegalArgumentException("unknown option " + a
                        + " (--device, --head, --heads, --kv-heads, --keys, --batches, --reps, --variants, --kv-cache)");
            }
        }
        int most = Arrays.stream(batches).max().orElseThrow();
        int ctx = (keys + 64 + 15) / 16 * 16;
        ModelConfig c = new ModelConfig(head * heads, 16, LAYERS, heads, kvHeads, 8, ctx, 1e-5f, 10000f, false);
        int blocks = most * (ctx / 16) + 8;
        long poolBytes = (long) blocks * LAYERS * 2 * 16 * c.kvDim() * Float.BYTES;
        if (poolBytes > DeviceLlama2.MAX_BUFFER_BYTES) {
            throw new IllegalArgumentException("--batches " + most + " x --keys " + keys + " need a KV pool of "
                    + poolBytes + " bytes, more than one buffer of " + DeviceLlama2.MAX_BUFFER_BYTES
                    + ": ask for fewer keys or a smaller batch");
        }
        Llama2Weights w = zeroWeights(c);
        OpenCLDevice device = OpenClDevices.select(selector);
        out.accept("device " + OpenClDevices.describe(device) + "; head " + head + ", " + heads + " heads over "
                + kvHeads + " KV heads, ~" + keys + " keys an entry, " + reps + " launches of " + LAYERS + " layer, "
                + kvCache.label() + " KV");
        KvCacheType kv = kvCache;
        for (String variant : variants.split("\\|")) {
            String[] mt = variant.strip().split(":", 2);
            String mode = mt[0].strip();
            String tile = mt.length > 1 ? mt[1].strip() : "";
            DeviceLlama2 d = withProperties(DecodeAttention.PROPERTY, mode, DecodeAttention.TILE_PROPERTY, tile,
                    () -> new DeviceLlama2(w, device, blocks, io.stepstream.engine.tensor.TensorType.F32,
                            Dispatch.DIRECT, Matmul.HAND, MatmulTiles.fromSystemProperty(),
                            TensorCores.fromSystemProperties(), kv));
            try (d) {
                d.attention(Attention.AUTO);
                String label = mode + (tile.isEmpty() ? "" : ":" + tile) + (d.handStep().decodeAvailable()
                        ? " [" + d.handStep().decodeTile().label() + "]" : "")
                        + (d.kvCache() == KvCacheType.F16 ? " [f16 " + d.handStep().kvConvert() + "]" : "");
                for (int batch : batches) {
                    out.accept(label + " " + measure(d, c, batch, keys, reps));
                }
            }
        }
    }

    /** Runs decode steps of {@code batch} entries; returns a line of error, time and bandwidth. */
    private static String measure(DeviceLlama2 d, ModelConfig c, int batch, int keys, int reps) {
        SplittableRandom random = new SplittableRandom(1000L * batch + keys);
        Llama2Kernel k = d.k;
        d.ensureCapacity(batch, batch, batch);
        List<Integer> free = new ArrayList<>();
        for (int b = 0; b < d.maxBlocks(); b++) {
            free.add(b);
        }
        for (int i = free.size() - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            free.set(j, free.set(i, free.get(j)));
        }
        int[] lens = new int[batch];
        long keyRows = 0;
        for (int e = 0; e < batch; e++) {
            lens[e] = Math.max(1, keys - 7 * e);
            keyRows += lens[e];
            k.tokenPos[e] = lens[e] - 1;
            k.tokenSeq[e] = e;
            k.tokenIds[e] = 0;
            k.entryLen[e] = 0;
            k.entryIndptr[e] = -1;
            k.logitRow[e] = e;
            for (int b = 0; b < (lens[e] + 15) / 16; b++) {
                k.blockTable[e * k.maxBlocksPerSeq + b] = free.removeLast();
            }
        }
        d.putStepInputs();
        for (int i = 0; i < k.q.length; i++) {
            k.q[i] = (float) (random.nextDouble() * 6 - 3);
        }
        // Only the blocks the step uses, one generator per block in parallel (the pool is up to 2 GiB). An f16 pool
        // has no Java mirror: the values (rounded to half, as the pool keeps them) go into a host copy of its own.
        boolean half = d.kvCache() == KvCacheType.F16;
        float[] pool = half ? new float[(int) ((long) d.maxBlocks() * k.blockFloats)] : k.kv;
        long seed = random.nextLong();
        int[] used = new int[batch * k.maxBlocksPerSeq];
        int nUsed = 0;
        for (int e = 0; e < batch; e++) {
            for (int b = 0; b < (lens[e] + 15) / 16; b++) {
                used[nUsed++] = k.blockTable[e * k.maxBlocksPerSeq + b];
            }
        }
        int[] blocks = Arrays.copyOf(used, nUsed);
        java.util.stream.IntStream.range(0, blocks.length).parallel().forEach(i -> {
            SplittableRandom r = new SplittableRandom(seed + 31L * blocks[i]);
            int from = blocks[i] * k.blockFloats;
            for (int x = from; x < from + k.blockFloats; x++) {
                float value = (float) (r.nextDouble() * 2 - 1);
                pool[x] = half ? Float.float16ToFloat(Float.floatToFloat16(value)) : value;
            }
        });
        d.launcher().put(k.q);
        d.writeKv(0, pool, 0, pool.length);
        int[] ops = new int[3 * LAYERS];
        int[] layers = new int[3 * LAYERS];
        for (int l = 0; l < LAYERS; l++) {
            ops[3 * l] = Llama2Kernel.OP_SCORES;
            ops[3 * l + 1] = Llama2Kernel.OP_SOFTMAX;
            ops[3 * l + 2] = Llama2Kernel.OP_ATTN_OUT;
            layers[3 * l] = l;
            layers[3 * l + 1] = l;
            layers[3 * l + 2] = l;
        }
        int maxLen = Arrays.stream(lens).max().orElseThrow();
        // Correctness first: the last layer's output against float64.
        d.launchPasses(ops, layers, batch, batch, maxLen);
        d.launcher().finish();
        d.launcher().get(k.xb);
        double err = relativeError(k, pool, c, lens, LAYERS - 1);
        long decodes = d.decodeAttentionPasses();
        for (int i = 0; i < 3; i++) {
            d.launchPasses(ops, layers, batch, batch, maxLen);
        }
        d.launcher().finish();
        d.profile(true);
        long before = d.profiledOpNanos()[OpTimes.ATTENTION];
        for (int i = 0; i < reps; i++) {
            d.launchPasses(ops, layers, batch, batch, maxLen);
        }
        d.launcher().finish();
        long nanos = d.profiledOpNanos()[OpTimes.ATTENTION] - before;
        d.profile(false);
        boolean ranDecode = d.decodeAttentionPasses() > decodes;
        double perLayerUs = nanos / 1e3 / reps / LAYERS;
        double bytes = keyRows * (double) c.kvDim() * 2 * d.kvCache().bytes();
        return String.format("batch %d: %s, %.1f us a layer (x32 layers: %.3f ms), %.1f GB/s of KV,"
                        + " chunks<=%d, relative error %.2g", batch, ranDecode ? "attn_decode" : "attn_tiled", perLayerUs,
                perLayerUs * 32 / 1e3, bytes / (perLayerUs * 1e3), d.attentionMostChunks(), err)
                + (err > 1e-4 ? " WRONG: more than 1e-4 from float64" : "");
    }

    /** max |xb - reference| / max |reference| of layer {@code layer}'s attention (float64 from the host copies). */
    private static double relativeError(Llama2Kernel k, float[] pool, ModelConfig c, int[] lens, int layer) {
        int hs = c.headSize();
        int dim = c.dim();
        int kvDim = c.kvDim();
        int group = c.nHeads() / c.nKvHeads();
        double worst = 0;
        double scale = 0;
        for (int e = 0; e < lens.length; e++) {
            for (int h = 0; h < c.nHeads(); h++) {
                int kvCol = (h / group) * hs;
                double[] p = new double[lens[e]];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < lens[e]; j++) {
                    long ko = kvIndex(k, kvDim, e, j, layer, false) + kvCol;
                    double s = 0;
                    for (int x = 0; x < hs; x++) {
                        s += (double) k.q[e * dim + h * hs + x] * pool[(int) (ko + x)];
                    }
                    p[j] = s / Math.sqrt(hs);
                    max = Math.max(max, p[j]);
                }
                double sum = 0;
                for (int j = 0; j < lens[e]; j++) {
                    p[j] = Math.exp(p[j] - max);
                    sum += p[j];
                }
                double[] out = new double[hs];
                for (int j = 0; j < lens[e]; j++) {
                    long vo = kvIndex(k, kvDim, e, j, layer, true) + kvCol;
                    for (int x = 0; x < hs; x++) {
                        out[x] += p[j] / sum * pool[(int) (vo + x)];
                    }
                }
                for (int x = 0; x < hs; x++) {
                    worst = Math.max(worst, Math.abs(k.xb[e * dim + h * hs + x] - out[x]));
                    scale = Math.max(scale, Math.abs(out[x]));
                }
            }
        }
        return worst / scale;
    }

    private static long kvIndex(Llama2Kernel k, int kvDim, int e, int pos, int layer, boolean value) {
        long block = k.blockTable[e * k.maxBlocksPerSeq + pos / 16];
        return block * k.blockFloats + ((long) (layer * 2 + (value ? 1 : 0)) * 16 + pos % 16) * kvDim;
    }

    private static Llama2Weights zeroWeights(ModelConfig c) {
        int dim = c.dim();
        int kvDim = c.kvDim();
        int hidden = c.hiddenDim();
        int l = c.nLayers();
        return new Llama2Weights(c, new float[c.vocabSize() * dim], ones(l, dim), new float[l][dim * dim],
                new float[l][kvDim * dim], new float[l][kvDim * dim], new float[l][dim * dim], ones(l, dim),
                new float[l][hidden * dim], new float[l][dim * hidden], new float[l][hidden * dim], new float[dim],
                new float[c.vocabSize() * dim]);
    }

    private static float[][] ones(int layers, int n) {
        float[][] a = new float[layers][n];
        for (float[] r : a) {
            Arrays.fill(r, 1f);
        }
        return a;
    }

    /** Two system properties set while {@code build} runs (empty value: cleared), restored afterwards. */
    private static <T> T withProperties(String n1, String v1, String n2, String v2,
                                        java.util.function.Supplier<T> build) {
        String b1 = System.getProperty(n1);
        String b2 = System.getProperty(n2);
        setProperty(n1, v1);
        setProperty(n2, v2);
        try {
            return build.get();
        } finally {
            setProperty(n1, b1);
            setProperty(n2, b2);
        }
    }

    private static void setProperty(String name, String value) {
        if (value == null || value.isEmpty()) {
            System.clearProperty(name);
        } else {
            System.setProperty(name, value);
        }
    }
}

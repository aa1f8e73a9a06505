package io.stepstream.gpu;

import java.util.Locale;

/**
 * Which kernel computes the attention of a split (decode) step, one query row per entry: attn_tiled's split build
 * or step.cl's {@code attn_decode}. attn_tiled's split group for a small KV group is one row of lanes that each hold
 * the whole q row (head / 4 float4s) and a whole K and V tile's share in registers for the prefetch: with MHA and
 * head 128 that is ~400 registers an item, so few groups fit a compute unit and the reads reach ~11% of the H200's
 * bandwidth (Llama-2-7B at 2,048 keys). attn_decode splits the head over the lanes as well (a lane holds a float4 or
 * two of q, of each key and of the output), so its groups are small in registers and many fit. Chosen per model by
 * the system property {@value #PROPERTY}, read when the model is built.
 */
public enum DecodeAttention {
    /**
     * attn_decode for decode steps of KV groups up to {@value #AUTO_MAX_KV_GROUP} whose longest row sees at least
     * {@value #AUTO_MIN_KEYS} keys; attn_tiled's split build otherwise. The larger KV groups (GQA, 1.1B: 8) keep
     * attn_tiled: its group shares each K/V tile among 8 rows. H200, 2,080 keys, us a layer, attn_tiled vs
     * attn_decode: 7B shape (MHA, head 128) 150.4 vs 34.6 at batch 1, 753.7 vs 156.0 at 8 (3,453 GB/s of KV);
     * 1.1B shape (kvGroup 8, head 64) 20.7 vs 22.4 and 37.1 vs 44.8.
     */
    AUTO,
    /** Always attn_tiled's split build (the behaviour before attn_decode). */
    TILED,
    /** attn_decode for every decode step it can compute (any KV group, any context), where it was built. */
    DECODE;

    /** System property naming the mode: {@code auto} (default), {@code tiled} or {@code decode}. */
    public static final String PROPERTY = "stepstream.opencl.decodeAttention";
    /** System property shaping attn_decode's groups: {@code wg=W,lanes=L,unroll=U,groups=G} (any subset). */
    public static final String TILE_PROPERTY = "stepstream.opencl.decodeAttentionTile";
    static final int AUTO_MAX_KV_GROUP = 4;
    static final int AUTO_MIN_KEYS = 64;

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** {@code auto}, {@code tiled} or {@code decode} (any case); anything else is an error naming them. */
    public static DecodeAttention parse(String s) {
        String v = s == null ? "" : s.strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "auto" -> AUTO;
            case "tiled" -> TILED;
            case "decode" -> DECODE;
            default -> throw new IllegalArgumentException(PROPERTY + " must be auto, tiled or decode, got '" + s + "'");
        };
    }

    /** The mode the property asks for, else AUTO. */
    public static DecodeAttention fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? AUTO : parse(v);
    }

    /** Whether a decode step of this model whose longest row sees {@code maxKeys} keys runs attn_decode. */
    boolean decodeFor(int kvGroup, int maxKeys) {
        return switch (this) {
            case TILED -> false;
            case DECODE -> true;
            case AUTO -> kvGroup <= AUTO_MAX_KV_GROUP && maxKeys >= AUTO_MIN_KEYS;
        };
    }

    /**
     * attn_decode's shape: {@code wg} work items a group, {@code lanes} items a key row (a power of two: each owns
     * every lanes-th float4 of the head), {@code unroll} keys a slot reads per tile (a tile is wg / lanes * unroll
     * keys), and how many groups per compute unit the chunk rule aims at ({@code groupsPerComputeUnit}).
     */
    record Tile(int wg, int lanes, int unroll, int groupsPerComputeUnit) {
        static final int DEFAULT_WG = 128;
        static final int MAX_LANES = 32;
        /**
         * Groups per compute unit the split aims at: with ~16 float4 loads in flight per item, a few groups of 128
         * per compute unit cover the HBM latency (H200: ~4.8 TB/s x ~1 us over 132 units is ~36 KB a unit, a group
         * has 32 KB in flight), and more groups also let the short last tiles of chunks overlap.
         */
        static final int DEFAULT_GROUPS = 8;

        Tile {
            if (wg < 1 || lanes < 1 || Integer.bitCount(lanes) != 1 || wg % lanes != 0 || unroll < 1
                    || groupsPerComputeUnit < 1) {
                throw new IllegalArgumentException(TILE_PROPERTY + ": wg " + wg + ", lanes " + lanes + ", unroll "
                        + unroll + ", groups " + groupsPerComputeUnit
                        + ": lanes must be a power of two dividing wg, all positive");
            }
        }

        /** From {@value #TILE_PROPERTY} (defaults for what it leaves out). */
        static Tile fromSystemProperty(int headSize, int kvGroup) {
            return fromSystemProperty(headSize, kvGroup, KvCacheType.F32);
        }

        /** As above, with the defaults for a pool of {@code kvCache} elements. */
        static Tile fromSystemProperty(int headSize, int kvGroup, KvCacheType kvCache) {
            return parse(System.getProperty(TILE_PROPERTY, ""), headSize, kvGroup, kvCache);
        }

        static Tile parse(String spec, int headSize, int kvGroup) {
            return parse(spec, headSize, kvGroup, KvCacheType.F32);
        }

        /**
         * Defaults: 128 items; lanes the largest power of two (at most 32) dividing head / 4, so no lane idles and a
         * lane holds head / 4 / lanes float4s (1 for heads 64 and 128); unroll so a lane issues ~8 loads of keys a
         * tile (and as many of values), halved for KV groups of 4 and more whose per-row scores take registers too.
         * An f16 pool loads 8 halves (two float4s, 16 bytes) at once where the head has an even number of float4s: its
         * lanes divide head / 8 instead, so each load still moves 16 bytes (head 128: 16 lanes of one load a row,
         * where 32 lanes of 8-byte loads ran at half the f32 pool's byte rate on the H200), and unroll aims at ~4
         * loads a tile: H200, 7B shape, 2,080 keys, us a layer b1 / b8 (ptx): unroll 4 22.3 / 78.3, 8 24.8 / 80.2,
         * 16 22.9 / 87.7 (f32's default 33.8 / 137.4).
         */
        static Tile parse(String spec, int headSize, int kvGroup, KvCacheType kvCache) {
            int hs4 = Math.max(1, headSize / 4);
            int pairs = kvCache == KvCacheType.F16 && hs4 % 2 == 0 ? 2 : 1;
            int lanes = 1;
            while (lanes * 2 <= MAX_LANES && hs4 % (lanes * 2 * pairs) == 0) {
                lanes *= 2;
            }
            var given = SystemProperties.namedInts(TILE_PROPERTY, spec,
                    java.util.List.of("wg", "lanes", "unroll", "groups"));
            int wg = given.getOrDefault("wg", DEFAULT_WG);
            lanes = given.getOrDefault("lanes", lanes);
            int unroll = given.getOrDefault("unroll", -1);
            int groups = given.getOrDefault("groups", DEFAULT_GROUPS);
            if (unroll < 0) {
                // float4s one load moves: two where step.cl pairs a lane's float4s (DEC_PAIRS), else one
                int perLoad = kvCache == KvCacheType.F16 && hs4 % (2 * lanes) == 0 ? 2 : 1;
                int perLane = (hs4 + lanes * perLoad - 1) / (lanes * perLoad);
                unroll = Math.max(1, (perLoad == 2 ? 4 : 8) / perLane);
                if (kvGroup >= 4) {
                    unroll = Math.max(1, unroll / 2);
                }
            }
            return new Tile(wg, lanes, unroll, groups);
        }

        int slots() {
            return wg / lanes;
        }

        /** Keys a group reads per iteration: the chunk length is a multiple of it. */
        int keys() {
            return slots() * unroll;
        }

        /** step.cl's local arrays: red (partials, later the slots' accumulators), sc, slotM, slotL, lastChunk. */
        long localBytes(int headSize, int kvGroup) {
            long combos = (long) kvGroup * unroll;
            long red = Math.max(slots() * combos * (lanes + 1), (long) slots() * kvGroup * headSize);
            return 4L * (red + slots() * combos + 2L * slots() * kvGroup) + 4;
        }

        boolean fits(int headSize, int kvGroup, io.stepstream.gpu.cl.ClDevice dev) {
            return headSize % 4 == 0 && wg <= dev.maxWorkGroupSize() && localBytes(headSize, kvGroup) <= dev.localMemBytes();
        }

        String buildOptions() {
            return " -DDEC_WG=" + wg + " -DDEC_LANES=" + lanes + " -DDEC_UNROLL=" + unroll;
        }

        String label() {
            return "wg=" + wg + ",lanes=" + lanes + ",unroll=" + unroll + ",groups=" + groupsPerComputeUnit;
        }
    }
}

package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClQueue;

import java.lang.foreign.MemorySegment;

/**
 * The non-matmul passes of a step (embed, the three RMSNorms, scores, softmax, attention output) as step.cl's
 * small kernels in the direct launcher's queue on its buffers, with Llama2Kernel's arithmetic: with these and
 * the hand matmuls a step enqueues no Aparapi pass, whose ~80 arguments make each enqueue costly on NVIDIA.
 * Per enqueue only the sizes and layer that changed are set; buffers are re-read when the launcher rebound
 * a field.
 *
 * <p>Attention: for a launch where {@link Attention#tiledFor} says so, the OP_SCORES pass enqueues step.cl's
 * {@code attn_tiled} (the whole attention of the layer, profiled under {@link OpTimes#ATTENTION}) and the layer's
 * OP_SOFTMAX and OP_ATTN_OUT passes enqueue nothing; the schedule keeps all three ops either way. The choice is
 * made once per launch from the host copies of the step inputs (which mirror the device's). A step whose entries
 * have at most the split tile's tokens each (decode steps) runs attn_tiled's split build instead (a group per
 * token x kvGroup heads, keys split into {@link AttentionSplit} chunks) and, with more than one chunk, attn_combine;
 * both are profiled as attention too. Where {@link DecodeAttention} says so (one row an entry, small KV groups), such
 * a step runs step.cl's {@code attn_decode} instead, with the same chunks' scratch and merge.
 */
final class HandStep {
    /** Work items of the row kernels (rmsnorm, softmax). */
    static final int NORM_WG = 256;
    private static final int ELEMENT_WG = 256;
    /**
     * System property shaping attn_tiled's groups: {@code rows=R,lanes=L,keys=K} (any subset): about R query rows
     * a group (R / kvGroup tokens, at least 1, times the kvGroup heads), L work items a row, K keys a local tile.
     */
    static final String ATTENTION_TILE_PROPERTY = "stepstream.opencl.attentionTile";
    /**
     * System property shaping the split (decode) build of attn_tiled, same names: default {@code rows} = kvGroup (one
     * token a group, every query head of the KV head), {@code lanes} so that a group has about
     * {@value AttentionTile#SPLIT_WG} work items (4..keys), {@code keys=32}. Steps whose entries have at most rows /
     * kvGroup rows each take it.
     */
    static final String ATTENTION_SPLIT_TILE_PROPERTY = "stepstream.opencl.attentionSplitTile";

    private final ClQueue queue;
    private final DirectLauncher launcher;
    private final Llama2Kernel k;
    private final Kernel embed;
    private final Kernel normAtt;
    private final Kernel normFfn;
    private final Kernel normFinal;
    private final Kernel scores;
    private final Kernel softmax;
    private final Kernel attnOut;
    /** attn_tiled, or null where the device cannot run its tile (head size, local memory, group size). */
    private final Kernel attnTiled;
    private final AttentionTile tile;
    private Attention attention;
    /** The launch the attention choice below was made for ({@link DirectLauncher#launches()} during it). */
    private long plannedLaunch = -1;
    private boolean tiledThisLaunch;
    private int tilesThisLaunch;
    private long tiledEnqueued;
    /** The split build of attn_tiled and its attn_combine, or null (split off, or its tile does not fit). */
    private final Kernel attnSplit;
    private final Kernel attnCombine;
    private final AttentionTile splitTile;
    private AttentionSplit split;
    private boolean splitThisLaunch;
    private AttentionSplit.Plan planThisLaunch;
    private long splitEnqueued;
    private int mostChunks = 1;
    /**
     * step.cl's attn_decode (built into the split program), or null: the model was built with
     * {@value DecodeAttention#PROPERTY}=tiled, the split is off, or its tile does not fit the device.
     */
    private final Kernel attnDecode;
    /** attn_decode's own attn_combine (its merge, dec_merge, is the fused one's), with attnDecode. */
    private final Kernel attnDecodeCombine;
    private final DecodeAttention.Tile decodeTile;
    private DecodeAttention decodeMode;
    /** Whether this launch's split attention runs attn_decode (decided with splitThisLaunch). */
    private boolean decodeThisLaunch;
    private long decodeEnqueued;
    /**
     * System property: where a split step's chunks are merged: {@code fused} (the default: the chunk group of a
     * (entry, KV head, tile) that finishes last merges them inside attn_tiled, one kernel a layer) or {@code kernel}
     * (attn_combine after it, two). Read when the model is built.
     */
    static final String ATTENTION_COMBINE_PROPERTY = "stepstream.opencl.attentionCombine";
    /** Whether the split build merges its chunks itself ({@value #ATTENTION_COMBINE_PROPERTY}). */
    private final boolean fusedCombine;
    /** The fused merge's per-(entry, KV head, tile) counters (zero between launches), grown on demand. */
    private MemorySegment counters;
    private long counterInts;

    static boolean fusedCombineFromSystemProperty() {
        String v = System.getProperty(ATTENTION_COMBINE_PROPERTY, "fused").strip();
        return switch (v) {
            case "fused" -> true;
            case "kernel" -> false;
            default -> throw new IllegalArgumentException(ATTENTION_COMBINE_PROPERTY + " must be fused or kernel, got '"
                    + v + "'");
        };
    }

    /** Binds zeroed counters for at least {@code ints} chunk groups to the split build (arg 18). */
    private void combineCounters(long ints) {
        if (counters != null && ints <= counterInts) {
            return;
        }
        if (counters != null) {
            queue.releaseBuffer(counters); // OpenCL keeps it until the enqueued kernels that use it have finished
        }
        long n = Math.max(ints, 2 * counterInts);
        counters = queue.createBuffer(n * Integer.BYTES);
        queue.zero(counters, n * Integer.BYTES);
        counterInts = n;
        queue.setArgBuffer(attnSplit.handle, 18, counters);
        if (attnDecode != null) {
            queue.setArgBuffer(attnDecode.handle, 17, counters);
        }
    }

    /** Whether split steps merge their chunks inside attn_tiled ({@value #ATTENTION_COMBINE_PROPERTY}). */
    boolean fusedCombine() {
        return fusedCombine;
    }

    /** How the attention kernels widen an f16 pool's halves ({@link KvCacheType.Built#convert}; "" for f32). */
    private final String kvConvert;

    /** How the attention kernels widen an f16 pool's halves: "vload", "bits", "ptx", ... ("" for an f32 pool). */
    String kvConvert() {
        return kvConvert;
    }

    /** Per-chunk (m, l, acc) rows of a split step, grown on demand. */
    private MemorySegment part;
    private long partFloats;
    private final Kernel[] all;

    /**
     * attn_tiled's shape: {@code tokens} query tokens of an entry per group (times kvGroup query heads = the
     * group's rows), {@code lanes} work items per row, {@code keys} positions per local K/V tile.
     */
    record AttentionTile(int tokens, int lanes, int keys) {
        static final int DEFAULT_ROWS = 32;
        static final int DEFAULT_LANES = 4;
        static final int DEFAULT_KEYS = 32;
        /** Work items the split build's default lanes aim at per group. */
        static final int SPLIT_WG = 128;

        /** From {@value #ATTENTION_TILE_PROPERTY} (defaults for what it leaves out) for a kvGroup. */
        static AttentionTile fromSystemProperty(int kvGroup) {
            return parse(System.getProperty(ATTENTION_TILE_PROPERTY, ""), kvGroup);
        }

        /** The split build's tile from {@value #ATTENTION_SPLIT_TILE_PROPERTY} (its own defaults). */
        static AttentionTile splitFromSystemProperty(int kvGroup) {
            return parseSplit(System.getProperty(ATTENTION_SPLIT_TILE_PROPERTY, ""), kvGroup);
        }

        static AttentionTile parse(String spec, int kvGroup) {
            return parse(ATTENTION_TILE_PROPERTY, spec, kvGroup, DEFAULT_ROWS, DEFAULT_LANES);
        }

        /** Defaults: one token a group, lanes a power of two giving about SPLIT_WG items (4..keys). */
        static AttentionTile parseSplit(String spec, int kvGroup) {
            return parse(ATTENTION_SPLIT_TILE_PROPERTY, spec, kvGroup, kvGroup, 0);
        }

        private static AttentionTile parse(String property, String spec, int kvGroup, int defaultRows,
                                           int defaultLanes) {
            var given = SystemProperties.namedInts(property, spec, java.util.List.of("rows", "lanes", "keys"));
            int rows = given.getOrDefault("rows", defaultRows);
            int lanes = given.getOrDefault("lanes", defaultLanes);
            int keys = given.getOrDefault("keys", DEFAULT_KEYS);
            if (lanes == 0) {
                int tokens = Math.max(1, rows / kvGroup);
                lanes = 4;
                while (lanes * 2 <= keys && keys % (lanes * 2) == 0 && tokens * kvGroup * lanes * 2 <= SPLIT_WG) {
                    lanes *= 2;
                }
            }
            if (keys % lanes != 0) {
                throw new IllegalArgumentException(property + ": keys " + keys
                        + " must be a multiple of lanes " + lanes);
            }
            return new AttentionTile(Math.max(1, rows / kvGroup), lanes, keys);
        }

        int workGroup(int kvGroup) {
            return tokens * kvGroup * lanes;
        }

        /** Local memory of one group: keys and values (keys padded a float4 a row), probabilities, lane values. */
        long localBytes(int headSize, int kvGroup) {
            int hs4 = headSize / 4;
            return 16L * keys * (hs4 + 1) + 16L * keys * hs4 + 4L * tokens * kvGroup * (keys + 1)
                    + 4L * workGroup(kvGroup) + 4;
        }

        boolean fits(int headSize, int kvGroup, io.stepstream.gpu.cl.ClDevice dev) {
            return headSize % 4 == 0 && workGroup(kvGroup) <= dev.maxWorkGroupSize()
                    && localBytes(headSize, kvGroup) <= dev.localMemBytes();
        }

        String buildOptions(int headSize, int kvGroup) {
            return " -DHEAD_SIZE=" + headSize + " -DKV_GROUP=" + kvGroup + " -DATT_TQ=" + tokens + " -DATT_LANES="
                    + lanes + " -DATT_TK=" + keys;
        }
    }

    /** One kernel object: its buffer arguments by field name and the int arguments it last set. */
    private final class Kernel {
        final MemorySegment handle;
        final int[] bufferArgs;
        final String[] fields;
        final long[] bound;
        final long[] ints = new long[24];

        Kernel(MemorySegment program, String name, Object... bufferArgsAndFields) {
            this.handle = queue.createKernel(program, name);
            int n = bufferArgsAndFields.length / 2;
            bufferArgs = new int[n];
            fields = new String[n];
            bound = new long[n];
            for (int i = 0; i < n; i++) {
                bufferArgs[i] = (Integer) bufferArgsAndFields[2 * i];
                fields[i] = (String) bufferArgsAndFields[2 * i + 1];
            }
            java.util.Arrays.fill(ints, Long.MIN_VALUE);
        }

        void bind() {
            for (int i = 0; i < bufferArgs.length; i++) {
                MemorySegment b = launcher.buffer(fields[i]);
                if (bound[i] != b.address()) {
                    queue.setArgBuffer(handle, bufferArgs[i], b);
                    bound[i] = b.address();
                }
            }
        }

        Kernel setInt(int index, int value) {
            if (ints[index] != value) {
                queue.setArgInt(handle, index, value);
                ints[index] = value;
            }
            return this;
        }

        Kernel setFloat(int index, float value) {
            queue.setArgFloat(handle, index, value);
            return this;
        }

        void enqueue(long items, long local, MemorySegment event) {
            queue.enqueue(handle, (items + local - 1) / local * local, local, event);
        }
    }

    HandStep(DirectLauncher launcher, Llama2Kernel k) {
        this(launcher, k, KvCacheType.F32);
    }

    /** {@code kvCache}: the pool's element type, a define of both builds (scores, attn_out, attn_tiled, attn_decode). */
    HandStep(DirectLauncher launcher, Llama2Kernel k, KvCacheType kvCache) {
        this.launcher = launcher;
        this.queue = launcher.queue();
        this.k = k;
        this.attention = Attention.fromSystemProperty();
        this.tile = AttentionTile.fromSystemProperty(k.kvGroup);
        var dev = launcher.device();
        boolean tileFits = tile.fits(k.headSize, k.kvGroup, dev);
        this.split = AttentionSplit.fromSystemProperty();
        this.splitTile = AttentionTile.splitFromSystemProperty(k.kvGroup);
        KvCacheType.Built built = kvCache.build(queue, source(), "-DNORM_WG=" + NORM_WG
                + (tileFits ? tile.buildOptions(k.headSize, k.kvGroup) : ""));
        MemorySegment program = built.program();
        this.kvConvert = built.convert();
        embed = new Kernel(program, "embed", 2, "tokenIds", 3, "emb", 4, "x");
        embed.setInt(1, k.dim);
        normAtt = norm(program, "rmsAtt", 0);
        normFfn = norm(program, "rmsFfn", 0);
        normFinal = norm(program, "rmsFinal", 1);
        scores = new Kernel(program, "scores", 12, "tokenPos", 13, "tokenSeq", 14, "blockTable", 15, "entryIndptr",
                16, "entryIndices", 17, "patIndptr", 18, "patIndices", 19, "q", 20, "kv", 21, "att", 22, "entryLen");
        scores.setInt(1, k.nHeads).setInt(3, k.ctx).setInt(4, k.headSize).setInt(5, k.dim).setInt(6, k.kvDim)
                .setInt(7, k.kvGroup).setInt(8, k.maxBlocksPerSeq).setInt(9, k.blockFloats).setFloat(11, k.attScale);
        softmax = new Kernel(program, "softmax", 3, "tokenPos", 4, "att", 5, "tokenSeq", 6, "entryLen");
        softmax.setInt(1, k.nHeads).setInt(2, k.ctx);
        attnOut = new Kernel(program, "attn_out", 10, "tokenPos", 11, "tokenSeq", 12, "blockTable", 13,
                "entryIndptr", 14, "entryIndices", 15, "patIndptr", 16, "patIndices", 17, "att", 18, "kv", 19, "xb",
                20, "entryLen");
        attnOut.setInt(1, k.dim).setInt(2, k.nHeads).setInt(3, k.ctx).setInt(4, k.headSize).setInt(5, k.kvDim)
                .setInt(6, k.kvGroup).setInt(7, k.maxBlocksPerSeq).setInt(8, k.blockFloats);
        if (tileFits) {
            attnTiled = tiledKernel(program);
        } else {
            attnTiled = null;
        }
        // The split (decode) build: the same source with its own tile and -DATT_SPLIT; built only when the mode
        // may use it (a model built with the split off never pays for a second program).
        this.decodeMode = DecodeAttention.fromSystemProperty();
        this.decodeTile = DecodeAttention.Tile.fromSystemProperty(k.headSize, k.kvGroup, kvCache);
        if (tileFits && !split.off() && splitTile.fits(k.headSize, k.kvGroup, dev)) {
            fusedCombine = fusedCombineFromSystemProperty();
            // attn_decode joins the split program (its merge is merge_chunks, its scratch the split's) unless the
            // model never uses it.
            boolean decode = decodeMode != DecodeAttention.TILED && decodeTile.fits(k.headSize, k.kvGroup, dev);
            MemorySegment splitProgram = kvCache.build(queue, source(), "-DNORM_WG=" + NORM_WG + " -DATT_SPLIT"
                    + (fusedCombine ? " -DATT_FUSED_COMBINE" : "") + splitTile.buildOptions(k.headSize, k.kvGroup)
                    + (decode ? decodeTile.buildOptions() : "")).program();
            attnSplit = tiledKernel(splitProgram);
            attnDecode = decode ? decodeKernel(splitProgram) : null;
            attnDecodeCombine = decode ? new Kernel(splitProgram, "attn_decode_combine", 4, "xb") : null;
            if (decode) {
                attnDecodeCombine.setInt(2, k.dim);
            }
            if (fusedCombine) {
                combineCounters(1);
            }
            attnCombine = new Kernel(splitProgram, "attn_combine", 4, "xb");
            attnCombine.setInt(2, k.dim);
            partFloats = 1;
            part = queue.createBuffer(Float.BYTES);
            queue.setArgBuffer(attnSplit.handle, 17, part);
            queue.setArgBuffer(attnCombine.handle, 3, part);
            if (attnDecode != null) {
                queue.setArgBuffer(attnDecode.handle, 16, part);
                queue.setArgBuffer(attnDecodeCombine.handle, 3, part);
            }
        } else {
            attnSplit = null;
            attnCombine = null;
            attnDecode = null;
            attnDecodeCombine = null;
            fusedCombine = false;
        }
        all = java.util.stream.Stream.of(embed, normAtt, normFfn, normFinal, scores, softmax, attnOut, attnTiled,
                attnSplit, attnCombine, attnDecode, attnDecodeCombine).filter(java.util.Objects::nonNull).toArray(Kernel[]::new);
    }

    /** attn_decode of the split program with its buffers and model constants bound (part, counters: by the caller). */
    private Kernel decodeKernel(MemorySegment program) {
        Kernel d = new Kernel(program, "attn_decode", 7, "tokenPos", 8, "tokenSeq", 9, "blockTable", 10, "entryLen",
                11, "q", 12, "kv", 13, "xb");
        d.setInt(1, k.dim).setInt(2, k.kvDim).setInt(3, k.maxBlocksPerSeq).setInt(4, k.blockFloats)
                .setFloat(6, k.attScale);
        return d;
    }

    /** attn_tiled of {@code program} (the plain or the split build) with its buffers and model constants bound. */
    private Kernel tiledKernel(MemorySegment program) {
        Kernel t = new Kernel(program, "attn_tiled", 8, "tokenPos", 9, "tokenSeq", 10, "blockTable", 11, "entryLen",
                12, "q", 13, "kv", 14, "xb");
        t.setInt(2, k.dim).setInt(3, k.kvDim).setInt(4, k.maxBlocksPerSeq).setInt(5, k.blockFloats)
                .setFloat(7, k.attScale);
        return t;
    }

    private Kernel norm(MemorySegment program, String weight, int useLastRow) {
        Kernel n = new Kernel(program, "rmsnorm", 5, "x", 6, "logitRow", 7, weight, 8, "xb");
        n.setInt(1, k.dim).setFloat(2, k.eps).setInt(4, useLastRow);
        return n;
    }

    /** kv.cl (the KV element macros), then step.cl. */
    static String source() {
        return MatmulProgram.resource("kv.cl") + "\n" + MatmulProgram.resource("step.cl");
    }

    /** Re-reads every kernel's buffers (after the launcher rebound some field). */
    void bindAll() {
        for (Kernel kernel : all) {
            kernel.bind();
        }
    }

    /** Enqueues pass {@code op} of {@code layer} for the step's sizes in the kernel's fields; false if not ours. */
    boolean enqueue(int op, int layer, MemorySegment event) {
        switch (op) {
            case Llama2Kernel.OP_EMBED -> embed.setInt(0, k.tokens * k.dim).enqueue((long) k.tokens * k.dim,
                    ELEMENT_WG, event);
            case Llama2Kernel.OP_RMSNORM_ATT -> norm(normAtt, k.tokens, layer, event);
            case Llama2Kernel.OP_RMSNORM_FFN -> norm(normFfn, k.tokens, layer, event);
            case Llama2Kernel.OP_FINAL_NORM -> norm(normFinal, k.logitRows, 0, event);
            case Llama2Kernel.OP_SCORES -> {
                if (tiledThisLaunch() && splitThisLaunch) {
                    enqueueSplit(layer);
                } else if (tiledThisLaunch()) {
                    // The whole attention, timed under its own label; the pass's own event slot stays empty.
                    int wg = tile.workGroup(k.kvGroup);
                    attnTiled.setInt(0, k.tokens).setInt(1, tilesThisLaunch).setInt(6, layer)
                            .enqueue((long) k.entries * (k.kvDim / k.headSize) * tilesThisLaunch * wg, wg,
                                    launcher.extraEvent(OpTimes.ATTENTION));
                    tiledEnqueued++;
                } else {
                    ensureScoreRows();
                    scores.setInt(0, k.tokens).setInt(2, k.maxLen).setInt(10, layer)
                            .enqueue((long) k.tokens * k.nHeads * k.maxLen, ELEMENT_WG, event);
                }
            }
            case Llama2Kernel.OP_SOFTMAX -> {
                if (!tiledThisLaunch()) {
                    softmax.setInt(0, k.tokens * k.nHeads)
                            .enqueue((long) k.tokens * k.nHeads * NORM_WG, NORM_WG, event);
                }
            }
            case Llama2Kernel.OP_ATTN_OUT -> {
                if (!tiledThisLaunch()) {
                    attnOut.setInt(0, k.tokens).setInt(9, layer).enqueue((long) k.tokens * k.dim, ELEMENT_WG, event);
                }
            }
            default -> {
                return false;
            }
        }
        return true;
    }

    /**
     * Makes a device-only {@code att} (DeviceLlama2's attOnDemand) hold this step's score rows, tokens x heads x
     * context floats, growing it to the next power of two of tokens (at most the step capacity) and rebinding the
     * three passes that read it. A Java-mirrored {@code att} is already sized by the step capacity.
     */
    private void ensureScoreRows() {
        long have = launcher.deviceOnlyBytes("att");
        long rowFloats = (long) k.nHeads * k.ctx;
        if (have < 0 || (long) k.tokens * rowFloats * Float.BYTES <= have) {
            return;
        }
        long tokens = Math.min(Long.highestOneBit(Math.max(1, k.tokens - 1)) << 1, k.x.length / k.dim);
        tokens = Math.max(tokens, k.tokens);
        if (tokens * rowFloats > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("the three-pass attention of a step of " + k.tokens + " tokens needs "
                    + tokens * rowFloats + " score floats (tokens x " + k.nHeads + " heads x context " + k.ctx
                    + "), past the kernels' int indexing: use smaller prefill chunks for block-sparse steps");
        }
        launcher.deviceOnly("att", tokens * rowFloats * Float.BYTES);
        scores.bind();
        softmax.bind();
        attnOut.bind();
    }

    /**
     * Whether this launch's attention passes run attn_tiled: decided at the first attention pass of a launch, by
     * {@link Attention#tiledFor} on the step inputs, and kept for the launch's other layers and ops.
     */
    private boolean tiledThisLaunch() {
        long launch = launcher.launches();
        if (launch != plannedLaunch) {
            plannedLaunch = launch;
            tiledThisLaunch = attnTiled != null
                    && attention.tiledFor(k.headSize, k.tokens, k.tokenSeq, k.entries, k.entryIndptr);
            splitThisLaunch = false;
            decodeThisLaunch = false;
            if (tiledThisLaunch) {
                int most = Attention.maxQueriesPerEntry(k.tokens, k.tokenSeq, k.entries);
                if (attnSplit != null && !split.off() && most <= splitTile.tokens()) {
                    splitThisLaunch = true;
                    tilesThisLaunch = (most + splitTile.tokens() - 1) / splitTile.tokens();
                    int groups = k.entries * (k.kvDim / k.headSize) * tilesThisLaunch;
                    int maxKeys = maxKeys();
                    // attn_decode: one row an entry (its group is an entry's row), where the mode says so.
                    decodeThisLaunch = attnDecode != null && most == 1 && decodeMode.decodeFor(k.kvGroup, maxKeys);
                    planThisLaunch = decodeThisLaunch
                            ? split.plan(groups, maxKeys, decodeTile.keys(), launcher.device().computeUnits(),
                                    decodeTile.groupsPerComputeUnit())
                            : split.plan(groups, maxKeys, splitTile.keys(), launcher.device().computeUnits());
                } else {
                    tilesThisLaunch = (most + tile.tokens() - 1) / tile.tokens();
                }
            }
        }
        return tiledThisLaunch;
    }

    /** The most keys a row of this step sees (positions 0..tokenPos, or the whole entryLen canvas). */
    private int maxKeys() {
        int most = 1;
        for (int t = 0; t < k.tokens; t++) {
            int len = k.entryLen[k.tokenSeq[t]];
            most = Math.max(most, len > 0 ? len : k.tokenPos[t] + 1);
        }
        return most;
    }

    /**
     * A split step's attention of {@code layer}: attn_tiled's split build over (entry, KV head, tile, chunk) groups,
     * then, with more than one chunk, attn_combine into xb; both profiled as attention.
     */
    private void enqueueSplit(int layer) {
        AttentionSplit.Plan plan = planThisLaunch;
        int chunks = plan.chunks();
        if (chunks > 1) {
            long floats = (long) k.tokens * k.nHeads * chunks * (k.headSize + 2);
            if (floats > partFloats) {
                queue.releaseBuffer(part); // OpenCL keeps it until the enqueued kernels that use it have finished
                part = queue.createBuffer(floats * Float.BYTES);
                partFloats = floats;
                queue.setArgBuffer(attnSplit.handle, 17, part);
                queue.setArgBuffer(attnCombine.handle, 3, part);
                if (attnDecode != null) {
                    queue.setArgBuffer(attnDecode.handle, 16, part);
                    queue.setArgBuffer(attnDecodeCombine.handle, 3, part);
                }
            }
        }
        if (decodeThisLaunch) {
            enqueueDecode(layer, plan);
            return;
        }
        int wg = splitTile.workGroup(k.kvGroup);
        if (fusedCombine && chunks > 1) {
            combineCounters((long) k.entries * (k.kvDim / k.headSize) * tilesThisLaunch);
        }
        attnSplit.setInt(0, k.tokens).setInt(1, tilesThisLaunch).setInt(6, layer).setInt(15, chunks)
                .setInt(16, plan.chunkKeys())
                .enqueue((long) k.entries * (k.kvDim / k.headSize) * tilesThisLaunch * chunks * wg, wg,
                        launcher.extraEvent(OpTimes.ATTENTION));
        if (chunks > 1 && !fusedCombine) {
            attnCombine.setInt(0, k.tokens).setInt(1, chunks).enqueue((long) k.tokens * k.nHeads * (k.headSize / 4),
                    ELEMENT_WG, launcher.extraEvent(OpTimes.ATTENTION));
        }
        tiledEnqueued++;
        splitEnqueued++;
        mostChunks = Math.max(mostChunks, chunks);
    }

    /**
     * A decode step's attention of {@code layer} as attn_decode over (entry, KV head, chunk) groups (one row an
     * entry: tilesThisLaunch is 1), its chunks merged by its last chunk group or by attn_decode_combine after it.
     */
    private void enqueueDecode(int layer, AttentionSplit.Plan plan) {
        int chunks = plan.chunks();
        int groups = k.entries * (k.kvDim / k.headSize);
        if (fusedCombine && chunks > 1) {
            combineCounters(groups);
        }
        int wg = decodeTile.wg();
        attnDecode.setInt(0, k.tokens).setInt(5, layer).setInt(14, chunks).setInt(15, plan.chunkKeys())
                .enqueue((long) groups * chunks * wg, wg, launcher.extraEvent(OpTimes.ATTENTION));
        if (chunks > 1 && !fusedCombine) {
            attnDecodeCombine.setInt(0, k.tokens).setInt(1, chunks).enqueue(
                    (long) k.tokens * k.nHeads * (k.headSize / 4), ELEMENT_WG, launcher.extraEvent(OpTimes.ATTENTION));
        }
        tiledEnqueued++;
        splitEnqueued++;
        decodeEnqueued++;
        mostChunks = Math.max(mostChunks, chunks);
    }

    /**
     * Which kernel decode steps use from now on (tests; the default comes from {@link DecodeAttention#PROPERTY});
     * anything but tiled needs attn_decode built (the model was not made with tiled, and its tile fits).
     */
    void decodeAttention(DecodeAttention mode) {
        java.util.Objects.requireNonNull(mode, "decode attention");
        if (mode != DecodeAttention.TILED && attnDecode == null) {
            throw new IllegalStateException("decode attention " + mode.label() + ": attn_decode was not built (the"
                    + " model was made with " + DecodeAttention.PROPERTY + "=tiled or " + AttentionSplit.PROPERTY
                    + "=off, or its tile " + decodeTile.label() + " does not fit the device)");
        }
        this.decodeMode = mode;
        plannedLaunch = -1;
    }

    DecodeAttention decodeAttention() {
        return decodeMode;
    }

    /** Whether attn_decode was built. */
    boolean decodeAvailable() {
        return attnDecode != null;
    }

    /** Layers whose attention ran as attn_decode so far (counted in splitEnqueued and tiledEnqueued too). */
    long decodeEnqueued() {
        return decodeEnqueued;
    }

    DecodeAttention.Tile decodeTile() {
        return decodeTile;
    }

    /** The split mode from now on (tests and benches; the default comes from {@link AttentionSplit#PROPERTY}). */
    void split(AttentionSplit mode) {
        java.util.Objects.requireNonNull(mode, "attention split");
        if (!mode.off() && attnSplit == null) {
            throw new IllegalStateException("attention split " + mode.label() + ": the split kernel was not built"
                    + " (the model was made with " + AttentionSplit.PROPERTY + "=off, or its tile does not fit)");
        }
        this.split = mode;
        plannedLaunch = -1;
    }

    AttentionSplit split() {
        return split;
    }

    /** Layers whose attention ran split (the split build, any number of chunks) so far. */
    long splitEnqueued() {
        return splitEnqueued;
    }

    /** The most chunks a split step used so far (1: none). */
    int mostChunks() {
        return mostChunks;
    }

    /** The split build's tile. */
    AttentionTile splitTile() {
        return splitTile;
    }

    /** The attention mode from now on (tests and benches; the default comes from {@link Attention#PROPERTY}). */
    void attention(Attention mode) {
        this.attention = java.util.Objects.requireNonNull(mode, "attention mode");
        plannedLaunch = -1;
    }

    Attention attention() {
        return attention;
    }

    /** Whether this device runs attn_tiled at all (head size a multiple of 4, the tile fits its limits). */
    boolean tiledAvailable() {
        return attnTiled != null;
    }

    /** attn_tiled enqueues so far (one per layer of a tiled launch). */
    long tiledEnqueued() {
        return tiledEnqueued;
    }

    AttentionTile tile() {
        return tile;
    }

    private void norm(Kernel n, int rows, int layer, MemorySegment event) {
        n.setInt(0, rows).setInt(3, layer).enqueue((long) rows * NORM_WG, NORM_WG, event);
    }
}

package io.stepstream.gpu;

import com.aparapi.device.Device;
import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.cl.ClRuntime;

/**
 * The device side of a llama2.c model: one {@link Llama2Kernel} with every weight, the KV block pool and the
 * activations resident on one OpenCL device, and the pass schedule of a forward step. The host writes the
 * step's small inputs into the kernel's arrays, calls {@link #launchStep}, and reads the logits back. The passes
 * reach the device through Aparapi ({@link KernelLauncher}) or our own OpenCL queue ({@link DirectLauncher}),
 * as {@link Dispatch} says; both run the same Aparapi-generated OpenCL C on the same ranges.
 * A weight kind over {@value WeightChunks#MAX_BUFFER_BYTES_PROPERTY} (2 GiB by default) is split by layer ranges
 * ({@link WeightChunks}) and a KV pool over it lives on the device only; both need the hand kernels of the direct
 * dispatch, every other path refuses them by name.
 * Not thread-safe (Aparapi serialises kernel runs JVM-wide anyway): one device thread per model.
 */
final class DeviceLlama2 implements AutoCloseable {
    /** Largest Java array Aparapi can hand to OpenCL as one buffer: 2 GiB. */
    static final long MAX_BUFFER_BYTES = Integer.MAX_VALUE;
    /** Work-groups of the shared range at most; passes with more units loop over them. */
    private static final int MAX_GROUPS = 1 << 14;
    /** Work-group size on CPU devices (measured on PoCL, see localSizeFor). */
    private static final int CPU_LOCAL = 8;

    final Llama2Kernel k = new Llama2Kernel();
    private final PassLauncher launcher;
    private final OpenCLDevice device;
    private final ModelConfig config;
    private final int maxBlocks;
    private final int[] stepOps;
    private final int[] stepLayers;
    private final TensorType weightType;
    private final long matrixBytes;
    private final int localSize;
    private final int maxGroups;
    private final Matmul matmul;
    private final HandMatmul handMatmul;
    private final WeightChunks.Split split;
    /** Whether the KV pool is a device buffer with no Java mirror (k.kv is a placeholder). */
    private final boolean kvDeviceOnly;
    /** The KV pool's element type (f16: always device-only). */
    private final KvCacheType kvCache;
    /**
     * Whether {@code att} (the score rows of the three-pass attention: tokens x heads x context floats) lives on the
     * device only, grown by {@link HandStep} when a launch first takes that path (block-sparse steps, heads the tiled
     * kernel cannot take): true where the hand step runs every attention pass, so no Aparapi pass reads the array.
     * Otherwise it is a Java array sized with every capacity change (a 1,024-token prefill chunk of a 7B model: 512 MB
     * on the heap and on the device, for a path dense steps never take).
     */
    private final boolean attOnDemand;
    /**
     * System property: {@code false} keeps {@code att} a Java-mirrored array even where it could live on the device
     * only (tests and debugging that read single passes' score rows back); read when a model is built.
     */
    static final String SCORE_ROWS_ON_DEMAND_PROPERTY = "stepstream.opencl.scoreRowsOnDemand";
    private long putNanos;
    private long executeNanos;
    private long getNanos;
    private boolean stepScheduleOnDevice;
    private int tokenCapacity;
    private int entryCapacity;
    private int logitCapacity;

    DeviceLlama2(Llama2Weights w, OpenCLDevice device, int maxBlocks) {
        this(w, device, maxBlocks, TensorType.F32);
    }

    DeviceLlama2(Llama2Weights w, OpenCLDevice device, int maxBlocks, TensorType weightType) {
        this(w, device, maxBlocks, weightType, Dispatch.fromSystemProperty());
    }

    DeviceLlama2(Llama2Weights w, OpenCLDevice device, int maxBlocks, TensorType weightType, Dispatch dispatch) {
        this(w, device, maxBlocks, weightType, dispatch, Matmul.fromSystemProperty(), MatmulTiles.fromSystemProperty());
    }

    /**
     * {@code matmul}: which kernels run the matmul passes under the direct dispatch (hand-written matmul.cl or the
     * Aparapi pass); the Aparapi dispatch ignores it. Hand matmuls need dim and hidden to be multiples of 4
     * (vector loads); other shapes run Aparapi's matmul ({@link #matmul()} says which ran).
     */
    DeviceLlama2(Llama2Weights w, OpenCLDevice device, int maxBlocks, TensorType weightType, Dispatch dispatch,
                 Matmul matmul, MatmulTiles tiles) {
        this(w, device, maxBlocks, weightType, dispatch, matmul, tiles, TensorCores.fromSystemProperties());
    }

    /** As above; {@code tensorCores}: whether the hand path's F16 matmuls may use tensor cores (or emulate them). */
    DeviceLlama2(Llama2Weights w, OpenCLDevice device, int maxBlocks, TensorType weightType, Dispatch dispatch,
                 Matmul matmul, MatmulTiles tiles, TensorCores tensorCores) {
        this(w, device, maxBlocks, weightType, dispatch, matmul, tiles, tensorCores, KvCacheType.fromSystemProperty());
    }

    /**
     * As above; {@code kvCache}: the KV pool's element type. F16 needs the hand path with every pass a hand kernel
     * (the Aparapi-translated passes read the pool as floats) and keeps the pool on the device alone.
     */
    DeviceLlama2(Llama2Weights w, OpenCLDevice device, int maxBlocks, TensorType weightType, Dispatch dispatch,
                 Matmul matmul, MatmulTiles tiles, TensorCores tensorCores, KvCacheType kvCache) {
        this.device = device;
        this.kvCache = java.util.Objects.requireNonNull(kvCache, "kvCache");
        this.config = w.config();
        this.maxBlocks = maxBlocks;
        this.weightType = weightType;
        ModelConfig c = config;
        if (c.headSize() % 2 != 0) {
            throw new IllegalArgumentException("head size must be even for RoPE, got " + c.headSize());
        }
        if (c.dim() % 2 != 0 || c.kvDim() % 2 != 0) {
            throw new IllegalArgumentException("dim and kvDim must be even, got " + c.dim() + " and " + c.kvDim());
        }
        k.dim = c.dim();
        k.kvDim = c.kvDim();
        k.hidden = c.hiddenDim();
        k.nHeads = c.nHeads();
        k.headSize = c.headSize();
        k.kvGroup = c.nHeads() / c.nKvHeads();
        k.vocab = c.vocabSize();
        k.ctx = c.contextLength();
        k.maxBlocksPerSeq = blocksPerSequence(c);
        k.blockFloats = c.nLayers() * 2 * KvBlockPool.BLOCK_POSITIONS * c.kvDim();
        k.eps = c.rmsNormEps();
        k.attScale = (float) Math.sqrt(c.headSize());
        k.wtype = switch (weightType) {
            case F32 -> Llama2Kernel.WT_F32;
            case F16 -> Llama2Kernel.WT_F16;
            case Q8_0 -> Llama2Kernel.WT_Q8_0;
            default -> throw new IllegalArgumentException("weight type " + weightType
                    + " is not supported on the device (F32, F16, Q8_0)");
        };

        k.emb = checked("token_embedding", w.tokenEmbedding());
        k.rmsAtt = concat("rms_att", w.rmsAtt());
        k.rmsFfn = concat("rms_ffn", w.rmsFfn());
        k.rmsFinal = checked("rms_final", w.rmsFinal());
        k.f16Scale = new float[32];
        k.f16Scale[0] = 0x1p-24f;
        for (int e = 1; e < 32; e++) {
            k.f16Scale[e] = (float) Math.scalb(1.0, e - 25);
        }
        // Weight kinds too large for one buffer are split by layer ranges; only the hand matmuls bind a chunk per
        // layer, every other path reads a kind as one array and refuses the split before anything is built.
        boolean handPath = handPath(c, dispatch, matmul);
        WeightChunks.Split split = WeightChunks.plan(c, weightType, WeightChunks.maxBufferBytesFromSystemProperty());
        if (split.isSplit() && !handPath) {
            String path = dispatch != Dispatch.DIRECT ? "the Aparapi dispatch (-Dstepstream.opencl.dispatch=aparapi)"
                    : matmul != Matmul.HAND ? "the Aparapi matmul pass (-Dstepstream.opencl.matmul=aparapi)"
                    : "the Aparapi matmul pass (dim " + c.dim() + " and hidden " + c.hiddenDim()
                    + " must be multiples of 4 for the hand matmuls)";
            throw new IllegalArgumentException("weights split into " + split.describe() + ": " + path
                    + " reads each weight kind as one array; only the direct dispatch's hand matmuls run a split model");
        }
        this.split = split;
        // A shared classifier is copied: one Java array behind two kernel fields would be two device buffers.
        float[] classifier = w.classifier() == w.tokenEmbedding() ? w.classifier().clone() : w.classifier();
        DeviceWeights[][] kinds = new DeviceWeights[Llama2Kernel.KINDS][];
        float[][][] layered = {w.wq(), w.wk(), w.wv(), w.wo(), w.w1(), w.w2(), w.w3()};
        for (int i = 0; i < WeightChunks.LAYERED.length; i++) {
            kinds[WeightChunks.LAYERED[i]] = new DeviceWeights[split.chunks()];
        }
        // Each chunk of each kind is encoded on its own (a 7B model's F16/Q8_0 encoding takes tens of seconds alone).
        java.util.stream.IntStream.range(0, WeightChunks.LAYERED.length * split.chunks()).parallel().forEach(task -> {
            int i = task / split.chunks();
            int chunk = task % split.chunks();
            kinds[WeightChunks.LAYERED[i]][chunk] = encodeChunk(WeightChunks.NAMES[i], weightType, layered[i], split,
                    chunk);
        });
        kinds[Llama2Kernel.K_CLS] = new DeviceWeights[]{DeviceWeights.encode("classifier", weightType, classifier)};
        long bytes = 0;
        for (DeviceWeights[] kind : kinds) {
            for (DeviceWeights d : kind) {
                bytes += d.deviceBytes();
            }
        }
        matrixBytes = bytes;
        DeviceWeights[] first = new DeviceWeights[Llama2Kernel.KINDS];
        for (int kind = 0; kind < first.length; kind++) {
            first[kind] = kinds[kind][0];
        }
        setWeights(first);
        ropeTables(c);
        long kvFloats = (long) maxBlocks * k.blockFloats;
        long kvBytes = kvFloats * kvCache.bytes();
        if (maxBlocks <= 0) {
            throw new IllegalArgumentException("KV pool of " + maxBlocks + " blocks: need at least one");
        }
        if (kvCache != KvCacheType.F32 && (!handPath || !Matmul.handAllPasses())) {
            String path = !handPath ? (dispatch != Dispatch.DIRECT ? "the Aparapi dispatch (-D" + Dispatch.PROPERTY
                    + "=aparapi)" : matmul != Matmul.HAND ? "the Aparapi matmul pass (-D" + Matmul.PROPERTY
                    + "=aparapi)" : "the Aparapi matmul pass (dim " + c.dim() + " and hidden " + c.hiddenDim()
                    + " must be multiples of 4 for the hand matmuls)")
                    : "the Aparapi attention passes (-D" + Matmul.HAND_PASSES_PROPERTY + "=matmul)";
            throw new IllegalArgumentException(KvCacheType.PROPERTY + "=" + kvCache.label() + ": " + path
                    + " reads the KV pool as floats; only the direct dispatch with every pass a hand kernel stores it as "
                    + kvCache.label() + " (use " + KvCacheType.PROPERTY + "=f32 here)");
        }
        // A pool over one buffer lives on the device only (no Java mirror), where the hand kernels index it with
        // 64-bit offsets; Aparapi's passes would index the Java array, so they refuse it. An f16 pool is never
        // mirrored (the mirror is a float[]): only the hand kernels, which convert, touch it.
        kvDeviceOnly = kvBytes > split.maxBufferBytes() || kvCache != KvCacheType.F32;
        if (kvDeviceOnly) {
            String pool = "KV pool of " + maxBlocks + " blocks of " + k.blockFloats + " " + kvCache.label()
                    + " elements (" + kvBytes + " bytes)";
            if (!handPath || !Matmul.handAllPasses()) {
                String path = !handPath ? (dispatch != Dispatch.DIRECT ? "the Aparapi dispatch"
                        : "the Aparapi matmul pass") : "the Aparapi attention passes (-D" + Matmul.HAND_PASSES_PROPERTY
                        + "=matmul)";
                throw new IllegalArgumentException(pool + " exceeds one device buffer of " + split.maxBufferBytes()
                        + " bytes (" + WeightChunks.MAX_BUFFER_BYTES_PROPERTY + "): " + path + " reads it as one Java"
                        + " array; only the direct dispatch's hand kernels keep it on the device alone");
            }
            if (kvBytes > device.getMaxMemAllocSize()) {
                throw new IllegalArgumentException(pool + " exceeds the largest buffer " + device.getName().strip()
                        + " allows, CL_DEVICE_MAX_MEM_ALLOC_SIZE " + device.getMaxMemAllocSize()
                        + " bytes: ask for fewer KV blocks");
            }
            k.kv = new float[1]; // a placeholder: the launcher binds kv to a device buffer of kvBytes
        } else {
            k.kv = new float[(int) kvFloats];
        }

        int passes = 3 + Llama2Kernel.LAYER_OPS.length * c.nLayers();
        stepOps = new int[passes];
        stepLayers = new int[passes];
        int p = 0;
        stepOps[p++] = Llama2Kernel.OP_EMBED;
        for (int l = 0; l < c.nLayers(); l++) {
            for (int op : Llama2Kernel.LAYER_OPS) {
                stepLayers[p] = l;
                stepOps[p++] = op;
            }
        }
        stepOps[p++] = Llama2Kernel.OP_FINAL_NORM;
        stepOps[p] = Llama2Kernel.OP_LOGITS;
        k.passOp = stepOps.clone();
        k.passLayer = stepLayers.clone();
        stepScheduleOnDevice = true;

        k.patIndptr = new int[1];
        k.patIndices = new int[1];
        boolean allPasses = Matmul.handAllPasses();
        attOnDemand = handPath && allPasses
                && !"false".equals(System.getProperty(SCORE_ROWS_ON_DEMAND_PROPERTY));
        growArrays(1, 1, 1);
        launcher = switch (dispatch) {
            case APARAPI -> new KernelLauncher(k, device);
            // The same device Aparapi would use: its OpenCLDevice holds the native cl_device_id.
            case DIRECT -> new DirectLauncher(k, ClRuntime.byHandle(device.getDeviceId(), device.getName()));
        };
        if (launcher instanceof DirectLauncher direct) {
            // Profiled kernel time split by op: each pass is labelled with its op in the schedule.
            direct.passLabels(pass -> k.passOp[pass]);
        }
        HandMatmul handMatmul = null;
        boolean hand = handPath && launcher instanceof DirectLauncher;
        if (hand) {
            DirectLauncher direct = (DirectLauncher) launcher;
            try {
                handMatmul = new HandMatmul(direct, k, c, tiles, MatmulTiles.largeFromSystemProperty(tiles),
                        MatmulTiles.longRowsPolicyFromSystemProperties(tiles), allPasses, tensorCores, kvCache);
                direct.passHook(handMatmul);
                if (split.isSplit()) {
                    // chunk 0 goes up with the fields below; the others now, as buffers of the launcher's context
                    handMatmul.weightChunks(WeightChunks.upload(direct.queue(), split, kinds, weightType,
                            Llama2Kernel.weightFieldSuffix(k.wtype)));
                }
            } catch (RuntimeException e) {
                direct.dispose();
                throw e;
            }
        }
        this.matmul = hand ? Matmul.HAND : Matmul.APARAPI;
        this.handMatmul = handMatmul;
        localSize = localSizeFor(device);
        maxGroups = (int) Math.max(1, Math.min(MAX_GROUPS,
                (long) device.getMaxComputeUnits() * (device.getType() == Device.TYPE.GPU ? 16 : 4)));
        // Explicit mode: nothing reaches the device unless put; the weights go now and never again.
        for (float[] a : new float[][]{k.emb, k.rmsAtt, k.rmsFfn, k.rmsFinal, k.ropeCos, k.ropeSin, k.f16Scale}) {
            launcher.put(a);
        }
        if (kvDeviceOnly) {
            ((DirectLauncher) launcher).deviceOnly("kv", kvBytes);
        } else {
            launcher.put(k.kv);
        }
        if (attOnDemand) {
            ((DirectLauncher) launcher).deviceOnly("att", Float.BYTES);
        }
        putWeights();
        launcher.put(k.passOp);
        launcher.put(k.passLayer);
        launcher.put(k.patIndptr);
        launcher.put(k.patIndices);
        putActivations();
    }

    /** The layers of one kind in chunk {@code chunk} of {@code split}, encoded (one chunk: all layers). */
    private static DeviceWeights encodeChunk(String name, TensorType type, float[][] perLayer, WeightChunks.Split split,
                                             int chunk) {
        int from = split.firstLayer(chunk);
        int to = split.endLayer(chunk);
        return DeviceWeights.encode(split.isSplit() ? name + " layers " + from + ".." + (to - 1) : name, type,
                java.util.Arrays.copyOfRange(perLayer, from, to));
    }

    /** Whether the KV pool lives on the device only, past {@link WeightChunks#MAX_BUFFER_BYTES_PROPERTY}. */
    /**
     * Bytes the three-pass attention's score rows ({@code att}) take: on demand, the device buffer HandStep grew (4
     * until a launch first takes that path); else the Java array every capacity change sizes.
     */
    long scoreRowBytes() {
        long b = attOnDemand ? ((DirectLauncher) launcher).deviceOnlyBytes("att") : -1;
        return b >= 0 ? b : (long) k.att.length * Float.BYTES;
    }

    boolean kvDeviceOnly() {
        return kvDeviceOnly;
    }

    /** The KV pool's element type. */
    KvCacheType kvCache() {
        return kvCache;
    }

    /** Bytes of the device KV pool (blocks x {@code blockFloats} elements x the element's bytes). */
    long kvPoolBytes() {
        return (long) maxBlocks * k.blockFloats * kvCache.bytes();
    }

    /**
     * Writes {@code src[from .. from + count)} into the pool's elements from {@code at} as the pool stores them (f16:
     * {@link Float#floatToFloat16}, round to nearest even, as the kernels' stores): for tests and probes that lay out
     * keys and values themselves. A mirrored pool takes them into k.kv and sends the whole array.
     */
    void writeKv(long at, float[] src, int from, int count) {
        checkKvRange(at, count);
        if (!kvDeviceOnly) {
            if (src != k.kv || from != at) {
                System.arraycopy(src, from, k.kv, (int) at, count);
            }
            launcher.put(k.kv);
            return;
        }
        DirectLauncher direct = (DirectLauncher) launcher;
        direct.finish();
        if (kvCache == KvCacheType.F16) {
            short[] bits = new short[count];
            for (int i = 0; i < count; i++) {
                bits[i] = Float.floatToFloat16(src[from + i]);
            }
            direct.queue().writeBlocking(direct.buffer("kv"), at * 2, java.lang.foreign.MemorySegment.ofArray(bits),
                    2L * count);
        } else {
            direct.queue().writeBlocking(direct.buffer("kv"), at * Float.BYTES,
                    java.lang.foreign.MemorySegment.ofArray(src).asSlice((long) from * Float.BYTES), (long) count * Float.BYTES);
        }
    }

    /** Pool elements {@code [at, at + count)} widened to float into {@code dst} from {@code from} (waits for the device). */
    void readKv(long at, float[] dst, int from, int count) {
        checkKvRange(at, count);
        if (kvCache == KvCacheType.F16) {
            short[] bits = readKvBits(at, count);
            for (int i = 0; i < count; i++) {
                dst[from + i] = Float.float16ToFloat(bits[i]);
            }
        } else if (launcher instanceof DirectLauncher direct) {
            direct.queue().readBlocking(direct.buffer("kv"), at * Float.BYTES,
                    java.lang.foreign.MemorySegment.ofArray(dst).asSlice((long) from * Float.BYTES), (long) count * Float.BYTES);
        } else {
            launcher.get(k.kv);
            System.arraycopy(k.kv, (int) at, dst, from, count);
        }
    }

    /** The half bits of f16 pool elements {@code [at, at + count)} (waits for the device). */
    short[] readKvBits(long at, int count) {
        if (kvCache != KvCacheType.F16) {
            throw new IllegalStateException("the KV pool holds " + kvCache.label() + " elements, not half bits");
        }
        checkKvRange(at, count);
        short[] bits = new short[count];
        DirectLauncher direct = (DirectLauncher) launcher;
        direct.queue().readBlocking(direct.buffer("kv"), at * 2, java.lang.foreign.MemorySegment.ofArray(bits),
                2L * count);
        return bits;
    }

    private void checkKvRange(long at, int count) {
        long elements = (long) maxBlocks * k.blockFloats;
        if (at < 0 || count < 0 || at + count > elements) {
            throw new IllegalArgumentException("KV elements [" + at + ", " + (at + count) + ") outside the pool of "
                    + elements);
        }
    }

    /** How the layered weight kinds are split over device buffers (one chunk: not split). */
    WeightChunks.Split weightSplit() {
        return split;
    }

    private void setWeights(DeviceWeights[] d) {
        k.wq = d[Llama2Kernel.K_WQ].f32();
        k.wk = d[Llama2Kernel.K_WK].f32();
        k.wv = d[Llama2Kernel.K_WV].f32();
        k.wo = d[Llama2Kernel.K_WO].f32();
        k.w1 = d[Llama2Kernel.K_W1].f32();
        k.w2 = d[Llama2Kernel.K_W2].f32();
        k.w3 = d[Llama2Kernel.K_W3].f32();
        k.cls = d[Llama2Kernel.K_CLS].f32();
        k.wqH = d[Llama2Kernel.K_WQ].f16();
        k.wkH = d[Llama2Kernel.K_WK].f16();
        k.wvH = d[Llama2Kernel.K_WV].f16();
        k.woH = d[Llama2Kernel.K_WO].f16();
        k.w1H = d[Llama2Kernel.K_W1].f16();
        k.w2H = d[Llama2Kernel.K_W2].f16();
        k.w3H = d[Llama2Kernel.K_W3].f16();
        k.clsH = d[Llama2Kernel.K_CLS].f16();
        k.wqQ = d[Llama2Kernel.K_WQ].q8();
        k.wkQ = d[Llama2Kernel.K_WK].q8();
        k.wvQ = d[Llama2Kernel.K_WV].q8();
        k.woQ = d[Llama2Kernel.K_WO].q8();
        k.w1Q = d[Llama2Kernel.K_W1].q8();
        k.w2Q = d[Llama2Kernel.K_W2].q8();
        k.w3Q = d[Llama2Kernel.K_W3].q8();
        k.clsQ = d[Llama2Kernel.K_CLS].q8();
        k.wqS = d[Llama2Kernel.K_WQ].q8Scales();
        k.wkS = d[Llama2Kernel.K_WK].q8Scales();
        k.wvS = d[Llama2Kernel.K_WV].q8Scales();
        k.woS = d[Llama2Kernel.K_WO].q8Scales();
        k.w1S = d[Llama2Kernel.K_W1].q8Scales();
        k.w2S = d[Llama2Kernel.K_W2].q8Scales();
        k.w3S = d[Llama2Kernel.K_W3].q8Scales();
        k.clsS = d[Llama2Kernel.K_CLS].q8Scales();
    }

    /** Every weight array goes up once; the one-element placeholders of unused encodings are shared. */
    private void putWeights() {
        java.util.Set<Object> sent = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (float[] a : new float[][]{k.wq, k.wk, k.wv, k.wo, k.w1, k.w2, k.w3, k.cls, k.wqS, k.wkS, k.wvS, k.woS,
                k.w1S, k.w2S, k.w3S, k.clsS}) {
            if (sent.add(a)) {
                launcher.put(a);
            }
        }
        for (char[] a : new char[][]{k.wqH, k.wkH, k.wvH, k.woH, k.w1H, k.w2H, k.w3H, k.clsH}) {
            if (sent.add(a)) {
                launcher.put(a);
            }
        }
        for (byte[] a : new byte[][]{k.wqQ, k.wkQ, k.wvQ, k.woQ, k.w1Q, k.w2Q, k.w3Q, k.clsQ}) {
            if (sent.add(a)) {
                launcher.put(a);
            }
        }
    }

    /**
     * The work-group size: the largest power of two up to MAX_LOCAL (GPUs) or CPU_LOCAL (CPU devices such as
     * PoCL, where a work-group is a loop on one core and barriers cost more than they save) that the device
     * takes; -Dstepstream.opencl.localSize=N (a power of two) overrides it.
     */
    private static int localSizeFor(OpenCLDevice device) {
        int wanted = Integer.getInteger("stepstream.opencl.localSize",
                device.getType() == Device.TYPE.GPU ? Llama2Kernel.MAX_LOCAL : CPU_LOCAL);
        if (wanted < 1 || Integer.bitCount(wanted) != 1 || wanted > Llama2Kernel.MAX_LOCAL) {
            throw new IllegalArgumentException("stepstream.opencl.localSize must be a power of two up to "
                    + Llama2Kernel.MAX_LOCAL + ", got " + wanted);
        }
        int max = Math.min(wanted, device.getMaxWorkGroupSize());
        int size = 1;
        while (size * 2 <= max) {
            size *= 2;
        }
        return size;
    }

    /**
     * Sends this step's block-sparse patterns, all sparse entries' rows and indices concatenated; entries point
     * into them through {@code k.entryIndptr} / {@code k.entryIndices} (-1: dense), which the caller fills.
     */
    void putPatterns(int[] indptr, int indptrLength, int[] indices, int indicesLength) {
        if (indptrLength > k.patIndptr.length) {
            k.patIndptr = new int[Math.max(indptrLength, 2 * k.patIndptr.length)];
        }
        if (indicesLength > k.patIndices.length) {
            k.patIndices = new int[Math.max(indicesLength, 2 * k.patIndices.length)];
        }
        System.arraycopy(indptr, 0, k.patIndptr, 0, indptrLength);
        System.arraycopy(indices, 0, k.patIndices, 0, indicesLength);
        launcher.put(k.patIndptr);
        launcher.put(k.patIndices);
    }

    /**
     * Whether the hand matmuls run the model's matmul passes: the direct dispatch with {@link Matmul#HAND}, and dim and
     * hidden multiples of 4 (vector loads). Only that path binds weight chunks, and with {@link Matmul#handAllPasses}
     * only it indexes device-only buffers (a KV pool over one buffer, the on-demand score rows).
     */
    static boolean handPath(ModelConfig c, Dispatch dispatch, Matmul matmul) {
        return dispatch == Dispatch.DIRECT && matmul == Matmul.HAND && c.dim() % 4 == 0 && c.hiddenDim() % 4 == 0;
    }

    static int blocksPerSequence(ModelConfig c) {
        return (c.contextLength() + KvBlockPool.BLOCK_POSITIONS - 1) / KvBlockPool.BLOCK_POSITIONS;
    }

    OpenCLDevice device() {
        return device;
    }

    Dispatch dispatch() {
        return Dispatch.parse(launcher.dispatchName());
    }

    /** The kernels that run the matmul passes: HAND only under the direct dispatch. */
    Matmul matmul() {
        return matmul;
    }

    /**
     * Whether the hand path's F16 matmuls use tensor cores, in words: "off", or how mmt was built ("mma.sync" or
     * "emulated"), its tile and token threshold.
     */
    String tensorCores() {
        return handMatmul == null ? "off" : handMatmul.program().tensorCoreLabel();
    }

    /** Matmul passes that ran on the tensor-core kernel so far. */
    long tensorCorePasses() {
        return handMatmul == null ? 0 : handMatmul.tensorCorePasses();
    }

    /** Matmul passes run as hand kernels so far (0 unless {@link #matmul()} is HAND). */
    /** The hand matmul hook, or null when the matmuls run Aparapi's pass. */
    HandMatmul handMatmul() {
        return handMatmul;
    }

    /** The persistent layer tail in words: "off" (not built) or its build, shape and group count. */
    String persistentTail() {
        PersistentTail t = handMatmul == null ? null : handMatmul.tail();
        return t == null ? "off" : t.build() + "; " + t.shape().label() + " (" + t.groups() + " groups)";
    }

    /** Layers whose tail ran as the persistent kernel so far. */
    long persistentTailLaunches() {
        return handMatmul == null ? 0 : handMatmul.tailEnqueued();
    }

    /** Norm passes fused into the matvec after them so far. */
    long fusedNorms() {
        return handMatmul == null ? 0 : handMatmul.fusedNorms();
    }

    long handMatmulPasses() {
        return handMatmul == null ? 0 : handMatmul.enqueued();
    }

    /** Non-matmul passes run as hand kernels (step.cl) so far. */
    long handStepPasses() {
        return handMatmul == null ? 0 : handMatmul.stepEnqueued();
    }

    /** The hand step's kernels, or null (Aparapi dispatch, Aparapi matmuls, or {@code handPasses=matmul}). */
    HandStep handStep() {
        return handMatmul == null ? null : handMatmul.step();
    }

    /**
     * How the hand step computes attention from now on (the default is {@link Attention#fromSystemProperty()});
     * without a hand step attention always runs as Llama2Kernel's three passes and this fails.
     */
    void attention(Attention mode) {
        HandStep step = handStep();
        if (step == null) {
            throw new IllegalStateException("attention " + mode.label() + ": this model has no hand step (dispatch "
                    + launcher.dispatchName() + ", matmul " + matmul.label() + "); its attention runs as three passes");
        }
        step.attention(mode);
    }

    /** Layers whose attention ran as the tiled kernel so far (0 without a hand step). */
    long tiledAttentionPasses() {
        HandStep step = handStep();
        return step == null ? 0 : step.tiledEnqueued();
    }

    /**
     * How the hand step splits decode-sized attention from now on (the default is
     * {@link AttentionSplit#fromSystemProperty()}); fails without a hand step, or when the split kernel was not built.
     */
    void attentionSplit(AttentionSplit mode) {
        HandStep step = handStep();
        if (step == null) {
            throw new IllegalStateException("attention split " + mode.label() + ": this model has no hand step");
        }
        step.split(mode);
    }

    /** Layers whose attention ran as the split (decode) build of the tiled kernel so far (0 without a hand step). */
    long splitAttentionPasses() {
        HandStep step = handStep();
        return step == null ? 0 : step.splitEnqueued();
    }

    /**
     * Which kernel the hand step runs for decode steps from now on (the default is
     * {@link DecodeAttention#fromSystemProperty()}); fails without a hand step or when attn_decode was not built.
     */
    void decodeAttention(DecodeAttention mode) {
        HandStep step = handStep();
        if (step == null) {
            throw new IllegalStateException("decode attention " + mode.label() + ": this model has no hand step");
        }
        step.decodeAttention(mode);
    }

    /** Layers whose attention ran as attn_decode so far (0 without a hand step). */
    long decodeAttentionPasses() {
        HandStep step = handStep();
        return step == null ? 0 : step.decodeEnqueued();
    }

    /** The most key chunks a split attention used so far (1: none). */
    int attentionMostChunks() {
        HandStep step = handStep();
        return step == null ? 1 : step.mostChunks();
    }

    /** The most split-K slices a hand matmul pass used so far (1: none). */
    int handMatmulMaxSplit() {
        return handMatmul == null ? 1 : handMatmul.maxSplit();
    }

    long launches() {
        return launcher.launches();
    }

    long passesLaunched() {
        return launcher.passes();
    }

    int passesPerStep() {
        return stepOps.length;
    }

    int maxBlocks() {
        return maxBlocks;
    }

    PassLauncher launcher() {
        return launcher;
    }

    /** Makes the per-step arrays hold at least this many token rows and entries (new arrays go to the device). */
    void ensureCapacity(int tokens, int entries) {
        ensureCapacity(tokens, entries, entries);
    }

    /** As above, with room for {@code logitRows} rows of logits (a diffusion step asks for more than one per entry). */
    void ensureCapacity(int tokens, int entries, int logitRows) {
        if (tokens > tokenCapacity || entries > entryCapacity || logitRows > logitCapacity) {
            growArrays(Math.max(tokens, tokenCapacity), Math.max(entries, entryCapacity),
                    Math.max(logitRows, logitCapacity));
            putActivations();
        }
    }

    /** An AR step: one row of logits per entry (k.logitRow holds each entry's last row). */
    void launchStep(int tokens, int entries, int maxLen) {
        launchStep(tokens, entries, maxLen, entries);
    }

    /**
     * Sends the step inputs (already written into the kernel's arrays) and runs the whole step: one launch; the
     * logits of the rows k.logitRow[0 .. logitRows) come back into k.logits, a row each.
     */
    void launchStep(int tokens, int entries, int maxLen, int logitRows) {
        enqueueStep(tokens, entries, maxLen, logitRows);
        // Only the rows of this step cross the bus, not the whole (capacity-sized) logits buffer.
        readLogits(0, k.logits, 0, logitRows * k.vocab);
    }

    /**
     * Sends the step inputs and enqueues the whole step without reading anything back: the caller then takes the
     * logits it needs with {@link #readLogits}, straight into its own arrays.
     */
    void enqueueStep(int tokens, int entries, int maxLen, int logitRows) {
        if (!stepScheduleOnDevice) {
            System.arraycopy(stepOps, 0, k.passOp, 0, stepOps.length);
            System.arraycopy(stepLayers, 0, k.passLayer, 0, stepLayers.length);
            launcher.put(k.passOp);
            launcher.put(k.passLayer);
            stepScheduleOnDevice = true;
        }
        long t0 = System.nanoTime();
        putStepInputs();
        long t1 = System.nanoTime();
        run(stepOps.length, tokens, entries, maxLen, logitRows);
        long t2 = System.nanoTime();
        putNanos += t1 - t0;
        executeNanos += t2 - t1;
    }

    /**
     * Logits floats {@code [from, from + count)} of the last step (row r of the step's logit rows starts at
     * {@code r * vocab}) into {@code dst} at {@code dstFrom}; the first read waits for the step.
     */
    void readLogits(int from, float[] dst, int dstFrom, int count) {
        long t0 = System.nanoTime();
        launcher.get(k.logits, from, dst, dstFrom, count);
        getNanos += System.nanoTime() - t0;
    }

    /**
     * Reduces the last step's logit rows {@code [0, rows)} on the device with {@code kernel} (built in this model's
     * direct launcher queue, {@link RowSummaryKernel#inLauncher}) and reads back only each row's argmax and
     * confidence; the wait for the step and the read count as the step's get time, the kernel as the "summary" op.
     */
    void readSummaries(RowSummaryKernel kernel, int rows, int[] ids, double[] confidences) {
        long t0 = System.nanoTime();
        DirectLauncher direct = (DirectLauncher) launcher;
        kernel.summarize(direct.buffer("logits"), rows, k.vocab, direct.extraEvent(OpTimes.SUMMARY), ids,
                confidences);
        getNanos += System.nanoTime() - t0;
    }

    /**
     * One launch of a step's number of passes that do nothing, on the step's range: what a step pays for
     * launching and enqueueing its passes, apart from their work. Returns its nanoseconds.
     */
    long launchNoopStep(int tokens, int entries, int maxLen) {
        int[] noops = new int[stepOps.length];
        java.util.Arrays.fill(noops, Llama2Kernel.OP_NOOP);
        System.arraycopy(noops, 0, k.passOp, 0, noops.length);
        launcher.put(k.passOp);
        stepScheduleOnDevice = false;
        launcher.finish();
        long t0 = System.nanoTime();
        run(stepOps.length, tokens, entries, maxLen, entries);
        launcher.finish(); // the direct dispatch returns before the device is done
        return System.nanoTime() - t0;
    }

    /** Times every pass with OpenCL profiling events (direct dispatch only; Aparapi's path ignores it). */
    void profile(boolean on) {
        launcher.profile(on);
    }

    /** {kernel ns summed over profiled passes, ns from first pass start to last pass end summed, passes}. */
    long[] profiledNanos() {
        return launcher.profiledNanos();
    }

    /** Profiled kernel nanoseconds by op label (see {@link OpTimes}). */
    long[] profiledOpNanos() {
        return launcher.profiledLabelNanos();
    }

    /** Nanoseconds spent since load in step puts, step executes (kernels + launch) and logits gets. */
    long[] stepNanos() {
        return new long[]{putNanos, executeNanos, getNanos};
    }

    /** Bytes of weight matrices (incl. the classifier, excl. the embedding and norms) a step streams. */
    long matrixBytes() {
        return matrixBytes;
    }

    TensorType weightType() {
        return weightType;
    }

    int localSize() {
        return localSize;
    }

    /** Runs an arbitrary schedule of passes (at most a step's length) in one launch; for kernel tests. */
    void launchPasses(int[] ops, int[] layers, int tokens, int entries, int maxLen) {
        launchPasses(ops, layers, tokens, entries, maxLen, entries);
    }

    /** As above, with logits for the rows k.logitRow[0 .. logitRows). */
    void launchPasses(int[] ops, int[] layers, int tokens, int entries, int maxLen, int logitRows) {
        if (ops.length != layers.length || ops.length > stepOps.length || ops.length == 0) {
            throw new IllegalArgumentException("schedule of " + ops.length + " ops and " + layers.length
                    + " layers; at most " + stepOps.length + " passes");
        }
        System.arraycopy(ops, 0, k.passOp, 0, ops.length);
        System.arraycopy(layers, 0, k.passLayer, 0, layers.length);
        launcher.put(k.passOp);
        launcher.put(k.passLayer);
        stepScheduleOnDevice = false;
        run(ops.length, tokens, entries, maxLen, logitRows);
    }

    void putStepInputs() {
        launcher.put(k.tokenIds);
        launcher.put(k.tokenPos);
        launcher.put(k.tokenSeq);
        launcher.put(k.blockTable);
        launcher.put(k.logitRow);
        launcher.put(k.entryLen);
        launcher.put(k.entryIndptr);
        launcher.put(k.entryIndices);
    }

    private void run(int passes, int tokens, int entries, int maxLen, int logitRows) {
        if (tokens < 1 || tokens > tokenCapacity || entries < 1 || entries > entryCapacity || maxLen < 1
                || maxLen > config.contextLength() || logitRows < 1 || logitRows > logitCapacity) {
            throw new IllegalArgumentException("bad step sizes: " + tokens + " tokens (capacity " + tokenCapacity
                    + "), " + entries + " entries (capacity " + entryCapacity + "), maxLen " + maxLen + ", "
                    + logitRows + " logit rows (capacity " + logitCapacity + ")");
        }
        k.tokens = tokens;
        k.entries = entries;
        k.maxLen = maxLen;
        k.logitRows = logitRows;
        // Groups: enough for the largest pass (matmul units or grid-stride elements), at most maxGroups.
        ModelConfig c = config;
        long chunks = (tokens + Llama2Kernel.TOKENS_PER_UNIT - 1) / Llama2Kernel.TOKENS_PER_UNIT;
        long units = Math.max(chunks * Math.max(c.hiddenDim(), (c.dim() + 2L * c.kvDim()) / 2),
                (logitRows + Llama2Kernel.TOKENS_PER_UNIT - 1) / Llama2Kernel.TOKENS_PER_UNIT * ((c.vocabSize() + 1L) / 2));
        long elements = Math.max((long) tokens * c.nHeads() * maxLen, (long) tokens * c.dim());
        units = Math.max(units, (elements + localSize - 1) / localSize);
        int groups = (int) Math.min(maxGroups, units);
        launcher.launch(groups * localSize, localSize, passes);
    }

    private void growArrays(int tokens, int entries, int logitRows) {
        ModelConfig c = config;
        long attFloats = attOnDemand ? 1 : (long) tokens * c.nHeads() * c.contextLength();
        long hiddenFloats = (long) tokens * Math.max(c.hiddenDim(), c.dim());
        if (attFloats * Float.BYTES > MAX_BUFFER_BYTES || hiddenFloats * Float.BYTES > MAX_BUFFER_BYTES
                || (long) logitRows * c.vocabSize() * Float.BYTES > MAX_BUFFER_BYTES) {
            throw new IllegalArgumentException("a step of " + tokens + " tokens, " + entries + " entries and "
                    + logitRows + " logit rows needs activation buffers over 2 GiB; use smaller steps");
        }
        k.tokenIds = new int[tokens];
        k.tokenPos = new int[tokens];
        k.tokenSeq = new int[tokens];
        k.x = new float[tokens * c.dim()];
        k.xb = new float[tokens * c.dim()];
        k.q = new float[tokens * c.dim()];
        k.hb = new float[tokens * c.hiddenDim()];
        if (!attOnDemand || k.att == null) {
            k.att = new float[(int) attFloats]; // on demand: a placeholder, bound once to a device-only buffer
        }
        k.blockTable = new int[entries * k.maxBlocksPerSeq];
        k.logitRow = new int[logitRows];
        k.entryLen = new int[entries];
        k.entryIndptr = new int[entries];
        k.entryIndices = new int[entries];
        java.util.Arrays.fill(k.entryIndptr, -1);
        k.logits = new float[logitRows * c.vocabSize()];
        tokenCapacity = tokens;
        entryCapacity = entries;
        logitCapacity = logitRows;
    }

    private void putActivations() {
        if (launcher == null) {
            return;
        }
        for (float[] a : new float[][]{k.x, k.xb, k.q, k.hb, k.att, k.logits}) {
            if (a != k.att || !attOnDemand) {
                launcher.put(a);
            }
        }
        putStepInputs();
    }

    /** RoPE cos/sin per [position][pair within head], computed exactly as the CPU model does. */
    private void ropeTables(ModelConfig c) {
        int hs = c.headSize();
        int pairs = hs / 2;
        k.ropeCos = new float[c.contextLength() * pairs];
        k.ropeSin = new float[c.contextLength() * pairs];
        for (int pos = 0; pos < c.contextLength(); pos++) {
            for (int p = 0; p < pairs; p++) {
                float freq = 1.0f / (float) Math.pow(c.ropeTheta(), (2 * p) / (float) hs);
                float angle = pos * freq;
                k.ropeCos[pos * pairs + p] = (float) Math.cos(angle);
                k.ropeSin[pos * pairs + p] = (float) Math.sin(angle);
            }
        }
    }

    private static float[] checked(String name, float[] a) {
        if ((long) a.length * Float.BYTES > MAX_BUFFER_BYTES) {
            throw new IllegalArgumentException(name + ": " + a.length + " floats exceed one 2 GiB device buffer");
        }
        return a;
    }

    /** All layers of one weight kind in one array, layer after layer. */
    private static float[] concat(String name, float[][] perLayer) {
        long total = 0;
        for (float[] a : perLayer) {
            total += a.length;
        }
        if (total * Float.BYTES > MAX_BUFFER_BYTES) {
            throw new IllegalArgumentException(name + ": " + total + " floats over all layers exceed one 2 GiB"
                    + " device buffer (splitting a weight kind over several buffers is not implemented yet)");
        }
        float[] out = new float[(int) total];
        int at = 0;
        for (float[] a : perLayer) {
            System.arraycopy(a, 0, out, at, a.length);
            at += a.length;
        }
        return out;
    }

    @Override
    public void close() {
        launcher.dispose();
    }
}

package io.stepstream.gpu;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.Models;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.kv.PagedKvCache;
import io.stepstream.engine.llama2.Llama2Checkpoint;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.spi.BackendModel;
import io.stepstream.engine.tensor.TensorType;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * A llama2.c model whose whole forward step runs on one OpenCL device through Aparapi: weights uploaded
 * once, activations and the paged KV cache resident, and per step only token ids, positions, entry indices,
 * block tables and last-row indices go in and the last token's logits of each entry come back. A step is
 * exactly one kernel launch ({@link #lastStepLaunches()}) of {@link #passesPerStep()} passes.
 *
 * <p>A greedy step may ask for ids instead of logits ({@link #forwardSummaries}): under the direct dispatch on a
 * device with cl_khr_fp64 each entry's row is reduced on the device to its argmax and float64 probability, and only
 * those 12 bytes an entry come back.
 *
 * <p>KV blocks are accounted by an engine {@link KvBlockPool} (the same block ids and block size the CPU
 * model uses; {@link KvBlockPool#accountingOnly}: no host arrays); their contents live only on the device. Not thread-safe: one step at a time, on one thread.
 */
public final class OpenClLlama2Model implements BackendModel {
    /** KV blocks reserved on the device when none are asked for: this many sequences of full context. */
    public static final int DEFAULT_DEVICE_SEQUENCES = 16;
    private static final String STORIES260K_CHECKPOINT = "models/stories260K/stories260K.bin";
    private static final String STORIES260K_TOKENIZER = "models/stories260K/tok512.bin";

    private final String name;
    private final ModelConfig config;
    private final Llama2Tokenizer tokenizer;
    private final KvBlockPool pool;
    private final DeviceLlama2 device;
    private final String deviceDescription;
    private long lastStepLaunches;
    /** Block-sparse attention patterns of the sequences that have one; others attend densely. */
    private final Map<KvCache, BlockSparsePattern> patterns = new WeakHashMap<>();
    private int[] patIndptr = new int[0];
    private int[] patIndices = new int[0];
    /** The device-side row reduction of {@link #forwardSummaries}, or null (Aparapi dispatch, no cl_khr_fp64). */
    private final RowSummaryKernel summary;

    /**
     * @param kvBlocks KV blocks to reserve on the device; 0 means {@link #DEFAULT_DEVICE_SEQUENCES} sequences of full
     *                 context, or fewer where the device's memory holds fewer beside the weights ({@link #defaultBlocks})
     */
    public OpenClLlama2Model(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, OpenCLDevice device,
                             int kvBlocks) {
        this(name, weights, tokenizer, device, kvBlocks, TensorType.F32);
    }

    /**
     * @param weightType how the matrices are stored and read on the device: F32, F16 or Q8_0 (decoded inside
     *                   the kernel); the embedding and norms stay F32
     */
    public OpenClLlama2Model(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, OpenCLDevice device,
                             int kvBlocks, TensorType weightType) {
        this(name, weights, tokenizer, device, kvBlocks, weightType, Dispatch.fromSystemProperty());
    }

    /**
     * @param dispatch how the step's passes reach the device: Aparapi's execute, or our own OpenCL queue with no
     *                 host wait between passes (the default, see {@link Dispatch#fromSystemProperty})
     */
    public OpenClLlama2Model(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, OpenCLDevice device,
                             int kvBlocks, TensorType weightType, Dispatch dispatch) {
        this(name, weights, tokenizer, device, kvBlocks, weightType, dispatch, Matmul.fromSystemProperty());
    }

    /**
     * @param matmul under the direct dispatch, whether the matmul passes run the hand-written matmul.cl kernels or
     *               the Aparapi pass (see {@link Matmul#fromSystemProperty}); ignored by the Aparapi dispatch
     */
    public OpenClLlama2Model(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, OpenCLDevice device,
                             int kvBlocks, TensorType weightType, Dispatch dispatch, Matmul matmul) {
        this(name, weights, tokenizer, device, kvBlocks, weightType, dispatch, matmul,
                TensorCores.fromSystemProperties());
    }

    /**
     * @param tensorCores whether the hand matmuls may run on tensor cores (F32 as 3xTF32; see {@link TensorCores};
     *                    {@link #tensorCores()} says whether they do)
     */
    public OpenClLlama2Model(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, OpenCLDevice device,
                             int kvBlocks, TensorType weightType, Dispatch dispatch, Matmul matmul,
                             TensorCores tensorCores) {
        this(name, weights, tokenizer, device, kvBlocks, weightType, dispatch, matmul, tensorCores,
                KvCacheType.fromSystemProperty());
    }

    /**
     * @param kvCache the device KV pool's element type ({@link KvCacheType}, default from {@value KvCacheType#PROPERTY}):
     *                f16 halves the bytes attention reads and the default pool holds twice the positions; it needs
     *                the direct dispatch with hand kernels for every pass and fails otherwise, naming the property
     */
    public OpenClLlama2Model(String name, Llama2Weights weights, Llama2Tokenizer tokenizer, OpenCLDevice device,
                             int kvBlocks, TensorType weightType, Dispatch dispatch, Matmul matmul,
                             TensorCores tensorCores, KvCacheType kvCache) {
        this.name = name;
        this.config = weights.config();
        if (tokenizer.vocabSize() != config.vocabSize()) {
            throw new IllegalArgumentException("tokenizer has " + tokenizer.vocabSize() + " tokens, model "
                    + config.vocabSize());
        }
        if (kvBlocks < 0) {
            throw new IllegalArgumentException("kvBlocks must be >= 0 (0 = default), got " + kvBlocks);
        }
        this.tokenizer = tokenizer;
        int blocks = kvBlocks > 0 ? kvBlocks : defaultBlocks(config, weightType, kvCache, device.getGlobalMemSize(),
                memoryFractionFromSystemProperty(),
                // a pool over one Java array runs only where DeviceLlama2 keeps it device-only
                DeviceLlama2.handPath(config, dispatch, matmul) && Matmul.handAllPasses()
                        ? device.getMaxMemAllocSize() : WeightChunks.maxBufferBytesFromSystemProperty(),
                device.getName().strip());
        // block ids and bounds only: the blocks themselves live in the device's KV buffer
        this.pool = KvBlockPool.accountingOnly(config.nLayers(), config.kvDim(), blocks);
        this.device = new DeviceLlama2(weights, device, blocks, weightType, dispatch, matmul,
                MatmulTiles.fromSystemProperty(), tensorCores, kvCache);
        // ListModels shows the device name: say there when the matmuls run on tensor cores (F32: 3xTF32), and when
        // the KV cache is not f32
        String tc = this.device.tensorCores();
        this.deviceDescription = OpenClDevices.describe(device)
                + (tc.equals("off") ? "" : ", " + weightType.name() + " tensor cores " + tc)
                + (kvCache == KvCacheType.F32 ? "" : ", " + kvCache.label() + " KV cache");
        this.summary = RowSummaryKernel.inLauncher(this.device.launcher(), "greedy decode row summaries");
    }

    /** An embedded model of the engine jar by name (today: stories260K) on the given device. */
    public static OpenClLlama2Model loadEmbedded(String name, OpenCLDevice device, int kvBlocks) {
        return loadEmbedded(name, device, kvBlocks, TensorType.F32, Dispatch.fromSystemProperty());
    }

    /** An embedded model with its matrices stored as {@code weightType}, dispatched as {@code dispatch}. */
    public static OpenClLlama2Model loadEmbedded(String name, OpenCLDevice device, int kvBlocks, TensorType weightType,
                                                 Dispatch dispatch) {
        return loadEmbedded(name, device, kvBlocks, weightType, dispatch, Matmul.fromSystemProperty());
    }

    /** An embedded model as above whose direct dispatch runs the matmul passes with {@code matmul}'s kernels. */
    public static OpenClLlama2Model loadEmbedded(String name, OpenCLDevice device, int kvBlocks, TensorType weightType,
                                                 Dispatch dispatch, Matmul matmul) {
        if (!Models.DEFAULT_MODEL.equals(name) || !Models.embedded().contains(name)) {
            throw new ModelLoadException(name + ": not an embedded llama2.c model the OpenCL backend can load"
                    + " (embedded: " + Models.embedded() + ")");
        }
        Llama2Weights w = Llama2Checkpoint.read(name + ":" + STORIES260K_CHECKPOINT, resource(STORIES260K_CHECKPOINT));
        Llama2Tokenizer tok = Llama2Tokenizer.read(name + ":" + STORIES260K_TOKENIZER,
                resource(STORIES260K_TOKENIZER), w.config().vocabSize());
        return new OpenClLlama2Model(name, w, tok, device, kvBlocks, weightType, dispatch, matmul);
    }

    /** A llama2.c checkpoint and its tokenizer from files, on the given device. */
    public static OpenClLlama2Model load(Path checkpoint, Path tokenizerFile, OpenCLDevice device, int kvBlocks) {
        Llama2Weights w = Llama2Checkpoint.read(checkpoint);
        Llama2Tokenizer tok = Llama2Tokenizer.read(tokenizerFile, w.config().vocabSize());
        String file = checkpoint.getFileName().toString();
        return new OpenClLlama2Model(file.endsWith(".bin") ? file.substring(0, file.length() - 4) : file, w, tok,
                device, kvBlocks);
    }

    private static byte[] resource(String path) {
        try (InputStream in = Models.class.getResourceAsStream(path)) {
            if (in == null) {
                throw new ModelLoadException("embedded resource " + path + " is missing from the engine jar");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new ModelLoadException("cannot read embedded resource " + path + ": " + e, e);
        }
    }

    /**
     * System property: the share of the device's global memory the model may fill with its weights and KV pool when
     * no KV block count is given (default 0.9, as vLLM's gpu_memory_utilization); what is left of it after the
     * weights and {@link #ACTIVATION_RESERVE_BYTES} goes to the pool, up to {@link #DEFAULT_DEVICE_SEQUENCES}
     * sequences of full context.
     */
    public static final String MEMORY_FRACTION_PROPERTY = "stepstream.opencl.memoryFraction";
    /** Device memory kept out of the default KV pool for activations, logits, scratch and the driver. */
    static final long ACTIVATION_RESERVE_BYTES = 1L << 30;

    static double memoryFractionFromSystemProperty() {
        String v = System.getProperty(MEMORY_FRACTION_PROPERTY, "0.9").strip();
        double f;
        try {
            f = Double.parseDouble(v);
        } catch (NumberFormatException e) {
            f = Double.NaN;
        }
        if (!(f > 0 && f <= 1)) {
            throw new IllegalArgumentException(MEMORY_FRACTION_PROPERTY + " must be a number in (0, 1], got '" + v + "'");
        }
        return f;
    }

    /** Bytes the weights take on the device as {@code type} stores them (Q8_0: a float scale per 32), plus the f32 rest. */
    static long deviceWeightBytes(ModelConfig c, TensorType type) {
        long matrices = 0;
        for (long e : WeightChunks.layerElements(c)) {
            matrices += e * c.nLayers();
        }
        matrices += (long) c.vocabSize() * c.dim(); // the classifier (a copy when shared with the embedding)
        long encoded = switch (type) {
            case F32 -> matrices * 4;
            case F16 -> matrices * 2;
            case Q8_0 -> matrices + matrices / 32 * 4;
            default -> matrices * 4;
        };
        long f32Rest = (long) c.vocabSize() * c.dim() + (2L * c.nLayers() + 1) * c.dim()
                + (long) c.contextLength() * c.headSize(); // embedding, norms, rope tables
        return encoded + f32Rest * Float.BYTES;
    }

    /**
     * The default KV pool: {@link #DEFAULT_DEVICE_SEQUENCES} sequences of full context, or as many blocks as the
     * device's memory holds beside the weights ({@code fraction} of {@code globalMemBytes}, less the weights and
     * {@link #ACTIVATION_RESERVE_BYTES}), whichever is fewer, and never more than one buffer of {@code maxPoolBytes}.
     * Fails, naming the device and the sizes, when not even one block fits.
     */
    static int defaultBlocks(ModelConfig c, TensorType type, long globalMemBytes, double fraction, long maxPoolBytes,
                             String deviceName) {
        return defaultBlocks(c, type, KvCacheType.F32, globalMemBytes, fraction, maxPoolBytes, deviceName);
    }

    /** As above for a pool of {@code kvCache} elements (a block's bytes: positions x layers x K and V x kvDim x those). */
    static int defaultBlocks(ModelConfig c, TensorType type, KvCacheType kvCache, long globalMemBytes, double fraction,
                             long maxPoolBytes, String deviceName) {
        long blockBytes = (long) c.nLayers() * 2 * KvBlockPool.BLOCK_POSITIONS * c.kvDim() * kvCache.bytes();
        long wanted = (long) DEFAULT_DEVICE_SEQUENCES * DeviceLlama2.blocksPerSequence(c);
        long weights = deviceWeightBytes(c, type);
        long budget = (long) (fraction * globalMemBytes) - weights - ACTIVATION_RESERVE_BYTES;
        long fit = Math.min(budget, maxPoolBytes) / blockBytes;
        if (fit < 1) {
            throw new IllegalArgumentException("device " + deviceName + " has " + (globalMemBytes >> 20) + " MiB ("
                    + MEMORY_FRACTION_PROPERTY + " " + fraction + "); the " + type + " weights take " + (weights >> 20)
                    + " MiB and " + (ACTIVATION_RESERVE_BYTES >> 20) + " MiB are kept for activations, which leaves"
                    + " no room for one KV block of " + blockBytes + " bytes: use smaller weights (--dtype f16|q8_0) or"
                    + " raise -D" + MEMORY_FRACTION_PROPERTY);
        }
        return (int) Math.min(Math.min(wanted, fit), Integer.MAX_VALUE);
    }

    /**
     * Device buffers each layered weight kind is split into (1: one buffer a kind; more when a kind exceeds
     * {@value WeightChunks#MAX_BUFFER_BYTES_PROPERTY}, 2 GiB by default).
     */
    public int weightChunks() {
        return device.weightSplit().chunks();
    }

    /** Whether the KV pool is a device-only buffer (over {@value WeightChunks#MAX_BUFFER_BYTES_PROPERTY}, or f16). */
    public boolean kvDeviceOnly() {
        return device.kvDeviceOnly();
    }

    /** The device KV pool's element type. */
    public KvCacheType kvCache() {
        return device.kvCache();
    }

    /** Bytes of the device KV pool. */
    public long kvPoolBytes() {
        return device.kvPoolBytes();
    }

    /** The layer partition of the weight kinds, in words (for benchmark logs). */
    public String weightSplitDescription() {
        WeightChunks.Split split = device.weightSplit();
        return split.isSplit() ? split.describe() : "one buffer per weight kind";
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    @Override
    public KvCache newKvCache() {
        return new PagedKvCache(pool, config.contextLength());
    }

    public KvBlockPool kvBlockPool() {
        return pool;
    }

    /** The OpenCL device every step runs on. */
    public OpenCLDevice device() {
        return device.device();
    }

    @Override
    public String backendName() {
        return OpenClBackendProvider.NAME;
    }

    @Override
    public String deviceName() {
        return deviceDescription;
    }

    /** How the passes reach the device. */
    public Dispatch dispatch() {
        return device.dispatch();
    }

    /** Which kernels run the matmul passes (HAND only under the direct dispatch). */
    public Matmul matmul() {
        return device.matmul();
    }

    /**
     * Whether the matmuls run on tensor cores (F32: 3xTF32): "off", or how (e.g. "mma.sync mmt64x64k32 from 16 tokens",
     * "emulated ...").
     */
    public String tensorCores() {
        return device.tensorCores();
    }

    /** Matmul passes that ran on the tensor-core kernel so far. */
    public long tensorCorePasses() {
        return device.tensorCorePasses();
    }

    /** Layers whose attention ran split over keys (the decode build of attn_tiled) so far. */
    public long splitAttentionPasses() {
        return device.splitAttentionPasses();
    }

    /** Layers whose attention ran as attn_decode (decode steps, {@link DecodeAttention}) so far. */
    public long decodeAttentionPasses() {
        return device.decodeAttentionPasses();
    }

    /**
     * The persistent layer tail of one-token steps in words ({@code -Dstepstream.opencl.persistentTail=off|auto|on}):
     * "off" (not built: property, device kind, or its inline PTX did not build; a log line says which) or how it reads
     * shared activations, ptxas' counts where given, its shape and group count.
     */
    public String persistentTail() {
        return device.persistentTail();
    }

    /** Layers whose tail after a one-token attention ran as the persistent kernel (tail.cl) so far. */
    public long persistentTailLaunches() {
        return device.persistentTailLaunches();
    }

    /** The most key chunks a split attention used so far (1: none). */
    public int attentionMostChunks() {
        return device.attentionMostChunks();
    }

    /**
     * RMSNorm passes fused into the matvec after them so far (their own kernel skipped;
     * {@code -Dstepstream.opencl.fuseNorm=auto|on|off}).
     */
    public long fusedNorms() {
        return device.fusedNorms();
    }

    /**
     * Times every pass of later steps with OpenCL profiling events (direct dispatch; Aparapi's ignores it), which
     * {@link #profiledTimes()} sums up.
     */
    public void profile(boolean on) {
        device.profile(on);
    }

    /** Device time of the profiled passes: kernels alone, and from each step's first pass start to its last end. */
    public ProfiledTimes profiledTimes() {
        long[] n = device.profiledNanos();
        return new ProfiledTimes(n[0], n[1], n[2]);
    }

    /** Profiled kernel time split by op (embed, rmsnorm, qkv, ... mm_reduce); zeros unless direct dispatch. */
    public OpTimes profiledOpTimes() {
        return new OpTimes(device.profiledOpNanos());
    }

    /** Sums over profiled passes: kernel nanoseconds, step span nanoseconds (kernels + gaps), pass count. */
    public record ProfiledTimes(long kernelNanos, long spanNanos, long passes) {
        public ProfiledTimes minus(ProfiledTimes o) {
            return new ProfiledTimes(kernelNanos - o.kernelNanos, spanNanos - o.spanNanos, passes - o.passes);
        }
    }

    /** How the matrices are stored on the device. */
    public TensorType weightType() {
        return device.weightType();
    }

    /** Bytes of weight matrices one forward step streams from device memory (the classifier included). */
    public long matrixBytesPerStep() {
        return device.matrixBytes();
    }

    /** Work items per work-group the kernel runs with on this device. */
    public int localSize() {
        return device.localSize();
    }

    /**
     * Nanoseconds since load spent in the forward steps' small puts, their one execute each (kernels plus
     * launch overhead), and the logits gets; measured with System.nanoTime around each call.
     */
    public StepTimes stepTimes() {
        long[] n = device.stepNanos();
        return new StepTimes(n[0], n[1], n[2]);
    }

    /** Where a step's time went: puts of its inputs, the execute, the get of the logits. */
    public record StepTimes(long putNanos, long executeNanos, long getNanos) {
        public StepTimes minus(StepTimes o) {
            return new StepTimes(putNanos - o.putNanos, executeNanos - o.executeNanos, getNanos - o.getNanos);
        }
    }

    /**
     * Nanoseconds of one execute of a step's count of passes that do no work, on the range a step of this
     * size uses: the launch overhead part of a step's execute time.
     */
    public long measureLaunchOverhead(int tokens, int entries, int maxLen) {
        device.ensureCapacity(tokens, entries);
        return device.launchNoopStep(tokens, entries, maxLen);
    }

    /** Kernel launches (Aparapi execute calls, or direct launches of a step's passes) since load. */
    public long launches() {
        return device.launches();
    }

    /** Passes enqueued since load (every launch's passes, test and measuring launches included). */
    public long passesLaunched() {
        return device.passesLaunched();
    }

        /** Kernel launches of the last forward step: 1. */
    public long lastStepLaunches() {
        return lastStepLaunches;
    }

    /** Passes (OpenCL kernel enqueues inside the one launch) of every step: 3 + 9 * layers. */
    public int passesPerStep() {
        return device.passesPerStep();
    }

    /**
     * Makes the sequence of {@code cache} attend block-sparsely from its next step on, or densely again when
     * {@code pattern} is null. The pattern must have this model's layers and heads and a query block row for
     * every block of the context.
     */
    public void attentionPattern(KvCache cache, BlockSparsePattern pattern) {
        if (!(cache instanceof PagedKvCache paged) || paged.pool() != pool) {
            throw new IllegalArgumentException("KV cache was not created by model " + name);
        }
        if (pattern == null) {
            patterns.remove(cache);
            return;
        }
        int queryBlocks = DeviceLlama2.blocksPerSequence(config);
        if (pattern.nLayers() != config.nLayers() || pattern.nHeads() != config.nHeads()
                || pattern.queryBlocks() != queryBlocks) {
            throw new IllegalArgumentException("pattern shape " + pattern.nLayers() + " layers x " + pattern.nHeads()
                    + " heads x " + pattern.queryBlocks() + " query blocks does not match model " + name + " ("
                    + config.nLayers() + " x " + config.nHeads() + " x " + queryBlocks + ")");
        }
        patterns.put(cache, pattern);
    }

    @Override
    public void forward(ForwardBatch batch, float[][] logits) {
        List<ForwardBatch.Entry> entries = batch.entries();
        int e = entries.size();
        if (e == 0) {
            return;
        }
        PagedKvCache[] caches = enqueueStep(batch, logits);
        int vocab = config.vocabSize();
        // One read of the step's rows (not the capacity-sized buffer), then a copy into each entry's array.
        Llama2Kernel k = device.k;
        device.readLogits(0, k.logits, 0, e * vocab);
        for (int i = 0; i < e; i++) {
            System.arraycopy(k.logits, i * vocab, logits[i], 0, vocab);
        }
        advance(entries, caches);
    }

    /**
     * True under the direct dispatch on a device with cl_khr_fp64: {@link #forwardSummaries} then reduces each entry's
     * logits row on the device ({@link RowSummaryKernel}) and reads back 12 bytes an entry instead of 4 x vocab.
     */
    @Override
    public boolean summarizesOnDevice() {
        return summary != null;
    }

    /**
     * {@link BackendModel#forwardSummaries}: the step as {@link #forward} runs it, then each entry's logits row reduced
     * on the device to its argmax (bitwise the host's, so the greedy token is the logits path's) and float64 softmax
     * probability (the device's double exp summed in its own order: within ~1e-15 relative of the host's, so its log,
     * the token's logprob, within ~1e-15 absolute). {@code logits} are checked as {@link #forward} checks them and
     * left untouched. Without the kernel ({@link #summarizesOnDevice} false) the default host path runs. A kernel
     * failure throws {@link OpenClException} like {@link #forward} ({@link FailoverModel} reruns the step on the CPU).
     */
    @Override
    public void forwardSummaries(ForwardBatch batch, float[][] logits, RowSummaries out) {
        if (summary == null) {
            BackendModel.super.forwardSummaries(batch, logits, out);
            return;
        }
        BackendModel.checkSummaries(batch, out);
        List<ForwardBatch.Entry> entries = batch.entries();
        int e = entries.size();
        if (e == 0) {
            return;
        }
        PagedKvCache[] caches = enqueueStep(batch, logits);
        device.readSummaries(summary, e, out.argmax(), out.confidence());
        advance(entries, caches);
    }

    /** Checks the batch, writes its inputs, enqueues the whole step (one launch); the caches are not advanced yet. */
    private PagedKvCache[] enqueueStep(ForwardBatch batch, float[][] logits) {
        List<ForwardBatch.Entry> entries = batch.entries();
        int e = entries.size();
        PagedKvCache[] caches = pool.reserveBatch(name, config, entries, logits);
        int tokens = batch.totalTokens();
        device.ensureCapacity(tokens, e);
        Llama2Kernel k = device.k;
        int perSeq = k.maxBlocksPerSeq;
        int row = 0;
        int maxLen = 0;
        for (int i = 0; i < e; i++) {
            ForwardBatch.Entry en = entries.get(i);
            PagedKvCache cache = caches[i];
            int start = cache.length();
            for (int j = 0; j < en.length(); j++, row++) {
                k.tokenIds[row] = en.tokens()[en.offset() + j];
                k.tokenPos[row] = start + j;
                k.tokenSeq[row] = i;
            }
            k.logitRow[i] = row - 1;
            maxLen = Math.max(maxLen, start + en.length());
            System.arraycopy(cache.blockTable(), 0, k.blockTable, i * perSeq, cache.blockCount());
        }
        preparePatterns(caches, e);
        long before = device.launches();
        device.enqueueStep(tokens, e, maxLen, e);
        lastStepLaunches = device.launches() - before;
        return caches;
    }

    private static void advance(List<ForwardBatch.Entry> entries, PagedKvCache[] caches) {
        for (int i = 0; i < caches.length; i++) {
            caches[i].advance(caches[i].length() + entries.get(i).length());
        }
    }

    /** Concatenates the patterns of this step's sparse entries and points each entry at its own. */
    private void preparePatterns(PagedKvCache[] caches, int e) {
        Llama2Kernel k = device.k;
        int indptrLength = 0;
        int indicesLength = 0;
        for (int i = 0; i < e; i++) {
            BlockSparsePattern p = patterns.isEmpty() ? null : patterns.get(caches[i]);
            k.entryIndptr[i] = p == null ? -1 : indptrLength;
            k.entryIndices[i] = p == null ? 0 : indicesLength;
            if (p != null) {
                indptrLength += p.indptrLength();
                indicesLength += p.indicesLength();
            }
        }
        if (indptrLength == 0) {
            return;
        }
        if (patIndptr.length < indptrLength) {
            patIndptr = new int[indptrLength];
        }
        if (patIndices.length < indicesLength) {
            patIndices = new int[indicesLength];
        }
        for (int i = 0; i < e; i++) {
            BlockSparsePattern p = k.entryIndptr[i] < 0 ? null : patterns.get(caches[i]);
            if (p != null) {
                p.copyInto(patIndptr, k.entryIndptr[i], patIndices, k.entryIndices[i]);
            }
        }
        device.putPatterns(patIndptr, indptrLength, patIndices, indicesLength);
    }

    @Override
    public void close() {
        device.close();
    }
}

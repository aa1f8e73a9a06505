package io.stepstream.gpu;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionWeights;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;

import java.util.List;

/**
 * Dense denoising steps of LLaDA-style canvases on one OpenCL device: the {@link Llama2Kernel} step with every
 * canvas an entry whose rows attend to the whole canvas ({@code entryLen}), and logits for the rows each canvas asks
 * for ({@code logitRow}). Nothing outlives a step on the device: each step writes every canvas's keys and values
 * into KV blocks handed out afresh (block {@code b} of a launch's running count), so the pool only bounds how many
 * canvas positions one launch holds; a batch that needs more runs as several launches.
 * Not thread-safe: one step at a time.
 */
final class DeviceCanvases implements AutoCloseable {
    /** Groups per compute unit F32 canvases' passes aim at (TensorCores.FILL_PROPERTY overrides). */
    static final int CANVAS_FILL = 2;
    /** KV blocks reserved when none are asked for: this many canvases of full context, if the 2 GiB limit allows. */
    static final int DEFAULT_CANVASES = 64;
    /** Token rows of one launch at most (activation buffers scale with it). */
    static final int MAX_LAUNCH_TOKENS = 16384;

    private final DeviceLlama2 device;
    private final ModelConfig config;
    private final int maxBlocks;
    private final int maxTokens;
    private final int maxLogitRows;
    private long launches;
    /** The device-side row reduction, or null (Aparapi dispatch, no cl_khr_fp64, or its build failed). */
    private final RowSummaryKernel summary;
    private int[] summaryIds = new int[0];
    private double[] summaryConfidences = new double[0];

    /**
     * @param kvBlocks KV blocks to reserve (0: {@link #DEFAULT_CANVASES} canvases of full context, fewer if one
     *                 2 GiB buffer cannot hold them); at least a full-context canvas's worth
     */
    DeviceCanvases(DiffusionWeights w, OpenCLDevice device, int kvBlocks, TensorType weightType, Dispatch dispatch) {
        ModelConfig c = w.config();
        this.config = c;
        int perCanvas = DeviceLlama2.blocksPerSequence(c);
        long blockBytes = (long) c.nLayers() * 2 * KvBlockPool.BLOCK_POSITIONS * c.kvDim() * Float.BYTES;
        long fit = DeviceLlama2.MAX_BUFFER_BYTES / blockBytes;
        if (kvBlocks < 0) {
            throw new IllegalArgumentException("kvBlocks must be >= 0 (0 = default), got " + kvBlocks);
        }
        int blocks = kvBlocks > 0 ? kvBlocks : (int) Math.min(fit, (long) DEFAULT_CANVASES * perCanvas);
        if (blocks < perCanvas) {
            throw new IllegalArgumentException("kvBlocks " + blocks + ": a canvas of the full context ("
                    + c.contextLength() + " positions) needs " + perCanvas + " KV blocks on the device");
        }
        this.maxBlocks = blocks;
        long attPerToken = (long) c.nHeads() * c.contextLength() * Float.BYTES;
        long actPerToken = (long) Math.max(c.hiddenDim(), c.dim()) * Float.BYTES;
        this.maxTokens = (int) Math.min(Math.max(MAX_LAUNCH_TOKENS, c.contextLength()),
                DeviceLlama2.MAX_BUFFER_BYTES / Math.max(attPerToken, actPerToken));
        this.maxLogitRows = (int) Math.min(maxTokens, DeviceLlama2.MAX_BUFFER_BYTES
                / ((long) c.vocabSize() * Float.BYTES));
        if (maxTokens < c.contextLength() || maxLogitRows < c.contextLength()) {
            throw new IllegalArgumentException("a canvas of the full context (" + c.contextLength() + " positions)"
                    + " needs device activation buffers over 2 GiB");
        }
        Llama2Weights asLlama = new Llama2Weights(c, w.embedding(), w.attentionNorm(), w.wq(), w.wk(), w.wv(), w.wo(),
                w.ffnNorm(), w.gate(), w.down(), w.up(), w.finalNorm(), w.lmHead());
        TensorCores tensorCores = TensorCores.fromSystemProperties();
        MatmulTiles tiles = MatmulTiles.fromSystemProperty();
        int wtype = switch (weightType) {
            case F32 -> Llama2Kernel.WT_F32;
            case F16 -> Llama2Kernel.WT_F16;
            case Q8_0 -> Llama2Kernel.WT_Q8_0;
            default -> -1; // DeviceLlama2 refuses it with a message
        };
        if (tensorCores.appliesTo(wtype)
                && System.getProperty(TensorCores.MIN_TOKENS_PROPERTY) == null) {
            // Batched must equal alone: with f16-rounded activations, the f32 summation-order differences between
            // kernels (the matvec for a lone canvas's last few logit rows, mmt in a batch; split-K by group count)
            // cross f16 rounding boundaries and flip greedy picks. One kernel (mmt from one token) and one split for
            // every count give each row the same arithmetic in any batch. F32 weights on 3xTF32 get the same (their
            // activations are not rounded, but a bitwise guarantee is as cheap here); F32 on mm (tensor cores or
            // f32TensorCores off) is batch-dependent within f32 rounding (~1e-7 of the logits: the kernel and the
            // split-K count follow the step's token count), as before.
            tensorCores = tensorCores.withMinTokens(1);
            if (System.getProperty(MatmulTiles.PROPERTY) == null) {
                tiles = tiles.with("ks=1");
            }
            // ... on mmt, or a split-K by the matrix's shape only (TensorCores.ShapeSplit, default off: on the H200
            // it won at 75 tokens and lost at 600+); and (F32) a pass short of 2 groups per compute unit takes a
            // smaller-tn tier (the same bits: the canvases' tiers share one tk): 768-row passes at a few hundred
            // tokens make 120 groups on 132 SMs at tn=64 (H200: N=1 320 -> 459 tok/s, N=8 1,450 -> 1,500)
            boolean f32 = wtype == Llama2Kernel.WT_F32;
            tensorCores = tensorCores.withShapeSplit(TensorCores.ShapeSplit.parse(
                    System.getProperty(TensorCores.SHAPE_SPLIT_PROPERTY, "off")));
            if (f32 && System.getProperty(TensorCores.FILL_PROPERTY) == null) {
                tensorCores = tensorCores.withFill(CANVAS_FILL);
            }
        }
        // Canvases keep an f32 pool whatever stepstream.opencl.kvCache says: it is a launch's scratch, not a cache.
        this.device = new DeviceLlama2(asLlama, device, blocks, weightType, dispatch, Matmul.fromSystemProperty(),
                tiles, tensorCores, KvCacheType.F32);
        this.summary = RowSummaryKernel.inLauncher(this.device.launcher(), "diffusion row summaries");
    }

    /** Whether {@link #forwardSummaries} reduces the rows on the device. */
    boolean summarizes() {
        return summary != null;
    }

    OpenCLDevice device() {
        return device.device();
    }

    /** Kernel launches since load: one per step, more when a step's canvases need more than one launch. */
    long launches() {
        return launches;
    }

    int maxBlocks() {
        return maxBlocks;
    }

    /** Runs dense inputs (no SparseD, no cache; already checked) and writes their logits, as DiffusionModel does. */
    void forward(List<DenoiseInput> inputs, float[][] logits) {
        run(inputs, logits, null);
    }

    /**
     * Runs dense inputs (already checked) and writes each one's row summaries ({@link RowSummaryKernel}: the
     * argmax bitwise the host's, the confidence within ~1e-15 relative) instead of its logits; only
     * {@link #summarizes()}.
     */
    void forwardSummaries(List<DenoiseInput> inputs, RowSummaries[] summaries) {
        if (summary == null) {
            throw new IllegalStateException("this device makes no row summaries (see summarizes())");
        }
        run(inputs, null, summaries);
    }

    /** Launches as many as the buffers allow at a time; logits or summaries (the other null) come back. */
    private void run(List<DenoiseInput> inputs, float[][] logits, RowSummaries[] summaries) {
        int n = inputs.size();
        int from = 0;
        while (from < n) {
            int tokens = 0;
            int rows = 0;
            int blocks = 0;
            int to = from;
            while (to < n) {
                DenoiseInput in = inputs.get(to);
                int b = blocksOf(in.length());
                if (to > from && (tokens + in.length() > maxTokens || blocks + b > maxBlocks
                        || rows + in.logitsLength() > maxLogitRows)) {
                    break;
                }
                tokens += in.length();
                rows += in.logitsLength();
                blocks += b;
                to++;
            }
            launch(inputs, logits, summaries, from, to, tokens, rows);
            from = to;
        }
    }

    private static int blocksOf(int length) {
        return (length + KvBlockPool.BLOCK_POSITIONS - 1) / KvBlockPool.BLOCK_POSITIONS;
    }

    /** Inputs [from, to) as entries of one launch. */
    private void launch(List<DenoiseInput> inputs, float[][] logits, RowSummaries[] summaries, int from, int to,
                        int tokens, int logitRows) {
        int entries = to - from;
        device.ensureCapacity(tokens, entries, logitRows);
        Llama2Kernel k = device.k;
        int perSeq = k.maxBlocksPerSeq;
        int row = 0;
        int out = 0;
        int block = 0;
        int maxLen = 0;
        for (int e = 0; e < entries; e++) {
            DenoiseInput in = inputs.get(from + e);
            int[] canvas = in.tokens();
            int first = row;
            for (int p = 0; p < canvas.length; p++, row++) {
                k.tokenIds[row] = canvas[p];
                k.tokenPos[row] = p;
                k.tokenSeq[row] = e;
            }
            k.entryLen[e] = canvas.length;
            k.entryIndptr[e] = -1;
            k.entryIndices[e] = 0;
            for (int b = 0, nb = blocksOf(canvas.length); b < nb; b++) {
                k.blockTable[e * perSeq + b] = block++;
            }
            for (int p = 0; p < in.logitsLength(); p++) {
                k.logitRow[out++] = first + in.logitsStart() + p;
            }
            maxLen = Math.max(maxLen, canvas.length);
        }
        device.enqueueStep(tokens, entries, maxLen, logitRows);
        launches++;
        int vocab = config.vocabSize();
        if (summaries != null) {
            readSummaries(inputs, summaries, from, to, logitRows, vocab);
            return;
        }
        out = 0;
        for (int e = 0; e < entries; e++) {
            int count = inputs.get(from + e).logitsLength() * vocab;
            device.readLogits(out, logits[from + e], 0, count); // straight into the request's array
            out += count;
        }
    }

    /** Reduces the launch's logit rows on the device and hands each input its rows' summaries. */
    private void readSummaries(List<DenoiseInput> inputs, RowSummaries[] summaries, int from, int to, int logitRows,
                               int vocab) {
        if (summaryIds.length < logitRows) {
            summaryIds = new int[logitRows];
            summaryConfidences = new double[logitRows];
        }
        device.readSummaries(summary, logitRows, summaryIds, summaryConfidences);
        int row = 0;
        for (int i = from; i < to; i++) {
            int n = inputs.get(i).logitsLength();
            System.arraycopy(summaryIds, row, summaries[i].argmax(), 0, n);
            System.arraycopy(summaryConfidences, row, summaries[i].confidence(), 0, n);
            row += n;
        }
    }

    /** Times every pass of later launches by profiling events (see {@link DeviceLlama2#profile}). */
    void profile(boolean on) {
        device.profile(on);
    }

    /** Whether the matmuls run on tensor cores (see {@link DeviceLlama2#tensorCores}). */
    String tensorCores() {
        return device.tensorCores();
    }

    /** Device nanoseconds of the profiled passes, by op. */
    OpTimes profiledOpTimes() {
        return new OpTimes(device.profiledOpNanos());
    }

    @Override
    public void close() {
        device.close();
    }
}

package io.stepstream.gpu;

import com.aparapi.Range;
import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.llama2.Llama2Weights;

/**
 * The device side of a llama2.c model: one {@link Llama2Kernel} with every weight, the KV block pool and the
 * activations resident on one OpenCL device, and the pass schedule of a forward step. The host writes the
 * step's small inputs into the kernel's arrays, calls {@link #launchStep}, and reads the logits back.
 * Not thread-safe (Aparapi serialises kernel runs JVM-wide anyway): one device thread per model.
 */
final class DeviceLlama2 implements AutoCloseable {
    /** Largest Java array Aparapi can hand to OpenCL as one buffer: 2 GiB. */
    static final long MAX_BUFFER_BYTES = Integer.MAX_VALUE;
    private static final int LOCAL_SIZE = 64;
    /** Work items of the shared range at most; passes with more work loop over it. */
    private static final int MAX_GLOBAL = 1 << 20;

    final Llama2Kernel k = new Llama2Kernel();
    private final KernelLauncher launcher;
    private final ModelConfig config;
    private final int maxBlocks;
    private final int[] stepOps;
    private final int[] stepLayers;
    private boolean stepScheduleOnDevice;
    private int tokenCapacity;
    private int entryCapacity;

    DeviceLlama2(Llama2Weights w, OpenCLDevice device, int maxBlocks) {
        this.config = w.config();
        this.maxBlocks = maxBlocks;
        ModelConfig c = config;
        if (c.headSize() % 2 != 0) {
            throw new IllegalArgumentException("head size must be even for RoPE, got " + c.headSize());
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
        k.sharedClassifier = w.classifier() == w.tokenEmbedding() ? 1 : 0;

        k.emb = checked("token_embedding", w.tokenEmbedding());
        k.rmsAtt = concat("rms_att", w.rmsAtt());
        k.wq = concat("wq", w.wq());
        k.wk = concat("wk", w.wk());
        k.wv = concat("wv", w.wv());
        k.wo = concat("wo", w.wo());
        k.rmsFfn = concat("rms_ffn", w.rmsFfn());
        k.w1 = concat("w1", w.w1());
        k.w2 = concat("w2", w.w2());
        k.w3 = concat("w3", w.w3());
        k.rmsFinal = checked("rms_final", w.rmsFinal());
        k.cls = k.sharedClassifier == 1 ? new float[1] : checked("classifier", w.classifier());
        ropeTables(c);
        long kvFloats = (long) maxBlocks * k.blockFloats;
        if (maxBlocks <= 0 || kvFloats * Float.BYTES > MAX_BUFFER_BYTES) {
            throw new IllegalArgumentException("KV pool of " + maxBlocks + " blocks of " + k.blockFloats
                    + " floats does not fit one 2 GiB device buffer");
        }
        k.kv = new float[(int) kvFloats];

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
        growArrays(1, 1);
        launcher = new KernelLauncher(k, device);
        // Explicit mode: nothing reaches the device unless put; the weights go now and never again.
        for (float[] a : new float[][]{k.emb, k.rmsAtt, k.wq, k.wk, k.wv, k.wo, k.rmsFfn, k.w1, k.w2, k.w3,
                k.rmsFinal, k.cls, k.ropeCos, k.ropeSin, k.kv}) {
            launcher.put(a);
        }
        launcher.put(k.passOp);
        launcher.put(k.passLayer);
        launcher.put(k.patIndptr);
        launcher.put(k.patIndices);
        putActivations();
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

    static int blocksPerSequence(ModelConfig c) {
        return (c.contextLength() + KvBlockPool.BLOCK_POSITIONS - 1) / KvBlockPool.BLOCK_POSITIONS;
    }

    OpenCLDevice device() {
        return launcher.device();
    }

    long launches() {
        return launcher.launches();
    }

    int passesPerStep() {
        return stepOps.length;
    }

    int maxBlocks() {
        return maxBlocks;
    }

    KernelLauncher launcher() {
        return launcher;
    }

    /** Makes the per-step arrays hold at least this many token rows and entries (new arrays go to the device). */
    void ensureCapacity(int tokens, int entries) {
        if (tokens > tokenCapacity || entries > entryCapacity) {
            growArrays(Math.max(tokens, tokenCapacity), Math.max(entries, entryCapacity));
            putActivations();
        }
    }

    /** Sends the step inputs (already written into the kernel's arrays) and runs the whole step: one launch. */
    void launchStep(int tokens, int entries, int maxLen) {
        if (!stepScheduleOnDevice) {
            System.arraycopy(stepOps, 0, k.passOp, 0, stepOps.length);
            System.arraycopy(stepLayers, 0, k.passLayer, 0, stepLayers.length);
            launcher.put(k.passOp);
            launcher.put(k.passLayer);
            stepScheduleOnDevice = true;
        }
        putStepInputs();
        run(stepOps.length, tokens, entries, maxLen);
        launcher.get(k.logits);
    }

    /** Runs an arbitrary schedule of passes (at most a step's length) in one launch; for kernel tests. */
    void launchPasses(int[] ops, int[] layers, int tokens, int entries, int maxLen) {
        if (ops.length != layers.length || ops.length > stepOps.length || ops.length == 0) {
            throw new IllegalArgumentException("schedule of " + ops.length + " ops and " + layers.length
                    + " layers; at most " + stepOps.length + " passes");
        }
        System.arraycopy(ops, 0, k.passOp, 0, ops.length);
        System.arraycopy(layers, 0, k.passLayer, 0, layers.length);
        launcher.put(k.passOp);
        launcher.put(k.passLayer);
        stepScheduleOnDevice = false;
        run(ops.length, tokens, entries, maxLen);
    }

    void putStepInputs() {
        launcher.put(k.tokenIds);
        launcher.put(k.tokenPos);
        launcher.put(k.tokenSeq);
        launcher.put(k.blockTable);
        launcher.put(k.lastRow);
        launcher.put(k.entryIndptr);
        launcher.put(k.entryIndices);
    }

    private void run(int passes, int tokens, int entries, int maxLen) {
        if (tokens < 1 || tokens > tokenCapacity || entries < 1 || entries > entryCapacity || maxLen < 1
                || maxLen > config.contextLength()) {
            throw new IllegalArgumentException("bad step sizes: " + tokens + " tokens (capacity " + tokenCapacity
                    + "), " + entries + " entries (capacity " + entryCapacity + "), maxLen " + maxLen);
        }
        k.tokens = tokens;
        k.entries = entries;
        k.maxLen = maxLen;
        long work = Math.max((long) tokens * config.nHeads() * maxLen,
                Math.max((long) tokens * Math.max(config.hiddenDim(), config.dim()),
                        (long) entries * config.vocabSize()));
        int global = (int) Math.min(MAX_GLOBAL, (work + LOCAL_SIZE - 1) / LOCAL_SIZE * LOCAL_SIZE);
        Range range = launcher.range(global, LOCAL_SIZE);
        launcher.launch(range, passes);
    }

    private void growArrays(int tokens, int entries) {
        ModelConfig c = config;
        long attFloats = (long) tokens * c.nHeads() * c.contextLength();
        long hiddenFloats = (long) tokens * Math.max(c.hiddenDim(), c.dim());
        if (attFloats * Float.BYTES > MAX_BUFFER_BYTES || hiddenFloats * Float.BYTES > MAX_BUFFER_BYTES
                || (long) entries * c.vocabSize() * Float.BYTES > MAX_BUFFER_BYTES) {
            throw new IllegalArgumentException("a step of " + tokens + " tokens and " + entries
                    + " entries needs activation buffers over 2 GiB; use smaller steps");
        }
        k.tokenIds = new int[tokens];
        k.tokenPos = new int[tokens];
        k.tokenSeq = new int[tokens];
        k.x = new float[tokens * c.dim()];
        k.xb = new float[tokens * c.dim()];
        k.q = new float[tokens * c.dim()];
        k.hb = new float[tokens * c.hiddenDim()];
        k.att = new float[(int) attFloats];
        k.blockTable = new int[entries * k.maxBlocksPerSeq];
        k.lastRow = new int[entries];
        k.entryIndptr = new int[entries];
        k.entryIndices = new int[entries];
        java.util.Arrays.fill(k.entryIndptr, -1);
        k.logits = new float[entries * c.vocabSize()];
        tokenCapacity = tokens;
        entryCapacity = entries;
    }

    private void putActivations() {
        if (launcher == null) {
            return;
        }
        for (float[] a : new float[][]{k.x, k.xb, k.q, k.hb, k.att, k.logits}) {
            launcher.put(a);
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

package io.stepstream.gpu;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.cl.ClQueue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * One {@code rows x cols} matmul on its own, for probes: a one-layer model whose classifier is that matrix
 * (dim = cols, vocab = rows), so the step kernel's LOGITS pass multiplies exactly it by up to {@code maxTokens}
 * activation rows. Times, with OpenCL profiling events, either Aparapi's generated pass (under the direct
 * dispatch) or a hand kernel built for any {@link MatmulTiles} in the same queue on the same buffers (plain
 * store epilogue). Not for serving; one thread.
 */
public final class MatmulPassProbe implements AutoCloseable {
    private final DeviceLlama2 device;
    private final DirectLauncher launcher;
    private final int rows;
    private final int cols;
    private final int maxTokens;
    /** The forced matvec tier ({@link #mvTier(int)}), 0: auto. */
    private int mvTier;
    /** Whether later matvec timings make their input rows with the fused RMSNorm ({@link #fuseNorm(boolean)}). */
    private boolean fuseNorm;
    private final Map<Variant, MatmulProgram.Pass> hand = new HashMap<>();
    private final Map<MatmulProgram.Pass, MatmulProgram> programs = new HashMap<>();
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment event = arena.allocate(ValueLayout.ADDRESS);
    private final MemorySegment reduceEvent = arena.allocate(ValueLayout.ADDRESS);

    /** One hand kernel build: the mm/mv tiles and the tensor-core choice (F16 only). */
    private record Variant(MatmulTiles tiles, TensorCores tensorCores) {
    }

    /** Weights of the probe model for a {@code rows x cols} matrix (random, small values). */
    public static Llama2Weights weights(int rows, int cols) {
        if (cols % 64 != 0 || rows < 2) {
            throw new IllegalArgumentException("probe shape " + rows + " x " + cols + ": columns must be a multiple"
                    + " of 64, rows >= 2");
        }
        int headSize = 64;
        ModelConfig c = new ModelConfig(cols, 64, 1, cols / headSize, 1, rows, 16, 1e-5f, 10000f, false);
        SplittableRandom random = new SplittableRandom(rows * 31L + cols);
        float[] classifier = randoms(random, (long) rows * cols);
        return new Llama2Weights(c, classifier, new float[][]{ones(cols)},
                new float[][]{randoms(random, (long) cols * cols)}, new float[][]{randoms(random, (long) headSize * cols)},
                new float[][]{randoms(random, (long) headSize * cols)}, new float[][]{randoms(random, (long) cols * cols)},
                new float[][]{ones(cols)}, new float[][]{randoms(random, 64L * cols)},
                new float[][]{randoms(random, 64L * cols)}, new float[][]{randoms(random, 64L * cols)}, ones(cols),
                classifier);
    }

    public MatmulPassProbe(OpenCLDevice cl, Llama2Weights w, TensorType type, int maxTokens) {
        this.device = new DeviceLlama2(w, cl, 2, type, Dispatch.DIRECT, Matmul.APARAPI, MatmulTiles.DEFAULT);
        this.launcher = (DirectLauncher) device.launcher();
        this.rows = w.config().vocabSize();
        this.cols = w.config().dim();
        this.maxTokens = maxTokens;
        device.ensureCapacity(maxTokens, maxTokens);
        for (int t = 0; t < maxTokens; t++) {
            device.k.logitRow[t] = t;
        }
        device.putStepInputs();
        float[] xb = device.k.xb;
        SplittableRandom random = new SplittableRandom(7);
        for (int i = 0; i < xb.length; i++) {
            xb[i] = (float) (random.nextDouble() - 0.5);
        }
        launcher.put(xb);
    }

    private static float[] randoms(SplittableRandom random, long n) {
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(n + " elements do not fit one array");
        }
        float[] a = new float[(int) n];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (random.nextDouble() - 0.5) * 0.1f;
        }
        return a;
    }

    private static float[] ones(int n) {
        float[] a = new float[n];
        Arrays.fill(a, 1f);
        return a;
    }

    /** Bytes of the matrix as the device stores it (F16: 2 a weight, Q8_0: 1 + 4/32). */
    public long weightBytes() {
        return switch (device.k.wtype) {
            case Llama2Kernel.WT_F32 -> (long) rows * cols * 4;
            case Llama2Kernel.WT_F16 -> (long) rows * cols * 2;
            default -> (long) rows * cols + (long) rows * cols / 32 * 4;
        };
    }

    /** Mean device ms of Aparapi's pass for {@code tokens} rows (warmup runs first, untimed). */
    public double aparapiMs(int tokens, int warmup, int reps) {
        checkTokens(tokens);
        int[] op = {Llama2Kernel.OP_LOGITS};
        int[] layer = {0};
        for (int i = 0; i < warmup; i++) {
            device.launchPasses(op, layer, tokens, tokens, 1);
        }
        device.launcher().finish();
        long[] before = device.profiledNanos();
        device.profile(true);
        for (int i = 0; i < reps; i++) {
            device.launchPasses(op, layer, tokens, tokens, 1);
        }
        device.profile(false);
        long[] after = device.profiledNanos();
        return (after[0] - before[0]) / 1e6 / Math.max(1, after[2] - before[2]);
    }

    /**
     * Mean device ms of the hand kernel built with {@code tiles} for {@code tokens} rows (with split-K: the tiled
     * kernel plus the reduction).
     */
    public double handMs(MatmulTiles tiles, int tokens, int warmup, int reps) {
        return handMs(tiles, TensorCores.OFF, tokens, warmup, reps);
    }

    /** As above for the program built with {@code tensorCores} too (F16: passes it takes run mmt). */
    public double handMs(MatmulTiles tiles, TensorCores tensorCores, int tokens, int warmup, int reps) {
        checkTokens(tokens);
        MatmulProgram.Pass pass = pass(tiles, tensorCores);
        applyMvTier(pass, tokens);
        ClQueue queue = launcher.queue();
        queue.timestamps(true);
        for (int i = 0; i < warmup; i++) {
            pass.enqueue(tokens, 0, MemorySegment.NULL);
        }
        queue.finish();
        long sum = 0;
        for (int i = 0; i < reps; i++) {
            pass.enqueue(tokens, 0, event, reduceEvent);
            queue.finish();
            sum += eventNanos(queue, event);
            if (pass.lastReduceKernel()) {
                sum += eventNanos(queue, reduceEvent);
            }
        }
        return sum / 1e6 / reps;
    }

    private static long eventNanos(ClQueue queue, MemorySegment slot) {
        MemorySegment e = slot.get(ValueLayout.ADDRESS, 0);
        long[] se = queue.eventStartEnd(e);
        queue.releaseEvent(e);
        return se[1] - se[0];
    }

    /**
     * Host microseconds to enqueue one Aparapi pass (the best of {@code reps} launches of as many passes as the
     * probe model's step has, without waiting for them; the device finishes them untimed).
     */
    public double aparapiEnqueueUs(int tokens, int reps) {
        checkTokens(tokens);
        int passes = device.passesPerStep();
        int[] ops = new int[passes];
        Arrays.fill(ops, Llama2Kernel.OP_LOGITS);
        int[] layers = new int[passes];
        long best = Long.MAX_VALUE;
        for (int i = 0; i < reps; i++) {
            device.launcher().finish();
            long t0 = System.nanoTime();
            device.launchPasses(ops, layers, tokens, tokens, 1);
            best = Math.min(best, System.nanoTime() - t0);
        }
        device.launcher().finish();
        return best / 1e3 / passes;
    }

    /** Host microseconds to enqueue the hand kernel once (best of {@code reps} bursts of 16 enqueues). */
    public double handEnqueueUs(MatmulTiles tiles, int tokens, int reps) {
        checkTokens(tokens);
        MatmulProgram.Pass pass = pass(tiles, TensorCores.OFF);
        applyMvTier(pass, tokens);
        ClQueue queue = launcher.queue();
        queue.timestamps(true);
        long best = Long.MAX_VALUE;
        for (int i = 0; i < reps; i++) {
            queue.finish();
            long t0 = System.nanoTime();
            for (int p = 0; p < 16; p++) {
                pass.enqueue(tokens, 0, MemorySegment.NULL);
            }
            best = Math.min(best, System.nanoTime() - t0);
        }
        queue.finish();
        return best / 1e3 / 16;
    }

    /**
     * Device microseconds per hand kernel when {@code reps} of them run back to back without events (wall time from
     * the first enqueue to the end of the last, divided by reps): what a kernel costs in a stream of them, launch
     * gaps included, as opposed to the event duration of {@link #handMs}.
     */
    public double handBackToBackUs(MatmulTiles tiles, int tokens, int reps) {
        checkTokens(tokens);
        MatmulProgram.Pass pass = pass(tiles, TensorCores.OFF);
        applyMvTier(pass, tokens);
        ClQueue queue = launcher.queue();
        queue.timestamps(true);
        queue.finish();
        long t0 = System.nanoTime();
        for (int i = 0; i < reps; i++) {
            pass.enqueue(tokens, 0, MemorySegment.NULL);
            if (i % 32 == 0) {
                queue.flush();
            }
        }
        queue.finish();
        return (System.nanoTime() - t0) / 1e3 / reps;
    }

    /** Column slices the hand kernel with {@code tiles} used last (1: no split-K). */
    public int lastSplit(MatmulTiles tiles) {
        return lastSplit(tiles, TensorCores.OFF);
    }

    public int lastSplit(MatmulTiles tiles, TensorCores tensorCores) {
        MatmulProgram.Pass pass = hand.get(new Variant(tiles, tensorCores));
        return pass == null ? 1 : pass.lastSplit();
    }

    /** Whether the last run of that build went to the tensor-core kernel. */
    public boolean lastUsedTensorCores(MatmulTiles tiles, TensorCores tensorCores) {
        MatmulProgram.Pass pass = hand.get(new Variant(tiles, tensorCores));
        return pass != null && pass.lastUsedTensorCores();
    }

    /** The tensor-core tile the last run of that build used, or null (mv / mm). */
    public TensorCores.Tile lastTile(MatmulTiles tiles, TensorCores tensorCores) {
        MatmulProgram.Pass pass = hand.get(new Variant(tiles, tensorCores));
        return pass == null ? null : pass.lastTile();
    }

    /** How the build with {@code tensorCores} has them: "off", "emulated ..." or "mma.sync ..." (builds it). */
    public String tensorCoreLabel(MatmulTiles tiles, TensorCores tensorCores) {
        return programs.get(pass(tiles, tensorCores)).tensorCoreLabel();
    }

    /**
     * Row {@code row} of the matrix as the device holds it, decoded to float: F32 as is, F16 halves widened, Q8_0
     * int8 values times their block's scale (one float product: within 2^-24 of exact).
     */
    public float[] decodedRow(int row) {
        if (row < 0 || row >= rows) {
            throw new IllegalArgumentException("row " + row + " outside 0.." + (rows - 1));
        }
        float[] out = new float[cols];
        int base = row * cols;
        for (int c = 0; c < cols; c++) {
            int i = base + c;
            out[c] = switch (device.k.wtype) {
                case Llama2Kernel.WT_F32 -> device.k.cls[i];
                case Llama2Kernel.WT_F16 -> Float.float16ToFloat((short) device.k.clsH[i]);
                default -> device.k.clsQ[i] * device.k.clsS[i >> 5];
            };
        }
        return out;
    }

    /** The first {@code tokens} activation rows the kernels multiply (tokens x cols), a copy. */
    public float[] input(int tokens) {
        checkTokens(tokens);
        return Arrays.copyOf(device.k.xb, tokens * cols);
    }

    /**
     * The matvec tier (token count) later timings force where the variant has it and it holds their token count;
     * 0 (the default): the smallest tier that holds it, as a step picks.
     */
    public void mvTier(int tokens) {
        if (tokens < 0) {
            throw new IllegalArgumentException("matvec tier must be >= 0, got " + tokens);
        }
        this.mvTier = tokens;
    }

    /** The matvec tier the last timing of {@code tiles} ran, 0 if it ran no matvec. */
    public int lastMvTier(MatmulTiles tiles) {
        MatmulProgram.Pass p = pass(tiles, TensorCores.OFF);
        return p.lastRanMatvec() ? p.lastMvTier() : 0;
    }

    /**
     * Whether later matvec timings run the fused RMSNorm prologue (rs of each token's row of the input, as a
     * classifier after the final norm; the norm weights are ones): what fusing adds to the kernel. Tiled kernels
     * ignore it.
     */
    public void fuseNorm(boolean on) {
        this.fuseNorm = on;
    }

    private void applyMvTier(MatmulProgram.Pass pass, int tokens) {
        boolean has = Arrays.stream(pass.mvTiers()).anyMatch(t -> t == mvTier);
        pass.forceMvTier(has && mvTier >= tokens ? mvTier : 0);
        pass.normMode(fuseNorm ? MatmulProgram.NORM_ROWS : MatmulProgram.NORM_OFF);
    }

    private MatmulProgram.Pass pass(MatmulTiles tiles, TensorCores tensorCores) {
        return hand.computeIfAbsent(new Variant(tiles, tensorCores), this::build);
    }

    private MatmulProgram.Pass build(Variant v) {
        MatmulTiles tiles = v.tiles();
        MatmulProgram program = new MatmulProgram(launcher.queue(), device.k.wtype, tiles, v.tensorCores());
        MatmulProgram.Pass pass = program.pass(MatmulProgram.Shape.plain(MatmulProgram.EPI_STORE, rows, cols, 0, rows));
        String w = "cls" + Llama2Kernel.weightFieldSuffix(device.k.wtype);
        String[] fields = {w, "clsS", w, "clsS", w, "clsS", "xb", "logits", "kv", "ropeCos", "ropeSin", "tokenPos",
                "tokenSeq", "blockTable"};
        for (int i = 0; i < fields.length; i++) {
            pass.bind(MatmulProgram.BUFFER_ARGS[i], launcher.buffer(fields[i]));
        }
        pass.bindNorm(launcher.buffer("xb"), launcher.buffer("rmsFinal"), launcher.buffer("logitRow"), 0,
                device.k.eps);
        programs.put(pass, program);
        return pass;
    }

    private void checkTokens(int tokens) {
        if (tokens < 1 || tokens > maxTokens) {
            throw new IllegalArgumentException("tokens must be 1.." + maxTokens + ", got " + tokens);
        }
    }

    /** The first {@code tokens} rows of logits the last pass wrote (tokens x rows). */
    public float[] output(int tokens) {
        launcher.get(device.k.logits);
        return Arrays.copyOf(device.k.logits, tokens * rows);
    }

    @Override
    public void close() {
        try {
            device.close();
        } finally {
            arena.close();
        }
    }
}

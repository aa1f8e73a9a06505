package io.stepstream.gpu;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionFamily;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.llama.RopeLayout;
import io.stepstream.engine.spi.CpuBackendProvider;
import io.stepstream.engine.spi.DiffusionBackendModel;
import io.stepstream.engine.tensor.TensorType;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A LLaDA-style diffusion LM whose dense denoising steps run on one OpenCL device: every canvas of a step is one
 * entry of a single {@link Llama2Kernel} launch (bidirectional attention over its canvas, logits for the positions
 * it asks for), so a step's canvases share each weight read, which is where batching requests pays on a GPU.
 *
 * <p>Inputs with SparseD ({@link DenoiseInput#sparse()}) or the Fast-dLLM cache ({@link DenoiseInput#cache()}) run
 * on the CPU {@link DiffusionModel} in the same call (their patterns and cached keys live there); dense ones on
 * the device. Dream (a Qwen2 with q/k/v biases, rotate-half RoPE) is refused: it runs on the CPU backend only.
 *
 * <p>Greedy low-confidence steps may ask for row summaries instead of logits ({@link #forwardSummaries}): under
 * the direct dispatch on a device with cl_khr_fp64, {@link RowSummaryKernel} reduces each logits row on the device
 * to its argmax and float64 softmax probability and only those come back, 12 bytes a row instead of 4 x vocab. The
 * argmax is bitwise the host's; the confidence is the device's double exp summed in its own order, within about
 * 1e-15 relative of the host's, so a greedy generation matches the logits path unless two positions' confidences
 * tie to that precision.
 *
 * <p>A kernel failure at run time ({@link OpenClException}) is logged once and counted ({@link #failovers()}); the
 * failed step's device inputs rerun on the CPU forward, so no step is lost (a diffusion step keeps nothing on the
 * device between steps), and every later step runs on the CPU. Invalid input passes through as the CPU model's
 * IllegalArgumentException. Not thread-safe: one step at a time, like every model.
 */
public final class OpenClDiffusionModel implements DiffusionBackendModel {
    private static final System.Logger LOG = System.getLogger(OpenClDiffusionModel.class.getName());

    /** The device side, a seam so that tests can make it fail. */
    interface CanvasDevice extends AutoCloseable {
        void forward(List<DenoiseInput> inputs, float[][] logits);

        long launches();

        /** Whether {@link #forwardSummaries} reduces logits rows on the device (false: a device without it). */
        default boolean summarizes() {
            return false;
        }

        /** Dense inputs' row summaries instead of their logits; only when {@link #summarizes()}. */
        default void forwardSummaries(List<DenoiseInput> inputs, RowSummaries[] summaries) {
            throw new UnsupportedOperationException("this device makes no row summaries");
        }

        /** Profiling of the device passes, for benches; a device that cannot profile ignores it. */
        default void profile(boolean on) {
        }

        /** Device time of the profiled passes by op, or null when not profiled. */
        default OpTimes profiledOpTimes() {
            return null;
        }

        /** Whether the matmuls run on tensor cores (F32: 3xTF32): "off" or how (see {@link TensorCores}). */
        default String tensorCores() {
            return "off";
        }

        @Override
        void close();
    }

    private final DiffusionModel cpu;
    private final CanvasDevice device;
    private final String deviceDescription;
    private final AtomicLong failovers = new AtomicLong();
    private volatile boolean failed;
    private final List<DenoiseInput> onDevice = new ArrayList<>();
    private final List<DenoiseInput> onCpu = new ArrayList<>();
    private float[][] deviceLogits = new float[0][];
    private float[][] cpuLogits = new float[0][];

    /**
     * @param cpu        the model as loaded on the CPU; owned from here on (closed by {@link #close})
     * @param kvBlocks   KV blocks the device reserves for one launch's canvases (0: a default, see
     *                   {@link DeviceCanvases#DEFAULT_CANVASES})
     * @param weightType F32, F16 or Q8_0 matrices on the device
     * @throws IllegalArgumentException for a model the device forward does not compute (Dream, rotate-half RoPE)
     */
    public OpenClDiffusionModel(DiffusionModel cpu, OpenCLDevice device, int kvBlocks, TensorType weightType) {
        this(cpu, device, kvBlocks, weightType, Dispatch.fromSystemProperty());
    }

    public OpenClDiffusionModel(DiffusionModel cpu, OpenCLDevice device, int kvBlocks, TensorType weightType,
                                Dispatch dispatch) {
        this(cpu, canvasDevice(check(cpu), device, kvBlocks, weightType, dispatch), OpenClDevices.describe(device));
    }

    OpenClDiffusionModel(DiffusionModel cpu, CanvasDevice device, String deviceDescription) {
        this.cpu = cpu;
        this.device = device;
        // ListModels shows the device name: say there when the matmuls run on tensor cores (F32: 3xTF32)
        String tc = device.tensorCores();
        this.deviceDescription = deviceDescription + (tc.equals("off") ? "" : ", tensor cores " + tc);
    }

    private static CanvasDevice canvasDevice(DiffusionModel cpu, OpenCLDevice device, int kvBlocks,
                                             TensorType weightType, Dispatch dispatch) {
        DeviceCanvases canvases = new DeviceCanvases(cpu.weights(), device, kvBlocks, weightType, dispatch);
        return new CanvasDevice() {
            @Override
            public void forward(List<DenoiseInput> inputs, float[][] logits) {
                canvases.forward(inputs, logits);
            }

            @Override
            public long launches() {
                return canvases.launches();
            }

            @Override
            public boolean summarizes() {
                return canvases.summarizes();
            }

            @Override
            public void forwardSummaries(List<DenoiseInput> inputs, RowSummaries[] summaries) {
                canvases.forwardSummaries(inputs, summaries);
            }

            @Override
            public void profile(boolean on) {
                canvases.profile(on);
            }

            @Override
            public OpTimes profiledOpTimes() {
                return canvases.profiledOpTimes();
            }

            @Override
            public String tensorCores() {
                return canvases.tensorCores();
            }

            @Override
            public void close() {
                canvases.close();
            }
        };
    }

    /** Times the device's passes by profiling events from now on (on) or stops (off); benches only. */
    public void profile(boolean on) {
        device.profile(on);
    }

    /** Device nanoseconds of the passes profiled so far, by op; null for a device that cannot profile. */
    public OpTimes profiledOpTimes() {
        return device.profiledOpTimes();
    }

    /** The model must be what the device forward computes: a bias-free Llama with interleaved RoPE. */
    static DiffusionModel check(DiffusionModel m) {
        if (m.family() == DiffusionFamily.DREAM) {
            throw new IllegalArgumentException("--backend opencl: " + m.name() + " is a Dream model (config model_type"
                    + " Dream: a Qwen2 with q/k/v biases); Dream runs on the CPU backend only (--backend cpu)");
        }
        if (m.weights().hasQkvBias()) {
            throw new IllegalArgumentException("--backend opencl: " + m.name() + " has q/k/v biases, which the OpenCL"
                    + " diffusion forward does not add; run it with --backend cpu");
        }
        // LLaDA configs are checked to say rope_interleaved: true on load; the kernel rotates interleaved pairs.
        if (m.ropeLayout() != RopeLayout.INTERLEAVED) {
            throw new IllegalArgumentException("--backend opencl: " + m.name() + ": config rope_interleaved is not"
                    + " true; the OpenCL kernel rotates interleaved pairs only");
        }
        return m;
    }

    @Override
    public DiffusionModel cpuModel() {
        return cpu;
    }

    @Override
    public String backendName() {
        return failed ? CpuBackendProvider.NAME : OpenClBackendProvider.NAME;
    }

    @Override
    public String deviceName() {
        return failed ? CpuBackendProvider.NAME + " (failed over from " + OpenClBackendProvider.NAME + " "
                + deviceDescription + ")" : deviceDescription;
    }

    /** Device failures so far: 0, or 1 once the model runs on the CPU (for a metric). */
    public long failovers() {
        return failovers.get();
    }

    public boolean failedOver() {
        return failed;
    }

    /**
     * Whether the matmuls run on tensor cores (F32: 3xTF32): "off", or how (e.g. "mma.sync mmt64x64k32 from 16
     * tokens").
     */
    public String tensorCores() {
        return device.tensorCores();
    }

    /** Device kernel launches since load (one per step whose dense canvases fit one launch). */
    public long deviceLaunches() {
        return device.launches();
    }

    @Override
    public void forward(List<DenoiseInput> batch, float[][] logits) {
        int n = batch.size();
        if (n == 0) {
            return;
        }
        // What the CPU forward would refuse is refused before anything runs (no step half done), and every
        // batch the device takes is one the CPU can finish after a failover.
        cpu.checkBatch(batch, logits);
        if (failed) {
            cpu.forward(batch, logits);
            return;
        }
        onDevice.clear();
        onCpu.clear();
        for (DenoiseInput in : batch) {
            (in.sparse() == null && in.cache() == null ? onDevice : onCpu).add(in);
        }
        if (onCpu.isEmpty()) {
            runDevice(batch, logits);
            return;
        }
        if (deviceLogits.length < n) {
            deviceLogits = new float[n][];
            cpuLogits = new float[n][];
        }
        int d = 0;
        int c = 0;
        for (int i = 0; i < n; i++) {
            DenoiseInput in = batch.get(i);
            if (in.sparse() == null && in.cache() == null) {
                deviceLogits[d++] = logits[i];
            } else {
                cpuLogits[c++] = logits[i];
            }
        }
        cpu.forward(onCpu, cpuLogits);
        if (d > 0) {
            runDevice(onDevice, deviceLogits);
        }
        java.util.Arrays.fill(deviceLogits, null);
        java.util.Arrays.fill(cpuLogits, null);
    }

    /**
     * True while the device reduces each logits row to its argmax and float64 confidence itself (the direct dispatch
     * on a device with cl_khr_fp64), so a step reads back 12 bytes a row instead of the row; false after a failover.
     */
    @Override
    public boolean summarizesOnDevice() {
        return !failed && device.summarizes();
    }

    /**
     * Dense inputs' rows reduced on the device (see {@link RowSummaryKernel}: argmax bitwise the host's, confidence
     * within ~1e-15 relative of it, so greedy generations match the CPU's unless two confidences tie that closely);
     * SparseD and cached inputs run on the CPU model and are summarized on the host, as is everything when the
     * device makes no summaries or has failed. A kernel failure fails over as {@link #forward} does: the step's
     * device inputs rerun on the CPU (into {@code logits}, then summarized on the host).
     */
    @Override
    public void forwardSummaries(List<DenoiseInput> batch, float[][] logits, RowSummaries[] summaries) {
        int n = batch.size();
        if (n == 0) {
            return;
        }
        cpu.checkBatch(batch, logits);
        RowSummaries.checkBatch(batch, summaries);
        if (!summarizesOnDevice()) {
            DiffusionBackendModel.super.forwardSummaries(batch, logits, summaries);
            return;
        }
        onDevice.clear();
        onCpu.clear();
        List<float[]> deviceRows = new ArrayList<>();
        List<RowSummaries> deviceSummaries = new ArrayList<>();
        List<float[]> cpuRows = new ArrayList<>();
        List<RowSummaries> cpuSummaries = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            DenoiseInput in = batch.get(i);
            boolean dense = in.sparse() == null && in.cache() == null;
            (dense ? onDevice : onCpu).add(in);
            (dense ? deviceRows : cpuRows).add(logits[i]);
            (dense ? deviceSummaries : cpuSummaries).add(summaries[i]);
        }
        if (!onCpu.isEmpty()) {
            float[][] rows = cpuRows.toArray(new float[0][]);
            RowSummaries[] sums = cpuSummaries.toArray(new RowSummaries[0]);
            cpu.forward(onCpu, rows);
            DiffusionBackendModel.summarizeOnHost(onCpu, rows, sums, cpu.vocabSize());
        }
        if (onDevice.isEmpty()) {
            return;
        }
        RowSummaries[] sums = deviceSummaries.toArray(new RowSummaries[0]);
        try {
            device.forwardSummaries(onDevice, sums);
        } catch (OpenClException e) {
            fail(e);
            float[][] rows = deviceRows.toArray(new float[0][]);
            cpu.forward(onDevice, rows);
            DiffusionBackendModel.summarizeOnHost(onDevice, rows, sums, cpu.vocabSize());
        }
    }

    private void fail(OpenClException e) {
        failed = true;
        failovers.incrementAndGet();
        LOG.log(System.Logger.Level.WARNING, "diffusion model " + cpu.name() + ": the OpenCL backend failed on "
                + deviceDescription + "; this step and every later one run on the CPU (" + e.getMessage() + ")", e);
    }

    /** Dense inputs on the device; on a device failure, on the CPU, now and from then on. */
    private void runDevice(List<DenoiseInput> inputs, float[][] logits) {
        try {
            device.forward(inputs, logits);
        } catch (OpenClException e) {
            fail(e);
            cpu.forward(inputs, logits);
        }
    }

    @Override
    public void close() {
        try {
            device.close();
        } finally {
            cpu.close();
        }
    }
}

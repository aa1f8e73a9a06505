package io.stepstream.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.Models;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.DlmCacheMode;
import io.stepstream.engine.dlm.LladaGeneration;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.sparse.SparseDPolicy;
import io.stepstream.engine.spi.BackendOptions;
import io.stepstream.engine.spi.Backends;
import io.stepstream.engine.spi.DiffusionBackendModel;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.engine.tools.DreamSynth;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The device diffusion forward of tinystories-dlm on a real OpenCL device (PoCL in CI) against the engine's CPU
 * {@link DiffusionModel}, a second instance loaded on its own: logits within 1e-4, whole greedy LLaDA generations
 * token for token, batched equal to alone, SparseD and cached inputs exactly the CPU's, failover without a lost
 * step, and Dream refused by name.
 */
class OpenClDiffusionModelTest {
    private static final String MODEL = "tinystories-dlm";
    /** Whether the device model runs the hand matmul kernels (the direct dispatch's default). */
    private static final boolean HAND_MATMUL = Dispatch.fromSystemProperty() == Dispatch.DIRECT
            && Matmul.fromSystemProperty() == Matmul.HAND;
    private static DiffusionModel reference;
    private static OpenClDiffusionModel gpu;

    @BeforeAll
    static void load() {
        reference = Models.loadDiffusion(MODEL);
        gpu = new OpenClDiffusionModel(Models.loadDiffusion(MODEL), OpenClTestSupport.device(), 0, TensorType.F32);
    }

    @AfterAll
    static void close() {
        gpu.close();
        reference.close();
    }

    /**
     * F16 weights on (emulated) tensor cores round activations to f16, which turns kernel-dependent f32 summation
     * order into visible differences; the canvas device therefore runs every matmul count on mmt with one split,
     * and a canvas's logits are bitwise the same alone and in a batch, also for the few logit rows a matvec
     * would otherwise take. F32 weights on 3xTF32 get the same setting and the same guarantee (F32 on mm does
     * not have it: see logitsOfCanvasesMatchTheCpuModelBatchedAndAlone's drift bound).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"F16", "F32", "F32:split", "F16:split"})
    void canvasesOnTensorCoresGiveBitwiseTheSameLogitsAloneAndBatched(String spec) {
        Assumptions.assumeTrue(HAND_MATMUL, "tensor cores are a hand-path kernel");
        // :split: split-K by shape (TensorCores.SHAPE_SPLIT_PROPERTY; a slice per 64 columns or more, rows x
        // slices up to 1024), so several K-slices, the same for every batch
        TensorType type = TensorType.valueOf(spec.split(":")[0]);
        boolean split = spec.endsWith(":split");
        String before = System.getProperty(TensorCores.PROPERTY);
        String beforeF32 = System.getProperty(TensorCores.F32_PROPERTY);
        String beforeSplit = System.getProperty(TensorCores.SHAPE_SPLIT_PROPERTY);
        System.setProperty(TensorCores.PROPERTY, "emulate");
        System.setProperty(TensorCores.F32_PROPERTY, "3xtf32"); // off by default
        if (split) {
            System.setProperty(TensorCores.SHAPE_SPLIT_PROPERTY, "64/1024");
        }
        OpenClDiffusionModel tc;
        try {
            tc = new OpenClDiffusionModel(Models.loadDiffusion(MODEL), OpenClTestSupport.device(), 0, type);
        } finally {
            restore(TensorCores.PROPERTY, before);
            restore(TensorCores.F32_PROPERTY, beforeF32);
            restore(TensorCores.SHAPE_SPLIT_PROPERTY, beforeSplit);
        }
        try (tc) {
            assertTrue(tc.tensorCores().contains("from 1 tokens"), tc.tensorCores());
            // F32 canvases aim at 2 groups per compute unit (DeviceCanvases.CANVAS_FILL)
            assertEquals(type == TensorType.F32, tc.tensorCores().contains(",fill=2"), tc.tensorCores());
            assertEquals(split, tc.tensorCores().contains("split=64/1024"), tc.tensorCores());
            assertEquals(type == TensorType.F32, tc.tensorCores().endsWith("(3xtf32)"), tc.tensorCores());
            SplittableRandom r = new SplittableRandom(21);
            int vocab = reference.vocabSize();
            List<DenoiseInput> inputs = new ArrayList<>();
            int[][] shapes = {{20, 1}, {45, 3}, {70, 12}};
            for (int[] shape : shapes) {
                int len = shape[0];
                int[] canvas = randomCanvas(r, len, 3);
                inputs.add(new DenoiseInput(canvas, len - shape[1], shape[1]));
            }
            float[][] batched = logitsFor(inputs, vocab);
            tc.forward(inputs, batched);
            for (int i = 0; i < inputs.size(); i++) {
                float[][] alone = logitsFor(List.of(inputs.get(i)), vocab);
                tc.forward(List.of(inputs.get(i)), alone);
                assertArrayEquals(alone[0], batched[i], "canvas " + i + " (" + inputs.get(i).length()
                        + " rows of logits): alone vs batched");
            }
            if (type == TensorType.F32) {
                // and 3xTF32 keeps fp32's accuracy: the CPU model's logits (f32) within the F32 bound below
                for (int i = 0; i < inputs.size(); i++) {
                    float[][] cpu = logitsFor(List.of(inputs.get(i)), vocab);
                    reference.forward(List.of(inputs.get(i)), cpu);
                    double err = OpenClTestSupport.relativeError(batched[i], cpu[0]);
                    assertTrue(err <= 1e-5, "canvas " + i + ": 3xTF32 vs CPU relative error " + err);
                }
            }
        }
    }

    private static void restore(String property, String value) {
        if (value == null) {
            System.clearProperty(property);
        } else {
            System.setProperty(property, value);
        }
    }

    @Test
    void logitsOfCanvasesMatchTheCpuModelBatchedAndAlone() {
        SplittableRandom r = new SplittableRandom(7);
        int vocab = reference.vocabSize();
        int[] lengths = {1, 17, 40, 97, 130, reference.contextLength()};
        List<DenoiseInput> inputs = new ArrayList<>();
        for (int len : lengths) {
            int[] canvas = randomCanvas(r, len, 4);
            int start = r.nextInt(len);
            inputs.add(new DenoiseInput(canvas, start, 1 + r.nextInt(len - start)));
        }
        float[][] batched = logitsFor(inputs, vocab);
        gpu.forward(inputs, batched);
        for (int i = 0; i < inputs.size(); i++) {
            float[][] alone = logitsFor(List.of(inputs.get(i)), vocab);
            gpu.forward(List.of(inputs.get(i)), alone);
            float[][] cpu = logitsFor(List.of(inputs.get(i)), vocab);
            reference.forward(List.of(inputs.get(i)), cpu);
            double err = OpenClTestSupport.relativeError(alone[0], cpu[0]);
            assertTrue(err <= 1e-4, "canvas of " + lengths[i] + ": relative error " + err);
            if (HAND_MATMUL) {
                // The hand matmuls pick their kernel (matvec, tiled, split-K) by the step's token count, so a
                // canvas's sums are added in another order alone than in a batch: equal within float rounding.
                double drift = OpenClTestSupport.relativeError(batched[i], alone[0]);
                assertTrue(drift <= 1e-5, "canvas of " + lengths[i] + ": batched vs alone relative error " + drift);
            } else {
                assertArrayEquals(alone[0], batched[i], "canvas of " + lengths[i] + ": batched differs from alone");
            }
        }
    }

    @Test
    void greedyGenerationsEqualTheCpuOnesTokenForToken() {
        // One block and two, blocks of 16 with Fast-dLLM's threshold, random remasking; prompts of several lengths.
        List<DiffusionParams> settings = List.of(
                new DiffusionParams(32, 32, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L),
                new DiffusionParams(64, 32, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L),
                new DiffusionParams(32, 16, 8, 0.0, Remasking.LOW_CONFIDENCE, 0.9, 0L),
                new DiffusionParams(32, 8, 8, 0.0, Remasking.RANDOM, null, 42L));
        String[] prompts = {"Once upon a time", "Lily and Tom went to the park. They saw"};
        List<LladaGeneration> onDevice = new ArrayList<>();
        for (DiffusionParams p : settings) {
            for (String prompt : prompts) {
                LladaGeneration cpu = runAlone(reference::forward, LladaGeneration.start(reference, prompt, p));
                LladaGeneration dev = runAlone(gpu::forward, LladaGeneration.start(reference, prompt, p));
                assertDeviceTokens(cpu, dev, p + " '" + prompt + "': device tokens");
                onDevice.add(dev);
            }
        }
        // The same requests all at once, one device forward per step of every live canvas.
        List<LladaGeneration> together = startAll(settings, prompts);
        runBatched(gpu::forward, together);
        assertBatchedEqualsAlone(onDevice, together);
        assertFalse(gpu.failedOver());
    }

    @Test
    void greedyGenerationsFromDeviceRowSummariesEqualTheCpuOnesTokenForToken() {
        // Under the direct dispatch the device reduces the rows itself; under Aparapi's the default host path runs.
        assertEquals(Dispatch.fromSystemProperty() == Dispatch.DIRECT, gpu.summarizesOnDevice());
        List<DiffusionParams> settings = List.of(
                new DiffusionParams(32, 32, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L),
                new DiffusionParams(64, 32, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L),
                new DiffusionParams(32, 16, 8, 0.0, Remasking.LOW_CONFIDENCE, 0.7, 0L));
        String[] prompts = {"Lily and Tom went to the park. They saw", "The dog"};
        long launches = gpu.deviceLaunches();
        List<LladaGeneration> alone = new ArrayList<>();
        for (DiffusionParams p : settings) {
            for (String prompt : prompts) {
                LladaGeneration cpu = runAlone(reference::forward, LladaGeneration.start(reference, prompt, p));
                LladaGeneration dev = LladaGeneration.start(reference, prompt, p);
                runSummaries(gpu, List.of(dev));
                assertDeviceTokens(cpu, dev, p + " '" + prompt + "': device summaries' tokens");
                alone.add(dev);
            }
        }
        List<LladaGeneration> together = startAll(settings, prompts);
        runSummaries(gpu, together);
        assertBatchedEqualsAlone(alone, together);
        assertTrue(gpu.deviceLaunches() > launches, "the steps ran on the device");
        assertFalse(gpu.failedOver());
    }

    @Test
    void deviceRowSummariesAreTheHostOnesOfTheDeviceLogits() {
        // The same batch twice: logits read back and summarized on the host, and reduced on the device.
        SplittableRandom r = new SplittableRandom(9);
        int vocab = reference.vocabSize();
        List<DenoiseInput> inputs = new ArrayList<>();
        for (int len : new int[]{20, 64, 33}) {
            int[] canvas = randomCanvas(r, len, 3);
            int start = 1 + r.nextInt(len - 9);
            inputs.add(new DenoiseInput(canvas, start, 8));
        }
        float[][] logits = logitsFor(inputs, vocab);
        gpu.forward(inputs, logits);
        RowSummaries[] onDevice = new RowSummaries[inputs.size()];
        for (int i = 0; i < onDevice.length; i++) {
            onDevice[i] = RowSummaries.ofRows(8);
        }
        gpu.forwardSummaries(inputs, logitsFor(inputs, vocab), onDevice);
        for (int i = 0; i < inputs.size(); i++) {
            RowSummaries host = RowSummaries.ofRows(8);
            host.summarize(logits[i], 8, vocab);
            for (int j = 0; j < 8; j++) {
                assertEquals(host.argmax()[j], onDevice[i].argmax()[j], "input " + i + " row " + j);
                double rel = Math.abs(onDevice[i].confidence()[j] - host.confidence()[j]) / host.confidence()[j];
                // Equal logits (the hand matmuls may sum another order alone vs batched: 1e-5) and 1e-12 in the sum.
                assertTrue(rel <= (HAND_MATMUL ? 1e-4 : 1e-12), "input " + i + " row " + j + ": " + rel);
            }
        }
    }

    @Test
    void aKernelFailureDuringSummariesContinuesOnTheCpu() {
        DiffusionModel cpu = Models.loadDiffusion(MODEL);
        int[] calls = {0};
        OpenClDiffusionModel.CanvasDevice failsOnThird = new OpenClDiffusionModel.CanvasDevice() {
            @Override
            public void forward(List<DenoiseInput> inputs, float[][] logits) {
                throw new AssertionError("a summary step must not ask for logits");
            }

            @Override
            public boolean summarizes() {
                return true;
            }

            @Override
            public void forwardSummaries(List<DenoiseInput> inputs, RowSummaries[] summaries) {
                if (++calls[0] == 3) {
                    java.util.Arrays.fill(summaries[0].argmax(), -7); // a half-written step must not leak out
                    throw new OpenClException("injected: clEnqueueNDRangeKernel returned CL_OUT_OF_RESOURCES");
                }
                // The device's part done by the CPU model here: the test is about the failover path.
                float[][] rows = logitsFor(inputs, reference.vocabSize());
                reference.forward(inputs, rows);
                DiffusionBackendModel.summarizeOnHost(inputs, rows, summaries, reference.vocabSize());
            }

            @Override
            public long launches() {
                return calls[0];
            }

            @Override
            public void close() {
            }
        };
        try (OpenClDiffusionModel model = new OpenClDiffusionModel(cpu, failsOnThird, "test device")) {
            assertTrue(model.summarizesOnDevice());
            DiffusionParams p = new DiffusionParams(32, 32, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
            List<LladaGeneration> gens = List.of(LladaGeneration.start(reference, "Once upon a time", p),
                    LladaGeneration.start(reference, "The sun", p));
            runSummaries(model, gens);
            assertEquals(1, model.failovers());
            assertFalse(model.summarizesOnDevice(), "after a failover the host path runs");
            assertEquals(3, calls[0], "the device is not used after the failure");
            for (LladaGeneration g : gens) {
                LladaGeneration cpuRun = runAlone(reference::forward, LladaGeneration.start(reference, prefix(g), p));
                assertArrayEquals(cpuRun.generated(), g.generated());
            }
        }
    }

    /** BOS, then text ids and masks mixed (a mask one time in {@code maskOneIn}), as a canvas part way through. */
    private static int[] randomCanvas(SplittableRandom r, int len, int maskOneIn) {
        int[] canvas = new int[len];
        canvas[0] = 1;
        for (int i = 1; i < len; i++) {
            canvas[i] = r.nextInt(maskOneIn) == 0 ? reference.maskId() : 3 + r.nextInt(reference.maskId() - 3);
        }
        return canvas;
    }

    /** Every step one summary forward of all live canvases, each request applying its rows' summaries. */
    static void runSummaries(DiffusionBackendModel m, List<LladaGeneration> gens) {
        while (true) {
            List<LladaGeneration> live = gens.stream().filter(g -> !g.done()).toList();
            if (live.isEmpty()) {
                return;
            }
            List<DenoiseInput> in = live.stream().map(LladaGeneration::nextInput).toList();
            float[][] logits = new float[in.size()][];
            RowSummaries[] summaries = new RowSummaries[in.size()];
            for (int i = 0; i < logits.length; i++) {
                assertTrue(live.get(i).acceptsSummaries());
                logits[i] = new float[live.get(i).logitsLength()];
                summaries[i] = RowSummaries.ofRows(in.get(i).logitsLength());
            }
            m.forwardSummaries(in, logits, summaries);
            for (int i = 0; i < live.size(); i++) {
                live.get(i).applySummaries(summaries[i]);
            }
        }
    }

    @Test
    void sparseAndCachedInputsRunOnTheCpuModelExactly() {
        DiffusionParams dense = new DiffusionParams(32, 32, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
        DiffusionParams sparse = dense.withSparseD(new SparseDPolicy(0.2, 0.3, 16));
        DiffusionParams cached = new DiffusionParams(64, 32, 16, 0.0, Remasking.LOW_CONFIDENCE, null, 0L)
                .withCache(DlmCacheMode.DUAL);
        String prompt = "One day a cat";
        List<LladaGeneration> mixed = List.of(LladaGeneration.start(reference, prompt, sparse),
                LladaGeneration.start(reference, prompt, dense), LladaGeneration.start(reference, prompt, cached));
        List<LladaGeneration> cpuOnly = List.of(LladaGeneration.start(reference, prompt, sparse),
                LladaGeneration.start(reference, prompt, cached));
        int vocab = reference.vocabSize();
        int steps = 0;
        while (mixed.stream().anyMatch(g -> !g.done())) {
            List<LladaGeneration> live = mixed.stream().filter(g -> !g.done()).toList();
            List<DenoiseInput> in = live.stream().map(LladaGeneration::nextInput).toList();
            float[][] got = logitsFor(in, vocab);
            gpu.forward(in, got);
            List<LladaGeneration> liveCpu = cpuOnly.stream().filter(g -> !g.done()).toList();
            List<DenoiseInput> cpuIn = liveCpu.stream().map(LladaGeneration::nextInput).toList();
            float[][] want = logitsFor(cpuIn, vocab);
            reference.forward(cpuIn, want);
            int c = 0;
            for (int i = 0; i < live.size(); i++) {
                if (in.get(i).sparse() != null || in.get(i).cache() != null) {
                    assertArrayEquals(want[c], got[i], "step " + steps + ": a routed input differs from the CPU's");
                    liveCpu.get(c).apply(want[c]);
                    c++;
                }
                live.get(i).apply(got[i]);
            }
            assertEquals(liveCpu.size(), c, "every SparseD and cached input ran on the CPU side");
            steps++;
        }
        assertArrayEquals(cpuOnly.get(0).generated(), mixed.get(0).generated());
        assertArrayEquals(cpuOnly.get(1).generated(), mixed.get(2).generated());
        reference.releasePattern(cpuOnly.get(0).patternHandle());
        reference.releaseKvCache(cpuOnly.get(1).kvHandle());
        gpu.cpuModel().releasePattern(mixed.get(0).patternHandle());
        gpu.cpuModel().releaseKvCache(mixed.get(2).kvHandle());
    }

    @Test
    void aKernelFailureContinuesOnTheCpuWithoutLosingTheStep() {
        DiffusionModel cpu = Models.loadDiffusion(MODEL);
        DeviceCanvases real = new DeviceCanvases(cpu.weights(), OpenClTestSupport.device(), 0, TensorType.F32,
                Dispatch.fromSystemProperty());
        int[] calls = {0};
        OpenClDiffusionModel.CanvasDevice failsOnThird = new OpenClDiffusionModel.CanvasDevice() {
            @Override
            public void forward(List<DenoiseInput> inputs, float[][] logits) {
                if (++calls[0] == 3) {
                    java.util.Arrays.fill(logits[0], Float.NaN); // a half-written step must not leak out
                    throw new OpenClException("injected: clEnqueueNDRangeKernel returned CL_OUT_OF_RESOURCES");
                }
                real.forward(inputs, logits);
            }

            @Override
            public long launches() {
                return real.launches();
            }

            @Override
            public void close() {
                real.close();
            }
        };
        try (OpenClDiffusionModel model = new OpenClDiffusionModel(cpu, failsOnThird, "test device")) {
            DiffusionParams p = new DiffusionParams(32, 32, 8, 0.0, Remasking.LOW_CONFIDENCE, null, 0L);
            List<LladaGeneration> gens = List.of(LladaGeneration.start(reference, "Once upon a time", p),
                    LladaGeneration.start(reference, "The sun", p));
            runBatched(model::forward, gens);
            assertEquals(1, model.failovers());
            assertTrue(model.failedOver());
            assertEquals("cpu", model.backendName());
            assertTrue(model.deviceName().contains("failed over from opencl test device"), model.deviceName());
            assertEquals(3, calls[0], "the device is not used after the failure");
            for (LladaGeneration g : gens) {
                LladaGeneration cpuRun = runAlone(reference::forward, LladaGeneration.start(reference, prefix(g), p));
                assertArrayEquals(cpuRun.generated(), g.generated());
            }
        }
    }

    @Test
    void dreamIsRefusedWithAMessageSayingItRunsOnTheCpu(@TempDir Path dir) throws Exception {
        DreamSynth.write(dir, DreamSynth.Shape.byId("dream-tiny"), 1L);
        try (DiffusionModel dream = Models.loadDiffusion(dir.toString())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Backends.loadDiffusion("opencl", dream, BackendOptions.defaults()));
            assertTrue(e.getMessage().contains("Dream") && e.getMessage().contains("CPU backend only"),
                    e.getMessage());
            DiffusionBackendModel onCpu = Backends.loadDiffusion("cpu", dream, BackendOptions.defaults());
            assertEquals("cpu", onCpu.backendName());
        }
    }

    @Test
    void theProviderPlacesLladaOnTheDevice() {
        try (DiffusionBackendModel m = Backends.loadDiffusion("opencl", Models.loadDiffusion(MODEL),
                BackendOptions.defaults().withDevice(OpenClTestSupport.SELECTOR))) {
            assertEquals("opencl", m.backendName());
            assertEquals(OpenClDevices.describe(OpenClTestSupport.device()), m.deviceName());
        }
    }

    @Test
    void tiledAttentionAndTheThreePassesBothGiveTheCpuLogitsAndTokens() {
        SplittableRandom r = new SplittableRandom(11);
        int vocab = reference.vocabSize();
        List<DenoiseInput> inputs = new ArrayList<>();
        for (int len : new int[]{1, 9, 31, 33, 100, reference.contextLength()}) {
            int[] canvas = randomCanvas(r, len, 3);
            inputs.add(new DenoiseInput(canvas, 0, len));
        }
        float[][] cpu = logitsFor(inputs, vocab);
        reference.forward(inputs, cpu);
        // Two blocks with Fast-dLLM's threshold (the greedy test above covers more settings in the default mode).
        List<DiffusionParams> settings = List.of(new DiffusionParams(32, 16, 8, 0.0, Remasking.LOW_CONFIDENCE, 0.9, 0L));
        String[] prompts = {"Once upon a time", "Lily and Tom went to the park. They saw"};
        for (Attention mode : List.of(Attention.TILED, Attention.PASSES)) {
            try (OpenClDiffusionModel model = OpenClTestSupport.withAttention(mode, () -> new OpenClDiffusionModel(
                    Models.loadDiffusion(MODEL), OpenClTestSupport.device(), 0, TensorType.F32))) {
                model.profile(true);
                float[][] got = logitsFor(inputs, vocab);
                model.forward(inputs, got);
                model.profile(false);
                for (int i = 0; i < inputs.size(); i++) {
                    double err = OpenClTestSupport.relativeError(got[i], cpu[i]);
                    assertTrue(err <= 1e-4, mode + ": canvas of " + inputs.get(i).length() + ": relative error " + err);
                }
                if (HAND_MATMUL) {
                    long[] ops = model.profiledOpTimes().nanos();
                    boolean tiled = mode == Attention.TILED;
                    assertEquals(tiled, ops[OpTimes.ATTENTION] > 0, mode + ": the tiled kernel's time");
                    assertEquals(!tiled, ops[Llama2Kernel.OP_SCORES] > 0 && ops[Llama2Kernel.OP_SOFTMAX] > 0
                            && ops[Llama2Kernel.OP_ATTN_OUT] > 0, mode + ": the three passes' time");
                }
                List<LladaGeneration> together = startAll(settings, prompts);
                List<LladaGeneration> onCpu = startAll(settings, prompts);
                onCpu.forEach(g -> runAlone(reference::forward, g));
                runBatched(model::forward, together);
                for (int i = 0; i < together.size(); i++) {
                    assertArrayEquals(onCpu.get(i).generated(), together.get(i).generated(), mode + ": request " + i
                            + " (all requests batched) differs from the CPU's tokens");
                }
            }
        }
    }

    private static int[] prefix(LladaGeneration g) {
        return java.util.Arrays.copyOf(g.canvas(), g.prefixLength());
    }

    private static float[][] logitsFor(List<DenoiseInput> inputs, int vocab) {
        float[][] out = new float[inputs.size()][];
        for (int i = 0; i < out.length; i++) {
            out[i] = new float[inputs.get(i).logitsLength() * vocab];
        }
        return out;
    }

    /** A fresh generation of every prompt under every setting, settings outer (the order requests are numbered in). */
    private static List<LladaGeneration> startAll(List<DiffusionParams> settings, String[] prompts) {
        List<LladaGeneration> gens = new ArrayList<>();
        for (DiffusionParams p : settings) {
            for (String prompt : prompts) {
                gens.add(LladaGeneration.start(reference, prompt, p));
            }
        }
        return gens;
    }

    /** The device's tokens equal the CPU's; when they do not, the message shows both. */
    private static void assertDeviceTokens(LladaGeneration cpu, LladaGeneration dev, String what) {
        assertArrayEquals(cpu.generated(), dev.generated(), what + " differ\n cpu "
                + java.util.Arrays.toString(cpu.generated()) + "\n gpu " + java.util.Arrays.toString(dev.generated()));
    }

    /** Request i of a batched run generated what it generated alone. */
    private static void assertBatchedEqualsAlone(List<LladaGeneration> alone, List<LladaGeneration> together) {
        for (int i = 0; i < together.size(); i++) {
            assertArrayEquals(alone.get(i).generated(), together.get(i).generated(), "request " + i
                    + ": batched differs from alone");
        }
    }

    static LladaGeneration runAlone(BiConsumer<List<DenoiseInput>, float[][]> forward, LladaGeneration g) {
        runBatched(forward, List.of(g));
        return g;
    }

    /** Every step one forward of all live canvases, as the DiffusionScheduler runs them. */
    static void runBatched(BiConsumer<List<DenoiseInput>, float[][]> forward, List<LladaGeneration> gens) {
        while (true) {
            List<LladaGeneration> live = gens.stream().filter(g -> !g.done()).toList();
            if (live.isEmpty()) {
                return;
            }
            List<DenoiseInput> in = live.stream().map(LladaGeneration::nextInput).toList();
            float[][] logits = new float[in.size()][];
            for (int i = 0; i < logits.length; i++) {
                logits[i] = new float[live.get(i).logitsLength()];
            }
            forward.accept(in, logits);
            for (int i = 0; i < live.size(); i++) {
                live.get(i).apply(logits[i]);
            }
        }
    }
}

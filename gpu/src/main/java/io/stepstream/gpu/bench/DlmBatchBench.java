package io.stepstream.gpu.bench;

import io.stepstream.engine.Models;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DenoisingGeneration;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.LladaGeneration;
import io.stepstream.engine.dlm.RangeExecutor;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.dlm.SparseDBench;
import io.stepstream.engine.spi.BackendOptions;
import io.stepstream.engine.spi.DiffusionBackendModel;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.OpenClDevices;
import io.stepstream.gpu.OpTimes;
import io.stepstream.gpu.OpenClDiffusionModel;
import io.stepstream.gpu.TensorCores;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Step batching of diffusion LM requests, CPU and OpenCL side by side in one JVM: N requests start together, each a
 * real greedy {@link LladaGeneration}, and every step is ONE batched forward of all live canvases (what the
 * DiffusionScheduler does). For each N it prints generated tokens/s, the ratio to N = 1, ms per step, and checks
 * that every request's tokens equal its own run alone on the same backend (requests cycle through
 * {@code --prompts} distinct prompts of different lengths; each prompt is first run alone, untimed, which also warms
 * up the JIT and the kernels). Also reports how many of the device's tokens equal the CPU's. Exits 1 on a
 * batched-vs-alone mismatch.
 *
 * <p>After each forward the step's host work (argmax, confidences, remasking of every request) runs as the
 * DiffusionScheduler runs it, through {@link DenoisingGeneration#applyAll}: with {@code --apply parallel} (default)
 * on {@link RangeExecutor#machine()}, requests and block positions in parallel; with {@code --apply serial} all on the
 * bench thread, one request after another (as before). Each row reports the mean forward ms and apply ms per step
 * apart, so what is left of a step besides the forward shows.
 *
 * <p>With {@code --summaries true} (default) a step whose generations all accept row summaries (greedy low-confidence,
 * as here) on a backend that makes them on its device ({@link DiffusionBackendModel#summarizesOnDevice}: OpenCL under
 * the direct dispatch with cl_khr_fp64) runs {@link DiffusionBackendModel#forwardSummaries} and
 * {@link DenoisingGeneration#applySummaries}: 12 bytes a row come back instead of the row, and the apply is only
 * the remasking. Other steps, and every step with {@code --summaries false}, read the logits back. Each row of the
 * table says which path its steps took ("summaries", "logits", or "mixed").
 *
 * <p>Models: {@code --shape llada-110m} (default), a synthetic LLaDA of ~110M parameters built in memory (dim 768, 12
 * layers, 12 heads, hidden 2048, vocab 32000, random weights; needs no model files), {@code --shape llada-small-v32k}
 * (dim 128, 2 layers, 4 heads, hidden 256, the same vocabulary of 32000: a cheap forward with the full host work of
 * a large vocabulary), or {@code --model PATH} (a
 * LLaDA-style folder such as ../shared/models/tinystories-dlm, or an embedded name where the engine jar has it).
 *
 * <pre>
 * DlmBatchBench [--shape llada-110m|llada-small-v32k | --model PATH] [--backend cpu,opencl] [--requests 1,8,32]
 *               [--gen 64] [--block 32] [--steps 64] [--prompts 4] [--device auto] [--dtype f32|f16|q8_0] [--threads N]
 *               [--cpu-max-requests 8] [--seed 1] [--apply parallel|serial] [--profile false|true]
 *               [--summaries true|false] [--tensor-cores auto,off (or auto:fill=0, ...)]
 * </pre>
 * {@code --tensor-cores}: the OpenCL backend once per mode (auto, off, emulate), in one JVM, rows "opencl tc=MODE"
 * (default: one OpenCL run with -Dstepstream.opencl.tensorCores); options after the mode: {@code :split=off|auto|COLS/ROWS}
 * the canvases' split-K by shape ({@value TensorCores#SHAPE_SPLIT_PROPERTY}), {@code :fill=N}
 * ({@value TensorCores#FILL_PROPERTY}), e.g. {@code auto,auto:split=off:fill=0,off}. With {@code --dtype f32} that is 3xTF32 against
 * fp32 {@code mm}. An earlier mode's device model stays allocated until the bench ends (its close would close the
 * CPU model the later runs share).
 * {@code --profile true} times every device pass of the OpenCL rows by profiling events and prints the device ms
 * per step by op (embed, rmsnorm, qkv, scores, ...), so a batched diffusion step shows where it goes; the events
 * cost a little host time, so those rows' tok/s are not the ones to quote.
 * With {@code --dtype f16} the CPU model's matrices are rounded to f16 first, so both backends multiply the same
 * values and "tokens as cpu" compares like with like (F16 device matmuls of 16+ tokens run on tensor cores where
 * the device has them, rounding activations to f16 too; -Dstepstream.opencl.tensorCores=off keeps them f32);
 * for q8_0 that column says n/c.
 * {@code --cpu-max-requests} skips CPU rows above that N (a 110M canvas step saturates the cores at N = 1 already,
 * so larger N only takes longer).
 */
public final class DlmBatchBench {
    private DlmBatchBench() {
    }

    /**
     * One --tensor-cores run: a mode (auto, off, emulate), then optionally {@code :split=off|auto|COLS/ROWS} (the
     * canvases' split-K by shape) and {@code :fill=N} (groups per compute unit), e.g. {@code auto:split=auto:fill=0}.
     */
    static String tensorCoreRun(String v) {
        String[] parts = v.split(":");
        StringBuilder run = new StringBuilder(TensorCores.parseMode(parts[0]).label());
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i].strip().toLowerCase(Locale.ROOT);
            runProperty(p, v); // validates
            run.append(':').append(p);
        }
        return run.toString();
    }

    /** The system property and value of one run option ({@link #tensorCoreRun}). */
    private static String[] runProperty(String option, String run) {
        String[] kv;
        if (option.startsWith("split=")) {
            TensorCores.ShapeSplit.parse(option.substring(6));
            kv = new String[]{TensorCores.SHAPE_SPLIT_PROPERTY, option.substring(6)};
        } else if (option.matches("fill=\\d+")) {
            kv = new String[]{TensorCores.FILL_PROPERTY, option.substring(5)};
        } else {
            throw new IllegalArgumentException("--tensor-cores: '" + run + "' is MODE[:split=off|auto|C/R][:fill=N]");
        }
        return kv;
    }

    private static void restore(String property, String value) {
        if (value == null) {
            System.clearProperty(property);
        } else {
            System.setProperty(property, value);
        }
    }

    record Options(String shape, String model, List<String> backends, int[] requests, int gen, int block, int steps,
                   int prompts, String device, TensorType dtype, int threads, int cpuMaxRequests, long seed,
                   boolean parallelApply, boolean profile, boolean summaries, List<String> tensorCores) {
        /** The backends to run, the OpenCL one once per tensor-core mode when modes were given. */
        List<String> runs() {
            List<String> out = new ArrayList<>();
            for (String b : backends) {
                if (b.equals("opencl") && !tensorCores.isEmpty()) {
                    tensorCores.forEach(mode -> out.add("opencl tc=" + mode));
                } else {
                    out.add(b);
                }
            }
            return out;
        }

        static Options parse(String[] args) {
            String shape = "llada-110m";
            String model = null;
            List<String> backends = List.of("cpu", "opencl");
            int[] requests = {1, 8, 32};
            int gen = 64;
            int block = 32;
            int steps = 64;
            int prompts = 4;
            String device = "auto";
            TensorType dtype = TensorType.F32;
            int threads = Runtime.getRuntime().availableProcessors();
            int cpuMax = 8;
            long seed = 1;
            boolean parallelApply = true;
            boolean profile = false;
            boolean summaries = true;
            List<String> tensorCores = List.of();
            for (int i = 0; i < args.length; i++) {
                String flag = args[i];
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(flag + ": missing value");
                }
                String v = args[++i];
                switch (flag) {
                    case "--shape" -> shape = v;
                    case "--model" -> model = v;
                    case "--backend" -> backends = Arrays.stream(v.split(",")).map(s -> s.strip()
                            .toLowerCase(Locale.ROOT)).toList();
                    case "--requests" -> requests = Arrays.stream(v.split(",")).mapToInt(s -> positive(flag, s))
                            .toArray();
                    case "--gen" -> gen = positive(flag, v);
                    case "--block" -> block = positive(flag, v);
                    case "--steps" -> steps = positive(flag, v);
                    case "--prompts" -> prompts = positive(flag, v);
                    case "--device" -> device = v;
                    case "--dtype" -> dtype = BackendOptions.parseWeightType(v);
                    case "--threads" -> threads = positive(flag, v);
                    case "--cpu-max-requests" -> cpuMax = positive(flag, v);
                    case "--seed" -> seed = Long.parseLong(v);
                    case "--apply" -> parallelApply = switch (v.strip().toLowerCase(Locale.ROOT)) {
                        case "parallel" -> true;
                        case "serial" -> false;
                        default -> throw new IllegalArgumentException("--apply: parallel or serial, got '" + v + "'");
                    };
                    case "--profile" -> profile = switch (v.strip().toLowerCase(Locale.ROOT)) {
                        case "true", "on" -> true;
                        case "false", "off" -> false;
                        default -> throw new IllegalArgumentException("--profile: true or false, got '" + v + "'");
                    };
                    case "--summaries" -> summaries = switch (v.strip().toLowerCase(Locale.ROOT)) {
                        case "true", "on" -> true;
                        case "false", "off" -> false;
                        default -> throw new IllegalArgumentException("--summaries: true or false, got '" + v + "'");
                    };
                    case "--tensor-cores" -> tensorCores = Arrays.stream(v.split(",")).map(String::strip)
                            .map(DlmBatchBench::tensorCoreRun).distinct().toList();
                    default -> throw new IllegalArgumentException("unknown option " + flag);
                }
            }
            for (String b : backends) {
                if (!b.equals("cpu") && !b.equals("opencl")) {
                    throw new IllegalArgumentException("--backend: cpu and/or opencl, got '" + b + "'");
                }
            }
            if (model == null && !shape.equals("llada-110m") && !shape.equals("llada-small-v32k")) {
                throw new IllegalArgumentException("--shape: llada-110m or llada-small-v32k, got '" + shape
                        + "' (or pass --model PATH)");
            }
            return new Options(shape, model, backends, requests, gen, block, steps, prompts, device, dtype, threads,
                    cpuMax, seed, parallelApply, profile, summaries, tensorCores);
        }

        private static int positive(String flag, String v) {
            int n = Integer.parseInt(v.strip());
            if (n < 1) {
                throw new IllegalArgumentException(flag + ": must be >= 1, got " + n);
            }
            return n;
        }
    }

    /** Rounds every matrix (not the norms, nor an untied embedding: the device keeps them f32) to f16 values in place. */
    static void roundMatricesToF16(io.stepstream.engine.dlm.DiffusionWeights w) {
        List<float[]> matrices = new ArrayList<>();
        for (float[][] kind : List.of(w.wq(), w.wk(), w.wv(), w.wo(), w.gate(), w.up(), w.down())) {
            matrices.addAll(Arrays.asList(kind));
        }
        // a classifier tied to the embedding rounds the embedding too, on both backends alike (the device copies it)
        matrices.add(w.lmHead());
        matrices.parallelStream().forEach(m -> {
            for (int i = 0; i < m.length; i++) {
                m[i] = Float.float16ToFloat(Float.floatToFloat16(m[i]));
            }
        });
    }

    /** One backend's result for N requests. */
    record Row(String backend, int requests, double seconds, StepTimes times, long tokens, int sameAsAlone,
               int[][] generated) {
        int forwards() {
            return times.forwards();
        }

        double tokensPerSecond() {
            return tokens / seconds;
        }
    }

    public static void main(String[] args) throws Exception {
        Options o = Options.parse(args);
        long t0 = System.nanoTime();
        DiffusionModel cpu = o.model() != null
                ? Models.loadDiffusion(o.model(), ModelOptions.defaults().withComputeThreads(o.threads()))
                : o.shape().equals("llada-110m")
                ? SparseDBench.syntheticModel(new SplittableRandom(o.seed()), 768, 2048, 12, 12, 12, 32000,
                        256, o.threads())
                : SparseDBench.syntheticModel(new SplittableRandom(o.seed()), 128, 256, 2, 4, 4, 32000, 256,
                        o.threads());
        String modelName = o.model() == null ? "synthetic " + o.shape() : cpu.name();
        System.out.printf(Locale.ROOT, "model %s: dim %d, %d layers, %d heads, hidden %d, vocab %d, context %d; built"
                        + " in %.1f s%n", modelName, cpu.config().dim(), cpu.config().nLayers(), cpu.config().nHeads(),
                cpu.config().hiddenDim(), cpu.vocabSize(), cpu.contextLength(), (System.nanoTime() - t0) / 1e9);
        if (o.dtype() == TensorType.F16) {
            // The CPU forward reads these arrays: rounded once, it multiplies the very matrices the device holds as
            // F16, so "tokens as cpu" stays comparable (the device's tensor cores also round activations to f16).
            roundMatricesToF16(cpu.weights());
            System.out.println("f16: the cpu runs the same f16-rounded matrices as the device");
        }
        DiffusionParams params = new DiffusionParams(o.gen(), o.block(), o.steps(), 0.0, Remasking.LOW_CONFIDENCE,
                null, 0L);
        List<int[]> prompts = prompts(cpu, o);
        System.out.printf(Locale.ROOT, "generation: gen %d, block %d, steps %d, greedy; %d distinct prompts of %s"
                        + " tokens; cpu threads %d; apply %s; summaries %s%n", o.gen(), o.block(), o.steps(),
                prompts.size(), prompts.stream().map(p -> Integer.toString(p.length)).toList(), o.threads(),
                o.parallelApply() ? "parallel (" + RangeExecutor.machine().parallelism() + " threads)" : "serial",
                o.summaries());
        RangeExecutor apply = o.parallelApply() ? RangeExecutor.machine() : RangeExecutor.sameThread();
        List<Row> rows = new ArrayList<>();
        OpenClDiffusionModel device = null;
        boolean mismatch = false;
        try {
            for (String backend : o.runs()) {
                DiffusionBackendModel m;
                if (backend.startsWith("opencl")) {
                    long d0 = System.nanoTime();
                    var dev = OpenClDevices.select(o.device());
                    String run = backend.startsWith("opencl tc=") ? backend.substring("opencl tc=".length()) : null;
                    // DeviceCanvases reads the mode and the run's options from system properties
                    java.util.Map<String, String> props = new java.util.LinkedHashMap<>();
                    if (run != null) {
                        String[] parts = run.split(":");
                        props.put(TensorCores.PROPERTY, parts[0]);
                        for (int i = 1; i < parts.length; i++) {
                            String[] kv = runProperty(parts[i], run);
                            props.put(kv[0], kv[1]);
                        }
                    }
                    java.util.Map<String, String> before = new java.util.HashMap<>();
                    props.forEach((k, val) -> {
                        before.put(k, System.getProperty(k));
                        System.setProperty(k, val);
                    });
                    try {
                        device = new OpenClDiffusionModel(cpu, dev, 0, o.dtype());
                    } finally {
                        before.forEach(DlmBatchBench::restore);
                    }
                    m = device;
                    System.out.printf(Locale.ROOT, "opencl: %s, %s weights, tensor cores %s, uploaded in %.1f s;"
                                    + " row summaries on the device: %s%n", OpenClDevices.describe(dev), o.dtype(),
                            device.tensorCores(), (System.nanoTime() - d0) / 1e9,
                            device.summarizesOnDevice() ? "yes" : "no");
                } else {
                    m = DiffusionBackendModel.onCpu(cpu);
                }
                // Each distinct prompt alone first: the reference tokens, and the warm-up.
                List<int[]> alone = new ArrayList<>();
                for (int[] p : prompts) {
                    alone.add(run(m, List.of(LladaGeneration.start(cpu, p, params)), apply, o.summaries()).getFirst()
                            .generated());
                }
                for (int n : o.requests()) {
                    if (backend.equals("cpu") && n > o.cpuMaxRequests()) {
                        System.out.printf("cpu N=%d: skipped (--cpu-max-requests %d)%n", n, o.cpuMaxRequests());
                        continue;
                    }
                    List<LladaGeneration> gens = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        gens.add(LladaGeneration.start(cpu, prompts.get(i % prompts.size()), params));
                    }
                    boolean profiled = o.profile() && m == device;
                    OpTimes opsBefore = null;
                    if (profiled) {
                        device.profile(true);
                        opsBefore = device.profiledOpTimes();
                    }
                    long a = System.nanoTime();
                    StepTimes times = runCounting(m, gens, apply, o.summaries());
                    double seconds = (System.nanoTime() - a) / 1e9;
                    if (profiled) {
                        device.profile(false);
                        System.out.printf(Locale.ROOT, "ops opencl N=%d (device ms per step): %s%n", n,
                                opsLine(device.profiledOpTimes().minus(opsBefore).msPerStep(times.forwards())));
                    }
                    int same = 0;
                    int[][] generated = new int[n][];
                    for (int i = 0; i < n; i++) {
                        generated[i] = gens.get(i).generated();
                        same += Arrays.equals(generated[i], alone.get(i % prompts.size())) ? 1 : 0;
                    }
                    mismatch |= same != n;
                    Row row = new Row(backend, n, seconds, times, (long) n * o.gen(), same, generated);
                    rows.add(row);
                    System.out.printf(Locale.ROOT, "%s N=%d: %.1f tok/s, %.1f ms/step (forward %.2f ms, apply %.2f"
                                    + " ms, %s), %d/%d as alone%n", backend, n, row.tokensPerSecond(),
                            1000 * seconds / times.forwards(), times.forwardMs(), times.applyMs(), times.path(), same,
                            n);
                }
            }
        } finally {
            if (device != null) {
                device.close(); // closes the CPU model too
            } else {
                cpu.close();
            }
        }
        System.out.println();
        System.out.println("| backend | path | N | tok/s | x N=1 | ms/step | forward ms | apply ms | same tokens as"
                + " alone | tokens as cpu |");
        System.out.println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (Row r : rows) {
            Row one = rows.stream().filter(x -> x.backend().equals(r.backend()) && x.requests() == 1).findFirst()
                    .orElse(null);
            Row onCpu = rows.stream().filter(x -> x.backend().equals("cpu") && x.requests() == r.requests())
                    .findFirst().orElse(null);
            String asCpu = "-";
            if (onCpu != null && onCpu != r && o.dtype() != TensorType.F32 && o.dtype() != TensorType.F16) {
                asCpu = "n/c (" + o.dtype().name().toLowerCase(Locale.ROOT) + " on the device, f32 on the cpu)";
            } else if (onCpu != null && onCpu != r) {
                long same = 0;
                for (int i = 0; i < r.requests(); i++) {
                    for (int j = 0; j < r.generated()[i].length; j++) {
                        same += r.generated()[i][j] == onCpu.generated()[i][j] ? 1 : 0;
                    }
                }
                asCpu = same + "/" + r.tokens();
            }
            System.out.printf(Locale.ROOT, "| %s | %s | %d | %.1f | %s | %.1f | %.2f | %.2f | %d/%d | %s |%n",
                    r.backend(), r.times().path(), r.requests(), r.tokensPerSecond(), one == null ? "-" : String.format(Locale.ROOT, "%.2fx",
                            r.tokensPerSecond() / one.tokensPerSecond()),
                    1000 * r.seconds() / r.forwards(), r.times().forwardMs(), r.times().applyMs(), r.sameAsAlone(),
                    r.requests(), asCpu);
        }
        if (device != null) {
            System.out.printf("opencl launches %d, failovers %d%n", device.deviceLaunches(), device.failovers());
        }
        if (mismatch) {
            System.out.println("MISMATCH: a batched request's tokens differ from its run alone");
            System.exit(1);
        }
    }

    private static String opsLine(java.util.Map<String, Double> ms) {
        double total = ms.values().stream().mapToDouble(Double::doubleValue).sum();
        return OpTimes.line(ms).strip() + String.format(Locale.ROOT, " (sum %.3f)", total);
    }

    /** Prompts of different lengths: text for a real model's tokenizer, random text ids for the synthetic one. */
    private static List<int[]> prompts(DiffusionModel m, Options o) {
        List<int[]> out = new ArrayList<>();
        String[] texts = {"Once upon a time", "The little dog ran to the park and", "Lily had a red ball. One day",
                "Tom and his mom went to the store to buy some food for dinner. They"};
        SplittableRandom r = new SplittableRandom(o.seed() + 7);
        for (int i = 0; i < o.prompts(); i++) {
            if (o.model() != null) {
                out.add(m.tokenizer().encode(texts[i % texts.length], true, false));
            } else {
                int[] p = new int[12 + 8 * i];
                p[0] = 1;
                for (int j = 1; j < p.length; j++) {
                    p[j] = 3 + r.nextInt(m.maskId() - 3);
                }
                out.add(p);
            }
        }
        return out;
    }

    /** Forwards run, and the nanoseconds spent in the forwards and in the applies after them. */
    record StepTimes(int forwards, long forwardNanos, long applyNanos, int summarySteps) {
        /** Which path the steps took: every one row summaries, none, or some. */
        String path() {
            return summarySteps == forwards ? "summaries" : summarySteps == 0 ? "logits" : "mixed";
        }

        double forwardMs() {
            return forwardNanos / 1e6 / Math.max(1, forwards);
        }

        double applyMs() {
            return applyNanos / 1e6 / Math.max(1, forwards);
        }
    }

    private static List<LladaGeneration> run(DiffusionBackendModel m, List<LladaGeneration> gens, RangeExecutor apply,
                                             boolean summaries) {
        runCounting(m, gens, apply, summaries);
        return gens;
    }

    /**
     * Every step one forward of all live canvases, then every live request's apply through
     * {@link DenoisingGeneration#applyAll} (the scheduler's path) on {@code apply}; returns the forwards run and the
     * time in each part. With {@code summaries}, a step whose generations all accept them on a backend that makes them
     * on its device runs the summary forward and each request's {@link DenoisingGeneration#applySummaries} instead.
     */
    private static StepTimes runCounting(DiffusionBackendModel m, List<LladaGeneration> gens, RangeExecutor apply,
                                         boolean summaries) {
        int forwards = 0;
        int summarySteps = 0;
        RowSummaries[] rows = new RowSummaries[gens.size()];
        long forwardNanos = 0;
        long applyNanos = 0;
        List<LladaGeneration> live = new ArrayList<>(gens);
        List<DenoiseInput> inputs = new ArrayList<>();
        float[][] logits = new float[gens.size()][];
        while (true) {
            live.removeIf(LladaGeneration::done);
            if (live.isEmpty()) {
                return new StepTimes(forwards, forwardNanos, applyNanos, summarySteps);
            }
            inputs.clear();
            for (int i = 0; i < live.size(); i++) {
                LladaGeneration g = live.get(i);
                inputs.add(g.nextInput());
                if (logits[i] == null || logits[i].length < g.logitsLength()) {
                    logits[i] = new float[g.logitsLength()];
                }
            }
            boolean summary = summaries && m.summarizesOnDevice()
                    && live.stream().allMatch(LladaGeneration::acceptsSummaries);
            long t0 = System.nanoTime();
            long t1;
            if (summary) {
                for (int i = 0; i < live.size(); i++) {
                    if (rows[i] == null || rows[i].capacity() < inputs.get(i).logitsLength()) {
                        rows[i] = RowSummaries.ofRows(inputs.get(i).logitsLength());
                    }
                }
                m.forwardSummaries(inputs, logits, rows);
                t1 = System.nanoTime();
                for (int i = 0; i < live.size(); i++) {
                    live.get(i).applySummaries(rows[i]); // the remasking only: no vocabulary work left
                }
                summarySteps++;
            } else {
                m.forward(inputs, logits);
                t1 = System.nanoTime();
                DenoisingGeneration.applyAll(live, logits, apply);
            }
            long t2 = System.nanoTime();
            forwards++;
            forwardNanos += t1 - t0;
            applyNanos += t2 - t1;
        }
    }
}

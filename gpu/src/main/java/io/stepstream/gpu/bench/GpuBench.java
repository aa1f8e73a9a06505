package io.stepstream.gpu.bench;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.format.gguf.Quants;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.llama.LlamaLoader;
import io.stepstream.engine.llama2.Llama2Tokenizer;
import io.stepstream.engine.llama2.Llama2Weights;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.spi.BackendModel;
import io.stepstream.engine.spi.BackendOptions;
import io.stepstream.engine.tensor.TensorType;
import io.stepstream.gpu.AttentionSplit;
import io.stepstream.gpu.Dispatch;
import io.stepstream.gpu.Matmul;
import io.stepstream.gpu.TensorCores;
import io.stepstream.gpu.OpenClDevices;
import io.stepstream.gpu.OpenClLlama2Model;

import com.aparapi.device.Device;
import com.aparapi.device.OpenCLDevice;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Decode throughput of a synthetic llama2-family model (random weights, built in memory) on the OpenCL or the
 * CPU backend: for each batch size, a prefill of a short random prompt per sequence, warm-up steps, then timed
 * greedy decode steps. Reports tokens/s, ms/step, the weight bytes a step streams per second as a fraction of
 * the device's copy bandwidth (measured in the same run with a copy kernel), and where a step's time goes:
 * puts of the step inputs, the execute (kernels + launch overhead, the overhead measured with a step of empty
 * passes) and the get of the logits. Each OpenCL weight type runs once per dispatch ({@code --dispatch}, both by
 * default, side by side): Aparapi's execute, or the direct launcher (our OpenCL queue, no host wait between
 * passes), whose rows also carry the device time of the passes from OpenCL profiling events (kernel = sum of
 * pass durations, span = first pass start to last pass end, i.e. kernels plus the gaps between them), measured
 * on extra profiled steps after the timed ones; for the direct path "exec" is the host's enqueue time and "get"
 * includes the wait for the device. Under the direct dispatch the matmul passes run the hand-written matmul.cl
 * kernels or Aparapi's pass ({@code --matmul hand,aparapi} runs both side by side; default: the
 * {@code stepstream.opencl.matmul} property, else hand; the tile macros come from
 * {@code -Dstepstream.opencl.matmulTiles}). Also checks the device's prefill logits against the CPU forward on the
 * weights as the device stores them (F16/Q8_0 decoded by the engine's dequantizer). The greedy steps read back each
 * sequence's argmax made on the device ({@link BackendModel#forwardSummaries}, readback "summary") where the model
 * reduces rows on its device (direct dispatch, cl_khr_fp64), else every logits row with the argmax on the host
 * (readback "logits"); {@code --summaries false} forces the logits path, {@code both} measures each batch both ways.
 * F16 and Q8_0 hand matmuls, and F32 ones with {@code -Dstepstream.opencl.f32TensorCores=3xtf32} (3xTF32), may run
 * on tensor cores ({@code --tensor-cores auto,off} runs both side by side; default:
 * {@code -Dstepstream.opencl.tensorCores}, else auto: on for NVIDIA sm_80+); their rows say {@code hand+tc}.
 * {@code --kv-pool default} gives the OpenCL model the KV pool it sizes itself (0 blocks asked: full contexts up to what
 * the device's memory holds beside the weights) instead of the blocks the run needs, and prints its size.
 * {@code --prop NAME=A|B} builds each OpenCL model once per value of the system property NAME (set while the model is
 * built, then restored), side by side in one JVM; rows carry {@code [name=value]} after the matmul label, e.g.
 * {@code --prop stepstream.opencl.fuseNorm=auto|on|off} or {@code --prop stepstream.opencl.mvTier=auto|8}; the KV
 * cache's element type is one such property: {@code --prop stepstream.opencl.kvCache=f32|f16} (the model line prints
 * it with the pool's bytes and positions; the logits check then measures f16 KV against the CPU's f32 one). A value
 * {@code A&NAME2=B} also sets NAME2 to B for that model (more with further {@code &NAME3=C}), e.g.
 * {@code --prop "stepstream.opencl.persistentTail=off|auto|auto&stepstream.opencl.persistentTailShape=act=cg,upg=2"}.
 * {@code --attention-split auto,off} builds the direct/hand model once per split mode of decode attention
 * ({@link AttentionSplit}, the property {@code stepstream.opencl.attentionSplit}), side by side; those rows' matmul
 * label ends in {@code /att-auto}, {@code /att-off}, {@code /att-N}; modes run in the order given, repeats included
 * (the first model of a JVM is slower: "off,auto,off" shows the order effect). Long prompts: {@code --prompt 4096 --context 4352}
 * ({@code --context} overrides the shape's context length; the synthetic weights do not depend on it); the prefill
 * runs in steps of at most {@code --prefill-chunk} tokens (default 1024) over all sequences, and the logits check
 * prefills at most 256 tokens of the prompt. {@code --check-high-blocks N} repeats the check's prefill with its KV
 * blocks above the pool's first N (filler sequences take those first; the pool grows to fit): its logits must be
 * bitwise the first prefill's; with N blocks past 2^31 floats that proves the kernels' 64-bit KV offsets.
 *
 * <pre>
 * GpuBench [--shape stories260k|llama2-110m|llama-1.1b|llama2-7b] [--backend opencl|cpu] [--device SEL]
 *          [--dtype f32[,f16,q8_0]] [--dispatch aparapi|direct|both] [--matmul hand,aparapi] [--batches 1,8,32,64] [--steps 128] [--prompt 16] [--warmup 3]
 *          [--seed 1] [--copy-mib N] [--check true|false] [--summaries true|false|both] [--out gpu-bench.json] [--csv FILE]
 *          [--tensor-cores auto|off|emulate[,...]] [--prop NAME=VALUE[|VALUE...]] [--attention-split auto|off|N[,...]]
 *          [--context N] [--prefill-chunk 1024] [--check-high-blocks N] [--kv-pool needed|default]
 * </pre>
 */
public final class GpuBench {
    /** Parsed arguments. */
    record Options(String shape, String backend, String device, List<TensorType> dtypes, List<Dispatch> dispatches,
                   List<Matmul> matmuls, int[] batches, int steps, int prompt, int warmup, long seed, int copyMiB, boolean check, Path out,
                   Path csv, List<Boolean> summaries, List<TensorCores.Mode> tensorCores, String prop,
                   List<String> propValues, List<AttentionSplit> attentionSplits, int context, int prefillChunk,
                   int checkHighBlocks, boolean defaultKvPool) {
        /** The prompts' tokens of the logits check (a CPU forward; long prompts would take minutes there). */
        static final int MAX_CHECK_PROMPT = 256;

        static Options parse(String[] args) {
            String shape = "stories260k";
            String backend = "opencl";
            String device = "auto";
            List<TensorType> dtypes = List.of(TensorType.F32);
            List<Dispatch> dispatches = List.of(Dispatch.APARAPI, Dispatch.DIRECT);
            List<Matmul> matmuls = List.of(Matmul.fromSystemProperty());
            int[] batches = {1, 8, 32, 64};
            int steps = 128;
            int prompt = 16;
            int warmup = 3;
            long seed = 1;
            int copyMiB = -1;
            boolean check = true;
            Path out = Path.of("gpu-bench.json");
            Path csv = null;
            List<Boolean> summaries = List.of(true);
            List<TensorCores.Mode> tensorCores = List.of(TensorCores.fromSystemProperties().mode());
            String prop = null;
            List<String> propValues = java.util.Collections.singletonList(null);
            List<AttentionSplit> attentionSplits = List.of();
            int context = 0;
            int prefillChunk = 1024;
            int checkHighBlocks = 0;
            boolean defaultKvPool = false;
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(a + ": missing value");
                }
                String v = args[++i];
                switch (a) {
                    case "--shape" -> shape = v;
                    case "--backend" -> backend = v.toLowerCase(Locale.ROOT);
                    case "--device" -> device = v;
                    case "--dtype" -> dtypes = Arrays.stream(v.split(",")).map(BackendOptions::parseWeightType).toList();
                    case "--dispatch" -> dispatches = v.strip().equalsIgnoreCase("both")
                            ? List.of(Dispatch.APARAPI, Dispatch.DIRECT)
                            : Arrays.stream(v.split(",")).map(GpuBench::dispatch).distinct().toList();
                    case "--matmul" -> matmuls = v.strip().equalsIgnoreCase("both")
                            ? List.of(Matmul.HAND, Matmul.APARAPI)
                            : Arrays.stream(v.split(",")).map(Matmul::parse).distinct().toList();
                    case "--batches" -> batches = positiveInts("--batches", v);
                    case "--steps" -> steps = positive("--steps", v);
                    case "--prompt" -> prompt = positive("--prompt", v);
                    case "--warmup" -> warmup = nonNegative("--warmup", v);
                    case "--seed" -> seed = Long.parseLong(v);
                    case "--copy-mib" -> copyMiB = positive("--copy-mib", v);
                    case "--check" -> check = Boolean.parseBoolean(v);
                    case "--out" -> out = Path.of(v);
                    case "--csv" -> csv = Path.of(v);
                    case "--summaries" -> summaries = switch (v.strip().toLowerCase(Locale.ROOT)) {
                        case "true" -> List.of(true);
                        case "false" -> List.of(false);
                        case "both" -> List.of(false, true);
                        default -> throw new IllegalArgumentException("--summaries must be true, false or both, got '"
                                + v + "'");
                    };
                    case "--tensor-cores" -> tensorCores = Arrays.stream(v.split(",")).map(TensorCores::parseMode)
                            .distinct().toList();
                    case "--prop" -> {
                        String[] nv = v.split("=", 2);
                        if (nv.length != 2 || nv[0].isBlank() || nv[1].isBlank()) {
                            throw new IllegalArgumentException("--prop must be NAME=VALUE[|VALUE...], got '" + v + "'");
                        }
                        prop = nv[0].strip();
                        propValues = Arrays.stream(nv[1].split("\\|")).map(String::strip).toList();
                    }
                    // in the order given, repeats kept: the first model of a JVM runs slower (JIT, first kernels),
                    // so an A/B may want "off,auto,off"
                    case "--attention-split" -> attentionSplits = Arrays.stream(v.split(",")).map(
                            AttentionSplit::parse).toList();
                    case "--context" -> context = positive("--context", v);
                    case "--prefill-chunk" -> prefillChunk = positive("--prefill-chunk", v);
                    case "--check-high-blocks" -> checkHighBlocks = nonNegative("--check-high-blocks", v);
                    case "--kv-pool" -> defaultKvPool = switch (v.strip()) {
                        case "needed" -> false;
                        case "default" -> true;
                        default -> throw new IllegalArgumentException("--kv-pool: needed or default, got '" + v + "'");
                    };
                    default -> throw new IllegalArgumentException("unknown option " + a + " (see GpuBench's javadoc)");
                }
            }
            if (!backend.equals("opencl") && !backend.equals("cpu")) {
                throw new IllegalArgumentException("--backend must be opencl or cpu, got '" + backend + "'");
            }
            if (backend.equals("cpu") && dtypes.stream().anyMatch(t -> t != TensorType.F32)) {
                throw new IllegalArgumentException("--dtype: the cpu backend runs f32 only");
            }
            SyntheticLlama.shape(shape); // validates the name
            return new Options(shape, backend, device, dtypes, dispatches, matmuls, batches, steps, prompt, warmup, seed, copyMiB,
                    check, out, csv, summaries, tensorCores, prop, propValues, attentionSplits, context, prefillChunk,
                    checkHighBlocks, defaultKvPool);
        }

        private static int positive(String name, String v) {
            int n = Integer.parseInt(v);
            if (n < 1) {
                throw new IllegalArgumentException(name + " must be >= 1, got " + v);
            }
            return n;
        }

        private static int nonNegative(String name, String v) {
            int n = Integer.parseInt(v);
            if (n < 0) {
                throw new IllegalArgumentException(name + " must be >= 0, got " + v);
            }
            return n;
        }

        private static int[] positiveInts(String name, String v) {
            return Arrays.stream(v.split(",")).mapToInt(s -> positive(name, s.strip())).toArray();
        }
    }

    /**
     * One measured batch size of one weight type and dispatch. readback: what each greedy step brought back, "logits"
     * (every entry's row, argmax on the host) or "summary" (each row's argmax and confidence made on the device).
     * profiledKernelMsPerStep / spanMsPerStep: device time of the passes from OpenCL profiling (direct dispatch only,
     * NaN otherwise).
     */
    record Row(String backend, String dispatch, String matmul, String readback, String device, String shape, String dtype, int batch,
               int promptTokens, double prefillMs, int steps, double msPerStep, double tokensPerSecond,
               long weightBytesPerStep, double weightGBps, double fractionOfCopy, double putMsPerStep,
               double executeMsPerStep, double launchMsPerStep, double getMsPerStep, int passesPerStep,
               double profiledKernelMsPerStep, double spanMsPerStep, java.util.Map<String, Double> opMsPerStep) {
        /** This row with {@code suffix} appended to its matmul label (e.g. the --prop value it ran with). */
        Row labelled(String suffix) {
            return suffix.isEmpty() ? this : new Row(backend, dispatch, matmul + suffix, readback, device, shape, dtype,
                    batch, promptTokens, prefillMs, steps, msPerStep, tokensPerSecond, weightBytesPerStep, weightGBps,
                    fractionOfCopy, putMsPerStep, executeMsPerStep, launchMsPerStep, getMsPerStep, passesPerStep,
                    profiledKernelMsPerStep, spanMsPerStep, opMsPerStep);
        }

        /** Kernel time per step: profiled where measured, else the execute time less the empty-pass launch time. */
        Row withMatmul(String label) {
            return new Row(backend, dispatch, label, readback, device, shape, dtype, batch, promptTokens, prefillMs,
                    steps, msPerStep, tokensPerSecond, weightBytesPerStep, weightGBps, fractionOfCopy, putMsPerStep,
                    executeMsPerStep, launchMsPerStep, getMsPerStep, passesPerStep, profiledKernelMsPerStep,
                    spanMsPerStep, opMsPerStep);
        }

        double kernelMsPerStep() {
            return Double.isNaN(profiledKernelMsPerStep) ? Math.max(0, executeMsPerStep - launchMsPerStep)
                    : profiledKernelMsPerStep;
        }
    }

    /**
     * Runs {@code make} with the system property {@code name} set to {@code value} and restores it afterwards
     * ({@code value} null: the property as it is). The models read their settings from properties when they are
     * built: this is how --prop and --attention-split build one model per value side by side.
     */
    private static <T> T withProperty(String name, String value, java.util.function.Supplier<T> make) {
        if (value == null) {
            return make.get();
        }
        int and = value.indexOf('&');
        if (and >= 0) {
            // "A&NAME2=B": NAME=A and NAME2=B for this model (e.g. a switch and a shape of what it switches)
            String[] more = value.substring(and + 1).split("=", 2);
            if (more.length != 2 || more[0].isBlank()) {
                throw new IllegalArgumentException("--prop: '" + value.substring(and + 1) + "' after & is not NAME=VALUE");
            }
            return withProperty(name, value.substring(0, and), () -> withProperty(more[0].strip(), more[1], make));
        }
        String before = System.setProperty(name, value);
        try {
            return make.get();
        } finally {
            if (before == null) {
                System.clearProperty(name);
            } else {
                System.setProperty(name, before);
            }
        }
    }

    /**
     * The device's logits against the CPU forward on the same decoded weights: worst relative error and argmax
     * agreement over the prefill and the decode steps; {@code logitsBits} and {@code decodeBits}: hashes of the
     * prefill's and the decode steps' logit bit patterns, equal for bitwise equal runs (e.g. split or not); layers
     * that ran the persistent tail in it.
     */
    record Check(String dtype, String dispatch, String matmul, double relativeError, boolean sameArgmax, int logitsBits,
                 String highBlocks, int decodeBits, long tails) {
        Check labelled(String suffix) {
            return new Check(dtype, dispatch, matmul + suffix, relativeError, sameArgmax, logitsBits, highBlocks,
                    decodeBits, tails);
        }
    }

    private static Dispatch dispatch(String v) {
        return Dispatch.parse(v);
    }

    private GpuBench() {
    }

    public static void main(String[] args) throws IOException {
        Options o;
        try {
            o = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("GpuBench: " + e.getMessage());
            System.exit(2);
            return;
        }
        run(o);
    }

    /** Runs the benchmark, prints the table and writes the files; returns the rows. */
    static List<Row> run(Options o) throws IOException {
        ModelConfig c = SyntheticLlama.shape(o.shape());
        if (o.context() > 0) {
            c = new ModelConfig(c.dim(), c.hiddenDim(), c.nLayers(), c.nHeads(), c.nKvHeads(), c.vocabSize(),
                    o.context(), c.rmsNormEps(), c.ropeTheta(), c.sharedClassifier());
        }
        long t0 = System.nanoTime();
        Llama2Weights w = SyntheticLlama.weights(c, o.seed());
        Llama2Tokenizer tok = SyntheticLlama.tokenizer(c.vocabSize());
        System.out.printf(Locale.ROOT, "built %s (dim %d, hidden %d, %d layers, %d/%d heads, vocab %d) in %.1f s%n",
                o.shape(), c.dim(), c.hiddenDim(), c.nLayers(), c.nHeads(), c.nKvHeads(), c.vocabSize(),
                (System.nanoTime() - t0) / 1e9);
        int maxBatch = Arrays.stream(o.batches()).max().orElse(1);
        // The direct dispatch's rows add profiled steps after the timed ones.
        int positions = o.prompt() + o.warmup() + o.steps()
                + (o.dispatches().contains(Dispatch.DIRECT) ? profiledSteps(o) : 0);
        if (positions > c.contextLength()) {
            throw new IllegalArgumentException("--prompt + --warmup + --steps (+ " + profiledSteps(o)
                    + " profiled steps for the direct dispatch) = " + positions + " exceed the context "
                    + c.contextLength() + " of " + o.shape() + " (raise it with --context)");
        }
        // with --check-high-blocks, room for the check's sequence above the blocks it fills first
        int kvBlocks = Math.max(maxBatch * ((positions + 15) / 16), !o.check() || o.checkHighBlocks() == 0 ? 0
                : o.checkHighBlocks() + (Math.min(o.prompt(), Options.MAX_CHECK_PROMPT) + 15) / 16);
        OpenCLDevice device = o.backend().equals("opencl") ? OpenClDevices.select(o.device()) : null;
        String deviceName = device == null ? "cpu (" + ModelOptions.defaults().computeThreads() + " threads)"
                : OpenClDevices.describe(device);
        System.out.println("device: " + deviceName);
        double copyGBps = device == null ? hostCopyGBps(o.copyMiB() > 0 ? o.copyMiB() : 512)
                : deviceCopyGBps(device, o.copyMiB() > 0 ? o.copyMiB()
                : device.getType() == Device.TYPE.GPU ? 1024 : 64);
        System.out.printf(Locale.ROOT, "copy bandwidth: %.1f GB/s%n", copyGBps);

        List<Row> rows = new ArrayList<>();
        List<Check> checks = new ArrayList<>();
        List<Dispatch> dispatches = device == null ? java.util.Collections.singletonList(null) : o.dispatches();
        for (TensorType dtype : o.dtypes()) {
            for (Dispatch dispatch : dispatches) {
              // The matmul kernels matter only to the direct dispatch: Aparapi's runs once.
              for (Matmul matmul : dispatch == Dispatch.DIRECT ? o.matmuls() : List.of(Matmul.APARAPI)) {
               // Tensor cores matter only to F16, Q8_0 and F32 (3xTF32) hand matmuls: other combinations run once, with
               // the first mode.
               boolean tcMatters = device != null && (dtype == TensorType.F16 || dtype == TensorType.Q8_0
                       || dtype == TensorType.F32 && TensorCores.fromSystemProperties().f32())
                       && dispatch == Dispatch.DIRECT
                       && matmul == Matmul.HAND;
               for (TensorCores.Mode tcMode : tcMatters ? o.tensorCores() : o.tensorCores().subList(0, 1)) {
                for (String propValue : device == null ? o.propValues().subList(0, 1) : o.propValues()) {
                String propLabel = propValue == null ? "" : "[" + o.prop().substring(o.prop().lastIndexOf('.') + 1)
                        + "=" + propValue + "]";
               // The attention split matters only to the hand step (direct dispatch, hand matmuls); null: the property.
               boolean splitMatters = device != null && dispatch == Dispatch.DIRECT && matmul == Matmul.HAND
                       && !o.attentionSplits().isEmpty();
               for (AttentionSplit split : splitMatters ? o.attentionSplits()
                       : java.util.Collections.<AttentionSplit>singletonList(null)) {
                String splitLabel = split == null ? "" : "/att-" + split.label();
                // --prop (and --attention-split): system properties the model reads when it is built
                Model model = withProperty(o.prop(), propValue, () -> {
                    TensorCores tc = TensorCores.fromSystemProperties().withMode(tcMode);
                    return device == null
                            ? LlamaLoader.llama2c(o.shape(), w, tok, ModelOptions.defaults().withKvBlocks(kvBlocks))
                            : withProperty(AttentionSplit.PROPERTY, split == null ? null : split.label(),
                                    () -> new OpenClLlama2Model(o.shape(), w, tok, device,
                                            o.defaultKvPool() ? 0 : kvBlocks, dtype, dispatch, matmul, tc));
                });
                if (tcMatters && model instanceof OpenClLlama2Model gpu) {
                    System.out.println("tensor cores (" + tcMode.label() + "): " + gpu.tensorCores());
                }
                if (model instanceof OpenClLlama2Model gpu) {
                    System.out.println("persistent tail" + propLabel + ": " + gpu.persistentTail());
                    System.out.println("device buffers" + propLabel + ": weights " + gpu.weightSplitDescription()
                            + "; KV pool of " + gpu.kvBlockPool().maxBlocks() + " blocks"
                            + (o.defaultKvPool() ? " (the model's default)" : "") + ", " + gpu.kvCache().label() + " ("
                            + gpu.kvPoolBytes() + " bytes, "
                            + (long) gpu.kvBlockPool().maxBlocks() * KvBlockPool.BLOCK_POSITIONS + " positions) "
                            + (gpu.kvDeviceOnly() ? "device-only" : "mirrored in a Java array"));
                }
                try {
                    if (o.check() && model instanceof OpenClLlama2Model gpu) {
                        Check check = check(gpu, w, tok, dtype, o).labelled(splitLabel + propLabel);
                        checks.add(check);
                        System.out.printf(Locale.ROOT, "check %s %s/%s: prefill + %d decode steps' logits vs cpu: worst"
                                + " relative error %.2e, same argmax %s, logits bits %08x (prefill) %08x (decode),"
                                + " persistent tail on %d layers%s%n", check.dtype(), check.dispatch(), check.matmul(),
                                CHECK_DECODE_STEPS, check.relativeError(), check.sameArgmax(), check.logitsBits(),
                                check.decodeBits(), check.tails(), check.highBlocks());
                    }
                    for (int b : o.batches()) {
                        for (boolean summaries : o.summaries()) {
                            Row r = measure(model, o, dtype, b, copyGBps, deviceName, summaries).labelled(propLabel);
                            r = r.withMatmul(r.matmul() + splitLabel);
                            rows.add(r);
                            System.out.printf(Locale.ROOT, "%s %s/%s %s batch %d (%s): %.2f ms/step, %.0f tok/s%s%n",
                                    o.backend(), r.dispatch(), r.matmul(), r.dtype(), b, r.readback(), r.msPerStep(),
                                    r.tokensPerSecond(), model instanceof OpenClLlama2Model gpu
                                            ? ", attention split up to " + gpu.attentionMostChunks() + " chunks" : "");
                            if (!r.opMsPerStep().isEmpty()) {
                                // as it runs (the table comes at the end, which a time limit may not reach)
                                System.out.printf(Locale.ROOT, "  kernel %.3f ms/step, %s%n", r.kernelMsPerStep(),
                                        opLine(r));
                            }
                        }
                    }
                } finally {
                    model.close();
                }
                }
               }
               }
              }
            }
        }
        String table = table(rows, copyGBps);
        System.out.print(table);
        write(o, rows, checks, copyGBps, deviceName);
        return rows;
    }

    /**
     * {@code summaries}: decode through {@link BackendModel#forwardSummaries} when the model reduces rows on its
     * device (else, and when false, the logits path: every row read back, the argmax on the host).
     */
    private static Row measure(Model model, Options o, TensorType dtype, int batch, double copyGBps,
                               String deviceName, boolean summaries) {
        ModelConfig c = model.config();
        BackendModel summarizer = summaries && model instanceof BackendModel b && b.summarizesOnDevice() ? b : null;
        Greedy greedy = new Greedy(model, summarizer, batch);
        SplittableRandom random = new SplittableRandom(o.seed() + batch);
        List<KvCache> caches = new ArrayList<>();
        try {
            int[][] prompts = new int[batch][o.prompt()];
            for (int i = 0; i < batch; i++) {
                KvCache cache = model.newKvCache();
                caches.add(cache);
                prompts[i][0] = 1;
                for (int j = 1; j < o.prompt(); j++) {
                    prompts[i][j] = 3 + random.nextInt(c.vocabSize() - 3);
                }
            }
            // Steps of at most --prefill-chunk tokens: every sequence's next slice each step (all prompts have one
            // length, so the last step holds every sequence's last tokens and picks each one's first token).
            int slice = Math.max(1, o.prefillChunk() / batch);
            long p0 = System.nanoTime();
            for (int from = 0; from < o.prompt(); from += slice) {
                int count = Math.min(slice, o.prompt() - from);
                List<ForwardBatch.Entry> prefill = new ArrayList<>(batch);
                for (int i = 0; i < batch; i++) {
                    prefill.add(new ForwardBatch.Entry(caches.get(i), prompts[i], from, count));
                }
                greedy.step(new ForwardBatch(prefill));
            }
            double prefillMs = (System.nanoTime() - p0) / 1e6;
            for (int s = 0; s < o.warmup(); s++) {
                greedy.decode(caches);
            }
            OpenClLlama2Model gpu = model instanceof OpenClLlama2Model g ? g : null;
            OpenClLlama2Model.StepTimes before = gpu == null ? null : gpu.stepTimes();
            // The models built before this one (a --prop or --dtype list builds several in one JVM) left gigabytes of
            // weight arrays behind: collect them now, not in the middle of the timed steps (a 1-2 s pause there
            // showed as a batch-64 step of 16.5 instead of 9.3 ms).
            System.gc();
            long d0 = System.nanoTime();
            for (int s = 0; s < o.steps(); s++) {
                greedy.decode(caches);
            }
            long decodeNanos = System.nanoTime() - d0;
            // The split of the timed steps only (the profiled steps below are not part of it).
            OpenClLlama2Model.StepTimes timed = gpu == null ? null : gpu.stepTimes().minus(before);
            double msPerStep = decodeNanos / 1e6 / o.steps();
            double put = 0;
            double exec = msPerStep;
            double get = 0;
            double launch = 0;
            long weightBytes;
            int passes = 0;
            double profiledKernel = Double.NaN;
            double span = Double.NaN;
            java.util.Map<String, Double> opMs = java.util.Map.of();
            if (gpu != null && gpu.dispatch() == Dispatch.DIRECT) {
                // Extra steps with an event per pass: device time of the kernels and of the whole pass sequence.
                OpenClLlama2Model.ProfiledTimes before0 = gpu.profiledTimes();
                io.stepstream.gpu.OpTimes opsBefore = gpu.profiledOpTimes();
                int profiled = profiledSteps(o);
                gpu.profile(true);
                for (int s = 0; s < profiled; s++) {
                    greedy.decode(caches);
                }
                gpu.profile(false);
                OpenClLlama2Model.ProfiledTimes p = gpu.profiledTimes().minus(before0);
                profiledKernel = p.kernelNanos() / 1e6 / profiled;
                span = p.spanNanos() / 1e6 / profiled;
                opMs = gpu.profiledOpTimes().minus(opsBefore).msPerStep(profiled);
            }
            if (gpu != null) {
                OpenClLlama2Model.StepTimes t = timed;
                put = t.putNanos() / 1e6 / o.steps();
                exec = t.executeNanos() / 1e6 / o.steps();
                get = t.getNanos() / 1e6 / o.steps();
                int maxLen = caches.getFirst().length() + 1;
                long overhead = Long.MAX_VALUE;
                for (int i = 0; i < 5; i++) {
                    overhead = Math.min(overhead, gpu.measureLaunchOverhead(batch, batch, maxLen));
                }
                launch = overhead / 1e6;
                weightBytes = gpu.matrixBytesPerStep();
                passes = gpu.passesPerStep();
            } else {
                weightBytes = f32MatrixBytes(c);
            }
            double gbps = weightBytes / (msPerStep / 1e3) / 1e9;
            // "hand+tc": the hand matmuls ran on tensor cores (mma.sync or emulated; F32: 3xTF32)
            return new Row(o.backend(), gpu == null ? "-" : gpu.dispatch().label(),
                    gpu == null ? "-" : gpu.matmul().label() + (gpu.tensorCorePasses() > 0 ? "+tc" : ""),
                    summarizer == null ? "logits" : "summary", deviceName, o.shape(),
                    dtype.name().toLowerCase(Locale.ROOT), batch, o.prompt(), prefillMs, o.steps(), msPerStep,
                    batch * 1000.0 / msPerStep, weightBytes, gbps, gbps / copyGBps, put, exec, launch, get, passes,
                    profiledKernel, span, opMs);
        } finally {
            caches.forEach(KvCache::close);
        }
    }

    /** Steps timed with profiling events after the timed ones (direct dispatch only). */
    static int profiledSteps(Options o) {
        return Math.min(o.steps(), 16);
    }

    /**
     * Greedy steps of a batch: each step's forward and the pick of every entry's next token, either from the logits
     * read back (argmax on the host) or from the row summaries the device made ({@code summarizer} not null).
     */
    private static final class Greedy {
        private final Model model;
        private final BackendModel summarizer;
        private final float[][] logits;
        private final RowSummaries rows;
        private final int[] next;

        Greedy(Model model, BackendModel summarizer, int batch) {
            this.model = model;
            this.summarizer = summarizer;
            this.logits = new float[batch][model.config().vocabSize()];
            this.rows = RowSummaries.ofRows(batch);
            this.next = new int[batch];
        }

        /** Runs the step and picks each entry's next token. */
        void step(ForwardBatch batch) {
            int n = batch.entries().size();
            if (summarizer != null) {
                summarizer.forwardSummaries(batch, logits, rows);
                System.arraycopy(rows.argmax(), 0, next, 0, n);
            } else {
                model.forward(batch, logits);
                for (int i = 0; i < n; i++) {
                    next[i] = argmax(logits[i]);
                }
            }
        }

        /** One decode step of every sequence: the token picked last step goes in. */
        void decode(List<KvCache> caches) {
            List<ForwardBatch.Entry> entries = new ArrayList<>(caches.size());
            for (int i = 0; i < caches.size(); i++) {
                // The forward has read the tokens before the step writes the next ones into the same array.
                entries.add(new ForwardBatch.Entry(caches.get(i), next, i, 1));
            }
            step(new ForwardBatch(entries));
        }
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    private static long f32MatrixBytes(ModelConfig c) {
        long perLayer = 2L * c.dim() * c.dim() + 2L * c.kvDim() * c.dim() + 3L * c.hiddenDim() * c.dim();
        return (perLayer * c.nLayers() + (long) c.vocabSize() * c.dim()) * Float.BYTES;
    }

    /** One-token steps the logits check runs after its prefill. */
    static final int CHECK_DECODE_STEPS = 4;

    /**
     * Prefill of one prompt, then {@value #CHECK_DECODE_STEPS} one-token steps fed the CPU's argmax, on the device and
     * on the CPU model over the weights as the device decodes them: the worst relative error of the logits, whether
     * every argmax agrees. The decode steps run the batch-1 kernels (split attention, the persistent tail) that the
     * prefill does not.
     */
    private static Check check(OpenClLlama2Model gpu, Llama2Weights w, Llama2Tokenizer tok, TensorType dtype,
                               Options o) {
        Llama2Weights decoded = decodedAs(w, dtype);
        SplittableRandom random = new SplittableRandom(o.seed() ^ 0x5EED);
        int[] prompt = new int[Math.min(o.prompt(), Options.MAX_CHECK_PROMPT)];
        prompt[0] = 1;
        for (int j = 1; j < prompt.length; j++) {
            prompt[j] = 3 + random.nextInt(w.config().vocabSize() - 3);
        }
        float[][] g = new float[1][w.config().vocabSize()];
        float[][] ref = new float[1][w.config().vocabSize()];
        float[] prefill = null;
        double worst = 0;
        boolean sameArgmax = true;
        int decodeBits = 1;
        long tailsBefore = gpu.persistentTailLaunches();
        try (Model cpu = LlamaLoader.llama2c("check", decoded, tok, ModelOptions.defaults().withKvBlocks(
                (prompt.length + CHECK_DECODE_STEPS + 15) / 16)); KvCache gc = gpu.newKvCache();
             KvCache cc = cpu.newKvCache()) {
            int[] tokens = prompt;
            for (int step = 0; step <= CHECK_DECODE_STEPS; step++) {
                gpu.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(gc, tokens, 0, tokens.length))), g);
                cpu.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(cc, tokens, 0, tokens.length))), ref);
                double maxDiff = 0;
                double maxRef = 0;
                for (int i = 0; i < ref[0].length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(g[0][i] - ref[0][i]));
                    maxRef = Math.max(maxRef, Math.abs(ref[0][i]));
                }
                worst = Math.max(worst, maxDiff / maxRef);
                sameArgmax &= argmax(g[0]) == argmax(ref[0]);
                if (step == 0) {
                    prefill = g[0].clone();
                } else {
                    decodeBits = 31 * decodeBits + bitsHash(g[0]);
                }
                tokens = new int[]{argmax(ref[0])};
            }
        }
        long tails = gpu.persistentTailLaunches() - tailsBefore;
        String highBlocks = o.checkHighBlocks() > 0 ? highBlocksCheck(gpu, prompt, prefill, o.checkHighBlocks()) : "";
        // with tensor cores the activations are rounded to f16: expect ~1e-3 here rather than ~1e-6
        return new Check(dtype.name().toLowerCase(Locale.ROOT), gpu.dispatch().label(),
                gpu.matmul().label() + (gpu.tensorCorePasses() > 0 ? "+tc" : ""), worst, sameArgmax,
                bitsHash(prefill), highBlocks, decodeBits, tails);
    }

    /**
     * The check's prefill again with its sequence's KV blocks above the first {@code blocks} of the pool (taken by
     * filler sequences first, freed after): the same logits bit for bit wherever a sequence's blocks sit, also past
     * 2^31 floats into the pool (64-bit KV offsets). Returns the verdict for the check line.
     */
    private static String highBlocksCheck(OpenClLlama2Model gpu, int[] prompt, float[] low, int blocks) {
        List<KvCache> fillers = new ArrayList<>();
        float[][] high = new float[1][low.length];
        long firstFloat = (long) blocks * gpu.config().nLayers() * 2 * 16 * gpu.config().kvDim();
        try {
            int perCache = (gpu.config().contextLength() + 15) / 16;
            for (int filled = 0; filled < blocks; filled += perCache) {
                KvCache f = gpu.newKvCache();
                fillers.add(f);
                ((io.stepstream.engine.kv.PagedKvCache) f).reserve(Math.min(perCache, blocks - filled) * 16);
            }
            try (KvCache hc = gpu.newKvCache()) {
                gpu.forward(new ForwardBatch(List.of(new ForwardBatch.Entry(hc, prompt, 0, prompt.length))), high);
            }
        } finally {
            fillers.forEach(KvCache::close);
        }
        return String.format(Locale.ROOT, "; at KV blocks from %d (%s offset %d%s): bitwise the same %s", blocks,
                gpu.kvCache() == io.stepstream.gpu.KvCacheType.F32 ? "float" : gpu.kvCache().label() + " element",
                firstFloat, firstFloat > Integer.MAX_VALUE ? ", past 2^31" : "", bitsHash(high[0]) == bitsHash(low)
                        && Arrays.equals(high[0], low));
    }

    private static int bitsHash(float[] v) {
        int h = 1;
        for (float x : v) {
            h = 31 * h + Float.floatToRawIntBits(x);
        }
        return h;
    }

    /**
     * The weights with every matrix replaced by what {@code type} stores (F16 rounding, Q8_0 quantization in
     * 32-element blocks of each layer's matrix, as the device does when layer sizes are multiples of 32),
     * decoded by the engine's dequantizer.
     */
    public static Llama2Weights decodedAs(Llama2Weights w, TensorType type) {
        if (type == TensorType.F32) {
            return w;
        }
        return new Llama2Weights(w.config(), w.tokenEmbedding(), w.rmsAtt(), decoded(w.wq(), type),
                decoded(w.wk(), type), decoded(w.wv(), type), decoded(w.wo(), type), w.rmsFfn(), decoded(w.w1(), type),
                decoded(w.w2(), type), decoded(w.w3(), type), w.rmsFinal(), decoded(w.classifier(), type));
    }

    private static float[][] decoded(float[][] perLayer, TensorType type) {
        float[][] out = new float[perLayer.length][];
        java.util.stream.IntStream.range(0, perLayer.length).parallel().forEach(l ->
                out[l] = decoded(perLayer[l], type));
        return out;
    }

    private static float[] decoded(float[] a, TensorType type) {
        if (a.length % type.blockSize() != 0) {
            throw new IllegalArgumentException(a.length + " elements are not whole " + type + " blocks");
        }
        byte[] encoded = Quants.quantize(type, a);
        return Quants.dequantize(type, MemorySegment.ofArray(encoded));
    }

    /**
     * Read + write bandwidth of a float4 copy kernel between two device buffers, timed with profiling events
     * (MatmulProbe's; Aparapi's scalar copy timed from the host read about 2.4 TB/s on the H200 where this
     * reads 4.3 TB/s, the HBM limit the fractions should be against).
     */
    static double deviceCopyGBps(OpenCLDevice device, int mib) {
        return MatmulProbe.copyGBps(io.stepstream.gpu.cl.ClRuntime.byHandle(device.getDeviceId(), device.getName()),
                mib);
    }

    /** The CPU backend's ceiling: a large System.arraycopy on the host. */
    static double hostCopyGBps(int mib) {
        int n = (int) Math.min((long) mib << 18, Integer.MAX_VALUE / 8 * 2);
        float[] src = new float[n];
        float[] dst = new float[n];
        Arrays.fill(src, 1f);
        long best = Long.MAX_VALUE;
        for (int i = 0; i < 5; i++) {
            long t0 = System.nanoTime();
            System.arraycopy(src, 0, dst, 0, n);
            best = Math.min(best, System.nanoTime() - t0);
        }
        return 2.0 * n * Float.BYTES / best;
    }

    static String table(List<Row> rows, double copyGBps) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%n%-7s %-8s %-7s %-8s %-5s %5s %10s %10s %8s %7s %8s %8s %8s %8s %8s %8s %8s%n",
                "backend", "dispatch", "matmul", "readback", "dtype", "batch", "tok/s", "ms/step", "GB/s", "ofCopy", "kernel", "span",
                "launch", "put", "exec", "get", "vsAparapi"));
        for (Row r : rows) {
            Row base = rows.stream().filter(b -> b.dispatch().equals(Dispatch.APARAPI.label())
                    && b.dtype().equals(r.dtype()) && b.batch() == r.batch()).findFirst().orElse(null);
            sb.append(String.format(Locale.ROOT,
                    "%-7s %-8s %-7s %-8s %-5s %5d %10.1f %10.3f %8.1f %6.1f%% %8.3f %8s %8.3f %8.3f %8.3f %8.3f %8s%n",
                    r.backend(), r.dispatch(), r.matmul(), r.readback(), r.dtype(), r.batch(), r.tokensPerSecond(), r.msPerStep(),
                    r.weightGBps(), 100 * r.fractionOfCopy(), r.kernelMsPerStep(),
                    Double.isNaN(r.spanMsPerStep()) ? "-" : String.format(Locale.ROOT, "%.3f", r.spanMsPerStep()),
                    r.launchMsPerStep(), r.putMsPerStep(), r.executeMsPerStep(), r.getMsPerStep(),
                    base == null ? "-" : String.format(Locale.ROOT, "%.2fx", base.msPerStep() / r.msPerStep())));
        }
        for (Row r : rows) {
            if (!r.opMsPerStep().isEmpty()) {
                sb.append(opLine(r)).append('\n');
            }
        }
        sb.append(String.format(Locale.ROOT, "(copy bandwidth %.1f GB/s; ms per step. aparapi: kernel = exec - launch;"
                + " direct: kernel and span from profiling events, exec = host enqueue, get = wait + logits"
                + " (readback summary: wait + the summary kernel + 12 bytes a sequence);"
                + " launch = a step of empty passes)%n", copyGBps));
        return sb.toString();
    }

    /** The profiled kernel ms per step by op, one compact line: "ops direct/hand/summary f32 b1: qkv 0.412 ...". */
    static String opLine(Row r) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "ops %s/%s/%s %s b%d:", r.dispatch(),
                r.matmul(), r.readback(), r.dtype(), r.batch()));
        sb.append(io.stepstream.gpu.OpTimes.line(r.opMsPerStep()));
        return sb.toString();
    }

    private static String opJson(java.util.Map<String, Double> ops) {
        StringBuilder j = new StringBuilder("{");
        ops.forEach((op, ms) -> j.append(j.length() == 1 ? "" : ", ").append(q(op)).append(": ").append(num(ms)));
        return j.append('}').toString();
    }

    private static void write(Options o, List<Row> rows, List<Check> checks, double copyGBps, String device)
            throws IOException {
        StringBuilder j = new StringBuilder();
        j.append("{\n  \"shape\": ").append(q(o.shape())).append(",\n  \"backend\": ").append(q(o.backend()))
                .append(",\n  \"device\": ").append(q(device))
                .append(",\n  \"copyGBps\": ").append(num(copyGBps)).append(",\n  \"checks\": [");
        for (int i = 0; i < checks.size(); i++) {
            Check c = checks.get(i);
            j.append(i == 0 ? "\n" : ",\n").append("    {\"dtype\": ").append(q(c.dtype()))
                    .append(", \"dispatch\": ").append(q(c.dispatch()))
                    .append(", \"matmul\": ").append(q(c.matmul()))
                    .append(", \"relativeError\": ").append(num(c.relativeError()))
                    .append(", \"sameArgmax\": ").append(c.sameArgmax())
                    .append(", \"logitsBits\": \"").append(String.format(Locale.ROOT, "%08x", c.logitsBits())).append('"')
                    .append(", \"decodeBits\": \"").append(String.format(Locale.ROOT, "%08x", c.decodeBits())).append('"')
                    .append(", \"persistentTailLayers\": ").append(c.tails())
                    .append(c.highBlocks().isEmpty() ? "" : ", \"highBlocks\": " + q(c.highBlocks().substring(2)))
                    .append('}');
        }
        j.append("\n  ],\n  \"rows\": [");
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            j.append(i == 0 ? "\n" : ",\n").append("    {\"dtype\": ").append(q(r.dtype()))
                    .append(", \"dispatch\": ").append(q(r.dispatch()))
                    .append(", \"matmul\": ").append(q(r.matmul()))
                    .append(", \"readback\": ").append(q(r.readback()))
                    .append(", \"batch\": ").append(r.batch())
                    .append(", \"promptTokens\": ").append(r.promptTokens())
                    .append(", \"prefillMs\": ").append(num(r.prefillMs()))
                    .append(", \"steps\": ").append(r.steps())
                    .append(", \"msPerStep\": ").append(num(r.msPerStep()))
                    .append(", \"tokensPerSecond\": ").append(num(r.tokensPerSecond()))
                    .append(", \"weightBytesPerStep\": ").append(r.weightBytesPerStep())
                    .append(", \"weightGBps\": ").append(num(r.weightGBps()))
                    .append(", \"fractionOfCopy\": ").append(num(r.fractionOfCopy()))
                    .append(", \"kernelMsPerStep\": ").append(num(r.kernelMsPerStep()))
                    .append(", \"launchMsPerStep\": ").append(num(r.launchMsPerStep()))
                    .append(", \"putMsPerStep\": ").append(num(r.putMsPerStep()))
                    .append(", \"getMsPerStep\": ").append(num(r.getMsPerStep()))
                    .append(", \"passesPerStep\": ").append(r.passesPerStep())
                    .append(", \"spanMsPerStep\": ").append(num(r.spanMsPerStep()))
                    .append(", \"opMsPerStep\": ").append(opJson(r.opMsPerStep())).append('}');
        }
        j.append("\n  ]\n}\n");
        Files.writeString(o.out(), j);
        if (o.csv() != null) {
            StringBuilder c = new StringBuilder("backend,dispatch,matmul,dtype,batch,tokens_per_s,ms_per_step,weight_gbps,"
                    + "fraction_of_copy,kernel_ms,launch_ms,put_ms,get_ms,prefill_ms,exec_ms,span_ms,readback\n");
            for (Row r : rows) {
                c.append(String.join(",", r.backend(), r.dispatch(), r.matmul(), r.dtype(), Integer.toString(r.batch()),
                        num(r.tokensPerSecond()), num(r.msPerStep()), num(r.weightGBps()), num(r.fractionOfCopy()),
                        num(r.kernelMsPerStep()), num(r.launchMsPerStep()), num(r.putMsPerStep()),
                        num(r.getMsPerStep()), num(r.prefillMs()), num(r.executeMsPerStep()),
                        num(r.spanMsPerStep()), r.readback())).append('\n');
            }
            Files.writeString(o.csv(), c);
        }
    }

    private static String q(String s) {
        return '"' + s.replace("\\", "\\\\").replace("\"", "\\\"") + '"';
    }

    private static String num(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.6g", v) : "null";
    }
}

package io.stepstream.protocol.cli;

import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.bench.Bench;
import io.stepstream.engine.bench.BenchTable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/** {@code stepstream bench}: CPU tokens/s of our engine at several batch sizes, beside llama.cpp on the same file. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Tokens/s of the engine on a model file: for each batch size B, B sequences prefill a "
                + "prompt together and then decode together, one forward per step. Reports decode and overall "
                + "tokens/s, ms per step and the fraction of the memory-bandwidth limit (weight bytes per step / "
                + "step time against a triad measured with the same threads) and of the float32 FMA peak (matmul "
                + "operations per step / step time against an FMA loop on the same threads: the bound of batched "
                + "steps). With --llama-cpp, the same file in "
                + "llama.cpp b4916 (B parallel sequences in one batch per step, F32 KV cache; flash attention, which needs "
                + "an F16 KV cache in b4916, as a second run) and the ratio."})
final class BenchCommand implements Callable<Integer> {
    @ParentCommand
    StepStreamCli cli;

    @Option(names = "--model", paramLabel = "FILE", description = "Model file (GGUF for --llama-cpp); the CPU backend only.")
    Path model;

    @Option(names = "--backend", paramLabel = "cpu|opencl", defaultValue = "cpu",
            description = "cpu (default): the engine on --model beside llama.cpp. opencl: a synthetic llama2-family "
                    + "model of --shape (random weights, built in memory) on an OpenCL device, with the device's copy "
                    + "bandwidth and a time split (io.stepstream.gpu.bench.GpuBench).")
    String backend;

    @Option(names = "--shape", paramLabel = "stories260k|llama2-110m|llama-1.1b|llama2-7b",
            description = "opencl: the synthetic model's shape (default stories260k).")
    String shape;

    @Option(names = "--device", paramLabel = "SEL", description = "opencl: the device (auto, gpu, cpu, index, name).")
    String device;

    @Option(names = "--dtype", paramLabel = "f32[,f16,q8_0]", description = "opencl: weight encodings to run (default f32).")
    String dtype;

    @Option(names = "--batch", split = ",", paramLabel = "B[,B...]", defaultValue = "1,8,32",
            description = "Batch sizes: concurrent sequences (default 1,8,32).")
    List<Integer> batches;

    @Option(names = "--tokens", paramLabel = "N", defaultValue = "128", description = "Decode steps per run (default 128).")
    int tokens;

    @Option(names = "--prompt-tokens", paramLabel = "P", defaultValue = "16",
            description = "Prompt tokens per sequence (default 16).")
    int promptTokens;

    @Option(names = "--threads", paramLabel = "N", description = "Compute threads for both engines (default: cores, up to 8).")
    Integer threads;

    @Option(names = "--warmup-seconds", paramLabel = "S",
            description = "cpu: untimed warm-up runs before each timed run, repeated for at least S seconds, for both "
                    + "engines (default 2: a JIT-compiled engine is timed once its step is compiled).")
    Double warmupSeconds;

    @Option(names = "--repeat", paramLabel = "N", defaultValue = "1",
            description = "cpu: timed runs of each engine per batch size, alternating; each row reports the engines' "
                    + "median runs (default 1).")
    int repeat;

    @Option(names = "--llama-cpp", description = "Also run llama.cpp b4916 (needs the de.kherud:llama jar).")
    boolean llamaCpp;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write the report as JSON.")
    Path json;

    /** The OpenCL bench's main class; the gpu module is on the command line's class path at run time only. */
    static final String GPU_BENCH = "io.stepstream.gpu.bench.GpuBench";

    @Override
    public Integer call() {
        String b = backend == null ? "cpu" : backend.strip().toLowerCase(java.util.Locale.ROOT);
        if (b.equals("opencl")) {
            return gpuBench();
        }
        if (!b.equals("cpu")) {
            throw CliFailure.badInput("--backend: must be cpu or opencl, got '" + backend + "'");
        }
        if (model == null) {
            throw CliFailure.badInput("--model: required with --backend cpu (a GGUF, safetensors or llama2.c file)");
        }
        if (shape != null || device != null || dtype != null) {
            throw CliFailure.badInput("--shape/--device/--dtype: apply to --backend opencl only");
        }
        int n = threads != null ? threads : Math.clamp(Runtime.getRuntime().availableProcessors(), 1, 8);
        Bench.Options options;
        try {
            options = Bench.Options.of(model, batches, tokens, promptTokens, n, llamaCpp,
                    warmupSeconds != null ? warmupSeconds : Bench.DEFAULT_WARMUP_SECONDS, repeat);
        } catch (IllegalArgumentException e) {
            throw CliFailure.badInput(e.getMessage());
        }
        Bench.Report report;
        try {
            report = Bench.run(options, line -> cli.err().println("bench: " + line));
        } catch (ModelLoadException | IllegalArgumentException e) {
            throw CliFailure.badInput(CliFailure.oneLine(e.getMessage()));
        } catch (IllegalStateException e) {
            throw new CliFailure(CliFailure.FAILED, CliFailure.oneLine(e.getMessage()));
        }
        cli.out().print(BenchTable.text(report));
        if (json != null) {
            try {
                Files.writeString(json, BenchTable.json(report) + "\n");
            } catch (IOException e) {
                throw new CliFailure(CliFailure.FAILED, "cannot write " + json + ": " + e.getMessage());
            }
        }
        return 0;
    }

    /** Runs GpuBench with this command's flags in its spelling; its table goes to stdout. */
    private int gpuBench() {
        if (model != null) {
            throw CliFailure.badInput("--model: --backend opencl benchmarks a synthetic model built in memory; "
                    + "give --shape instead");
        }
        if (llamaCpp) {
            throw CliFailure.badInput("--llama-cpp: compares on the CPU backend only");
        }
        if (warmupSeconds != null) {
            throw CliFailure.badInput("--warmup-seconds: applies to --backend cpu only");
        }
        if (repeat != 1) {
            throw CliFailure.badInput("--repeat: applies to --backend cpu only");
        }
        List<String> args = new java.util.ArrayList<>(List.of("--backend", "opencl",
                "--shape", shape == null ? "stories260k" : shape,
                "--batches", String.join(",", batches.stream().map(String::valueOf).toList()),
                "--steps", String.valueOf(tokens), "--prompt", String.valueOf(promptTokens)));
        if (device != null) {
            args.addAll(List.of("--device", device));
        }
        if (dtype != null) {
            args.addAll(List.of("--dtype", dtype));
        }
        if (json != null) {
            args.addAll(List.of("--out", json.toString()));
        }
        java.lang.reflect.Method main;
        try {
            main = Class.forName(GPU_BENCH).getMethod("main", String[].class);
        } catch (ReflectiveOperationException | LinkageError e) {
            throw new CliFailure(CliFailure.FAILED, "--backend opencl: the stepstream-gpu jar is not on the class path ("
                    + e + ")");
        }
        try {
            main.invoke(null, (Object) args.toArray(String[]::new));
        } catch (java.lang.reflect.InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IllegalArgumentException) {
                throw CliFailure.badInput(CliFailure.oneLine(cause.getMessage()));
            }
            throw new CliFailure(CliFailure.FAILED, "bench --backend opencl failed: "
                    + CliFailure.oneLine(String.valueOf(cause)));
        } catch (IllegalAccessException e) {
            throw new CliFailure(CliFailure.FAILED, "cannot run " + GPU_BENCH + ": " + e);
        }
        return 0;
    }
}

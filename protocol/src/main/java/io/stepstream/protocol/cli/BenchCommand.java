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
                + "step time against a triad measured with the same threads). With --llama-cpp, the same file in "
                + "llama.cpp b4916 (B parallel sequences in one batch per step, F32 KV cache; flash attention, which needs "
                + "an F16 KV cache in b4916, as a second run) and the ratio."})
final class BenchCommand implements Callable<Integer> {
    @ParentCommand
    StepStreamCli cli;

    @Option(names = "--model", required = true, paramLabel = "FILE", description = "Model file (GGUF for --llama-cpp).")
    Path model;

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

    @Option(names = "--llama-cpp", description = "Also run llama.cpp b4916 (needs the de.kherud:llama jar).")
    boolean llamaCpp;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write the report as JSON.")
    Path json;

    @Override
    public Integer call() {
        int n = threads != null ? threads : Math.clamp(Runtime.getRuntime().availableProcessors(), 1, 8);
        Bench.Options options;
        try {
            options = Bench.Options.of(model, batches, tokens, promptTokens, n, llamaCpp);
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
}

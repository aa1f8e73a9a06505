package io.stepstream.loadtest;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.stepstream.protocol.cli.DiffusionFlags;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code stepstream loadtest}: measures serving metrics (TTFT, ITL, TPOT, E2E, throughput, goodput) at the
 * client against a running StepStream gRPC server, prints a table and writes the same as JSON.
 */
@Command(name = "loadtest", mixinStandardHelpOptions = true, sortOptions = false,
        description = {
                "Sends generate requests to a StepStream server and reports client-side serving metrics, as vLLM's",
                "serving benchmark defines them. Exit code 0 when at least one request succeeded, 1 when none did,",
                "2 on bad arguments."})
public final class LoadTestMain implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--server", required = true, paramLabel = "HOST:PORT", description = "The gRPC server.")
    String server;

    @Option(names = "--model", paramLabel = "M", defaultValue = "", description = "Model name (default: the server's default).")
    String model;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Load load;

    static final class Load {
        @Option(names = "--concurrency", paramLabel = "N", description = "Keep N streams in flight (closed loop).")
        Integer concurrency;

        @Option(names = "--rate", paramLabel = "R", converter = RateConverter.class,
                description = "Send R requests/s on average (open loop, gamma arrivals); 'inf' sends all at once.")
        Double rate;
    }

    @Option(names = "--burstiness", paramLabel = "B", defaultValue = "1.0",
            description = "Shape of the gamma arrivals with --rate: 1 = Poisson, < 1 burstier, > 1 more even (default ${DEFAULT-VALUE}).")
    double burstiness;

    @Option(names = "--requests", paramLabel = "M", defaultValue = "64", description = "Measured requests (default ${DEFAULT-VALUE}).")
    int requests;

    @Option(names = "--max-tokens", paramLabel = "N", defaultValue = "64",
            description = "max_tokens per request (default ${DEFAULT-VALUE}); not sent with diffusion options.")
    int maxTokens;

    @Option(names = "--temperature", paramLabel = "T", defaultValue = "0", description = "Sampling temperature (default ${DEFAULT-VALUE}, greedy).")
    float temperature;

    /** Any of these sends them all with each request, and no max_tokens. */
    @Mixin
    DiffusionFlags diffusionFlags = new DiffusionFlags();

    @Option(names = "--seed", paramLabel = "S",
            description = "Seeds the arrival process; request i gets seed S + i. Default: random arrivals, unseeded requests.")
    Long seed;

    @Option(names = "--prompts", paramLabel = "FILE", description = "One prompt per line (default: built-in story openings).")
    Path promptsFile;

    @Option(names = "--warmup", paramLabel = "K", defaultValue = "0", description = "Unmeasured requests sent first (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--json-out", paramLabel = "FILE", defaultValue = "load-report.json", description = "JSON report (default ${DEFAULT-VALUE}).")
    Path jsonOut;

    @Option(names = "--slo-ttft-ms", paramLabel = "MS", description = "TTFT objective for goodput.")
    Double sloTtftMs;

    @Option(names = "--slo-tpot-ms", paramLabel = "MS", description = "TPOT objective for goodput.")
    Double sloTpotMs;

    @Option(names = "--slo-e2e-ms", paramLabel = "MS", description = "E2E latency objective for goodput.")
    Double sloE2eMs;

    @Option(names = "--request-timeout-s", paramLabel = "S", defaultValue = "600",
            description = "Deadline of each request; a late one counts as DEADLINE_EXCEEDED (default ${DEFAULT-VALUE}).")
    double requestTimeoutSeconds;

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** Runs the command and returns its exit code instead of exiting (for bin/stepstream and tests). */
    public static int execute(String... args) {
        return commandLine().execute(args);
    }

    static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new LoadTestMain());
        // A bad value (a negative --requests, an unreadable --prompts file) is a usage error: say why, exit 2.
        cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
            if (e instanceof IllegalArgumentException || e instanceof java.io.UncheckedIOException) {
                cmd.getErr().println("loadtest: " + e.getMessage());
                return CommandLine.ExitCode.USAGE;
            }
            throw e;
        });
        return cli;
    }

    @Override
    public Integer call() throws Exception {
        LoadTestConfig config = new LoadTestConfig(server, model, load.concurrency, load.rate, burstiness, requests,
                maxTokens, temperature, seed, warmup, Math.round(requestTimeoutSeconds * 1e3),
                new SloTargets(sloTtftMs, sloTpotMs, sloE2eMs),
                diffusionFlags.given() ? LoadTestConfig.Diffusion.of(diffusionFlags.settings()) : null);
        List<String> prompts = promptsFile != null ? Prompts.fromFile(promptsFile) : Prompts.builtIn();
        SplittableRandom arrivalRandom = seed != null ? new SplittableRandom(seed) : new SplittableRandom();

        ManagedChannel channel = ManagedChannelBuilder.forTarget(server).usePlaintext().build();
        LoadReport report;
        try {
            report = new LoadRunner(channel, config, prompts, System::nanoTime, arrivalRandom).run();
        } finally {
            channel.shutdownNow();
            channel.awaitTermination(5, TimeUnit.SECONDS);
        }
        PrintWriter out = spec.commandLine().getOut();
        out.print(ReportTable.render(report));
        ReportJson.write(report, jsonOut);
        out.println("JSON report: " + jsonOut.toAbsolutePath());
        out.flush();
        return report.completed() > 0 ? CommandLine.ExitCode.OK : CommandLine.ExitCode.SOFTWARE;
    }

    /** Parses a request rate, accepting "inf" for "all at once". */
    static final class RateConverter implements CommandLine.ITypeConverter<Double> {
        @Override
        public Double convert(String value) {
            String v = value.trim().toLowerCase(java.util.Locale.ROOT);
            if (v.equals("inf") || v.equals("infinity")) {
                return Double.POSITIVE_INFINITY;
            }
            try {
                return Double.parseDouble(v);
            } catch (NumberFormatException e) {
                throw new CommandLine.TypeConversionException("'" + value + "' is not a number of requests/s or 'inf'");
            }
        }
    }
}

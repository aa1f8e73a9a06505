package io.stepstream.protocol.cli;

import io.stepstream.actors.ModelInfo;
import io.stepstream.actors.StepStreamConfig;
import io.stepstream.engine.sparse.PatternCache;
import io.stepstream.protocol.server.StepStreamServer;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/** {@code stepstream serve}: the engine in this process behind the gRPC server, until SIGTERM or SIGINT. */
@Command(name = "serve", mixinStandardHelpOptions = true, description = "Serve models over gRPC.")
final class ServeCommand implements Callable<Integer> {
    @ParentCommand
    StepStreamCli cli;

    @Option(names = "--host", description = "Address to bind (default: ${DEFAULT-VALUE}).", defaultValue = "0.0.0.0")
    String host;

    @Option(names = "--port", description = "Port to bind; 0 picks a free one (default: ${DEFAULT-VALUE}).",
            defaultValue = "50051")
    int port;

    @Option(names = "--model", paramLabel = "NAME|PATH",
            description = "Model to load (repeatable; default: stories260K and the diffusion LM tinystories-dlm)."
                    + " The first is the default model.")
    List<String> models = new ArrayList<>();

    @Mixin
    BackendMixin placement = new BackendMixin();

    @Option(names = "--pattern-cache-bytes", paramLabel = "BYTES",
            description = "Most SparseD pattern bytes each diffusion model holds at once (default: ${DEFAULT-VALUE},"
                    + " 256 MiB). Past it idle patterns are evicted, or a pattern larger than all of it is refused and"
                    + " its request runs dense; requests never fail for it. 0: every SparseD request runs dense.",
            defaultValue = "" + PatternCache.DEFAULT_CAP_BYTES)
    long patternCacheBytes;

    /** Both embedded models, the autoregressive one first so that it stays the default. */
    static final List<String> DEFAULT_MODELS = List.of(LocalEngine.DEFAULT_MODEL, "tinystories-dlm");

    /** Called with the running server once it listens (tests stop it from here); the JVM hook otherwise. */
    Consumer<StepStreamServer> onStarted = server -> {
    };

    @Override
    public Integer call() throws InterruptedException {
        if (port < 0 || port > 65535) {
            throw CliFailure.badInput("port: must be in 0..65535, got " + port);
        }
        if (patternCacheBytes < 0) {
            throw CliFailure.badInput("pattern-cache-bytes: must be >= 0, got " + patternCacheBytes);
        }
        LocalEngine engine = cli.startEngine(StepStreamConfig.defaults().withPatternCacheBytes(patternCacheBytes));
        StepStreamServer server;
        List<String> names = new ArrayList<>();
        try {
            for (String model : models.isEmpty() ? DEFAULT_MODELS : models) {
                ModelInfo loaded = Models.load(engine, model, placement,
                        note -> cli.err().println("stepstream: " + note));
                names.add(loaded.name());
            }
            server = StepStreamServer.builder(engine.service(), engine.system()).host(host).port(port).start();
        } catch (UncheckedIOException e) {
            engine.close();
            throw new CliFailure(CliFailure.FAILED, CliFailure.oneLine(e.getMessage()));
        } catch (RuntimeException e) {
            engine.close();
            throw e;
        }
        // Server first, so running calls end (cancelled in the engine) before the engine stops under them.
        Thread hook = new Thread(() -> {
            server.close();
            engine.close();
        }, "stepstream-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        var address = server.address();
        cli.out().println("stepstream: serving " + String.join(", ", names) + " on "
                + address.getHostString() + ":" + address.getPort());
        cli.out().flush();
        onStarted.accept(server);
        server.awaitTermination();
        // Stopped from inside the process (not by a signal): the hook has not run, so clean up here.
        boolean inShutdown;
        try {
            inShutdown = !Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            inShutdown = true;
        }
        if (!inShutdown) {
            server.close();
            engine.close();
        }
        return 0;
    }
}

package io.stepstream.protocol.cli;

import java.io.PrintStream;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code stepstream} command line: {@code serve}, {@code generate}, {@code models}.
 *
 * <p>Later commands plug in as picocli subcommands: add the class to {@code subcommands} below, or call
 * {@link #commandLine} and {@link CommandLine#addSubcommand} from another module's main. A subcommand reaches
 * the in-process engine and the output streams through its {@code @ParentCommand StepStreamCli}.
 *
 * <p>Errors are one line on stderr, never a stack trace; the exit code is 2 for bad input (a bad option, a
 * field the engine rejects, an unknown model, a model file that cannot be read) and 1 for other failures.
 */
@Command(name = "stepstream", mixinStandardHelpOptions = true, version = "stepstream 0.1.0",
        description = "A streaming inference engine for the JVM.",
        subcommands = {ServeCommand.class, GenerateCommand.class, ModelsCommand.class, ConvertCommand.class, SynthCommand.class, TokenizeCommand.class, BenchCommand.class,
                CommandLine.HelpCommand.class})
public final class StepStreamCli implements Runnable {
    private final LocalEngine.Factory engines;
    private final PrintStream out;
    private final PrintStream err;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public StepStreamCli(LocalEngine.Factory engines, PrintStream out, PrintStream err) {
        this.engines = engines;
        this.out = out;
        this.err = err;
    }

    /** gRPC logs through java.util.logging; only its severe messages reach the user's terminal. */
    private static final java.util.logging.Logger GRPC_LOG = java.util.logging.Logger.getLogger("io.grpc");

    public static void main(String[] args) {
        if (System.getProperty("logback.configurationFile") == null) {
            System.setProperty("logback.configurationFile", "stepstream-cli-logback.xml");
        }
        // Initialize logging on this thread before actor and Netty threads race to do it (SLF4J warns then).
        org.slf4j.LoggerFactory.getILoggerFactory();
        GRPC_LOG.setLevel(java.util.logging.Level.SEVERE);
        System.exit(execute(embeddedEngine(), System.out, System.err, args));
    }

    /** The engine {@link #main} runs in process: StepStream on an actor system of its own. */
    public static LocalEngine.Factory embeddedEngine() {
        return new LocalEngine.Factory() {
            @Override
            public LocalEngine start() {
                return EmbeddedEngine.start();
            }

            @Override
            public LocalEngine start(io.stepstream.actors.StepStreamConfig config) {
                return EmbeddedEngine.start(config);
            }
        };
    }

    /** Runs one command line and returns its exit code (what tests and other mains call). */
    public static int execute(LocalEngine.Factory engines, PrintStream out, PrintStream err, String... args) {
        return commandLine(engines, out, err).execute(args);
    }

    /** The configured picocli command line, for a main that adds subcommands. */
    public static CommandLine commandLine(LocalEngine.Factory engines, PrintStream out, PrintStream err) {
        var cli = new CommandLine(new StepStreamCli(engines, out, err));
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        cli.setParameterExceptionHandler((e, args) -> {
            err.println(e.getCommandLine().getCommandName() + ": " + CliFailure.oneLine(e.getMessage())
                    + " (see --help)");
            return CliFailure.BAD_INPUT;
        });
        cli.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            if (e instanceof CliFailure failure) {
                err.println("stepstream: " + failure.getMessage());
                return failure.exitCode();
            }
            err.println("stepstream: failed: " + CliFailure.oneLine(
                    e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()));
            return CliFailure.FAILED;
        });
        return cli;
    }

    @Override
    public void run() {
        spec.commandLine().usage(out);
    }

    LocalEngine startEngine() {
        return engines.start();
    }

    LocalEngine startEngine(io.stepstream.actors.StepStreamConfig config) {
        return engines.start(config);
    }

    PrintStream out() {
        return out;
    }

    PrintStream err() {
        return err;
    }
}

package io.stepstream.protocol.cli;

import io.stepstream.protocol.server.StepStreamServer;
import java.util.function.Consumer;
import picocli.CommandLine;

/** Lets a test see the server that {@code serve} started, to stop it without a signal. */
public final class ServeHook {
    private ServeHook() {
    }

    public static void install(CommandLine stepstream, Consumer<StepStreamServer> onStarted) {
        ServeCommand serve = stepstream.getSubcommands().get("serve").getCommand();
        serve.onStarted = onStarted;
    }
}

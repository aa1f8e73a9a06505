package io.stepstream.protocol.cli;

import io.grpc.StatusRuntimeException;
import io.stepstream.protocol.client.StepStreamClient;
import io.stepstream.protocol.server.EventMapper;
import io.stepstream.protocol.v1.ModelCard;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/** {@code stepstream models}: the models a server has loaded, or what this process loads by default. */
@Command(name = "models", mixinStandardHelpOptions = true,
        description = "List models (* marks the default).")
final class ModelsCommand implements Callable<Integer> {
    @ParentCommand
    StepStreamCli cli;

    @Option(names = "--server", paramLabel = "HOST:PORT",
            description = "Ask this server; without it, list the embedded default model.")
    String server;

    @Option(names = "--json", description = "Print a JSON array.")
    boolean json;

    @Override
    public Integer call() {
        List<ModelCard> models;
        if (server != null) {
            try (var client = StepStreamClient.connect(server)) {
                models = client.listModels();
            } catch (IllegalArgumentException e) {
                throw CliFailure.badInput(e.getMessage());
            } catch (StatusRuntimeException e) {
                throw CliFailure.fromRemote(e, server);
            }
        } else {
            try (LocalEngine engine = cli.startEngine()) {
                Models.load(engine, LocalEngine.DEFAULT_MODEL);
                models = EventMapper.modelList(engine.service()).getModelsList();
            }
        }
        Models.print(models, json, cli.out());
        return 0;
    }
}

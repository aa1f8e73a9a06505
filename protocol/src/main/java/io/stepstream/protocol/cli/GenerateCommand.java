package io.stepstream.protocol.cli;

import io.grpc.StatusRuntimeException;
import io.stepstream.actors.ModelInfo;
import io.stepstream.protocol.client.StepStreamClient;
import io.stepstream.protocol.server.EventMapper;
import io.stepstream.protocol.server.RequestMapper;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.TokenIds;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Sink;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code stepstream generate}: one completion, in this process or on a server, streamed to stdout. A diffusion
 * model ({@code --model tinystories-dlm}) takes the {@code --gen-length}, {@code --block-length}, {@code --steps},
 * {@code --remasking}, {@code --threshold} and {@code --progress} options, and SparseD attention with
 * {@code --sparsed} ({@code --sparsed-skip}, {@code --sparsed-select}, {@code --sparsed-block}), and streams a block
 * at a time; the engine names a bad one (e.g. "diffusion.steps: ...", "diffusion.sparsed.select: ...").
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate text from a prompt, streaming it as it comes.")
final class GenerateCommand implements Callable<Integer> {
    @ParentCommand
    StepStreamCli cli;

    @Option(names = "--server", paramLabel = "HOST:PORT",
            description = "Generate on this server instead of in this process.")
    String server;

    @Option(names = "--model", paramLabel = "NAME|PATH",
            description = "Model: a name (on a server: one it has loaded) or, in this process, a model file. "
                    + "Default: stories260K in this process, the server's default model on a server.")
    String model;

    @Option(names = "--temperature", description = "0 is greedy (default: 1.0; 0 for a diffusion model).")
    Float temperature;

    @Option(names = "--top-k", paramLabel = "K", description = "Keep the K most likely tokens; 0 disables.",
            defaultValue = "0")
    int topK;

    @Option(names = "--top-p", paramLabel = "P", description = "Nucleus sampling mass in (0, 1] (default 1).")
    Float topP;

    @Option(names = "--seed", description = "Seed of the request's random stream (default: random).")
    Long seed;

    @Option(names = "--max-tokens", paramLabel = "N",
            description = "Most tokens to generate (default 256, capped by the context).")
    Integer maxTokens;

    @Option(names = "--logprobs", paramLabel = "N",
            description = "Report the N most likely tokens at each position (with --json).", defaultValue = "0")
    int logprobs;

    @Option(names = "--stop", paramLabel = "S", description = "Stop before this string (repeatable).")
    List<String> stop = new ArrayList<>();

    @Option(names = "--prompt-token-ids", paramLabel = "ID,ID,...", split = ",",
            description = "The prompt as token ids (used as given, no BOS added); replaces PROMPT.")
    int[] promptTokenIds;

    @Mixin
    DiffusionFlags diffusionFlags = new DiffusionFlags();

    @Option(names = "--alg", paramLabel = "origin|maskgit_plus|topk_margin|entropy",
            description = "Dream models: which masked positions each step fills (default origin).")
    String alg;

    @Option(names = "--alg-temp", paramLabel = "T",
            description = "Dream models: 0 fills the most confident positions; above 0 samples them (default 0).")
    Double algTemp;

    @Option(names = "--eps", paramLabel = "E", description = "Dream models: the last timestep in (0, 1) (default 1e-3).")
    Double eps;

    @Option(names = "--progress", description = "Diffusion models: report each denoising step (stderr; a JSON line"
            + " with --json).")
    boolean progress;

    @Mixin
    BackendMixin placement = new BackendMixin();

    @Option(names = "--json", description = "One JSON object per event per line.")
    boolean json;

    @Parameters(arity = "0..1", paramLabel = "PROMPT", defaultValue = "",
            description = "The prompt; \"\" generates from BOS alone.")
    String prompt;

    @Override
    public Integer call() {
        var printer = EventPrinter.of(cli.out(), cli.err(), json, logprobs > 0);
        var finishReason = new AtomicReference<String>();
        Consumer<GenerateEvent> sink = event -> {
            printer.print(event);
            if (event.hasFinal()) {
                finishReason.set(event.getFinal().getFinishReason());
            }
        };
        if (server != null) {
            if (!placement.isEngineDefault()) {
                throw CliFailure.badInput("--backend/--device/--dtype/--kv-cache: place models in the local engine; "
                        + "with --server the server's own placement applies (see `stepstream models --server`)");
            }
            generateRemote(sink);
        } else {
            generateLocal(sink);
        }
        if (finishReason.get() == null) {
            throw new CliFailure(CliFailure.FAILED, "failed: the generation ended without a final event");
        }
        if (finishReason.get().equals("error")) {
            throw new CliFailure(CliFailure.FAILED, "failed: the engine reported an error for this request");
        }
        return 0;
    }

    GenerateRequest wireRequest(String modelName) {
        var request = GenerateRequest.newBuilder()
                .setModel(modelName == null ? "" : modelName)
                .setTopK(topK)
                .setLogprobs(logprobs)
                .addAllStop(stop);
        if (promptTokenIds != null) {
            var ids = TokenIds.newBuilder();
            for (int id : promptTokenIds) {
                ids.addIds(id);
            }
            request.setPromptTokenIds(ids);
        } else {
            request.setPrompt(prompt);
        }
        if (temperature != null) {
            request.setTemperature(temperature);
        }
        if (topP != null) {
            request.setTopP(topP);
        }
        if (diffusionFlags.given() || progress || alg != null || algTemp != null || eps != null) {
            request.setDiffusion(diffusionFlags.settings(alg, algTemp, eps, progress).toWire());
        }
        if (seed != null) {
            request.setSeed(seed);
        }
        if (maxTokens != null) {
            if (maxTokens == 0) {
                // On the wire 0 means "the default"; on the command line it is a mistake worth naming.
                throw CliFailure.badInput("max_tokens: must be at least 1, got 0");
            }
            request.setMaxTokens(maxTokens);
        }
        return request.build();
    }

    private void generateRemote(Consumer<GenerateEvent> sink) {
        try (var client = StepStreamClient.connect(server); var events = client.generate(wireRequest(model))) {
            while (events.hasNext()) {
                sink.accept(events.next());
            }
        } catch (IllegalArgumentException e) {
            throw CliFailure.badInput(e.getMessage());
        } catch (StatusRuntimeException e) {
            throw CliFailure.fromRemote(e, server);
        }
    }

    private void generateLocal(Consumer<GenerateEvent> sink) {
        try (LocalEngine engine = cli.startEngine()) {
            ModelInfo loaded = Models.load(engine, model == null ? LocalEngine.DEFAULT_MODEL : model, placement, null);
            GenerateRequest wire = wireRequest(loaded.name());
            var service = engine.service();
            var request = new RequestMapper(service, new SecureRandom()::nextLong).toServiceRequest(wire);
            boolean withLogprobs = wire.getLogprobs() > 0;
            service.generate(request)
                    .map(event -> EventMapper.toWire(event, withLogprobs))
                    .runWith(Sink.foreach(sink::accept), Materializer.matFromSystem(engine.system()))
                    .toCompletableFuture()
                    .get();
        } catch (ExecutionException e) {
            throw CliFailure.fromLocal(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CliFailure(CliFailure.FAILED, "interrupted");
        } catch (CliFailure e) {
            throw e;
        } catch (RuntimeException e) {
            throw CliFailure.fromLocal(e);
        }
    }
}

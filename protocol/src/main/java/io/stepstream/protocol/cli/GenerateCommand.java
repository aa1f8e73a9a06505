package io.stepstream.protocol.cli;

import io.grpc.StatusRuntimeException;
import io.stepstream.actors.ModelInfo;
import io.stepstream.protocol.client.StepStreamClient;
import io.stepstream.protocol.server.EventMapper;
import io.stepstream.protocol.server.RequestMapper;
import io.stepstream.protocol.v1.DiffusionOptions;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.SparseDOptions;
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

    @Option(names = "--gen-length", paramLabel = "N",
            description = "Diffusion models: tokens to generate (default min(128, what the context leaves)).")
    Integer genLength;

    @Option(names = "--block-length", paramLabel = "N",
            description = "Diffusion models: fill and stream the canvas in blocks of N (default: one block).")
    Integer blockLength;

    @Option(names = "--steps", paramLabel = "N",
            description = "Diffusion models: forward passes in all, split over the blocks (default: gen length).")
    Integer steps;

    @Option(names = "--remasking", paramLabel = "low_confidence|random",
            description = "Diffusion models: which masked positions each step commits (default low_confidence).")
    String remasking;

    @Option(names = "--threshold", paramLabel = "T",
            description = "Diffusion models: Fast-dLLM decoding, commit every position with confidence >= T in (0, 1].")
    Double threshold;

    @Option(names = "--alg", paramLabel = "origin|maskgit_plus|topk_margin|entropy",
            description = "Dream models: which masked positions each step fills (default origin).")
    String alg;

    @Option(names = "--alg-temp", paramLabel = "T",
            description = "Dream models: 0 fills the most confident positions; above 0 samples them (default 0).")
    Double algTemp;

    @Option(names = "--eps", paramLabel = "E", description = "Dream models: the last timestep in (0, 1) (default 1e-3).")
    Double eps;

    @Option(names = "--dlm-cache", paramLabel = "none|prefix|dual",
            description = "Diffusion models: Fast-dLLM's approximate KV cache (default none).")
    String dlmCache;

    @Option(names = "--progress", description = "Diffusion models: report each denoising step (stderr; a JSON line"
            + " with --json).")
    boolean progress;

    @Mixin
    BackendMixin placement = new BackendMixin();

    @Option(names = "--sparsed", description = "Diffusion models: SparseD attention (dense early steps, then a cached"
            + " per-head block pattern); the --sparsed-* options imply it.")
    boolean sparsed;

    @Option(names = "--sparsed-skip", paramLabel = "F",
            description = "SparseD: fraction of steps that run dense before the pattern is built, in [0, 1] (default 0.2).")
    Double sparsedSkip;

    @Option(names = "--sparsed-select", paramLabel = "F",
            description = "SparseD: fraction of key blocks each query block keeps, in (0, 1] (default 0.3; 1 = dense).")
    Double sparsedSelect;

    @Option(names = "--sparsed-block", paramLabel = "N",
            description = "SparseD: tokens per block, 1 .. prompt + gen length (default 128 from 2048-token canvases,"
                    + " 32 below).")
    Integer sparsedBlock;

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
                throw CliFailure.badInput("--backend/--device/--dtype: place models in the local engine; with --server "
                        + "the server's own placement applies (see `stepstream models --server`)");
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
        boolean withSparseD = sparsed || sparsedSkip != null || sparsedSelect != null || sparsedBlock != null;
        if (genLength != null || blockLength != null || steps != null || remasking != null || threshold != null
                || progress || withSparseD || alg != null || algTemp != null || eps != null || dlmCache != null) {
            var diffusion = DiffusionOptions.newBuilder().setProgress(progress);
            if (genLength != null) {
                diffusion.setGenLength(genLength);
            }
            if (blockLength != null) {
                diffusion.setBlockLength(blockLength);
            }
            if (steps != null) {
                diffusion.setSteps(steps);
            }
            if (remasking != null) {
                diffusion.setRemasking(remasking);
            }
            if (threshold != null) {
                diffusion.setThreshold(threshold);
            }
            if (withSparseD) {
                // The server checks and names each value (diffusion.sparsed.skip, ...), as for the other options.
                var sparse = SparseDOptions.newBuilder();
                if (sparsedSkip != null) {
                    sparse.setSkip(sparsedSkip);
                }
                if (sparsedSelect != null) {
                    sparse.setSelect(sparsedSelect);
                }
                if (sparsedBlock != null) {
                    sparse.setBlockSize(sparsedBlock);
                }
                diffusion.setSparsed(sparse);
            }
            if (alg != null) {
                diffusion.setAlg(alg);
            }
            if (algTemp != null) {
                diffusion.setAlgTemp(algTemp);
            }
            if (eps != null) {
                diffusion.setEps(eps);
            }
            if (dlmCache != null) {
                diffusion.setCache(dlmCache);
            }
            request.setDiffusion(diffusion);
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

package io.stepstream.actors;

import io.stepstream.engine.Model;
import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.spi.BackendOptions;
import io.stepstream.engine.spi.Backends;
import io.stepstream.scheduler.Scheduler;
import io.stepstream.scheduler.SchedulerSnapshot;
import io.stepstream.scheduler.SequenceRequest;
import io.stepstream.scheduler.StepBatch;
import io.stepstream.scheduler.TokenEvent;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.apache.pekko.Done;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.stream.typed.javadsl.ActorSource;

/**
 * The embedded API: load models, then stream generations as Pekko Streams sources. One SchedulerActor per model
 * drives that model's step loop on its own compute thread; one RequestActor per running request feeds its
 * stream with backpressure. Works in its own ActorSystem ({@link #start}) or in the caller's ({@link #attach}).
 */
public final class StepStream implements GenerationService, AutoCloseable {
    private static final Duration SHUTDOWN_WAIT = Duration.ofSeconds(30);
    private static final Duration ASK_TIMEOUT = Duration.ofSeconds(10);

    private final ActorSystem<?> system;
    private final boolean ownsSystem;
    private final StepStreamConfig config;
    private final AtomicLong requestCounter = new AtomicLong();
    private final AtomicLong actorCounter = new AtomicLong();
    private volatile ModelRegistry registry = ModelRegistry.empty();
    private volatile boolean closed;

    private StepStream(ActorSystem<?> system, boolean ownsSystem, StepStreamConfig config) {
        this.system = system;
        this.ownsSystem = ownsSystem;
        this.config = config;
    }

    /** Starts its own ActorSystem "stepstream", terminated by {@link #close}. */
    public static StepStream start(StepStreamConfig c) {
        return new StepStream(ActorSystem.create(Behaviors.empty(), "stepstream"), true, c);
    }

    /** Runs inside the caller's ActorSystem; {@link #close} stops only this StepStream's actors. */
    public static StepStream attach(ActorSystem<?> system, StepStreamConfig c) {
        return new StepStream(system, false, c);
    }

    /**
     * Loads and serves a model by embedded name ("stories260K") or llama2.c checkpoint path, through
     * {@link Models#load(String)}; closed by {@link #close}. The first model loaded is the default.
     *
     * @throws io.stepstream.engine.ModelLoadException naming the file and the problem
     */
    public ModelInfo load(String nameOrPath) {
        Model model = Models.load(nameOrPath);
        try {
            return register(model, true);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /**
     * Loads a llama2.c model (embedded name or checkpoint path) onto a backend found through the engine's
     * BackendProvider SPI ("cpu", or "opencl" when stepstream-gpu is on the class path) and serves it.
     */
    public ModelInfo load(String nameOrPath, String backend, BackendOptions options) {
        Model model = Backends.load(backend, nameOrPath, options);
        try {
            return register(model, true);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /** Serves {@code model} (the caller keeps owning it: close does not close it). The first one is the default. */
    public ModelInfo load(Model model) {
        return register(model, false);
    }

    private synchronized ModelInfo register(Model model, boolean owned) {
        if (closed) {
            throw new IllegalStateException("StepStream is closed");
        }
        ModelInfo info = new ModelInfo(model.name(), "autoregressive", model.config().contextLength(),
                model.config().vocabSize(), Backends.backendOf(model), Backends.deviceOf(model));
        if (registry.models().containsKey(info.name())) {
            throw new IllegalArgumentException("model: '" + info.name() + "' is already loaded");
        }
        ExecutorService computeThread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "stepstream-compute-" + info.name());
            t.setDaemon(true);
            return t;
        });
        Scheduler scheduler = new Scheduler(model, config.schedulerConfig(), System::nanoTime);
        ActorRef<SchedulerActor.Command> actor = system.systemActorOf(
                SchedulerActor.create(scheduler, info.name(), computeThread),
                "stepstream-scheduler-" + actorName(info.name()) + "-" + actorCounter.incrementAndGet(),
                Props.empty());
        registry = registry.with(new ModelRegistry.Entry(info, model, owned, actor, computeThread));
        return info;
    }

    /** The actor system this StepStream runs in (its own after {@link #start}). */
    ActorSystem<?> system() {
        return system;
    }

    private static String actorName(String s) {
        return s.replaceAll("[^A-Za-z0-9_-]", "_");
    }

    @Override
    public List<ModelInfo> models() {
        return registry.entries().stream().map(ModelRegistry.Entry::info).toList();
    }

    @Override
    public String defaultModel() {
        return registry.defaultModel();
    }

    /**
     * Calls {@code listener} with each step planned for {@code model} from now on (on the scheduler actor's thread:
     * keep it quick, e.g. offer to a queue). Registered when this returns.
     */
    public void observeSteps(String model, Consumer<StepBatch> listener) {
        ModelRegistry.Entry entry = registry.find(model).orElseThrow(() -> new ModelNotFoundException(model));
        askNow(entry, (ActorRef<Done> replyTo) -> new SchedulerActor.ObserveSteps(listener, replyTo),
                "register a step listener for model " + model);
    }

    /** The model's scheduler state (waiting and running ids, steps run, KV bytes, per-request timings). */
    public SchedulerSnapshot snapshot(String model) {
        ModelRegistry.Entry entry = registry.find(model).orElseThrow(() -> new ModelNotFoundException(model));
        return askNow(entry, SchedulerActor.GetSnapshot::new, "read the scheduler state of model " + model);
    }

    private <T> T askNow(ModelRegistry.Entry entry,
                         java.util.function.Function<ActorRef<T>, SchedulerActor.Command> message, String what) {
        CompletionStage<T> reply = AskPattern.ask(entry.scheduler(), message::apply, ASK_TIMEOUT, system.scheduler());
        try {
            return reply.toCompletableFuture().get(ASK_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted: could not " + what, e);
        } catch (Exception e) {
            throw new IllegalStateException("could not " + what, e);
        }
    }

    @Override
    public Source<TokenEvent, NotUsed> generate(GenerateRequest request) {
        if (closed) {
            throw new IllegalStateException("StepStream is closed");
        }
        ModelRegistry.Entry entry = registry.find(request.model())
                .orElseThrow(() -> new ModelNotFoundException(request.model()));
        int[] prompt = validate(request, entry.model());
        ActorRef<SchedulerActor.Command> scheduler = entry.scheduler();
        // Each materialization is its own request, with its own RequestActor.
        return Source.fromMaterializer((materializer, attributes) -> {
            String id = "req-" + requestCounter.incrementAndGet();
            SequenceRequest sequence = new SequenceRequest(id, prompt, request.maxTokens(), request.sampling(),
                    request.stopStrings());
            ActorRef<RequestActor.Command> requestActor = system.systemActorOf(
                    RequestActor.create(sequence, scheduler), "stepstream-" + id, Props.empty());
            return ActorSource.<RequestActor.Emit, RequestActor.Command>actorRefWithBackpressure(
                            requestActor, RequestActor.Ack.INSTANCE, RequestActor::completion, RequestActor::failure)
                    .mapMaterializedValue(stream -> {
                        requestActor.tell(new RequestActor.StreamReady(stream));
                        return NotUsed.getInstance();
                    })
                    .map(e -> ((RequestActor.Next) e).event());
        }).mapMaterializedValue(m -> NotUsed.getInstance());
    }

    /** Runs a request to its end and collects the text, the streamed token ids and the usage. */
    public CompletionStage<GenerationResult> generateAll(GenerateRequest request) {
        return generate(request).runWith(Sink.seq(), system).thenApply(StepStream::collect);
    }

    private static GenerationResult collect(List<TokenEvent> events) {
        StringBuilder text = new StringBuilder();
        List<Integer> ids = new ArrayList<>();
        for (TokenEvent e : events) {
            switch (e) {
                case TokenEvent.Token t -> {
                    text.append(t.text());
                    ids.add(t.tokenId());
                }
                case TokenEvent.Finished f -> {
                    text.append(f.text());
                    return new GenerationResult(text.toString(), ids.stream().mapToInt(Integer::intValue).toArray(),
                            f.reason(), f.promptTokens(), f.completionTokens());
                }
            }
        }
        throw new IllegalStateException("stream ended without a Finished event");
    }

    /** The prompt as the model sees it; a front end sizes its default max_tokens with this (the gRPC server does). */
    @Override
    public OptionalInt promptTokenCount(GenerateRequest request) {
        return registry.find(request.model())
                .map(e -> OptionalInt.of(promptTokens(request, e.model().tokenizer()).length))
                .orElse(OptionalInt.empty());
    }

    /** The prompt's token ids, unchecked: empty text or ids mean BOS alone (as llama2.c does), text gets BOS. */
    private static int[] promptTokens(GenerateRequest r, Tokenizer tokenizer) {
        if (r.promptTokenIds() != null) {
            return r.promptTokenIds().length == 0 ? new int[] {tokenizer.bosId()} : r.promptTokenIds().clone();
        }
        return r.prompt().isEmpty() ? new int[] {tokenizer.bosId()} : tokenizer.encode(r.prompt(), true, false);
    }

    /** Checks every field (synchronously, before any actor sees it) and returns the prompt's token ids. */
    static int[] validate(GenerateRequest r, Model model) {
        SamplingParams s = r.sampling();
        if (!Float.isFinite(s.temperature()) || s.temperature() < 0f) {
            throw new InvalidRequestException("temperature", "must be a finite number >= 0, got " + s.temperature());
        }
        if (!(s.topP() > 0f && s.topP() <= 1f)) {
            throw new InvalidRequestException("top_p", "must be in (0, 1], got " + s.topP());
        }
        if (s.topK() < 0) {
            throw new InvalidRequestException("top_k", "must be >= 0, got " + s.topK());
        }
        if (s.logprobs() < 0 || s.logprobs() > 20) {
            throw new InvalidRequestException("logprobs", "must be in 0..20, got " + s.logprobs());
        }
        for (String stop : r.stopStrings()) {
            if (stop == null || stop.isEmpty()) {
                throw new InvalidRequestException("stop", "stop strings must not be empty");
            }
        }
        if (r.maxTokens() < 1) {
            throw new InvalidRequestException("max_tokens", "must be >= 1, got " + r.maxTokens());
        }
        Tokenizer tokenizer = model.tokenizer();
        int context = model.config().contextLength();
        int vocab = model.config().vocabSize();
        int[] prompt;
        String promptField;
        if (r.promptTokenIds() != null) {
            promptField = "prompt_token_ids";
            prompt = promptTokens(r, tokenizer);
            for (int i = 0; i < prompt.length; i++) {
                if (prompt[i] < 0 || prompt[i] >= vocab) {
                    throw new InvalidRequestException(promptField,
                            "token id " + prompt[i] + " at index " + i + " is outside [0, " + vocab + ")");
                }
            }
        } else {
            promptField = "prompt";
            prompt = promptTokens(r, tokenizer);
        }
        if (prompt.length >= context) {
            throw new InvalidRequestException(promptField, prompt.length + " prompt tokens leave no room to generate"
                    + " in the context of " + context + " tokens");
        }
        if ((long) prompt.length + r.maxTokens() > context) {
            throw new InvalidRequestException("max_tokens", prompt.length + " prompt tokens + " + r.maxTokens()
                    + " exceed the context of " + context + " tokens (at most " + (context - prompt.length) + ")");
        }
        return prompt;
    }

    /**
     * Ends every model's requests (ERROR), stops this StepStream's actors and compute threads, closes the models
     * it loaded by name, and terminates the ActorSystem if it started it.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        List<CompletableFuture<Void>> stopped = new ArrayList<>();
        for (ModelRegistry.Entry e : registry.entries()) {
            CompletableFuture<Void> f = new CompletableFuture<>();
            e.scheduler().tell(new SchedulerActor.Shutdown(f));
            stopped.add(f);
        }
        try {
            CompletableFuture.allOf(stopped.toArray(CompletableFuture[]::new))
                    .get(SHUTDOWN_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (TimeoutException | java.util.concurrent.ExecutionException e) {
            system.log().warn("scheduler actors did not stop in {}", SHUTDOWN_WAIT);
        }
        for (ModelRegistry.Entry e : registry.entries()) {
            e.computeThread().shutdownNow();
            if (e.owned()) {
                e.model().close();
            }
        }
        if (ownsSystem) {
            system.terminate();
            try {
                system.getWhenTerminated().toCompletableFuture().get(SHUTDOWN_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (Exception e) {
                system.log().warn("actor system did not terminate in {}", SHUTDOWN_WAIT);
            }
        }
    }
}

package io.stepstream.actors;

import io.stepstream.engine.Model;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.spi.BackendOptions;
import io.stepstream.engine.spi.Backends;
import io.stepstream.engine.spi.DiffusionBackendModel;
import io.stepstream.engine.dlm.DiffusionFamily;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DiffusionParams;
import io.stepstream.engine.dlm.DlmCacheMode;
import io.stepstream.engine.dlm.DreamAlgorithm;
import io.stepstream.engine.dlm.DreamParams;
import io.stepstream.engine.dlm.Remasking;
import io.stepstream.engine.format.safetensors.HfConfig;
import io.stepstream.engine.sparse.PatternCache;
import io.stepstream.engine.sparse.SparseDPolicy;
import io.stepstream.scheduler.DenoisingModel;
import io.stepstream.scheduler.DiffusionScheduler;
import io.stepstream.scheduler.PatternCacheStats;
import io.stepstream.scheduler.Scheduler;
import io.stepstream.scheduler.SchedulerSnapshot;
import io.stepstream.scheduler.SequenceRequest;
import io.stepstream.scheduler.StepBatch;
import io.stepstream.scheduler.StepScheduler;
import io.stepstream.scheduler.TokenEvent;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
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
 * drives that model's step loop on its own compute thread (a {@link Scheduler} for an autoregressive model, a
 * {@link DiffusionScheduler} for a diffusion LM); one RequestActor per running request feeds its stream with
 * backpressure. Works in its own ActorSystem ({@link #start}) or in the caller's ({@link #attach}).
 */
public final class StepStream implements GenerationService, AutoCloseable {
    private static final Duration SHUTDOWN_WAIT = Duration.ofSeconds(30);
    private static final Duration ASK_TIMEOUT = Duration.ofSeconds(10);

    private final ActorSystem<?> system;
    private final boolean ownsSystem;
    private final StepStreamConfig config;
    // JVM-wide, not per instance: several StepStreams may share the caller's ActorSystem, whose
    // system-actor names must be unique, and a closed one's actors may still be stopping.
    private static final AtomicLong requestCounter = new AtomicLong();
    private static final AtomicLong actorCounter = new AtomicLong();
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

    /** gen_length of a diffusion request that names none, before capping by the context (LLaDA's default). */
    public static final int DEFAULT_GEN_LENGTH = 128;

    /** SparseD's defaults for a request that asks for SparseD and leaves skip or select unset. */
    public static final double DEFAULT_SPARSED_SKIP = 0.2;
    public static final double DEFAULT_SPARSED_SELECT = 0.3;
    /** Canvases (prompt + gen_length) at least this long get SparseD blocks of 128; shorter ones blocks of 32. */
    public static final int SPARSED_LONG_CANVAS = 2048;

    /**
     * SparseD's block size for a canvas when the request names none: 128 (SparseD's choice for long prompts) from
     * {@link #SPARSED_LONG_CANVAS} tokens on, where that still makes at least 16 key blocks to choose from; 32 (its
     * choice for short ones) below; never more than the canvas itself.
     */
    public static int defaultSparseDBlockSize(int canvasLength) {
        return Math.min(canvasLength, canvasLength >= SPARSED_LONG_CANVAS ? 128 : 32);
    }

    /**
     * Loads and serves a model: an embedded autoregressive one ("stories260K") or llama2.c checkpoint path through
     * {@link Models#load(String)}, or a diffusion LM ("tinystories-dlm", or a folder whose config.json has a
     * mask_token_id) through {@link Models#loadDiffusion}, with a SparseD pattern cache of
     * {@link StepStreamConfig#patternCacheBytes()}; closed by {@link #close}. The first model loaded is the default.
     *
     * @throws io.stepstream.engine.ModelLoadException naming the file and the problem
     */
    public ModelInfo load(String nameOrPath) {
        // One read of a folder's config.json decides the kind and then builds the model.
        boolean embeddedDiffusion = nameOrPath != null && Models.embeddedDiffusion().contains(nameOrPath);
        HfConfig diffusionConfig = embeddedDiffusion ? null : diffusionConfig(nameOrPath);
        LoadedModel model = embeddedDiffusion || diffusionConfig != null
                ? new LoadedModel.Diffusion(Models.loadDiffusion(nameOrPath, diffusionConfig, ModelOptions.defaults(),
                        new PatternCache(config.patternCacheBytes())))
                : new LoadedModel.Autoregressive(Models.load(nameOrPath));
        try {
            return register(model, true);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /**
     * Loads a llama2.c model (embedded name or checkpoint path) or a diffusion LM (as {@link #load(String)} tells
     * them apart) onto a backend found through the engine's BackendProvider SPI ("cpu", or "opencl" when
     * stepstream-gpu is on the class path) and serves it. A backend that cannot run the diffusion family (Dream on
     * opencl) refuses with a message saying so.
     */
    public ModelInfo load(String nameOrPath, String backend, BackendOptions options) {
        // One read of a folder's config.json decides the kind and then builds the model.
        boolean embeddedDiffusion = nameOrPath != null && Models.embeddedDiffusion().contains(nameOrPath);
        HfConfig diffusionConfig = embeddedDiffusion ? null : diffusionConfig(nameOrPath);
        if (embeddedDiffusion || diffusionConfig != null) {
            return loadDiffusion(nameOrPath, diffusionConfig, backend, options);
        }
        Model model = Backends.load(backend, nameOrPath, options);
        try {
            return register(new LoadedModel.Autoregressive(model), true);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /**
     * A diffusion LM (embedded name, or a folder whose config.json was read as {@code config}) on the backend's
     * device through {@link Backends#loadDiffusion}: on "opencl" its dense denoising steps run on the device, SparseD
     * and Fast-dLLM-cache steps on its CPU model.
     */
    private ModelInfo loadDiffusion(String nameOrPath, HfConfig config, String backend, BackendOptions options) {
        DiffusionModel cpu = Models.loadDiffusion(nameOrPath, config, options.model(),
                new PatternCache(this.config.patternCacheBytes()));
        DiffusionBackendModel placed;
        try {
            placed = Backends.loadDiffusion(backend, cpu, options);
        } catch (RuntimeException e) {
            cpu.close();
            throw e;
        }
        try {
            return register(new LoadedModel.Diffusion(placed), true);
        } catch (RuntimeException e) {
            placed.close();
            throw e;
        }
    }

    /** A folder's config.json if it names a mask token (a diffusion checkpoint), else null. */
    private static HfConfig diffusionConfig(String nameOrPath) {
        if (nameOrPath == null || Models.embedded().contains(nameOrPath)) {
            return null;
        }
        Path config;
        try {
            config = Path.of(nameOrPath).resolve("config.json");
        } catch (InvalidPathException e) {
            return null;
        }
        if (!Files.isRegularFile(config)) {
            return null;
        }
        try {
            HfConfig c = HfConfig.read(config);
            return c.maskTokenId() != null ? c : null;
        } catch (RuntimeException unreadable) {
            return null;
        }
    }

    /**
     * An embedded diffusion model's name, or a folder whose config.json names a mask token (mask_token_id): a
     * Hugging Face style diffusion checkpoint. Any other folder (an autoregressive safetensors model, say) is left
     * to {@link Models#load(String)}, as is a config.json that cannot be read (the loader names the problem).
     */
    public static boolean isDiffusion(String nameOrPath) {
        return nameOrPath != null
                && (Models.embeddedDiffusion().contains(nameOrPath) || diffusionConfig(nameOrPath) != null);
    }

    /** Serves {@code model} (the caller keeps owning it: close does not close it). The first one is the default. */
    public ModelInfo load(Model model) {
        return register(new LoadedModel.Autoregressive(model), false);
    }

    /** Serves a diffusion LM the caller keeps owning. The first model loaded is the default. */
    public ModelInfo load(DiffusionModel model) {
        return register(new LoadedModel.Diffusion(model), false);
    }

    private synchronized ModelInfo register(LoadedModel model, boolean owned) {
        if (closed) {
            throw new IllegalStateException("StepStream is closed");
        }
        ModelInfo info = new ModelInfo(model.name(), model.kind(), model.contextLength(), model.vocabSize(),
                model.backend(), model.device(), patternCacheStats(model));
        if (registry.models().containsKey(info.name())) {
            throw new IllegalArgumentException("model: '" + info.name() + "' is already loaded");
        }
        ExecutorService computeThread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "stepstream-compute-" + info.name());
            t.setDaemon(true);
            return t;
        });
        StepScheduler scheduler = switch (model) {
            case LoadedModel.Autoregressive a -> new Scheduler(a.model(), config.schedulerConfig(), System::nanoTime);
            case LoadedModel.Diffusion d ->
                    new DiffusionScheduler(DenoisingModel.of(d.placed()), config.schedulerConfig(), System::nanoTime);
        };
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

    /** The models in load order; a diffusion model's pattern cache counters are read now. */
    @Override
    public List<ModelInfo> models() {
        return registry.entries().stream().map(e -> e.info().withPatternCache(patternCacheStats(e.model()))).toList();
    }

    private static PatternCacheStats patternCacheStats(LoadedModel model) {
        return model instanceof LoadedModel.Diffusion d ? PatternCacheStats.of(d.model().patternCache()) : null;
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

    /**
     * Starts a request (see {@link GenerationService#generate}). For a diffusion model, unset settings take
     * LLaDA-like defaults: gen_length min(128, context - prompt tokens), rounded down to a multiple of block_length
     * when only that is given; block_length = gen_length (one block); steps = gen_length (one token per step);
     * remasking low_confidence; no threshold; dense attention. With SparseD settings present, unset ones take
     * SparseD's defaults: skip 0.2, select 0.3, block size {@link #defaultSparseDBlockSize}. Temperature and seed
     * come from the sampling params (the gRPC layer makes an unset temperature 0 for a diffusion model).
     */
    @Override
    public Source<TokenEvent, NotUsed> generate(GenerateRequest request) {
        if (closed) {
            throw new IllegalStateException("StepStream is closed");
        }
        ModelRegistry.Entry entry = registry.find(request.model())
                .orElseThrow(() -> new ModelNotFoundException(request.model()));
        Validated valid = validate(request, entry.model(), config.maxNumBatchedTokens());
        ActorRef<SchedulerActor.Command> scheduler = entry.scheduler();
        // Each materialization is its own request, with its own RequestActor.
        return Source.fromMaterializer((materializer, attributes) -> {
            String id = "req-" + requestCounter.incrementAndGet();
            SequenceRequest sequence;
            if (valid.dream() != null) {
                sequence = SequenceRequest.dream(id, valid.prompt(), valid.dream(), request.stopStrings(),
                        valid.progress());
            } else if (valid.diffusion() != null) {
                sequence = SequenceRequest.diffusion(id, valid.prompt(), valid.diffusion(), request.stopStrings(),
                        valid.progress());
            } else {
                sequence = new SequenceRequest(id, valid.prompt(), request.maxTokens(), request.sampling(),
                        request.stopStrings());
            }
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
                case TokenEvent.DenoiseProgress p -> {
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

    /**
     * A request that passed validation: its prompt ids, and for a diffusion model its resolved settings (LLaDA's in
     * diffusion, or Dream's in dream).
     */
    record Validated(int[] prompt, DiffusionParams diffusion, boolean progress, DreamParams dream) {
        Validated(int[] prompt, DiffusionParams diffusion, boolean progress) {
            this(prompt, diffusion, progress, null);
        }
    }

    /** Checks every field of a request for an autoregressive model and returns the prompt's token ids. */
    static int[] validate(GenerateRequest r, Model model) {
        return validate(r, new LoadedModel.Autoregressive(model), Integer.MAX_VALUE).prompt();
    }

    /** Checks every field (synchronously, before any actor sees it) against the model's kind and limits. */
    static Validated validate(GenerateRequest r, LoadedModel model, int maxNumBatchedTokens) {
        SamplingParams s = r.sampling();
        if (!Float.isFinite(s.temperature()) || s.temperature() < 0f) {
            throw new InvalidRequestException("temperature", "must be a finite number >= 0, got " + s.temperature());
        }
        for (String stop : r.stopStrings()) {
            if (stop == null || stop.isEmpty()) {
                throw new InvalidRequestException("stop", "stop strings must not be empty");
            }
        }
        return switch (model) {
            case LoadedModel.Autoregressive ar -> validateAutoregressive(r, ar);
            case LoadedModel.Diffusion dlm -> validateDiffusion(r, dlm, maxNumBatchedTokens);
        };
    }

    private static Validated validateAutoregressive(GenerateRequest r, LoadedModel.Autoregressive model) {
        SamplingParams s = r.sampling();
        if (r.diffusion() != null) {
            throw new InvalidRequestException("diffusion", "model " + model.name() + " is autoregressive; diffusion"
                    + " settings are only for diffusion models");
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
        if (r.maxTokens() < 1) {
            throw new InvalidRequestException("max_tokens", "must be >= 1, got " + r.maxTokens());
        }
        int context = model.contextLength();
        Prompt prompt = prompt(r, model.tokenizer(), model.vocabSize());
        if (prompt.ids().length >= context) {
            throw new InvalidRequestException(prompt.field(), prompt.ids().length + " prompt tokens leave no room to"
                    + " generate in the context of " + context + " tokens");
        }
        if ((long) prompt.ids().length + r.maxTokens() > context) {
            throw new InvalidRequestException("max_tokens", prompt.ids().length + " prompt tokens + " + r.maxTokens()
                    + " exceed the context of " + context + " tokens (at most " + (context - prompt.ids().length)
                    + ")");
        }
        return new Validated(prompt.ids(), null, false);
    }

    private static Validated validateDiffusion(GenerateRequest r, LoadedModel.Diffusion model,
                                               int maxNumBatchedTokens) {
        if (model.model().family() == DiffusionFamily.DREAM) {
            return validateDream(r, model, maxNumBatchedTokens);
        }
        SamplingParams s = r.sampling();
        String unsupported = "is not supported by diffusion model " + model.name();
        DiffusionOptions dreamOnly = r.diffusion() == null ? DiffusionOptions.DEFAULTS : r.diffusion();
        if (dreamOnly.alg() != null || dreamOnly.algTemp() != null || dreamOnly.eps() != null) {
            String field = dreamOnly.alg() != null ? "alg" : dreamOnly.algTemp() != null ? "alg_temp" : "eps";
            throw new InvalidRequestException("diffusion." + field, unsupported + " (a Dream setting; this model"
                    + " decodes as LLaDA does)");
        }
        if (s.topK() != 0) {
            throw new InvalidRequestException("top_k", unsupported + " (LLaDA decoding takes temperature,"
                    + " remasking and threshold); leave it 0");
        }
        if (s.topP() != 1f) {
            throw new InvalidRequestException("top_p", unsupported + " (LLaDA decoding takes temperature,"
                    + " remasking and threshold); leave it unset");
        }
        if (s.logprobs() != 0) {
            throw new InvalidRequestException("logprobs", unsupported + "; leave it 0");
        }
        if (r.maxTokens() != 0) {
            throw new InvalidRequestException("max_tokens", unsupported + "; set diffusion.gen_length instead");
        }
        DiffusionOptions o = r.diffusion() == null ? DiffusionOptions.DEFAULTS : r.diffusion();
        Prompt prompt = diffusionPrompt(r, model);
        int context = model.contextLength();
        int room = context - prompt.ids().length;
        Remasking remasking = remasking(o.remasking());
        if (o.threshold() != null && !(o.threshold() > 0 && o.threshold() <= 1)) {
            throw new InvalidRequestException("diffusion.threshold", "must be in (0, 1], got " + o.threshold());
        }
        if (o.blockLength() != null && o.blockLength() < 1) {
            throw new InvalidRequestException("diffusion.block_length", "must be >= 1, got " + o.blockLength());
        }
        int gen;
        if (o.genLength() != null) {
            gen = o.genLength();
            if (gen < 1) {
                throw new InvalidRequestException("diffusion.gen_length", "must be >= 1, got " + gen);
            }
            if (gen > room) {
                throw new InvalidRequestException("diffusion.gen_length", prompt.ids().length + " prompt tokens + "
                        + gen + " exceed the context of " + context + " tokens (at most " + room + ")");
            }
        } else {
            gen = Math.min(DEFAULT_GEN_LENGTH, room);
            if (o.blockLength() != null) {
                gen -= gen % o.blockLength();
                if (gen == 0) {
                    throw new InvalidRequestException("diffusion.block_length", o.blockLength() + " is longer than"
                            + " the " + Math.min(DEFAULT_GEN_LENGTH, room) + " tokens the default gen_length allows");
                }
            }
        }
        int block = o.blockLength() != null ? o.blockLength() : gen;
        if (gen % block != 0) {
            throw new InvalidRequestException("diffusion.gen_length", gen + " is not a multiple of block_length "
                    + block);
        }
        int blocks = gen / block;
        int steps = o.steps() != null ? o.steps() : gen;
        if (steps < 1) {
            throw new InvalidRequestException("diffusion.steps", "must be >= 1, got " + steps);
        }
        if (steps % blocks != 0) {
            throw new InvalidRequestException("diffusion.steps", steps + " is not divisible by the number of blocks "
                    + blocks + " (gen_length " + gen + " / block_length " + block + ")");
        }
        if (steps > gen) {
            throw new InvalidRequestException("diffusion.steps", steps + " is more than gen_length " + gen
                    + " (every step commits at least one token)");
        }
        int canvas = prompt.ids().length + gen;
        if (canvas > maxNumBatchedTokens) {
            throw new InvalidRequestException("diffusion.gen_length", "the canvas of " + canvas + " tokens (prompt + "
                    + "gen_length) is larger than the server's step budget of " + maxNumBatchedTokens + " tokens");
        }
        DiffusionParams params = new DiffusionParams(gen, block, steps, s.temperature(), remasking, o.threshold(),
                s.seed(), o.sparsed() == null ? null : sparseD(o.sparsed(), canvas));
        DlmCacheMode cache;
        try {
            cache = DlmCacheMode.parse(o.cache());
        } catch (IllegalArgumentException e) {
            throw new InvalidRequestException("diffusion.cache", e.getMessage());
        }
        if (cache != DlmCacheMode.NONE && params.sparseD() != null) {
            throw new InvalidRequestException("diffusion.cache", "cache " + cache.wireName() + " cannot be combined"
                    + " with diffusion.sparsed (SparseD's patterns are built over the whole canvas every step)");
        }
        params = params.withCache(cache);
        return new Validated(prompt.ids(), params, o.progress());
    }

    /** SparseD settings with their defaults filled in, each checked (a block may not be larger than the canvas). */
    private static SparseDPolicy sparseD(SparseDOptions o, int canvas) {
        double skip = o.skip() != null ? o.skip() : DEFAULT_SPARSED_SKIP;
        if (!(skip >= 0 && skip <= 1)) {
            throw new InvalidRequestException("diffusion.sparsed.skip", "must be in [0, 1] (the fraction of steps"
                    + " that run dense), got " + skip);
        }
        double select = o.select() != null ? o.select() : DEFAULT_SPARSED_SELECT;
        if (!(select > 0 && select <= 1)) {
            throw new InvalidRequestException("diffusion.sparsed.select", "must be in (0, 1] (the fraction of key"
                    + " blocks kept), got " + select);
        }
        int blockSize = o.blockSize() != null ? o.blockSize() : defaultSparseDBlockSize(canvas);
        if (blockSize < 1) {
            throw new InvalidRequestException("diffusion.sparsed.block_size", "must be >= 1, got " + blockSize);
        }
        if (blockSize > canvas) {
            throw new InvalidRequestException("diffusion.sparsed.block_size", blockSize + " is larger than the canvas"
                    + " of " + canvas + " tokens (prompt + gen_length): one block would be dense attention");
        }
        return new SparseDPolicy(skip, select, blockSize);
    }

    /**
     * A request to a Dream model: gen_length (default min(128, what the context leaves)), steps (default gen_length),
     * alg (default origin, Dream's own default), alg_temp (default none), eps (default 1e-3); temperature, top_p
     * (below 1 to filter), top_k (above 0 to filter) and seed from the sampling params. LLaDA's block_length,
     * remasking and threshold do not apply and are refused.
     */
    private static Validated validateDream(GenerateRequest r, LoadedModel.Diffusion model, int maxNumBatchedTokens) {
        SamplingParams s = r.sampling();
        String unsupported = "is not supported by Dream model " + model.name();
        if (s.logprobs() != 0) {
            throw new InvalidRequestException("logprobs", unsupported + "; leave it 0");
        }
        if (r.maxTokens() != 0) {
            throw new InvalidRequestException("max_tokens", unsupported + "; set diffusion.gen_length instead");
        }
        if (!(s.topP() > 0f && s.topP() <= 1f)) {
            throw new InvalidRequestException("top_p", "must be in (0, 1], got " + s.topP());
        }
        if (s.topK() < 0) {
            throw new InvalidRequestException("top_k", "must be >= 0, got " + s.topK());
        }
        DiffusionOptions o = r.diffusion() == null ? DiffusionOptions.DEFAULTS : r.diffusion();
        String llada = unsupported + " (LLaDA's setting; Dream fills the whole canvas by alg)";
        if (o.blockLength() != null) {
            throw new InvalidRequestException("diffusion.block_length", llada);
        }
        if (o.remasking() != null && !o.remasking().isEmpty()) {
            throw new InvalidRequestException("diffusion.remasking", llada);
        }
        if (o.threshold() != null) {
            throw new InvalidRequestException("diffusion.threshold", llada);
        }
        if (o.sparsed() != null) {
            throw new InvalidRequestException("diffusion.sparsed", unsupported + " (Dream attends densely)");
        }
        if (o.cache() != null && !o.cache().isBlank()) {
            throw new InvalidRequestException("diffusion.cache", unsupported + " (Fast-dLLM's cache is kept per"
                    + " block; Dream has no blocks)");
        }
        Prompt prompt = diffusionPrompt(r, model);
        int context = model.contextLength();
        int room = context - prompt.ids().length;
        int gen = o.genLength() != null ? o.genLength() : Math.min(DEFAULT_GEN_LENGTH, room);
        if (gen < 1) {
            throw new InvalidRequestException("diffusion.gen_length", "must be >= 1, got " + gen);
        }
        if (gen > room) {
            throw new InvalidRequestException("diffusion.gen_length", prompt.ids().length + " prompt tokens + " + gen
                    + " exceed the context of " + context + " tokens (at most " + room + ")");
        }
        int canvas = prompt.ids().length + gen;
        if (canvas > maxNumBatchedTokens) {
            throw new InvalidRequestException("diffusion.gen_length", "the canvas of " + canvas + " tokens (prompt + "
                    + "gen_length) is larger than the server's step budget of " + maxNumBatchedTokens + " tokens");
        }
        int steps = o.steps() != null ? o.steps() : gen;
        DreamAlgorithm alg;
        try {
            alg = o.alg() == null || o.alg().isEmpty() ? DreamAlgorithm.ORIGIN : DreamAlgorithm.of(o.alg());
        } catch (IllegalArgumentException e) {
            throw new InvalidRequestException("diffusion.alg", e.getMessage());
        }
        try {
            DreamParams params = new DreamParams(gen, steps, s.temperature(), s.topP() < 1f ? (double) s.topP() : null,
                    s.topK() > 0 ? s.topK() : null, alg, o.algTemp(), o.eps() != null ? o.eps()
                    : DreamParams.DEFAULT_EPS, s.seed());
            return new Validated(prompt.ids(), null, o.progress(), params);
        } catch (IllegalArgumentException e) {
            // DreamParams names the field first ("steps must be ..."): diffusion.* for Dream's own settings.
            String m = e.getMessage();
            String field = m.substring(0, m.indexOf(' '));
            boolean sampling = field.equals("temperature") || field.equals("top_p") || field.equals("top_k");
            throw new InvalidRequestException(sampling ? field : "diffusion." + field, m.substring(field.length() + 1));
        }
    }

    private static Remasking remasking(String name) {
        if (name == null || name.isEmpty()) {
            return Remasking.LOW_CONFIDENCE;
        }
        return switch (name) {
            case "low_confidence" -> Remasking.LOW_CONFIDENCE;
            case "random" -> Remasking.RANDOM;
            default -> throw new InvalidRequestException("diffusion.remasking", "unknown '" + name
                    + "'; expected low_confidence or random");
        };
    }

    /**
     * A diffusion request's prompt: ids the tokenizer knows (the mask id, the first id past them, is never a
     * prompt token), without the mask, leaving at least one position of the context to generate.
     */
    private static Prompt diffusionPrompt(GenerateRequest r, LoadedModel.Diffusion model) {
        Prompt prompt = withoutMask(prompt(r, model.tokenizer(), model.tokenizer().vocabSize()),
                model.model().maskId());
        int context = model.contextLength();
        if (context - prompt.ids().length < 1) {
            throw new InvalidRequestException(prompt.field(), prompt.ids().length + " prompt tokens leave no room to"
                    + " generate in the context of " + context + " tokens");
        }
        return prompt;
    }

    /**
     * A diffusion prompt may not hold the mask id: only the engine places masks. A tokenizer.json knows the mask as
     * a control token, so a text prompt can spell it, and prompt_token_ids can name it.
     */
    private static Prompt withoutMask(Prompt prompt, int maskId) {
        for (int i = 0; i < prompt.ids().length; i++) {
            if (prompt.ids()[i] == maskId) {
                throw new InvalidRequestException(prompt.field(), "holds the mask token (id " + maskId + ") at index "
                        + i + "; only the engine places masks");
            }
        }
        return prompt;
    }

    private record Prompt(int[] ids, String field) {
    }

    /** The prompt's ids and the field they came from, each id checked against {@code [0, vocab)}. */
    private static Prompt prompt(GenerateRequest r, Tokenizer tokenizer, int vocab) {
        int[] ids = promptTokens(r, tokenizer);
        if (r.promptTokenIds() == null) {
            return new Prompt(ids, "prompt");
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab) {
                throw new InvalidRequestException("prompt_token_ids",
                        "token id " + ids[i] + " at index " + i + " is outside [0, " + vocab + ")");
            }
        }
        return new Prompt(ids, "prompt_token_ids");
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

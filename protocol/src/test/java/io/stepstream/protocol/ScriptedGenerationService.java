package io.stepstream.protocol;

import io.stepstream.actors.GenerateRequest;
import io.stepstream.actors.GenerationService;
import io.stepstream.actors.InvalidRequestException;
import io.stepstream.actors.ModelInfo;
import io.stepstream.actors.ModelNotFoundException;
import io.stepstream.actors.QueueFullException;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.TokenLogprob;
import io.stepstream.scheduler.FinishReason;
import io.stepstream.scheduler.TokenEvent;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.NotUsed;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.stream.javadsl.Source;

/**
 * A GenerationService for protocol tests that runs no model: it validates as the contract says (with a toy
 * tokenizer: BOS then one token per character) and streams a scripted token sequence, pull by pull, through
 * Pekko Streams, so backpressure and cancellation behave as the real service's do. It records what it was
 * asked, how far each request got, and which requests were cancelled.
 *
 * <p>Models: "scripted" (context 64, the default), "long" (context 1,000,000; tokens carry a long text so
 * that a few of them fill transport windows), "busy" (every request fails with a full queue) and "broken"
 * (every request fails with an unexpected exception).
 */
public final class ScriptedGenerationService implements GenerationService {
    public static final int VOCAB = 64;
    public static final int BOS = 1;
    public static final int EOS = 2;
    public static final String SECRET = "do-not-leak-this-detail";

    private final Map<String, ModelInfo> models = Map.of(
            "scripted", new ModelInfo("scripted", "autoregressive", 64, VOCAB, "script", "none"),
            "long", new ModelInfo("long", "autoregressive", 1_000_000, VOCAB, "script", "none"),
            "busy", new ModelInfo("busy", "autoregressive", 64, VOCAB, "script", "none"),
            "broken", new ModelInfo("broken", "autoregressive", 64, VOCAB, "script", "none"));
    private final AtomicLong ids = new AtomicLong();

    /** Every accepted request, in order. */
    public final BlockingQueue<Started> started = new LinkedBlockingQueue<>();
    /** Requests whose stream was cancelled before their final event. */
    public final BlockingQueue<String> cancelled = new LinkedBlockingQueue<>();
    public final Map<String, Started> byId = new ConcurrentHashMap<>();

    /** One accepted request: its id, the request as the service got it, and how many events it produced. */
    public record Started(String id, GenerateRequest request, AtomicInteger produced) {
        /** Blocks until the request has produced at least {@code n} events. */
        public void awaitProduced(int n) throws InterruptedException {
            synchronized (produced) {
                while (produced.get() < n) {
                    produced.wait();
                }
            }
        }

        void countOne() {
            synchronized (produced) {
                produced.incrementAndGet();
                produced.notifyAll();
            }
        }
    }

    @Override
    public List<ModelInfo> models() {
        return List.of(models.get("scripted"), models.get("long"), models.get("busy"), models.get("broken"));
    }

    @Override
    public String defaultModel() {
        return "scripted";
    }

    @Override
    public OptionalInt promptTokenCount(GenerateRequest request) {
        return OptionalInt.of(tokenize(request).length);
    }

    public static int[] tokenize(GenerateRequest request) {
        if (request.promptTokenIds() != null) {
            return request.promptTokenIds().clone();
        }
        String text = request.prompt();
        int[] tokens = new int[text.length() + 1];
        tokens[0] = BOS;
        for (int i = 0; i < text.length(); i++) {
            tokens[i + 1] = 3 + text.charAt(i) % (VOCAB - 3);
        }
        return tokens;
    }

    @Override
    public Source<TokenEvent, NotUsed> generate(GenerateRequest request) {
        String name = request.model().isEmpty() ? defaultModel() : request.model();
        ModelInfo model = models.get(name);
        if (model == null) {
            throw new ModelNotFoundException(name);
        }
        int[] prompt = validate(request, model);
        switch (name) {
            case "busy" -> {
                return Source.failed(new QueueFullException(name, 0));
            }
            case "broken" -> {
                return Source.failed(new IllegalStateException(SECRET));
            }
            default -> {
            }
        }
        var started = new Started("req-" + ids.incrementAndGet(), request, new AtomicInteger());
        byId.put(started.id(), started);
        this.started.add(started);
        boolean longText = name.equals("long");
        var script = new Script(request, prompt.length, longText);
        return Source.unfold(script, s -> s.next().map(event -> {
                    started.countOne();
                    return Pair.create(s, event);
                }))
                .watchTermination((mat, done) -> {
                    done.whenComplete((ignored, failure) -> {
                        if (!script.finished) {
                            cancelled.add(started.id());
                        }
                    });
                    return mat;
                });
    }

    /** The token the script emits at {@code index} for {@code seed}: never BOS or EOS. */
    public static int scriptedToken(long seed, int index) {
        return 3 + (int) Math.floorMod(seed * 31 + index * 7L, VOCAB - 3);
    }

    /** The text of a scripted token. */
    public static String scriptedText(int token, boolean longText) {
        String piece = "t" + token + " ";
        return longText ? piece.repeat(100) : piece;
    }

    /** The text a request produces: its tokens' texts, cut before the first stop string, up to max_tokens. */
    public static String expectedText(GenerateRequest request, boolean longText) {
        var text = new StringBuilder();
        for (int i = 0; i < request.maxTokens(); i++) {
            text.append(scriptedText(scriptedToken(request.sampling().seed(), i), longText));
            int cut = firstStop(text, request.stopStrings());
            if (cut >= 0) {
                return text.substring(0, cut);
            }
        }
        return text.toString();
    }

    private static int firstStop(CharSequence text, List<String> stops) {
        int first = -1;
        for (String stop : stops) {
            int at = text.toString().indexOf(stop);
            if (at >= 0 && (first < 0 || at < first)) {
                first = at;
            }
        }
        return first;
    }

    private static int[] validate(GenerateRequest r, ModelInfo model) {
        SamplingParams s = r.sampling();
        if (!(s.temperature() >= 0) || Float.isInfinite(s.temperature())) {
            throw new InvalidRequestException("temperature", "must be a finite number >= 0, got " + s.temperature());
        }
        if (!(s.topP() > 0 && s.topP() <= 1)) {
            throw new InvalidRequestException("sampling.topP", "must be in (0, 1], got " + s.topP());
        }
        if (s.topK() < 0) {
            throw new InvalidRequestException("topK", "must be >= 0, got " + s.topK());
        }
        if (s.logprobs() < 0 || s.logprobs() > 20) {
            throw new InvalidRequestException("logprobs", "must be in 0..20, got " + s.logprobs());
        }
        for (String stop : r.stopStrings()) {
            if (stop.isEmpty()) {
                throw new InvalidRequestException("stopStrings", "must not contain an empty string");
            }
        }
        int[] prompt = tokenize(r);
        for (int i = 0; i < prompt.length; i++) {
            if (prompt[i] < 0 || prompt[i] >= model.vocabSize()) {
                throw new InvalidRequestException("promptTokenIds", "token id " + prompt[i] + " at index " + i
                        + " is outside the vocabulary [0, " + model.vocabSize() + ")");
            }
        }
        if (prompt.length >= model.contextLength()) {
            throw new InvalidRequestException("prompt", "is " + prompt.length + " tokens, the context holds "
                    + model.contextLength());
        }
        if (r.maxTokens() < 1) {
            throw new InvalidRequestException("maxTokens", "must be at least 1, got " + r.maxTokens());
        }
        if (prompt.length + r.maxTokens() > model.contextLength()) {
            throw new InvalidRequestException("maxTokens", r.maxTokens() + " past the context: the prompt has "
                    + prompt.length + " tokens and the context holds " + model.contextLength());
        }
        return prompt;
    }

    /** The lazily produced events of one request. */
    private static final class Script {
        private final GenerateRequest request;
        private final int promptTokens;
        private final boolean longText;
        private final StringBuilder text = new StringBuilder();
        private int emittedChars;
        private int index;
        volatile boolean finished;
        private boolean done;

        Script(GenerateRequest request, int promptTokens, boolean longText) {
            this.request = request;
            this.promptTokens = promptTokens;
            this.longText = longText;
        }

        Optional<TokenEvent> next() {
            if (done) {
                return Optional.empty();
            }
            if (index == request.maxTokens()) {
                return finish(FinishReason.LENGTH);
            }
            int token = scriptedToken(request.sampling().seed(), index++);
            text.append(scriptedText(token, longText));
            int cut = firstStop(text, request.stopStrings());
            if (cut >= 0) {
                text.setLength(cut);
            }
            String piece = text.substring(emittedChars);
            emittedChars = text.length();
            if (cut >= 0) {
                // The stop string is not streamed; the text before it comes with the final event.
                index--;
                var finished = finish(FinishReason.STOP);
                return finished.map(f -> new TokenEvent.Finished(FinishReason.STOP, promptTokens, index, piece));
            }
            int k = request.sampling().logprobs();
            List<TokenLogprob> top = new ArrayList<>();
            for (int i = 0; i < k; i++) {
                top.add(new TokenLogprob(i == 0 ? token : (token + i) % VOCAB, -0.5f * (i + 1)));
            }
            float logprob = k > 0 ? -0.5f : Float.NaN;
            return Optional.of(new TokenEvent.Token(token, piece, logprob, top));
        }

        private Optional<TokenEvent> finish(FinishReason reason) {
            done = true;
            finished = true;
            return Optional.of(new TokenEvent.Finished(reason, promptTokens, index, ""));
        }
    }
}

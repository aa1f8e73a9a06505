package io.stepstream.protocol.server;

import io.stepstream.actors.DiffusionOptions;
import io.stepstream.actors.GenerationService;
import io.stepstream.actors.ModelInfo;
import io.stepstream.actors.SparseDOptions;
import io.stepstream.engine.SamplingParams;
import io.stepstream.protocol.v1.GenerateRequest;
import java.util.OptionalInt;
import java.util.function.LongSupplier;

/**
 * Maps a wire request to the service's request, filling the wire defaults: temperature and top_p 1.0, a
 * fresh random seed, and max_tokens min(256, context - prompt tokens). For a diffusion model (ListModels kind
 * "diffusion") an unset temperature is 0 (LLaDA's greedy default), max_tokens stays unset (0) and the diffusion
 * options pass through; the service fills their defaults. Validation is the service's: this class passes values
 * through unchanged (a negative max_tokens stays negative and is rejected there).
 */
public final class RequestMapper {
    /** max_tokens when the request leaves it unset or 0, before capping by the context. */
    public static final int DEFAULT_MAX_TOKENS = 256;
    private static final String DIFFUSION = "diffusion";

    private final GenerationService service;
    private final LongSupplier seeds;

    public RequestMapper(GenerationService service, LongSupplier seeds) {
        this.service = service;
        this.seeds = seeds;
    }

    public io.stepstream.actors.GenerateRequest toServiceRequest(GenerateRequest wire) {
        int[] tokenIds = wire.hasPromptTokenIds()
                ? wire.getPromptTokenIds().getIdsList().stream().mapToInt(Integer::intValue).toArray()
                : null;
        String prompt = wire.getPrompt(); // "" when unset or when token ids are given: generation from BOS
        boolean diffusionModel = DIFFUSION.equals(kind(wire.getModel()));
        SamplingParams sampling = new SamplingParams(
                wire.hasTemperature() ? wire.getTemperature() : diffusionModel ? 0f : 1.0f,
                wire.getTopK(),
                wire.hasTopP() ? wire.getTopP() : 1.0f,
                wire.hasSeed() ? wire.getSeed() : seeds.getAsLong(),
                wire.getLogprobs());
        DiffusionOptions diffusion = wire.hasDiffusion() ? diffusionOptions(wire.getDiffusion()) : null;
        if (diffusionModel) {
            int maxTokens = wire.hasMaxTokens() ? wire.getMaxTokens() : 0; // any value is refused by the service
            return new io.stepstream.actors.GenerateRequest(wire.getModel(), prompt, tokenIds, maxTokens, sampling,
                    wire.getStopList(), diffusion == null ? DiffusionOptions.DEFAULTS : diffusion);
        }
        var withoutLimit = new io.stepstream.actors.GenerateRequest(
                wire.getModel(), prompt, tokenIds, DEFAULT_MAX_TOKENS, sampling, wire.getStopList(), diffusion);
        if (wire.hasMaxTokens() && wire.getMaxTokens() != 0) {
            return withMaxTokens(withoutLimit, wire.getMaxTokens());
        }
        return withMaxTokens(withoutLimit, defaultMaxTokens(withoutLimit));
    }

    private static DiffusionOptions diffusionOptions(io.stepstream.protocol.v1.DiffusionOptions d) {
        return new DiffusionOptions(
                d.hasGenLength() ? d.getGenLength() : null,
                d.hasBlockLength() ? d.getBlockLength() : null,
                d.hasSteps() ? d.getSteps() : null,
                d.getRemasking().isEmpty() ? null : d.getRemasking(),
                d.hasThreshold() ? d.getThreshold() : null,
                d.getProgress(),
                d.hasSparsed() ? sparseD(d.getSparsed()) : null,
                d.getAlg().isEmpty() ? null : d.getAlg(),
                d.hasAlgTemp() ? d.getAlgTemp() : null,
                d.hasEps() ? d.getEps() : null,
                d.getCache().isEmpty() ? null : d.getCache());
    }

    private static SparseDOptions sparseD(io.stepstream.protocol.v1.SparseDOptions s) {
        return new SparseDOptions(
                s.hasSkip() ? s.getSkip() : null,
                s.hasSelect() ? s.getSelect() : null,
                s.hasBlockSize() ? s.getBlockSize() : null);
    }

    /** The kind of the model a request names (the default one for ""), or null when no such model is loaded. */
    private String kind(String requested) {
        String model = requested.isEmpty() ? service.defaultModel() : requested;
        return service.models().stream()
                .filter(m -> m.name().equals(model))
                .map(ModelInfo::kind)
                .findFirst()
                .orElse(null);
    }

    /**
     * min(256, context - prompt tokens), at least 1 so that a prompt that fills the context is reported by the
     * service as too long rather than as a bad max_tokens the client never sent. Without a known model (the
     * service reports that) or a prompt count, only the context caps it.
     */
    private int defaultMaxTokens(io.stepstream.actors.GenerateRequest request) {
        String model = request.model().isEmpty() ? service.defaultModel() : request.model();
        OptionalInt context = service.models().stream()
                .filter(m -> m.name().equals(model))
                .mapToInt(ModelInfo::contextLength)
                .findFirst();
        if (context.isEmpty()) {
            return DEFAULT_MAX_TOKENS;
        }
        OptionalInt promptTokens = service.promptTokenCount(request);
        int room = context.getAsInt() - promptTokens.orElse(0);
        return Math.max(1, Math.min(DEFAULT_MAX_TOKENS, room));
    }

    private static io.stepstream.actors.GenerateRequest withMaxTokens(io.stepstream.actors.GenerateRequest r,
                                                                    int maxTokens) {
        return r.withMaxTokens(maxTokens);
    }
}

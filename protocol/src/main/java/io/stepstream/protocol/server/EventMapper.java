package io.stepstream.protocol.server;

import io.stepstream.actors.GenerationService;
import io.stepstream.actors.ModelInfo;
import io.stepstream.engine.TokenLogprob;
import io.stepstream.protocol.v1.DenoiseProgressEvent;
import io.stepstream.protocol.v1.FinalEvent;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.ListModelsResponse;
import io.stepstream.protocol.v1.ModelCard;
import io.stepstream.protocol.v1.PatternCacheStats;
import io.stepstream.protocol.v1.Usage;
import io.stepstream.scheduler.TokenEvent;

/** Service values to wire messages. */
public final class EventMapper {
    private EventMapper() {
    }

    /**
     * One token event as the client sees it. Log-probabilities go on the wire only when the request asked
     * for them ({@code withLogprobs}), so an unasked stream carries no NaN placeholders.
     */
    public static GenerateEvent toWire(TokenEvent event, boolean withLogprobs) {
        return switch (event) {
            case TokenEvent.Token t -> {
                var token = io.stepstream.protocol.v1.TokenEvent.newBuilder()
                        .setTokenId(t.tokenId())
                        .setText(t.text());
                if (withLogprobs) {
                    token.setLogprob(t.logprob());
                    for (TokenLogprob top : t.topLogprobs()) {
                        token.addTopLogprobs(io.stepstream.protocol.v1.TokenLogprob.newBuilder()
                                .setTokenId(top.tokenId())
                                .setLogprob(top.logprob()));
                    }
                }
                yield GenerateEvent.newBuilder().setToken(token).build();
            }
            case TokenEvent.DenoiseProgress p -> GenerateEvent.newBuilder()
                    .setProgress(DenoiseProgressEvent.newBuilder()
                            .setStep(p.step())
                            .setCommitted(p.committed())
                            .setBlock(p.block()))
                    .build();
            case TokenEvent.Finished f -> GenerateEvent.newBuilder()
                    .setFinal(FinalEvent.newBuilder()
                            .setFinishReason(f.reason().wireName())
                            .setUsage(Usage.newBuilder()
                                    .setPromptTokens(f.promptTokens())
                                    .setCompletionTokens(f.completionTokens()))
                            .setText(f.text() == null ? "" : f.text()))
                    .build();
        };
    }

    public static ModelCard toWire(ModelInfo model, boolean isDefault) {
        var card = ModelCard.newBuilder()
                .setName(model.name())
                .setKind(nullToEmpty(model.kind()))
                .setContextLength(model.contextLength())
                .setVocabSize(model.vocabSize())
                .setBackend(nullToEmpty(model.backend()))
                .setDevice(nullToEmpty(model.device()))
                .setIsDefault(isDefault);
        if (model.patternCache() != null) {
            card.setPatternCache(toWire(model.patternCache()));
        }
        return card.build();
    }

    public static PatternCacheStats toWire(io.stepstream.scheduler.PatternCacheStats s) {
        return PatternCacheStats.newBuilder()
                .setHits(s.hits())
                .setMisses(s.misses())
                .setBytesInUse(s.bytesInUse())
                .setCapBytes(s.capBytes())
                .setEntries(s.entries())
                .setEvictions(s.evictions())
                .setRefusals(s.refusals())
                .build();
    }

    public static ListModelsResponse modelList(GenerationService service) {
        String defaultModel = service.defaultModel();
        var response = ListModelsResponse.newBuilder();
        for (ModelInfo model : service.models()) {
            response.addModels(toWire(model, model.name().equals(defaultModel)));
        }
        return response.build();
    }

    private static String nullToEmpty(String s) {
        return s == null ? "" : s;
    }
}

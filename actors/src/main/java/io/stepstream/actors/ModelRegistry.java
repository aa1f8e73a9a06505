package io.stepstream.actors;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The loaded models, immutable: loading makes a new registry. The first model loaded is the default.
 */
record ModelRegistry(Map<String, Entry> models, String defaultModel) {

    /** One served model: its info, the model, its SchedulerActor and the compute thread its steps run on. */
    record Entry(ModelInfo info, LoadedModel model, boolean owned, ActorRef<SchedulerActor.Command> scheduler,
                 ExecutorService computeThread) {
    }

    static ModelRegistry empty() {
        return new ModelRegistry(Map.of(), "");
    }

    ModelRegistry {
        models = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(models));
    }

    ModelRegistry with(Entry e) {
        if (models.containsKey(e.info().name())) {
            throw new IllegalArgumentException("model: '" + e.info().name() + "' is already loaded");
        }
        Map<String, Entry> more = new LinkedHashMap<>(models);
        more.put(e.info().name(), e);
        return new ModelRegistry(more, defaultModel.isEmpty() ? e.info().name() : defaultModel);
    }

    /** The model of that name; the default one for an empty name. */
    Optional<Entry> find(String name) {
        return Optional.ofNullable(models.get(name.isEmpty() ? defaultModel : name));
    }

    List<Entry> entries() {
        return List.copyOf(models.values());
    }
}

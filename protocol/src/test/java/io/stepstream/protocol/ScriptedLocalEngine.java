package io.stepstream.protocol;

import io.stepstream.actors.GenerationService;
import io.stepstream.actors.ModelInfo;
import io.stepstream.protocol.cli.LocalEngine;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.actor.ClassicActorSystemProvider;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The command line's in-process engine over the scripted service: "stories260K" and the scripted models
 * load by name; a path must exist (and then is still no model), as a real loader would insist.
 */
public final class ScriptedLocalEngine implements LocalEngine {
    final ScriptedGenerationService service = new ScriptedGenerationService();
    final ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "scripted-local-engine");
    final AtomicBoolean closed = new AtomicBoolean();

    @Override
    public ModelInfo load(String nameOrPath) {
        String name = nameOrPath.equals(DEFAULT_MODEL) ? "scripted" : nameOrPath;
        for (ModelInfo model : service.models()) {
            if (model.name().equals(name)) {
                return model;
            }
        }
        Path path = Path.of(nameOrPath);
        if (!Files.exists(path)) {
            throw new IllegalArgumentException(path + ": no such file");
        }
        throw new IllegalArgumentException(path + ": not a model file this engine reads");
    }

    @Override
    public GenerationService service() {
        return service;
    }

    @Override
    public ClassicActorSystemProvider system() {
        return system;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            system.terminate();
        }
    }
}

package io.stepstream.protocol.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.stepstream.actors.GenerationService;
import io.stepstream.actors.ModelInfo;
import io.stepstream.actors.StepStream;
import io.stepstream.actors.StepStreamConfig;
import io.stepstream.engine.spi.BackendOptions;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ClassicActorSystemProvider;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The real in-process engine: StepStream attached to an actor system this class owns, so that the gRPC
 * server and the command line materialize event streams on the same system the engine's actors run in.
 */
final class EmbeddedEngine implements LocalEngine {
    private static final Duration TERMINATION = Duration.ofSeconds(10);

    private final ActorSystem<Void> system;
    private final StepStream stepStream;
    private boolean closed;

    private EmbeddedEngine(ActorSystem<Void> system, StepStream stepStream) {
        this.system = system;
        this.stepStream = stepStream;
    }

    static LocalEngine start() {
        return start(StepStreamConfig.defaults());
    }

    static LocalEngine start(StepStreamConfig engineConfig) {
        // serve's own JVM hook stops the server, then the engine, then this system, in that order; Pekko's
        // hook would race it (and warns when first touched during shutdown).
        Config config = ConfigFactory.parseString("pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off")
                .withFallback(ConfigFactory.load());
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "stepstream", config);
        try {
            return new EmbeddedEngine(system, StepStream.attach(system, engineConfig));
        } catch (RuntimeException e) {
            system.terminate();
            throw e;
        }
    }

    @Override
    public ModelInfo load(String nameOrPath) {
        return stepStream.load(nameOrPath);
    }

    @Override
    public ModelInfo load(String nameOrPath, String backend, BackendOptions options) {
        return stepStream.load(nameOrPath, backend, options);
    }

    @Override
    public GenerationService service() {
        return stepStream;
    }

    @Override
    public ClassicActorSystemProvider system() {
        return system;
    }

    /** Stops the engine, then the actor system under it; waits a bounded time for both. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            stepStream.close();
        } finally {
            system.terminate();
            try {
                system.getWhenTerminated().toCompletableFuture().get(TERMINATION.toMillis(), TimeUnit.MILLISECONDS);
            } catch (Exception e) {
                // Best effort: a JVM on its way out does not wait longer for the dispatcher.
                if (e instanceof InterruptedException) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }
}

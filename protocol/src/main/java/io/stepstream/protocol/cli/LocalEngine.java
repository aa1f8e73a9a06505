package io.stepstream.protocol.cli;

import io.stepstream.actors.GenerationService;
import io.stepstream.actors.ModelInfo;
import io.stepstream.actors.StepStream;
import io.stepstream.actors.StepStreamConfig;
import io.stepstream.engine.spi.BackendOptions;
import org.apache.pekko.actor.ClassicActorSystemProvider;

/**
 * The in-process engine the command line runs on: a generation service with its models, and the actor
 * system whose materializer runs its event streams. Closing it stops both.
 */
public interface LocalEngine extends AutoCloseable {
    /** The model loaded when the command line names none. */
    String DEFAULT_MODEL = "stories260K";

    /**
     * Loads a model by name (an embedded one) or by path. A path that does not exist or does not hold a model
     * fails with an exception whose message names the file.
     */
    ModelInfo load(String nameOrPath);

    /**
     * Loads a model onto a backend of the engine's BackendProvider SPI ("cpu", "opencl"): a llama2.c checkpoint or a
     * diffusion LM (which the engine recognises). Engines without backends refuse anything but the CPU default.
     */
    default ModelInfo load(String nameOrPath, String backend, BackendOptions options) {
        throw new UnsupportedOperationException("this engine serves the cpu backend only, not " + backend);
    }

    /** Whether {@code nameOrPath} names a diffusion model. */
    default boolean isDiffusion(String nameOrPath) {
        return StepStream.isDiffusion(nameOrPath);
    }

    GenerationService service();

    ClassicActorSystemProvider system();

    @Override
    void close();

    /** Starts an engine with no models loaded. */
    @FunctionalInterface
    interface Factory {
        LocalEngine start();

        /**
         * Starts an engine whose models get these budgets (serve's --pattern-cache-bytes, say). An engine without
         * such budgets (a scripted one in tests) ignores them.
         */
        default LocalEngine start(StepStreamConfig config) {
            return start();
        }
    }
}

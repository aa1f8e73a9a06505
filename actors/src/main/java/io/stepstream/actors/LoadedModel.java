package io.stepstream.actors;

import io.stepstream.engine.Model;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.spi.Backends;
import io.stepstream.engine.spi.DiffusionBackendModel;

/** A served model of either kind, with what the service needs to check requests against it. */
sealed interface LoadedModel {
    String KIND_AUTOREGRESSIVE = "autoregressive";
    String KIND_DIFFUSION = "diffusion";

    String name();

    /** "autoregressive" or "diffusion", as ListModels reports it. */
    String kind();

    Tokenizer tokenizer();

    int contextLength();

    /** Logits per position (a diffusion model's count the mask id). */
    int vocabSize();

    /** The compute backend it runs on ("cpu", "opencl"), as ListModels reports it. */
    String backend();

    /** The device within that backend. */
    String device();

    void close();

    record Autoregressive(Model model) implements LoadedModel {
        public String name() {
            return model.name();
        }

        public String kind() {
            return KIND_AUTOREGRESSIVE;
        }

        public Tokenizer tokenizer() {
            return model.tokenizer();
        }

        public int contextLength() {
            return model.config().contextLength();
        }

        public int vocabSize() {
            return model.config().vocabSize();
        }

        public String backend() {
            return Backends.backendOf(model);
        }

        public String device() {
            return Backends.deviceOf(model);
        }

        public void close() {
            model.close();
        }
    }

    /** A diffusion LM where its backend placed it; {@link #model()} is its CPU model (ids, caches, limits). */
    record Diffusion(DiffusionBackendModel placed) implements LoadedModel {
        Diffusion(DiffusionModel model) {
            this(DiffusionBackendModel.onCpu(model));
        }

        public DiffusionModel model() {
            return placed.cpuModel();
        }

        public String name() {
            return model().name();
        }

        public String kind() {
            return KIND_DIFFUSION;
        }

        public Tokenizer tokenizer() {
            return model().tokenizer();
        }

        public int contextLength() {
            return model().contextLength();
        }

        public int vocabSize() {
            return model().vocabSize();
        }

        public String backend() {
            return placed.backendName();
        }

        public String device() {
            return placed.deviceName();
        }

        public void close() {
            placed.close();
        }
    }
}

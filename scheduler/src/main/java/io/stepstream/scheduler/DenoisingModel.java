package io.stepstream.scheduler;

import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionFamily;
import io.stepstream.engine.dlm.DiffusionModel;
import java.util.List;

/**
 * What the {@link DiffusionScheduler} needs of a diffusion LM: its ids and limits, and one forward pass over a
 * batch of canvases ({@link DiffusionModel#forward}'s contract). A seam so that tests can watch or bend a real
 * model's logits.
 */
public interface DenoisingModel {
    String name();

    Tokenizer tokenizer();

    int maskId();

    int vocabSize();

    int contextLength();

    /** Which generation its requests run: LLaDA's (the default) or Dream's. */
    default DiffusionFamily family() {
        return DiffusionFamily.LLADA;
    }

    /** {@code logits[i]} gets input i's logits range, position-major, vocabSize floats per position. */
    void forward(List<DenoiseInput> batch, float[][] logits);

    static DenoisingModel of(DiffusionModel model) {
        return new DenoisingModel() {
            @Override
            public String name() {
                return model.name();
            }

            @Override
            public Tokenizer tokenizer() {
                return model.tokenizer();
            }

            @Override
            public int maskId() {
                return model.maskId();
            }

            @Override
            public int vocabSize() {
                return model.vocabSize();
            }

            @Override
            public int contextLength() {
                return model.contextLength();
            }

            @Override
            public DiffusionFamily family() {
                return model.family();
            }

            @Override
            public void forward(List<DenoiseInput> batch, float[][] logits) {
                model.forward(batch, logits);
            }
        };
    }
}

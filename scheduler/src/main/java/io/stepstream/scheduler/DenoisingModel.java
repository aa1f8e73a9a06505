package io.stepstream.scheduler;

import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.DenoiseInput;
import io.stepstream.engine.dlm.DiffusionModel;
import io.stepstream.engine.dlm.DlmKvHandle;
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

    /** {@code logits[i]} gets input i's logits range, position-major, vocabSize floats per position. */
    void forward(List<DenoiseInput> batch, float[][] logits);

    /** Frees a request's Fast-dLLM keys and values ({@code null}: the request had none). */
    default void releaseKvCache(DlmKvHandle handle) {
    }

    /** Bytes of Fast-dLLM keys and values held for this model's requests. */
    default long kvCacheBytes() {
        return 0;
    }

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
            public void forward(List<DenoiseInput> batch, float[][] logits) {
                model.forward(batch, logits);
            }

            @Override
            public void releaseKvCache(DlmKvHandle handle) {
                model.releaseKvCache(handle);
            }

            @Override
            public long kvCacheBytes() {
                return model.kvCache().bytesHeld();
            }
        };
    }
}

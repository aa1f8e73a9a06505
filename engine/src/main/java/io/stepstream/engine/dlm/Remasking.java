package io.stepstream.engine.dlm;

/** How LLaDA scores the masked positions it may commit this step (the highest scores are committed). */
public enum Remasking {
    /** Confidence = softmax probability (float64) of the predicted token under the model's logits. */
    LOW_CONFIDENCE,
    /** Confidence = a uniform draw in [0, 1) from the request's own random stream. */
    RANDOM
}

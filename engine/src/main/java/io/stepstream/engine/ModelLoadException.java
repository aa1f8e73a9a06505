package io.stepstream.engine;

/** A model or tokenizer file could not be loaded; the message names the file and the problem. */
public class ModelLoadException extends RuntimeException {
    public ModelLoadException(String message) {
        super(message);
    }

    public ModelLoadException(String message, Throwable cause) {
        super(message, cause);
    }
}

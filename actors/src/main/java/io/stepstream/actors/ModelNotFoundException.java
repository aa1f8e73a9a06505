package io.stepstream.actors;

/** No model of that name is loaded. */
public final class ModelNotFoundException extends RuntimeException {
    private final String model;

    public ModelNotFoundException(String model) {
        super("model: no model named '" + model + "' is loaded");
        this.model = model;
    }

    public String model() {
        return model;
    }
}

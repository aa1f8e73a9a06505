package io.stepstream.actors;

/** The model's waiting queue is full; the request was not admitted. */
public final class QueueFullException extends RuntimeException {
    public QueueFullException(String model, int limit) {
        super("model '" + model + "' has " + limit + " requests waiting already");
    }
}

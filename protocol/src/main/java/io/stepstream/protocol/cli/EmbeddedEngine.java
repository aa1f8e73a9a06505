package io.stepstream.protocol.cli;

/** The real in-process engine: StepStream on an actor system this class owns. */
final class EmbeddedEngine {
    private EmbeddedEngine() {
    }

    static LocalEngine start() {
        // Replaced by the StepStream facade once the actors module provides it.
        throw new CliFailure(CliFailure.FAILED, "the in-process engine is not available in this build; use --server");
    }
}

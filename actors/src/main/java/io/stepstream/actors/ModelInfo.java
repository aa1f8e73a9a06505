package io.stepstream.actors;

/** What ListModels reports of one loaded model. */
public record ModelInfo(String name, String kind, int contextLength, int vocabSize, String backend, String device) {
}

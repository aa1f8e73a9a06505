package io.stepstream.scheduler;

import java.util.List;

/**
 * One model's step loop in plain Java, as its owner (the SchedulerActor, or a test on its own thread) drives it:
 * {@code plan -> execute -> complete}, one step in flight at a time. {@link Scheduler} runs autoregressive models
 * (prefill chunks and decodes), {@link DiffusionScheduler} diffusion LMs (denoising steps); both batch every
 * running request of their model into one forward pass per step.
 *
 * <p>Every method but {@link #execute} must be called from one thread at a time (the owner's); {@code execute}
 * may run on another thread and touches only the model and the step's sequences.
 *
 * <p>Cancellation: {@link #cancel} takes the sequence out of every later plan at once; its
 * {@code Finished(CANCELLED)} comes from the next {@link #complete} (or {@link #fail}), and {@link #hasWork} stays
 * true until then.
 */
public interface StepScheduler {
    SchedulerConfig config();

    /**
     * Queues a sequence. Returns false, and queues nothing, when {@code maxWaiting} requests are already waiting.
     *
     * @throws IllegalArgumentException when the request cannot run on this model (named field and reason)
     */
    boolean add(SequenceRequest request);

    /** Takes the sequence out of the next plan; unknown or finished ids are ignored. */
    void cancel(String requestId);

    /** True while a step would do something: sequences wait or run, or events are still to be handed out. */
    boolean hasWork();

    /** True between {@link #plan} and {@link #complete} / {@link #fail}. */
    boolean stepInFlight();

    /** The next step within the budgets; may be empty. */
    StepBatch plan();

    /** Runs the planned step: one forward pass over all its sequences. */
    StepResult execute(StepBatch batch);

    /** Applies a step's result; returns the events to stream, per request in order, including cancellations. */
    List<SequenceOutput> complete(StepResult result);

    /** The engine failed to run {@code batch}: its sequences finish with ERROR, the others go on. */
    List<SequenceOutput> fail(StepBatch batch, Throwable cause);

    /** Ends every live sequence with ERROR (the model is going away). Only between steps. */
    List<SequenceOutput> failAll();

    /** The state now, for tests and metrics. */
    SchedulerSnapshot snapshot();
}

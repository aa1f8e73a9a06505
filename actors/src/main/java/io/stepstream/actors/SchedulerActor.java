package io.stepstream.actors;

import io.stepstream.scheduler.SchedulerSnapshot;
import io.stepstream.scheduler.SequenceOutput;
import io.stepstream.scheduler.SequenceRequest;
import io.stepstream.scheduler.StepBatch;
import io.stepstream.scheduler.StepResult;
import io.stepstream.scheduler.StepScheduler;
import io.stepstream.scheduler.TokenEvent;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;
import java.util.function.Consumer;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Drives one model's {@link StepScheduler} (autoregressive or diffusion): admits and cancels requests, and runs
 * the step loop. Planning and completing happen on the actor; the forward pass and sampling or remasking
 * ({@link StepScheduler#execute}) run on the model's dedicated compute thread, and come back through pipeToSelf. After a step completes its events are fanned out to
 * the RequestActors and the next step starts at once while there is work.
 *
 * <p>States: {@link #idle} (no step in flight), {@link #stepping} (one step in flight), {@link #stopping} (a step
 * in flight and a shutdown asked for). A failing step ends that step's requests with ERROR; the model keeps serving.
 */
final class SchedulerActor {

    sealed interface Command {
    }

    /** Queue a request; its events go to {@code replyTo}. */
    record Admit(SequenceRequest request, ActorRef<RequestActor.Command> replyTo) implements Command {
    }

    record Cancel(String requestId) implements Command {
    }

    /** Call {@code listener} with every planned step (on the actor thread: keep it quick); then ack. */
    record ObserveSteps(Consumer<StepBatch> listener, ActorRef<Done> registered) implements Command {
    }

    /** Reply with the scheduler's state now. */
    record GetSnapshot(ActorRef<SchedulerSnapshot> replyTo) implements Command {
    }

    /** End all requests (ERROR), then stop; {@code stopped} completes after the actor stopped. */
    record Shutdown(CompletableFuture<Void> stopped) implements Command {
    }

    private record StepDone(StepBatch batch, StepResult result) implements Command {
    }

    private record StepFailed(StepBatch batch, Throwable cause) implements Command {
    }

    private final ActorContext<Command> context;
    private final StepScheduler scheduler;
    private final String modelName;
    private final Executor computeThread;
    private final Map<String, ActorRef<RequestActor.Command>> requests = new HashMap<>();
    private final List<Consumer<StepBatch>> stepListeners = new ArrayList<>();
    private final List<CompletableFuture<Void>> stopWaiters = new ArrayList<>();

    private SchedulerActor(ActorContext<Command> context, StepScheduler scheduler, String modelName,
                           Executor computeThread) {
        this.context = context;
        this.scheduler = scheduler;
        this.modelName = modelName;
        this.computeThread = computeThread;
    }

    static Behavior<Command> create(StepScheduler scheduler, String modelName, Executor computeThread) {
        return Behaviors.setup(ctx -> new SchedulerActor(ctx, scheduler, modelName, computeThread).idle());
    }

    private Behavior<Command> idle() {
        return Behaviors.receive(Command.class)
                .onMessage(Admit.class, m -> {
                    admit(m);
                    return nextStepOrIdle();
                })
                .onMessage(Cancel.class, m -> {
                    scheduler.cancel(m.requestId());
                    return nextStepOrIdle();
                })
                .onMessage(ObserveSteps.class, this::observe)
                .onMessage(GetSnapshot.class, this::snapshot)
                .onMessage(Shutdown.class, m -> {
                    stopWaiters.add(m.stopped());
                    return shutDownNow();
                })
                .onSignal(PostStop.class, s -> stopped())
                .build();
    }

    private Behavior<Command> stepping() {
        return Behaviors.receive(Command.class)
                .onMessage(Admit.class, m -> {
                    admit(m);
                    return Behaviors.same();
                })
                .onMessage(Cancel.class, m -> {
                    scheduler.cancel(m.requestId()); // leaves the next plan; freed when this step completes
                    return Behaviors.same();
                })
                .onMessage(ObserveSteps.class, this::observe)
                .onMessage(GetSnapshot.class, this::snapshot)
                .onMessage(StepDone.class, m -> {
                    fanOut(scheduler.complete(m.result()));
                    return nextStepOrIdle();
                })
                .onMessage(StepFailed.class, m -> {
                    context.getLog().error("step {} of model {} failed; its requests end with ERROR",
                            m.batch().stepId(), modelName, m.cause());
                    fanOut(scheduler.fail(m.batch(), m.cause()));
                    return nextStepOrIdle();
                })
                .onMessage(Shutdown.class, m -> {
                    stopWaiters.add(m.stopped());
                    return stopping();
                })
                .onSignal(PostStop.class, s -> stopped())
                .build();
    }

    /** A step is still in flight: wait for it (its caches are in use), then end everything. */
    private Behavior<Command> stopping() {
        return Behaviors.receive(Command.class)
                .onMessage(Admit.class, m -> {
                    m.replyTo().tell(new RequestActor.Event(
                            new TokenEvent.Finished(io.stepstream.scheduler.FinishReason.ERROR, 0, 0, "")));
                    return Behaviors.same();
                })
                .onMessage(Cancel.class, m -> Behaviors.same())
                .onMessage(ObserveSteps.class, this::observe)
                .onMessage(GetSnapshot.class, this::snapshot)
                .onMessage(StepDone.class, m -> {
                    fanOut(scheduler.complete(m.result()));
                    return shutDownNow();
                })
                .onMessage(StepFailed.class, m -> {
                    fanOut(scheduler.fail(m.batch(), m.cause()));
                    return shutDownNow();
                })
                .onMessage(Shutdown.class, m -> {
                    stopWaiters.add(m.stopped());
                    return Behaviors.same();
                })
                .onSignal(PostStop.class, s -> stopped())
                .build();
    }

    private Behavior<Command> shutDownNow() {
        fanOut(scheduler.failAll());
        return Behaviors.stopped();
    }

    private Behavior<Command> stopped() {
        stopWaiters.forEach(f -> f.complete(null));
        return Behaviors.same();
    }

    private Behavior<Command> snapshot(GetSnapshot m) {
        m.replyTo().tell(scheduler.snapshot());
        return Behaviors.same();
    }

    private Behavior<Command> observe(ObserveSteps m) {
        stepListeners.add(m.listener());
        m.registered().tell(Done.getInstance());
        return Behaviors.same();
    }

    private void admit(Admit m) {
        String id = m.request().requestId();
        boolean queued;
        try {
            queued = scheduler.add(m.request());
        } catch (IllegalArgumentException e) {
            // The service validates before admission; this is the scheduler's last word, never a crashed actor.
            m.replyTo().tell(new RequestActor.Rejected(new InvalidRequestException("request", e.getMessage())));
            return;
        }
        if (queued) {
            requests.put(id, m.replyTo());
        } else {
            m.replyTo().tell(new RequestActor.Rejected(
                    new QueueFullException(modelName, scheduler.config().maxWaiting())));
        }
    }

    private Behavior<Command> nextStepOrIdle() {
        if (!scheduler.hasWork()) {
            return idle();
        }
        StepBatch batch = scheduler.plan();
        for (Consumer<StepBatch> listener : stepListeners) {
            try {
                listener.accept(batch);
            } catch (RuntimeException e) {
                context.getLog().warn("step listener failed", e);
            }
        }
        CompletableFuture<StepResult> result = CompletableFuture.supplyAsync(() -> scheduler.execute(batch),
                computeThread);
        context.pipeToSelf(result, (r, failure) -> failure == null
                ? new StepDone(batch, r)
                : new StepFailed(batch, failure instanceof CompletionException c && c.getCause() != null
                        ? c.getCause() : failure));
        return stepping();
    }

    private void fanOut(List<SequenceOutput> outputs) {
        for (SequenceOutput o : outputs) {
            ActorRef<RequestActor.Command> to = o.event() instanceof TokenEvent.Finished
                    ? requests.remove(o.requestId())
                    : requests.get(o.requestId());
            if (to != null) {
                to.tell(new RequestActor.Event(o.event()));
            }
        }
    }
}

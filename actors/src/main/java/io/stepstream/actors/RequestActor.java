package io.stepstream.actors;

import io.stepstream.scheduler.SequenceRequest;
import io.stepstream.scheduler.TokenEvent;
import java.util.ArrayDeque;
import java.util.Optional;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.stream.CompletionStrategy;

/**
 * One request, from admission to the end of its stream. It asks the model's SchedulerActor to admit the sequence,
 * buffers the events the scheduler sends (the scheduler never waits for a consumer) and forwards them one at a
 * time to the stream (ActorSource backpressure: the next event goes when the previous one is acknowledged). It
 * watches the stream: if the consumer cancels or the stream ends early, it cancels the sequence.
 *
 * <p>States: {@link #queued} (admitted, nothing generated yet), {@link #running} (tokens flowing),
 * {@link #finishing} (Finished received, the rest being delivered; stops once Finished is acknowledged),
 * {@link #cancelled} (the stream is gone; waits for the scheduler's Finished so nothing is sent to a dead actor),
 * {@link #failing} (not admitted: fail the stream as soon as it is attached).
 */
final class RequestActor {

    sealed interface Command {
    }

    /** The materialized stream to feed (sent once the ActorSource exists). */
    record StreamReady(ActorRef<Emit> stream) implements Command {
    }

    /** An event of this request from the scheduler. */
    record Event(TokenEvent event) implements Command {
    }

    /** The scheduler refused the request (queue full). */
    record Rejected(RuntimeException cause) implements Command {
    }

    /** The stream took the last element; it may take another. */
    enum Ack implements Command {
        INSTANCE
    }

    /** What the actor sends into its ActorSource. */
    sealed interface Emit {
    }

    record Next(TokenEvent event) implements Emit {
    }

    record Complete() implements Emit {
    }

    record Fail(Throwable cause) implements Emit {
    }

    static Optional<CompletionStrategy> completion(Emit e) {
        return e instanceof Complete ? Optional.of(CompletionStrategy.draining()) : Optional.empty();
    }

    static Optional<Throwable> failure(Emit e) {
        return e instanceof Fail f ? Optional.of(f.cause()) : Optional.empty();
    }

    private final ActorContext<Command> context;
    private final String requestId;
    private final ActorRef<SchedulerActor.Command> scheduler;
    private final ArrayDeque<TokenEvent> outbox = new ArrayDeque<>();
    private ActorRef<Emit> stream;
    private boolean awaitingAck;

    private RequestActor(ActorContext<Command> context, String requestId, ActorRef<SchedulerActor.Command> scheduler) {
        this.context = context;
        this.requestId = requestId;
        this.scheduler = scheduler;
    }

    static Behavior<Command> create(SequenceRequest request, ActorRef<SchedulerActor.Command> scheduler) {
        return Behaviors.setup(ctx -> {
            scheduler.tell(new SchedulerActor.Admit(request, ctx.getSelf()));
            return new RequestActor(ctx, request.requestId(), scheduler).queued();
        });
    }

    private Behavior<Command> queued() {
        return Behaviors.receive(Command.class)
                .onMessage(StreamReady.class, this::attach)
                .onMessage(Ack.class, a -> acked())
                .onMessage(Event.class, this::onEvent)
                .onMessage(Rejected.class, r -> failing(r.cause()))
                .onSignal(Terminated.class, t -> cancel())
                .build();
    }

    private Behavior<Command> running() {
        return Behaviors.receive(Command.class)
                .onMessage(StreamReady.class, this::attach)
                .onMessage(Ack.class, a -> acked())
                .onMessage(Event.class, this::onEvent)
                .onSignal(Terminated.class, t -> cancel())
                .build();
    }

    private Behavior<Command> finishing() {
        if (stream != null && !awaitingAck && outbox.isEmpty()) {
            stream.tell(new Complete());
            return Behaviors.stopped();
        }
        return Behaviors.receive(Command.class)
                .onMessage(StreamReady.class, m -> {
                    attach(m);
                    return finishing();
                })
                .onMessage(Ack.class, a -> {
                    acked();
                    return finishing();
                })
                .onSignal(Terminated.class, t -> Behaviors.stopped()) // consumer gone; the sequence already ended
                .build();
    }

    private Behavior<Command> cancelled() {
        return Behaviors.receive(Command.class)
                .onMessage(Event.class, e -> e.event() instanceof TokenEvent.Finished
                        ? Behaviors.stopped() : Behaviors.same())
                .onMessage(Rejected.class, r -> Behaviors.stopped())
                .onAnyMessage(m -> Behaviors.same())
                .build();
    }

    private Behavior<Command> failing(RuntimeException cause) {
        if (stream != null) {
            stream.tell(new Fail(cause));
            return Behaviors.stopped();
        }
        return Behaviors.receive(Command.class)
                .onMessage(StreamReady.class, m -> {
                    m.stream().tell(new Fail(cause));
                    return Behaviors.stopped();
                })
                .onAnyMessage(m -> Behaviors.same())
                .build();
    }

    private Behavior<Command> attach(StreamReady m) {
        stream = m.stream();
        context.watch(stream);
        pump();
        return Behaviors.same();
    }

    private Behavior<Command> onEvent(Event e) {
        outbox.addLast(e.event());
        pump();
        return e.event() instanceof TokenEvent.Finished ? finishing() : running();
    }

    private Behavior<Command> acked() {
        awaitingAck = false;
        pump();
        return Behaviors.same();
    }

    private Behavior<Command> cancel() {
        scheduler.tell(new SchedulerActor.Cancel(requestId));
        outbox.clear();
        return cancelled();
    }

    private void pump() {
        if (stream != null && !awaitingAck && !outbox.isEmpty()) {
            stream.tell(new Next(outbox.pollFirst()));
            awaitingAck = true;
        }
    }
}

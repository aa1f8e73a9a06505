package io.stepstream.protocol.server;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.scheduler.TokenEvent;
import java.util.Optional;
import java.util.concurrent.Executor;
import org.apache.pekko.NotUsed;
import org.apache.pekko.stream.Attributes;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.SinkQueueWithCancel;
import org.apache.pekko.stream.javadsl.Source;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One Generate call: the service's event source drained into a gRPC server stream under manual flow control.
 *
 * <p>The source is materialized into a pull queue, and the next event is pulled only while the transport says
 * the call is ready, so a slow client holds back its own request (and through the service's backpressure,
 * its sequence) and nothing piles up in the server. When the transport drains, the on-ready handler resumes
 * pulling. A cancel (client cancel, disconnect or deadline) cancels the queue, which cancels the request in
 * the engine.
 *
 * <p>Threads: the on-ready and on-cancel handlers run on the call's serialized executor, pull completions on
 * the materializer's dispatcher. The observer is not thread-safe, so every call on it holds {@code lock}; at
 * most one pull is outstanding (the queue allows one), tracked by {@code pulling}.
 */
final class GenerateStream {
    private static final Logger log = LoggerFactory.getLogger(GenerateStream.class);

    private final ServerCallStreamObserver<GenerateEvent> out;
    private final SinkQueueWithCancel<TokenEvent> queue;
    private final boolean withLogprobs;
    private final Executor completions;
    private final Object lock = new Object();
    private boolean pulling;
    private boolean closed;

    private GenerateStream(ServerCallStreamObserver<GenerateEvent> out, SinkQueueWithCancel<TokenEvent> queue,
                           boolean withLogprobs, Executor completions) {
        this.out = out;
        this.queue = queue;
        this.withLogprobs = withLogprobs;
        this.completions = completions;
    }

    /**
     * Starts streaming {@code source} to {@code out}. Must run inside the service method: gRPC takes the
     * ready and cancel handlers only before the method returns.
     */
    static void start(Source<TokenEvent, NotUsed> source, ServerCallStreamObserver<GenerateEvent> out,
                      boolean withLogprobs, Materializer materializer) {
        // One buffered event: the queue holds back what the client has not made room for, so the service's
        // backpressure (not a server buffer) absorbs a slow client.
        SinkQueueWithCancel<TokenEvent> queue = source
                .toMat(Sink.<TokenEvent>queue().withAttributes(Attributes.inputBuffer(1, 1)),
                        org.apache.pekko.stream.javadsl.Keep.right())
                .run(materializer);
        var stream = new GenerateStream(out, queue, withLogprobs, materializer.executionContext());
        out.setOnCancelHandler(stream::onCancel);
        out.setOnReadyHandler(stream::pump);
        stream.pump();
    }

    /** Pulls the next event if the transport can take it and no pull is outstanding. */
    private void pump() {
        synchronized (lock) {
            if (closed || pulling || !out.isReady()) {
                return;
            }
            pulling = true;
        }
        // Async completion: a pull that is already complete must not recurse into pump() on this stack.
        queue.pull().whenCompleteAsync(this::onPulled, completions);
    }

    private void onPulled(Optional<TokenEvent> next, Throwable failure) {
        synchronized (lock) {
            pulling = false;
            if (closed) {
                return;
            }
            if (failure != null) {
                fail(failure);
                return;
            }
            if (next.isEmpty()) {
                closed = true;
                log.error("Generate stream ended without a final event");
                out.onError(Status.INTERNAL.withDescription("the generation stream ended without a final event")
                        .asRuntimeException());
                return;
            }
            TokenEvent event = next.get();
            out.onNext(EventMapper.toWire(event, withLogprobs));
            if (event instanceof TokenEvent.Finished) {
                closed = true;
                out.onCompleted();
                queue.cancel(); // the source should be complete already; this only releases a stray one
                return;
            }
        }
        pump();
    }

    private void fail(Throwable failure) {
        closed = true;
        if (!ErrorMapping.isExpected(failure)) {
            log.error("Generate failed", failure);
        }
        out.onError(ErrorMapping.toStatus(failure).asRuntimeException());
    }

    private void onCancel() {
        synchronized (lock) {
            closed = true;
        }
        queue.cancel();
    }
}

package io.stepstream.protocol.client;

import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.ListModelsRequest;
import io.stepstream.protocol.v1.ModelCard;
import io.stepstream.protocol.v1.StepStreamGrpc;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * A client of a stepstream server (plaintext gRPC).
 *
 * <p>Calls fail with {@link io.grpc.StatusRuntimeException}: INVALID_ARGUMENT (the description names the
 * field), NOT_FOUND (unknown model), RESOURCE_EXHAUSTED (queue full), DEADLINE_EXCEEDED, CANCELLED,
 * UNAVAILABLE. A client made by {@link #connect} owns its channel and closes it; {@link #withDeadline} gives a
 * view on the same channel that closes nothing.
 */
public final class StepStreamClient implements AutoCloseable {
    private final ManagedChannel channel;
    private final boolean ownsChannel;
    private final Duration deadline;

    private StepStreamClient(ManagedChannel channel, boolean ownsChannel, Duration deadline) {
        this.channel = channel;
        this.ownsChannel = ownsChannel;
        this.deadline = deadline;
    }

    /** Connects to {@code host:port} in plaintext. The connection is made lazily, on the first call. */
    public static StepStreamClient connect(String host, int port) {
        return new StepStreamClient(NettyChannelBuilder.forAddress(host, port).usePlaintext().build(), true, null);
    }

    /** Connects to a "host:port" target. */
    public static StepStreamClient connect(String target) {
        HostPort hostPort = HostPort.parse(target);
        return connect(hostPort.host(), hostPort.port());
    }

    /** A client on a channel the caller built (and closes). */
    public static StepStreamClient over(ManagedChannel channel) {
        return new StepStreamClient(Objects.requireNonNull(channel, "channel"), false, null);
    }

    /** The same connection, with every call of the returned view bounded by {@code deadline} from its start. */
    public StepStreamClient withDeadline(Duration deadline) {
        if (deadline.isNegative() || deadline.isZero()) {
            throw new IllegalArgumentException("deadline: must be positive, got " + deadline);
        }
        return new StepStreamClient(channel, false, deadline);
    }

    /**
     * Starts a generation and returns its events as a blocking iterator: token events, then one final event.
     * The iterator asks the server for one message at a time, so a slow reader slows only its own stream.
     * Close (or cancel) it to stop early; that cancels the request on the server.
     */
    public EventStream generate(GenerateRequest request) {
        Context.CancellableContext context = Context.current().withCancellation();
        Iterator<GenerateEvent> events;
        Context previous = context.attach();
        try {
            events = blockingStub().generate(request);
        } finally {
            context.detach(previous);
        }
        return new EventStream(events, context);
    }

    /**
     * Starts a generation whose events go to {@code observer} (on a gRPC thread). The returned handle cancels
     * it; the observer then sees {@code onError} with CANCELLED.
     */
    public Cancellable generateAsync(GenerateRequest request, StreamObserver<GenerateEvent> observer) {
        Context.CancellableContext context = Context.current().withCancellation();
        context.run(() -> asyncStub().generate(request, observer));
        return () -> context.cancel(null);
    }

    public List<ModelCard> listModels() {
        return blockingStub().listModels(ListModelsRequest.getDefaultInstance()).getModelsList();
    }

    @Override
    public void close() {
        if (!ownsChannel) {
            return;
        }
        channel.shutdown();
        try {
            if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
                channel.shutdownNow();
            }
        } catch (InterruptedException e) {
            channel.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }

    private StepStreamGrpc.StepStreamBlockingStub blockingStub() {
        var stub = StepStreamGrpc.newBlockingStub(channel);
        return deadline == null ? stub : stub.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
    }

    private StepStreamGrpc.StepStreamStub asyncStub() {
        var stub = StepStreamGrpc.newStub(channel);
        return deadline == null ? stub : stub.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** A running call that can be cancelled. */
    @FunctionalInterface
    public interface Cancellable {
        void cancel();
    }

    /** The events of one Generate call; {@link #close()} cancels the call if it has not ended. */
    public static final class EventStream implements Iterator<GenerateEvent>, Cancellable, AutoCloseable {
        private final Iterator<GenerateEvent> events;
        private final Context.CancellableContext context;

        private EventStream(Iterator<GenerateEvent> events, Context.CancellableContext context) {
            this.events = events;
            this.context = context;
        }

        @Override
        public boolean hasNext() {
            return events.hasNext();
        }

        @Override
        public GenerateEvent next() {
            return events.next();
        }

        @Override
        public void cancel() {
            context.cancel(null);
        }

        @Override
        public void close() {
            cancel();
        }
    }

    /** A "host:port" target; an IPv6 host goes in brackets ("[::1]:50051"). */
    public record HostPort(String host, int port) {
        public static HostPort parse(String target) {
            int colon = target == null ? -1 : target.lastIndexOf(':');
            if (colon <= 0 || colon == target.length() - 1) {
                throw new IllegalArgumentException("server: expected HOST:PORT, got '" + target + "'");
            }
            String host = target.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
            int port;
            try {
                port = Integer.parseInt(target.substring(colon + 1));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("server: port must be a number, got '" + target + "'");
            }
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("server: port must be in 1..65535, got " + port);
            }
            return new HostPort(host, port);
        }
    }
}

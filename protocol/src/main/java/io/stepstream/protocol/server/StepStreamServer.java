package io.stepstream.protocol.server;

import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.stepstream.actors.GenerationService;
import io.stepstream.protocol.v1.StepStreamGrpc;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.LongSupplier;
import org.apache.pekko.actor.ClassicActorSystemProvider;
import org.apache.pekko.stream.Materializer;

/**
 * The gRPC server on Netty: the StepStream service, health and reflection.
 *
 * <p>It owns only the Netty server it builds; the {@link GenerationService} and the actor system whose
 * materializer runs the event streams are the caller's, and {@link #close()} leaves them running.
 */
public final class StepStreamServer implements AutoCloseable {
    /** How long {@link #close()} lets running calls finish before cancelling them. */
    public static final Duration DEFAULT_GRACE = Duration.ofSeconds(5);

    private final Server server;
    private final HealthStatusManager health;
    private final Duration grace;
    private final AtomicBoolean closed = new AtomicBoolean();

    private StepStreamServer(Server server, HealthStatusManager health, Duration grace) {
        this.server = server;
        this.health = health;
        this.grace = grace;
    }

    public static Builder builder(GenerationService service, ClassicActorSystemProvider system) {
        return new Builder(service, system);
    }

    /** The address the server is bound to (the real port when 0 was asked). */
    public InetSocketAddress address() {
        return (InetSocketAddress) server.getListenSockets().getFirst();
    }

    public int port() {
        return server.getPort();
    }

    /** Blocks until the server has shut down (after {@link #close()} from another thread). */
    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /**
     * Graceful shutdown: health goes NOT_SERVING, no new calls are taken, running calls get the grace period
     * to finish, then the rest are cancelled (which cancels their requests in the engine).
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        health.enterTerminalState();
        try {
            server.shutdown();
            server.awaitTermination(grace.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            server.shutdownNow();
        }
        try {
            server.awaitTermination(grace.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public static final class Builder {
        private final GenerationService service;
        private final ClassicActorSystemProvider system;
        private String host = "0.0.0.0";
        private int port = 50051;
        private Duration grace = DEFAULT_GRACE;
        private LongSupplier seeds = new SecureRandom()::nextLong;

        private Builder(GenerationService service, ClassicActorSystemProvider system) {
            this.service = Objects.requireNonNull(service, "service");
            this.system = Objects.requireNonNull(system, "system");
        }

        public Builder host(String host) {
            this.host = Objects.requireNonNull(host, "host");
            return this;
        }

        /** 0 binds an ephemeral port; {@link #address()} tells which. */
        public Builder port(int port) {
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("port: must be in 0..65535, got " + port);
            }
            this.port = port;
            return this;
        }

        public Builder grace(Duration grace) {
            this.grace = Objects.requireNonNull(grace, "grace");
            return this;
        }

        /** Where requests without a seed get theirs (tests inject a fixed sequence). */
        public Builder seeds(LongSupplier seeds) {
            this.seeds = Objects.requireNonNull(seeds, "seeds");
            return this;
        }

        /** Binds and starts; an address in use or an unknown host is an {@link UncheckedIOException}. */
        public StepStreamServer start() {
            var health = new HealthStatusManager();
            var grpcService = new StepStreamGrpcService(service, new RequestMapper(service, seeds),
                    Materializer.matFromSystem(system));
            Server server = NettyServerBuilder.forAddress(new InetSocketAddress(host, port))
                    .addService(grpcService)
                    .addService(health.getHealthService())
                    .addService(ProtoReflectionServiceV1.newInstance())
                    .build();
            try {
                server.start();
            } catch (IOException e) {
                server.shutdownNow();
                throw new UncheckedIOException("cannot listen on " + host + ":" + port + ": " + e.getMessage(), e);
            }
            health.setStatus("", ServingStatus.SERVING);
            health.setStatus(StepStreamGrpc.SERVICE_NAME, ServingStatus.SERVING);
            return new StepStreamServer(server, health, grace);
        }
    }
}

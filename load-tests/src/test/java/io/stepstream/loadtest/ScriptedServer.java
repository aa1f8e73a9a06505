package io.stepstream.loadtest;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

/** A real gRPC server on a loopback port chosen by the OS, serving a {@link ScriptedStepStreamService}. */
final class ScriptedServer implements AutoCloseable {

    final ScriptedStepStreamService service;
    private final Server server;

    ScriptedServer(ScriptedStepStreamService service) throws IOException {
        this.service = service;
        this.server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(service)
                .build()
                .start();
    }

    String target() {
        return "127.0.0.1:" + server.getPort();
    }

    ManagedChannel channel() {
        return NettyChannelBuilder.forTarget(target()).usePlaintext().build();
    }

    @Override
    public void close() throws InterruptedException {
        server.shutdownNow();
        server.awaitTermination(10, TimeUnit.SECONDS);
    }
}

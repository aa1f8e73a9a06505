package io.stepstream.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.stepstream.actors.GenerationService;
import io.stepstream.actors.StepStream;
import io.stepstream.actors.StepStreamConfig;
import io.stepstream.protocol.client.StepStreamClient;
import io.stepstream.protocol.server.StepStreamServer;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * The server tests' fixture, registered as a static {@code @RegisterExtension} field: before the class's tests an
 * actor system, a {@link StepStreamServer} on a loopback port over either the real StepStream with the test's
 * models loaded or a service of the test's own (scripted), and a client connected to it; after them, all of that
 * taken down in reverse order, whatever part of the start-up succeeded.
 */
final class LoopbackServer implements BeforeAllCallback, AfterAllCallback {
    private final String systemName;
    /** The real engine's settings and models; null over a scripted service. */
    private final StepStreamConfig config;
    private final String[] models;
    private final Supplier<GenerationService> scripted;
    private final UnaryOperator<StepStreamServer.Builder> options;

    private ActorSystem<Void> system;
    private StepStream stepStream;
    private StepStreamServer server;
    private StepStreamClient client;

    private LoopbackServer(String systemName, StepStreamConfig config, String[] models,
                           Supplier<GenerationService> scripted, UnaryOperator<StepStreamServer.Builder> options) {
        this.systemName = systemName;
        this.config = config;
        this.models = models;
        this.scripted = scripted;
        this.options = options;
    }

    /** The real StepStream with {@code models} loaded, the first the default. */
    static LoopbackServer real(String systemName, StepStreamConfig config, String... models) {
        return new LoopbackServer(systemName, config, models, null, b -> b);
    }

    /** A service of the test's own; {@code options} may set more of the server (seeds, grace). */
    static LoopbackServer over(String systemName, Supplier<GenerationService> service,
                               UnaryOperator<StepStreamServer.Builder> options) {
        return new LoopbackServer(systemName, null, null, service, options);
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        system = ActorSystem.create(Behaviors.empty(), systemName);
        GenerationService service;
        if (scripted != null) {
            service = scripted.get();
        } else {
            stepStream = StepStream.attach(system, config);
            for (String model : models) {
                stepStream.load(model);
            }
            service = stepStream;
        }
        server = options.apply(StepStreamServer.builder(service, system).host("127.0.0.1").port(0)
                .grace(Duration.ofSeconds(2))).start();
        client = StepStreamClient.connect("127.0.0.1", server.port());
    }

    @Override
    public void afterAll(ExtensionContext context) {
        if (client != null) {
            client.close();
        }
        if (server != null) {
            server.close();
        }
        if (stepStream != null) {
            stepStream.close();
        }
        if (system != null) {
            system.terminate();
        }
    }

    StepStreamClient client() {
        return client;
    }

    StepStreamServer server() {
        return server;
    }

    /** The real engine; null over a scripted service. */
    StepStream stepStream() {
        return stepStream;
    }

    /** host:port, as the command line's --server takes it. */
    String target() {
        return "127.0.0.1:" + server.port();
    }

    /** Every event of one request's stream. */
    List<GenerateEvent> collect(GenerateRequest request) {
        var events = new ArrayList<GenerateEvent>();
        client.generate(request).forEachRemaining(events::add);
        return events;
    }

    /** The streamed text, the final event's included. */
    static String text(List<GenerateEvent> events) {
        var text = new StringBuilder();
        for (GenerateEvent e : events) {
            text.append(e.hasToken() ? e.getToken().getText() : e.getFinal().getText());
        }
        return text.toString();
    }

    /** The request fails with INVALID_ARGUMENT, its description starting with the field it names. */
    void assertInvalidArgument(String field, GenerateRequest request) {
        var events = client.generate(request);
        Status status = assertThrows(StatusRuntimeException.class, () -> events.forEachRemaining(e -> { }))
                .getStatus();
        assertEquals(Status.Code.INVALID_ARGUMENT, status.getCode(), field + ": " + status);
        assertNotNull(status.getDescription());
        assertTrue(status.getDescription().startsWith(field + ":"), field + ": " + status.getDescription());
    }
}

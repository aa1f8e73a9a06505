package io.stepstream.protocol.server;

import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.stepstream.actors.GenerationService;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.ListModelsRequest;
import io.stepstream.protocol.v1.ListModelsResponse;
import io.stepstream.protocol.v1.StepStreamGrpc;
import io.stepstream.scheduler.TokenEvent;
import org.apache.pekko.NotUsed;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.javadsl.Source;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The StepStream gRPC service over a {@link GenerationService}. */
public final class StepStreamGrpcService extends StepStreamGrpc.StepStreamImplBase {
    private static final Logger log = LoggerFactory.getLogger(StepStreamGrpcService.class);

    private final GenerationService service;
    private final RequestMapper requests;
    private final Materializer materializer;

    public StepStreamGrpcService(GenerationService service, RequestMapper requests, Materializer materializer) {
        this.service = service;
        this.requests = requests;
        this.materializer = materializer;
    }

    @Override
    public void generate(GenerateRequest request, StreamObserver<GenerateEvent> responseObserver) {
        var out = (ServerCallStreamObserver<GenerateEvent>) responseObserver;
        Source<TokenEvent, NotUsed> source;
        try {
            source = service.generate(requests.toServiceRequest(request));
        } catch (RuntimeException e) {
            // Synchronous rejection: bad input or unknown model, before anything runs.
            if (!ErrorMapping.isExpected(e)) {
                log.error("Generate failed to start", e);
            }
            out.onError(ErrorMapping.toStatus(e).asRuntimeException());
            return;
        }
        try {
            GenerateStream.start(source, out, request.getLogprobs() > 0, materializer);
        } catch (RuntimeException e) {
            // The stream could not even be materialized (an actor system shutting down, say).
            log.error("Generate failed to materialize", e);
            out.onError(ErrorMapping.toStatus(e).asRuntimeException());
        }
    }

    @Override
    public void listModels(ListModelsRequest request, StreamObserver<ListModelsResponse> responseObserver) {
        ListModelsResponse response;
        try {
            response = EventMapper.modelList(service);
        } catch (RuntimeException e) {
            log.error("ListModels failed", e);
            responseObserver.onError(ErrorMapping.toStatus(e).asRuntimeException());
            return;
        }
        responseObserver.onNext(response);
        responseObserver.onCompleted();
    }
}

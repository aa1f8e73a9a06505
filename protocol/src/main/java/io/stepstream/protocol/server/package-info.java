/**
 * The gRPC server: {@link io.stepstream.protocol.server.StepStreamServer} (Netty, health, reflection,
 * graceful shutdown) over any {@link io.stepstream.actors.GenerationService}. Each Generate call drains the
 * service's event source under manual flow control (a pull queue read only while the call is ready), and a
 * cancel, disconnect or deadline cancels the request in the engine. Service exceptions map to statuses in
 * {@link io.stepstream.protocol.server.ErrorMapping}; wire defaults live in
 * {@link io.stepstream.protocol.server.RequestMapper}.
 */
package io.stepstream.protocol.server;

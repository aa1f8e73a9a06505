/** A plaintext gRPC client of the stepstream server: blocking and observer streams, cancel, deadlines. */
package io.stepstream.protocol.client;

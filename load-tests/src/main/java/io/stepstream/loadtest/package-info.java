/**
 * The load harness: sends Generate streams to a running StepStream server and measures serving metrics at
 * the client, with vLLM's serving-benchmark definitions.
 *
 * <ul>
 *   <li>TTFT: send to the first token event with non-empty text (held-back partial characters do not count).
 *   <li>ITL: gaps between successive token events from that first one on.
 *   <li>TPOT: (E2E - TTFT) / (output tokens - 1), output tokens from the final event's usage; only for
 *       requests with at least two output tokens.
 *   <li>E2E: send to the end of the stream.
 *   <li>Throughput: completed requests, output tokens and all tokens per second of the measured run
 *       (first measured send to last stream end); goodput: requests per second meeting every SLO given.
 * </ul>
 *
 * Percentiles are nearest-rank on HdrHistogram (microseconds, 3 significant digits); vLLM interpolates
 * with numpy, so small samples can differ by one rank. Arrivals are closed loop ({@code --concurrency}) or
 * open loop with gamma gaps ({@code --rate}, {@code --burstiness}); warm-up requests are not measured.
 * Entry point: {@link io.stepstream.loadtest.LoadTestMain}.
 */
package io.stepstream.loadtest;

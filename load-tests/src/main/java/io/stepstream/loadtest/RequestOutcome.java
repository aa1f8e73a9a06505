package io.stepstream.loadtest;

/**
 * What the client saw of one request. Times are nanoseconds measured from the moment the request was sent.
 *
 * @param failure          null for a request that finished normally; otherwise the gRPC status code name
 *                         (INVALID_ARGUMENT, UNAVAILABLE, ...) or a harness code for a broken stream
 *                         (MISSING_FINAL_EVENT, FINISH_REASON_ERROR, ...)
 * @param failureMessage   the status description or other detail; null on success
 * @param finishReason     the final event's finish reason; null when none arrived
 * @param e2eNanos         send to the end of the stream (final event, error or completion)
 * @param ttftNanos        send to the first token event with non-empty text, or {@link #NO_TTFT}
 * @param interTokenNanos  gaps between successive token events from the first one with text on
 * @param promptTokens     the final event's usage.prompt_tokens (0 if none)
 * @param outputTokens     the final event's usage.completion_tokens (0 if none)
 */
public record RequestOutcome(
        String failure,
        String failureMessage,
        String finishReason,
        long e2eNanos,
        long ttftNanos,
        long[] interTokenNanos,
        int promptTokens,
        int outputTokens) {

    public static final long NO_TTFT = -1;

    private static final long[] NO_GAPS = new long[0];

    public static RequestOutcome failed(String failure, String message, String finishReason, long e2eNanos) {
        return new RequestOutcome(failure, message, finishReason, e2eNanos, NO_TTFT, NO_GAPS, 0, 0);
    }

    public boolean succeeded() {
        return failure == null;
    }

    public boolean hasTtft() {
        return ttftNanos != NO_TTFT;
    }

    /** TPOT is defined for a successful request with a first token and at least two output tokens. */
    public boolean hasTpot() {
        return succeeded() && hasTtft() && outputTokens >= 2;
    }

    /** (E2E - TTFT) / (output tokens - 1): the mean time per output token after the first. */
    public double tpotNanos() {
        if (!hasTpot()) {
            throw new IllegalStateException("TPOT needs a successful request with a first token and >= 2 output tokens");
        }
        return (double) (e2eNanos - ttftNanos) / (outputTokens - 1);
    }
}

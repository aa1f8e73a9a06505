package io.stepstream.scheduler;

import io.stepstream.engine.KvCache;
import io.stepstream.engine.Sampler;

/**
 * One request's mutable state inside the scheduler: its tokens (prompt, then generated), how much of the prompt
 * is in its KV cache, and the per-sequence sampler, text decoder and stop-string filter.
 *
 * <p>Owned by the scheduling thread, except that {@link Scheduler#execute} reads {@code tokens}, {@code cache}
 * and uses {@code sampler} of the sequences in the step it runs; the scheduling thread leaves those alone while
 * the step is in flight.
 */
final class Sequence extends TrackedSequence {
    /** Prompt tokens followed by generated ones; {@code tokens[0 .. length)} are valid. */
    final int[] tokens;
    int length;
    /** Prompt tokens already written to the KV cache. */
    int prefilled;

    KvCache cache;
    Sampler sampler;

    Sequence(SequenceRequest request, int contextLength, long queuedAtNanos) {
        super(request, request.promptTokens().length, queuedAtNanos);
        int[] prompt = request.promptTokens();
        // Never more than the context (plus the one token sampled from a context-filling prompt) nor the budget.
        long capacity = Math.min((long) promptLength + request.maxTokens(), Math.max(contextLength, promptLength + 1));
        this.tokens = new int[(int) capacity];
        System.arraycopy(prompt, 0, tokens, 0, promptLength);
        this.length = promptLength;
    }

    int generated() {
        return length - promptLength;
    }

    @Override
    int completionTokens() {
        return generated();
    }

    @Override
    int prefilledTokens() {
        return prefilled;
    }

    boolean prefilling() {
        return prefilled < promptLength;
    }
}

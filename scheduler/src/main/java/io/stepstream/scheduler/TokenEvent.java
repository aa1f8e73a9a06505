package io.stepstream.scheduler;

import io.stepstream.engine.TokenLogprob;
import java.util.List;

/**
 * What one request streams: its generated tokens, then exactly one {@link Finished}. A diffusion-LM request that
 * asked for progress also gets a {@link DenoiseProgress} after each of its denoising steps.
 */
public sealed interface TokenEvent {

    /**
     * One generated token.
     *
     * @param text        the text this token completes (may be empty while a UTF-8 character or a possible
     *                    stop string is held back; held-back text arrives with a later token)
     * @param logprob     log-probability of this token under the model (NaN when logprobs were not asked)
     * @param topLogprobs the most likely tokens at this position, most likely first (empty when not asked)
     */
    record Token(int tokenId, String text, float logprob, List<TokenLogprob> topLogprobs) implements TokenEvent {
        public Token {
            topLogprobs = List.copyOf(topLogprobs);
        }
    }

    /**
     * One denoising step of a diffusion-LM request is done (only sent when the request asked for progress). It
     * comes before the tokens of a block that step completed.
     *
     * @param step      the request's denoising step (forward pass) just run, counting from 0
     * @param committed generated positions holding a token so far (gen_length when all are filled)
     * @param block     the block that step worked on, counting from 0
     */
    record DenoiseProgress(int step, int committed, int block) implements TokenEvent {
    }

    /** The end of the stream, with usage. {@code text} is the last held-back text, usually empty. */
    record Finished(FinishReason reason, int promptTokens, int completionTokens, String text) implements TokenEvent {
    }
}

package io.stepstream.protocol.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.stepstream.protocol.v1.DenoiseProgressEvent;
import io.stepstream.protocol.v1.FinalEvent;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.TokenEvent;
import io.stepstream.protocol.v1.TokenLogprob;
import java.io.PrintStream;

/** Writes a generation's events to stdout as they come: plain text, or one JSON object per event per line. */
sealed interface EventPrinter {
    void print(GenerateEvent event);

    static EventPrinter of(PrintStream out, PrintStream err, boolean json, boolean withLogprobs) {
        return json ? new Json(out, withLogprobs) : new Text(out, err);
    }

    /**
     * The text of each token as it arrives (flushed, so a terminal shows it live), a newline at the end. Diffusion
     * progress goes to {@code err}, one line per step, so stdout stays the story.
     */
    record Text(PrintStream out, PrintStream err) implements EventPrinter {
        @Override
        public void print(GenerateEvent event) {
            switch (event.getEventCase()) {
                case TOKEN -> out.print(event.getToken().getText());
                case FINAL -> out.println(event.getFinal().getText());
                case PROGRESS -> {
                    DenoiseProgressEvent p = event.getProgress();
                    err.println("[step " + p.getStep() + ", block " + p.getBlock() + ": " + p.getCommitted()
                            + " committed]");
                    err.flush();
                }
                case EVENT_NOT_SET -> {
                }
            }
            out.flush();
        }
    }

    /**
     * {"token_id":..,"text":"..","logprob":..,"logprobs":[{"token_id":..,"logprob":..}..]} per token (the
     * log-probabilities only when asked), {"progress":{"step":..,"committed":..,"block":..}} per denoising step
     * when asked, then {"finish_reason":"..","usage":{..}} (with "text" when the end released held-back text).
     */
    final class Json implements EventPrinter {
        private static final ObjectMapper MAPPER = new ObjectMapper();
        private final PrintStream out;
        private final boolean withLogprobs;

        Json(PrintStream out, boolean withLogprobs) {
            this.out = out;
            this.withLogprobs = withLogprobs;
        }

        @Override
        public void print(GenerateEvent event) {
            ObjectNode line = switch (event.getEventCase()) {
                case TOKEN -> token(event.getToken());
                case FINAL -> last(event.getFinal());
                case PROGRESS -> progress(event.getProgress());
                case EVENT_NOT_SET -> null;
            };
            if (line != null) {
                out.println(line.toString());
                out.flush();
            }
        }

        private ObjectNode token(TokenEvent token) {
            ObjectNode node = MAPPER.createObjectNode();
            node.put("token_id", token.getTokenId());
            node.put("text", token.getText());
            if (withLogprobs) {
                if (token.hasLogprob()) {
                    node.put("logprob", token.getLogprob());
                }
                ArrayNode top = node.putArray("logprobs");
                for (TokenLogprob logprob : token.getTopLogprobsList()) {
                    top.addObject().put("token_id", logprob.getTokenId()).put("logprob", logprob.getLogprob());
                }
            }
            return node;
        }

        private static ObjectNode progress(DenoiseProgressEvent p) {
            ObjectNode node = MAPPER.createObjectNode();
            node.putObject("progress")
                    .put("step", p.getStep())
                    .put("committed", p.getCommitted())
                    .put("block", p.getBlock());
            return node;
        }

        private static ObjectNode last(FinalEvent last) {
            ObjectNode node = MAPPER.createObjectNode();
            node.put("finish_reason", last.getFinishReason());
            node.putObject("usage")
                    .put("prompt_tokens", last.getUsage().getPromptTokens())
                    .put("completion_tokens", last.getUsage().getCompletionTokens());
            if (!last.getText().isEmpty()) {
                node.put("text", last.getText());
            }
            return node;
        }
    }
}

package io.stepstream.protocol.server;

import io.grpc.Status;
import io.stepstream.actors.InvalidRequestException;
import io.stepstream.actors.ModelNotFoundException;
import io.stepstream.actors.QueueFullException;
import java.util.Locale;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * Turns the service's exceptions into gRPC statuses. Descriptions name the proto field (top_p, not topP) so
 * that a client can act on them; anything unexpected becomes INTERNAL with a short description only, since a
 * stack trace belongs in the server log, not on the wire.
 */
public final class ErrorMapping {
    private ErrorMapping() {
    }

    public static Status toStatus(Throwable failure) {
        Throwable cause = unwrap(failure);
        return switch (cause) {
            case InvalidRequestException e ->
                    Status.INVALID_ARGUMENT.withDescription(protoFieldName(e.field()) + ": " + reason(e));
            case ModelNotFoundException e ->
                    Status.NOT_FOUND.withDescription("model: no model named '" + e.model() + "' is loaded");
            case QueueFullException e -> Status.RESOURCE_EXHAUSTED.withDescription(e.getMessage());
            default -> Status.INTERNAL.withDescription("internal error (" + cause.getClass().getSimpleName() + ")");
        };
    }

    /** Whether the status is one the server expects in normal operation (not worth a stack trace in the log). */
    public static boolean isExpected(Throwable failure) {
        Throwable cause = unwrap(failure);
        return cause instanceof InvalidRequestException || cause instanceof ModelNotFoundException
                || cause instanceof QueueFullException;
    }

    static Throwable unwrap(Throwable failure) {
        Throwable t = failure;
        while ((t instanceof CompletionException || t instanceof ExecutionException) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    private static String reason(InvalidRequestException e) {
        String message = e.getMessage();
        String prefix = e.field() + ": ";
        return message != null && message.startsWith(prefix) ? message.substring(prefix.length()) : message;
    }

    /**
     * The proto name of a request field as the service may spell it: "sampling.topP" and "topP" give "top_p",
     * "stopStrings" gives "stop", "promptTokenIds[3]" gives "prompt_token_ids[3]"; a field of the nested
     * diffusion message keeps its message: "diffusion.genLength" gives "diffusion.gen_length", and so does one of
     * its sparsed message: "diffusion.sparsed.blockSize" gives "diffusion.sparsed.block_size".
     */
    public static String protoFieldName(String field) {
        if (field == null || field.isEmpty()) {
            return "request";
        }
        if (field.startsWith("diffusion.sparsed.")) {
            return "diffusion.sparsed." + protoFieldName(field.substring("diffusion.sparsed.".length()));
        }
        if (field.startsWith("diffusion.")) {
            return "diffusion." + protoFieldName(field.substring("diffusion.".length()));
        }
        String name = field.substring(field.lastIndexOf('.') + 1);
        int index = name.indexOf('[');
        String suffix = index < 0 ? "" : name.substring(index);
        String base = index < 0 ? name : name.substring(0, index);
        StringBuilder snake = new StringBuilder(base.length() + 4);
        for (int i = 0; i < base.length(); i++) {
            char c = base.charAt(i);
            if (Character.isUpperCase(c)) {
                if (i > 0) {
                    snake.append('_');
                }
                snake.append(Character.toLowerCase(c));
            } else {
                snake.append(c);
            }
        }
        String proto = switch (snake.toString().toLowerCase(Locale.ROOT)) {
            case "stop_strings", "stop_string", "stops" -> "stop";
            default -> snake.toString();
        };
        return proto + suffix;
    }
}

package io.stepstream.protocol.cli;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.stepstream.protocol.server.ErrorMapping;

/**
 * A command's failure as the user sees it: one line on stderr and an exit code (2 for bad input, 1 for
 * anything else). Thrown by commands, turned into the line and the code by {@link StepStreamCli}.
 */
final class CliFailure extends RuntimeException {
    static final int BAD_INPUT = 2;
    static final int FAILED = 1;

    private final int exitCode;

    CliFailure(int exitCode, String message) {
        super(message, null, false, false);
        this.exitCode = exitCode;
    }

    int exitCode() {
        return exitCode;
    }

    static CliFailure badInput(String message) {
        return new CliFailure(BAD_INPUT, message);
    }

    /** A failure from the engine in this process, mapped like the server maps it. */
    static CliFailure fromLocal(Throwable failure) {
        return fromStatus(ErrorMapping.toStatus(failure));
    }

    /** A failure of a call to a server. */
    static CliFailure fromRemote(StatusRuntimeException failure, String target) {
        Status status = failure.getStatus();
        if (status.getCode() == Status.Code.UNAVAILABLE) {
            return new CliFailure(FAILED, "cannot reach the server at " + target + ": "
                    + oneLine(status.getDescription() == null ? "unavailable" : status.getDescription()));
        }
        return fromStatus(status);
    }

    private static CliFailure fromStatus(Status status) {
        String description = status.getDescription() == null ? status.getCode().name() : status.getDescription();
        int code = switch (status.getCode()) {
            case INVALID_ARGUMENT, NOT_FOUND -> BAD_INPUT;
            default -> FAILED;
        };
        String prefix = switch (status.getCode()) {
            case INVALID_ARGUMENT, NOT_FOUND -> "";
            case RESOURCE_EXHAUSTED -> "server busy: ";
            case DEADLINE_EXCEEDED -> "deadline exceeded: ";
            default -> "failed: ";
        };
        return new CliFailure(code, prefix + oneLine(description));
    }

    static String oneLine(String text) {
        return text == null ? "" : text.replaceAll("\\s*[\\r\\n]+\\s*", " ").strip();
    }
}

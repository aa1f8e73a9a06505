package io.stepstream.actors;

/** A request field has a bad value. The message names the field and the reason. */
public final class InvalidRequestException extends IllegalArgumentException {
    private final String field;

    public InvalidRequestException(String field, String reason) {
        super(field + ": " + reason);
        this.field = field;
    }

    public String field() {
        return field;
    }
}

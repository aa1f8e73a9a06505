package io.stepstream.scheduler;

/** Why a sequence stopped. */
public enum FinishReason {
    /** EOS or a stop string. */
    STOP,
    /** max_tokens reached, or the context is full. */
    LENGTH,
    /** The client cancelled or went away. */
    CANCELLED,
    /** The engine failed while running this sequence. */
    ERROR;

    /** The lower-case name used on the wire and in JSON ("stop", "length", ...). */
    public String wireName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}

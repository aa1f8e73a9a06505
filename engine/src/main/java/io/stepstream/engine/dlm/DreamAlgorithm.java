package io.stepstream.engine.dlm;

import java.util.Arrays;
import java.util.Locale;

/** Dream's {@code alg}: how a step picks which masked positions to fill (see {@link DreamGeneration}). */
public enum DreamAlgorithm {
    /** Each masked position is filled with probability 1 - s/t (every one at the last step); no confidence. */
    ORIGIN("origin"),
    /** Confidence = the probability of the chosen token. */
    MASKGIT_PLUS("maskgit_plus"),
    /** Confidence = top-1 probability minus top-2 probability. */
    TOPK_MARGIN("topk_margin"),
    /** Confidence = minus the entropy of the position's distribution. */
    ENTROPY("entropy");

    private final String wireName;

    DreamAlgorithm(String wireName) {
        this.wireName = wireName;
    }

    /** The name Dream's code (and the wire protocol) spells it with. */
    public String wireName() {
        return wireName;
    }

    /** By Dream's name, any case; an unknown name is an error naming the field alg. */
    public static DreamAlgorithm of(String name) {
        if (name != null) {
            for (DreamAlgorithm a : values()) {
                if (a.wireName.equals(name.toLowerCase(Locale.ROOT))) {
                    return a;
                }
            }
        }
        throw new IllegalArgumentException("alg must be one of " + Arrays.stream(values()).map(a -> a.wireName).toList()
                + ", got " + name);
    }
}

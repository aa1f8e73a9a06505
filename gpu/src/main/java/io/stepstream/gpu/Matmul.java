package io.stepstream.gpu;

import java.util.Locale;

/**
 * Which kernels run the matmul passes under the direct dispatch: our hand-written OpenCL C ({@link MatmulProgram},
 * matmul.cl) or the matmul of the Aparapi-generated step kernel. The Aparapi dispatch always runs Aparapi's.
 * Chosen per model, by default from the system property {@value #PROPERTY}.
 */
public enum Matmul {
    HAND, APARAPI;

    /** System property naming the default: {@code hand} or {@code aparapi}. */
    public static final String PROPERTY = "stepstream.opencl.matmul";

    /**
     * System property: {@code all} (default) runs every pass of a hand step as a hand kernel (step.cl for the
     * non-matmul passes), {@code matmul} only the matmul passes (the rest stay Aparapi's generated passes).
     */
    public static final String HAND_PASSES_PROPERTY = "stepstream.opencl.handPasses";

    /** Whether the non-matmul passes run as hand kernels too under HAND, as {@value #HAND_PASSES_PROPERTY} says. */
    public static boolean handAllPasses() {
        String v = System.getProperty(HAND_PASSES_PROPERTY, "all").strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "all", "" -> true;
            case "matmul" -> false;
            default -> throw new IllegalArgumentException(HAND_PASSES_PROPERTY + " must be all or matmul, got '" + v
                    + "'");
        };
    }

    /** The default when nothing is asked for. */
    public static final Matmul DEFAULT = HAND;

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** {@code hand} or {@code aparapi} (any case); anything else is an error naming the accepted values. */
    public static Matmul parse(String s) {
        String v = s == null ? "" : s.strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "hand" -> HAND;
            case "aparapi" -> APARAPI;
            default -> throw new IllegalArgumentException(PROPERTY + " / --matmul must be hand or aparapi, got '" + s
                    + "'");
        };
    }

    /** The matmul the property asks for, else the default. */
    public static Matmul fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? DEFAULT : parse(v);
    }
}

package io.stepstream.gpu;

import java.util.Locale;

/**
 * How a device model's passes reach the GPU: through Aparapi's {@code Kernel.execute} (which waits for each
 * pass before enqueueing the next) or through our own OpenCL queue ({@link DirectLauncher}, no wait between
 * passes). Chosen per model, by default from the system property {@value #PROPERTY}.
 */
public enum Dispatch {
    APARAPI, DIRECT;

    /** System property naming the default dispatch: {@code aparapi} or {@code direct}. */
    public static final String PROPERTY = "stepstream.opencl.dispatch";

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** {@code aparapi} or {@code direct} (any case); anything else is an error naming the accepted values. */
    public static Dispatch parse(String s) {
        String v = s == null ? "" : s.strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "aparapi" -> APARAPI;
            case "direct" -> DIRECT;
            default -> throw new IllegalArgumentException("dispatch must be aparapi or direct, got '" + s + "'");
        };
    }

    /** The dispatch the property asks for, else the default. */
    public static Dispatch fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? DEFAULT : parse(v);
    }

    /** The default when nothing is asked for. */
    public static final Dispatch DEFAULT = DIRECT;
}

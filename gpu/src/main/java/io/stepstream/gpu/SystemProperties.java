package io.stepstream.gpu;

/** The backend's shared reading of its tuning system properties. */
final class SystemProperties {
    private SystemProperties() {
    }

    /**
     * System property {@code name}: {@code auto} (the default when unset) as 0, else an integer in
     * [{@code min}, {@code max}]; anything else is rejected naming the property and {@code what} it takes.
     */
    static int autoOrInt(String name, int min, int max, String what) {
        String v = System.getProperty(name, "auto").strip();
        if (v.equalsIgnoreCase("auto")) {
            return 0;
        }
        try {
            int n = Integer.parseInt(v);
            if (n >= min && n <= max) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(name + " must be auto or " + what + ", got '" + v + "'");
    }
}

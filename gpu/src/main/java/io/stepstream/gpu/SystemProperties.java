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

    /**
     * A spec of comma-separated {@code name=positive integer} parts (a tile's shape), each name one of {@code names}:
     * the values by name (names not given are absent); a malformed part or an unknown name is rejected naming
     * {@code property} and the names it takes.
     */
    static java.util.Map<String, Integer> namedInts(String property, String spec, java.util.List<String> names) {
        java.util.Map<String, Integer> values = new java.util.HashMap<>();
        String list = String.join(", ", names);
        for (String part : spec.split(",")) {
            if (part.isBlank()) {
                continue;
            }
            String[] kv = part.split("=", 2);
            int v;
            try {
                v = kv.length == 2 ? Integer.parseInt(kv[1].strip()) : -1;
            } catch (NumberFormatException e) {
                v = -1;
            }
            if (v < 1) {
                throw new IllegalArgumentException(property + ": '" + part.strip() + "' is not name=positive integer ("
                        + list + ")");
            }
            String name = kv[0].strip();
            if (!names.contains(name)) {
                throw new IllegalArgumentException(property + ": unknown name '" + name + "' (" + list + ")");
            }
            values.put(name, v);
        }
        return values;
    }
}

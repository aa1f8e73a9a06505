package io.stepstream.engine.format.safetensors;

import io.stepstream.engine.ModelLoadException;

import java.util.Set;

/** The element types stepstream reads from safetensors files, with their width in bytes. */
public enum SafetensorsDtype {
    F32(4),
    F16(2),
    BF16(2);

    /** Types the safetensors format defines that stepstream does not read (named so the error can say so). */
    private static final Set<String> KNOWN_UNSUPPORTED = Set.of("F64", "I64", "I32", "I16", "I8", "U64", "U32",
            "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64");

    private final int bytes;

    SafetensorsDtype(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** The dtype named in a header; {@code where} names the file and tensor for the error. */
    static SafetensorsDtype parse(String name, String where) {
        for (SafetensorsDtype d : values()) {
            if (d.name().equals(name)) {
                return d;
            }
        }
        if (KNOWN_UNSUPPORTED.contains(name)) {
            throw new ModelLoadException(where + ": dtype " + name + " is not supported (supported: F32, F16, BF16)");
        }
        throw new ModelLoadException(where + ": unknown dtype \"" + name + "\" (supported: F32, F16, BF16)");
    }
}

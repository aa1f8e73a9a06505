package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.lang.foreign.MemorySegment;
import java.util.Locale;

/**
 * The element type of a device KV pool: f32 (the default) or f16, IEEE half bits, 2 bytes an element, as vLLM's
 * {@code --kv-cache-dtype} and llama.cpp's default F16 cache. Decode attention at long contexts is bound by reading
 * the pool, so f16 halves its bytes (and holds twice the positions in the same memory). The hand kernels take it as a
 * build define (kv.cl's macros): writes round to nearest even, reads widen exactly, all arithmetic stays f32.
 *
 * <p>Only the direct dispatch's hand path (every pass a hand kernel) keeps an f16 pool, and always on the device
 * alone: the Aparapi-translated passes and the Java mirror of the pool are float. Diffusion models keep f32 (their
 * pool is a launch's scratch for its canvases, not a long-lived cache).
 */
public enum KvCacheType {
    F32(Float.BYTES, ""),
    F16(2, " -DKV_F16");

    /** System property naming the default KV element type of autoregressive OpenCL models: {@code f32} or {@code f16}. */
    public static final String PROPERTY = "stepstream.opencl.kvCache";

    private final int bytes;
    private final String define;

    KvCacheType(int bytes, String define) {
        this.bytes = bytes;
        this.define = define;
    }

    /** Bytes of one pool element. */
    public int bytes() {
        return bytes;
    }

    /**
     * System property: how the kernels that read an f16 pool widen its halves: {@code auto} (the default: {@code ptx}
     * on an NVIDIA device, else {@code vload}), {@code vload} (vload_half4 on a private copy of the loaded words, as
     * the F16 weights), {@code bits} (an exact conversion with integer operations in registers) or {@code ptx}
     * (NVIDIA's cvt.f32.f16 through inline PTX; where it does not build, e.g. PoCL, vload). All exact. Read when a
     * program is built.
     */
    public static final String HALF_CONVERT_PROPERTY = "stepstream.opencl.kvHalfConvert";

    /** The build option of every program that touches the pool (empty for f32, with a leading space else). */
    String define() {
        return define;
    }

    /** A program built with this pool's defines, and how it widens an f16 pool's halves ("" for f32). */
    record Built(MemorySegment program, String convert) {
    }

    /**
     * Builds {@code source} (with kv.cl in it) with {@code options} and this pool's defines; for f16 also the
     * conversion {@value #HALF_CONVERT_PROPERTY} asks for, the inline-PTX one in either asm spelling and, where
     * neither builds, vload_half.
     */
    Built build(ClQueue queue, String source, String options) {
        if (this != F16) {
            return new Built(queue.buildProgram(source, options + define), "");
        }
        String v = System.getProperty(HALF_CONVERT_PROPERTY, "auto").strip().toLowerCase(Locale.ROOT);
        String mode = switch (v) {
            case "auto" -> ClRuntime.nvComputeCapability(queue.device()) > 0 ? "ptx" : "vload";
            case "vload", "bits", "ptx" -> v;
            default -> throw new IllegalArgumentException(HALF_CONVERT_PROPERTY + " must be auto, vload, bits or ptx,"
                    + " got '" + v + "'");
        };
        if (mode.equals("bits")) {
            return new Built(queue.buildProgram(source, options + define + " -DKV_CVT=1"), "bits");
        }
        if (mode.equals("ptx")) {
            for (int spelling = 1; spelling <= 2; spelling++) {
                try {
                    return new Built(queue.buildProgram(source, options + define + " -DKV_CVT=2 -DKV_PTX=" + spelling),
                            "ptx");
                } catch (OpenClException e) {
                    // the other spelling, then vload_half
                }
            }
            return new Built(queue.buildProgram(source, options + define), "vload (ptx did not build)");
        }
        return new Built(queue.buildProgram(source, options + define), "vload");
    }

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** {@code f32} or {@code f16} (any case); anything else is an error naming the property and the values. */
    public static KvCacheType parse(String s) {
        String v = s == null ? "" : s.strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "f32" -> F32;
            case "f16" -> F16;
            default -> throw new IllegalArgumentException(PROPERTY + " / --kv-cache must be f32 or f16, got '" + s + "'");
        };
    }

    /** The type the property asks for, else f32. */
    public static KvCacheType fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? F32 : parse(v);
    }
}

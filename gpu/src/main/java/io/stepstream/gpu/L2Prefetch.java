package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Whether, and how, the matvec kernels ask the L2 cache for the weights of the matmuls after them
 * ({@value #PROPERTY}). At one token a matvec of a 2048 x 2048 f32 matrix takes ~10 us for 16.8 MB that the HBM
 * moves in ~4: between the kernels (the slowest groups finishing, the next launch, the attention kernels, which
 * read little) the memory is idle. Each matvec therefore prefetches the next {@code bytes} of the step's weight
 * stream (the matmuls that follow it in the launch, in the order their groups read them) into L2, so that those
 * bytes are on their way while it drains and the next kernels start. A prefetch is a hint: no result changes.
 *
 * <p>{@code off} (the default), or {@code SIZE[,kind=K][,at=begin|end][,line=N]}: SIZE in bytes with an optional
 * k/m suffix (e.g. {@code 16m}); kind {@code line} (PTX {@code prefetch.global.L2}, default), {@code last}
 * ({@code prefetch.global.L2::evict_last}), {@code bulk} ({@code cp.async.bulk.prefetch.L2}, a whole line of N
 * bytes in one instruction, compute capability 9.0) or {@code builtin} (OpenCL C's {@code prefetch}, any device);
 * at {@code end} (default: after the kernel's own weight loads) or {@code begin}; line N bytes per prefetch (a
 * power of two, 32..65536, default 128). The PTX kinds need an NVIDIA device whose compiler builds them (a probe
 * program per device and kind); elsewhere the kind falls back to {@code builtin}, logged once.
 */
record L2Prefetch(long bytes, Kind kind, boolean atEnd, int lineBytes) {
    static final String PROPERTY = "stepstream.opencl.l2Prefetch";
    static final L2Prefetch OFF = new L2Prefetch(0, Kind.LINE, true, 128);

    /** The prefetch instruction; {@code code} is mv.cl's MV_PF. */
    enum Kind {
        LINE(1, 80), LAST(2, 80), BULK(3, 90), BUILTIN(4, 0);

        final int code;
        /** The least NVIDIA compute capability (major * 10 + minor) with the instruction; 0: any device. */
        final int minCapability;

        Kind(int code, int minCapability) {
            this.code = code;
            this.minCapability = minCapability;
        }
    }

    private static final System.Logger LOG = System.getLogger(L2Prefetch.class.getName());
    /** Per device and kind: the inline-asm spelling that built (1 asm, 2 __asm__) or 0 (none did). */
    private static final Map<String, Integer> PTX_SPELLING = new ConcurrentHashMap<>();

    L2Prefetch {
        if (bytes < 0) {
            throw new IllegalArgumentException(PROPERTY + ": size " + bytes + " < 0");
        }
        if (lineBytes < 32 || lineBytes > 65536 || Integer.bitCount(lineBytes) != 1) {
            throw new IllegalArgumentException(PROPERTY + ": line " + lineBytes
                    + " is not a power of two in 32..65536 bytes");
        }
    }

    boolean on() {
        return bytes > 0;
    }

    static L2Prefetch fromSystemProperty() {
        return parse(System.getProperty(PROPERTY, "off"));
    }

    static L2Prefetch parse(String spec) {
        String s = spec.strip().toLowerCase(Locale.ROOT);
        if (s.isEmpty() || s.equals("off") || s.equals("0")) {
            return OFF;
        }
        String[] parts = s.split(",");
        long bytes = size(parts[0].strip());
        Kind kind = Kind.LINE;
        boolean atEnd = true;
        int line = 128;
        for (int i = 1; i < parts.length; i++) {
            String[] kv = parts[i].split("=", 2);
            String name = kv[0].strip();
            String value = kv.length == 2 ? kv[1].strip() : "";
            switch (name) {
                case "kind" -> kind = switch (value) {
                    case "line" -> Kind.LINE;
                    case "last" -> Kind.LAST;
                    case "bulk" -> Kind.BULK;
                    case "builtin" -> Kind.BUILTIN;
                    default -> throw new IllegalArgumentException(PROPERTY + ": kind '" + value
                            + "' is not line, last, bulk or builtin");
                };
                case "at" -> atEnd = switch (value) {
                    case "end" -> true;
                    case "begin" -> false;
                    default -> throw new IllegalArgumentException(PROPERTY + ": at '" + value + "' is not begin or end");
                };
                case "line" -> line = (int) Math.min(Integer.MAX_VALUE, size(value));
                default -> throw new IllegalArgumentException(PROPERTY + ": unknown setting '" + parts[i].strip()
                        + "' (kind, at, line)");
            }
        }
        return new L2Prefetch(bytes, kind, atEnd, line);
    }

    /** A byte count: digits with an optional k or m suffix. */
    private static long size(String v) {
        long unit = 1;
        String digits = v;
        if (v.endsWith("k")) {
            unit = 1024;
            digits = v.substring(0, v.length() - 1);
        } else if (v.endsWith("m")) {
            unit = 1024 * 1024;
            digits = v.substring(0, v.length() - 1);
        }
        try {
            long n = Long.parseLong(digits);
            if (n >= 0 && n <= (1L << 40) / unit) {
                return n * unit;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(PROPERTY + ": '" + v + "' is not a byte count (digits, optional k or m)");
    }

    /**
     * The settings this device builds: a PTX kind where the device has it and a probe program with the
     * instruction builds, else {@code builtin} (logged once per device and kind). Off stays off.
     */
    L2Prefetch forDevice(ClQueue queue) {
        if (!on() || kind == Kind.BUILTIN || ptxSpelling(queue) > 0) {
            return this;
        }
        return new L2Prefetch(bytes, Kind.BUILTIN, atEnd, lineBytes);
    }

    /** The -D options of a matmul.cl build (MV_PF 0 when off). */
    String defines(ClQueue queue) {
        if (!on()) {
            return "";
        }
        int spelling = kind == Kind.BUILTIN ? 0 : ptxSpelling(queue);
        return " -DMV_PF=" + kind.code + " -DMV_PF_LINE=" + lineBytes + " -DMV_PF_END=" + (atEnd ? 1 : 0)
                + (spelling > 0 ? " -DMV_PF_ASM=" + spelling : "");
    }

    /** 1 or 2 (the asm keyword that built the probe), or 0 when the device cannot run this kind's PTX. */
    private int ptxSpelling(ClQueue queue) {
        String key = queue.device().name().strip() + "/" + kind + "/" + lineBytes;
        return PTX_SPELLING.computeIfAbsent(key, k -> {
            if (ClRuntime.nvComputeCapability(queue.device()) < kind.minCapability) {
                LOG.log(System.Logger.Level.WARNING, PROPERTY + ": " + kind.name().toLowerCase(Locale.ROOT)
                        + " needs an NVIDIA device of compute capability " + kind.minCapability / 10.0 + "; "
                        + queue.device().name().strip() + " prefetches with OpenCL C's prefetch instead");
                return 0;
            }
            StringBuilder logs = new StringBuilder();
            for (int spelling = 1; spelling <= 2; spelling++) {
                try {
                    queue.buildProgram(MatmulProgram.source(), " -DWT=0 -DMV_PF=" + kind.code + " -DMV_PF_LINE="
                            + lineBytes + " -DMV_PF_ASM=" + spelling);
                    return spelling;
                } catch (OpenClException e) {
                    logs.append(e.getMessage()).append('\n');
                }
            }
            LOG.log(System.Logger.Level.WARNING, PROPERTY + ": the " + kind.name().toLowerCase(Locale.ROOT)
                    + " prefetch does not build on " + queue.device().name().strip()
                    + "; OpenCL C's prefetch instead. " + logs);
            return 0;
        });
    }
}

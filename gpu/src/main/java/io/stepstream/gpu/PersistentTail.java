package io.stepstream.gpu;

import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * tail.cl's {@code tail_t1}: one launch that runs the rest of a layer after its attention for a one-token step (WO +
 * residual, W1/W3 with the fused FFN norm + SwiGLU, W2 + residual, and the next layer's QKV with its fused norm + RoPE
 * + KV write), as ticketed phases over a bounded number of persistent groups, in place of four or five kernels and
 * their fixed launch cost. Each phase is cut into about one unit of whole 8-row blocks per group. Built with
 * matmul.cl's macros for the model's weight encoding; where it runs is {@link HandMatmul}'s choice. Not thread-safe:
 * the queue's owner thread.
 */
final class PersistentTail {
    /**
     * System property: {@code auto} (the default: F32 weights on NVIDIA GPUs of compute capability 7.0 or more, where
     * the inline PTX of its acquire polls and gpu-scope activation loads builds, the only case it was measured correct
     * and faster: H200 f32 batch 1 609-643 against 548-580 tok/s; F16 / Q8_0 were slower), {@code off}, or {@code on} (any device, plain loads where there
     * is no PTX: for tests; a GPU whose L1 is not coherent between compute units could race, and on a CPU driver its
     * waiting groups spin on cores the others need). It runs for one-token steps whose FFN norm fuses into the
     * one-token matvec.
     */
    static final String PROPERTY = "stepstream.opencl.persistentTail";
    /**
     * System property shaping the kernel, any subset of: {@code groups=G} (0, the default: {@code per_cu} a compute
     * unit), {@code per_cu=N}, {@code wg} items a group and {@code lpr} lanes a weight row (0: the one-token matvec's,
     * which makes the tail bitwise the kernels), {@code pf} float4 loads a lane issues before waiting for the phase
     * before, {@code unroll} loads in flight after those, {@code upg} units a group per phase, {@code sb} staging loads
     * an item issues before storing them, {@code act=relaxed|cg} how NVIDIA reads activations written in the launch,
     * {@code maxreg=N} (NVIDIA: ptxas' register cap, -cl-nv-maxrregcount; 0 none), {@code shfl=1} (NVIDIA, at most 32
     * lanes a row: lane sums by warp shuffles in the tree's order), {@code early=1} (the first loads past the prefetched ones
     * issued before those are used), {@code stage3=0} (W2 reads hb in its dot instead of staging it). {@code per_cu=0}: as many groups a
     * compute unit as ptxas' registers and shared memory let reside (NVIDIA; 2 where unknown). Diagnostics:
     * {@code nowork=1} (units keep their tickets, waits, staging and counts but no weight work: the kernel times its
     * synchronisation; the results are wrong), {@code split=1} (one launch per phase, no waits).
     */
    static final String SHAPE_PROPERTY = "stepstream.opencl.persistentTailShape";
    private static final System.Logger LOG = System.getLogger(PersistentTail.class.getName());

    // tail_t1's arguments.
    private static final int ARG_RMS_FFN = 14;
    private static final int ARG_COUNTERS = 26;
    private static final int ARG_DIM = 27;
    private static final int ARG_EPS = 32;
    private static final int ARG_LAYER = 33;
    private static final int ARG_LAYER0 = 34;
    private static final int ARG_NEXT_LAYER0 = 35;
    private static final int ARG_NEXT = 36;
    private static final int ARG_ONLY = 37;
    /** The layer's weights (wo, w1, w3, w2 and their scales) then the next layer's (wq, wk, wv and scales). */
    static final int LAYER_WEIGHTS = 8;
    static final int NEXT_WEIGHTS = 6;
    /** ticket, exits, done[1..4], each on its own 128-byte line (tail.cl's TAIL_LINE). */
    private static final int COUNTERS = 6 * 32;

    /** How NVIDIA reads the activations another group wrote in the same launch (tail.cl's TAIL_ACT). */
    enum Act {
        /** ld.relaxed.gpu: strong loads. */
        RELAXED,
        /** ld.global.cg: weak loads from L2, ordered by item 0's acquire poll and the barrier after it. */
        CG
    }

    /** The kernel's shape (see {@link #SHAPE_PROPERTY}). */
    record Shape(int groups, int perCu, int wg, int lpr, int pf, int unroll, int upg, int sb, Act act, int maxreg,
                 int shfl, int early, int stage3, int nowork, int split) {
        /**
         * H200 runs 2-3 (1.1B f32 batch 1): 4 groups of 128 items an SM (maxreg 80), 16 lanes a row (blocks of 8
         * rows): 1.27 ms a step against 1.60 at 32 lanes and the kernels' 1.56. Not the matvec's lanes (32), so the
         * tail is within f32 rounding of the kernels there, not bitwise; lpr=0 takes the matvec's. 4 groups a CU
         * are launched outright (per_cu 4): what ptxas' counts gave on the H200 (128 registers x 128 items x 4 = one
         * SM's 64K registers, 4 x 24 KB of local memory, on every sm_70+ part), without depending on a build log that
         * NVIDIA's compile caches withhold; a unit is a phase's rows over the groups launched, so launching more
         * groups than fit made units smaller and the tail slower (8 a CU: 540-583 against 593-617 tok/s).
         */
        static final Shape DEFAULT = new Shape(0, 4, 0, 16, 8, 8, 1, 4, Act.RELAXED, 80, 1, 1, 1, 0, 0);

        Shape {
            if (groups < 0 || perCu < 0 || wg < 0 || lpr < 0 || (lpr > 0 && Integer.bitCount(lpr) != 1)
                    || (wg > 0 && lpr > 0 && (wg % lpr != 0 || (wg / lpr) % 2 != 0)) || pf < 1 || pf > 64
                    || unroll < 1 || unroll > 16 || upg < 1 || upg > 64 || sb < 1 || sb > 32 || act == null
                    || maxreg < 0 || maxreg > 255 || shfl < 0 || shfl > 1 || early < 0 || early > 1 || stage3 < 0 || stage3 > 1 || nowork < 0
                    || nowork > 1 || split < 0 || split > 1) {
                throw new IllegalArgumentException(SHAPE_PROPERTY + ": groups >= 0, per_cu >= 0, lpr 0 or a power of"
                        + " two, wg 0 or a multiple of lpr by an even row count, pf 1..64, unroll 1..16, upg 1..64,"
                        + " sb 1..32, act relaxed|cg, maxreg 0..255, shfl, early, stage3, nowork and split 0|1; got " + this);
            }
        }

        static Shape parse(String spec) {
            Map<String, String> v = new LinkedHashMap<>();
            v.put("groups", "" + DEFAULT.groups);
            v.put("per_cu", "" + DEFAULT.perCu);
            v.put("wg", "" + DEFAULT.wg);
            v.put("lpr", "" + DEFAULT.lpr);
            v.put("pf", "" + DEFAULT.pf);
            v.put("unroll", "" + DEFAULT.unroll);
            v.put("upg", "" + DEFAULT.upg);
            v.put("sb", "" + DEFAULT.sb);
            v.put("act", DEFAULT.act.name().toLowerCase(Locale.ROOT));
            v.put("maxreg", "" + DEFAULT.maxreg);
            v.put("shfl", "" + DEFAULT.shfl);
            v.put("early", "" + DEFAULT.early);
            v.put("stage3", "" + DEFAULT.stage3);
            v.put("nowork", "" + DEFAULT.nowork);
            v.put("split", "" + DEFAULT.split);
            if (spec != null && !spec.isBlank()) {
                for (String pair : spec.split(",")) {
                    String[] kv = pair.split("=", 2);
                    String key = kv[0].strip().toLowerCase(Locale.ROOT);
                    if (kv.length != 2 || !v.containsKey(key)) {
                        throw new IllegalArgumentException(SHAPE_PROPERTY + ": '" + pair
                                + "' is not name=value with a name of " + v.keySet());
                    }
                    v.put(key, kv[1].strip().toLowerCase(Locale.ROOT));
                }
            }
            Act act = switch (v.get("act")) {
                case "relaxed" -> Act.RELAXED;
                case "cg" -> Act.CG;
                default -> throw new IllegalArgumentException(SHAPE_PROPERTY + ": act must be relaxed or cg, got '"
                        + v.get("act") + "'");
            };
            return new Shape(num(v, "groups"), num(v, "per_cu"), num(v, "wg"), num(v, "lpr"), num(v, "pf"),
                    num(v, "unroll"), num(v, "upg"), num(v, "sb"), act, num(v, "maxreg"), num(v, "shfl"),
                    num(v, "early"), num(v, "stage3"), num(v, "nowork"), num(v, "split"));
        }

        private static int num(Map<String, String> v, String key) {
            try {
                return Integer.parseInt(v.get(key));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(SHAPE_PROPERTY + ": " + key + "='" + v.get(key)
                        + "' is not an integer");
            }
        }

        static Shape fromSystemProperty() {
            return parse(System.getProperty(SHAPE_PROPERTY));
        }

        /** This shape with wg / lpr 0 replaced by the one-token matvec's. */
        Shape resolved(MatmulTiles tiles) {
            return new Shape(groups, perCu, wg > 0 ? wg : tiles.mvWg(), lpr > 0 ? lpr : tiles.mvLpr(), pf, unroll, upg,
                    sb, act, maxreg, shfl, early, stage3, nowork, split);
        }

        String label() {
            return "wg" + wg + "/" + lpr + " pf" + pf + "u" + unroll + " upg" + upg + " sb" + sb + " act="
                    + act.name().toLowerCase(Locale.ROOT) + (maxreg > 0 ? " maxreg" + maxreg : "")
                    + (shfl == 1 ? " shfl" : "") + (early == 1 ? " early" : "") + (stage3 == 0 ? " w2-unstaged" : "")
                    + " g" + (groups > 0 ? groups : perCu > 0 ? perCu + "/cu" : "resident/cu")
                    + (nowork == 1 ? " NOWORK (diagnostic: wrong results)" : "")
                    + (split == 1 ? " ONE-LAUNCH-PER-PHASE (diagnostic)" : "");
        }
    }

    /** NVIDIA's compute capability from which the tail's PTX (ld.acquire / ld.relaxed, sm_70) is there. */
    static final int MIN_COMPUTE_CAPABILITY = 70;

    /**
     * Widest model (dim) auto builds the tail for. It saves launches, which matter when a layer's matmuls are short:
     * on the H200 the 1.1B shape (dim 2048) ran 626-644 against 522-581 tok/s with it, the Llama-2-7B shape (dim 4096,
     * hidden 11008) 106.8-108.3 against 118.5-118.9 (its 8.2 ms of tail against 7.4 of kernels a step).
     */
    static final int AUTO_MAX_DIM = 2048;

    /**
     * {@value #PROPERTY} for a device, weight encoding and model width: whether the tail is built. auto (the default):
     * F32 weights, dim at most {@value #AUTO_MAX_DIM}, on NVIDIA GPUs of compute capability 7.0+ ({@link #create}
     * still returns null there should the PTX not build). F16 and Q8_0 weights were slower with it on the H200 (1.1B
     * batch 1: f16 601-607 against 757-768 tok/s, q8_0 534 against 787-799), wider models too: they take it only with on.
     */
    static boolean enabledBySystemProperty(ClDevice device, int wtype, int dim) {
        String v = System.getProperty(PROPERTY, "auto").strip().toLowerCase(Locale.ROOT);
        return switch (v) {
            case "auto" -> autoTakes(device.kind() == ClDevice.Kind.GPU
                    && ClRuntime.nvComputeCapability(device) >= MIN_COMPUTE_CAPABILITY, wtype, dim);
            case "on" -> true;
            case "off" -> false;
            default -> throw new IllegalArgumentException(PROPERTY + " must be auto, on or off, got '" + v + "'");
        };
    }

    /** Whether auto builds the tail: an NVIDIA GPU with the tail's PTX (sm_70+), F32 weights, dim <= {@value #AUTO_MAX_DIM}. */
    static boolean autoTakes(boolean nvidiaSm70, int wtype, int dim) {
        return nvidiaSm70 && wtype == Llama2Kernel.WT_F32 && dim <= AUTO_MAX_DIM;
    }

    /**
     * Groups a compute unit when the shape asks per_cu=0 but ptxas gave no counts (NVIDIA returns a program from its
     * compile caches, in this JVM or from disk, without a build log, and a define that the PTX does not use does not
     * defeat them): the default's 4, since too few (run 2: 2 a CU, 1.92 against 1.27 ms) starve HBM and too many make
     * every unit smaller (8 a CU: 540-583 against 593-617 tok/s).
     */
    static final int FALLBACK_PER_CU = 4;

    /** The groups a compute unit to launch: the shape's per_cu, else the resident count ptxas gave, else the fallback. */
    static int groupsPerCu(Shape shape, int residentPerCu) {
        return shape.perCu() > 0 ? shape.perCu() : residentPerCu > 0 ? residentPerCu : FALLBACK_PER_CU;
    }

    private final DirectLauncher launcher;
    private final ClQueue queue;
    private final Shape shape;
    private final String build;
    private final MemorySegment kernel;
    private final MemorySegment counters;
    /** Launcher fields bound to the arguments after the weights (null: not a field). */
    private final String[] fields = {"rmsFfn", "rmsAtt", "xb", "x", "hb", "q", "kv", "ropeCos", "ropeSin", "tokenPos",
            "tokenSeq", "blockTable"};
    /** The address bound to each buffer argument so far (0: none), so that only changed ones are set. */
    private final long[] bound = new long[ARG_COUNTERS];
    private final int[] lastInts = {Integer.MIN_VALUE, Integer.MIN_VALUE, Integer.MIN_VALUE, Integer.MIN_VALUE,
            Integer.MIN_VALUE};
    private long boundEpoch = -1;
    private int groups;
    private long launches;

    private PersistentTail(DirectLauncher launcher, Llama2Kernel k, Shape shape, MemorySegment program, String build,
                           int residentPerCu) {
        this.launcher = launcher;
        this.queue = launcher.queue();
        this.shape = shape;
        this.build = build;
        this.kernel = queue.createKernel(program, "tail_t1");
        counters = queue.createBuffer((long) COUNTERS * Integer.BYTES);
        queue.writeBlocking(counters, MemorySegment.ofArray(new int[COUNTERS]), (long) COUNTERS * Integer.BYTES);
        queue.setArgBuffer(kernel, ARG_COUNTERS, counters);
        int[] sizes = {k.dim, k.hidden, k.kvDim, k.maxBlocksPerSeq, k.blockFloats};
        for (int i = 0; i < sizes.length; i++) {
            queue.setArgInt(kernel, ARG_DIM + i, sizes[i]);
        }
        queue.setArgFloat(kernel, ARG_EPS, k.eps);
        groups(shape.groups() > 0 ? shape.groups() : groupsPerCu(shape, residentPerCu) * launcher.device().computeUnits());
    }

    /**
     * The tail for {@code k}'s model in the launcher's queue, or null (logged) where it cannot run: sizes not multiples
     * of 4, a group the device does not take, the longest input row not fitting local memory, or on NVIDIA a driver
     * that builds none of the inline-PTX spellings. {@code tiles}: the one-token matvec's (wg / lpr 0 take its lanes);
     * {@code xh}: round activations to f16 as the matvecs of a tensor-core build do.
     */
    static PersistentTail create(DirectLauncher launcher, Llama2Kernel k, MatmulTiles tiles, boolean xh, Shape shape,
                                 KvCacheType kvCache) {
        ClDevice dev = launcher.device();
        shape = shape.resolved(tiles);
        int xs4 = (shape.stage3() == 1 ? Math.max(k.dim, k.hidden) : k.dim) / 4;
        long local = 16L * xs4 + 3L * 4 * shape.wg() + 4;
        if (k.headSize % 4 != 0 || k.dim % 4 != 0 || k.hidden % 4 != 0 || shape.wg() > dev.maxWorkGroupSize()
                || local > dev.localMemBytes() || (shape.wg() / shape.lpr()) % 2 != 0) {
            LOG.log(System.Logger.Level.INFO, "persistent tail off: head size " + k.headSize + ", dim " + k.dim
                    + ", hidden " + k.hidden + ", group " + shape.wg() + "/" + shape.lpr() + " or " + local
                    + " bytes of local memory do not suit " + dev.name().strip());
            return null;
        }
        String defines = tiles.defines(k.wtype) + (xh ? " -DXH=1" : "") + " -DTAIL_WG=" + shape.wg() + " -DTAIL_LPR="
                + shape.lpr() + " -DTAIL_PF=" + shape.pf() + " -DTAIL_UNROLL=" + shape.unroll() + " -DTAIL_UPG="
                + shape.upg() + " -DTAIL_SB=" + shape.sb() + " -DTAIL_HS=" + k.headSize + " -DTAIL_XS4=" + xs4
                + " -DTAIL_ACT=" + (shape.act() == Act.CG ? 2 : 1) + " -DTAIL_NOWORK=" + shape.nowork()
                + " -DTAIL_EARLY=" + shape.early() + " -DTAIL_STAGE3=" + shape.stage3() + kvCache.define();
        String source = source();
        ClQueue queue = launcher.queue();
        if (ClRuntime.nvComputeCapability(dev) < 0) {
            return new PersistentTail(launcher, k, shape, queue.buildProgram(source, defines + " -DTAIL_SHFL=0"),
                    "plain loads", 0);
        }
        // Which inline-asm keyword the driver takes is not documented (see mma.cl), nor whether it takes -cl-nv-verbose
        // (ptxas' register and spill counts in the build log): try the combinations, most wanted first.
        // The shuffle reduction (shfl) is asked first; should its PTX not build, the local-memory tree.
        String maxreg = shape.maxreg() > 0 ? " -cl-nv-maxrregcount=" + shape.maxreg() : "";
        java.util.List<String> attempts = new java.util.ArrayList<>();
        for (int shfl = shape.shfl(); shfl >= 0; shfl--) {
            for (String spelling : new String[]{" -DTAIL_PTX=1 -cl-nv-verbose", " -DTAIL_PTX=2 -cl-nv-verbose",
                    " -DTAIL_PTX=1", " -DTAIL_PTX=2"}) {
                attempts.add(spelling + maxreg + " -DTAIL_SHFL=" + shfl);
            }
        }
        StringBuilder logs = new StringBuilder();
        for (String attempt : attempts) {
            try {
                MemorySegment program = queue.buildProgram(source, defines + attempt);
                String info = attempt.contains("verbose") ? ptxasInfo(queue.buildLog(program)) : "";
                String act = shape.act() == Act.CG ? "ld.global.cg" : "ld.relaxed.gpu";
                int resident = residentPerSm(info, shape.wg());
                boolean shflLost = shape.shfl() == 1 && attempt.contains("-DTAIL_SHFL=0");
                String groupsFrom = shape.perCu() > 0 || shape.groups() > 0 ? "" : resident > 0
                        ? ", " + resident + " groups resident an SM (ptxas)"
                        : ", no ptxas counts: " + FALLBACK_PER_CU + " groups a CU (fallback)";
                return new PersistentTail(launcher, k, shape, program, act + " activations, ld.acquire.gpu polls"
                        + (shflLost ? ", NO shfl (its PTX did not build: " + firstLine(logs) + ")" : "")
                        + (info.isEmpty() ? "" : " [" + info + "]") + groupsFrom + ", options '"
                        + attempt.strip() + "'", resident);
            } catch (OpenClException e) {
                logs.append(e.getMessage()).append('\n');
            }
        }
        LOG.log(System.Logger.Level.WARNING, "persistent tail off: its inline PTX does not build on "
                + dev.name().strip() + ": " + logs);
        return null;
    }

    /** The first line of a build log that mentions an error (or its first line), at most 300 characters. */
    private static String firstLine(CharSequence text) {
        String[] lines = text.toString().strip().split("\n");
        String pick = lines[0];
        for (String line : lines) {
            if (line.toLowerCase(Locale.ROOT).contains("error")) {
                pick = line;
                break;
            }
        }
        return pick.substring(0, Math.min(pick.length(), 300));
    }

    /** ptxas' lines about tail_t1 (registers, spills) from a -cl-nv-verbose build log, as one line. */
    static String ptxasInfo(String log) {
        StringBuilder sb = new StringBuilder();
        boolean ours = false;
        for (String line : log.split("\n")) {
            if (line.contains("Compiling entry function")) {
                ours = line.contains("tail_t1");
            } else if (ours && (line.contains("ptxas info") || line.contains("spill"))
                    && !line.contains("Function properties")) {
                sb.append(sb.isEmpty() ? "" : "; ").append(line.replace("ptxas info", "").replace(":", "").strip());
            }
        }
        return sb.toString();
    }

    /**
     * Groups of {@code wg} items that fit one SM of an sm_90 device by ptxas' registers and shared memory (from
     * {@link #ptxasInfo}), 0 when the info has no register count: registers are allocated per warp in units of 256,
     * 64K a SM; 228 KiB of shared memory a SM, 1 KiB of it reserved a group; at most 64 warps and 32 groups.
     */
    static int residentPerSm(String ptxasInfo, int wg) {
        java.util.regex.Matcher regs = java.util.regex.Pattern.compile("Used (\\d+) registers").matcher(ptxasInfo);
        if (!regs.find()) {
            return 0;
        }
        java.util.regex.Matcher smem = java.util.regex.Pattern.compile("(\\d+) bytes smem").matcher(ptxasInfo);
        long smemBytes = smem.find() ? Long.parseLong(smem.group(1)) : 0;
        int warps = (wg + 31) / 32;
        long regsPerWarp = (Integer.parseInt(regs.group(1)) * 32L + 255) / 256 * 256;
        long byRegs = 65536 / (regsPerWarp * warps);
        long bySmem = (228L * 1024) / (smemBytes + 1024);
        return (int) Math.max(0, Math.min(Math.min(byRegs, bySmem), Math.min(64 / warps, 32)));
    }

    /** kv.cl (the KV pool's element type and its stores), matmul.cl (macros, epilogue), then tail.cl. */
    static String source() {
        return MatmulProgram.resource("kv.cl") + "\n" + MatmulProgram.resource("matmul.cl") + "\n"
                + MatmulProgram.resource("tail.cl");
    }

    /** Persistent groups each launch starts (tests try several; any count >= 1 is correct). */
    void groups(int groups) {
        if (groups < 1) {
            throw new IllegalArgumentException("persistent tail groups " + groups + " < 1");
        }
        this.groups = groups;
    }

    int groups() {
        return groups;
    }

    /** The shape it was built with (wg / lpr resolved). */
    Shape shape() {
        return shape;
    }

    /** How activations shared between phases are read, and ptxas' register / spill counts where the driver gave them. */
    String build() {
        return build;
    }

    /** The counters as the device holds them now (waits for the queue; tests: all zero between launches). */
    int[] counters() {
        int[] c = new int[COUNTERS];
        queue.readBlocking(counters, MemorySegment.ofArray(c), (long) COUNTERS * Integer.BYTES);
        return c;
    }

    /** Tails enqueued so far. */
    long launches() {
        return launches;
    }

    /**
     * Enqueues the tail of {@code layer} for the step's one token: WO, W1/W3, W2 from {@code layerWeights} (wo, woS,
     * w1, w1S, w3, w3S, w2, w2S: the chunk holding the layer, whose first layer is {@code layer0}) and, with
     * {@code nextWeights} non-null, layer+1's QKV from those (wq, wqS, wk, wkS, wv, wvS; first layer
     * {@code nextLayer0}).
     */
    void enqueue(int layer, MemorySegment[] layerWeights, int layer0, MemorySegment[] nextWeights, int nextLayer0,
                 java.util.function.Supplier<MemorySegment> event) {
        if (layerWeights.length != LAYER_WEIGHTS || (nextWeights != null && nextWeights.length != NEXT_WEIGHTS)) {
            throw new IllegalArgumentException("persistent tail: " + layerWeights.length + " layer weights (want "
                    + LAYER_WEIGHTS + "), " + (nextWeights == null ? 0 : nextWeights.length) + " next (want "
                    + NEXT_WEIGHTS + ")");
        }
        if (boundEpoch != launcher.bufferEpoch()) {
            for (int i = 0; i < fields.length; i++) {
                setBuffer(ARG_RMS_FFN + i, launcher.buffer(fields[i]));
            }
            boundEpoch = launcher.bufferEpoch();
        }
        for (int i = 0; i < LAYER_WEIGHTS; i++) {
            setBuffer(i, layerWeights[i]);
        }
        for (int i = 0; i < NEXT_WEIGHTS; i++) {
            // the last layer has no next QKV: any valid buffer fills those (unread) arguments
            setBuffer(LAYER_WEIGHTS + i, nextWeights != null ? nextWeights[i] : layerWeights[0]);
        }
        setInt(0, ARG_LAYER, layer);
        setInt(1, ARG_LAYER0, layer0);
        setInt(2, ARG_NEXT_LAYER0, nextWeights == null ? 0 : nextLayer0);
        setInt(3, ARG_NEXT, nextWeights == null ? 0 : 1);
        if (shape.split() == 0) {
            setInt(4, ARG_ONLY, 0);
            queue.enqueue(kernel, (long) groups * shape.wg(), shape.wg(), event.get());
        } else {
            // the diagnostic: one launch per phase (each sees the one before complete)
            for (int phase = 1; phase <= (nextWeights == null ? 3 : 4); phase++) {
                setInt(4, ARG_ONLY, phase);
                queue.enqueue(kernel, (long) groups * shape.wg(), shape.wg(), event.get());
            }
        }
        launches++;
    }

    private void setBuffer(int arg, MemorySegment buffer) {
        if (bound[arg] != buffer.address()) {
            queue.setArgBuffer(kernel, arg, buffer);
            bound[arg] = buffer.address();
        }
    }

    private void setInt(int slot, int arg, int value) {
        if (lastInts[slot] != value) {
            queue.setArgInt(kernel, arg, value);
            lastInts[slot] = value;
        }
    }
}

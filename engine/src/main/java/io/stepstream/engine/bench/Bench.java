package io.stepstream.engine.bench;

import io.stepstream.engine.Model;
import io.stepstream.engine.ModelLoadException;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.kv.KvBlockPool;
import io.stepstream.engine.llama.LlamaModel;
import io.stepstream.engine.reference.LlamaCpp;

import java.io.IOException;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * {@code stepstream bench}: tokens per second of our engine on a model file at several batch sizes, each batch
 * size run back to back with llama.cpp b4916 on the same file with the same thread count (flash attention off
 * and on), and the fraction of the memory-bandwidth limit: weight bytes read per step over step time, against
 * a triad measured with the same thread count right before each batch size (the machine's bandwidth drifts).
 * Batched steps are bound by arithmetic instead, so each row also gives the fraction of the float32 FMA peak
 * ({@link FmaPeak}, measured with the same threads before the row): matmul operations per step over step time.
 * Each timed run is preceded by untimed warm-up runs of the same shape, repeated for at least
 * {@link #DEFAULT_WARMUP_SECONDS} (or {@link Options#warmupSeconds}).
 */
public final class Bench {
    /** Triad arrays of 32M floats (128 MiB each): far past any last-level cache. */
    static final int TRIAD_ELEMENTS = 32 << 20;
    static final int TRIAD_PASSES = 5;
    /** FMA rounds per thread of one peak pass (~0.1-0.2 s on a current core). */
    static final long FMA_ITERATIONS = 40_000_000L;
    static final int FMA_PASSES = 3;
    /**
     * Warm-up before each timed run. One short warm-up run (8 steps) left the first batch size of a fresh JVM
     * timing partly interpreted code: on the 2-core VM a cold batch-1 row of the 110M Q8_0 model ran at 116 tok/s,
     * the same row later in the same JVM at 224-226 (docs/benchmarks.md, CPU session 10).
     */
    public static final double DEFAULT_WARMUP_SECONDS = 2.0;

    private Bench() {
    }

    /**
     * What to run.
     *
     * @param batches       sequence counts, each run as that many sequences decoding together
     * @param decodeTokens  decode steps per run
     * @param promptTokens  prompt length of every sequence
     * @param threads       compute threads for both engines
     * @param llamaCpp      also run llama.cpp (needs a GGUF file and the de.kherud:llama jar)
     * @param warmupSteps   decode steps of each untimed warm-up run before a timed run (0: no warm-up)
     * @param warmupSeconds warm-up runs repeat until they have taken this long, so that the JIT has compiled the
     *                      step before it is timed (a first run of a few steps times interpreted and C1 code);
     *                      llama.cpp, which needs no JIT, gets the same warm-up for symmetry
     * @param repeats       timed runs of each engine per batch size, alternating (ours, llama.cpp, llama.cpp FA, ours,
     *                      ...); a row reports each engine's median run, so a busy moment of a shared machine costs
     *                      one run of one engine, not the row. Runs after the first get a single warm-up run each.
     * @param triadElements floats per triad array (0: no bandwidth measurement)
     * @param fmaIterations FMA rounds per thread of a peak pass (0: no FMA peak measurement)
     */
    public record Options(Path model, List<Integer> batches, int decodeTokens, int promptTokens, int threads,
                          boolean llamaCpp, int warmupSteps, double warmupSeconds, int repeats,
                          int triadElements, long fmaIterations, long seed) {
        public Options {
            batches = List.copyOf(batches);
            if (batches.isEmpty()) {
                throw new IllegalArgumentException("--batch: give at least one batch size");
            }
            for (int b : batches) {
                if (b < 1 || b > 1024) {
                    throw new IllegalArgumentException("--batch: batch sizes must be in [1, 1024], got " + b);
                }
            }
            if (decodeTokens < 1) {
                throw new IllegalArgumentException("--tokens must be >= 1, got " + decodeTokens);
            }
            if (promptTokens < 1) {
                throw new IllegalArgumentException("--prompt-tokens must be >= 1, got " + promptTokens);
            }
            if (threads < 1) {
                throw new IllegalArgumentException("--threads must be >= 1, got " + threads);
            }
            if (warmupSteps < 0 || triadElements < 0 || fmaIterations < 0) {
                throw new IllegalArgumentException("warm-up steps, triad size and FMA rounds must be >= 0");
            }
            if (!(warmupSeconds >= 0 && warmupSeconds <= 3600)) {
                throw new IllegalArgumentException("--warmup-seconds must be in [0, 3600], got " + warmupSeconds);
            }
            if (repeats < 1 || repeats > 99) {
                throw new IllegalArgumentException("--repeat must be in [1, 99], got " + repeats);
            }
        }

        /**
         * Defaults for the other fields: warm-up runs of the timed run's length (so they take every path the timed
         * run takes, KV blocks past the first ones included) for {@link #DEFAULT_WARMUP_SECONDS}, 128 MiB triad
         * arrays, the FMA peak, seed 1.
         */
        public static Options of(Path model, List<Integer> batches, int decodeTokens, int promptTokens, int threads,
                                 boolean llamaCpp) {
            return of(model, batches, decodeTokens, promptTokens, threads, llamaCpp, DEFAULT_WARMUP_SECONDS, 1);
        }

        /** {@link #of(Path, List, int, int, int, boolean)} with the warm-up's duration and the repeats given. */
        public static Options of(Path model, List<Integer> batches, int decodeTokens, int promptTokens, int threads,
                                 boolean llamaCpp, double warmupSeconds, int repeats) {
            return new Options(model, batches, decodeTokens, promptTokens, threads, llamaCpp,
                    decodeTokens, warmupSeconds, repeats, TRIAD_ELEMENTS, FMA_ITERATIONS, 1);
        }
    }

    /**
     * One batch size.
     *
     * @param weightBytesPerStep weights read by one decode step ({@link WeightTraffic})
     * @param bandwidth          triad bytes per second measured before this row (0 when not measured)
     * @param matmulFlopsPerStep operations of one decode step's matmuls ({@link MatmulFlops}, times the batch)
     * @param fmaPeak            FLOP/s of {@link FmaPeak} measured before this row (0 when not measured)
     * @param llamaCpp           llama.cpp with flash attention off, or null
     * @param llamaCppFlash      llama.cpp with flash attention on (over an F16 KV cache: b4916 takes no other), or null
     */
    public record Row(int batch, long weightBytesPerStep, double bandwidth, long matmulFlopsPerStep, double fmaPeak,
                      RunResult ours, RunResult llamaCpp, RunResult llamaCppFlash) {
        /** Our fraction of the bandwidth limit, NaN without a bandwidth measurement. */
        public double oursFraction() {
            return fraction(ours);
        }

        public double fraction(RunResult r) {
            return r == null || bandwidth <= 0 ? Double.NaN
                    : Bandwidth.fractionOfLimit(weightBytesPerStep, r.msPerStep() / 1e3, bandwidth);
        }

        /** Our matmul FLOP/s over the FMA peak, NaN without a peak measurement. */
        public double oursComputeFraction() {
            return computeFraction(ours);
        }

        /** A run's matmul FLOP/s over the FMA peak, NaN without a peak measurement or a run. */
        public double computeFraction(RunResult r) {
            return r == null || fmaPeak <= 0 ? Double.NaN : matmulFlopsPerStep / (r.msPerStep() / 1e3) / fmaPeak;
        }

        /** llama.cpp's faster run (decode tokens/s), or null. */
        public RunResult bestLlamaCpp() {
            if (llamaCpp == null) {
                return llamaCppFlash;
            }
            if (llamaCppFlash == null) {
                return llamaCpp;
            }
            return llamaCppFlash.decodeTokensPerSecond() > llamaCpp.decodeTokensPerSecond() ? llamaCppFlash : llamaCpp;
        }

        /** Our decode tokens/s over llama.cpp's best, NaN without llama.cpp. */
        public double ratio() {
            RunResult best = bestLlamaCpp();
            return best == null ? Double.NaN : ours.decodeTokensPerSecond() / best.decodeTokensPerSecond();
        }
    }

    /**
     * @param weightType  the layer weights' encoding (F32, Q8_0, ...)
     * @param llamaCppNote why llama.cpp did not run or what failed in it (null when all went well)
     * @param loadBefore  1-minute load average before the runs (NaN where /proc/loadavg is missing)
     */
    public record Report(String model, String weightType, int threads, int promptTokens, int decodeTokens,
                         double warmupSeconds, int repeats, List<Row> rows, String llamaCppNote, double loadBefore,
                         double loadAfter) {
        public Report {
            rows = List.copyOf(rows);
        }
    }

    public static Report run(Options o, Consumer<String> progress) {
        if (!Files.isRegularFile(o.model())) {
            throw new ModelLoadException(o.model() + ": model file not found");
        }
        int maxBatch = o.batches().stream().mapToInt(Integer::intValue).max().orElseThrow();
        int positions = o.promptTokens() + Math.max(o.decodeTokens(), o.warmupSteps());
        int blocksPerSequence = (positions + KvBlockPool.BLOCK_POSITIONS - 1) / KvBlockPool.BLOCK_POSITIONS;
        ModelOptions options = ModelOptions.defaults().withComputeThreads(o.threads())
                .withKvBlocks(maxBatch * blocksPerSequence);
        double loadBefore = loadAverage();
        try (Model model = Models.load(o.model().toString(), options)) {
            if (!(model instanceof LlamaModel llama)) {
                throw new ModelLoadException(o.model() + ": bench runs Llama-family models, this is "
                        + model.getClass().getSimpleName());
            }
            int context = model.config().contextLength();
            if (positions > context) {
                throw new IllegalArgumentException("--prompt-tokens + --tokens = " + positions
                        + " exceed the model's context length " + context);
            }
            String type = llama.weights().layers().getFirst().wq().type().toString();
            String note = null;
            LlamaCpp.Model reference = null;
            try {
                if (o.llamaCpp()) {
                    String reason = LlamaCpp.unavailableReason();
                    if (reason != null) {
                        note = "llama.cpp not run: " + reason;
                    } else if (!isGguf(o.model())) {
                        note = "llama.cpp not run: " + o.model() + " is not a GGUF file";
                    } else {
                        reference = LlamaCpp.get().load(o.model(), false);
                        if (reference.vocabSize() != model.config().vocabSize()) {
                            throw new IllegalStateException("llama.cpp reads " + reference.vocabSize()
                                    + " tokens from " + o.model() + ", we read " + model.config().vocabSize());
                        }
                    }
                    if (note != null) {
                        progress.accept(note);
                    }
                }
                List<Row> rows = new ArrayList<>();
                for (int batch : o.batches()) {
                    int[][] prompts = Prompts.random(batch, o.promptTokens(), model.config().vocabSize(), o.seed());
                    double bandwidth = o.triadElements() == 0 ? 0
                            : Bandwidth.measureTriad(o.threads(), o.triadElements(), TRIAD_PASSES);
                    double fmaPeak = o.fmaIterations() == 0 ? 0
                            : FmaPeak.measure(o.threads(), o.fmaIterations(), FMA_PASSES);
                    progress.accept(String.format("batch %d: triad %.1f GB/s, FMA peak %.1f GFLOP/s; stepstream ...",
                            batch, bandwidth / 1e9, fmaPeak / 1e9));
                    List<RunResult> ours = new ArrayList<>();
                    List<RunResult> plain = new ArrayList<>();
                    List<RunResult> flash = new ArrayList<>();
                    boolean flashFailed = false;
                    for (int r = 0; r < o.repeats(); r++) {
                        double warm = r == 0 ? o.warmupSeconds() : 0; // later runs: one warm-up run each
                        if (o.warmupSteps() > 0) {
                            warmUp(() -> OursRunner.run(model, prompts, o.warmupSteps()), warm);
                        }
                        ours.add(OursRunner.run(model, prompts, o.decodeTokens()));
                        if (reference != null) {
                            progress.accept("batch " + batch + ": llama.cpp ...");
                            plain.add(LlamaCppRunner.run(reference, o.threads(), false, prompts, o.decodeTokens(),
                                    o.warmupSteps(), warm));
                            if (!flashFailed) {
                                try {
                                    flash.add(LlamaCppRunner.run(reference, o.threads(), true, prompts,
                                            o.decodeTokens(), o.warmupSteps(), warm));
                                } catch (RuntimeException e) {
                                    flashFailed = true;
                                    note = "llama.cpp with flash attention failed: " + e.getMessage();
                                    progress.accept(note);
                                }
                            }
                        }
                        if (o.repeats() > 1) {
                            String line = String.format("batch %d run %d: ours %.1f tok/s", batch, r + 1,
                                    ours.getLast().decodeTokensPerSecond());
                            if (!plain.isEmpty()) {
                                line += String.format(", llama.cpp %.1f / FA %s",
                                        plain.getLast().decodeTokensPerSecond(), flash.size() > r
                                                ? String.format("%.1f", flash.getLast().decodeTokensPerSecond()) : "-");
                            }
                            progress.accept(line);
                        }
                    }
                    rows.add(new Row(batch, WeightTraffic.perStep(llama.weights(), batch).total(), bandwidth,
                            batch * MatmulFlops.perToken(llama.weights()), fmaPeak, median(ours), median(plain),
                            flashFailed ? null : median(flash)));
                }
                return new Report(o.model().getFileName().toString(), type, o.threads(), o.promptTokens(),
                        o.decodeTokens(), o.warmupSteps() > 0 ? o.warmupSeconds() : 0, o.repeats(), rows, note,
                        loadBefore, loadAverage());
            } finally {
                if (reference != null) {
                    reference.close();
                }
            }
        }
    }

    /** The run of median decode rate (the lower middle one of an even count: a run that happened); null if none. */
    static RunResult median(List<RunResult> runs) {
        if (runs.isEmpty()) {
            return null;
        }
        List<RunResult> sorted = new ArrayList<>(runs);
        sorted.sort(java.util.Comparator.comparingDouble(RunResult::decodeTokensPerSecond));
        return sorted.get((sorted.size() - 1) / 2);
    }

    /**
     * Runs {@code run} for at least {@code seconds}, and then on until the JIT has been quiet (the JVM's total
     * compilation time unchanged) for a quarter of {@code seconds}, at most ten times {@code seconds} in all: on two
     * busy cores the compiler threads get little time while the warm-up runs, so a fixed duration alone can end
     * before the step's code is compiled.
     */
    static void warmUp(Runnable run, double seconds) {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        boolean timed = jit != null && jit.isCompilationTimeMonitoringSupported();
        long start = System.nanoTime();
        long min = start + (long) (seconds * 1e9);
        long max = start + (long) (10 * seconds * 1e9);
        long quietFor = (long) (seconds / 4 * 1e9);
        long compiled = timed ? jit.getTotalCompilationTime() : 0;
        long lastCompile = start;
        while (true) {
            run.run();
            long now = System.nanoTime();
            long c = timed ? jit.getTotalCompilationTime() : 0;
            if (c != compiled) {
                compiled = c;
                lastCompile = now;
            }
            if (now >= max || (now >= min && now - lastCompile >= quietFor)) {
                return;
            }
        }
    }

    private static boolean isGguf(Path file) {
        try (var in = Files.newInputStream(file)) {
            byte[] magic = in.readNBytes(4);
            return magic.length == 4 && magic[0] == 'G' && magic[1] == 'G' && magic[2] == 'U' && magic[3] == 'F';
        } catch (IOException e) {
            return false;
        }
    }

    /** The 1-minute load average from /proc/loadavg, NaN where it cannot be read. */
    public static double loadAverage() {
        try {
            String s = Files.readString(Path.of("/proc/loadavg")).trim();
            return Double.parseDouble(s.substring(0, s.indexOf(' ')));
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }
}

package io.stepstream.engine.reference;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayDeque;
import java.util.Deque;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BOOLEAN;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * llama.cpp's C API over the FFM API: the independent reference of the tests and the other side of
 * {@code stepstream bench}. The native library is the one java-llama.cpp (de.kherud:llama 4.2.0) bundles:
 * llama.cpp b4916 built for linux-x86_64, with the C API exported. Its Java API is not used (it returns text
 * only, and its n_probs option crashes the JVM), so the jar is only needed at run time, and is optional:
 * {@link #available()} says whether it is on the class path, {@link #unavailableReason()} why not.
 *
 * <p>Struct layouts are those of b4916's llama.h, checked against the library itself: the machine code of
 * llama_model_default_params, llama_context_default_params and llama_batch_get_one writes exactly these offsets and
 * sizes (64, 120 and 56 bytes). Parameters are taken from the *_default_params() structs and only fields whose
 * offset is certain are changed.
 */
public final class LlamaCpp {
    private static final String RESOURCE = "de/kherud/llama/Linux/x86_64/libjllama.so";

    /** struct llama_model_params (b4916). */
    static final StructLayout MODEL_PARAMS = MemoryLayout.structLayout(
            ADDRESS.withName("devices"),
            JAVA_INT.withName("n_gpu_layers"),
            JAVA_INT.withName("split_mode"),
            JAVA_INT.withName("main_gpu"),
            MemoryLayout.paddingLayout(4),
            ADDRESS.withName("tensor_split"),
            ADDRESS.withName("progress_callback"),
            ADDRESS.withName("progress_callback_user_data"),
            ADDRESS.withName("kv_overrides"),
            JAVA_BOOLEAN.withName("vocab_only"),
            JAVA_BOOLEAN.withName("use_mmap"),
            JAVA_BOOLEAN.withName("use_mlock"),
            JAVA_BOOLEAN.withName("check_tensors"),
            MemoryLayout.paddingLayout(4));

    /** struct llama_context_params (b4916). */
    static final StructLayout CONTEXT_PARAMS = MemoryLayout.structLayout(
            JAVA_INT.withName("n_ctx"),
            JAVA_INT.withName("n_batch"),
            JAVA_INT.withName("n_ubatch"),
            JAVA_INT.withName("n_seq_max"),
            JAVA_INT.withName("n_threads"),
            JAVA_INT.withName("n_threads_batch"),
            JAVA_INT.withName("rope_scaling_type"),
            JAVA_INT.withName("pooling_type"),
            JAVA_INT.withName("attention_type"),
            JAVA_FLOAT.withName("rope_freq_base"),
            JAVA_FLOAT.withName("rope_freq_scale"),
            JAVA_FLOAT.withName("yarn_ext_factor"),
            JAVA_FLOAT.withName("yarn_attn_factor"),
            JAVA_FLOAT.withName("yarn_beta_fast"),
            JAVA_FLOAT.withName("yarn_beta_slow"),
            JAVA_INT.withName("yarn_orig_ctx"),
            JAVA_FLOAT.withName("defrag_thold"),
            MemoryLayout.paddingLayout(4),
            ADDRESS.withName("cb_eval"),
            ADDRESS.withName("cb_eval_user_data"),
            JAVA_INT.withName("type_k"),
            JAVA_INT.withName("type_v"),
            JAVA_BOOLEAN.withName("logits_all"),
            JAVA_BOOLEAN.withName("embeddings"),
            JAVA_BOOLEAN.withName("offload_kqv"),
            JAVA_BOOLEAN.withName("flash_attn"),
            JAVA_BOOLEAN.withName("no_perf"),
            MemoryLayout.paddingLayout(3),
            ADDRESS.withName("abort_callback"),
            ADDRESS.withName("abort_callback_data"));

    /** struct llama_batch (b4916). */
    static final StructLayout BATCH = MemoryLayout.structLayout(
            JAVA_INT.withName("n_tokens"),
            MemoryLayout.paddingLayout(4),
            ADDRESS.withName("token"),
            ADDRESS.withName("embd"),
            ADDRESS.withName("pos"),
            ADDRESS.withName("n_seq_id"),
            ADDRESS.withName("seq_id"),
            ADDRESS.withName("logits"));

    /** ggml_type codes used in context parameters. */
    public static final int GGML_TYPE_F32 = 0;
    public static final int GGML_TYPE_F16 = 1;

    private static final int LOG_WARN = 3;
    private static volatile LlamaCpp instance;

    private final Deque<String> recentLog = new ArrayDeque<>();

    private final MethodHandle modelDefaultParams;
    private final MethodHandle modelLoadFromFile;
    private final MethodHandle modelFree;
    private final MethodHandle modelGetVocab;
    private final MethodHandle vocabNTokens;
    private final MethodHandle vocabBos;
    private final MethodHandle vocabEos;
    private final MethodHandle vocabGetAddBos;
    private final MethodHandle vocabGetAddEos;
    private final MethodHandle vocabGetAttr;
    private final MethodHandle vocabGetText;
    private final MethodHandle tokenize;
    private final MethodHandle tokenToPiece;
    private final MethodHandle detokenize;
    private final MethodHandle contextDefaultParams;
    private final MethodHandle initFromModel;
    private final MethodHandle free;
    private final MethodHandle nCtx;
    private final MethodHandle batchGetOne;
    private final MethodHandle decode;
    private final MethodHandle getLogits;
    private final MethodHandle getLogitsIth;
    private final MethodHandle kvSelfClear;

    private LlamaCpp(Path library) throws Throwable {
        Linker linker = Linker.nativeLinker();
        SymbolLookup lib = SymbolLookup.libraryLookup(library, Arena.global());
        modelDefaultParams = fn(linker, lib, "llama_model_default_params", FunctionDescriptor.of(MODEL_PARAMS));
        modelLoadFromFile = fn(linker, lib, "llama_model_load_from_file",
                FunctionDescriptor.of(ADDRESS, ADDRESS, MODEL_PARAMS));
        modelFree = fn(linker, lib, "llama_model_free", FunctionDescriptor.ofVoid(ADDRESS));
        modelGetVocab = fn(linker, lib, "llama_model_get_vocab", FunctionDescriptor.of(ADDRESS, ADDRESS));
        vocabNTokens = fn(linker, lib, "llama_vocab_n_tokens", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        vocabBos = fn(linker, lib, "llama_vocab_bos", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        vocabEos = fn(linker, lib, "llama_vocab_eos", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        vocabGetAddBos = fn(linker, lib, "llama_vocab_get_add_bos", FunctionDescriptor.of(JAVA_BOOLEAN, ADDRESS));
        vocabGetAddEos = fn(linker, lib, "llama_vocab_get_add_eos", FunctionDescriptor.of(JAVA_BOOLEAN, ADDRESS));
        vocabGetAttr = fn(linker, lib, "llama_vocab_get_attr", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        vocabGetText = fn(linker, lib, "llama_vocab_get_text", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
        tokenize = fn(linker, lib, "llama_tokenize", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_BOOLEAN, JAVA_BOOLEAN));
        tokenToPiece = fn(linker, lib, "llama_token_to_piece", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_BOOLEAN));
        detokenize = fn(linker, lib, "llama_detokenize", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_BOOLEAN, JAVA_BOOLEAN));
        contextDefaultParams = fn(linker, lib, "llama_context_default_params", FunctionDescriptor.of(CONTEXT_PARAMS));
        initFromModel = fn(linker, lib, "llama_init_from_model", FunctionDescriptor.of(ADDRESS, ADDRESS, CONTEXT_PARAMS));
        free = fn(linker, lib, "llama_free", FunctionDescriptor.ofVoid(ADDRESS));
        nCtx = fn(linker, lib, "llama_n_ctx", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        batchGetOne = fn(linker, lib, "llama_batch_get_one", FunctionDescriptor.of(BATCH, ADDRESS, JAVA_INT));
        decode = fn(linker, lib, "llama_decode", FunctionDescriptor.of(JAVA_INT, ADDRESS, BATCH));
        getLogits = fn(linker, lib, "llama_get_logits", FunctionDescriptor.of(ADDRESS, ADDRESS));
        getLogitsIth = fn(linker, lib, "llama_get_logits_ith", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
        kvSelfClear = fn(linker, lib, "llama_kv_self_clear", FunctionDescriptor.ofVoid(ADDRESS));

        // route llama.cpp's log through us: keep warnings and errors for exception messages, drop the rest
        MethodHandle onLog = MethodHandles.lookup().bind(this, "onLog",
                MethodType.methodType(void.class, int.class, MemorySegment.class, MemorySegment.class));
        MemorySegment callback = linker.upcallStub(onLog,
                FunctionDescriptor.ofVoid(JAVA_INT, ADDRESS, ADDRESS), Arena.global());
        fn(linker, lib, "llama_log_set", FunctionDescriptor.ofVoid(ADDRESS, ADDRESS))
                .invokeExact(callback, MemorySegment.NULL);
        fn(linker, lib, "llama_backend_init", FunctionDescriptor.ofVoid()).invokeExact();
    }

    private static MethodHandle fn(Linker linker, SymbolLookup lib, String name, FunctionDescriptor fd) {
        MemorySegment symbol = lib.find(name).orElseThrow(() ->
                new IllegalStateException("llama.cpp library does not export " + name));
        return linker.downcallHandle(symbol, fd);
    }

    private void onLog(int level, MemorySegment text, MemorySegment userData) {
        if (level < LOG_WARN || text.equals(MemorySegment.NULL)) {
            return;
        }
        String line = text.reinterpret(Long.MAX_VALUE).getString(0).strip();
        synchronized (recentLog) {
            recentLog.addLast(line);
            while (recentLog.size() > 20) {
                recentLog.removeFirst();
            }
        }
    }

    private String recentLog() {
        synchronized (recentLog) {
            return String.join(" | ", recentLog);
        }
    }

    /** Whether this platform can run the bundled library (linux-x86_64 with the jar on the class path). */
    public static boolean available() {
        return unavailableReason() == null;
    }

    /** Why {@link #available()} is false, or null when it is true. */
    public static String unavailableReason() {
        if (!"linux".equalsIgnoreCase(System.getProperty("os.name")) || !"amd64".equals(System.getProperty("os.arch"))) {
            return "the bundled llama.cpp library is built for linux-x86_64 only, this is "
                    + System.getProperty("os.name") + "/" + System.getProperty("os.arch");
        }
        if (LlamaCpp.class.getClassLoader().getResource(RESOURCE) == null) {
            return "the de.kherud:llama 4.2.0 jar (java-llama.cpp, which bundles llama.cpp b4916) is not on the "
                    + "class path: no " + RESOURCE;
        }
        return null;
    }

    /** The process-wide binding; the library is extracted to a temporary folder and loaded once. */
    public static LlamaCpp get() {
        LlamaCpp l = instance;
        if (l == null) {
            synchronized (LlamaCpp.class) {
                l = instance;
                if (l == null) {
                    try {
                        instance = l = new LlamaCpp(extract());
                    } catch (Throwable t) {
                        throw new IllegalStateException("cannot load llama.cpp from " + RESOURCE + ": " + t, t);
                    }
                }
            }
        }
        return l;
    }

    private static Path extract() throws IOException {
        Path dir = Files.createTempDirectory("stepstream-llamacpp");
        Path target = dir.resolve("libjllama.so");
        try (InputStream in = LlamaCpp.class.getClassLoader().getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IOException(RESOURCE + " is not on the class path (de.kherud:llama missing?)");
            }
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
        }
        target.toFile().deleteOnExit();
        dir.toFile().deleteOnExit();
        return target;
    }

    /** Loads a GGUF file; vocabOnly skips the tensors (enough for tokenization). */
    public Model load(Path gguf, boolean vocabOnly) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment params = (MemorySegment) modelDefaultParams.invokeExact((java.lang.foreign.SegmentAllocator) arena);
            params.set(JAVA_BOOLEAN, MODEL_PARAMS.byteOffset(MemoryLayout.PathElement.groupElement("vocab_only")), vocabOnly);
            MemorySegment path = arena.allocateFrom(gguf.toAbsolutePath().toString());
            MemorySegment model = (MemorySegment) modelLoadFromFile.invokeExact(path, params);
            if (model.equals(MemorySegment.NULL)) {
                throw new IllegalStateException("llama.cpp could not load " + gguf + ": " + recentLog());
            }
            MemorySegment vocab = (MemorySegment) modelGetVocab.invokeExact(model);
            return new Model(model, vocab);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private static RuntimeException wrap(Throwable t) {
        return t instanceof RuntimeException r ? r : new IllegalStateException(t);
    }

    /** A loaded model and its vocabulary. Not thread-safe; close it when done. */
    public final class Model implements AutoCloseable {
        private final MemorySegment model;
        private final MemorySegment vocab;
        private boolean closed;

        private Model(MemorySegment model, MemorySegment vocab) {
            this.model = model;
            this.vocab = vocab;
        }

        public int vocabSize() {
            try {
                return (int) vocabNTokens.invokeExact(vocab);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        public int bos() {
            try {
                return (int) vocabBos.invokeExact(vocab);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        public int eos() {
            try {
                return (int) vocabEos.invokeExact(vocab);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        public boolean addsBos() {
            try {
                return (boolean) vocabGetAddBos.invokeExact(vocab);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        public boolean addsEos() {
            try {
                return (boolean) vocabGetAddEos.invokeExact(vocab);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /** llama_token_attr bits of a token. */
        public int attributes(int token) {
            try {
                return (int) vocabGetAttr.invokeExact(vocab, token);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        public String text(int token) {
            try {
                MemorySegment s = (MemorySegment) vocabGetText.invokeExact(vocab, token);
                return s.reinterpret(Long.MAX_VALUE).getString(0, StandardCharsets.UTF_8);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /** llama_tokenize. */
        public int[] tokenize(String text, boolean addSpecial, boolean parseSpecial) {
            byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment in = arena.allocate(Math.max(1, utf8.length));
                MemorySegment.copy(utf8, 0, in, ValueLayout.JAVA_BYTE, 0, utf8.length);
                int capacity = utf8.length + 8;
                MemorySegment out = arena.allocate(JAVA_INT, capacity);
                int n = (int) tokenize.invokeExact(vocab, in, utf8.length, out, capacity, addSpecial, parseSpecial);
                if (n < 0) {
                    capacity = -n;
                    out = arena.allocate(JAVA_INT, capacity);
                    n = (int) tokenize.invokeExact(vocab, in, utf8.length, out, capacity, addSpecial, parseSpecial);
                }
                if (n < 0) {
                    throw new IllegalStateException("llama_tokenize failed: " + n);
                }
                return out.asSlice(0, 4L * n).toArray(JAVA_INT);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /** llama_token_to_piece. */
        public byte[] tokenToPiece(int token, int lstrip, boolean special) {
            try (Arena arena = Arena.ofConfined()) {
                int capacity = 64;
                MemorySegment buf = arena.allocate(capacity);
                int n = (int) tokenToPiece.invokeExact(vocab, token, buf, capacity, lstrip, special);
                if (n < 0) {
                    capacity = -n;
                    buf = arena.allocate(capacity);
                    n = (int) tokenToPiece.invokeExact(vocab, token, buf, capacity, lstrip, special);
                }
                return buf.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /** llama_detokenize. */
        public byte[] detokenize(int[] tokens, boolean removeSpecial, boolean unparseSpecial) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment ids = arena.allocate(JAVA_INT, Math.max(1, tokens.length));
                MemorySegment.copy(tokens, 0, ids, JAVA_INT, 0, tokens.length);
                int capacity = 16 + tokens.length * 16;
                MemorySegment buf = arena.allocate(capacity);
                int n = (int) detokenize.invokeExact(vocab, ids, tokens.length, buf, capacity, removeSpecial, unparseSpecial);
                if (n < 0) {
                    capacity = -n;
                    buf = arena.allocate(capacity);
                    n = (int) detokenize.invokeExact(vocab, ids, tokens.length, buf, capacity, removeSpecial, unparseSpecial);
                }
                return buf.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /**
         * A context for decoding: nCtx positions, nThreads threads, the KV cache in F32 (f32Cache) or llama.cpp's
         * default F16.
         */
        public Context newContext(int nCtx, int nThreads, boolean f32Cache) {
            return newContext(new ContextOptions(nCtx, 0, 1, nThreads, f32Cache, false));
        }

        /** A context with every option of {@link ContextOptions}. */
        public Context newContext(ContextOptions o) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment p = (MemorySegment) contextDefaultParams.invokeExact((java.lang.foreign.SegmentAllocator) arena);
                setInt(p, "n_ctx", o.nCtx());
                setInt(p, "n_threads", o.threads());
                setInt(p, "n_threads_batch", o.threads());
                if (o.nBatch() > 0) {
                    setInt(p, "n_batch", o.nBatch());
                    setInt(p, "n_ubatch", o.nBatch());
                }
                setInt(p, "n_seq_max", o.nSeqMax());
                if (o.f32Cache()) {
                    setInt(p, "type_k", GGML_TYPE_F32);
                    setInt(p, "type_v", GGML_TYPE_F32);
                }
                p.set(JAVA_BOOLEAN, CONTEXT_PARAMS.byteOffset(MemoryLayout.PathElement.groupElement("flash_attn")),
                        o.flashAttention());
                MemorySegment ctx = (MemorySegment) initFromModel.invokeExact(model, p);
                if (ctx.equals(MemorySegment.NULL)) {
                    throw new IllegalStateException("llama_init_from_model failed: " + recentLog());
                }
                return new Context(ctx, vocabSize());
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                try {
                    modelFree.invokeExact(model);
                } catch (Throwable t) {
                    throw wrap(t);
                }
            }
        }
    }

    /**
     * Context parameters.
     *
     * @param nCtx           KV cache positions, shared by all sequences
     * @param nBatch         tokens per llama_decode call (n_batch and n_ubatch); 0 keeps llama.cpp's default
     * @param nSeqMax        distinct sequence ids a batch may use
     * @param threads        n_threads and n_threads_batch
     * @param f32Cache       F32 KV cache (type_k, type_v) instead of llama.cpp's default F16
     * @param flashAttention flash_attn; b4916's CPU flash attention supports F16 (and quantized) K only, and aborts
     *                       the whole process (GGML_ASSERT "fattn: unsupported K-type") on an F32 K cache, so the
     *                       two cannot be combined
     */
    public record ContextOptions(int nCtx, int nBatch, int nSeqMax, int threads, boolean f32Cache,
                                 boolean flashAttention) {
        public ContextOptions {
            if (nCtx < 1 || nBatch < 0 || nSeqMax < 1 || threads < 1) {
                throw new IllegalArgumentException("llama.cpp context options out of range: " + nCtx + " positions, "
                        + nBatch + " batch, " + nSeqMax + " sequences, " + threads + " threads");
            }
            if (f32Cache && flashAttention) {
                throw new IllegalArgumentException("llama.cpp b4916 aborts the process on flash attention over an F32 "
                        + "K cache (CPU flash attention supports F16 K only): use an F16 cache with flash attention");
            }
        }
    }

    private static long field(String name) {
        return BATCH.byteOffset(MemoryLayout.PathElement.groupElement(name));
    }

    private static void setInt(MemorySegment params, String field, int value) {
        params.set(JAVA_INT, CONTEXT_PARAMS.byteOffset(MemoryLayout.PathElement.groupElement(field)), value);
    }

    /** A llama.cpp context: feeds tokens of one sequence and reads float32 logits. Close it before its model. */
    public final class Context implements AutoCloseable {
        private final MemorySegment ctx;
        private final int vocabSize;
        private boolean closed;

        private Context(MemorySegment ctx, int vocabSize) {
            this.ctx = ctx;
            this.vocabSize = vocabSize;
        }

        public int contextSize() {
            try {
                return (int) nCtx.invokeExact(ctx);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /**
         * Appends tokens to sequence 0 at the next positions (llama_batch_get_one + llama_decode) and returns the
         * logits of the last one.
         */
        public float[] decode(int[] tokens) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment ids = arena.allocate(JAVA_INT, tokens.length);
                MemorySegment.copy(tokens, 0, ids, JAVA_INT, 0, tokens.length);
                MemorySegment batch = (MemorySegment) batchGetOne.invokeExact((java.lang.foreign.SegmentAllocator) arena, ids, tokens.length);
                int rc = (int) decode.invokeExact(ctx, batch);
                if (rc != 0) {
                    throw new IllegalStateException("llama_decode returned " + rc + ": " + recentLog());
                }
                MemorySegment logits = (MemorySegment) getLogitsIth.invokeExact(ctx, -1);
                if (logits.equals(MemorySegment.NULL)) {
                    throw new IllegalStateException("llama_get_logits_ith(-1) returned NULL: " + recentLog());
                }
                return logits.reinterpret(4L * vocabSize).toArray(JAVA_FLOAT);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /**
         * One llama_decode of a batch whose token i belongs to sequence {@code seq[i]} at position {@code pos[i]};
         * logits are kept for the tokens with {@code wantLogits[i]} (read them with {@link #logits}). This is how
         * llama.cpp's server decodes its parallel slots: one batch per step, a distinct sequence id per slot.
         */
        public void decode(int[] tokens, int[] pos, int[] seq, boolean[] wantLogits) {
            int n = tokens.length;
            if (pos.length != n || seq.length != n || wantLogits.length != n || n == 0) {
                throw new IllegalArgumentException("batch arrays must have the same non-zero length: " + n + " tokens, "
                        + pos.length + " positions, " + seq.length + " sequence ids, " + wantLogits.length + " flags");
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment ids = arena.allocateFrom(JAVA_INT, tokens);
                MemorySegment positions = arena.allocateFrom(JAVA_INT, pos);
                MemorySegment seqIds = arena.allocateFrom(JAVA_INT, seq);
                MemorySegment nSeqId = arena.allocate(JAVA_INT, n);
                MemorySegment seqIdPointers = arena.allocate(ADDRESS, n);
                MemorySegment logitFlags = arena.allocate(n);
                for (int i = 0; i < n; i++) {
                    nSeqId.setAtIndex(JAVA_INT, i, 1);
                    seqIdPointers.setAtIndex(ADDRESS, i, seqIds.asSlice(4L * i, 4));
                    logitFlags.set(ValueLayout.JAVA_BYTE, i, (byte) (wantLogits[i] ? 1 : 0));
                }
                MemorySegment batch = arena.allocate(BATCH);
                batch.set(JAVA_INT, field("n_tokens"), n);
                batch.set(ADDRESS, field("token"), ids);
                batch.set(ADDRESS, field("embd"), MemorySegment.NULL);
                batch.set(ADDRESS, field("pos"), positions);
                batch.set(ADDRESS, field("n_seq_id"), nSeqId);
                batch.set(ADDRESS, field("seq_id"), seqIdPointers);
                batch.set(ADDRESS, field("logits"), logitFlags);
                int rc = (int) decode.invokeExact(ctx, batch);
                if (rc != 0) {
                    throw new IllegalStateException("llama_decode of " + n + " tokens returned " + rc + ": " + recentLog());
                }
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /** Logits of token i of the last {@link #decode(int[], int[], int[], boolean[])} (which must have kept them). */
        public void logits(int i, float[] dst) {
            try {
                MemorySegment logits = (MemorySegment) getLogitsIth.invokeExact(ctx, i);
                if (logits.equals(MemorySegment.NULL)) {
                    throw new IllegalStateException("llama_get_logits_ith(" + i + ") returned NULL: " + recentLog());
                }
                MemorySegment.copy(logits.reinterpret(4L * vocabSize), JAVA_FLOAT, 0, dst, 0, vocabSize);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /** llama_get_logits: the logits of the last decode's output rows (one row after decode of a batch_get_one). */
        public float[] lastLogits() {
            try {
                MemorySegment logits = (MemorySegment) getLogits.invokeExact(ctx);
                return logits.reinterpret(4L * vocabSize).toArray(JAVA_FLOAT);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        /** Forgets the sequence (llama_kv_self_clear), so decoding starts again at position 0. */
        public void clear() {
            try {
                kvSelfClear.invokeExact(ctx);
            } catch (Throwable t) {
                throw wrap(t);
            }
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                try {
                    free.invokeExact(ctx);
                } catch (Throwable t) {
                    throw wrap(t);
                }
            }
        }
    }
}

package io.stepstream.gpu;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Tokenizer;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.spi.Backends;
import io.stepstream.engine.spi.BackendModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * Runs a model on a device backend and, when a kernel fails at run time ({@link OpenClException}), goes on
 * with the CPU backend without losing any sequence. Every KV cache it hands out remembers the tokens appended
 * to it; after the failure, each cache gets a fallback cache rebuilt by replaying those tokens (a prefill on
 * the fallback model) the first time it is used again, and the failed step is rerun there. The failure is
 * logged once and counted ({@link #failovers()}, for a metric); the device model is not used again.
 *
 * <p>Invalid input (IllegalArgumentException) and a full KV pool pass through unchanged: only device failures
 * fail over. Not thread-safe, like every model: one step at a time.
 */
public final class FailoverModel implements BackendModel {
    private static final System.Logger LOG = System.getLogger(FailoverModel.class.getName());

    private final Model primary;
    private final Supplier<? extends Model> fallbackFactory;
    private final AtomicLong failovers = new AtomicLong();
    private Model fallback;
    private String primaryDevice;
    private float[][] replayLogits = new float[0][];

    /**
     * @param primary         the device model
     * @param fallbackFactory builds the CPU model on the same weights, only when the device fails
     */
    public FailoverModel(Model primary, Supplier<? extends Model> fallbackFactory) {
        this.primary = primary;
        this.fallbackFactory = fallbackFactory;
        this.primaryDevice = Backends.deviceOf(primary);
    }

    /** Device failures so far: 0, or 1 once the model runs on the fallback. */
    public long failovers() {
        return failovers.get();
    }

    public boolean failedOver() {
        return fallback != null;
    }

    /** The device model (for its counters); not to be run directly. */
    public Model primary() {
        return primary;
    }

    @Override
    public String backendName() {
        return fallback == null ? Backends.backendOf(primary) : Backends.backendOf(fallback);
    }

    @Override
    public String deviceName() {
        return fallback == null ? primaryDevice
                : Backends.deviceOf(fallback) + " (failed over from " + Backends.backendOf(primary) + " "
                + primaryDevice + ")";
    }

    @Override
    public String name() {
        return primary.name();
    }

    @Override
    public ModelConfig config() {
        return primary.config();
    }

    @Override
    public Tokenizer tokenizer() {
        return primary.tokenizer();
    }

    @Override
    public KvCache newKvCache() {
        return new Cache(fallback == null ? primary.newKvCache() : fallback.newKvCache(), fallback != null);
    }

    @Override
    public void forward(ForwardBatch batch, float[][] logits) {
        List<ForwardBatch.Entry> entries = batch.entries();
        Cache[] caches = caches(entries);
        if (fallback == null) {
            try {
                primary.forward(mapped(entries, caches, false), logits);
                record(entries, caches);
                return;
            } catch (OpenClException e) {
                failOver(e);
            }
        }
        replay(caches);
        fallback.forward(mapped(entries, caches, true), logits);
        record(entries, caches);
    }

    /** The device model's {@link #summarizesOnDevice}, until a failover; false from then on (the CPU runs). */
    @Override
    public boolean summarizesOnDevice() {
        return fallback == null && primary instanceof BackendModel b && b.summarizesOnDevice();
    }

    /**
     * The device model's {@link BackendModel#forwardSummaries} (a plain model: its forward, summarized on the host).
     * A device failure fails over as {@link #forward} does, and the step reruns on the CPU, summarized on the host
     * (so nothing half written by the device reaches {@code out}).
     */
    @Override
    public void forwardSummaries(ForwardBatch batch, float[][] logits, RowSummaries out) {
        BackendModel.checkSummaries(batch, out);
        List<ForwardBatch.Entry> entries = batch.entries();
        Cache[] caches = caches(entries);
        int vocab = config().vocabSize();
        if (fallback == null) {
            try {
                ForwardBatch onPrimary = mapped(entries, caches, false);
                if (primary instanceof BackendModel b) {
                    b.forwardSummaries(onPrimary, logits, out);
                } else {
                    primary.forward(onPrimary, logits);
                    BackendModel.summarizeOnHost(onPrimary, logits, out, vocab);
                }
                record(entries, caches);
                return;
            } catch (OpenClException e) {
                failOver(e);
            }
        }
        replay(caches);
        ForwardBatch onFallback = mapped(entries, caches, true);
        fallback.forward(onFallback, logits);
        BackendModel.summarizeOnHost(onFallback, logits, out, vocab);
        record(entries, caches);
    }

    /** The step's caches, each checked to be this model's and open. */
    private Cache[] caches(List<ForwardBatch.Entry> entries) {
        Cache[] caches = new Cache[entries.size()];
        for (int i = 0; i < caches.length; i++) {
            if (!(entries.get(i).cache() instanceof Cache c) || c.owner() != this) {
                throw new IllegalArgumentException("entry " + i + ": KV cache was not created by model " + name());
            }
            if (c.closed) {
                throw new IllegalArgumentException("entry " + i + ": KV cache is closed");
            }
            caches[i] = c;
        }
        return caches;
    }

    private void failOver(OpenClException e) {
        failovers.incrementAndGet();
        LOG.log(System.Logger.Level.WARNING, "model " + name() + ": the " + Backends.backendOf(primary)
                + " backend failed on " + primaryDevice + "; continuing on the CPU backend, sequences are replayed"
                + " there (" + e.getMessage() + ")", e);
        fallback = fallbackFactory.get();
        if (fallback.config().vocabSize() != primary.config().vocabSize()
                || fallback.config().contextLength() != primary.config().contextLength()) {
            throw new IllegalStateException("fallback model " + fallback.name() + " does not have the shape of "
                    + name());
        }
    }

    /** Gives every cache of this step a fallback cache holding its history, in one prefill for all of them. */
    private void replay(Cache[] caches) {
        List<ForwardBatch.Entry> prefill = new ArrayList<>();
        for (Cache c : caches) {
            if (!c.onFallback) {
                c.moveToFallback(fallback.newKvCache());
                if (c.length > 0) {
                    prefill.add(new ForwardBatch.Entry(c.inner, c.history, 0, c.length));
                }
            }
        }
        if (prefill.isEmpty()) {
            return;
        }
        int vocab = config().vocabSize();
        if (replayLogits.length < prefill.size()) {
            replayLogits = new float[prefill.size()][vocab];
        }
        fallback.forward(new ForwardBatch(prefill), replayLogits);
    }

    private static ForwardBatch mapped(List<ForwardBatch.Entry> entries, Cache[] caches, boolean onFallback) {
        List<ForwardBatch.Entry> inner = new ArrayList<>(entries.size());
        for (int i = 0; i < caches.length; i++) {
            ForwardBatch.Entry e = entries.get(i);
            if (caches[i].onFallback != onFallback) {
                throw new IllegalStateException("KV cache " + i + " is not on the model that runs this step");
            }
            inner.add(new ForwardBatch.Entry(caches[i].inner, e.tokens(), e.offset(), e.length()));
        }
        return new ForwardBatch(inner);
    }

    private static void record(List<ForwardBatch.Entry> entries, Cache[] caches) {
        for (int i = 0; i < caches.length; i++) {
            ForwardBatch.Entry e = entries.get(i);
            caches[i].append(e.tokens(), e.offset(), e.length());
        }
    }

    @Override
    public void close() {
        try {
            primary.close();
        } finally {
            if (fallback != null) {
                fallback.close();
            }
        }
    }

    /** A sequence's cache on whichever model runs it, with every token appended so far. */
    private final class Cache implements KvCache {
        private KvCache inner;
        private boolean onFallback;
        private int[] history = new int[16];
        private int length;
        private boolean closed;

        Cache(KvCache inner, boolean onFallback) {
            this.inner = inner;
            this.onFallback = onFallback;
        }

        FailoverModel owner() {
            return FailoverModel.this;
        }

        void append(int[] tokens, int offset, int count) {
            if (length + count > history.length) {
                history = Arrays.copyOf(history, Math.max(length + count, 2 * history.length));
            }
            System.arraycopy(tokens, offset, history, length, count);
            length += count;
        }

        /** The device cache is dropped (its model failed); the caller prefills the new one with the history. */
        void moveToFallback(KvCache replacement) {
            KvCache old = inner;
            inner = replacement;
            onFallback = true;
            old.close();
        }

        @Override
        public int length() {
            return length;
        }

        @Override
        public int capacity() {
            return inner.capacity();
        }

        @Override
        public long bytes() {
            return inner.bytes();
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                inner.close();
            }
        }
    }
}

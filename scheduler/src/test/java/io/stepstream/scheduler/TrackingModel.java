package io.stepstream.scheduler;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.KvCacheExhaustedException;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Tokenizer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Wraps any model to watch what the scheduler does with it: which KV caches are open, every forward batch, and
 * an injectable failure of the next forward pass.
 */
public final class TrackingModel extends ForwardingModel {
    public final Set<TrackedCache> openCaches = ConcurrentHashMap.newKeySet();
    public final List<ForwardBatch> forwards = Collections.synchronizedList(new ArrayList<>());
    public volatile RuntimeException failNextForward;
    /** KV caches that may be open at once, like a bounded block pool. */
    volatile int maxOpenCaches = Integer.MAX_VALUE;

    public TrackingModel(Model inner) {
        super(inner);
    }




    @Override
    public KvCache newKvCache() {
        if (openCaches.size() >= maxOpenCaches) {
            throw new KvCacheExhaustedException("KV cache memory exhausted");
        }
        TrackedCache c = new TrackedCache(inner.newKvCache());
        openCaches.add(c);
        return c;
    }

    @Override
    public void forward(ForwardBatch batch, float[][] logits) {
        RuntimeException failure = failNextForward;
        if (failure != null) {
            failNextForward = null;
            throw failure;
        }
        forwards.add(batch);
        List<ForwardBatch.Entry> unwrapped = new ArrayList<>();
        for (ForwardBatch.Entry e : batch.entries()) {
            TrackedCache c = (TrackedCache) e.cache();
            if (!openCaches.contains(c)) {
                throw new IllegalStateException("forward on a closed cache");
            }
            unwrapped.add(new ForwardBatch.Entry(c.inner, e.tokens(), e.offset(), e.length()));
        }
        inner.forward(new ForwardBatch(unwrapped), logits);
    }


    public final class TrackedCache implements KvCache {
        final KvCache inner;

        TrackedCache(KvCache inner) {
            this.inner = inner;
        }

        @Override
        public int length() {
            return inner.length();
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
            if (!openCaches.remove(this)) {
                throw new IllegalStateException("cache closed twice");
            }
            inner.close();
        }
    }
}

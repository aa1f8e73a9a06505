package io.stepstream.actors;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.KvCache;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelConfig;
import io.stepstream.engine.Tokenizer;
import io.stepstream.scheduler.ForwardingModel;
import io.stepstream.scheduler.Scheduler;
import io.stepstream.scheduler.SchedulerConfig;
import io.stepstream.scheduler.SequenceOutput;
import io.stepstream.scheduler.SequenceRequest;
import io.stepstream.scheduler.TokenEvent;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** Helpers of the actors tests: the scheduler run directly (the reference), and a model whose steps can be held. */
final class TestModels {
    private TestModels() {
    }

    /** What the scheduler alone, on the test thread, produces for one request (the reference for the actors). */
    static GenerationResult direct(Model model, SequenceRequest r) {
        Scheduler s = new Scheduler(model, SchedulerConfig.defaults(), System::nanoTime);
        if (!s.add(r)) {
            throw new IllegalStateException("not admitted");
        }
        List<TokenEvent> events = new ArrayList<>();
        while (s.hasWork()) {
            for (SequenceOutput o : s.complete(s.execute(s.plan()))) {
                events.add(o.event());
            }
        }
        StringBuilder text = new StringBuilder();
        List<Integer> ids = new ArrayList<>();
        for (TokenEvent e : events) {
            if (e instanceof TokenEvent.Token t) {
                ids.add(t.tokenId());
                text.append(t.text());
            } else if (e instanceof TokenEvent.Finished f) {
                text.append(f.text());
                return new GenerationResult(text.toString(), ids.stream().mapToInt(Integer::intValue).toArray(),
                        f.reason(), f.promptTokens(), f.completionTokens());
            }
        }
        throw new IllegalStateException("no Finished");
    }

    /**
     * Wraps a model so a test can hold its forward passes: {@link #hold} makes the next forward wait (signalling
     * {@link #entered}) until {@link #release}; and {@link #failNext} makes the next forward throw.
     */
    static final class GatedModel extends ForwardingModel {
        private volatile CountDownLatch gate = new CountDownLatch(0);
        volatile CountDownLatch entered = new CountDownLatch(1);
        volatile RuntimeException failNext;

        GatedModel(Model inner) {
            super(inner);
        }

        void hold() {
            entered = new CountDownLatch(1);
            gate = new CountDownLatch(1);
        }

        void release() {
            gate.countDown();
        }

        boolean awaitEntered() throws InterruptedException {
            return entered.await(30, TimeUnit.SECONDS);
        }





        @Override
        public void forward(ForwardBatch batch, float[][] logits) {
            entered.countDown();
            try {
                if (!gate.await(30, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("test gate never opened");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            RuntimeException f = failNext;
            if (f != null) {
                failNext = null;
                throw f;
            }
            inner.forward(batch, logits);
        }
    }
}

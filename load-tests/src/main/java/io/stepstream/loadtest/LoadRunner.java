package io.stepstream.loadtest;

import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.stepstream.protocol.v1.GenerateEvent;
import io.stepstream.protocol.v1.GenerateRequest;
import io.stepstream.protocol.v1.StepStreamGrpc;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;
import java.util.random.RandomGenerator;

/**
 * Drives a load run against a StepStream server over one channel with the async stub: warm-up requests
 * first (discarded), then the measured ones, either closed loop (a fixed number of streams in flight, the
 * next sent when one ends) or open loop (sends at the instants of an {@link ArrivalProcess}, however many
 * are still in flight).
 *
 * <p>The clock and the arrival process's random generator are injected. The dispatcher thread (the caller
 * of {@link #run}) only sends; stream callbacks arrive on gRPC's executor and record into a thread-safe
 * {@link MetricsCollector}.
 */
public final class LoadRunner {

    private final StepStreamGrpc.StepStreamStub stub;
    private final LoadTestConfig config;
    private final List<String> prompts;
    private final LongSupplier clock;
    private final RandomGenerator arrivalRandom;

    public LoadRunner(Channel channel, LoadTestConfig config, List<String> prompts,
                      LongSupplier nanoClock, RandomGenerator arrivalRandom) {
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("a load run needs at least one prompt");
        }
        this.stub = StepStreamGrpc.newStub(channel);
        this.config = config;
        this.prompts = List.copyOf(prompts);
        this.clock = nanoClock;
        this.arrivalRandom = arrivalRandom;
    }

    /** Runs the warm-up and the measured requests and reports on the measured ones. */
    public LoadReport run() throws InterruptedException {
        if (config.warmupRequests() > 0) {
            // Warm-up is closed loop at the run's concurrency (one stream in rate mode): it should heat the
            // server's code paths and caches, not measure an arrival pattern.
            int streams = config.concurrency() != null ? config.concurrency() : 1;
            Batch warmup = new Batch(new MetricsCollector(SloTargets.NONE), config.warmupRequests());
            closedLoop(warmup, streams, -config.warmupRequests());
            warmup.await();
        }
        Batch measured = new Batch(new MetricsCollector(config.slo()), config.requests());
        long start = clock.getAsLong();
        measured.lastEndNanos.set(start);
        if (config.concurrency() != null) {
            closedLoop(measured, config.concurrency(), 0);
        } else {
            openLoop(measured, start);
        }
        measured.await();
        return measured.collector.report(config, measured.lastEndNanos.get() - start);
    }

    /** Keeps {@code streams} requests in flight until the batch's requests are all sent. */
    private void closedLoop(Batch batch, int streams, int firstIndex) throws InterruptedException {
        Semaphore inFlight = new Semaphore(streams);
        for (int i = 0; i < batch.size; i++) {
            inFlight.acquire();
            send(firstIndex + i, batch, inFlight::release);
        }
    }

    /** Sends each request at its arrival instant, regardless of how many are still streaming. */
    private void openLoop(Batch batch, long start) {
        ArrivalProcess arrivals = new ArrivalProcess(config.ratePerSecond(), config.burstiness(), arrivalRandom);
        long[] offsets = arrivals.scheduleNanos(batch.size);
        for (int i = 0; i < batch.size; i++) {
            parkUntil(start + offsets[i]);
            send(i, batch, () -> { });
        }
    }

    private void parkUntil(long deadlineNanos) {
        long left;
        while ((left = deadlineNanos - clock.getAsLong()) > 0) {
            LockSupport.parkNanos(left);
        }
    }

    /**
     * Builds request {@code index}: prompts are used in turn, the seed (if any) is offset by the index. With
     * diffusion settings the request carries them instead of max_tokens.
     */
    GenerateRequest request(int index) {
        GenerateRequest.Builder request = GenerateRequest.newBuilder()
                .setModel(config.model())
                .setPrompt(prompts.get(Math.floorMod(index, prompts.size())))
                .setTemperature(config.temperature());
        LoadTestConfig.Diffusion d = config.diffusion();
        if (d == null) {
            request.setMaxTokens(config.maxTokens());
        } else {
            request.setDiffusion(d.settings().toWire());
        }
        if (config.seed() != null) {
            request.setSeed(config.seed() + index);
        }
        return request.build();
    }

    private void send(int index, Batch batch, Runnable onEnd) {
        GenerateRequest request = request(index);
        long sent = clock.getAsLong();
        TimedObserver observer = new TimedObserver(new RequestTimeline(sent), batch, onEnd);
        try {
            stub.withDeadlineAfter(config.requestTimeoutMs(), TimeUnit.MILLISECONDS).generate(request, observer);
        } catch (RuntimeException e) {
            // The call never started (e.g. a shut-down channel): still a counted failure, never a lost request.
            observer.onError(e);
        }
    }

    /** A set of requests that share a collector and a completion latch. */
    private static final class Batch {
        final MetricsCollector collector;
        final int size;
        final CountDownLatch ended;
        final AtomicLong lastEndNanos = new AtomicLong(Long.MIN_VALUE);

        Batch(MetricsCollector collector, int size) {
            this.collector = collector;
            this.size = size;
            this.ended = new CountDownLatch(size);
        }

        void end(RequestOutcome outcome, long endNanos) {
            collector.record(outcome);
            lastEndNanos.accumulateAndGet(endNanos, Math::max);
            ended.countDown();
        }

        void await() throws InterruptedException {
            ended.await();
        }
    }

    /** Times one stream's events and reports its outcome exactly once. */
    private final class TimedObserver implements StreamObserver<GenerateEvent> {
        private final RequestTimeline timeline;
        private final Batch batch;
        private final Runnable onEnd;
        private boolean ended;

        TimedObserver(RequestTimeline timeline, Batch batch, Runnable onEnd) {
            this.timeline = timeline;
            this.batch = batch;
            this.onEnd = onEnd;
        }

        @Override
        public void onNext(GenerateEvent event) {
            long now = clock.getAsLong();
            switch (event.getEventCase()) {
                case TOKEN -> timeline.onToken(now, event.getToken().getText());
                case FINAL -> {
                    var last = event.getFinal();
                    timeline.onFinal(now, last.getFinishReason(), last.getUsage().getPromptTokens(),
                            last.getUsage().getCompletionTokens(), last.getText());
                }
                case PROGRESS, EVENT_NOT_SET -> { } // not a token (the harness never asks for progress)
            }
        }

        @Override
        public void onError(Throwable error) {
            long now = clock.getAsLong();
            Status status = Status.fromThrowable(error);
            String detail = status.getDescription() != null ? status.getDescription() : String.valueOf(error);
            end(timeline.onError(now, status.getCode().name(), detail), now);
        }

        @Override
        public void onCompleted() {
            long now = clock.getAsLong();
            end(timeline.onCompleted(now), now);
        }

        private synchronized void end(RequestOutcome outcome, long now) {
            if (ended) {
                return;
            }
            ended = true;
            batch.end(outcome, now);
            onEnd.run();
        }
    }
}

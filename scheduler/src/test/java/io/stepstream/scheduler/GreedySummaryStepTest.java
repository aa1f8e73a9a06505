package io.stepstream.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.engine.ForwardBatch;
import io.stepstream.engine.Model;
import io.stepstream.engine.ModelOptions;
import io.stepstream.engine.Models;
import io.stepstream.engine.SamplingParams;
import io.stepstream.engine.dlm.RowSummaries;
import io.stepstream.engine.spi.BackendModel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The autoregressive scheduler on a model that says it reduces logits rows on its device (stories260K on the CPU,
 * its summaries the host default): a step whose sampling sequences are all greedy without logprobs runs
 * {@code forwardSummaries}, a step with a sampled sequence or one asking for logprobs runs the logits path, and every
 * request streams exactly the events it streams alone on the logits path. Single-threaded, no sleeps.
 */
class GreedySummaryStepTest {
    private static Model model;
    private final AtomicLong clock = new AtomicLong(1_000);

    @BeforeAll
    static void load() {
        model = Models.load(Models.DEFAULT_MODEL, ModelOptions.defaults().withComputeThreads(1));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /**
     * The real model as a backend model; records each step's path. A summary step's logits rows are overwritten with
     * NaN, so a scheduler that sampled them after asking for summaries would stream token 0s.
     */
    private static final class PathRecordingModel extends ForwardingModel implements BackendModel {
        final boolean summarizes;
        final List<Boolean> summarySteps = new ArrayList<>();
        private float[][] scratch = new float[0][];

        PathRecordingModel(boolean summarizes) {
            super(model);
            this.summarizes = summarizes;
        }

        @Override
        public boolean summarizesOnDevice() {
            return summarizes;
        }

        @Override
        public void forwardSummaries(ForwardBatch batch, float[][] logits, RowSummaries out) {
            summarySteps.add(true);
            int n = batch.entries().size();
            if (scratch.length < n) {
                scratch = new float[n][model.config().vocabSize()];
            }
            BackendModel.checkSummaries(batch, out);
            model.forward(batch, scratch);
            BackendModel.summarizeOnHost(batch, scratch, out, model.config().vocabSize());
            for (int i = 0; i < n; i++) {
                Arrays.fill(logits[i], Float.NaN);
            }
        }

        @Override
        public void forward(ForwardBatch batch, float[][] logits) {
            summarySteps.add(false);
            super.forward(batch, logits);
        }

        @Override
        public String backendName() {
            return "test";
        }

        @Override
        public String deviceName() {
            return "test";
        }
    }

    private static final SchedulerConfig CONFIG = new SchedulerConfig(8, 24, 16);

    private StepLoop run(PathRecordingModel m, List<SequenceRequest> requests) {
        StepLoop l = new StepLoop(new Scheduler(m, CONFIG, clock::get), CONFIG);
        requests.forEach(r -> assertTrue(l.scheduler.add(r)));
        l.runToEnd();
        return l;
    }

    private static SequenceRequest request(String id, String prompt, int maxTokens, SamplingParams sampling,
                                           List<String> stops) {
        return new SequenceRequest(id, model.tokenizer().encode(prompt, true, false), maxTokens, sampling, stops);
    }

    /** Which path each step with work should take: summaries iff every sequence sampling in it is greedy, no logprobs. */
    private static List<Boolean> expectedPaths(StepLoop l, Map<String, SequenceRequest> requests) {
        List<Boolean> paths = new ArrayList<>();
        for (StepBatch b : l.plans) {
            if (b.isEmpty()) {
                continue;
            }
            List<String> sampling = new ArrayList<>();
            b.decodes().forEach(d -> sampling.add(d.requestId()));
            b.prefills().stream().filter(StepBatch.PrefillChunk::last).forEach(p -> sampling.add(p.requestId()));
            paths.add(sampling.stream().map(id -> requests.get(id).sampling())
                    .allMatch(s -> s.greedy() && s.logprobs() == 0));
        }
        return paths;
    }

    /** Every request's events equal its run alone on a model that never summarizes (the logits path). */
    private void assertEachStreamEqualsItsRunAlone(StepLoop together, Map<String, SequenceRequest> requests) {
        for (SequenceRequest r : requests.values()) {
            PathRecordingModel plain = new PathRecordingModel(false);
            StepLoop alone = run(plain, List.of(r));
            assertTrue(plain.summarySteps.stream().noneMatch(b -> b), "the plain model never summarizes");
            assertEquals(alone.events.get(r.requestId()), together.events.get(r.requestId()), r.requestId());
        }
    }

    @Test
    void aGreedyOnlyBatchRunsOnSummariesAndStreamsWhatTheLogitsPathStreams() {
        Map<String, SequenceRequest> requests = new LinkedHashMap<>();
        requests.put("a", request("a", "Once upon a time", 40, SamplingParams.GREEDY, List.of()));
        // A long prompt (chunked prefill beside decodes), a stop string, and a greedy request with a seed and
        // top-k/top-p set: none of them changes a greedy pick.
        requests.put("b", request("b", "Tom had a red ball. He liked to play with it in the park every day and",
                30, SamplingParams.GREEDY, List.of("park")));
        requests.put("c", request("c", "The sun was", 25, new SamplingParams(0f, 5, 0.5f, 99L, 0), List.of()));
        PathRecordingModel m = new PathRecordingModel(true);
        StepLoop l = run(m, new ArrayList<>(requests.values()));
        assertTrue(m.summarySteps.size() > 20 && m.summarySteps.stream().allMatch(b -> b),
                "every step ran on summaries: " + m.summarySteps);
        assertTrue(l.plans.stream().anyMatch(b -> !b.prefills().isEmpty() && !b.decodes().isEmpty()),
                "some step mixed a prefill chunk and decodes");
        assertEachStreamEqualsItsRunAlone(l, requests);
        assertTrue(l.outcome("a").tokens().length > 20, "a real story, not an immediate stop");
    }

    @Test
    void aMixedBatchRunsTheLogitsPathUntilOnlyGreedyIdsAreWanted() {
        Map<String, SequenceRequest> requests = new LinkedHashMap<>();
        requests.put("greedy", request("greedy", "Once upon a time", 60, SamplingParams.GREEDY, List.of()));
        requests.put("sampled", request("sampled", "The cat", 12, new SamplingParams(0.8f, 0, 0.9f, 3L, 0),
                List.of()));
        requests.put("logprobs", request("logprobs", "Lily saw a", 20, new SamplingParams(0f, 0, 1f, 0L, 2),
                List.of()));
        PathRecordingModel m = new PathRecordingModel(true);
        StepLoop l = run(m, new ArrayList<>(requests.values()));
        assertEquals(expectedPaths(l, requests), m.summarySteps);
        long summaries = m.summarySteps.stream().filter(b -> b).count();
        assertTrue(summaries >= 20 && summaries < m.summarySteps.size(),
                "both paths ran: " + m.summarySteps);
        assertTrue(!m.summarySteps.getFirst(), "the first steps hold the sampled request");
        assertTrue(m.summarySteps.getLast(), "the greedy request outlives the others on summaries");
        assertEachStreamEqualsItsRunAlone(l, requests);
        // The logprobs request got real logprobs from the logits path.
        TokenEvent.Token first = (TokenEvent.Token) l.events.get("logprobs").getFirst();
        assertTrue(first.logprob() < 0 && first.topLogprobs().size() == 2, first.toString());
    }

    @Test
    void onAModelThatDoesNotSummarizeEveryStepReadsLogits() {
        PathRecordingModel m = new PathRecordingModel(false);
        run(m, List.of(request("a", "Once upon a time", 10, SamplingParams.GREEDY, List.of())));
        assertTrue(!m.summarySteps.isEmpty() && m.summarySteps.stream().noneMatch(b -> b), m.summarySteps.toString());
    }
}

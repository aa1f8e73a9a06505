package io.stepstream.engine.bench;

import io.stepstream.engine.reference.LlamaCpp;

/**
 * Runs the bench workload in llama.cpp: all prompts in one llama_batch, then one llama_batch per step holding
 * every sequence's next token under its own sequence id (what llama.cpp's server does with parallel slots),
 * greedy, F32 KV cache (F16 with flash attention, which b4916 supports on F16 K only). Warm-up runs in the same
 * context first (llama.cpp allocates its compute graphs on the first decodes; repeated for as long as our engine's
 * warm-up, for symmetry), the cache cleared after each, then the timed run.
 */
final class LlamaCppRunner {
    private LlamaCppRunner() {
    }

    static RunResult run(LlamaCpp.Model model, int threads, boolean flashAttention, int[][] prompts, int steps,
                         int warmupSteps, double warmupSeconds) {
        return run(model, threads, flashAttention, prompts, steps, warmupSteps, warmupSeconds, null);
    }

    /** @param generated null, or [batch][steps + 1]: receives every sequence's greedy tokens of the timed run */
    static RunResult run(LlamaCpp.Model model, int threads, boolean flashAttention, int[][] prompts, int steps,
                         int warmupSteps, double warmupSeconds, int[][] generated) {
        int batch = prompts.length;
        int promptTokens = prompts[0].length;
        int positions = batch * (promptTokens + Math.max(steps, warmupSteps));
        int nCtx = (positions + 255) / 256 * 256;
        int nBatch = Math.max(512, batch * promptTokens);
        // F32 KV cache for fairness (we keep F32); with flash attention F16, the only K type b4916's CPU kernel takes
        var options = new LlamaCpp.ContextOptions(nCtx, nBatch, batch, threads, !flashAttention, flashAttention);
        String engine = flashAttention ? "llama.cpp FA" : "llama.cpp";
        try (LlamaCpp.Context ctx = model.newContext(options)) {
            if (warmupSteps > 0) {
                Bench.warmUp(() -> {
                    once(ctx, model.vocabSize(), prompts, warmupSteps, engine, null);
                    ctx.clear();
                }, warmupSeconds);
            }
            return once(ctx, model.vocabSize(), prompts, steps, engine, generated);
        }
    }

    private static RunResult once(LlamaCpp.Context ctx, int vocab, int[][] prompts, int steps, String engine,
                                  int[][] generated) {
        int batch = prompts.length;
        int promptTokens = prompts[0].length;
        int n = batch * promptTokens;
        int[] tokens = new int[n];
        int[] pos = new int[n];
        int[] seq = new int[n];
        boolean[] want = new boolean[n];
        for (int i = 0; i < batch; i++) {
            for (int j = 0; j < promptTokens; j++) {
                int at = i * promptTokens + j;
                tokens[at] = prompts[i][j];
                pos[at] = j;
                seq[at] = i;
                want[at] = j == promptTokens - 1;
            }
        }
        float[] logits = new float[vocab];
        int[] next = new int[batch];
        long t0 = System.nanoTime();
        ctx.decode(tokens, pos, seq, want);
        long prefill = System.nanoTime() - t0;
        for (int i = 0; i < batch; i++) {
            ctx.logits((i + 1) * promptTokens - 1, logits);
            next[i] = Prompts.argmax(logits, vocab);
            if (generated != null) {
                generated[i][0] = next[i];
            }
        }
        int[] stepPos = new int[batch];
        int[] stepSeq = new int[batch];
        boolean[] stepWant = new boolean[batch];
        for (int i = 0; i < batch; i++) {
            stepSeq[i] = i;
            stepWant[i] = true;
        }
        long t1 = System.nanoTime();
        for (int s = 0; s < steps; s++) {
            java.util.Arrays.fill(stepPos, promptTokens + s);
            ctx.decode(next, stepPos, stepSeq, stepWant);
            for (int i = 0; i < batch; i++) {
                ctx.logits(i, logits);
                next[i] = Prompts.argmax(logits, vocab);
                if (generated != null) {
                    generated[i][s + 1] = next[i];
                }
            }
        }
        long decode = System.nanoTime() - t1;
        return new RunResult(engine, batch, promptTokens, steps, prefill, decode);
    }
}

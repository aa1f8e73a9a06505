package io.stepstream.engine.dlm;

/**
 * A cached (Fast-dLLM) request's part of one step, carried by its {@link DenoiseInput}.
 *
 * @param handle     names the request's keys and values in the model's {@link DlmKvCache}
 * @param mode       PREFIX or DUAL
 * @param refresh    true at the first step of a block: the whole canvas runs and every layer's keys and values are
 *                   kept; false: only the rows the mode recomputes run (PREFIX: {@code [blockStart, canvas end)};
 *                   DUAL: {@code [blockStart, blockEnd)}), attending to the kept keys and values elsewhere
 * @param blockStart canvas position of the current block's first token
 * @param blockEnd   one past its last token
 */
public record DlmCacheStep(DlmKvHandle handle, DlmCacheMode mode, boolean refresh, int blockStart, int blockEnd) {
    public DlmCacheStep {
        if (handle == null) {
            throw new IllegalArgumentException("cache handle must not be null");
        }
        if (mode == null || mode == DlmCacheMode.NONE) {
            throw new IllegalArgumentException("cache mode must be PREFIX or DUAL, got " + mode);
        }
        if (blockStart < 0 || blockEnd <= blockStart) {
            throw new IllegalArgumentException("cache block [" + blockStart + ", " + blockEnd + ") is empty or negative");
        }
    }

    /** First canvas position a reuse step recomputes. */
    public int rowsFrom() {
        return blockStart;
    }

    /** One past the last canvas position a reuse step recomputes, for a canvas of {@code canvasLength} tokens. */
    public int rowsTo(int canvasLength) {
        return mode == DlmCacheMode.DUAL ? blockEnd : canvasLength;
    }
}

package io.stepstream.gpu;

import java.util.Locale;

/**
 * Whether and how far the tiled attention of a step with few query rows per entry (decode steps, whatever the
 * batch) splits each (entry, KV head, row tile)'s keys over several work-groups (flash-decoding): at batch 1 the
 * unsplit kernel has one group per KV head (4 on the 1.1B model) walking every key, on a GPU of 132 compute units.
 * Each chunk's group writes its rows' running max, sum and unnormalized output; step.cl's {@code attn_combine}
 * merges them in chunk order (deterministic). Chosen per model by the system property {@value #PROPERTY}:
 * {@code auto} (default: the host rule of {@link #plan}), {@code off} (today's {@code attn_tiled} for every step) or
 * a fixed number of chunks N >= 1 (1: the decode-sized group without a split).
 *
 * @param chunks 0 for auto, -1 for off, else the fixed number of chunks
 */
public record AttentionSplit(int chunks) {
    /** System property: {@code auto}, {@code off} or a number of chunks >= 1. */
    public static final String PROPERTY = "stepstream.opencl.attentionSplit";
    public static final AttentionSplit AUTO = new AttentionSplit(0);
    public static final AttentionSplit OFF = new AttentionSplit(-1);
    /** Auto aims at this many groups per compute unit for the step's attention. */
    static final int GROUPS_PER_COMPUTE_UNIT = 2;
    /** Most chunks a row's keys are split into (bounds the scratch: tokens x heads x chunks x (head + 2) floats). */
    public static final int MAX_CHUNKS = 256;

    public AttentionSplit {
        if (chunks < -1 || chunks > MAX_CHUNKS) {
            throw new IllegalArgumentException(PROPERTY + " chunks must be 1.." + MAX_CHUNKS + ", got " + chunks);
        }
    }

    /** How a step's keys are split: {@code chunks} runs of {@code chunkKeys} positions (a multiple of the key tile). */
    record Plan(int chunks, int chunkKeys) {
    }

    public boolean off() {
        return chunks < 0;
    }

    public String label() {
        return chunks == 0 ? "auto" : chunks < 0 ? "off" : Integer.toString(chunks);
    }

    /** {@code auto}, {@code off} or an integer 1..{@value #MAX_CHUNKS}; anything else is an error naming them. */
    public static AttentionSplit parse(String s) {
        String v = s == null ? "" : s.strip().toLowerCase(Locale.ROOT);
        switch (v) {
            case "auto" -> {
                return AUTO;
            }
            case "off" -> {
                return OFF;
            }
            default -> {
                int n;
                try {
                    n = Integer.parseInt(v);
                } catch (NumberFormatException e) {
                    n = 0;
                }
                if (n < 1 || n > MAX_CHUNKS) {
                    throw new IllegalArgumentException(PROPERTY + " must be auto, off or a number of chunks 1.."
                            + MAX_CHUNKS + ", got '" + s + "'");
                }
                return new AttentionSplit(n);
            }
        }
    }

    /** The mode the property asks for, else AUTO. */
    public static AttentionSplit fromSystemProperty() {
        String v = System.getProperty(PROPERTY);
        return v == null || v.isBlank() ? AUTO : parse(v);
    }

    /**
     * The split of a step whose unsplit attention has {@code groups} work-groups (entries x KV heads x row tiles) and
     * whose longest row sees {@code maxKeys} keys, on a device of {@code computeUnits}: auto takes the fewest chunks
     * that give at least {@value #GROUPS_PER_COMPUTE_UNIT} groups per compute unit, but never a chunk shorter than
     * one key tile ({@code keyTile}) and never more than {@value #MAX_CHUNKS}; a fixed N takes N chunks (some may be
     * empty for short rows). Chunk lengths are whole key tiles, so no tile crosses a chunk's end.
     */
    Plan plan(int groups, int maxKeys, int keyTile, int computeUnits) {
        return plan(groups, maxKeys, keyTile, computeUnits, GROUPS_PER_COMPUTE_UNIT);
    }

    /**
     * {@link #plan(int, int, int, int)} aiming auto at {@code groupsPerComputeUnit} groups per compute unit instead
     * (attn_decode's groups are small in registers, so more of them fit a compute unit at once).
     */
    Plan plan(int groups, int maxKeys, int keyTile, int computeUnits, int groupsPerComputeUnit) {
        if (off()) {
            throw new IllegalStateException("attention split is off");
        }
        int keyTiles = Math.max(1, (maxKeys + keyTile - 1) / keyTile);
        int want;
        if (chunks > 0) {
            want = chunks;
        } else {
            long target = (long) Math.max(1, groupsPerComputeUnit) * Math.max(1, computeUnits);
            want = (int) Math.min(Math.min(keyTiles, MAX_CHUNKS), (target + groups - 1) / Math.max(1, groups));
            want = Math.max(1, want);
        }
        int tilesPerChunk = (keyTiles + want - 1) / want;
        int chunkKeys = tilesPerChunk * keyTile;
        // auto: as many chunks as the chunk length needs (no trailing empty chunk); fixed: exactly N.
        int n = chunks > 0 ? chunks : (keyTiles + tilesPerChunk - 1) / tilesPerChunk;
        return new Plan(n, chunkKeys);
    }
}

// The persistent layer tail of a one-token (batch-1 decode) step, appended to matmul.cl (its WTYPE / LOAD4 / XROUND4
// macros and its epilogue are reused). ONE launch runs, for layer `layer`, after its attention has written xb:
//   P1 WO matvec + residual into x,
//   P2 W1/W3 matvec with the FFN RMSNorm fused + SwiGLU into hb,
//   P3 W2 matvec + residual into x,
//   P4 (next != 0) layer+1's QKV matvec with its attention RMSNorm fused + RoPE + q / KV-pool writes,
// each phase with the arithmetic of the kernel it replaces: mv.cl's mv_t1 (P1, P3) and its staged fused-norm build
// mv_t1n with MV_STAGE (P2, P4): the same float4 per item when staging, the same lane order along a row, the same lane
// tree, the rows' sums of squares added in row order, the same epilogue. Built with the matvec's MV_WG / MV_LPR as
// TAIL_WG / TAIL_LPR, every output is bitwise the kernels' (PoCL; PersistentTailTest).
//
// Units. A phase of R rows is cut into units of whole blocks (a block: TAIL_ROWS = TAIL_WG / TAIL_LPR rows, one row
// per TAIL_LPR lanes), about TAIL_UPG units per launched group: unit rows = R / (groups * TAIL_UPG) rounded up to
// whole blocks. A unit stages its input row once (local memory), then does its blocks in turn with the next block's
// first weight loads in flight during the current block's reduction and epilogue. Small units (one block each) made
// every unit pay a ticket, a copy of its input row, a wait and a done count: ~2,800 of them a layer for W1/W3.
//
// Scheduling: G persistent groups (any G >= 1) take tickets (atomic_inc on the ticket counter; the next one is taken
// while the current unit runs). Tickets map to (phase, unit) in phase order. A unit of phase p FIRST issues its first
// block's weight loads (TAIL_PF float4s a lane), THEN waits until done[p-1] counts every unit of phase p-1, then
// stages its input and finishes, then its writers fence and item 0 counts the unit in done[p]. No deadlock on any
// device: a unit waits only for units of the phase before, whose tickets were all handed out before its own, i.e. to
// groups that were running then; those finished or wait for tickets handed out still earlier, down to P1, which
// waits for nothing. Groups that are not resident yet hold no ticket, so nobody waits for them.
// Counter reset: each group fences and counts its exit; the last one out zeroes the ticket, exits and done[] for the
// next launch (every other group has then made its last counter update: both come before its exit count).
//
// Memory (NVIDIA, TAIL_PTX): the polls are ld.acquire.gpu; activations written in this launch by another group (x, hb;
// xb too, cheaply) are read with TAIL_ACT 1: ld.relaxed.gpu (strong), or TAIL_ACT 2: ld.global.cg (weak, L2; ordered
// by item 0's acquire and the work-group barrier after it). Neither carries a "memory" clobber, and the staging loop
// issues TAIL_SB loads an item before it stores any of them to local memory: with a clobber on each load and the store
// between, every float4 had waited for its own L2 round trip. Writers fence (membar.gl) before the barrier that
// precedes item 0's done count. Weights, norm weights and the RoPE / token tables are plain loads (never written).
// Elsewhere (PoCL) activations are plain loads and polls an atomic add of 0.
//
// Build macros besides matmul.cl's: TAIL_WG, TAIL_LPR, TAIL_PF, TAIL_UNROLL (loads in flight after the first TAIL_PF),
// TAIL_UPG (units a group per phase), TAIL_SB (staging loads an item issues before storing), TAIL_XS4 (float4s of the
// longest input row), TAIL_PTX (0 none, 1 `asm`, 2 `__asm__`), TAIL_ACT (1 relaxed, 2 cg), TAIL_SHFL (1: with PTX
// and at most 32 lanes a row, a row's lanes lie in one warp and add by shfl.sync.down in the tree's order: one barrier
// a block instead of 1 + log2(lanes)), TAIL_EARLY (1: a lane issues its first loads past the prefetched ones before using those, so two
// batches are in flight), TAIL_STAGE3 (0: P3 does not stage hb, its lanes read it as mv_t1 reads `in`, one float4
// a weight float4, and local memory holds only dim floats), TAIL_NOWORK (a
// diagnostic: units keep their tickets, waits, staging and done counts but load no weights and write nothing, so the
// kernel's time is its synchronisation cost). Argument `only` (0: every phase; p: phase p alone, no waits: the
// one-launch-per-phase diagnostic).

#ifndef TAIL_WG
#define TAIL_WG 128
#endif
#ifndef TAIL_LPR
#define TAIL_LPR 32
#endif
#ifndef TAIL_PF
#define TAIL_PF 16
#endif
#ifndef TAIL_UNROLL
#define TAIL_UNROLL 4
#endif
#ifndef TAIL_UPG
#define TAIL_UPG 1
#endif
#ifndef TAIL_SB
#define TAIL_SB 8
#endif
#ifndef TAIL_XS4
#define TAIL_XS4 1
#endif
#ifndef TAIL_PTX
#define TAIL_PTX 0
#endif
#ifndef TAIL_ACT
#define TAIL_ACT 1
#endif
#ifndef TAIL_NOWORK
#define TAIL_NOWORK 0
#endif
#ifndef TAIL_SHFL
#define TAIL_SHFL 1
#endif
#ifndef TAIL_EARLY
#define TAIL_EARLY 1
#endif
#ifndef TAIL_STAGE3
#define TAIL_STAGE3 1
#endif
#define TAIL_ROWS (TAIL_WG / TAIL_LPR)
// The KV pool's element and its pair store: kv.cl's KV_T / KV_STORE2 where the program defines them (an f16 pool),
// else float as matmul.cl's epilogue stores it.
#ifdef KV_T
#define TAIL_KV_T KV_T
#else
#define TAIL_KV_T float
#endif
#ifdef KV_STORE2
#define TAIL_KV_STORE2(kv, i, a, b) KV_STORE2(kv, i, a, b)
#else
#define TAIL_KV_STORE2(kv, i, a, b) { (kv)[i] = (a); (kv)[(i) + 1] = (b); }
#endif
// Counters, each on its own 128-byte line: ticket, exits, done[1..4] (phase p's done count at TAIL_DONE(p); P1 waits
// for nothing, so TAIL_DONE(0) is never polled).
#define TAIL_LINE 32
#define TAIL_TICKET 0
#define TAIL_EXITS TAIL_LINE
#define TAIL_DONE(p) (((p) + 1) * TAIL_LINE)
#define TAIL_PHASES 4
// Helpers take the weight registers by pointer: inlined they stay registers (called, they would go to local memory).
#define TAIL_INLINE inline __attribute__((always_inline))

#if (TAIL_ROWS % 2) != 0 || (TAIL_WG % TAIL_LPR) != 0
#error "TAIL_WG / TAIL_LPR must be an even number of rows"
#endif

#if TAIL_PTX
#if TAIL_PTX == 2
#define TAIL_ASM __asm__ __volatile__
#else
#define TAIL_ASM asm volatile
#endif
#if TAIL_ACT == 2
#define TAIL_LD "ld.global.cg"
#else
#define TAIL_LD "ld.relaxed.gpu.global"
#endif
/** Four floats of an activation another group may have written in this launch (no memory clobber: see the top). */
inline float4 tail_ld4(__global const float *p) {
    float a, b, c, d;
    TAIL_ASM(TAIL_LD ".v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(a), "=f"(b), "=f"(c), "=f"(d) : "l"(p));
    return (float4)(a, b, c, d);
}
inline float tail_ld1(__global const float *p) {
    float a;
    TAIL_ASM(TAIL_LD ".f32 %0, [%1];" : "=f"(a) : "l"(p));
    return a;
}
/** A done count, with acquire semantics: what its writers wrote before counting is seen after it. */
inline int tail_poll(__global int *p) {
    int v;
    TAIL_ASM("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
/** membar.gl: this item's earlier global writes are seen device-wide before its later memory operations. */
inline void tail_fence(void) {
    int unused = 0;
    TAIL_ASM("membar.gl;" : "+r"(unused) : : "memory");
}
#if TAIL_SHFL && TAIL_LPR <= 32
#define TAIL_WARP_ROWS 1
/** The value of the lane `d` above in this warp. */
inline float tail_shfl_down(float v, int d) {
    float r;
    TAIL_ASM("shfl.sync.down.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(d));
    return r;
}
#endif
#define ACT4(p) tail_ld4(p)
#define ACT1(p) tail_ld1(p)
#define TAIL_FENCE() tail_fence()
#define TAIL_POLL(p) tail_poll(p)
#else
#define ACT4(p) (*(__global const float4 *)(p))
#define ACT1(p) (*(__global const float *)(p))
#define TAIL_FENCE() mem_fence(CLK_GLOBAL_MEM_FENCE)
// OpenCL 1.2 has no atomic load: an atomic add of 0 is the portable read of another group's count
#define TAIL_POLL(p) atomic_add(p, 0)
#endif

/** Blocks of TAIL_ROWS rows in a unit of a phase of `rows` rows, for `groups` groups (about TAIL_UPG units each). */
TAIL_INLINE int tail_unit_blocks(int rows, int groups) {
    int blocks = (rows + TAIL_ROWS - 1) / TAIL_ROWS;
    int units = groups * TAIL_UPG;
    return (blocks + units - 1) / units;
}

TAIL_INLINE int tail_units(int rows, int unitBlocks) {
    int blocks = (rows + TAIL_ROWS - 1) / TAIL_ROWS;
    return rows == 0 ? 0 : (blocks + unitBlocks - 1) / unitBlocks;
}

/** Blocks the group until *count reaches `target` (item 0 polls; the barrier then releases everyone). */
TAIL_INLINE void tail_wait(__global int *count, int target) {
    if (get_local_id(0) == 0 && target > 0) {
        while (TAIL_POLL(count) < target) {
        }
    }
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
}

/** Counts the unit in *count once its writes are visible device-wide (the writers fence; the barrier orders it). */
TAIL_INLINE void tail_done(__global int *count, int wrote) {
    if (wrote) {
        TAIL_FENCE();
    }
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0) {
        atomic_inc(count);
    }
}

/**
 * The unit's input row into local memory, once: XROUND4(g * x) with this item's sum of x^2 (norm: mv_t1n's staging,
 * item i taking float4s i, i + TAIL_WG, ... in that order), else XROUND4(in) (what mv_t1's XLOAD4 makes of each
 * float4). TAIL_SB loads an item are issued before any of them is stored. Every item calls it (it holds a barrier).
 */
TAIL_INLINE float tail_stage(__global const float *in, __global const float *g, int cols, int norm,
                             __local float4 *xs) {
    int n4 = cols / 4;
    float ss = 0.0f;
    for (int i0 = get_local_id(0); i0 < n4; i0 += TAIL_SB * TAIL_WG) {
        float4 v[TAIL_SB];
#pragma unroll
        for (int u = 0; u < TAIL_SB; u++) {
            int i = i0 + u * TAIL_WG;
            v[u] = i < n4 ? ACT4(in + 4 * i) : (float4)(0.0f);
        }
#pragma unroll
        for (int u = 0; u < TAIL_SB; u++) {
            int i = i0 + u * TAIL_WG;
            if (i < n4) {
                if (norm) {
                    ss += dot(v[u], v[u]);
                    xs[i] = XROUND4(XLOAD4_RAW(g + 4 * i) * v[u]);
                } else {
                    xs[i] = XROUND4(v[u]);
                }
            }
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    return ss;
}

#ifndef TAIL_WARP_ROWS
#define TAIL_WARP_ROWS 0
#endif
/**
 * Adds the lanes of each row with mv.cl's tree (lane i adds lane i + half, half = TAIL_LPR / 2 down to 1); the row's
 * sum lands at its lane 0's slot of `red`. With TAIL_WARP_ROWS by warp shuffles (lane 0's additions are the tree's).
 */
TAIL_INLINE void tail_reduce(__local float *red, float v) {
    int lid = get_local_id(0);
    int lane = lid % TAIL_LPR;
#if TAIL_WARP_ROWS
    for (int half_ = TAIL_LPR / 2; half_ > 0; half_ >>= 1) {
        v += tail_shfl_down(v, half_);
    }
    if (lane == 0) {
        red[lid] = v;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#else
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int half_ = TAIL_LPR / 2; half_ > 0; half_ >>= 1) {
        if (lane < half_) {
            red[lid] += red[lid + half_];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
}

/** The fused norm's scale from every item's sum of squares: lane tree, then the rows' sums in row order (mv_t1n). */
TAIL_INLINE float tail_rs(__local float *red, float ss, int cols, float eps) {
    tail_reduce(red, ss);
    float sq = 0.0f;
    for (int q = 0; q < TAIL_ROWS; q++) {
        sq += red[q * TAIL_LPR];
    }
    return 1.0f / sqrt(sq / cols + eps);
}

/** The first TAIL_PF float4s of this lane's part of a weight row (zeros past the row or for a dead row). */
TAIL_INLINE void tail_prefetch(__global const WTYPE *w, __global const float *s, int off, int live, int cols,
                               float4 *wv) {
    int lane = get_local_id(0) % TAIL_LPR;
#pragma unroll
    for (int u = 0; u < TAIL_PF; u++) {
        int c = lane * 4 + u * TAIL_LPR * 4;
        wv[u] = live && c < cols ? LOAD4(w, s, off + c) : (float4)(0.0f);
    }
}

/**
 * This lane's part of the row's dot product with the staged input: the prefetched wv, then the rest of the row
 * TAIL_UNROLL loads at a time; the columns in mv.cl's order (lane * 4 + j * TAIL_LPR * 4, j ascending).
 */
#define TAIL_X4(c) (staged ? xs[(c) >> 2] : XROUND4(ACT4(in + (c))))
TAIL_INLINE float tail_dot(const float4 *wv, __global const WTYPE *w, __global const float *s, int off, int live,
                           int cols, __local const float4 *xs, __global const float *in, int staged) {
    int lane = get_local_id(0) % TAIL_LPR;
    float acc = 0.0f;
    if (live) {
        int c0 = lane * 4 + TAIL_PF * TAIL_LPR * 4;
        float4 wr[TAIL_UNROLL];
#if TAIL_EARLY
        // the first batch past the prefetched loads goes out before those are used
#pragma unroll
        for (int u = 0; u < TAIL_UNROLL; u++) {
            int c = c0 + u * TAIL_LPR * 4;
            wr[u] = c < cols ? LOAD4(w, s, off + c) : (float4)(0.0f);
        }
#endif
#pragma unroll
        for (int u = 0; u < TAIL_PF; u++) {
            int c = lane * 4 + u * TAIL_LPR * 4;
            if (c < cols) {
                acc += dot(wv[u], TAIL_X4(c));
            }
        }
        for (int first = 1; c0 < cols; c0 += TAIL_LPR * 4 * TAIL_UNROLL, first = 0) {
            if (!TAIL_EARLY || !first) {
#pragma unroll
                for (int u = 0; u < TAIL_UNROLL; u++) {
                    int c = c0 + u * TAIL_LPR * 4;
                    wr[u] = c < cols ? LOAD4(w, s, off + c) : (float4)(0.0f);
                }
            }
#pragma unroll
            for (int u = 0; u < TAIL_UNROLL; u++) {
                int c = c0 + u * TAIL_LPR * 4;
                if (c < cols) {
                    acc += dot(wr[u], TAIL_X4(c));
                }
            }
        }
    }
    return acc;
}

#undef TAIL_X4

/**
 * matmul.cl's EPI_QKV epilogue for the one token, its loads done by the caller (RoPE's cos / sin of the pair, the
 * token's position and KV block start): q rows rotated into q, k rows rotated and v rows as they are into the token's
 * slot of the KV pool. The same expressions, so the same bits.
 */
TAIL_INLINE void tail_qkv_store(int r, float a, float b, float fcr, float fci, __global float *q, __global TAIL_KV_T *kv,
                                long kvBase, int pos, int dim, int kvDim, int layer) {
    float a2 = a * fcr - b * fci;
    float b2 = a * fci + b * fcr;
    if (r < dim) {
        q[r] = a2;
        q[r + 1] = b2;
    } else if (r < dim + kvDim) {
        long ko = kvBase + ((layer * 2) * KV_BLOCK + pos % KV_BLOCK) * kvDim + r - dim;
        TAIL_KV_STORE2(kv, ko, a2, b2);
    } else {
        long vo = kvBase + ((layer * 2 + 1) * KV_BLOCK + pos % KV_BLOCK) * kvDim + r - dim - kvDim;
        TAIL_KV_STORE2(kv, vo, a, b);
    }
}

// The weight row of row r of `phase` (rows of one block may straddle wq | wk | wv, so per item). The layer's
// matrices come from its weight chunk (first layer layer0), the next layer's QKV from its own (nextLayer0).
#define TAIL_RESOLVE(phase, r, w, s, off) { \
        if (phase == 1) { \
            w = wo; s = woS; off = (layer - layer0) * dim * dim + (r) * dim; \
        } else if (phase == 2) { \
            /* interleaved: row 2h is w1 row h, 2h + 1 is w3 row h */ \
            w = ((r) & 1) ? w3 : w1; s = ((r) & 1) ? w3S : w1S; \
            off = (layer - layer0) * hidden * dim + ((r) >> 1) * dim; \
        } else if (phase == 3) { \
            w = w2; s = w2S; off = (layer - layer0) * dim * hidden + (r) * hidden; \
        } else { \
            int nl_ = layer + 1 - nextLayer0; \
            if ((r) < dim) { w = wq; s = wqS; off = nl_ * dim * dim + (r) * dim; } \
            else if ((r) < dim + kvDim) { w = wk; s = wkS; off = nl_ * kvDim * dim + ((r) - dim) * dim; } \
            else { w = wv; s = wvS; off = nl_ * kvDim * dim + ((r) - dim - kvDim) * dim; } \
        } }

__kernel __attribute__((reqd_work_group_size(TAIL_WG, 1, 1)))
void tail_t1(__global const WTYPE *wo, __global const float *woS,
             __global const WTYPE *w1, __global const float *w1S,
             __global const WTYPE *w3, __global const float *w3S,
             __global const WTYPE *w2, __global const float *w2S,
             __global const WTYPE *wq, __global const float *wqS,
             __global const WTYPE *wk, __global const float *wkS,
             __global const WTYPE *wv, __global const float *wvS,
             __global const float *rmsFfn, __global const float *rmsAtt,
             __global const float *xb, __global float *x, __global float *hb,
             __global float *q, __global TAIL_KV_T *kv,
             __global const float *ropeCos, __global const float *ropeSin,
             __global const int *tokenPos, __global const int *tokenSeq, __global const int *blockTable,
             __global int *counters,
             int dim, int hidden, int kvDim, int maxBlocksPerSeq, int blockFloats, float eps,
             int layer, int layer0, int nextLayer0, int next, int only) {
    // Lane sums of a block, two buffers by block parity (a buffer is written again only after every item passed the
    // next block's reduction barriers, which come after its reads), then the norm's sums of squares.
    __local float red[3 * TAIL_WG];
    __local float4 xs[TAIL_XS4];
    __local int ticketOf;
    int lid = get_local_id(0);
    int lane = lid % TAIL_LPR;
    int lrow = lid / TAIL_LPR;
    int groups = get_num_groups(0);
    int rows4 = next ? dim + 2 * kvDim : 0;
    // Blocks a unit and units of each phase, then the first ticket of each.
    int b1 = tail_unit_blocks(dim, groups);
    int b2 = tail_unit_blocks(2 * hidden, groups);
    int b3 = b1;
    int b4 = tail_unit_blocks(rows4, groups);
    int u1 = only == 0 || only == 1 ? tail_units(dim, b1) : 0;
    int u2 = only == 0 || only == 2 ? tail_units(2 * hidden, b2) : 0;
    int u3 = only == 0 || only == 3 ? tail_units(dim, b3) : 0;
    int u4 = only == 0 || only == 4 ? tail_units(rows4, b4) : 0;
    int t2 = u1;
    int t3 = t2 + u2;
    int t4 = t3 + u3;
    int total = t4 + u4;
    // Item 0 takes the group's next ticket as it starts a unit, so the atomic's round trip overlaps the unit. Still
    // no deadlock: the smallest unfinished ticket waits only for smaller, finished ones, and the group that holds it
    // is working on it or starts it next (its current ticket is smaller, hence finished).
    int nextTicket = 0;
    if (lid == 0) {
        nextTicket = atomic_inc(counters + TAIL_TICKET);
    }
    for (;;) {
        if (lid == 0) {
            ticketOf = nextTicket;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        int ticket = ticketOf; // every unit ends with a barrier after all items read it
        if (ticket >= total) {
            break;
        }
        if (lid == 0) {
            nextTicket = atomic_inc(counters + TAIL_TICKET);
        }
        int phase = ticket < t2 ? 1 : ticket < t3 ? 2 : ticket < t4 ? 3 : 4;
        int unit = ticket - (phase == 1 ? 0 : phase == 2 ? t2 : phase == 3 ? t3 : t4);
        int rows = phase == 2 ? 2 * hidden : phase == 4 ? rows4 : dim;
        int cols = phase == 3 ? hidden : dim;
        int unitRows = (phase == 1 ? b1 : phase == 2 ? b2 : phase == 3 ? b3 : b4) * TAIL_ROWS;
        int norm = phase == 2 || phase == 4;
        __global const float *in = phase == 1 ? xb : phase == 3 ? hb : x;
        __global const float *g = phase == 4 ? rmsAtt + (layer + 1) * dim : rmsFfn + layer * dim;
        int waitTarget = only != 0 || phase == 1 ? 0 : phase == 2 ? u1 : phase == 3 ? u2 : u3;
        int first = unit * unitRows;
        int end = min(rows, first + unitRows);

        // the token's position and KV block (host-written before the launch), for P4's epilogue
        int pos = phase == 4 ? tokenPos[0] : 0;
        long kvBase = phase == 4 ? (long) blockTable[tokenSeq[0] * maxBlocksPerSeq + pos / KV_BLOCK] * blockFloats : 0;
        float4 wreg[TAIL_PF];
        int r = first + lrow;
        __global const WTYPE *w;
        __global const float *s;
        int off;
        TAIL_RESOLVE(phase, r < rows ? r : 0, w, s, off);
        // FIRST the first block's weight loads, THEN the wait for the phase before.
        tail_prefetch(w, s, off, r < rows && !TAIL_NOWORK, cols, wreg);
        tail_wait(counters + TAIL_DONE(phase - 1), waitTarget);
        // P3 reads hb in its dot instead without TAIL_STAGE3 (its 5,632 floats were most of the local memory)
        int staged = TAIL_STAGE3 || phase != 3;
        float ss = staged ? tail_stage(in, g, cols, norm, xs) : 0.0f;
        float rs = norm ? tail_rs(red + 2 * TAIL_WG, ss, cols, eps) : 1.0f;
        int writer = 0;
        for (int b = 0; first + b * TAIL_ROWS < end && !TAIL_NOWORK; b++) {
            int live = r < rows;
            int rb = r;
            int hasB = rb + 1 < rows;
            int writes = lane == 0 && (lrow & 1) == 0 && live;
            // The epilogue's own loads go out before the dot, so they are not one more round trip after the
            // reduction: the residual's x (P1, P3), the RoPE pair's cos / sin (P4).
            float e0 = 0.0f;
            float e1 = 0.0f;
            if (writes && !norm) {
                e0 = ACT1(x + rb);
                e1 = hasB ? ACT1(x + rb + 1) : 0.0f;
            } else if (writes && phase == 4) {
                int rr = rb >= dim ? rb - dim : rb;
                int rope = pos * (TAIL_HS / 2) + (rr % TAIL_HS) / 2;
                e0 = ropeCos[rope];
                e1 = ropeSin[rope];
            }
            // `staged` is the same for the whole group: two call sites, each inlined with its own constant
            float acc = staged ? tail_dot(wreg, w, s, off, live, cols, xs, in, 1)
                               : tail_dot(wreg, w, s, off, live, cols, xs, in, 0);
            if (first + (b + 1) * TAIL_ROWS < end) {
                // the next block's first loads, in flight during this block's reduction and epilogue
                r += TAIL_ROWS;
                TAIL_RESOLVE(phase, r < rows ? r : 0, w, s, off);
                tail_prefetch(w, s, off, r < rows, cols, wreg);
            }
            __local float *rd = red + (b & 1) * TAIL_WG;
            tail_reduce(rd, acc);
            if (writes) {
                writer = 1;
                float a = rd[lid];
                float bb = hasB ? rd[lid + TAIL_LPR] : 0.0f;
                if (!norm) {
                    // residual: x += W . in
                    x[rb] = e0 + a;
                    if (hasB) {
                        x[rb + 1] = e1 + bb;
                    }
                } else if (phase == 2) {
                    epilogue(rb, 0, a * rs, bb * rs, hasB, EPI_SWIGLU, hb, hidden, kv, ropeCos, ropeSin, tokenPos,
                             tokenSeq, blockTable, 0, 0, 0, 0, 0, layer);
                } else {
                    tail_qkv_store(rb, a * rs, bb * rs, e0, e1, q, kv, kvBase, pos, dim, kvDim, layer + 1);
                }
            }
        }
        tail_done(counters + TAIL_DONE(phase), writer);
    }
    // Exit: the last group out zeroes the counters for the next launch (see the top).
    if (lid == 0) {
        TAIL_FENCE();
        if (atomic_inc(counters + TAIL_EXITS) == groups - 1) {
            atomic_xchg(counters + TAIL_TICKET, 0);
            atomic_xchg(counters + TAIL_EXITS, 0);
            for (int p = 1; p <= TAIL_PHASES; p++) {
                atomic_xchg(counters + TAIL_DONE(p), 0);
            }
        }
    }
}
#undef TAIL_RESOLVE

// The tensor-core matmul for F16, Q8_0 and F32 weights, appended to mma.cl + matmul.cl once per tile tier by MatmulProgram,
// each time with MMT_NAME (the kernel's name), MMT_TN and MMT_TK defined; it undefines its own macros at the end,
// so the next tier can define them again. See MatmulProgram / TensorCores for when each tier runs.
/**
 * F16 or Q8_0 weights on tensor cores (after mma.cl and matmul.cl, for WT == 1 or 2): out[t][r] = W[r] . x[t]
 * with the weights' halves as mma's A (16 rows x 16 k, rows contiguous in k: "row") and the activations, rounded
 * to f16 (round to nearest even, as PyTorch's fp16 matmul takes them), as B (16 k x 8 tokens, each token's k
 * contiguous: "col"); products of two halves are exact and are added in f32. A group of 4 warps computes a
 * 64-row x MMT_TN-token tile, each warp 16 rows x MMT_TN tokens (MMT_TN / 8 mma tiles, one float4 of
 * accumulators each). K goes in slices of MMT_TK staged in local memory: the weights as raw halves (16-byte
 * loads, the next slice's in flight while the current one is multiplied), the activations converted once to
 * halves with vstore_half4_rte (core OpenCL C; no cl_khr_fp16). The tile goes through local memory to the
 * epilogue, which wants row pairs (r, r+1) of one token while a lane holds rows g and g+8; with split-K
 * (ksplit > 1) it writes partial sums; with MMT_FUSED the last group of a tile to finish (an atomic counter per
 * tile, reset by that group) adds them in slice order, as mm_reduce would, and runs the epilogue: no second
 * kernel. Without MMT_FUSED the host runs mm_reduce after it. Groups: row tiles fastest, then token
 * tiles, then K-slices. Host contract: cols, lstride0..2 multiples of 8 (16-byte weight loads), n >= 1.
 * Rows past `rows` and tokens past n load zeros; every item runs the same K loop (mma.sync is warp-collective
 * and the emulation has barriers).
 *
 * <p>Q8_0 (WT == 2): the int8 values q are loaded 8 at a time (8-byte loads) and staged as halves, exactly (every
 * |q| <= 128 is an f16). A row's scale s[b] belongs to its 32-column block b and cannot enter the mma (A is
 * scaled per row and per block), so each block's two m16n8k16 steps go into a zeroed fragment P[b] = sum over
 * the block of q * xh (exact products, f32 adds), and then acc = fma(P[b], s[b], acc) for the lane's rows g and
 * g+8. The result is sum_b s[b] * P[b] with f16-rounded activations; the f32 `mm` path instead sums
 * (q * s[b]) * x term by term on f32 activations (mv and mm round them to f16 too when XH is set), so the two
 * agree to f32 rounding of the sums, not bitwise. Host contract on top: cols, lstride0..2 multiples of 32 (a
 * row's blocks start at the row), so a K-slice (a multiple of 32 columns) holds whole blocks.
 *
 * <p>F32 (WT == 0), "3xTF32": fp32 has no tensor-core instruction, tf32 (8-bit exponent, 10-bit mantissa) has:
 * mma.cl's m16n8k8 tf32 (A 16 rows x 8 k, B 8 k x 8 tokens). The weights and the activations are staged as f32
 * (4-float loads; the activations are NOT rounded to f16 or tf32, and the program has no XH: mv and mm of F32
 * weights stay plain fp32), and every k8 step splits each fragment element into tf32 hi + lo (mma_split4_tf32)
 * and issues lo_w hi_x, hi_w lo_x, hi_w hi_x into the same accumulators. Error: each product w x is off by at
 * most ~3 * 2^-22 |w x| (the dropped lo_w lo_x and the split's remainders), so the result is within
 * 3 * 2^-22 sum |w x| plus the f32 accumulation error of that sum (as mm's: about 2^-24 per addition in the
 * worst case, ~sqrt(cols) 2^-24 typically), against ~2^-11 per product for one plain tf32 mma. Local memory per
 * group: (64 + MMT_TN) x (MMT_TK + 4) floats, twice F16's: 34,816 bytes at tn=64, tk=64 (6 groups per H200 SM
 * by shared memory; tk=128 with tn >= 32, or tn=128 with tk=64, exceed OpenCL's 48 KiB and the host refuses
 * them). With MMT_XSPLIT (F32 only; the host defines it per tier where the tile fits 48 KiB) the activations
 * are split once when staged, into tf32 hi and lo arrays, instead of by each of the 4 warps at every use:
 * (64 + 2 MMT_TN) x (MMT_TK + 4) words of local memory, the same bits (on the H200 0.94 against 1.17 ms for
 * 11264x2048 at 800 tokens, tn=64, tk=32). The 4 warps of an F32 group are 2 x 2, each 32 rows (two m16 tiles)
 * x MMT_TN / 2 tokens, so each B fragment read from local memory feeds two mma triples (fragment loads per k8
 * per warp: 2 A + MMT_TN / 16 B instead of 1 A + MMT_TN / 8 B). Host contract:
 * cols, lstride0..2 multiples of 4 (16-byte loads).
 *
 * <p>F32 costs per k8 step and warp at tn=64 (a warp: 32 rows x 32 tokens, 2 m16 x 4 n8 tiles), the slice's
 * staging (tk=32: 4 k8 steps) amortised: 24 mma (8 triples into one accumulator each); local loads 8 A + 16 B
 * (hi, lo) of 32 bits = 24 instructions, 3 KiB; the A split at every use, 8 elements x (cvt, mask, sub, cvt) =
 * 32 ALU; a slice's staging ~8 global loads, 12 16-byte local stores and 64 ALU (the activations' split) per
 * lane, 2 barriers. That is ~100 instructions and 4.5 KiB of local traffic per 24 mma, yet neither binds on the
 * H200 (session 6, dlm3x): splitting both operands once when staged into an interleaved (hi, lo) layout (16-byte
 * fragment loads, no cvt in the K loop: ~80 instructions, 6 KiB) ran 1.4-1.6x SLOWER, and issuing the mma product
 * by product across the 8 tiles (no back-to-back dependent mma) changed nothing (ptxas schedules them). What
 * does bind small passes is the group count: one K-slice of 768 rows at 600 tokens is 12 x 10 groups on 132 SMs
 * (18-21 TFLOP/s against 32-41 for larger passes), which TensorCores' fill (smaller tn) and a split-K fixed by the
 * shape (both batch-invariant) address.
 */
#if WT != 0 && WT != 1 && WT != 2
#error "mmt multiplies F32, F16 or Q8_0 weights: build it with WT=0, 1 or 2"
#endif
#if !defined(MMT_NAME) || !defined(MMT_TN) || !defined(MMT_TK) || !defined(MMT_FUSED)
#error "define MMT_NAME, MMT_TN, MMT_TK and MMT_FUSED before mmt.cl"
#endif
#define MMT_TM 64
#define MMT_WG 128
#define MMT_NT (MMT_TN / 8)
// uints per staged row (k-pairs; F32: floats) plus 4 of padding: the 8 rows x 4 k-pairs (k) a fragment read
// touches then fall in 32 distinct banks, and rows stay 16-byte aligned for the 16-byte stores.
#if WT == 0
#define MMT_S (MMT_TK + 4)
#else
#define MMT_S (MMT_TK / 2 + 4)
#endif
// The output tile reuses the staging memory once the K loop is done (less local memory: more groups per SM).
#if defined(MMT_XSPLIT) && WT != 0
#error "MMT_XSPLIT is for F32 weights (WT=0)"
#endif
#ifdef MMT_XSPLIT
#define MMT_STAGE_UINTS ((MMT_TM + 2 * MMT_TN) * MMT_S)
#else
#define MMT_STAGE_UINTS ((MMT_TM + MMT_TN) * MMT_S)
#endif
#define MMT_OUT_FLOATS (MMT_TN * (MMT_TM + 1))
#define MMT_LOCAL_UINT4 (((MMT_STAGE_UINTS > MMT_OUT_FLOATS ? MMT_STAGE_UINTS : MMT_OUT_FLOATS) + 3) / 4)
#if WT == 2
// 8 int8 weights a load
#define MMT_WREG uint2
#define MMT_WCHUNK 8
#define MMT_WZERO ((uint2)(0u))
#elif WT == 1
// 8 halves a load
#define MMT_WREG uint4
#define MMT_WCHUNK 8
#define MMT_WZERO ((uint4)(0u))
#else
// 4 floats a load
#define MMT_WREG float4
#define MMT_WCHUNK 4
#define MMT_WZERO ((float4)(0.0f))
#endif
#define MMT_WLOADS (MMT_TM * (MMT_TK / MMT_WCHUNK) / MMT_WG)
#define MMT_XLOADS (MMT_TN * (MMT_TK / 4) / MMT_WG)
#define MMT_WLOAD(p) (*(__global const MMT_WREG *)(p))
/* Loads the K-slice starting at column kk into registers: this lane's weight chunks and activation float4s,
 * zero past the rows, tokens or columns. Used for the first slice and, while a slice is in use, the next one. */
#define MMT_LOAD_SLICE(kk) { \
    for (int m = 0; m < MMT_WLOADS; m++) { \
        int c = (kk) + wkc[m]; \
        wreg[m] = wrow[m] != 0 && c < kend ? MMT_WLOAD(wrow[m] + c) : MMT_WZERO; \
    } \
    for (int m = 0; m < MMT_XLOADS; m++) { \
        int i = lid + m * MMT_WG; \
        int lt = i / (MMT_TK / 4); \
        int c = (kk) + (i - lt * (MMT_TK / 4)) * 4; \
        int t = tok0 + lt; \
        xreg[m] = t < n && c < kend ? XLOAD4_RAW(in + t * cols + c) : (float4)(0.0f); \
    } \
}
#if (MMT_TK != 32 && MMT_TK != 64 && MMT_TK != 128) || MMT_TN < 16 || MMT_TN > 128 || (MMT_TN % 16) != 0
#error "MMT_TK must be 32, 64 or 128, MMT_TN a multiple of 16 up to 128"
#endif

__kernel __attribute__((reqd_work_group_size(MMT_WG, 1, 1)))
void MMT_NAME(MATMUL_ARGS) {
    __local uint4 lmem[MMT_LOCAL_UINT4];
    __local int lastOfTile;
    __local uint *ws = (__local uint *)lmem;    // [row][k-pair] during the K loop
    __local uint *xs = ws + MMT_TM * MMT_S;     // [token][k-pair] during the K loop (MMT_XSPLIT: tf32 hi [token][k])
#ifdef MMT_XSPLIT
    __local uint *xl = xs + MMT_TN * MMT_S;     // tf32 lo [token][k]
#endif
    __local float *os = (__local float *)lmem;  // [token][row] of the finished tile, after it
    int lid = get_local_id(0);
    int warp = lid >> 5;
#if WT == 0
    // F32: 2 x 2 warps, each 32 rows (two m16 tiles) x MMT_TN / 2 tokens, so a B fragment (split or loaded
    // hi and lo) serves two mma triples instead of one
    int wr = warp & 1;
    int wt = warp >> 1;
#endif
    int lane = lid & 31;
    int g = lane >> 2;
    int t4 = lane & 3;
#ifdef MMA_PTX
    __local uint *scratch = ws; // unused by the instruction
#else
    __local uint scratchAll[(MMT_WG / 32) * MMA_SCRATCH_UINTS];
    __local uint *scratch = scratchAll + warp * MMA_SCRATCH_UINTS;
#endif
    int rowTiles = (rows + MMT_TM - 1) / MMT_TM;
    int tiles = rowTiles * ((n + MMT_TN - 1) / MMT_TN);
    int grp = get_group_id(0);
    int ks = grp / tiles;
    grp -= ks * tiles;
    int row0 = (grp % rowTiles) * MMT_TM;
    int tok0 = (grp / rowTiles) * MMT_TN;
    int kchunk = ((cols + ksplit - 1) / ksplit + MMT_TK - 1) / MMT_TK * MMT_TK;
    int kbeg = ks * kchunk;
    int kend = min(cols, kbeg + kchunk);

    // This item's weight loads: MMT_WCHUNK weights of one row per load; the row's data start resolved once.
    __global const WTYPE *wrow[MMT_WLOADS];
    int wlr[MMT_WLOADS];
    int wkc[MMT_WLOADS];
    for (int m = 0; m < MMT_WLOADS; m++) {
        int i = lid + m * MMT_WG;
        wlr[m] = i / (MMT_TK / MMT_WCHUNK);
        wkc[m] = (i - wlr[m] * (MMT_TK / MMT_WCHUNK)) * MMT_WCHUNK;
        int r = row0 + wlr[m];
        wrow[m] = 0;
        if (r < rows) {
            __global const WTYPE *w;
            __global const float *s;
            int off;
            RESOLVE(r, w, s, off);
            wrow[m] = w + off;
        }
    }
#if WT == 2
    // The scales of this lane's two fragment rows, g and g + 8 of its warp (0 past the last row: zero weights).
    __global const float *scaleG = 0;
    __global const float *scaleG8 = 0;
    {
        int r = row0 + warp * 16 + g;
        __global const WTYPE *w;
        __global const float *s;
        int off;
        if (r < rows) {
            RESOLVE(r, w, s, off);
            scaleG = s + (off >> 5);
        }
        if (r + 8 < rows) {
            RESOLVE(r + 8, w, s, off);
            scaleG8 = s + (off >> 5);
        }
    }
#endif
    float4 acc[MMT_NT];
    for (int j = 0; j < MMT_NT; j++) {
        acc[j] = (float4)(0.0f);
    }
    MMT_WREG wreg[MMT_WLOADS];
    float4 xreg[MMT_XLOADS];
    for (int k0 = kbeg; k0 < kend; k0 += MMT_TK) {
        if (k0 == kbeg) {
            MMT_LOAD_SLICE(k0);
        }
        for (int m = 0; m < MMT_WLOADS; m++) {
#if WT == 2
            vstore_half8(convert_float8(as_char8(wreg[m])), 0, (__local half *)(ws + wlr[m] * MMT_S + wkc[m] / 2));
#elif WT == 1
            *(__local uint4 *)(ws + wlr[m] * MMT_S + wkc[m] / 2) = wreg[m];
#else
            *(__local float4 *)(ws + wlr[m] * MMT_S + wkc[m]) = wreg[m];
#endif
        }
        for (int m = 0; m < MMT_XLOADS; m++) {
            int i = lid + m * MMT_WG;
            int lt = i / (MMT_TK / 4);
            int kc = (i - lt * (MMT_TK / 4)) * 4;
#if WT == 0 && defined(MMT_XSPLIT)
            uint4 hi, lo;
            mma_split4_tf32(xreg[m], &hi, &lo);
            *(__local uint4 *)(xs + lt * MMT_S + kc) = hi;
            *(__local uint4 *)(xl + lt * MMT_S + kc) = lo;
#elif WT == 0
            *(__local float4 *)(xs + lt * MMT_S + kc) = xreg[m];
#else
            vstore_half4_rte(xreg[m], 0, (__local half *)xs + lt * (2 * MMT_S) + kc);
#endif
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        int k1 = k0 + MMT_TK;
        if (k1 < kend) {
            MMT_LOAD_SLICE(k1);
        }
#if WT == 2
#pragma unroll
        for (int kb = 0; kb < MMT_TK / 32; kb++) {
            int kc = k0 + kb * 32;
            if (kc < kend) { // the same for the whole group: every lane reaches the same mma calls
                float sg = scaleG != 0 ? scaleG[kc >> 5] : 0.0f;
                float sg8 = scaleG8 != 0 ? scaleG8[kc >> 5] : 0.0f;
                float4 scale = (float4)(sg, sg, sg8, sg8);
                int ai = (warp * 16 + g) * MMT_S + kb * 16 + t4;
                uint4 a0 = (uint4)(ws[ai], ws[ai + 8 * MMT_S], ws[ai + 4], ws[ai + 8 * MMT_S + 4]);
                uint4 a1 = (uint4)(ws[ai + 8], ws[ai + 8 * MMT_S + 8], ws[ai + 12], ws[ai + 8 * MMT_S + 12]);
#pragma unroll
                for (int j = 0; j < MMT_NT; j++) {
                    int bi = (j * 8 + g) * MMT_S + kb * 16 + t4;
                    float4 block = mma_m16n8k16(a0, (uint2)(xs[bi], xs[bi + 4]), (float4)(0.0f), scratch);
                    block = mma_m16n8k16(a1, (uint2)(xs[bi + 8], xs[bi + 12]), block, scratch);
                    acc[j] = fma(block, scale, acc[j]);
                }
            }
        }
#elif WT == 0
        __local const float *wf = (__local const float *)ws;
#ifndef MMT_XSPLIT
        __local const float *xf = (__local const float *)xs;
#endif
#pragma unroll
        for (int kk = 0; kk < MMT_TK / 8; kk++) {
            // A of this warp's two m-tiles (rows wr*32 + mi*16 ..): (row g, k t), (row g+8, k t), (row g, k t+4),
            // (row g+8, k t+4)
            uint4 ahi[2], alo[2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                int ai = (wr * 32 + mi * 16 + g) * MMT_S + kk * 8 + t4;
                mma_split4_tf32((float4)(wf[ai], wf[ai + 8 * MMT_S], wf[ai + 4], wf[ai + 8 * MMT_S + 4]),
                                &ahi[mi], &alo[mi]);
            }
#pragma unroll
            for (int jj = 0; jj < MMT_NT / 2; jj++) {
                // B: (k t, token g), (k t+4, token g) of n-tile j, used by both m-tiles
                int j = wt * (MMT_NT / 2) + jj;
                int bi = (j * 8 + g) * MMT_S + kk * 8 + t4;
#ifdef MMT_XSPLIT
                uint2 bhi = (uint2)(xs[bi], xs[bi + 4]);
                uint2 blo = (uint2)(xl[bi], xl[bi + 4]);
#else
                uint2 bhi, blo;
                mma_split2_tf32((float2)(xf[bi], xf[bi + 4]), &bhi, &blo);
#endif
#pragma unroll
                for (int mi = 0; mi < 2; mi++) {
                    acc[mi * (MMT_NT / 2) + jj] = mma_m16n8k8_3xtf32(ahi[mi], alo[mi], bhi, blo,
                                                                     acc[mi * (MMT_NT / 2) + jj], scratch);
                }
            }
        }
#else
#pragma unroll
        for (int kk = 0; kk < MMT_TK / 16; kk++) {
            int ai = (warp * 16 + g) * MMT_S + kk * 8 + t4;
            uint4 a = (uint4)(ws[ai], ws[ai + 8 * MMT_S], ws[ai + 4], ws[ai + 8 * MMT_S + 4]);
#pragma unroll
            for (int j = 0; j < MMT_NT; j++) {
                int bi = (j * 8 + g) * MMT_S + kk * 8 + t4;
                acc[j] = mma_m16n8k16(a, (uint2)(xs[bi], xs[bi + 4]), acc[j], scratch);
            }
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    // D fragment of n-tile j: (row g, tokens 2t, 2t+1) in .x .y, (row g+8, the same tokens) in .z .w. The K loop
    // ended on a barrier (or never ran), so nobody reads the staging memory os overwrites.
#if WT == 0
    // F32: warp (wr, wt) holds m-tile mi (rows wr*32 + mi*16) x n-tile wt*NT/2 + jj in acc[mi*NT/2 + jj]
    for (int a = 0; a < MMT_NT; a++) {
        int mi = a / (MMT_NT / 2);
        int rl = wr * 32 + mi * 16 + g;
        int tl = (wt * (MMT_NT / 2) + a - mi * (MMT_NT / 2)) * 8 + 2 * t4;
        int j = a;
#else
    int rl = warp * 16 + g;
    for (int j = 0; j < MMT_NT; j++) {
        int tl = j * 8 + 2 * t4;
#endif
        os[tl * (MMT_TM + 1) + rl] = acc[j].x;
        os[(tl + 1) * (MMT_TM + 1) + rl] = acc[j].y;
        os[tl * (MMT_TM + 1) + rl + 8] = acc[j].z;
        os[(tl + 1) * (MMT_TM + 1) + rl + 8] = acc[j].w;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    // Consecutive items take consecutive row pairs of one token: coalesced output (and partial) writes.
    for (int i = lid; i < (MMT_TM / 2) * MMT_TN; i += MMT_WG) {
        int pair = i % (MMT_TM / 2);
        int tl = i / (MMT_TM / 2);
        int r = row0 + 2 * pair;
        int t = tok0 + tl;
        if (r < rows && t < n) {
            float a = os[tl * (MMT_TM + 1) + 2 * pair];
            float b = os[tl * (MMT_TM + 1) + 2 * pair + 1];
            int hasB = r + 1 < rows;
            if (ksplit > 1) {
                partial[(ks * n + t) * rows + r] = a;
                if (hasB) {
                    partial[(ks * n + t) * rows + r + 1] = b;
                }
            } else {
                epilogue(r, t, a, b, hasB, EPI_PASS);
            }
        }
    }
#if MMT_FUSED
#if defined(MMA_PTX) && !defined(MMA_FENCE)
#error "the fused split-K sum needs MMA_FENCE (membar.gl) on the PTX path"
#endif
    if (ksplit > 1) {
        // Publish this slice's partial sums device-wide before counting it (the threadfence-reduction pattern).
#ifdef MMA_PTX
        mma_gpu_fence();
#else
        mem_fence(CLK_GLOBAL_MEM_FENCE);
#endif
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
        if (lid == 0) {
            int done = atomic_inc(counters + grp);
            lastOfTile = done == ksplit - 1;
            if (lastOfTile) {
                atomic_xchg(counters + grp, 0); // ready for the next pass
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lastOfTile) {
#ifdef MMA_PTX
            mma_gpu_fence();
#else
            mem_fence(CLK_GLOBAL_MEM_FENCE);
#endif
            // volatile: read the other groups' sums from memory, not from this compute unit's cache
            __global volatile const float *ps = partial;
            for (int i = lid; i < (MMT_TM / 2) * MMT_TN; i += MMT_WG) {
                int pair = i % (MMT_TM / 2);
                int tl = i / (MMT_TM / 2);
                int r = row0 + 2 * pair;
                int t = tok0 + tl;
                if (r < rows && t < n) {
                    int hasB = r + 1 < rows;
                    float a = 0.0f;
                    float b = 0.0f;
                    for (int s = 0; s < ksplit; s++) { // slice order, as mm_reduce: the same sums
                        a += ps[(s * n + t) * rows + r];
                        if (hasB) {
                            b += ps[(s * n + t) * rows + r + 1];
                        }
                    }
                    epilogue(r, t, a, b, hasB, EPI_PASS);
                }
            }
        }
    }
#endif
}

#undef MMT_TM
#undef MMT_WG
#undef MMT_NT
#undef MMT_S
#undef MMT_STAGE_UINTS
#undef MMT_OUT_FLOATS
#undef MMT_LOCAL_UINT4
#undef MMT_WLOADS
#undef MMT_XLOADS
#undef MMT_WREG
#undef MMT_WCHUNK
#undef MMT_WZERO
#undef MMT_WLOAD
#undef MMT_LOAD_SLICE
#undef MMT_NAME
#undef MMT_TN
#undef MMT_TK
#undef MMT_FUSED
#undef MMT_XSPLIT

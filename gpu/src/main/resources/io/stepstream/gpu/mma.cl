// One warp-wide tensor-core multiply-accumulate of shape m16n8k16: D (16 x 8, f32) = A (16 x 16, f16) x B
// (16 x 8, f16) + C (16 x 8, f32), as PTX's mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (sm_80 and later).
// OpenCL C 1.2 has no tensor-core builtin; NVIDIA's OpenCL compiler accepts inline PTX, so with -DMMA_PTX the
// instruction itself is used. Without it (PoCL, other vendors, the tests) an emulation with the same fragment
// inputs and outputs computes the same tile through local memory, so every index of a kernel built on this can
// be tested anywhere; only the instruction is device-only (bench.TensorCoreProbe checks it on the device).
//
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"): lane = local id & 31,
// g = lane >> 2, t = lane & 3; a 32-bit register holds two halves, the lower k (or column) in the low 16 bits.
//   A (row-major, 16 rows x 16 k):  a.x = (row g, k 2t..2t+1)    a.y = (row g+8, k 2t..2t+1)
//                                   a.z = (row g, k 2t+8..2t+9)  a.w = (row g+8, k 2t+8..2t+9)
//   B ("col": each column's k contiguous, 16 k x 8 cols): b.x = (k 2t..2t+1, col g)  b.y = (k 2t+8..2t+9, col g)
//   C, D (16 rows x 8 cols): .x = (row g, col 2t)  .y = (row g, col 2t+1)  .z = (row g+8, col 2t)  .w = (row g+8, col 2t+1)
// Every lane of the warp must reach every call (mma.sync is warp-collective; the emulation has barriers that the
// whole work-group must reach the same number of times).
//
// TF32 (F32 weights, "3xTF32"): mma_m16n8k8_tf32 is mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, D (16 x 8,
// f32) = A (16 x 8, tf32) x B (8 x 8, tf32) + C. A tf32 is an f32 bit pattern of which the instruction reads the
// sign, the 8 exponent bits and the top 10 mantissa bits; mma_tf32 (cvt.rna.tf32.f32 on the device, tf32_round
// in the emulation) rounds an f32 to one: to nearest, ties away from zero, the low 13 bits cleared.
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32): one element per 32-bit register.
//   A (16 rows x 8 k):  a.x = (row g, k t)  a.y = (row g+8, k t)  a.z = (row g, k t+4)  a.w = (row g+8, k t+4)
//   B (8 k x 8 cols):   b.x = (k t, col g)  b.y = (k t+4, col g)
//   C, D: as m16n8k16's.

// uints of per-warp local scratch the emulation needs (A: 16 rows x 8 k-pairs, B: 8 cols x 8 k-pairs).
#define MMA_SCRATCH_UINTS 192

/**
 * An f32 rounded to tf32 in software, as cvt.rna.tf32.f32: to nearest on the 13 dropped mantissa bits, ties away
 * from zero (adding half of the kept last place to the magnitude's bits carries into the exponent when it must:
 * the largest finite values round to infinity), the dropped bits cleared; infinities and NaNs as they are.
 * Subnormals round the same way (their bits are a magnitude too).
 */
inline uint tf32_round(float x) {
    uint u = as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) {
        return u;
    }
    return (u + 0x1000u) & 0xffffe000u;
}

#ifdef MMA_PTX
// The inline-assembly keyword: OpenCL C front ends in strict mode know only the GNU spelling __asm__ (PoCL's
// clang rejects plain asm), NVIDIA's is known to take asm (hashcat); -DMMA_PTX=2 picks __asm__.
#if MMA_PTX == 2
#define MMA_ASM __asm__ __volatile__
#else
#define MMA_ASM asm volatile
#endif
inline float4 mma_m16n8k16(uint4 a, uint2 b, float4 c, __local uint *scratch) {
    float d0, d1, d2, d3;
    MMA_ASM("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
                 : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
                 : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b.x), "r"(b.y),
                   "f"(c.x), "f"(c.y), "f"(c.z), "f"(c.w));
    return (float4)(d0, d1, d2, d3);
}

/** x rounded to tf32 by the instruction (cvt.rna.tf32.f32, sm_80 and later). */
inline uint mma_tf32(float x) {
    uint r;
    MMA_ASM("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

inline float4 mma_m16n8k8_tf32(uint4 a, uint2 b, float4 c, __local uint *scratch) {
    float d0, d1, d2, d3;
    MMA_ASM("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
                 : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
                 : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b.x), "r"(b.y),
                   "f"(c.x), "f"(c.y), "f"(c.z), "f"(c.w));
    return (float4)(d0, d1, d2, d3);
}

#ifdef MMA_FENCE
/** membar.gl: this work-item's earlier global writes are seen device-wide before its later ones (__threadfence). */
inline void mma_gpu_fence(void) {
    int unused = 0;
    MMA_ASM("membar.gl;" : "+r"(unused));
}
#endif
#else
/** Dot product of 16 k of A row {@code ra} and B column {@code cb}, both stored as 8 k-pairs of halves. */
inline float mma_dot16(__local const uint *ra, __local const uint *cb) {
    float s = 0.0f;
    for (int p = 0; p < 8; p++) {
        float2 x = vload_half2(p, (__local const half *)ra);
        float2 y = vload_half2(p, (__local const half *)cb);
        // products of two halves are exact in float; the sum is rounded per add (as the tensor core's may be)
        s += x.x * y.x + x.y * y.y;
    }
    return s;
}

inline uint mma_tf32(float x) {
    return tf32_round(x);
}

/** Dot product of 8 k of A row {@code ra} and B column {@code cb}, tf32 bit patterns (low 13 bits ignored). */
inline float mma_dot8_tf32(__local const uint *ra, __local const uint *cb) {
    float s = 0.0f;
    for (int k = 0; k < 8; k++) {
        // the instruction reads only a tf32's 19 bits; two 11-bit significands multiply exactly in f32
        s += as_float(ra[k] & 0xffffe000u) * as_float(cb[k] & 0xffffe000u);
    }
    return s;
}

/**
 * The emulation of both shapes: each lane writes its A and B fragments where the layout above puts them in the
 * warp's scratch (a register is a k-pair of halves for m16n8k16, one tf32 for m16n8k8: 8 registers a row or
 * column either way), then computes its four outputs from the whole tile with that shape's dot product.
 */
inline float4 mma_emulate(uint4 a, uint2 b, float4 c, __local uint *scratch, int tf32) {
    int lane = get_local_id(0) & 31;
    int g = lane >> 2;
    int t = lane & 3;
    __local uint *sa = scratch;       // [row][8 registers]
    __local uint *sb = scratch + 128; // [col][8 registers]
    sa[g * 8 + t] = a.x;
    sa[(g + 8) * 8 + t] = a.y;
    sa[g * 8 + t + 4] = a.z;
    sa[(g + 8) * 8 + t + 4] = a.w;
    sb[g * 8 + t] = b.x;
    sb[g * 8 + t + 4] = b.y;
    barrier(CLK_LOCAL_MEM_FENCE);
    __local const uint *r0 = sa + g * 8;
    __local const uint *r1 = sa + (g + 8) * 8;
    __local const uint *c0 = sb + (2 * t) * 8;
    __local const uint *c1 = sb + (2 * t + 1) * 8;
    float4 d;
    d.x = c.x + (tf32 ? mma_dot8_tf32(r0, c0) : mma_dot16(r0, c0));
    d.y = c.y + (tf32 ? mma_dot8_tf32(r0, c1) : mma_dot16(r0, c1));
    d.z = c.z + (tf32 ? mma_dot8_tf32(r1, c0) : mma_dot16(r1, c0));
    d.w = c.w + (tf32 ? mma_dot8_tf32(r1, c1) : mma_dot16(r1, c1));
    barrier(CLK_LOCAL_MEM_FENCE); // the scratch is free for the next call only when every lane has read it
    return d;
}

inline float4 mma_m16n8k16(uint4 a, uint2 b, float4 c, __local uint *scratch) {
    return mma_emulate(a, b, c, scratch, 0);
}

inline float4 mma_m16n8k8_tf32(uint4 a, uint2 b, float4 c, __local uint *scratch) {
    return mma_emulate(a, b, c, scratch, 1);
}
#endif

// A tf32 as the f32 the instruction reads (the low 13 bits cleared: PTX does not promise them zero after cvt).
#define TF32_F(u) as_float((u) & 0xffffe000u)

/**
 * The 3xTF32 split of four f32s: hi = tf32(x), lo = tf32(x - hi). x - hi is exact in f32 (hi is x to 11
 * significant bits, so the difference has at most 13 and lies in x's exponent range), |lo| <= 2^-11 |x|, and
 * x = hi + lo + e with |e| <= 2^-11 |lo| <= 2^-22 |x|.
 */
inline void mma_split4_tf32(float4 x, uint4 *hi, uint4 *lo) {
    uint4 h = (uint4)(mma_tf32(x.x), mma_tf32(x.y), mma_tf32(x.z), mma_tf32(x.w));
    *hi = h;
    *lo = (uint4)(mma_tf32(x.x - TF32_F(h.x)), mma_tf32(x.y - TF32_F(h.y)),
                  mma_tf32(x.z - TF32_F(h.z)), mma_tf32(x.w - TF32_F(h.w)));
}

inline void mma_split2_tf32(float2 x, uint2 *hi, uint2 *lo) {
    uint2 h = (uint2)(mma_tf32(x.x), mma_tf32(x.y));
    *hi = h;
    *lo = (uint2)(mma_tf32(x.x - TF32_F(h.x)), mma_tf32(x.y - TF32_F(h.y)));
}

/**
 * 3xTF32: C + A x B for A and B given split (mma_split4_tf32 / mma_split2_tf32), as three mma into the same
 * accumulators, the small terms first: lo_a hi_b, hi_a lo_b, then hi_a hi_b. A product a b = (hi_a + lo_a + e_a)
 * (hi_b + lo_b + e_b) loses lo_a lo_b (<= 2^-22 |a b|) and the e terms (<= 2^-22 each, to first order): about
 * 3 * 2^-22 of |a b| at most, before the f32 additions.
 */
inline float4 mma_m16n8k8_3xtf32(uint4 ahi, uint4 alo, uint2 bhi, uint2 blo, float4 c, __local uint *scratch) {
    c = mma_m16n8k8_tf32(alo, bhi, c, scratch);
    c = mma_m16n8k8_tf32(ahi, blo, c, scratch);
    return mma_m16n8k8_tf32(ahi, bhi, c, scratch);
}

/**
 * One warp, one tile, for the probe: A as 16 rows x 8 uints (k-pairs), B as 8 columns x 8 uints, C and D as
 * 16 x 8 floats row-major. Each lane loads exactly the fragment elements the layout names.
 */
__kernel __attribute__((reqd_work_group_size(32, 1, 1)))
void mma_tile(__global const uint *a, __global const uint *b, __global const float *c, __global float *d) {
    __local uint scratch[MMA_SCRATCH_UINTS];
    int lane = get_local_id(0);
    int g = lane >> 2;
    int t = lane & 3;
    uint4 fa = (uint4)(a[g * 8 + t], a[(g + 8) * 8 + t], a[g * 8 + t + 4], a[(g + 8) * 8 + t + 4]);
    uint2 fb = (uint2)(b[g * 8 + t], b[g * 8 + t + 4]);
    float4 fc = (float4)(c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]);
    float4 r = mma_m16n8k16(fa, fb, fc, scratch);
    d[g * 8 + 2 * t] = r.x;
    d[g * 8 + 2 * t + 1] = r.y;
    d[(g + 8) * 8 + 2 * t] = r.z;
    d[(g + 8) * 8 + 2 * t + 1] = r.w;
}

/**
 * One warp, one m16n8k8 tf32 tile, for the probe: A as 16 rows x 8 k floats row-major, B as 8 columns x 8 k floats
 * (each column's k contiguous), C and D as 16 x 8 floats row-major. Each lane loads exactly the fragment elements
 * the layout names; with split == 0 they are rounded to tf32 (mma_tf32) and go through one mma, else through
 * mma_m16n8k8_3xtf32 (split is the same for every lane: all reach the same mma calls).
 */
__kernel __attribute__((reqd_work_group_size(32, 1, 1)))
void mma_tile_tf32(__global const float *a, __global const float *b, __global const float *c, __global float *d,
                   int split) {
    __local uint scratch[MMA_SCRATCH_UINTS];
    int lane = get_local_id(0);
    int g = lane >> 2;
    int t = lane & 3;
    float4 fa = (float4)(a[g * 8 + t], a[(g + 8) * 8 + t], a[g * 8 + t + 4], a[(g + 8) * 8 + t + 4]);
    float2 fb = (float2)(b[g * 8 + t], b[g * 8 + t + 4]);
    float4 fc = (float4)(c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]);
    float4 r;
    if (split != 0) {
        uint4 ahi, alo;
        uint2 bhi, blo;
        mma_split4_tf32(fa, &ahi, &alo);
        mma_split2_tf32(fb, &bhi, &blo);
        r = mma_m16n8k8_3xtf32(ahi, alo, bhi, blo, fc, scratch);
    } else {
        uint4 ua = (uint4)(mma_tf32(fa.x), mma_tf32(fa.y), mma_tf32(fa.z), mma_tf32(fa.w));
        uint2 ub = (uint2)(mma_tf32(fb.x), mma_tf32(fb.y));
        r = mma_m16n8k8_tf32(ua, ub, fc, scratch);
    }
    d[g * 8 + 2 * t] = r.x;
    d[g * 8 + 2 * t + 1] = r.y;
    d[(g + 8) * 8 + 2 * t] = r.z;
    d[(g + 8) * 8 + 2 * t + 1] = r.w;
}

/** x[i] rounded to tf32 by mma_tf32 (cvt.rna.tf32.f32 on the device, tf32_round in the emulation), as bits. */
__kernel void tf32_round_probe(__global const float *x, __global uint *y) {
    int i = get_global_id(0);
    y[i] = mma_tf32(x[i]);
}

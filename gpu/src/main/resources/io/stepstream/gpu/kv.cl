// The KV pool's element type, one build define for every program that touches the pool (KvCacheType): float by
// default; with -DKV_F16 IEEE half bits, 2 bytes an element. Writes round to nearest even, reads widen exactly, the
// arithmetic stays f32 either way. vload_half* / vstore_half* need no cl_khr_fp16 (OpenCL C 1.2 lets `half` name
// what a pointer points at without it). Indices are elements of the pool, 64-bit where the pool may be large.
//   KV_LOAD4(kv, i)          float4 of elements i..i+3, i a multiple of 4
//   KV_LOAD8(kv, i, lo, hi)  two float4s of elements i..i+7, i a multiple of 8: one 16-byte load of halves
//   KV_LOAD8_RAW(kv, i)      (f16 only) those 8 halves as a uint4 of raw words, widened later by kv_halves4
//   KV_LOAD1(kv, i)          one element
//   KV_STORE2(kv, i, a, b)   elements i, i+1 (i even), rounded to nearest even
#ifdef KV_F16
#define KV_T half
#ifndef KV_CVT
#define KV_CVT 0
#endif
#if KV_CVT == 1
// Four halves (little-endian in two words) to floats exactly, with integer operations in registers: a normal half's
// exponent rebiased from 15 to 127, a subnormal one (or zero) as its integer mantissa x 2^-24 (both exact in float),
// infinities and NaNs (payload kept) by the all-ones exponent; the sign OR'ed in.
inline float4 kv_halves4(uint2 w) {
    uint4 h = (uint4) (w.x & 0xffffu, w.x >> 16, w.y & 0xffffu, w.y >> 16);
    uint4 em = h & 0x7fffu;
    uint4 normal = (em << 13) + 0x38000000u;
    uint4 special = (em << 13) | 0x7f800000u;
    uint4 sub = as_uint4(convert_float4(em) * 0x1p-24f);
    uint4 bits = select(select(normal, special, em >= (uint4) (0x7c00u)), sub, em < (uint4) (0x0400u));
    return as_float4(bits | ((h & 0x8000u) << 16));
}
#elif KV_CVT == 2
// NVIDIA's conversion instruction through inline PTX: cvt.f32.f16 is exact. KV_PTX=2 spells the keyword __asm__ (see
// mma.cl); the host falls back to KV_CVT 0 where neither spelling builds (PoCL).
#if KV_PTX == 2
#define KV_ASM __asm__
#else
#define KV_ASM asm
#endif
inline float2 kv_halves2(uint w) {
    float lo;
    float hi;
    KV_ASM("{\n\t.reg .b16 kvl, kvh;\n\tmov.b32 {kvl, kvh}, %2;\n\tcvt.f32.f16 %0, kvl;\n\tcvt.f32.f16 %1, kvh;\n\t}"
           : "=f"(lo), "=f"(hi) : "r"(w));
    return (float2) (lo, hi);
}
inline float4 kv_halves4(uint2 w) {
    return (float4) (kv_halves2(w.x), kv_halves2(w.y));
}
#else
// Four halves decoded by vload_half4 from a private copy of the loaded words (as matmul.cl decodes F16 weights):
// vload_half4 straight from global memory may be split into four 2-byte loads, as it must allow any 2-byte alignment.
inline float4 kv_halves4(uint2 w) {
    return vload_half4(0, (const __private half *)&w);
}
#endif
#define KV_LOAD4(kv, i) kv_halves4(*(__global const uint2 *)((kv) + (i)))
#define KV_LOAD8_RAW(kv, i) (*(__global const uint4 *)((kv) + (i)))
#define KV_LOAD8(kv, i, lo, hi) { \
    uint4 w8_ = *(__global const uint4 *)((kv) + (i)); \
    lo = kv_halves4(w8_.xy); \
    hi = kv_halves4(w8_.zw); }
#define KV_LOAD1(kv, i) vload_half((i), (kv))
#define KV_STORE2(kv, i, a, b) vstore_half2_rte((float2) ((a), (b)), 0, (kv) + (i))
#else
#define KV_T float
#define KV_LOAD4(kv, i) vload4(0, (kv) + (i))
#define KV_LOAD8(kv, i, lo, hi) { lo = vload4(0, (kv) + (i)); hi = vload4(0, (kv) + (i) + 4); }
#define KV_LOAD1(kv, i) ((kv)[i])
#define KV_STORE2(kv, i, a, b) { (kv)[i] = (a); (kv)[(i) + 1] = (b); }
#endif

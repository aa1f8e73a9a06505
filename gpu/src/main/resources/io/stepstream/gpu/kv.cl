// The KV pool's element type, one build define for every program that touches the pool (KvCacheType): float by
// default; with -DKV_F16 IEEE half bits, 2 bytes an element. Writes round to nearest even, reads widen exactly, the
// arithmetic stays f32 either way. vload_half* / vstore_half* need no cl_khr_fp16 (OpenCL C 1.2 lets `half` name
// what a pointer points at without it). Indices are elements of the pool, 64-bit where the pool may be large.
#ifdef KV_F16
#define KV_T half
// Four elements at an index that is a multiple of 4 (so 8-byte aligned): one ushort4 load, decoded from a private
// copy as matmul.cl decodes F16 weights (vload_half4 straight from global memory may be split into four 2-byte loads).
inline float4 kv_load4_half(__global const half *p) {
    ushort4 bits = *(__global const ushort4 *)p;
    return vload_half4(0, (const __private half *)&bits);
}
#define KV_LOAD4(kv, i) kv_load4_half((kv) + (i))
#define KV_LOAD1(kv, i) vload_half((i), (kv))
// Two elements at an even index (a RoPE pair / a V pair of the QKV epilogue), rounded to nearest even.
#define KV_STORE2(kv, i, a, b) vstore_half2_rte((float2) ((a), (b)), 0, (kv) + (i))
#else
#define KV_T float
#define KV_LOAD4(kv, i) vload4(0, (kv) + (i))
#define KV_LOAD1(kv, i) ((kv)[i])
#define KV_STORE2(kv, i, a, b) { (kv)[i] = (a); (kv)[(i) + 1] = (b); }
#endif

// sgemm for any x86-64 (SSE2, no FMA): 4 floats per xmm, 4x8 micro-tile. The
// fallback where neither AVX2 nor AVX-512 is present.
#define BRISK_GEMM_NS sse
#define BRISK_GEMM_W 4
#define BRISK_GEMM_MR 4
#define BRISK_GEMM_NV 2
typedef float brisk_v4sf __attribute__((vector_size(16)));
static inline brisk_v4sf vfma(brisk_v4sf a, brisk_v4sf b, brisk_v4sf c) { return a * b + c; }
static inline brisk_v4sf vset1(float a) { return brisk_v4sf{a, a, a, a}; }
#define BRISK_GEMM_ENTRY sgemm_sse
#include "kernels/cpu/gemm/sgemm_impl.h"

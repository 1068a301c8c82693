// sgemm built for AVX-512F: 16 floats per zmm, 8x32 micro-tile (16 accumulators).
#include <immintrin.h>
#define BRISK_GEMM_NS avx512
#define BRISK_GEMM_W 16
#define BRISK_GEMM_MR 8
#define BRISK_GEMM_NV 2
static inline __m512 vfma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
static inline auto vset1(float a) { return _mm512_set1_ps(a); }
#define BRISK_GEMM_ENTRY sgemm_avx512
#include "kernels/cpu/gemm/sgemm_impl.h"

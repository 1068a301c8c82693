// sgemm built for AVX2+FMA: 8 floats per ymm, 6x16 micro-tile (12 accumulators
// of the 16 registers).
#include <immintrin.h>
#define BRISK_GEMM_NS avx2
#define BRISK_GEMM_W 8
#define BRISK_GEMM_MR 6
#define BRISK_GEMM_NV 2
static inline __m256 vfma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
static inline auto vset1(float a) { return _mm256_set1_ps(a); }
#define BRISK_GEMM_ENTRY sgemm_avx2
#include "kernels/cpu/gemm/sgemm_impl.h"

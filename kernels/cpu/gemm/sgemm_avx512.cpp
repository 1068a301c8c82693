// sgemm built for AVX-512F: 16 floats per zmm, 8x32 micro-tile (16 accumulators).
#include <immintrin.h>
#define BRISK_GEMM_NS avx512
#define BRISK_GEMM_W 16
#define BRISK_GEMM_MR 8
#define BRISK_GEMM_NV 2
static inline __m512 vfma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
static inline auto vset1(float a) { return _mm512_set1_ps(a); }
#include "kernels/cpu/gemm/sgemm_impl.h"
namespace brisk::kern::cpu {
void sgemm_avx512(int64_t M, int64_t N, int64_t K, MatF A, MatF B, float* C, int64_t ldc, bool acc) {
  avx512::sgemm(M, N, K, A, B, C, ldc, acc);
}
}  // namespace brisk::kern::cpu

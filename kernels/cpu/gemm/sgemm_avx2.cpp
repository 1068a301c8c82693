// sgemm built for AVX2+FMA: 8 floats per ymm, 6x16 micro-tile (12 accumulators
// of the 16 registers).
#include <immintrin.h>
#define BRISK_GEMM_NS avx2
#define BRISK_GEMM_W 8
#define BRISK_GEMM_MR 6
#define BRISK_GEMM_NV 2
static inline __m256 vfma(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
static inline auto vset1(float a) { return _mm256_set1_ps(a); }
#include "kernels/cpu/gemm/sgemm_impl.h"
namespace brisk::kern::cpu {
// One definition per operand type (f32, bf16, f16): the same driver and micro-kernel.
template <class E>
void sgemm_avx2(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool acc) {
  avx2::sgemm<E>(M, N, K, A, B, C, ldc, acc);
}
template void sgemm_avx2<float>(int64_t, int64_t, int64_t, Mat<float>, Mat<float>, float*, int64_t, bool);
template void sgemm_avx2<BFloat16>(int64_t, int64_t, int64_t, Mat<BFloat16>, Mat<BFloat16>, float*, int64_t, bool);
template void sgemm_avx2<Half>(int64_t, int64_t, int64_t, Mat<Half>, Mat<Half>, float*, int64_t, bool);
}  // namespace brisk::kern::cpu

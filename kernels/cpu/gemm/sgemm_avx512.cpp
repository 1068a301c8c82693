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
// One definition per operand type (f32, bf16, f16): the same driver and micro-kernel.
template <class E>
void sgemm_avx512(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool acc) {
  avx512::sgemm<E>(M, N, K, A, B, C, ldc, acc);
}
template void sgemm_avx512<float>(int64_t, int64_t, int64_t, Mat<float>, Mat<float>, float*, int64_t, bool);
template void sgemm_avx512<BFloat16>(int64_t, int64_t, int64_t, Mat<BFloat16>, Mat<BFloat16>, float*, int64_t, bool);
template void sgemm_avx512<Half>(int64_t, int64_t, int64_t, Mat<Half>, Mat<Half>, float*, int64_t, bool);
}  // namespace brisk::kern::cpu

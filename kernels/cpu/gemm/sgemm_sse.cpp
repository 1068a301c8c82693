// sgemm for any x86-64 (SSE2, no FMA): 4 floats per xmm, 4x8 micro-tile. The
// fallback where neither AVX2 nor AVX-512 is present.
#define BRISK_GEMM_NS sse
#define BRISK_GEMM_W 4
#define BRISK_GEMM_MR 4
#define BRISK_GEMM_NV 2
typedef float brisk_v4sf __attribute__((vector_size(16)));
static inline brisk_v4sf vfma(brisk_v4sf a, brisk_v4sf b, brisk_v4sf c) { return a * b + c; }
static inline brisk_v4sf vset1(float a) { return brisk_v4sf{a, a, a, a}; }
#include "kernels/cpu/gemm/sgemm_impl.h"
namespace brisk::kern::cpu {
// One definition per operand type (f32, bf16, f16): the same driver and micro-kernel.
template <class E>
void sgemm_sse(int64_t M, int64_t N, int64_t K, Mat<E> A, Mat<E> B, float* C, int64_t ldc, bool acc) {
  sse::sgemm<E>(M, N, K, A, B, C, ldc, acc);
}
template void sgemm_sse<float>(int64_t, int64_t, int64_t, Mat<float>, Mat<float>, float*, int64_t, bool);
template void sgemm_sse<BFloat16>(int64_t, int64_t, int64_t, Mat<BFloat16>, Mat<BFloat16>, float*, int64_t, bool);
template void sgemm_sse<Half>(int64_t, int64_t, int64_t, Mat<Half>, Mat<Half>, float*, int64_t, bool);
}  // namespace brisk::kern::cpu

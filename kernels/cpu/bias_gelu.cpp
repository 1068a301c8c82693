// Bias + GELU over rows of y [M, N] and its backward (contract in
// core/kernel_params.h), one pass each: the MLP's c_fc epilogue without a
// separate add, and GELU through the vectorizable erf/exp of fast_math.h
// (f32; f64 uses the library's), or with AVX-512 16 lanes at a time sharing
// one exp between erf and the density (fast_math.h gelu_cdf_pdf16). Rows split
// over the pool; each element is written by one thread, so results do not
// depend on the thread count.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include <type_traits>

#include "core/thread_pool.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

#ifdef __AVX512F__
// One row of N: o = gelu(y + b), or with g: o = g * gelu'(y + b); masked tail.
static void gelu_row16(const float* g, const float* y, const float* b, float* o, int64_t N) {
  for (int64_t c = 0; c < N; c += 16) {
    __mmask16 m = tail_mask16(N - c);
    __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + c), _mm512_maskz_loadu_ps(m, b + c)), cdf, pdf;
    gelu_cdf_pdf16(x, cdf, pdf);
    __m512 r = g ? _mm512_mul_ps(_mm512_maskz_loadu_ps(m, g + c), _mm512_fmadd_ps(x, pdf, cdf))
                 : _mm512_mul_ps(x, cdf);
    _mm512_mask_storeu_ps(o + c, m, r);
  }
}
#endif

template <class T>
bool bias_gelu_fwd(const KernelArgs& a) {
  int64_t N = a.in[1].numel(), M = N ? a.in[0].numel() / N : 0;
  const T *y = ptr<T>(a.in[0]), *b = ptr<T>(a.in[1]);
  T* o = ptr<T>(a.out[0]);
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    parallel_for(0, M, rows_per_task(N), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) gelu_row16(nullptr, y + r * N, b, o + r * N, N);
    });
    return true;
  }
#endif
  parallel_for(0, M, rows_per_task(N), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      for (int64_t c = 0; c < N; ++c) o[r * N + c] = gelu_exact(y[r * N + c] + b[c]);
  });
  return true;
}

template <class T>
bool bias_gelu_bwd(const KernelArgs& a) {
  int64_t N = a.in[2].numel(), M = N ? a.in[1].numel() / N : 0;
  const T *g = ptr<T>(a.in[0]), *y = ptr<T>(a.in[1]), *b = ptr<T>(a.in[2]);
  T* gy = ptr<T>(a.out[0]);
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    parallel_for(0, M, rows_per_task(N), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) gelu_row16(g + r * N, y + r * N, b, gy + r * N, N);
    });
    return true;
  }
#endif
  parallel_for(0, M, rows_per_task(N), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      for (int64_t c = 0; c < N; ++c) gy[r * N + c] = g[r * N + c] * gelu_exact_deriv(y[r * N + c] + b[c]);
  });
  return true;
}

void register_bias_gelu() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("bias_gelu_fwd", "cpu", P, bias_gelu_fwd);
  BRISK_REGISTER_FLOATING("bias_gelu_bwd", "cpu", P, bias_gelu_bwd);
}

}  // namespace brisk::kern::cpu

// Bias + GELU over rows of y [M, N] and its backward (contract in
// core/kernel_params.h), one pass each: the MLP's c_fc epilogue without a
// separate add, and GELU through the vectorizable erf/exp of fast_math.h
// (f32; f64 uses the library's). Rows split over the pool; each element is
// written by one thread, so results do not depend on the thread count.
#include "core/thread_pool.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/grain.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool bias_gelu_fwd(const KernelArgs& a) {
  int64_t N = a.in[1].numel(), M = N ? a.in[0].numel() / N : 0;
  const T *y = ptr<T>(a.in[0]), *b = ptr<T>(a.in[1]);
  T* o = ptr<T>(a.out[0]);
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

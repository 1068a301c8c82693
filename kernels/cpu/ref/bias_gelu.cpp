// Reference bias + GELU (exact erf form) and its backward, in double.
#include <cmath>

#include "kernels/strided.h"

namespace brisk::kern::ref {

namespace {
double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
// Phi(x) + x phi(x)
double gelu_deriv(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}
}  // namespace

template <class T>
bool bias_gelu_fwd(const KernelArgs& a) {
  int64_t N = a.in[1].numel(), M = N ? a.in[0].numel() / N : 0;
  const T *y = ptr<T>(a.in[0]), *b = ptr<T>(a.in[1]);
  T* o = ptr<T>(a.out[0]);
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < N; ++c) o[r * N + c] = T(gelu(double(y[r * N + c]) + double(b[c])));
  return true;
}

template <class T>
bool bias_gelu_bwd(const KernelArgs& a) {
  int64_t N = a.in[2].numel(), M = N ? a.in[1].numel() / N : 0;
  const T *g = ptr<T>(a.in[0]), *y = ptr<T>(a.in[1]), *b = ptr<T>(a.in[2]);
  T* gy = ptr<T>(a.out[0]);
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < N; ++c)
      gy[r * N + c] = T(double(g[r * N + c]) * gelu_deriv(double(y[r * N + c]) + double(b[c])));
  return true;
}

void register_bias_gelu() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("bias_gelu_fwd", "ref", P, bias_gelu_fwd);
  BRISK_REGISTER_FLOATING("bias_gelu_bwd", "ref", P, bias_gelu_bwd);
}

}  // namespace brisk::kern::ref

// Reference bias + ReLU over rows of y [M, N] (arithmetic in kernels/fused_math.h).
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool bias_relu(const KernelArgs& a) {
  int64_t N = a.in[1].numel(), M = N ? a.in[0].numel() / N : 0;
  for (int64_t r = 0; r < M; ++r) fused::bias_relu_row(ptr<T>(a.in[0]) + r * N, ptr<T>(a.in[1]), ptr<T>(a.out[0]) + r * N, N);
  return true;
}

void register_bias_relu() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("bias_relu", "ref", P, bias_relu);
}

}  // namespace brisk::kern::ref

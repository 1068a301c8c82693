// Threaded bias + ReLU over rows of y [M, N]: the ref arithmetic
// (kernels/fused_math.h) split over the pool by rows. Each output element is
// written by one thread, so results do not depend on the thread count.
#include "core/thread_pool.h"
#include "kernels/cpu/grain.h"
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool bias_relu(const KernelArgs& a) {
  int64_t N = a.in[1].numel(), M = N ? a.in[0].numel() / N : 0;
  const T *y = ptr<T>(a.in[0]), *b = ptr<T>(a.in[1]);
  T* o = ptr<T>(a.out[0]);
  parallel_for(0, M, rows_per_task(N), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) fused::bias_relu_row(y + r * N, b, o + r * N, N);
  });
  return true;
}

void register_bias_relu() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("bias_relu", "cpu", P, bias_relu);
}

}  // namespace brisk::kern::cpu

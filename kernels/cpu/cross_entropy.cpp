// Threaded fused softmax + cross-entropy over rows of logits [N, C], forward
// and backward: the ref arithmetic (kernels/fused_math.h) split over the pool
// by rows, the f32 gradient's denormals flushed to 0. Each output element is
// written by one thread, so results do not depend on the thread count.
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/thread_pool.h"
#include "kernels/cpu/grain.h"
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool xent_fwd(const KernelArgs& a) {
  const auto& p = *static_cast<const CrossEntropyParams*>(a.params);
  int64_t N = a.in[0].size(0), C = a.in[0].size(1);
  const T* x = ptr<T>(a.in[0]);
  const int64_t* t = ptr<int64_t>(a.in[1]);
  T *loss = ptr<T>(a.out[0]), *lse = ptr<T>(a.out[1]);
  parallel_for(0, N, rows_per_task(C), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) loss[i] = fused::xent_row(x + i * C, C, t[i], p, lse + i);
  });
  return true;
}

template <class T>
bool xent_bwd(const KernelArgs& a) {
  const auto& p = *static_cast<const CrossEntropyParams*>(a.params);
  int64_t N = a.in[0].size(0), C = a.in[0].size(1);
  const T *x = ptr<T>(a.in[0]), *lse = ptr<T>(a.in[1]), *gl = ptr<T>(a.in[3]);
  const int64_t* t = ptr<int64_t>(a.in[2]);
  T* gx = ptr<T>(a.out[0]);
  parallel_for(0, N, rows_per_task(C), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T* row = gx + i * C;
      fused::xent_bwd_row(x + i * C, lse[i], C, t[i], gl[i], p, row);
      // Denormal gradients (the classes a confident model gives < 1e-38 after
      // the 1/N of the mean) become 0: the head's backward GEMMs would take a
      // microcode assist for each, and their size is below any f32 sum's
      // resolution.
      if constexpr (std::is_same_v<T, float>)
        for (int64_t c = 0; c < C; ++c) row[c] = std::fabs(row[c]) < std::numeric_limits<float>::min() ? 0.0f : row[c];
    }
  });
  return true;
}

void register_cross_entropy() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("cross_entropy_fwd", "cpu", P, xent_fwd);
  BRISK_REGISTER_FLOATING("cross_entropy_bwd", "cpu", P, xent_bwd);
}

}  // namespace brisk::kern::cpu

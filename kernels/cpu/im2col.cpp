// Optimized im2col / col2im: threaded over samples, contiguous row runs
// (kernels/cpu/im2col.h).
#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/cpu/im2col.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool im2col(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* x = ptr<T>(a.in[0]);
  T* col = ptr<T>(a.out[0]);
  int64_t L = g.Ho * g.Wo, CKK = g.C * g.kh * g.kw;
  parallel_for(0, g.N, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) im2col_sample(x + n * g.C * g.H * g.W, g, col + n * CKK * L);
  });
  return true;
}

template <class T>
bool col2im(const KernelArgs& a) {
  const Geom2d& g = *static_cast<const Geom2d*>(a.params);
  const T* col = ptr<T>(a.in[0]);
  T* x = ptr<T>(a.out[0]);
  int64_t L = g.Ho * g.Wo, CKK = g.C * g.kh * g.kw;
  // Each sample is written by exactly one thread: no races, fixed order.
  parallel_for(0, g.N, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) col2im_sample(col + n * CKK * L, g, x + n * g.C * g.H * g.W);
  });
  return true;
}

void register_im2col() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("im2col", "cpu", P, im2col);
  BRISK_REGISTER_FLOATING("col2im", "cpu", P, col2im);
}

}  // namespace brisk::kern::cpu

// Threaded fused SGD update: the ref arithmetic (kernels/fused_math.h) split
// over the pool by ranges. Each output element is written by one thread, so
// results do not depend on the thread count.
#include "core/thread_pool.h"
#include "kernels/cpu/grain.h"
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool sgd_step(const KernelArgs& a) {
  const auto& q = *static_cast<const SgdStepParams*>(a.params);
  T* buf = a.out[1].defined() ? ptr<T>(a.out[1]) : nullptr;
  parallel_for(0, a.out[0].numel(), kTaskElems, [&](int64_t lo, int64_t hi) {
    fused::sgd_range(q, ptr<T>(a.in[0]), ptr<T>(a.out[0]), buf, lo, hi);
  });
  return true;
}

void register_sgd_step() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("sgd_step", "cpu", P, sgd_step);
}

}  // namespace brisk::kern::cpu

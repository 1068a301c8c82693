// Threaded fused AdamW update: the ref arithmetic (kernels/fused_math.h) split
// over the pool by ranges. Each output element is written by one thread, so
// results do not depend on the thread count.
#include "core/thread_pool.h"
#include "kernels/cpu/grain.h"
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

template <class T>
bool adamw_step(const KernelArgs& a) {
  const auto& q = *static_cast<const AdamWStepParams*>(a.params);
  parallel_for(0, a.out[0].numel(), kTaskElems, [&](int64_t lo, int64_t hi) {
    fused::adamw_range(q, ptr<T>(a.in[0]), ptr<T>(a.out[0]), ptr<T>(a.out[1]), ptr<T>(a.out[2]), lo, hi);
  });
  return true;
}

void register_adamw_step() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("adamw_step", "cpu", P, adamw_step);
}

}  // namespace brisk::kern::cpu

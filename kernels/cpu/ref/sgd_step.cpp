// Reference fused SGD update (arithmetic in kernels/fused_math.h).
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool sgd_step(const KernelArgs& a) {
  const auto& q = *static_cast<const SgdStepParams*>(a.params);
  T* buf = a.out[1].defined() ? ptr<T>(a.out[1]) : nullptr;
  fused::sgd_range(q, ptr<T>(a.in[0]), ptr<T>(a.out[0]), buf, 0, a.out[0].numel());
  return true;
}

void register_sgd_step() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("sgd_step", "ref", P, sgd_step);
}

}  // namespace brisk::kern::ref

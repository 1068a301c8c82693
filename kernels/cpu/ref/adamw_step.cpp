// Reference fused AdamW update (arithmetic in kernels/fused_math.h).
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool adamw_step(const KernelArgs& a) {
  const auto& q = *static_cast<const AdamWStepParams*>(a.params);
  fused::adamw_range(q, ptr<T>(a.in[0]), ptr<T>(a.out[0]), ptr<T>(a.out[1]), ptr<T>(a.out[2]), 0, a.out[0].numel());
  return true;
}

void register_adamw_step() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("adamw_step", "ref", P, adamw_step);
}

}  // namespace brisk::kern::ref

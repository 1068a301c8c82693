// Reference fused softmax + cross-entropy over rows of logits [N, C], forward and
// backward (arithmetic in kernels/fused_math.h).
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool xent_fwd(const KernelArgs& a) {
  const auto& p = *static_cast<const CrossEntropyParams*>(a.params);
  int64_t N = a.in[0].size(0), C = a.in[0].size(1);
  for (int64_t i = 0; i < N; ++i)
    ptr<T>(a.out[0])[i] = fused::xent_row(ptr<T>(a.in[0]) + i * C, C, ptr<int64_t>(a.in[1])[i], p, ptr<T>(a.out[1]) + i);
  return true;
}

template <class T>
bool xent_bwd(const KernelArgs& a) {
  const auto& p = *static_cast<const CrossEntropyParams*>(a.params);
  int64_t N = a.in[0].size(0), C = a.in[0].size(1);
  for (int64_t i = 0; i < N; ++i)
    fused::xent_bwd_row(ptr<T>(a.in[0]) + i * C, ptr<T>(a.in[1])[i], C, ptr<int64_t>(a.in[2])[i], ptr<T>(a.in[3])[i], p,
                        ptr<T>(a.out[0]) + i * C);
  return true;
}

void register_cross_entropy() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("cross_entropy_fwd", "ref", P, xent_fwd);
  BRISK_REGISTER_FLOATING("cross_entropy_bwd", "ref", P, xent_bwd);
}

}  // namespace brisk::kern::ref

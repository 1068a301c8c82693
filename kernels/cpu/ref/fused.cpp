// Reference (serial) fused kernels: bias_relu, softmax + cross-entropy, and
// the SGD / AdamW updates (arithmetic in kernels/fused_math.h).
#include "kernels/fused_math.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool bias_relu(const KernelArgs& a) {
  int64_t N = a.in[1].numel(), M = N ? a.in[0].numel() / N : 0;
  for (int64_t r = 0; r < M; ++r) fused::bias_relu_row(ptr<T>(a.in[0]) + r * N, ptr<T>(a.in[1]), ptr<T>(a.out[0]) + r * N, N);
  return true;
}

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

template <class T>
bool sgd_step(const KernelArgs& a) {
  const auto& q = *static_cast<const SgdStepParams*>(a.params);
  T* buf = a.out[1].defined() ? ptr<T>(a.out[1]) : nullptr;
  fused::sgd_range(q, ptr<T>(a.in[0]), ptr<T>(a.out[0]), buf, 0, a.out[0].numel());
  return true;
}

template <class T>
bool adamw_step(const KernelArgs& a) {
  const auto& q = *static_cast<const AdamWStepParams*>(a.params);
  fused::adamw_range(q, ptr<T>(a.in[0]), ptr<T>(a.out[0]), ptr<T>(a.out[1]), ptr<T>(a.out[2]), 0, a.out[0].numel());
  return true;
}

void register_fused() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("bias_relu", "ref", P, bias_relu);
  BRISK_REGISTER_FLOATING("cross_entropy_fwd", "ref", P, xent_fwd);
  BRISK_REGISTER_FLOATING("cross_entropy_bwd", "ref", P, xent_bwd);
  BRISK_REGISTER_FLOATING("sgd_step", "ref", P, sgd_step);
  BRISK_REGISTER_FLOATING("adamw_step", "ref", P, adamw_step);
}

}  // namespace brisk::kern::ref

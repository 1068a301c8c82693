// Reference batched GEMM: C[b] = A[b] @ B[b] with arbitrary strides, the
// textbook triple loop accumulated in double; the f32 epilogue (bias, ReLU,
// bf16 rounding) applied to the f32 result.
#include <type_traits>

#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool gemm(const KernelArgs& a) {
  const Tensor &A = a.in[0], &B = a.in[1];
  Tensor& C = a.out[0];
  const bool epilogue = a.in.size() > 2 || a.params;  // f32 only (core/kernel_params.h)
  if (epilogue && !std::is_same_v<T, float>) return false;
  const T* bias = a.in.size() > 2 && a.in[2].defined() ? ptr<T>(a.in[2]) : nullptr;
  const auto* gp = static_cast<const GemmParams*>(a.params);
  const bool round = gp && gp->round_bf16, relu = gp && gp->relu;
  int64_t nb = A.size(0), M = A.size(1), K = A.size(2), N = B.size(2);
  const T *ap = ptr<T>(A), *bp = ptr<T>(B);
  T* cp = ptr<T>(C);
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += double(ap[b * A.stride(0) + i * A.stride(1) + k * A.stride(2)]) *
               double(bp[b * B.stride(0) + k * B.stride(1) + j * B.stride(2)]);
        if constexpr (std::is_same_v<T, float>) {  // the epilogue: + bias in f32, ReLU, then the rounding
          float v = bias ? float(s) + bias[j] : float(s);
          if (relu && v < 0.f) v = 0.f;
          cp[(b * M + i) * N + j] = round ? bf16_bits_to_float(float_to_bf16_bits(v)) : v;
        } else if constexpr (std::is_floating_point_v<T>) {
          cp[(b * M + i) * N + j] = T(s);
        } else {
          cp[(b * M + i) * N + j] = T(float(s));  // bf16 / f16: one rounding from the f32 nearest
        }
      }
  return true;
}

void register_gemm() {
  BRISK_REGISTER_FLOATING("gemm", "ref", backend_priority::ref, gemm);
  ::brisk::kern::register_for<BFloat16, Half>("gemm", "ref", backend_priority::ref, [](auto t) -> KernelFn {
    return &gemm<typename decltype(t)::type>;
  });
}

}  // namespace brisk::kern::ref

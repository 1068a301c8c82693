// Helpers for kernels: walking N strided operands in lockstep, and registering
// one kernel template for a list of dtypes.
#pragma once
#include <array>
#include <vector>

#include "core/dispatch.h"
#include "core/kernel_params.h"
#include "core/tensor.h"

namespace brisk::kern {

// Calls f(std::array<int64_t, N> offsets) for every index of `shape`, in
// row-major order; offsets[k] is the element offset into operand k.
template <size_t N, class F>
void for_each_strided(const Shape& shape, const std::array<const Shape*, N>& strides, F&& f) {
  int64_t total = shape_numel(shape);
  if (total == 0) return;
  size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  std::array<int64_t, N> off{};
  for (int64_t i = 0; i < total; ++i) {
    f(off);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < shape[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += (*strides[k])[d];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= (*strides[k])[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

template <class T>
inline T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

// The (batch, head) slices of a [B, H, T, D] attention operand with a unit
// stride along D (core/kernel_params.h): slice s = b H + h starts at
// slice(s), and its row t at slice(s) + t * row.
template <class T>
struct HeadSlices {
  T* base;
  int64_t H, sb, sh, row;
  explicit HeadSlices(const Tensor& t)
      : base(ptr<T>(t)), H(t.size(1)), sb(t.stride(0)), sh(t.stride(1)), row(t.stride(2)) {}
  T* slice(int64_t s) const { return base + (s / H) * sb + (s % H) * sh; }
};

// register_for<float, double>("op", "ref", prio, [](auto tag) -> KernelFn {...})
// (where: the calling file, checked against the op's stem by register_kernel.)
template <class... Ts, class Make>
void register_for(const char* op, const char* backend, int priority, Make make,
                  const char* where = __builtin_FILE()) {
  (register_kernel(op, DeviceType::cpu, DTypeOf<Ts>::value, backend, priority, make(TypeTag<Ts>{}), where),
   ...);
}

}  // namespace brisk::kern

// Registers the template kernel fn<T> for f32 and f64 under (op, backend).
#define BRISK_REGISTER_FLOATING(op, backend, priority, fn)                                          \
  ::brisk::kern::register_for<float, double>(op, backend, priority, [](auto t) -> ::brisk::KernelFn { \
    return &fn<typename decltype(t)::type>;                                                        \
  })

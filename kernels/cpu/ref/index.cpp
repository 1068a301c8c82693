// Reference gather / scatter_add along one dim (index is contiguous i64).
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool gather(const KernelArgs& a) {
  int64_t dim = static_cast<const DimParams*>(a.params)->dim;
  const Tensor &x = a.in[0], &index = a.in[1];
  const T* xp = ptr<T>(x);
  const int64_t* ip = ptr<int64_t>(index);
  T* o = ptr<T>(a.out[0]);
  // Walk the index's shape with x's strides, except along dim where the index decides.
  Shape xs = x.strides();
  if (x.dim() > 0) xs[size_t(dim)] = 0;
  Shape cs = contiguous_strides(index.shape());
  for_each_strided<2>(index.shape(), {&xs, &cs}, [&](auto off) {
    int64_t i = ip[off[1]];
    o[off[1]] = xp[off[0] + (x.dim() ? i * x.stride(dim) : 0)];
  });
  return true;
}

template <class T>
bool scatter_add(const KernelArgs& a) {
  int64_t dim = static_cast<const DimParams*>(a.params)->dim;
  const Tensor &index = a.in[0], &src = a.in[1];
  Tensor& out = a.out[0];
  const int64_t* ip = ptr<int64_t>(index);
  const T* sp = ptr<T>(src);
  T* op = ptr<T>(out);
  Shape os = out.strides();
  if (out.dim() > 0) os[size_t(dim)] = 0;
  Shape cs = contiguous_strides(index.shape());
  for_each_strided<2>(index.shape(), {&os, &cs}, [&](auto off) {
    int64_t i = ip[off[1]];
    T& dst = op[off[0] + (out.dim() ? i * out.stride(dim) : 0)];
    dst = T(dst + sp[off[1]]);
  });
  return true;
}

void register_index() {
  constexpr int P = backend_priority::ref;
  register_for<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>("gather", "ref", P,
      [](auto t) -> KernelFn { return &gather<typename decltype(t)::type>; });
  register_for<float, double, int32_t, int64_t>("scatter_add", "ref", P,
      [](auto t) -> KernelFn { return &scatter_add<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::ref

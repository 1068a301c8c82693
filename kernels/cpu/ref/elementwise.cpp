// Reference elementwise kernels: plain strided loops, math done in double.
// These are the oracle; kernels/cpu must agree with them.
#include "kernels/scalar_ops.h"
#include "kernels/strided.h"

namespace brisk::kern::ref {

template <class T>
bool unary(const KernelArgs& a) {
  auto op = static_cast<const UnaryParams*>(a.params)->op;
  const Tensor& x = a.in[0];
  T* o = ptr<T>(a.out[0]);
  const T* xp = ptr<T>(x);
  Shape ostr = contiguous_strides(x.shape());
  for_each_strided<2>(x.shape(), {&x.strides(), &ostr}, [&](auto off) {
    if constexpr (std::is_floating_point_v<T>)
      o[off[1]] = T(apply_unary<double>(op, double(xp[off[0]])));
    else
      o[off[1]] = apply_unary<T>(op, xp[off[0]]);
  });
  return true;
}

template <class T>
bool binary(const KernelArgs& a) {
  auto op = static_cast<const BinaryParams*>(a.params)->op;
  const Tensor &x = a.in[0], &y = a.in[1];
  T* o = ptr<T>(a.out[0]);
  const T *xp = ptr<T>(x), *yp = ptr<T>(y);
  for_each_strided<3>(a.out[0].shape(), {&x.strides(), &y.strides(), &a.out[0].strides()},
                      [&](auto off) {
                        if constexpr (std::is_floating_point_v<T>)
                          o[off[2]] = T(apply_binary<double>(op, xp[off[0]], yp[off[1]]));
                        else
                          o[off[2]] = apply_binary<T>(op, xp[off[0]], yp[off[1]]);
                      });
  return true;
}

template <class T>
bool compare(const KernelArgs& a) {
  auto op = static_cast<const BinaryParams*>(a.params)->op;
  const Tensor &x = a.in[0], &y = a.in[1];
  bool* o = ptr<bool>(a.out[0]);
  const T *xp = ptr<T>(x), *yp = ptr<T>(y);
  for_each_strided<3>(a.out[0].shape(), {&x.strides(), &y.strides(), &a.out[0].strides()},
                      [&](auto off) { o[off[2]] = apply_compare<double>(op, to_double(xp[off[0]]), to_double(yp[off[1]])); });
  return true;
}

template <class T>
bool where(const KernelArgs& a) {
  const bool* c = ptr<bool>(a.in[0]);
  const T *x = ptr<T>(a.in[1]), *y = ptr<T>(a.in[2]);
  T* o = ptr<T>(a.out[0]);
  for_each_strided<4>(a.out[0].shape(),
                      {&a.in[0].strides(), &a.in[1].strides(), &a.in[2].strides(), &a.out[0].strides()},
                      [&](auto off) { o[off[3]] = c[off[0]] ? x[off[1]] : y[off[2]]; });
  return true;
}

// Casting copy. Same dtype copies bits (exact for i64); otherwise via double,
// with f16/bf16 rounding to nearest even.
template <class S>
bool copy(const KernelArgs& a) {
  const Tensor &src = a.in[0], &dst = a.out[0];
  const S* sp = ptr<S>(src);
  visit_dtype(dst.dtype(), [&](auto tag) {
    using D = typename decltype(tag)::type;
    D* dp = ptr<D>(dst);
    for_each_strided<2>(dst.shape(), {&src.strides(), &dst.strides()},
                        [&](auto off) { dp[off[1]] = convert<S, D>(sp[off[0]]); });
  });
  return true;
}

template <class T>
bool fill(const KernelArgs& a) {
  T v = from_double<T>(static_cast<const FillParams*>(a.params)->value);
  T* o = ptr<T>(a.out[0]);
  for_each_strided<1>(a.out[0].shape(), {&a.out[0].strides()}, [&](auto off) { o[off[0]] = v; });
  return true;
}

void register_elementwise() {
  constexpr int P = backend_priority::ref;
  for (int u = 0; u <= int(UnaryOp::sign); ++u)
    register_for<float, double, Half, BFloat16, int32_t, int64_t>(unary_op_name(UnaryOp(u)), "ref", P,
        [](auto tag) -> KernelFn { return &unary<typename decltype(tag)::type>; });
  register_for<float, double, Half, BFloat16, int32_t, int64_t, uint8_t>("binary", "ref", P,
      [](auto tag) -> KernelFn { return &binary<typename decltype(tag)::type>; });
  register_for<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>("compare", "ref", P,
      [](auto tag) -> KernelFn { return &compare<typename decltype(tag)::type>; });
  register_for<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>("where", "ref", P,
      [](auto tag) -> KernelFn { return &where<typename decltype(tag)::type>; });
  register_for<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>("copy", "ref", P,
      [](auto tag) -> KernelFn { return &copy<typename decltype(tag)::type>; });
  register_for<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>("fill", "ref", P,
      [](auto tag) -> KernelFn { return &fill<typename decltype(tag)::type>; });
}

}  // namespace brisk::kern::ref

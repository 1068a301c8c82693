// Optimized elementwise kernels: threaded, contiguous inner loops the compiler
// vectorizes. They claim calls whose innermost dim has stride 0 or 1 in every
// operand (contiguous, scalar and bias-style broadcasts) and decline the rest.
#include "kernels/scalar_ops.h"
#include "kernels/strided.h"
#include "core/thread_pool.h"

namespace brisk::kern::cpu {

namespace {

// Offset of row r (row = all dims but the last) for an operand with `strides`.
inline int64_t row_offset(int64_t r, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = shape.size() - 1; d-- > 0;) {
    off += (r % shape[d]) * strides[d];
    r /= shape[d];
  }
  return off;
}

inline bool inner_ok(const Tensor& t) { return t.dim() == 0 || t.strides().back() <= 1; }

constexpr int64_t kGrain = 1 << 14;  // elements per task: below this, threads cost more than they save

}  // namespace

template <class T>
bool unary(const KernelArgs& a) {
  const Tensor& x = a.in[0];
  if (!x.is_contiguous()) return false;
  auto op = static_cast<const UnaryParams*>(a.params)->op;
  const T* xp = ptr<T>(x);
  T* o = ptr<T>(a.out[0]);
  parallel_for(0, x.numel(), kGrain, [&](int64_t lo, int64_t hi) {
    switch (op) {  // hoist the switch so each loop body is branch-free
#define BRISK_UNARY_CASE(NAME) \
  case UnaryOp::NAME:          \
    for (int64_t i = lo; i < hi; ++i) o[i] = apply_unary<T>(UnaryOp::NAME, xp[i]); \
    break;
      BRISK_UNARY_CASE(neg) BRISK_UNARY_CASE(exp) BRISK_UNARY_CASE(log) BRISK_UNARY_CASE(sqrt)
      BRISK_UNARY_CASE(rsqrt) BRISK_UNARY_CASE(abs) BRISK_UNARY_CASE(tanh)
      BRISK_UNARY_CASE(sigmoid) BRISK_UNARY_CASE(relu) BRISK_UNARY_CASE(gelu)
      BRISK_UNARY_CASE(gelu_deriv) BRISK_UNARY_CASE(sign)
#undef BRISK_UNARY_CASE
    }
  });
  return true;
}

template <class T, class F>
void binary_rows(const KernelArgs& a, F f) {
  const Tensor &x = a.in[0], &y = a.in[1];
  const Shape& shape = a.out[0].shape();
  int64_t inner = shape.empty() ? 1 : shape.back();
  int64_t rows = inner ? a.out[0].numel() / inner : 0;
  int64_t sx = x.dim() ? x.strides().back() : 0, sy = y.dim() ? y.strides().back() : 0;
  const T *xp = ptr<T>(x), *yp = ptr<T>(y);
  auto* o = ptr<std::invoke_result_t<F, T, T>>(a.out[0]);
  if (x.shape() == shape && y.shape() == shape && x.is_contiguous() && y.is_contiguous()) {
    // No broadcast, both dense: one flat loop (rows can be short, e.g. a
    // 14-wide feature map, and per-row offsets would cost more than the math).
    parallel_for(0, a.out[0].numel(), kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) o[i] = f(xp[i], yp[i]);
    });
    return;
  }
  int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1));
  parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = xp + (shape.empty() ? 0 : row_offset(r, shape, x.strides()));
      const T* yr = yp + (shape.empty() ? 0 : row_offset(r, shape, y.strides()));
      auto* orow = o + r * inner;
      // Separate loops per stride pattern so each one vectorizes.
      if (sx == 1 && sy == 1)
        for (int64_t i = 0; i < inner; ++i) orow[i] = f(xr[i], yr[i]);
      else if (sx == 1)
        for (int64_t i = 0; i < inner; ++i) orow[i] = f(xr[i], yr[0]);
      else if (sy == 1)
        for (int64_t i = 0; i < inner; ++i) orow[i] = f(xr[0], yr[i]);
      else
        for (int64_t i = 0; i < inner; ++i) orow[i] = f(xr[0], yr[0]);
    }
  });
}

template <class T>
bool binary(const KernelArgs& a) {
  if (!inner_ok(a.in[0]) || !inner_ok(a.in[1])) return false;
  switch (static_cast<const BinaryParams*>(a.params)->op) {
    case BinaryOp::add: binary_rows<T>(a, [](T x, T y) { return T(x + y); }); return true;
    case BinaryOp::sub: binary_rows<T>(a, [](T x, T y) { return T(x - y); }); return true;
    case BinaryOp::mul: binary_rows<T>(a, [](T x, T y) { return T(x * y); }); return true;
    case BinaryOp::div:
      if constexpr (std::is_floating_point_v<T>) {
        binary_rows<T>(a, [](T x, T y) { return x / y; });
        return true;
      }
      return false;  // integer division needs the ref kernel's zero check
    case BinaryOp::maximum:
      binary_rows<T>(a, [](T x, T y) { return apply_binary<T>(BinaryOp::maximum, x, y); });
      return true;
    case BinaryOp::minimum:
      binary_rows<T>(a, [](T x, T y) { return apply_binary<T>(BinaryOp::minimum, x, y); });
      return true;
    case BinaryOp::relu_grad: binary_rows<T>(a, [](T g, T y) { return y > T(0) ? g : T(0); }); return true;
    default: return false;
  }
}

template <class T>
bool compare(const KernelArgs& a) {
  if (!inner_ok(a.in[0]) || !inner_ok(a.in[1])) return false;
  switch (static_cast<const BinaryParams*>(a.params)->op) {
    case BinaryOp::eq: binary_rows<T>(a, [](T x, T y) { return x == y; }); return true;
    case BinaryOp::ne: binary_rows<T>(a, [](T x, T y) { return x != y; }); return true;
    case BinaryOp::lt: binary_rows<T>(a, [](T x, T y) { return x < y; }); return true;
    case BinaryOp::le: binary_rows<T>(a, [](T x, T y) { return x <= y; }); return true;
    case BinaryOp::gt: binary_rows<T>(a, [](T x, T y) { return x > y; }); return true;
    case BinaryOp::ge: binary_rows<T>(a, [](T x, T y) { return x >= y; }); return true;
    default: return false;
  }
}

// A transposed source (x.t().contiguous(), x.transpose(-2, -1) ...): dst
// [..., R, C] contiguous, src element [l, i, j] at base_l + i + j * ld (the
// matrix dims swapped). Copied in 16x16 tiles so each cache line of the
// source is used 16 times instead of once (the row-by-row path reads one
// element per line).
template <class T>
bool copy_transposed(const Tensor& src, Tensor& dst) {
  const Shape& shape = dst.shape();
  int64_t n = int64_t(shape.size());
  if (n < 2 || src.strides()[size_t(n - 2)] != 1) return false;
  int64_t R = shape[size_t(n - 2)], C = shape[size_t(n - 1)], ld = src.strides()[size_t(n - 1)];
  if (R < 16 || C < 16 || ld < R) return false;
  int64_t L = dst.numel() / (R * C);
  const T* sp = ptr<T>(src);
  T* dp = ptr<T>(dst);
  constexpr int64_t TB = 16;
  int64_t tiles_r = (R + TB - 1) / TB;
  parallel_for(0, L * tiles_r, std::max<int64_t>(1, kGrain / (TB * C)), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      int64_t l = t / tiles_r, i0 = (t % tiles_r) * TB, i1 = std::min(R, i0 + TB);
      const T* s = sp + row_offset(l * R, shape, src.strides());
      T* d = dp + l * R * C;
      for (int64_t j0 = 0; j0 < C; j0 += TB) {
        int64_t j1 = std::min(C, j0 + TB);
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = j0; j < j1; ++j) d[i * C + j] = s[i + j * ld];
      }
    }
  });
  return true;
}

// Copy (casting or not) into a contiguous output, row by row from any source strides.
// Into a strided destination whose rows are contiguous (a slice of a larger
// tensor: the backward of narrow/split writes there), same dtype.
template <class S>
bool copy_into_rows(const Tensor& src, const Tensor& dst) {
  const Shape& shape = dst.shape();
  if (shape.empty() || dst.strides().back() != 1 || src.dtype() != dst.dtype()) return false;
  int64_t inner = shape.back(), rows = inner ? dst.numel() / inner : 0, ss = src.strides().back();
  const S* sp = ptr<S>(src);
  S* dp = ptr<S>(dst);
  parallel_for(0, rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const S* s = sp + row_offset(r, shape, src.strides());
      S* d = dp + row_offset(r, shape, dst.strides());
      if (ss == 1) std::copy(s, s + inner, d);
      else for (int64_t i = 0; i < inner; ++i) d[i] = s[i * ss];
    }
  });
  return true;
}

template <class S>
bool copy(const KernelArgs& a) {
  const Tensor &src = a.in[0], &dst = a.out[0];
  if (!dst.is_contiguous()) return copy_into_rows<S>(src, dst);
  if (dst.dtype() == src.dtype() && copy_transposed<S>(src, a.out[0])) return true;
  const Shape& shape = dst.shape();
  int64_t inner = shape.empty() ? 1 : shape.back();
  int64_t rows = inner ? dst.numel() / inner : 0;
  int64_t ss = src.dim() ? src.strides().back() : 0;
  const S* sp = ptr<S>(src);
  int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1));
  visit_dtype(dst.dtype(), [&](auto tag) {
    using D = typename decltype(tag)::type;
    D* dp = ptr<D>(dst);
    parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const S* s = sp + (shape.empty() ? 0 : row_offset(r, shape, src.strides()));
        D* d = dp + r * inner;
        if constexpr (std::is_same_v<S, D>) {
          if (ss == 1) { std::copy(s, s + inner, d); continue; }
        }
        if (ss == 1) for (int64_t i = 0; i < inner; ++i) d[i] = convert<S, D>(s[i]);
        else if (ss == 0) std::fill(d, d + inner, convert<S, D>(s[0]));
        else for (int64_t i = 0; i < inner; ++i) d[i] = convert<S, D>(s[i * ss]);
      }
    });
  });
  return true;
}

template <class T>
bool fill(const KernelArgs& a) {
  Tensor& out = a.out[0];
  if (!out.is_contiguous()) return false;
  T v = from_double<T>(static_cast<const FillParams*>(a.params)->value);
  T* o = ptr<T>(out);
  parallel_for(0, out.numel(), kGrain, [&](int64_t lo, int64_t hi) { std::fill(o + lo, o + hi, v); });
  return true;
}

void register_elementwise() {
  constexpr int P = backend_priority::native;
  for (int u = 0; u <= int(UnaryOp::sign); ++u)
    register_for<float, double, BFloat16, Half>(unary_op_name(UnaryOp(u)), "cpu", P,
        [](auto t) -> KernelFn { return &unary<typename decltype(t)::type>; });
  // 16-bit floats: computed in f32, stored in 16 bits (half the bytes moved)
  register_for<float, double, BFloat16, Half, int32_t, int64_t, uint8_t>("binary", "cpu", P,
      [](auto t) -> KernelFn { return &binary<typename decltype(t)::type>; });
  register_for<float, double, int32_t, int64_t, uint8_t, bool>("compare", "cpu", P,
      [](auto t) -> KernelFn { return &compare<typename decltype(t)::type>; });
  register_for<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>("copy", "cpu", P,
      [](auto t) -> KernelFn { return &copy<typename decltype(t)::type>; });
  register_for<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>("fill", "cpu", P,
      [](auto t) -> KernelFn { return &fill<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cpu

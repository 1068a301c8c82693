// Elementwise CUDA kernels: unary, binary, compare, where, casting copy, fill.
// Contiguous operands take a vectorized path (16-byte loads and stores, f32
// math for 16-bit types); anything else walks strides with OffsetCalc. The
// math is kernels/scalar_ops.h's *_math functions, the CPU kernels' own; the
// checks the CPU's apply_* forms make run here on the host, before launch.
#include "kernels/cuda/common.cuh"
#include "kernels/scalar_ops.h"

namespace brisk::kern::cuda {
namespace {

// 16 bytes of T, loaded and stored as one vector.
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <class T>
constexpr int vec_width() { return 16 / int(sizeof(T)) > 0 ? 16 / int(sizeof(T)) : 1; }

// y[i] = f(x[i]) over contiguous arrays; V elements per thread per step.
template <class T, int V, class F>
__global__ void map1_contig(int64_t n, const T* __restrict__ x, T* __restrict__ y, F f) {
  int64_t nv = n / V, tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  auto xv = reinterpret_cast<const Pack<T, V>*>(x);
  auto yv = reinterpret_cast<Pack<T, V>*>(y);
  for (int64_t i = tid; i < nv; i += step) {
    Pack<T, V> p = xv[i];
#pragma unroll
    for (int j = 0; j < V; ++j) st(&p.v[j], f(ld(&p.v[j])));
    yv[i] = p;
  }
  for (int64_t i = nv * V + tid; i < n; i += step) st(&y[i], f(ld(&x[i])));
}

template <class T, int V, class F>
__global__ void map2_contig(int64_t n, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, F f) {
  int64_t nv = n / V, tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  auto av = reinterpret_cast<const Pack<T, V>*>(a);
  auto bv = reinterpret_cast<const Pack<T, V>*>(b);
  auto yv = reinterpret_cast<Pack<T, V>*>(y);
  for (int64_t i = tid; i < nv; i += step) {
    Pack<T, V> p = av[i], q = bv[i], r;
#pragma unroll
    for (int j = 0; j < V; ++j) st(&r.v[j], f(ld(&p.v[j]), ld(&q.v[j])));
    yv[i] = r;
  }
  for (int64_t i = nv * V + tid; i < n; i += step) st(&y[i], f(ld(&a[i]), ld(&b[i])));
}

// f(off) for every index, offsets from OffsetCalc.
template <int N, class F>
__global__ void map_strided(int64_t n, OffsetCalc<N> calc, F f) {
  BRISK_GRID_LOOP(i, n) {
    int64_t off[N];
    calc.get(i, off);
    f(off);
  }
}

constexpr int kThreads = 256;

template <int N, class F>
void launch_strided(const Shape& shape, const std::array<const Shape*, N>& strides, F f) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  auto calc = make_offset_calc<N>(shape, strides);
  map_strided<N><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(n, calc, f);
  BRISK_CUDA_CHECK_LAUNCH();
}

template <class T>
bool unary(const KernelArgs& a) {
  using D = dev_t<T>;
  using A = acc_t<D>;
  UnaryOp op = static_cast<const UnaryParams*>(a.params)->op;
  if constexpr (!std::is_floating_point_v<A>)
    if (!integer_unary_op(op)) return false;
  const Tensor &x = a.in[0], &y = a.out[0];
  const D* xp = dptr<D>(x);
  D* yp = dptr<D>(y);
  auto f = [op] __device__(A v) { return unary_math<A>(op, v); };
  int64_t n = x.numel();
  if (n == 0) return true;
  if (x.is_contiguous()) {
    if (aligned16(xp) && aligned16(yp))
      map1_contig<D, vec_width<D>()><<<grid_for(n / vec_width<D>() + 1, kThreads), kThreads, 0, stream()>>>(n, xp, yp, f);
    else
      map1_contig<D, 1><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(n, xp, yp, f);
    BRISK_CUDA_CHECK_LAUNCH();
    return true;
  }
  Shape ys = contiguous_strides(x.shape());
  launch_strided<2>(x.shape(), {&x.strides(), &ys},
                    [=] __device__(const int64_t(&o)[2]) { st(&yp[o[1]], f(ld(&xp[o[0]]))); });
  return true;
}

template <class T>
bool binary(const KernelArgs& a) {
  using D = dev_t<T>;
  using A = acc_t<D>;
  BinaryOp op = static_cast<const BinaryParams*>(a.params)->op;
  if constexpr (!std::is_floating_point_v<A>)
    if (op == BinaryOp::div || op == BinaryOp::pow) return false;  // host ref checks division by zero
  const Tensor &x = a.in[0], &w = a.in[1], &y = a.out[0];
  const D *xp = dptr<D>(x), *wp = dptr<D>(w);
  D* yp = dptr<D>(y);
  auto f = [op] __device__(A u, A v) { return binary_math<A>(op, u, v); };
  int64_t n = y.numel();
  if (n == 0) return true;
  if (x.is_contiguous() && w.is_contiguous()) {
    if (aligned16(xp) && aligned16(wp) && aligned16(yp))
      map2_contig<D, vec_width<D>()><<<grid_for(n / vec_width<D>() + 1, kThreads), kThreads, 0, stream()>>>(n, xp, wp, yp, f);
    else
      map2_contig<D, 1><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(n, xp, wp, yp, f);
    BRISK_CUDA_CHECK_LAUNCH();
    return true;
  }
  launch_strided<3>(y.shape(), {&x.strides(), &w.strides(), &y.strides()},
                    [=] __device__(const int64_t(&o)[3]) { st(&yp[o[2]], f(ld(&xp[o[0]]), ld(&wp[o[1]]))); });
  return true;
}

template <class T>
bool compare(const KernelArgs& a) {
  using D = dev_t<T>;
  BinaryOp op = static_cast<const BinaryParams*>(a.params)->op;
  const Tensor &x = a.in[0], &w = a.in[1], &y = a.out[0];
  const D *xp = dptr<D>(x), *wp = dptr<D>(w);
  bool* yp = dptr<bool>(y);
  launch_strided<3>(y.shape(), {&x.strides(), &w.strides(), &y.strides()}, [=] __device__(const int64_t(&o)[3]) {
    yp[o[2]] = compare_math<double>(op, to_f64(xp[o[0]]), to_f64(wp[o[1]]));
  });
  return true;
}

template <class T>
bool where(const KernelArgs& a) {
  using D = dev_t<T>;
  const bool* c = dptr<bool>(a.in[0]);
  const D *xp = dptr<D>(a.in[1]), *wp = dptr<D>(a.in[2]);
  D* yp = dptr<D>(a.out[0]);
  launch_strided<4>(a.out[0].shape(), {&a.in[0].strides(), &a.in[1].strides(), &a.in[2].strides(), &a.out[0].strides()},
                    [=] __device__(const int64_t(&o)[4]) { yp[o[3]] = c[o[0]] ? xp[o[1]] : wp[o[2]]; });
  return true;
}

// Element conversion for the casting copy: exact when the types match, via
// f32 into 16-bit types (nearest even), via double otherwise (as the ref).
template <class S, class D>
__device__ __forceinline__ D convert(S s) {
  if constexpr (std::is_same_v<S, D>) return s;
  else if constexpr (std::is_same_v<D, __half>) return __float2half_rn(float(to_f64(s)));
  else if constexpr (std::is_same_v<D, __nv_bfloat16>) return __float2bfloat16_rn(float(to_f64(s)));
  else if constexpr (std::is_same_v<D, bool>) return to_f64(s) != 0.0;
  else return D(to_f64(s));
}

template <class S, class D>
void copy_typed(const Tensor& src, const Tensor& dst) {
  const S* sp = dptr<S>(src);
  D* dp = dptr<D>(dst);
  if constexpr (std::is_same_v<S, D>) {
    if (src.is_contiguous() && dst.is_contiguous()) {
      if (dst.numel() > 0)
        BRISK_CUDA_CHECK(cudaMemcpyAsync(dp, sp, size_t(dst.numel()) * sizeof(D), cudaMemcpyDeviceToDevice, stream()));
      return;
    }
  }
  launch_strided<2>(dst.shape(), {&src.strides(), &dst.strides()},
                    [=] __device__(const int64_t(&o)[2]) { dp[o[1]] = convert<S, D>(sp[o[0]]); });
}

template <class TS>
bool copy(const KernelArgs& a) {
  visit_dtype(a.out[0].dtype(), [&](auto tag) {
    copy_typed<dev_t<TS>, dev_t<typename decltype(tag)::type>>(a.in[0], a.out[0]);
  });
  return true;
}

template <class T>
bool fill(const KernelArgs& a) {
  using D = dev_t<T>;
  double v = static_cast<const FillParams*>(a.params)->value;
  const Tensor& y = a.out[0];
  D* yp = dptr<D>(y);
  launch_strided<1>(y.shape(), {&y.strides()},
                    [=] __device__(const int64_t(&o)[1]) { yp[o[0]] = convert<double, D>(v); });
  return true;
}

}  // namespace

void register_elementwise() {
  auto fp = [](const char* op, auto make) { register_cuda<float, double, Half, BFloat16>(op, make); };
  auto all = [](const char* op, auto make) {
    register_cuda<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>(op, make);
  };
  // Unary ops are keyed by their own names ("exp", "relu", ...); one kernel reads the op from UnaryParams.
  for (int u = 0; u <= int(UnaryOp::sign); ++u) {
    const char* name = unary_op_name(UnaryOp(u));
    fp(name, [](auto t) -> KernelFn { return &unary<typename decltype(t)::type>; });
    register_cuda<int32_t, int64_t>(name, [](auto t) -> KernelFn { return &unary<typename decltype(t)::type>; });
  }
  fp("binary", [](auto t) -> KernelFn { return &binary<typename decltype(t)::type>; });
  register_cuda<int32_t, int64_t, uint8_t>("binary", [](auto t) -> KernelFn { return &binary<typename decltype(t)::type>; });
  all("compare", [](auto t) -> KernelFn { return &compare<typename decltype(t)::type>; });
  all("where", [](auto t) -> KernelFn { return &where<typename decltype(t)::type>; });
  all("copy", [](auto t) -> KernelFn { return &copy<typename decltype(t)::type>; });
  all("fill", [](auto t) -> KernelFn { return &fill<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda

// gather and scatter_add along one dim on CUDA (index contiguous i64); one
// thread per index element.
#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

// out[i..] = x[..index[i..] at dim..]: walk the index's shape with x's strides
// (dim's stride zeroed), then add index * x.stride(dim). Index values were
// range-checked by the op layer.
template <class D>
__global__ void gather_k(const D* __restrict__ x, const int64_t* __restrict__ ind, D* __restrict__ out,
                         OffsetCalc<1> xs, int64_t dstride, int64_t n) {
  BRISK_GRID_LOOP(i, n) {
    int64_t off[1];
    xs.get(i, off);
    out[i] = x[off[0] + ind[i] * dstride];
  }
}

// atomicAdd for the scatter_add dtypes: i64 through the unsigned 64-bit form
// (two's complement addition is the same bits).
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  static_assert(sizeof(int64_t) == sizeof(unsigned long long));
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

template <class T>
__global__ void scatter_add_k(const int64_t* __restrict__ ind, const T* __restrict__ src, T* __restrict__ out,
                              OffsetCalc<1> os, int64_t dstride, int64_t n) {
  BRISK_GRID_LOOP(i, n) {
    int64_t off[1];
    os.get(i, off);
    atomic_add(&out[off[0] + ind[i] * dstride], src[i]);
  }
}

// A calc over `shape` with `strides`, dim's stride zeroed. Nothing merges across
// dims here on purpose: the linear index must decompose over the full shape.
OffsetCalc<1> dim_calc(const Shape& shape, Shape strides, int64_t dim) {
  if (!strides.empty()) strides[size_t(dim)] = 0;
  OffsetCalc<1> c;
  BRISK_CHECK(shape.size() <= size_t(kMaxDims), "cuda gather/scatter_add: at most ", kMaxDims, " dims");
  c.nd = int(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    c.size[d] = shape[d];
    c.stride[0][d] = strides[d];
  }
  return c;
}

template <class T>
bool gather(const KernelArgs& a) {
  using D = dev_t<T>;
  int64_t dim = static_cast<const DimParams*>(a.params)->dim;
  const Tensor &x = a.in[0], &ind = a.in[1];
  int64_t n = ind.numel();
  if (n == 0) return true;
  gather_k<D><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
      dptr<D>(x), dptr<int64_t>(ind), dptr<D>(a.out[0]), dim_calc(ind.shape(), x.strides(), dim),
      x.dim() ? x.stride(dim) : 0, n);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

template <class T>
bool scatter_add(const KernelArgs& a) {
  int64_t dim = static_cast<const DimParams*>(a.params)->dim;
  const Tensor &ind = a.in[0], &src = a.in[1];
  const Tensor& out = a.out[0];
  int64_t n = ind.numel();
  if (n == 0) return true;
  scatter_add_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
      dptr<int64_t>(ind), dptr<T>(src), dptr<T>(out), dim_calc(ind.shape(), out.strides(), dim),
      out.dim() ? out.stride(dim) : 0, n);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace

void register_index() {
  register_cuda<float, double, Half, BFloat16, int32_t, int64_t, uint8_t, bool>(
      "gather", [](auto t) -> KernelFn { return &gather<typename decltype(t)::type>; });
  register_cuda<float, double, int32_t, int64_t>("scatter_add", [](auto t) -> KernelFn { return &scatter_add<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda

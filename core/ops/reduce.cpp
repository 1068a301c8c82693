// Reductions over any set of dims, and the softmax family. Both move the
// reduced dims last so kernels see an [M, K] matrix (a reduction over the
// leading dims of a contiguous tensor passes it as a transposed view).
#include <algorithm>

#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/ops.h"

namespace brisk {

namespace {

struct ReducePlan {
  std::vector<int64_t> dims;  // sorted, unique, wrapped
  Shape kept_shape;           // shape without reduced dims
  Shape keepdim_shape;        // reduced dims set to 1
  int64_t K = 1;              // reduced element count
};

ReducePlan plan_reduce(const Tensor& x, std::vector<int64_t> dims, const char* op) {
  ReducePlan p;
  if (dims.empty())
    for (int64_t i = 0; i < x.dim(); ++i) dims.push_back(i);
  for (auto& d : dims) d = wrap_dim(d, x.dim(), op);
  std::sort(dims.begin(), dims.end());
  BRISK_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), "op ", op,
              ": dim appears more than once in the reduction list");
  if (x.dim() == 0) dims.clear();
  p.dims = dims;
  for (int64_t i = 0; i < x.dim(); ++i) {
    bool red = std::binary_search(dims.begin(), dims.end(), i);
    if (red) {
      p.K *= x.size(i);
      p.keepdim_shape.push_back(1);
    } else {
      p.kept_shape.push_back(x.size(i));
      p.keepdim_shape.push_back(x.size(i));
    }
  }
  return p;
}

// x as the [M, K] matrix the reduce kernels take, reduced dims last. Either
// rows contiguous (the reduced dims permuted last and copied when they are not
// already), or, when the reduced dims lead a contiguous x (a bias gradient's
// sum over [N, ..., C]), x itself viewed as [K, M] and transposed: strides
// (1, M), no transposing copy.
Tensor as_rows(const Tensor& x, const ReducePlan& p) {
  int64_t M = shape_numel(p.kept_shape), r = int64_t(p.dims.size());
  if (x.is_contiguous() && r > 0 && r < x.dim() && p.dims.back() == r - 1)
    return x.detach().reshape({p.K, M}).t();
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (!std::binary_search(p.dims.begin(), p.dims.end(), i)) perm.push_back(i);
  perm.insert(perm.end(), p.dims.begin(), p.dims.end());
  Tensor xp = x.detach().permute(perm).contiguous();
  return xp.reshape({M, p.K});
}

// With round_bf16 (ReduceParams) kernels may decline: then an undefined tensor.
Tensor reduce_raw(const Tensor& x, const ReducePlan& p, ReduceOp op, DType out_dtype, bool keepdim,
                  bool round_bf16 = false) {
  static const char* names[] = {"sum", "max", "min", "argmax"};
  BRISK_CHECK(p.K > 0 || op == ReduceOp::sum, "op ", names[int(op)],
              ": cannot reduce over an empty dimension (shape ", shape_str(x.shape()), ")");
  Tensor rows = as_rows(x, p);
  Tensor out = empty({rows.size(0)}, TensorOptions(out_dtype, x.device()));
  ReduceParams rp{op, round_bf16};
  Tensor ins[1] = {rows};
  Tensor outs[1] = {out};
  if (!round_bf16)
    dispatch(opkey::reduce, x.device(), x.dtype(), KernelArgs{ins, outs, &rp});
  else if (!try_dispatch(opkey::reduce, x.device(), x.dtype(), KernelArgs{ins, outs, &rp}))
    return Tensor();
  return out.reshape(keepdim ? p.keepdim_shape : p.kept_shape);
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_defined("sum", x);
  // Integer and bool sums accumulate in i64, like torch.
  Tensor xs = is_floating(x.dtype()) || x.dtype() == DType::i64 ? x : x.to(DType::i64);
  ReducePlan p = plan_reduce(xs, std::move(dims), "sum");
  Tensor y = reduce_raw(xs, p, ReduceOp::sum, xs.dtype(), keepdim);
  Shape in_shape = x.shape(), kd = p.keepdim_shape;
  return attach_grad(y, "SumBackward", {x}, [=](const Tensor& g) {
    return std::vector{g.reshape(kd).expand(in_shape).contiguous()};
  });
}

Tensor sum_rounded_bf16(const Tensor& x, std::vector<int64_t> dims) {
  check_defined("sum_rounded_bf16", x);
  BRISK_CHECK(x.dtype() == DType::f32, "op sum_rounded_bf16: expected f32, got ", x.dtype(), " (shape ",
              shape_str(x.shape()), ")");
  ReducePlan p = plan_reduce(x, std::move(dims), "sum_rounded_bf16");
  Tensor y = reduce_raw(x, p, ReduceOp::sum, DType::f32, /*keepdim=*/false, /*round_bf16=*/true);
  if (y.defined()) return y;
  // No kernel rounds as it sums (CUDA): round first (a casting copy, nearest even).
  return sum(x.detach().to(DType::bf16).to(DType::f32), p.dims);
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_defined("mean", x);
  check_floating("mean", x);
  ReducePlan p = plan_reduce(x, dims, "mean");
  return sum(x, dims, keepdim) / double(p.K);
}

static Tensor extremum(const Tensor& x, std::vector<int64_t> dims, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  check_defined(name, x);
  ReducePlan p = plan_reduce(x, std::move(dims), name);
  Tensor y = reduce_raw(x, p, is_max ? ReduceOp::max : ReduceOp::min, x.dtype(), keepdim);
  Shape kd = p.keepdim_shape;
  std::vector<int64_t> rdims = p.dims;
  Tensor yd = y.detach();
  return attach_grad(y, is_max ? "MaxBackward" : "MinBackward", {x}, [=](const Tensor& g) {
    // Split evenly among all positions equal to the extremum.
    Tensor mask = eq(x, yd.reshape(kd)).to(g.dtype());
    Tensor count = sum(mask, rdims, true);
    return std::vector{mask * g.reshape(kd) / count};
  });
}

Tensor max(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return extremum(x, std::move(dims), keepdim, true);
}
Tensor min(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return extremum(x, std::move(dims), keepdim, false);
}

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  check_defined("argmax", x);
  if (!dim) {
    Tensor flat = x.detach().reshape({-1});
    Tensor r = argmax(flat, 0, false);
    return keepdim ? r.reshape(Shape(size_t(x.dim()), 1)) : r;
  }
  ReducePlan p = plan_reduce(x, {*dim}, "argmax");
  return reduce_raw(x, p, ReduceOp::argmax, DType::i64, keepdim);
}

Tensor var(const Tensor& x, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  check_defined("var", x);
  check_floating("var", x);
  ReducePlan p = plan_reduce(x, dims, "var");
  Tensor d = x - mean(x, dims, true);
  return sum(d * d, dims, keepdim) / double(std::max<int64_t>(p.K - correction, 0));
}

// ---------------------------------------------------------------- softmax

static Tensor softmax_impl(const Tensor& x, int64_t dim, bool log_form) {
  const char* name = log_form ? "log_softmax" : "softmax";
  check_defined(name, x);
  check_floating(name, x);
  dim = wrap_dim(dim, x.dim(), name);
  Tensor xt = x.dim() == 0 ? x.detach().reshape({1}) : x.detach().transpose(dim, -1);
  Shape ts = xt.shape();
  int64_t K = ts.back();
  Tensor rows = xt.contiguous().reshape({-1, K});
  Tensor out = empty(rows.shape(), TensorOptions(x.dtype(), x.device()));
  SoftmaxParams sp{log_form};
  Tensor ins[1] = {rows};
  Tensor outs[1] = {out};
  dispatch(opkey::softmax, x.device(), x.dtype(), KernelArgs{ins, outs, &sp});
  Tensor y = x.dim() == 0 ? out.reshape({}) : out.reshape(ts).transpose(dim, -1).contiguous();
  Tensor yd = y.detach();
  int64_t d = dim;
  if (log_form)
    return attach_grad(y, "LogSoftmaxBackward", {x}, [yd, d](const Tensor& g) {
      return std::vector{g - exp(yd) * sum(g, {d}, true)};
    });
  return attach_grad(y, "SoftmaxBackward", {x}, [yd, d](const Tensor& g) {
    return std::vector{yd * (g - sum(g * yd, {d}, true))};
  });
}

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace brisk

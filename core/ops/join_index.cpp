// Joining (cat, stack, split) and indexing (gather, scatter_add, index_select).
#include <numeric>

#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/ops.h"

namespace brisk {

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  BRISK_CHECK(!xs.empty(), "op cat: expected a non-empty list of tensors");
  const Tensor& x0 = xs[0];
  check_defined("cat", x0);
  dim = wrap_dim(dim, x0.dim(), "cat");
  BRISK_CHECK(x0.dim() > 0, "op cat: zero-dimensional tensors cannot be concatenated");
  Shape out_shape = x0.shape();
  out_shape[size_t(dim)] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    check_defined("cat", x);
    check_same_device("cat", x0, x);
    check_same_dtype("cat", x0, x);
    BRISK_CHECK(x.dim() == x0.dim(), "op cat: tensor ", i, " has rank ", x.dim(), ", expected ",
                x0.dim());
    for (int64_t d = 0; d < x.dim(); ++d)
      BRISK_CHECK(d == dim || x.size(d) == x0.size(d), "op cat: sizes must match except in dim ",
                  dim, "; tensor 0 has shape ", shape_str(x0.shape()), ", tensor ", i, " has shape ",
                  shape_str(x.shape()));
    out_shape[size_t(dim)] += x.size(dim);
  }
  Tensor out = empty(out_shape, TensorOptions(x0.dtype(), x0.device()));
  std::vector<int64_t> sizes;
  {
    NoGradGuard ng;
    int64_t off = 0;
    for (const auto& x : xs) {
      out.narrow(dim, off, x.size(dim)).copy_(x);
      off += x.size(dim);
      sizes.push_back(x.size(dim));
    }
  }
  return attach_grad(out, "CatBackward", xs, [sizes, dim](const Tensor& g) {
    std::vector<Tensor> gs;
    int64_t off = 0;
    for (int64_t n : sizes) {
      gs.push_back(g.narrow(dim, off, n));
      off += n;
    }
    return gs;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  BRISK_CHECK(!xs.empty(), "op stack: expected a non-empty list of tensors");
  dim = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (size_t i = 0; i < xs.size(); ++i) {
    BRISK_CHECK(xs[i].shape() == xs[0].shape(), "op stack: all tensors need the same shape; tensor 0 "
                "is ", shape_str(xs[0].shape()), ", tensor ", i, " is ", shape_str(xs[i].shape()));
    us.push_back(xs[i].unsqueeze(dim));
  }
  return cat(us, dim);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  BRISK_CHECK(total == x.size(dim), "op split: sizes sum to ", total, " but dim ", dim, " has size ",
              x.size(dim));
  std::vector<Tensor> out;
  int64_t off = 0;
  for (int64_t n : sizes) {
    out.push_back(x.narrow(dim, off, n));
    off += n;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  BRISK_CHECK(split_size > 0, "op split: split_size must be > 0, got ", split_size);
  dim = wrap_dim(dim, x.dim(), "split");
  std::vector<int64_t> sizes;
  for (int64_t left = x.size(dim); left > 0; left -= split_size) sizes.push_back(std::min(left, split_size));
  return split(x, sizes, dim);
}

static void check_index(const char* op, const Tensor& x, int64_t dim, const Tensor& index,
                        bool scatter) {
  check_defined(op, index);
  BRISK_CHECK(index.dtype() == DType::i64, "op ", op, ": index must be i64, got ", index.dtype());
  check_same_device(op, x, index);
  BRISK_CHECK(index.dim() == x.dim(), "op ", op, ": index rank ", index.dim(),
              " must equal input rank ", x.dim(), " (index ", shape_str(index.shape()), ", input ",
              shape_str(x.shape()), ")");
  for (int64_t d = 0; d < x.dim(); ++d)
    BRISK_CHECK(d == dim || index.size(d) <= x.size(d), "op ", op, ": index shape ",
                shape_str(index.shape()), " exceeds input shape ", shape_str(x.shape()), " at dim ", d);
  Tensor ic = index.to(kCPU).contiguous();  // range check on a host copy for device indices
  const int64_t* p = ic.data_ptr<int64_t>();
  int64_t n = x.dim() ? x.size(dim) : 1;
  for (int64_t i = 0; i < ic.numel(); ++i)
    BRISK_CHECK(p[i] >= 0 && p[i] < n, "op ", op, ": index ", p[i], " out of range for dim ", dim,
                " of size ", n, scatter ? " (scatter target)" : "");
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("gather", x);
  dim = wrap_dim(dim, x.dim(), "gather");
  check_index("gather", x, dim, index, false);
  Tensor idx = index.contiguous();
  Tensor out = empty(idx.shape(), TensorOptions(x.dtype(), x.device()));
  DimParams p{dim};
  Tensor ins[2] = {x.detach(), idx};
  Tensor outs[1] = {out};
  dispatch(opkey::gather, x.device(), x.dtype(), KernelArgs{ins, outs, &p});
  Shape xs = x.shape();
  return attach_grad(out, "GatherBackward", {x}, [=](const Tensor& g) {
    return std::vector{scatter_add(zeros(xs, TensorOptions(g.dtype(), g.device())), dim, idx, g)};
  });
}

Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  check_defined("scatter_add", self);
  check_defined("scatter_add", src);
  dim = wrap_dim(dim, self.dim(), "scatter_add");
  check_same_dtype("scatter_add", self, src);
  check_same_device("scatter_add", self, src);
  check_index("scatter_add", self, dim, index, true);
  BRISK_CHECK(index.shape() == src.shape(), "op scatter_add: index shape ", shape_str(index.shape()),
              " must equal src shape ", shape_str(src.shape()));
  Tensor out = self.detach().clone();
  Tensor idx = index.contiguous();
  DimParams p{dim};
  Tensor ins[2] = {idx, src.detach().contiguous()};
  Tensor outs[1] = {out};
  dispatch(opkey::scatter_add, self.device(), self.dtype(), KernelArgs{ins, outs, &p});
  return attach_grad(out, "ScatterAddBackward", {self, src}, [=](const Tensor& g) {
    return std::vector{g, gather(g, dim, idx)};
  });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("index_select", x);
  check_defined("index_select", index);
  BRISK_CHECK(index.dim() <= 1, "op index_select: index must be 1-d, got shape ",
              shape_str(index.shape()));
  BRISK_CHECK(x.dim() >= 1, "op index_select: input must have at least 1 dim");
  dim = wrap_dim(dim, x.dim(), "index_select");
  Tensor idx = index.reshape({-1});
  Shape view(size_t(x.dim()), 1), out_shape = x.shape();
  view[size_t(dim)] = idx.numel();
  out_shape[size_t(dim)] = idx.numel();
  // Any index value is valid along dim; other dims take every position.
  return gather(x, dim, idx.reshape(view).expand(out_shape).contiguous());
}

}  // namespace brisk

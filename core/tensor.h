// Tensor: a refcounted handle to TensorImpl (storage + shape/strides/offset +
// dtype + device + autograd fields). Copies of a Tensor alias the same impl,
// like torch.Tensor. Views share Storage and have their own impl.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/storage.h"

namespace brisk {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

class Node;
class Tensor;
// A gradient hook sees the incoming gradient and may return a replacement.
using GradHook = std::function<std::optional<Tensor>(const Tensor&)>;
// Runs after a backward has added into a leaf's .grad, with the leaf: its
// gradient is final for that backward (torch's post-accumulate-grad hook). The
// data-parallel reducer starts a bucket's all-reduce from here.
using PostAccumulateHook = std::function<void(const Tensor& leaf)>;

struct TensorImpl {
  StoragePtr storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  Device device;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;      // leaf gradient (.grad)
  std::shared_ptr<Node> grad_fn;         // null for leaves
  std::weak_ptr<Node> grad_accumulator;  // leaf's AccumulateGrad, shared by all uses
  std::vector<GradHook> hooks;           // leaf hooks (non-leaf hooks live on grad_fn)
  std::vector<std::pair<int64_t, PostAccumulateHook>> post_accumulate_hooks;  // (handle, hook)
  bool retains_grad = false;
  // Sparsity on a parameter: 1 = kept, 0 = pruned (same shape and dtype).
  // See core/mask.h; optimizers keep the invariants it implies.
  std::shared_ptr<TensorImpl> mask;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- metadata ---
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& sizes() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return int64_t(impl().shape.size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().device; }
  bool is_contiguous() const;
  size_t element_size() const { return dtype_size(dtype()); }
  const StoragePtr& storage() const { return impl().storage; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  TensorImpl* unsafe_impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // Pointer to element [0,...,0] (offset applied). Checks dtype and device.
  template <class T> T* data_ptr() const {
    check_data_access(DTypeOf<T>::value);
    return static_cast<T*>(impl().storage->data()) + impl().offset;
  }
  void* raw_data() const;  // byte pointer at offset; cpu only

  // Value of a one-element tensor as double / as T.
  double item() const;
  template <class T> T item() const { return static_cast<T>(item()); }
  std::vector<double> to_vector() const;  // all elements in logical order, as double

  // --- autograd ---
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const;
  void set_grad(const Tensor& g);
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  // backward(): grad defaults to ones for a one-element tensor; a non-scalar
  // needs an explicit gradient of the same shape.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // shares storage, no graph
  void register_hook(GradHook hook) const;
  // Leaves only; returns a handle for remove_post_accumulate_grad_hook.
  int64_t register_post_accumulate_grad_hook(PostAccumulateHook hook) const;
  void remove_post_accumulate_grad_hook(int64_t handle) const;
  void retain_grad() const;

  // --- views (share storage) ---
  Tensor view(const Shape& shape) const;     // needs compatible strides
  Tensor reshape(const Shape& shape) const;  // view when possible, else copy
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // 2-d transpose
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze(std::optional<int64_t> dim = std::nullopt) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor contiguous() const;

  // --- copies and conversions ---
  Tensor clone() const;
  Tensor to(DType t) const;
  Tensor to(Device d) const;

  // --- in-place (no autograd; error if it would corrupt a graph) ---
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(double v);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double v);

  std::string str() const;  // "Tensor(shape=[2, 3], dtype=f32, device=cpu)"

 private:
  TensorImpl& impl() const;
  void check_data_access(DType want) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);  // metadata + values

// Normalize a possibly negative dim against rank; throws naming `op`.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* op);

// --- factories ---
struct TensorOptions {
  DType dtype = DType::f32;
  Device device = kCPU;
  bool requires_grad = false;
  TensorOptions() = default;
  TensorOptions(DType t) : dtype(t) {}  // NOLINT: allows zeros({2}, DType::f64)
  TensorOptions(DType t, Device d) : dtype(t), device(d) {}
};
Tensor empty(const Shape& shape, TensorOptions opt = {});
Tensor empty_strided(const Shape& shape, const Shape& strides, TensorOptions opt = {});
Tensor zeros(const Shape& shape, TensorOptions opt = {});
Tensor ones(const Shape& shape, TensorOptions opt = {});
Tensor full(const Shape& shape, double value, TensorOptions opt = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions opt = {});
Tensor arange(int64_t end, TensorOptions opt = DType::i64);
Tensor scalar_tensor(double value, TensorOptions opt = {});
Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions opt = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);

}  // namespace brisk

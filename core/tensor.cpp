// Tensor metadata, views (with their backward formulas), factories, copies,
// casts, in-place updates and printing.
#include "core/tensor.h"

#include "core/checked.h"

#include "core/cuda.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/kernel_params.h"
#include "core/ops.h"

namespace brisk {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n = checked_mul(n, d, "shape");
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc = checked_mul(acc, std::max<int64_t>(s[i], 1), "shape");
  }
  return st;
}

int64_t wrap_dim(int64_t dim, int64_t rank, const char* op) {
  int64_t r = std::max<int64_t>(rank, 1);
  BRISK_CHECK(dim >= -r && dim < r, "op ", op, ": dim ", dim, " out of range for a tensor of rank ",
              rank, " (expected in [", -r, ", ", r - 1, "])");
  return dim < 0 ? dim + r : dim;
}

TensorImpl& Tensor::impl() const {
  BRISK_CHECK(impl_ != nullptr, "use of an undefined (empty) Tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[size_t(wrap_dim(d, dim(), "size"))]; }
int64_t Tensor::stride(int64_t d) const { return strides()[size_t(wrap_dim(d, dim(), "stride"))]; }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expect) return false;
    expect *= shape()[i];
  }
  return true;
}

void Tensor::check_data_access(DType want) const {
  BRISK_CHECK(dtype() == want, "data_ptr: tensor has dtype ", dtype(), ", requested ", want);
  BRISK_CHECK(device().type == DeviceType::cpu, "data_ptr: tensor is on ", device(),
              "; host pointers need a cpu tensor");
}

void* Tensor::raw_data() const {
  BRISK_CHECK(device().type == DeviceType::cpu, "raw_data: tensor is on ", device());
  return static_cast<char*>(storage()->data()) + offset() * int64_t(element_size());
}

double Tensor::item() const {
  BRISK_CHECK(numel() == 1, "item: tensor must have exactly one element, got shape ",
              shape_str(shape()));
  Tensor c = device().type == DeviceType::cpu ? *this : to(kCPU);
  return visit_dtype(dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return to_double(*static_cast<const T*>(c.raw_data()));
  });
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = to(kCPU).to(DType::f64).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

// ---------------------------------------------------------------- autograd API

Tensor& Tensor::requires_grad_(bool on) {
  BRISK_CHECK(!on || is_floating(dtype()), "requires_grad_: only floating tensors can require "
              "gradients, got dtype ", dtype());
  BRISK_CHECK(is_leaf() || on, "requires_grad_: cannot turn off requires_grad on a non-leaf tensor; "
              "use detach()");
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined()) {
    BRISK_CHECK(g.shape() == shape(), "set_grad: gradient shape ", shape_str(g.shape()),
                " does not match tensor shape ", shape_str(shape()));
    BRISK_CHECK(g.dtype() == dtype(), "set_grad: gradient dtype ", g.dtype(), " != tensor dtype ",
                dtype());
  }
  impl().grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  run_backward(*this, grad, retain_graph);
}

static Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  impl->device = base.device();
  return Tensor(std::move(impl));
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

void Tensor::register_hook(GradHook hook) const {
  BRISK_CHECK(requires_grad(), "register_hook: tensor does not require grad");
  if (is_leaf())
    impl().hooks.push_back(std::move(hook));
  else
    impl().grad_fn->pre_hooks.push_back(std::move(hook));
}

int64_t Tensor::register_post_accumulate_grad_hook(PostAccumulateHook hook) const {
  BRISK_CHECK(requires_grad() && is_leaf(), "register_post_accumulate_grad_hook: needs a leaf that requires grad, got ",
              str());
  static std::atomic<int64_t> next{1};
  int64_t h = next++;
  impl().post_accumulate_hooks.emplace_back(h, std::move(hook));
  return h;
}

void Tensor::remove_post_accumulate_grad_hook(int64_t handle) const {
  auto& v = impl().post_accumulate_hooks;
  std::erase_if(v, [handle](const auto& e) { return e.first == handle; });
}

void Tensor::retain_grad() const {
  BRISK_CHECK(requires_grad(), "retain_grad: tensor does not require grad");
  if (is_leaf() || impl().retains_grad) return;
  impl().retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_;
  impl().grad_fn->pre_hooks.push_back([weak](const Tensor& g) -> std::optional<Tensor> {
    if (auto t = weak.lock()) {
      if (t->grad) Tensor(t->grad).add_(g);
      else t->grad = g.clone().impl_ptr();
    }
    return std::nullopt;
  });
}

// ---------------------------------------------------------------- views

// Strides for viewing `t` as `shape` without a copy, if possible (torch's rule:
// each run of merged/split dims must be contiguous within itself).
static std::optional<Shape> view_strides(const Tensor& t, const Shape& shape) {
  if (t.numel() == 0) return contiguous_strides(shape);
  Shape old_shape, old_strides;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (t.size(i) != 1) { old_shape.push_back(t.size(i)); old_strides.push_back(t.stride(i)); }
  Shape out(shape.size());
  size_t oi = 0;
  int64_t ni = 0;
  int64_t n_new = int64_t(shape.size());
  while (ni < n_new) {
    if (shape[size_t(ni)] == 1) { out[size_t(ni)] = 1; ++ni; continue; }
    if (oi >= old_shape.size()) return std::nullopt;
    // Take a chunk of old dims that are mutually contiguous, and a chunk of new
    // dims with the same product.
    int64_t old_prod = old_shape[oi];
    size_t oj = oi;
    int64_t new_prod = shape[size_t(ni)];
    int64_t nj = ni;
    while (old_prod != new_prod) {
      if (old_prod < new_prod) {
        if (++oj >= old_shape.size()) return std::nullopt;
        if (old_strides[oj - 1] != old_strides[oj] * old_shape[oj]) return std::nullopt;
        old_prod *= old_shape[oj];
      } else {
        if (++nj >= n_new) return std::nullopt;
        new_prod *= shape[size_t(nj)];
      }
    }
    int64_t st = old_strides[oj];
    for (int64_t k = nj; k >= ni; --k) {
      out[size_t(k)] = st;
      st *= shape[size_t(k)];
    }
    oi = oj + 1;
    ni = nj + 1;
  }
  if (oi != old_shape.size()) return std::nullopt;
  return out;
}

static Shape infer_shape(Shape shape, int64_t numel, const char* op, const Shape& from) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      BRISK_CHECK(infer < 0, "op ", op, ": only one dimension can be -1, got ", shape_str(shape));
      infer = int64_t(i);
    } else {
      BRISK_CHECK(shape[i] >= 0, "op ", op, ": invalid size ", shape[i], " in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    BRISK_CHECK(known != 0 && numel % known == 0, "op ", op, ": cannot infer -1 in ",
                shape_str(shape), " for a tensor of shape ", shape_str(from));
    shape[size_t(infer)] = numel / known;
  }
  BRISK_CHECK(shape_numel(shape) == numel, "op ", op, ": shape ", shape_str(shape),
              " is invalid for a tensor of shape ", shape_str(from), " (", numel, " elements)");
  return shape;
}

Tensor Tensor::view(const Shape& shape_in) const {
  Shape shape = infer_shape(shape_in, numel(), "view", this->shape());
  auto st = view_strides(*this, shape);
  BRISK_CHECK(st.has_value(), "op view: cannot view a tensor of shape ", shape_str(this->shape()),
              " with strides ", shape_str(strides()), " as ", shape_str(shape),
              "; use reshape() (which copies)");
  Shape in_shape = this->shape();
  return attach_grad(make_view(*this, shape, *st, offset()), "ViewBackward", {*this},
                     [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  Shape shape = infer_shape(shape_in, numel(), "reshape", this->shape());
  if (view_strides(*this, shape)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  BRISK_CHECK(start <= end, "op flatten: start_dim ", start, " > end_dim ", end);
  Shape s(shape().begin(), shape().begin() + start);
  int64_t p = 1;
  for (int64_t i = start; i <= end; ++i) p *= size(i);
  s.push_back(p);
  s.insert(s.end(), shape().begin() + end + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  BRISK_CHECK(int64_t(dims.size()) == dim(), "op permute: got ", dims.size(),
              " dims for a tensor of rank ", dim());
  Shape s(dims.size()), st(dims.size());
  std::vector<int64_t> inv(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    BRISK_CHECK(inv[size_t(d)] < 0, "op permute: dim ", d, " repeated in permutation");
    inv[size_t(d)] = int64_t(i);
    s[i] = size(d);
    st[i] = stride(d);
  }
  return attach_grad(make_view(*this, s, st, offset()), "PermuteBackward", {*this},
                     [inv](const Tensor& g) { return std::vector<Tensor>{g.permute(inv)}; });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> p(static_cast<size_t>(dim()));
  std::iota(p.begin(), p.end(), 0);
  if (dim() == 0) return *this;
  std::swap(p[size_t(wrap_dim(d0, dim(), "transpose"))], p[size_t(wrap_dim(d1, dim(), "transpose"))]);
  return permute(p);
}

Tensor Tensor::t() const {
  BRISK_CHECK(dim() <= 2, "op t: expects a tensor of rank <= 2, got shape ", shape_str(shape()));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  BRISK_CHECK(step >= 1, "op slice: step must be >= 1, got ", step);
  int64_t n = size(d);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape(), st = strides();
  s[size_t(d)] = (end - start + step - 1) / step;
  st[size_t(d)] *= step;
  Shape in_shape = shape();
  return attach_grad(make_view(*this, s, st, offset() + start * stride(d)), "SliceBackward", {*this},
                     [=](const Tensor& g) {
                       Tensor z = zeros(in_shape, TensorOptions(g.dtype(), g.device()));
                       z.slice(d, start, end, step).copy_(g);
                       return std::vector<Tensor>{z};
                     });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  int64_t n = size(d);
  if (start < 0) start += n;
  BRISK_CHECK(start >= 0 && length >= 0 && start + length <= n, "op narrow: start ", start,
              " + length ", length, " exceeds size ", n, " of dim ", d, " (shape ",
              shape_str(shape()), ")");
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  int64_t n = size(d);
  BRISK_CHECK(index >= -n && index < n, "op select: index ", index, " out of range for dim ", d,
              " of size ", n);
  if (index < 0) index += n;
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& target) const {
  BRISK_CHECK(target.size() >= shape().size(), "op expand: cannot expand shape ",
              shape_str(shape()), " to fewer dims ", shape_str(target));
  size_t lead = target.size() - shape().size();
  Shape s(target.size()), st(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      BRISK_CHECK(target[i] >= 0, "op expand: invalid size -1 for new leading dim");
      s[i] = target[i];
      st[i] = 0;
      continue;
    }
    int64_t cur = shape()[i - lead];
    int64_t want = target[i] == -1 ? cur : target[i];
    BRISK_CHECK(cur == want || cur == 1, "op expand: cannot expand shape ", shape_str(shape()),
                " to ", shape_str(target), " (dim ", i, ": ", cur, " vs ", want, ")");
    s[i] = want;
    st[i] = cur == want ? strides()[i - lead] : 0;
  }
  if (s == shape()) return *this;
  Shape in_shape = shape();
  return attach_grad(make_view(*this, s, st, offset()), "ExpandBackward", {*this},
                     [in_shape](const Tensor& g) { return std::vector<Tensor>{sum_to(g, in_shape)}; });
}

Tensor Tensor::squeeze(std::optional<int64_t> d) const {
  Shape s;
  if (d) {
    int64_t dd = wrap_dim(*d, dim(), "squeeze");
    for (int64_t i = 0; i < dim(); ++i)
      if (i != dd || size(i) != 1) s.push_back(size(i));
  } else {
    for (int64_t x : shape())
      if (x != 1) s.push_back(x);
  }
  return s == shape() ? *this : view(s);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return view(s);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

// ---------------------------------------------------------------- copies

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), TensorOptions(dtype(), device()));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  return attach_grad(out, "CloneBackward", {*this},
                     [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), TensorOptions(t, device()));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (!is_floating(t)) return out;
  DType from = dtype();
  return attach_grad(out, "ToDTypeBackward", {*this},
                     [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

// Cross-device copies move contiguous bytes; a strided source is made
// contiguous on its own device first. Differentiable: the gradient goes back
// to the source device.
Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  BRISK_CHECK(device().type != DeviceType::meta && d.type != DeviceType::meta, "to: cannot copy between ",
              device(), " and ", d, " (meta tensors have no data)");
  if (d.type == DeviceType::cuda) cuda::require_device(d.index, "to(cuda)");
  Tensor src = contiguous();
  Tensor out = empty(shape(), TensorOptions(dtype(), d));
  size_t n = size_t(numel()) * element_size();
  if (n > 0) {
    const char* sp = static_cast<const char*>(src.storage()->data()) + src.offset() * int64_t(element_size());
    char* dp = static_cast<char*>(out.storage()->data()) + out.offset() * int64_t(element_size());
    if (device().type == DeviceType::cpu)
      cuda::copy_to_device(dp, sp, n, d.index);
    else if (d.type == DeviceType::cpu)
      cuda::copy_to_host(dp, sp, n, device().index);
    else
      BRISK_FAIL("to: copies between CUDA devices (", device(), " -> ", d, ") are not supported");
  }
  Device from = device();
  return attach_grad(out, "ToDeviceBackward", {*this},
                     [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

static void check_inplace(const Tensor& t, const char* op) {
  BRISK_CHECK(!(grad_enabled() && t.requires_grad()), "op ", op, ": in-place update of a tensor "
              "that requires grad would corrupt the graph; wrap it in NoGradGuard or use detach()");
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  check_same_device("copy_", *this, src);
  Tensor s = src.shape() == shape() ? src : src.detach().expand(shape());
  Tensor outs[1] = {*this};
  Tensor ins[1] = {s};
  dispatch(opkey::copy, ins, outs);
  return *this;
}

Tensor& Tensor::fill_(double v) {
  check_inplace(*this, "fill_");
  FillParams p{v};
  Tensor outs[1] = {*this};
  dispatch(opkey::fill, device(), dtype(), KernelArgs{{}, outs, &p});
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  NoGradGuard ng;
  Tensor o = alpha == 1.0 ? other : mul(other, scalar_like(other, alpha));
  return copy_(add(*this, o));
}

Tensor& Tensor::mul_(const Tensor& other) {
  check_inplace(*this, "mul_");
  NoGradGuard ng;
  return copy_(mul(*this, other));
}

Tensor& Tensor::mul_(double v) { return mul_(scalar_like(*this, v)); }

// ---------------------------------------------------------------- factories

Tensor empty_strided(const Shape& shape, const Shape& strides, TensorOptions opt) {
  BRISK_CHECK(shape.size() == strides.size(), "empty_strided: shape ", shape_str(shape),
              " and strides ", shape_str(strides), " differ in rank");
  int64_t span = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    BRISK_CHECK(shape[i] >= 0, "empty: negative dimension ", shape[i], " in shape ", shape_str(shape));
    BRISK_CHECK(strides[i] >= 0, "empty_strided: negative stride ", strides[i], " in ", shape_str(strides));
    if (shape[i] == 0) span = 0;
    else if (span) span = checked_add(span, checked_mul(shape[i] - 1, strides[i], "empty_strided"), "empty_strided");
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(checked_bytes(span, dtype_size(opt.dtype), "empty_strided"), opt.device);
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = opt.dtype;
  impl->device = opt.device;
  Tensor t(std::move(impl));
  if (opt.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor empty(const Shape& shape, TensorOptions opt) {
  return empty_strided(shape, contiguous_strides(shape), opt);
}

Tensor full(const Shape& shape, double value, TensorOptions opt) {
  bool rg = opt.requires_grad;
  opt.requires_grad = false;
  Tensor t = empty(shape, opt);
  t.fill_(value);
  if (rg) t.requires_grad_(true);
  return t;
}
Tensor zeros(const Shape& shape, TensorOptions opt) { return full(shape, 0.0, opt); }
Tensor ones(const Shape& shape, TensorOptions opt) { return full(shape, 1.0, opt); }
Tensor scalar_tensor(double value, TensorOptions opt) { return full({}, value, opt); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), TensorOptions(t.dtype(), t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), TensorOptions(t.dtype(), t.device())); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), TensorOptions(t.dtype(), t.device())); }

Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions opt) {
  BRISK_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values for shape ", shape_str(shape));
  BRISK_CHECK(opt.device.type == DeviceType::cpu, "from_vector: cpu only, got ", opt.device);
  Tensor t = empty(shape, DType::f64);
  std::copy(values.begin(), values.end(), t.data_ptr<double>());
  Tensor r = t.to(opt.dtype);
  if (opt.requires_grad) r.requires_grad_(true);
  return r;
}

Tensor arange(double start, double end, double step, TensorOptions opt) {
  BRISK_CHECK(step != 0 && std::isfinite(start) && std::isfinite(end), "arange: invalid range start=",
              start, " end=", end, " step=", step);
  int64_t n = std::max<int64_t>(0, int64_t(std::ceil((end - start) / step)));
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = start + double(i) * step;
  return from_vector(v, {n}, opt);
}

Tensor arange(int64_t end, TensorOptions opt) { return arange(0.0, double(end), 1.0, opt); }

// ---------------------------------------------------------------- printing

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(shape=" << shape_str(shape()) << ", dtype=" << dtype() << ", device=" << device();
  if (requires_grad()) os << ", requires_grad=true";
  os << ")";
  return os.str();
}

static void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& s, size_t d,
                      int64_t& pos, bool integral) {
  if (d == s.size()) {
    if (integral) os << int64_t(v[size_t(pos)]);
    else os << std::setprecision(6) << v[size_t(pos)];
    ++pos;
    return;
  }
  os << "[";
  for (int64_t i = 0; i < s[d]; ++i) {
    if (i) os << (d + 1 == s.size() ? ", " : ",\n" + std::string(d + 1, ' '));
    print_rec(os, v, s, d + 1, pos, integral);
  }
  os << "]";
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined() || t.device().type != DeviceType::cpu || t.numel() > 1000) return os << t.str();
  std::vector<double> v = t.to_vector();
  int64_t pos = 0;
  print_rec(os, v, t.shape(), 0, pos, !is_floating(t.dtype()));
  return os << "\n" << t.str();
}

}  // namespace brisk

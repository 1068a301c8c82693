// Layer constructors (PyTorch default initialization) and forwards.
#include "nn/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <typeinfo>

#include "nn/init.h"

namespace brisk::nn {

namespace {
std::string fmt_pair(const F::Pair& p) {
  if (p.h == p.w) return std::to_string(p.h);
  // appended, not "(" + std::string: GCC 12 -O3 misreads that operator's
  // inlined insert as an overflowing memcpy (-Wstringop-overflow, -Wrestrict)
  std::string s = "(";
  return s.append(std::to_string(p.h)).append(", ").append(std::to_string(p.w)).append(")");
}
// torch: kaiming_uniform_(w, a=sqrt(5)) => U(-1/sqrt(fan_in), 1/sqrt(fan_in)); same bound for bias.
void torch_default_init(const Tensor& w, const Tensor& b) {
  init::kaiming_uniform_(w, std::sqrt(5.0));
  if (b.defined()) {
    double bound = 1.0 / std::sqrt(double(init::fans(w).first));
    init::uniform_(b, -bound, bound);
  }
}
}  // namespace

Linear::Linear(int64_t in, int64_t out, bool has_bias) : in_features(in), out_features(out) {
  BRISK_CHECK(in > 0 && out > 0, "Linear: features must be positive, got in=", in, " out=", out);
  weight = register_parameter("weight", empty({out, in}));
  if (has_bias) bias = register_parameter("bias", empty({out}));
  torch_default_init(weight, bias);
}
Tensor Linear::forward(const Tensor& x) { return F::linear(x, weight, bias); }
Tensor Linear::forward_relu(const Tensor& x) { return F::linear_relu(x, weight, bias); }
std::string Linear::repr() const {
  return "Linear(" + std::to_string(in_features) + ", " + std::to_string(out_features) +
         (bias.defined() ? ")" : ", bias=false)");
}

Conv2d::Conv2d(int64_t in, int64_t out, F::Pair k, F::Pair s, F::Pair p, F::Pair d, int64_t g, bool has_bias)
    : in_channels(in), out_channels(out), kernel(k), stride(s), padding(p), dilation(d), groups(g) {
  BRISK_CHECK(in > 0 && out > 0 && g > 0 && in % g == 0 && out % g == 0, "Conv2d: channels in=", in,
              " out=", out, " must be positive and divisible by groups=", g);
  weight = register_parameter("weight", empty({out, in / g, k.h, k.w}));
  if (has_bias) bias = register_parameter("bias", empty({out}));
  torch_default_init(weight, bias);
}
Tensor Conv2d::forward(const Tensor& x) {
  return F::conv2d(x, weight, bias, stride, padding, dilation, groups);
}
Tensor Conv2d::forward_relu(const Tensor& x) {
  return F::conv2d_relu(x, weight, bias, stride, padding, dilation, groups, true);
}
std::string Conv2d::repr() const {
  std::ostringstream os;
  os << "Conv2d(" << in_channels << ", " << out_channels << ", kernel_size=" << fmt_pair(kernel)
     << ", stride=" << fmt_pair(stride) << ", padding=" << fmt_pair(padding);
  if (groups != 1) os << ", groups=" << groups;
  if (!bias.defined()) os << ", bias=false";
  os << ")";
  return os.str();
}

BatchNorm2d::BatchNorm2d(int64_t c, double eps, double momentum) : num_features(c), eps(eps), momentum(momentum) {
  weight = register_parameter("weight", ones({c}));
  bias = register_parameter("bias", zeros({c}));
  running_mean = register_buffer("running_mean", zeros({c}));
  running_var = register_buffer("running_var", ones({c}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::i64));
}
Tensor BatchNorm2d::forward(const Tensor& x) {
  BRISK_CHECK(x.dim() == 4, "BatchNorm2d: expected input [N, C, H, W], got ", shape_str(x.shape()));
  if (is_training()) {
    NoGradGuard ng;
    num_batches_tracked.add_(ones({}, DType::i64));
  }
  return F::batch_norm(x, running_mean, running_var, weight, bias, is_training(), momentum, eps);
}
std::string BatchNorm2d::repr() const { return "BatchNorm2d(" + std::to_string(num_features) + ")"; }

LayerNorm::LayerNorm(Shape shape, double eps) : normalized_shape(std::move(shape)), eps(eps) {
  weight = register_parameter("weight", ones(normalized_shape));
  bias = register_parameter("bias", zeros(normalized_shape));
}
Tensor LayerNorm::forward(const Tensor& x) { return F::layer_norm(x, normalized_shape, weight, bias, eps); }
std::string LayerNorm::repr() const { return "LayerNorm(" + shape_str(normalized_shape) + ")"; }

Dropout::Dropout(double p) : p(p) {
  BRISK_CHECK(p >= 0 && p <= 1, "Dropout: p must be in [0, 1], got ", p);
}
std::string Dropout::repr() const {
  std::ostringstream os;
  os << "Dropout(p=" << p << ")";
  return os.str();
}
std::string MaxPool2d::repr() const { return "MaxPool2d(kernel_size=" + fmt_pair(kernel) + ", stride=" + fmt_pair(stride) + ")"; }
std::string AvgPool2d::repr() const { return "AvgPool2d(kernel_size=" + fmt_pair(kernel) + ", stride=" + fmt_pair(stride) + ")"; }
std::string AdaptiveAvgPool2d::repr() const { return "AdaptiveAvgPool2d(" + fmt_pair(output_size) + ")"; }

Embedding::Embedding(int64_t v, int64_t d) : num_embeddings(v), embedding_dim(d) {
  weight = register_parameter("weight", empty({v, d}));
  init::normal_(weight, 0, 1);
}
std::string Embedding::repr() const {
  return "Embedding(" + std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim) + ")";
}

Sequential::Sequential(std::vector<ModulePtr> layers) {
  for (auto& l : layers) push_back(std::move(l));
}
void Sequential::push_back(ModulePtr m) { set_child(std::to_string(children_.size()), std::move(m)); }
void Sequential::insert(size_t i, ModulePtr m) {
  BRISK_CHECK(i <= children_.size(), "Sequential::insert: position ", i, " > size ", children_.size());
  BRISK_CHECK(m != nullptr, "Sequential::insert: null module");
  children_.insert(children_.begin() + long(i), {"", std::move(m)});
  for (size_t k = 0; k < children_.size(); ++k) children_[k].first = std::to_string(k);
}
void Sequential::erase(size_t i) {
  BRISK_CHECK(i < children_.size(), "Sequential::erase: position ", i, " >= size ", children_.size());
  children_.erase(children_.begin() + long(i));
  for (size_t k = 0; k < children_.size(); ++k) children_[k].first = std::to_string(k);
}
Tensor Sequential::forward(const Tensor& x) {
  // A layer followed by a ReLU module runs as one fused forward_relu (same
  // result; the ReLU is applied in the layer's epilogue). Layer, ReLU,
  // MaxPool2d runs as layer, pool, ReLU: max commutes with the monotone ReLU,
  // so the output and every gradient are the same (where a window's max is
  // <= 0 both give it no gradient; otherwise both route it to the same first
  // maximum), and the ReLU and its backward touch the pooled tensor only
  // (a quarter of the elements for 2x2 pooling).
  Tensor h = x;
  for (size_t i = 0; i < children_.size(); ++i) {
    Module& m = *children_[i].second;
    auto* pool = i + 2 < children_.size() && dynamic_cast<ReLU*>(children_[i + 1].second.get())
                     ? dynamic_cast<MaxPool2d*>(children_[i + 2].second.get())
                     : nullptr;
    if (pool) {
      // A plain Conv2d before a 2x2 pool: conv, pool and ReLU in one kernel,
      // which never stores the full-size conv output.
      auto* conv = typeid(m) == typeid(Conv2d) ? static_cast<Conv2d*>(&m) : nullptr;
      bool two = pool->kernel.h == 2 && pool->kernel.w == 2 && pool->stride.h == 2 && pool->stride.w == 2 &&
                 pool->padding.h == 0 && pool->padding.w == 0;
      h = conv && two ? F::conv2d_max_pool2d(h, conv->weight, conv->bias, conv->stride, conv->padding,
                                             conv->dilation, conv->groups, true)
                      : relu(pool->forward(m.forward(h)));
      i += 2;
    } else if (i + 1 < children_.size() && dynamic_cast<ReLU*>(children_[i + 1].second.get())) {
      h = m.forward_relu(h);
      ++i;
    } else {
      h = m.forward(h);
    }
  }
  return h;
}

Gate::Gate(int64_t channels) {
  gate = register_buffer("gate", ones({channels}));
  birth = register_buffer("birth", full({channels}, -1.0));
}
Tensor Gate::forward(const Tensor& x) {
  BRISK_CHECK(x.dim() >= 2 && x.size(1) == gate.numel(), "Gate: input ", shape_str(x.shape()), " does not have ",
              gate.numel(), " channels in dim 1");
  Shape s(size_t(x.dim()), 1);
  s[1] = gate.numel();
  return x * gate.reshape(s);
}

void ramp_gate(Tensor gate, const Tensor& birth, double now, double ramp_steps) {
  std::vector<double> b = birth.to_vector(), v(b.size());
  for (size_t j = 0; j < b.size(); ++j) v[j] = b[j] < 0 ? 1.0 : std::clamp((now - b[j]) / ramp_steps, 0.0, 1.0);
  NoGradGuard ng;
  gate.copy_(from_vector(v, {int64_t(v.size())}));
}

ResidualBlock::ResidualBlock(int64_t in, int64_t out, int64_t stride) {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in, out, 3, stride, 1, 1, 1, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(out));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(out, out, 3, 1, 1, 1, 1, false));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(out));
  shortcut = register_module("shortcut", std::make_shared<Sequential>());
  if (stride != 1 || in != out) {
    shortcut->push_back(std::make_shared<Conv2d>(in, out, 1, stride, 0, 1, 1, false));
    shortcut->push_back(std::make_shared<BatchNorm2d>(out));
  }
}
Tensor ResidualBlock::forward(const Tensor& x) {
  if (is_training() && skip_branch) return relu(shortcut->forward(x));
  Tensor h = relu(bn1->forward(conv1->forward(x)));
  h = bn2->forward(conv2->forward(h));
  if (!is_training() && survival < 1) h = h * survival;
  return relu(h + shortcut->forward(x));
}
std::string ResidualBlock::repr() const { return "ResidualBlock"; }

MultiheadSelfAttention::MultiheadSelfAttention(int64_t e, int64_t h, bool causal)
    : embed_dim(e), num_heads(h), causal(causal) {
  BRISK_CHECK(h > 0 && e % h == 0, "MultiheadSelfAttention: embed_dim ", e, " must be divisible by num_heads ", h);
  in_proj = register_module("in_proj", std::make_shared<Linear>(e, 3 * e));
  out_proj = register_module("out_proj", std::make_shared<Linear>(e, e));
  // torch initializes in_proj with xavier_uniform_ and zero biases
  init::xavier_uniform_(in_proj->weight);
  init::constant_(in_proj->bias, 0);
  init::constant_(out_proj->bias, 0);
}
Tensor MultiheadSelfAttention::forward(const Tensor& x) {
  BRISK_CHECK(x.dim() == 3 && x.size(2) == embed_dim, "MultiheadSelfAttention: expected input [B, T, ",
              embed_dim, "], got ", shape_str(x.shape()));
  int64_t B = x.size(0), T = x.size(1), Dh = embed_dim / num_heads;
  Tensor qkv = in_proj->forward(x);  // [B, T, 3E]
  auto heads = [&](int64_t i) {      // -> [B, H, T, Dh]
    return qkv.narrow(2, i * embed_dim, embed_dim).reshape({B, T, num_heads, Dh}).transpose(1, 2);
  };
  Tensor q = heads(0), k = heads(1), v = heads(2);
  Tensor ctx = F::scaled_dot_product_attention(q, k, v, causal);  // [B, H, T, Dh]
  return out_proj->forward(ctx.transpose(1, 2).reshape({B, T, embed_dim}));
}
std::string MultiheadSelfAttention::repr() const {
  return "MultiheadSelfAttention(" + std::to_string(embed_dim) + ", heads=" + std::to_string(num_heads) + ")";
}

}  // namespace brisk::nn

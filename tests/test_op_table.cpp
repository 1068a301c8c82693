// One table, one entry per op (in the spirit of ggml's test-backend-ops).
// Each entry drives the public function that dispatches its kernel keys
// (forward and backward) and is run:
//   - on every CPU backend registered for its keys (ref, cpu, openblas, ...),
//     forward and gradients, against the ref oracle;
//   - against its composite (the same function built from primitive ops),
//     where it has one;
//   - through a finite-difference gradient check in f64, where differentiable;
//   - on CUDA against the CPU ref, where a device exists (else SKIPPED).
// Coverage is checked: a key in core/op_keys.h without an entry fails, and a
// CPU kernel that never ran here fails unless this CPU lacks its instructions.
// Adding an op means adding its key and one entry here.
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "core/cuda.h"
#include "core/autocast.h"
#include "core/fp8.h"
#include "core/int8.h"
#include "core/op_keys.h"
#include "tests/helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;

namespace {

using V = std::vector<Tensor>;

struct OpCase {
  std::string name;
  std::vector<std::string> keys;  // every kernel key the function dispatches (forward and backward)
  std::function<V(DType)> make;   // inputs in the given floating dtype (integer inputs keep theirs)
  std::function<Tensor(const V&)> f;
  std::function<Tensor(const V&)> composite;  // optional: the same value from primitive ops
  std::map<std::string, DType> key_dtype;     // keys that run in a fixed dtype (csr_build: f32 mask; dequantize: u8)
  std::vector<int> no_grad;                   // floating inputs that are not differentiated (masks, stats)
  std::string not_differentiable;             // why there is no gradient check ("" = there is one)
  bool exact = false;                         // every backend bit-identical to the ref
  double tol_f32 = 1e-4;
};

// Uniform floats in [lo, hi) of dtype t (drawn in f64, so every dtype sees the same values).
Tensor uni(const Shape& s, DType t, double lo = -1, double hi = 1, uint64_t seed = 1) {
  Generator g(seed);
  return (rand(s, DType::f64, &g) * (hi - lo) + lo).to(t);
}

double tol_for(const OpCase& c, DType t) {
  if (c.exact) return 0;
  switch (t) {
    case DType::f64: return 1e-9;
    case DType::f32: return c.tol_f32;
    case DType::f16: return 2e-2;
    default: return 6e-2;  // bf16
  }
}

struct Result {
  Tensor out;
  V grads;  // one per input (undefined where not differentiated)
};

// Runs the entry on fresh leaves of `inputs` on `dev`, with only `backend`'s
// kernels (and the ref as fallback) when backend is not empty.
Result run(const OpCase& c, const V& inputs, const std::string& backend, Device dev = Device(DeviceType::cpu)) {
  V in;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor t = inputs[i].detach().to(dev).contiguous().clone().detach();
    bool diff = c.not_differentiable.empty() && is_floating(t.dtype()) &&
                std::find(c.no_grad.begin(), c.no_grad.end(), int(i)) == c.no_grad.end();
    if (diff) t.requires_grad_(true);
    in.push_back(t);
  }
  std::optional<ForceBackend> force;
  if (!backend.empty()) force.emplace(backend);
  Result r;
  r.out = c.f(in);
  r.grads.resize(in.size());
  // 16-bit tensors: forward only (their backward needs reductions, which run
  // in f32 under autocast; core/autocast.h).
  bool sixteen = !inputs.empty() && (inputs[0].dtype() == DType::bf16 || inputs[0].dtype() == DType::f16);
  if (c.not_differentiable.empty() && !sixteen) {
    Generator g(7);
    Tensor w = (rand(r.out.shape(), DType::f64, &g) + 0.5).to(dev);
    sum(r.out.to(DType::f64) * w).backward();  // summed in f64: 16-bit types have no reduction kernels
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i].requires_grad()) r.grads[i] = in[i].grad().to(Device(DeviceType::cpu)).to(DType::f64);
  }
  r.out = r.out.detach().to(Device(DeviceType::cpu)).to(DType::f64);
  return r;
}

void compare(const Result& got, const Result& want, double tol, const std::string& what) {
  INFO(what);
  if (tol == 0) {
    CHECK(bit_equal(got.out, want.out));
  } else {
    expect_close(got.out, want.out, tol, what + ": forward");
  }
  for (size_t i = 0; i < want.grads.size(); ++i)
    if (want.grads[i].defined()) {
      REQUIRE(got.grads[i].defined());
      expect_close(got.grads[i], want.grads[i], tol == 0 ? 0 : 4 * tol, what + ": gradient of input " + std::to_string(i));
    }
}

// The floating dtypes every key of the entry has a CPU kernel for.
std::vector<DType> dtypes_of(const OpCase& c) {
  std::vector<DType> ts;
  for (DType t : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    bool all = true;
    for (const std::string& k : c.keys)
      all = all && !kernel_backends(k, DeviceType::cpu, c.key_dtype.count(k) ? c.key_dtype.at(k) : t).empty();
    if (all) ts.push_back(t);
  }
  return ts;
}

Geom2d geom(int64_t N, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s, int64_t p) {
  Geom2d g{N, C, H, W, kh, kw, s, s, p, p, 1, 1, 0, 0};
  g.Ho = (H + 2 * p - kh) / s + 1;
  g.Wo = (W + 2 * p - kw) / s + 1;
  return g;
}

// Two optimizer steps on a copy of in[0] with gradients in[1] and 2·in[1] (the
// second step reads the state the first wrote); returns the parameter.
template <class Opt, class Options>
Tensor two_steps(const V& in, const Options& o) {
  Tensor p = in[0].detach().clone().requires_grad_(true);
  Opt opt({{"p", p}}, o);
  for (int s = 0; s < 2; ++s) {
    p.set_grad(in[1].detach().clone() * double(s + 1));
    opt.step();
  }
  return p.detach();
}

std::vector<OpCase> table() {
  std::vector<OpCase> t;
  // --- elementwise: each unary op on a contiguous and a transposed (strided) input
  struct U {
    const char* key;
    Tensor (*fn)(const Tensor&);
    double lo, hi;
    std::vector<std::string> extra;  // keys its backward dispatches
  };
  for (const U& u : std::vector<U>{{"neg", &neg, -1, 1, {"binary"}},
                                   {"exp", &exp, -1, 1, {"binary"}},
                                   {"log", &log, 0.5, 2, {"binary"}},
                                   {"sqrt", &sqrt, 0.5, 2, {"binary"}},
                                   {"rsqrt", &rsqrt, 0.5, 2, {"binary"}},
                                   {"abs", &abs, -1, 1, {"sign", "binary"}},
                                   {"tanh", &tanh, -2, 2, {"binary"}},
                                   {"sigmoid", &sigmoid, -2, 2, {"binary"}},
                                   {"relu", &relu, -1, 1, {"binary"}},
                                   {"gelu", &gelu, -2, 2, {"gelu_deriv", "binary"}}}) {
    OpCase c;
    c.name = u.key;
    c.keys = {u.key};
    c.keys.insert(c.keys.end(), u.extra.begin(), u.extra.end());
    double lo = u.lo, hi = u.hi;
    c.make = [lo, hi](DType d) { return V{uni({9, 7}, d, lo, hi, 11)}; };
    auto fn = u.fn;
    c.f = [fn](const V& in) { return fn(in[0]) + fn(in[0].t()).t() * 0.5; };  // contiguous and strided
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "sign";
    c.keys = {"sign"};
    c.make = [](DType d) { return V{uni({9, 7}, d, -1, 1, 12)}; };
    c.f = [](const V& in) { return sign(in[0]) + sign(in[0].t()).t(); };
    c.not_differentiable = "sign: zero gradient almost everywhere";
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "gelu_deriv (gelu's backward, called directly)";
    c.keys = {"gelu_deriv"};
    c.make = [](DType d) { return V{uni({9, 7}, d, -2, 2, 10)}; };
    c.f = [](const V& in) { return unary(UnaryOp::gelu_deriv, in[0]); };
    c.not_differentiable = "an internal derivative: its own derivative is never needed";
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "binary ops, broadcast";
    c.keys = {"binary"};
    c.make = [](DType d) { return V{uni({5, 1, 7}, d, -1, 1, 13), uni({1, 4, 7}, d, 0.5, 1.5, 14)}; };
    c.f = [](const V& in) {
      const Tensor &a = in[0], &b = in[1];
      return (a + b) * a - a / b + maximum(a, b) - minimum(a, b) + pow(b, a);
    };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "compare and where";
    c.keys = {"compare", "where"};
    c.make = [](DType d) { return V{uni({6, 8}, d, -1, 1, 15), uni({6, 8}, d, -1, 1, 16)}; };
    c.f = [](const V& in) {
      return where(lt(in[0], in[1]), in[0] * 2.0, in[1]) + where(ge(in[0], in[1]), in[0], in[1] * 0.5);
    };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "copy (strided)";
    c.keys = {"copy"};
    c.make = [](DType d) { return V{uni({6, 9}, d, -1, 1, 17)}; };
    c.f = [](const V& in) { return in[0].t().contiguous() * 3.0; };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "fill";
    c.keys = {"fill"};
    c.make = [](DType d) { return V{uni({4, 5}, d, -1, 1, 18)}; };
    c.f = [](const V& in) {
      Tensor k = empty(in[0].shape(), TensorOptions(in[0].dtype(), in[0].device()));
      k.fill_(2.5);
      return in[0] * k;
    };
    t.push_back(c);
  }
  // --- reductions and softmax
  {
    OpCase c;
    c.name = "reduce sum/max/min";
    c.keys = {"reduce"};
    c.make = [](DType d) { return V{uni({6, 50}, d, -1, 1, 19)}; };
    c.f = [](const V& in) { return sum(in[0], {1}) + max(in[0], {1}) + min(in[0].t(), {0}) * 0.5; };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "reduce argmax";
    c.keys = {"reduce"};
    c.make = [](DType d) { return V{uni({6, 50}, d, -1, 1, 20)}; };
    c.f = [](const V& in) { return argmax(in[0], 1).to(DType::f64); };
    c.not_differentiable = "argmax: integer result";
    c.exact = true;
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "softmax and log_softmax";
    c.keys = {"softmax"};
    c.make = [](DType d) { return V{uni({7, 12}, d, -2, 2, 21)}; };
    c.f = [](const V& in) { return softmax(in[0], 1) + log_softmax(in[0], 0) * 0.5; };
    t.push_back(c);
  }
  // --- GEMM (big enough that the vendor GEMM takes it)
  {
    OpCase c;
    c.name = "gemm, batched";
    c.keys = {"gemm"};
    c.make = [](DType d) { return V{uni({2, 48, 64}, d, -1, 1, 22), uni({64, 80}, d, -1, 1, 23)}; };
    c.f = [](const V& in) { return matmul(in[0], in[1]); };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "int8_gemm";
    c.keys = {"int8_gemm"};
    c.make = [](DType) { return V{uni({13, 70}, DType::f32, -1, 1, 24), uni({70, 37}, DType::f32, -1, 1, 25)}; };
    c.f = [](const V& in) { return int8_matmul(in[0], in[1]); };
    c.not_differentiable = "a quantized product (int8_linear's backward runs int8_gemm on the gradient)";
    c.exact = true;
    t.push_back(c);
  }
  // --- images
  {
    OpCase c;
    c.name = "im2col (backward: col2im)";
    c.keys = {"im2col", "col2im"};
    c.make = [](DType d) { return V{uni({2, 3, 6, 7}, d, -1, 1, 26)}; };
    c.f = [](const V& in) { return im2col(in[0], geom(2, 3, 6, 7, 3, 2, 2, 1)); };
    t.push_back(c);
  }
  auto pool_case = [&](const char* name, std::vector<std::string> keys, std::function<Tensor(const Tensor&)> fn) {
    OpCase c;
    c.name = name;
    c.keys = std::move(keys);
    c.make = [](DType d) { return V{uni({2, 3, 9, 8}, d, -1, 1, 27)}; };
    c.f = [fn](const V& in) { return fn(in[0]); };
    t.push_back(c);
  };
  pool_case("max_pool2d k3 s2 p1", {"max_pool2d", "max_pool2d_backward"},
            [](const Tensor& x) { return F::max_pool2d(x, 3, F::Pair(2), 1); });
  pool_case("avg_pool2d k3 s2 p1", {"avg_pool2d", "avg_pool2d_backward"},
            [](const Tensor& x) { return F::avg_pool2d(x, 3, F::Pair(2), 1); });
  pool_case("adaptive_avg_pool2d 4x3", {"adaptive_avg_pool2d", "adaptive_avg_pool2d_backward"},
            [](const Tensor& x) { return F::adaptive_avg_pool2d(x, F::Pair(4, 3)); });
  {
    OpCase c;
    c.name = "conv2d + bias + relu";
    c.keys = {"conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight"};
    c.make = [](DType d) {
      return V{uni({2, 3, 8, 8}, d, -1, 1, 28), uni({4, 3, 3, 3}, d, -0.5, 0.5, 29), uni({4}, d, -0.1, 0.1, 30)};
    };
    c.f = [](const V& in) { return F::conv2d_relu(in[0], in[1], in[2], 1, 1, 1, 1, true); };
    c.composite = [](const V& in) { return F::conv2d_composite(in[0], in[1], in[2], 1, 1, 1, 1, true); };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "conv2d + bias + 2x2 max pool, odd height";
    c.keys = {"conv2d_pool_fwd", "max_pool2d_backward", "conv2d_bwd_input", "conv2d_bwd_weight"};
    c.make = [](DType d) {
      return V{uni({2, 3, 9, 8}, d, -1, 1, 41), uni({5, 3, 3, 3}, d, -0.5, 0.5, 42), uni({5}, d, -0.1, 0.1, 43)};
    };
    c.f = [](const V& in) { return F::conv2d_max_pool2d(in[0], in[1], in[2], 1, 1); };
    c.composite = [](const V& in) { return F::max_pool2d(F::conv2d_composite(in[0], in[1], in[2], 1, 1, 1, 1, false), 2); };
    t.push_back(c);
  }
  {
    OpCase c;  // one input channel: the fused first layer's kernels (conv2d_thin_pool.h), all three
    c.name = "conv2d + bias + 2x2 max pool + relu, one input channel, odd width";
    c.keys = {"conv2d_pool_fwd", "max_pool2d_backward", "conv2d_bwd_input", "conv2d_bwd_weight"};
    c.make = [](DType d) {
      return V{uni({2, 1, 10, 9}, d, -1, 1, 47), uni({6, 1, 3, 3}, d, -0.5, 0.5, 48), uni({6}, d, -0.1, 0.1, 49)};
    };
    c.f = [](const V& in) { return F::conv2d_max_pool2d(in[0], in[1], in[2], 1, 1, 1, 1, true); };
    c.composite = [](const V& in) {
      return relu(F::max_pool2d(F::conv2d_composite(in[0], in[1], in[2], 1, 1, 1, 1, false), 2));
    };
    t.push_back(c);
  }
  {
    OpCase c;  // the ReLU after the pool, folded into the window codes (about half the windows end <= 0)
    c.name = "conv2d + bias + 2x2 max pool + relu, odd width";
    c.keys = {"conv2d_pool_fwd", "max_pool2d_backward", "conv2d_bwd_input", "conv2d_bwd_weight"};
    c.make = [](DType d) {
      return V{uni({2, 3, 8, 9}, d, -1, 1, 44), uni({5, 3, 3, 3}, d, -0.5, 0.5, 45), uni({5}, d, -0.1, 0.1, 46)};
    };
    c.f = [](const V& in) { return F::conv2d_max_pool2d(in[0], in[1], in[2], 1, 1, 1, 1, true); };
    c.composite = [](const V& in) {
      return relu(F::max_pool2d(F::conv2d_composite(in[0], in[1], in[2], 1, 1, 1, 1, false), 2));
    };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "bias_relu";
    c.keys = {"bias_relu"};
    c.make = [](DType d) { return V{uni({6, 10}, d, -1, 1, 31), uni({10}, d, -0.5, 0.5, 32)}; };
    c.f = [](const V& in) { return F::bias_relu(in[0], in[1]); };
    c.composite = [](const V& in) { return relu(in[0] + in[1]); };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "cross_entropy, label smoothing, an ignored row";
    c.keys = {"cross_entropy_fwd", "cross_entropy_bwd"};
    c.make = [](DType d) {
      // 21 classes: one full 16-lane block and a ragged one in the vectorized kernel.
      return V{uni({8, 21}, d, -2, 2, 33), from_vector({0, 20, 2, -100, 17, 3, 16, 0}, {8}, DType::i64)};
    };
    c.f = [](const V& in) { return F::cross_entropy(in[0], in[1], F::Reduction::none, -100, 0.1); };
    c.composite = [](const V& in) { return F::cross_entropy_composite(in[0], in[1], F::Reduction::none, -100, 0.1); };
    t.push_back(c);
  }
  // --- optimizer updates: two steps (the second reads the state the first wrote)
  {
    OpCase c;
    c.name = "sgd_step (momentum, nesterov, weight decay)";
    c.keys = {"sgd_step"};
    c.make = [](DType d) { return V{uni({5, 9}, d, -1, 1, 34), uni({5, 9}, d, -1, 1, 35)}; };
    auto step = [](const V& in, bool fused) {
      optim::SGDOptions o;
      o.lr = 0.1;
      o.momentum = 0.9;
      o.nesterov = true;
      o.weight_decay = 0.01;
      o.fused = fused;
      return two_steps<optim::SGD>(in, o);
    };
    c.f = [step](const V& in) { return step(in, true); };
    c.composite = [step](const V& in) { return step(in, false); };
    c.not_differentiable = "an in-place update, not part of the graph";
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "adamw_step";
    c.keys = {"adamw_step"};
    c.make = [](DType d) { return V{uni({5, 9}, d, -1, 1, 36), uni({5, 9}, d, -1, 1, 37)}; };
    auto step = [](const V& in, bool fused) {
      optim::AdamWOptions o;
      o.lr = 0.01;
      o.weight_decay = 0.1;
      o.fused = fused;
      return two_steps<optim::AdamW>(in, o);
    };
    c.f = [step](const V& in) { return step(in, true); };
    c.composite = [step](const V& in) { return step(in, false); };
    c.not_differentiable = "an in-place update, not part of the graph";
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "gather (backward: scatter_add)";
    c.keys = {"gather", "scatter_add"};
    c.make = [](DType d) {
      return V{uni({4, 6}, d, -1, 1, 38), from_vector({0, 5, 5, 1, 2, 2, 3, 0, 4, 1, 1, 1}, {4, 3}, DType::i64)};
    };
    c.f = [](const V& in) { return gather(in[0], 1, in[1]); };
    t.push_back(c);
  }
  {
    // The embedding lookup: rows of a [V, E] table by token id, ids repeated
    // (the backward adds several rows into one); 70 columns = two column blocks.
    OpCase c;
    c.name = "embedding (index_select dim 0; backward: scatter_add)";
    c.keys = {"gather", "scatter_add"};
    c.make = [](DType d) {
      return V{uni({9, 70}, d, -1, 1, 63), from_vector({3, 0, 8, 3, 3, 5, 0, 1, 8, 2, 3}, {11}, DType::i64)};
    };
    c.f = [](const V& in) { return F::embedding(in[1], in[0]); };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "batch_norm (training)";
    c.keys = {"batch_norm_fwd", "batch_norm_bwd"};
    c.make = [](DType d) {
      return V{uni({4, 3, 5, 5}, d, -1, 2, 39), zeros({3}, d), ones({3}, d), uni({3}, d, 0.5, 1.5, 40),
               uni({3}, d, -0.5, 0.5, 41)};
    };
    c.no_grad = {1, 2};  // running statistics
    c.f = [](const V& in) { return F::batch_norm(in[0], in[1], in[2], in[3], in[4], true); };
    c.composite = [](const V& in) { return F::batch_norm_composite(in[0], in[1], in[2], in[3], in[4], true); };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "layer_norm";
    c.keys = {"layer_norm_fwd", "layer_norm_bwd"};
    c.make = [](DType d) {
      return V{uni({3, 6, 70}, d, -1, 2, 42), uni({70}, d, 0.5, 1.5, 43), uni({70}, d, -0.5, 0.5, 44)};
    };
    c.f = [](const V& in) { return F::layer_norm(in[0], {70}, in[1], in[2]); };
    c.composite = [](const V& in) { return F::layer_norm_composite(in[0], {70}, in[1], in[2], 1e-5); };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "bias_gelu";
    c.keys = {"bias_gelu_fwd", "bias_gelu_bwd"};
    c.make = [](DType d) { return V{uni({5, 3, 40}, d, -4, 4, 61), uni({40}, d, -1, 1, 62)}; };
    c.f = [](const V& in) { return F::bias_gelu(in[0], in[1]); };
    c.composite = [](const V& in) { return F::bias_gelu_composite(in[0], in[1]); };
    t.push_back(c);
  }
  for (bool causal : {false, true}) {
    // Tk = 70 keys (more than one key block of the fused kernel, and a
    // ragged last one); causal also with fewer queries than keys (a KV cache).
    OpCase c;
    c.name = causal ? "scaled_dot_product_attention (causal)" : "scaled_dot_product_attention";
    c.keys = {"attention_fwd", "attention_bwd"};
    int64_t Tq = causal ? 37 : 70;
    c.make = [Tq](DType d) {
      return V{uni({2, 3, Tq, 8}, d, -1, 1, 51), uni({2, 3, 70, 8}, d, -1, 1, 52), uni({2, 3, 70, 8}, d, -1, 1, 53)};
    };
    c.f = [causal](const V& in) { return F::scaled_dot_product_attention(in[0], in[1], in[2], causal); };
    c.composite = [causal](const V& in) {
      return F::scaled_dot_product_attention_composite(in[0], in[1], in[2], causal, 1.0 / std::sqrt(8.0));
    };
    t.push_back(c);
  }
  {
    // q, k, v as transposed views of [B, T, H, D] tensors: the kernels read
    // strided heads in place (unit stride along D only). Small: the packed
    // case below covers strided rows across several key blocks.
    OpCase c;
    c.name = "scaled_dot_product_attention (strided heads)";
    c.keys = {"attention_fwd", "attention_bwd"};
    c.make = [](DType d) {
      return V{uni({2, 20, 3, 8}, d, -1, 1, 54), uni({2, 20, 3, 8}, d, -1, 1, 55), uni({2, 20, 3, 8}, d, -1, 1, 56)};
    };
    c.f = [](const V& in) {
      return F::scaled_dot_product_attention(in[0].transpose(1, 2), in[1].transpose(1, 2), in[2].transpose(1, 2));
    };
    c.composite = [](const V& in) {
      return F::scaled_dot_product_attention_composite(in[0].transpose(1, 2), in[1].transpose(1, 2),
                                                       in[2].transpose(1, 2), false, 1.0 / std::sqrt(8.0));
    };
    t.push_back(c);
  }
  {
    // A transformer block's packed projection [B, T, 3 H D], H = 3 heads of 8,
    // T = 70 (two key blocks, the last ragged): the definition splits it into
    // three [B, H, T, D] views by hand.
    OpCase c;
    c.name = "attention_packed_qkv (causal)";
    c.keys = {"attention_fwd", "attention_bwd"};
    c.make = [](DType d) { return V{uni({1, 70, 72}, d, -1, 1, 57)}; };
    c.f = [](const V& in) { return F::attention_packed_qkv(in[0], 3, true); };
    c.composite = [](const V& in) {
      auto heads = [&](int64_t i) { return in[0].narrow(2, i * 24, 24).reshape({1, 70, 3, 8}).transpose(1, 2); };
      Tensor y = F::scaled_dot_product_attention_composite(heads(0), heads(1), heads(2), true, 1.0 / std::sqrt(8.0));
      return y.transpose(1, 2).reshape({1, 70, 24});
    };
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "sparse_linear (CSR)";
    c.keys = {"csr_build", "csr_linear", "csr_linear_bwd_weight"};
    c.make = [](DType d) {
      Tensor u = uni({7, 12}, DType::f64, 0, 1, 45);
      Tensor mask = gt(u, scalar_like(u, 0.6)).to(d);  // about 40% kept
      return V{uni({5, 12}, d, -1, 1, 46), uni({7, 12}, d, -1, 1, 47), mask, uni({7}, d, -0.5, 0.5, 48)};
    };
    c.no_grad = {2};  // the mask
    c.key_dtype = {{"csr_build", DType::f32}};
    c.f = [](const V& in) { return F::sparse_linear(in[0], in[1], in[2], in[3]); };
    c.composite = [](const V& in) { return F::linear(in[0], in[1] * in[2], in[3]); };
    t.push_back(c);
  }
  // --- low-precision formats
  {
    OpCase c;
    c.name = "bf16_round";
    c.keys = {"bf16_round"};
    c.make = [](DType d) { return V{uni({7, 300}, d, -3, 3, 50)}; };
    c.f = [](const V& in) { return round_to_format(in[0], LowPrecision::bf16, Rounding::nearest, false); };
    c.not_differentiable = "a rounding (autocast passes the gradient through its own cast)";
    c.exact = true;
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "bf16_round with a bias (the folded linear's output cast)";
    c.keys = {"bf16_round"};
    c.make = [](DType d) { return V{uni({7, 300}, d, -3, 3, 52), uni({300}, d, -1, 1, 53)}; };
    c.f = [](const V& in) { return round_bf16_nearest(in[0], in[1]); };
    c.composite = [](const V& in) { return round_to_format(in[0] + in[1], LowPrecision::bf16, Rounding::nearest, false); };
    c.not_differentiable = "a rounding (autocast passes the gradient through its own cast)";
    c.exact = true;
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "stochastic_round to bf16 and f16";
    c.keys = {"stochastic_round"};
    c.make = [](DType d) { return V{uni({9, 40}, d, -2, 2, 51)}; };
    c.f = [](const V& in) {
      Generator g1(5), g2(6);
      return stochastic_round(in[0], DType::bf16, &g1).to(DType::f32) + stochastic_round(in[0], DType::f16, &g2).to(DType::f32);
    };
    c.not_differentiable = "a rounding";
    c.exact = true;
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "fp8 quantize / dequantize / round (e4m3, e5m2)";
    c.keys = {"fp8_quantize", "fp8_dequantize", "fp8_round"};
    c.key_dtype = {{"fp8_dequantize", DType::u8}};
    c.make = [](DType d) { return V{uni({11, 60}, d, -300, 300, 52)}; };
    c.f = [](const V& in) {
      Tensor codes = fp8_quantize(in[0], Fp8Format::e4m3, 0.5);
      return fp8_dequantize(codes, Fp8Format::e4m3, 0.5) + fp8_round(in[0], Fp8Format::e5m2, 4.0) +
             fp8_round(in[0], Fp8Format::e4m3, 0.5) * 0.25;
    };
    // the one-pass rounding equals dequantize(quantize(x)) exactly
    c.composite = [](const V& in) {
      return fp8_dequantize(fp8_quantize(in[0], Fp8Format::e4m3, 0.5), Fp8Format::e4m3, 0.5) +
             fp8_dequantize(fp8_quantize(in[0], Fp8Format::e5m2, 4.0), Fp8Format::e5m2, 4.0) +
             fp8_dequantize(fp8_quantize(in[0], Fp8Format::e4m3, 0.5), Fp8Format::e4m3, 0.5) * 0.25;
    };
    c.not_differentiable = "a rounding";
    c.exact = true;
    t.push_back(c);
  }
  {
    OpCase c;
    c.name = "int8 per-row quantize / dequantize";
    c.keys = {"int8_quantize_rows", "int8_dequantize_rows"};
    c.key_dtype = {{"int8_dequantize_rows", DType::u8}};
    c.make = [](DType d) {
      Tensor x = uni({13, 70}, DType::f64, -1, 1, 53) * exp(uni({13, 1}, DType::f64, -3, 3, 54));
      x.narrow(0, 4, 1).fill_(0.0);  // an all-zero row: scale 0
      return V{x.to(d)};
    };
    c.f = [](const V& in) {
      Int8Rows q = quantize_rows_int8(in[0]);
      return dequantize_rows_int8(q) + q.scale.reshape({-1, 1});
    };
    c.not_differentiable = "a rounding";
    c.exact = true;
    t.push_back(c);
  }
  return t;
}

// (key, backend, dtype) of every CPU kernel that ran during the table.
std::set<std::tuple<std::string, std::string, DType>>& ran() {
  static std::set<std::tuple<std::string, std::string, DType>> r;
  return r;
}

}  // namespace

TEST_CASE("op table: every op key has an entry, every entry names real keys", "[op_table]") {
  std::set<std::string> covered;
  for (const OpCase& c : table())
    for (const std::string& k : c.keys) {
      INFO(c.name << ": key " << k);
      CHECK(find_op_key(k) != nullptr);
      covered.insert(k);
    }
  for (const OpKeyInfo& k : op_keys()) {
    INFO("op key '" << k.key << "' (core/op_keys.h) has no entry in tests/test_op_table.cpp");
    CHECK(covered.count(k.key) == 1);
  }
  // Every registered kernel sits in a file named after its key's stem
  // (register_kernel enforces it; this shows the table the docs describe).
  for (const KernelRegistration& r : kernel_registrations()) {
    const OpKeyInfo* k = find_op_key(r.op);
    REQUIRE(k != nullptr);
    std::string file = std::filesystem::path(r.file).stem().string();
    INFO(r.op << " / " << r.backend << " from " << r.file);
    CHECK((file == k->stem || file.ends_with(std::string("_") + k->stem)));
  }
}

TEST_CASE("op table: every CPU backend against the ref, the composite, and finite differences", "[op_table]") {
  for (const OpCase& c : table()) {
    for (DType t : dtypes_of(c)) {
      INFO(c.name << " in " << t);
      V inputs = c.make(t);
      Result want = run(c, inputs, "ref");
      std::set<std::string> backends;
      for (const std::string& k : c.keys)
        for (const std::string& b : kernel_backends(k, DeviceType::cpu, t))
          if (b != "ref") backends.insert(b);
      for (const std::string& b : backends) {
        reset_op_stats();
        set_op_profiling(true);
        Result got = run(c, inputs, b);
        set_op_profiling(false);
        bool took = false;
        for (const OpStat& s : op_stats())
          if (s.backend == b && std::find(c.keys.begin(), c.keys.end(), s.op) != c.keys.end()) {
            ran().insert({s.op, b, t});
            took = true;
          }
        if (took) compare(got, want, tol_for(c, t), c.name + ": backend " + b + " vs ref");
      }
      // the ref runs too (checked below with the rest)
      reset_op_stats();
      set_op_profiling(true);
      run(c, inputs, "ref");
      set_op_profiling(false);
      for (const OpStat& s : op_stats())
        if (std::find(c.keys.begin(), c.keys.end(), s.op) != c.keys.end()) ran().insert({s.op, s.backend, t});
      if (c.composite && (t == DType::f64 || t == DType::f32)) {
        OpCase comp = c;
        comp.f = c.composite;
        compare(run(comp, inputs, ""), run(c, inputs, ""), c.exact ? 0 : tol_for(c, t),
                c.name + ": fused vs composite");
      }
    }
    if (c.not_differentiable.empty()) {
      V in64 = c.make(DType::f64);
      std::vector<Tensor> leaves;
      for (size_t i = 0; i < in64.size(); ++i) {
        Tensor x = in64[i].detach().contiguous().clone().detach();
        if (is_floating(x.dtype()) && std::find(c.no_grad.begin(), c.no_grad.end(), int(i)) == c.no_grad.end())
          x.requires_grad_(true);
        leaves.push_back(x);
      }
      gradcheck(c.name, c.f, leaves);
    }
  }
  // Every optimized or vendor CPU kernel for a floating dtype ran above (and
  // was compared with the ref), unless this CPU lacks its instructions.
  // (Integer kernels: tests/test_kernels.cpp.)
  for (const KernelRegistration& r : kernel_registrations()) {
    bool floating_dtype = r.dtype == DType::f32 || r.dtype == DType::f64 || r.dtype == DType::bf16 || r.dtype == DType::f16;
    if (r.dev != DeviceType::cpu || r.backend == "ref" || !floating_dtype) continue;
    if (ran().count({r.op, r.backend, r.dtype})) continue;
    INFO(r.op << " / " << r.backend << " / " << r.dtype << " (" << r.file << ")");
    if (r.op == std::string("int8_gemm") && r.backend == "cpu" && !int8_vnni_supported()) {
      WARN("SKIPPED: " << r.op << " / " << r.backend << ": this CPU lacks AVX512-VNNI");
      continue;
    }
    FAIL_CHECK("an optimized CPU kernel never ran in the op table (add a case it takes)");
  }
}

TEST_CASE("op table: CUDA against the CPU ref", "[op_table][cuda]") {
  if (!cuda::available()) {
    WARN("SKIPPED: no CUDA device (CUDA " << (cuda::compiled() ? "compiled in" : "not compiled")
                                          << "); the op table did not run on CUDA");
    return;
  }
  const Device dev(DeviceType::cuda, 0);
  for (const OpCase& c : table()) {
    for (DType t : {DType::f64, DType::f32}) {
      bool any = false;
      for (const std::string& k : c.keys) any = any || !kernel_backends(k, DeviceType::cuda, t).empty();
      if (!any || c.name == "int8_gemm" || c.name.starts_with("sparse_linear")) continue;  // CPU-only ops
      INFO(c.name << " on cuda in " << t);
      V inputs = c.make(t);
      compare(run(c, inputs, "", dev), run(c, inputs, "ref"), c.exact ? 0 : 10 * tol_for(c, t), c.name + ": cuda vs ref");
    }
  }
}

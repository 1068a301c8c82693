// Fused kernels against the unfused composites they override, and their
// native (threaded) kernels against the ref kernels: bias + ReLU, softmax +
// cross-entropy (forward and backward), the one-pass SGD and AdamW updates.
#include <optional>

#include "core/autocast.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "nn/layers.h"
#include "optim/optimizer.h"
#include "tests/helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;

namespace {
// Runs fn under `backend` (checking it claimed `op`) and under ref.
template <class Fn>
void native_vs_ref(const std::string& op, Fn fn, double tol) {
  Tensor r, n;
  {
    ForceBackend fb("ref");
    r = fn();
  }
  {
    ForceBackend fb("cpu");
    n = fn();
    CHECK(last_backend(op) == "cpu");
  }
  expect_close(n, r, tol, op + " cpu vs ref");
}
}  // namespace

TEST_CASE("fused: bias_relu equals relu(y + b), forward and backward", "[fused]") {
  for (Shape s : {Shape{7, 5}, Shape{300, 129}, Shape{2, 3, 17}}) {
    Tensor y0 = randn(s), b0 = randn({s.back()}), r = randn(s);
    auto run = [&](bool fused) {
      Tensor y = y0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      Tensor o = fused ? F::bias_relu(y, b) : relu(y + b);
      sum(o * r).backward();
      return cat({o.reshape({-1}), y.grad().reshape({-1}), b.grad()});
    };
    expect_close(run(true), run(false), dtype_tol(DType::f32, s[0]), "bias_relu vs composite");
    native_vs_ref("bias_relu", [&] { return run(true); }, dtype_tol(DType::f32, s[0]));
  }
  gradcheck("bias_relu", [](const std::vector<Tensor>& in) { return F::bias_relu(in[0], in[1] + 0.05); },
            {uniform64({4, 6}, -1, 1, 7), uniform64({6}, -1, 1, 8)});
  CHECK_THROWS_WITH(F::bias_relu(randn({3, 4}), randn({5})), Catch::Contains("bias_relu"));
}

TEST_CASE("fused: linear_relu and Sequential's Linear+ReLU fusion equal the unfused modules", "[fused]") {
  Tensor x = randn({9, 6});
  auto lin = std::make_shared<nn::Linear>(6, 4);
  Tensor a = lin->forward_relu(x), b = relu(lin->forward(x));
  CHECK(bit_equal(a, b));
  // Shapes past the GEMM's thread and block splits, a 3-d input: on the native
  // f32 GEMM the bias and ReLU are its epilogue (no bias_relu pass), with the
  // values and gradients of the unfused layer, bit for bit; that layer's ops
  // have finite-difference checks of their own.
  for (Shape xs : {Shape{130, 70}, Shape{3, 50, 300}}) {
    int64_t in = xs.back(), out = in == 70 ? 517 : 40;
    manual_seed(5);
    auto l = std::make_shared<nn::Linear>(in, out);
    Tensor x0 = randn(xs), r = randn([&] { Shape s = xs; s.back() = out; return s; }());
    auto run = [&](bool fused) {
      Tensor xi = x0.clone().requires_grad_();
      l->zero_grad();
      set_op_profiling(true);
      reset_op_stats();
      Tensor y = fused ? F::linear_relu(xi, l->weight, l->bias) : relu(F::linear(xi, l->weight) + l->bias);
      bool bias_relu_pass = false;
      for (auto& s : op_stats()) bias_relu_pass |= s.op == "bias_relu";
      set_op_profiling(false);
      if (fused) CHECK_FALSE(bias_relu_pass);
      sum(y * r).backward();
      return cat({y.reshape({-1}), xi.grad().reshape({-1}), l->weight.grad().reshape({-1}), l->bias.grad()});
    };
    CHECK(bit_equal(run(true), run(false)));
  }
  nn::Sequential seq({lin, std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(4, 2)});
  Tensor s = seq.forward(x);
  Tensor u = seq[2]->forward(relu(lin->forward(x)));
  expect_close(s, u, dtype_tol(DType::f32, 6), "Sequential fused vs unfused");
}

TEST_CASE("fused: linear's bias is the GEMM's epilogue, with the values and gradients of y + b", "[fused]") {
  // On the native f32 GEMM, linear(x, w, b) adds b to each block of y in the
  // GEMM (no separate add pass): the same bits as linear(x, w) + b, forward
  // and backward, past the GEMM's thread and block splits, for a 3-d input and
  // for a bias that takes no gradient (then it gets none).
  for (Shape xs : {Shape{130, 70}, Shape{3, 50, 300}, Shape{5, 3}}) {
    int64_t in = xs.back(), out = in == 70 ? 517 : in == 3 ? 10 : 40;
    manual_seed(6);
    Tensor x0 = randn(xs), w0 = randn({out, in}), b0 = randn({out});
    Tensor r = randn([&] { Shape s = xs; s.back() = out; return s; }());
    for (bool bias_grad : {true, false}) {
      auto run = [&](bool fused) {
        Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone();
        if (bias_grad) b.requires_grad_();
        set_op_profiling(true);
        reset_op_stats();
        Tensor y = fused ? F::linear(x, w, b) : F::linear(x, w) + b;
        bool add_pass = false;
        for (auto& s : op_stats()) add_pass |= s.op == "binary";
        set_op_profiling(false);
        CHECK(add_pass == !fused);
        sum(y * r).backward();
        CHECK(b.grad().defined() == bias_grad);
        return cat({y.reshape({-1}), x.grad().reshape({-1}), w.grad().reshape({-1}),
                    bias_grad ? b.grad() : zeros({0})});
      };
      INFO("input " << shape_str(xs) << ", bias grad " << bias_grad);
      CHECK(bit_equal(run(true), run(false)));
    }
  }
  gradcheck("linear with bias", [](const std::vector<Tensor>& in) { return F::linear(in[0], in[1], in[2]); },
            {uniform64({3, 4}, -1, 1, 9), uniform64({5, 4}, -1, 1, 10), uniform64({5}, -1, 1, 11)});
}

TEST_CASE("fused: Sequential runs conv, ReLU, max-pool as conv, pool, ReLU with the same output and gradients", "[fused]") {
  // Windows whose max is negative, zero or tied exercise where the two orders
  // could differ. A 2x2 pool (pad 0) runs the conv and the pool as one kernel
  // (conv2d_pool_fwd); with pad 1 the pool runs on its own. Both must equal
  // each module's own forward bit for bit, in f32 and under bf16 autocast on
  // each bf16 GEMM kernel the CPU has (20 output channels: the AMX path).
  Tensor x0 = randn({3, 2, 9, 8});
  x0.data_ptr<float>()[5] = 0.f;
  struct Restore {
    std::string prev = kern::cpu::bf16_gemm_kernel();
    ~Restore() { kern::cpu::set_bf16_gemm_kernel(prev); }
  } restore;
  for (const char* mode : {"f32", "amx", "avx512bf16"}) {
    bool bf16 = std::string(mode) != "f32";
    if (bf16 && !kern::cpu::bf16_gemm_kernel_supported(mode)) {
      WARN("SKIPPED: conv + pool under bf16 on the " << mode << " kernel: this machine lacks it");
      continue;
    }
    if (bf16) kern::cpu::set_bf16_gemm_kernel(mode);
    for (int pad : {0, 1}) {
      manual_seed(11);
      auto conv = std::make_shared<nn::Conv2d>(2, 20, 3, 1, 1);
      auto pool = std::make_shared<nn::MaxPool2d>(2, std::nullopt, pad);
      nn::Sequential seq({conv, std::make_shared<nn::ReLU>(), pool});
      Tensor r = randn({3, 20, pad ? 5 : 4, pad ? 5 : 4});
      auto run = [&](bool fused) {
        Tensor x = x0.clone().requires_grad_();
        conv->zero_grad();
        std::optional<AutocastGuard> ac;
        if (bf16) ac.emplace(AutocastPolicy{LowPrecision::bf16});
        // Unfused: each module's own forward, ReLU on the full conv output.
        Tensor y = fused ? seq.forward(x) : pool->forward(relu(conv->forward(x)));
        if (fused && pad == 0) CHECK(last_backend("conv2d_pool_fwd") == "cpu");
        sum(y * r).backward();
        return cat({y.reshape({-1}), x.grad().reshape({-1}), conv->weight.grad().reshape({-1}), conv->bias.grad()});
      };
      Tensor a = run(true), b = run(false);
      INFO(mode << " pad " << pad);
      CHECK(bit_equal(a, b));
    }
  }
}

TEST_CASE("fused: cross_entropy equals log_softmax + NLL, all reductions, smoothing, ignore_index", "[fused]") {
  Tensor logits0 = randn({37, 10}) * 3;
  Tensor target = randint(0, 10, {37}, DType::i64);
  Tensor t_ign = target.clone();
  t_ign.data_ptr<int64_t>()[3] = -100;
  t_ign.data_ptr<int64_t>()[20] = -100;
  for (auto red : {F::Reduction::none, F::Reduction::mean, F::Reduction::sum})
    for (double ls : {0.0, 0.2})
      for (Tensor t : {target, t_ign}) {
        auto run = [&](bool fused) {
          Tensor x = logits0.clone().requires_grad_();
          Tensor l = fused ? F::cross_entropy(x, t, red, -100, ls) : F::cross_entropy_composite(x, t, red, -100, ls);
          Tensor r = l.dim() ? randn(l.shape(), DType::f32, nullptr) * 0 + 1.5 : l * 0 + 1.5;
          sum(l * r).backward();
          return cat({l.reshape({-1}), x.grad().reshape({-1})});
        };
        INFO("reduction " << int(red) << " smoothing " << ls);
        expect_close(run(true), run(false), dtype_tol(DType::f32, 37 * 10), "cross_entropy fused vs composite");
        native_vs_ref("cross_entropy_bwd", [&] { return run(true); }, dtype_tol(DType::f32, 10));
      }
  // Large logits: the fused kernel is as stable as log_softmax.
  Tensor big = from_vector({1000.0, 0.0, -1000.0}, {1, 3});
  CHECK(F::cross_entropy(big, from_vector({1}, {1}, DType::i64)).item() == Approx(1000.0));
}

TEST_CASE("fused: SGD and AdamW steps equal the tensor-op composites over many steps", "[fused]") {
  using namespace brisk::optim;
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor w0 = randn({70001}, dt);  // > one task, so the threaded kernel splits it
    std::vector<Tensor> grads;
    for (int s = 0; s < 4; ++s) grads.push_back(randn({70001}, dt));
    // momentum 0: the update without a buffer (each option is its own loop in the kernel)
    auto sgd = [&](bool fused, bool nesterov, double momentum = 0.9) {
      Tensor w = w0.clone().requires_grad_();
      SGD opt({{"w", w}}, {0.05, momentum, nesterov ? 0.0 : 0.1, 1e-3, nesterov, fused});
      for (auto& g : grads) {
        w.set_grad(g.clone());
        opt.step();
      }
      if (momentum == 0) return w.detach().clone();
      return cat({w.detach(), opt.state().at("w").at("momentum_buffer")});
    };
    auto adamw = [&](bool fused) {
      Tensor w = w0.clone().requires_grad_();
      AdamW opt({{"w", w}}, {0.01, 0.9, 0.99, 1e-8, 0.05, fused});
      for (auto& g : grads) {
        w.set_grad(g.clone());
        opt.step();
      }
      return cat({w.detach(), opt.state().at("w").at("exp_avg"), opt.state().at("w").at("exp_avg_sq")});
    };
    double tol = dtype_tol(dt, 16);
    expect_close(sgd(true, false), sgd(false, false), tol, "sgd fused vs composite");
    expect_close(sgd(true, true), sgd(false, true), tol, "sgd nesterov fused vs composite");
    expect_close(sgd(true, false, 0.0), sgd(false, false, 0.0), tol, "sgd without momentum fused vs composite");
    native_vs_ref("sgd_step", [&] { return sgd(true, false, 0.0); }, tol);
    expect_close(adamw(true), adamw(false), tol, "adamw fused vs composite");
    native_vs_ref("sgd_step", [&] { return sgd(true, true); }, tol);
    native_vs_ref("adamw_step", [&] { return adamw(true); }, tol);
  }
}

TEST_CASE("fused: layer_norm kernel equals the composite, forward and backward", "[fused]") {
  // The fused op (the CUDA kernels' contract; here its cpu ref) against mean/var/rsqrt.
  for (bool affine : {true, false}) {
    INFO("affine " << affine);
    Tensor x = uniform64({6, 4, 5}, -2, 2, 1);
    Tensor w = affine ? uniform64({4, 5}, 0.5, 1.5, 2) : Tensor(), b = affine ? uniform64({4, 5}, -1, 1, 3) : Tensor();
    Tensor yf = F::layer_norm_fused(x, {4, 5}, w, b, 1e-5);
    REQUIRE(yf.defined());
    Tensor yc = F::layer_norm_composite(x, {4, 5}, w, b, 1e-5);
    expect_close(yf, yc, 1e-12, "forward");
    Tensor r = uniform64({6, 4, 5}, 0, 1, 4).detach();
    std::vector<Tensor> ins{x};
    if (affine) ins.insert(ins.end(), {w, b});
    auto grads = [&](bool fused) {
      for (auto& t : ins) t.set_grad(Tensor());
      Tensor y = fused ? F::layer_norm_fused(x, {4, 5}, w, b, 1e-5) : F::layer_norm_composite(x, {4, 5}, w, b, 1e-5);
      sum(y * r).backward();
      std::vector<Tensor> g;
      for (auto& t : ins) g.push_back(t.grad());
      return g;
    };
    auto gf = grads(true), gc = grads(false);
    for (size_t i = 0; i < gf.size(); ++i) expect_close(gf[i], gc[i], 1e-10, "gradient " + std::to_string(i));
  }
}

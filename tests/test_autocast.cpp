// Autocast and the precision method: what runs in the low format and what
// stays f32, gradient formats, SwitchBack int8 linear, master weights vs
// stochastically rounded bf16 weights, loss scaling in the trainer.
#include "core/autocast.h"
#include "core/fp8.h"
#include "core/int8.h"
#include "efficiency/method.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "nn/functional.h"
#include "tests/gemm_paths.h"
#include "tests/train_helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;

static bool bf16_exact(const Tensor& t) { return bit_equal(t.detach().to(DType::bf16).to(DType::f32), t.detach()); }

TEST_CASE("autocast: bf16 linear and conv2d compute on bf16 values, other ops stay f32", "[autocast]") {
  manual_seed(1);
  Tensor x = randn({6, 20}).requires_grad_(), w = randn({7, 20}).requires_grad_(), b = randn({7});
  Tensor y;
  {
    AutocastGuard ac({LowPrecision::bf16});
    y = F::linear(x, w, b);
    CHECK(autocast_enabled());
    Tensor p = softmax(x, 1);  // not a matmul: f32 values
    CHECK_FALSE(bf16_exact(p));
  }
  CHECK_FALSE(autocast_enabled());
  Tensor xr = x.detach().to(DType::bf16).to(DType::f32), wr = w.detach().to(DType::bf16).to(DType::f32);
  Tensor want = F::linear(xr, wr, b).to(DType::bf16).to(DType::f32);
  CHECK(bf16_exact(y));
  expect_close(y, want, 0, "bf16 linear = rounded inputs, rounded output");
  sum(y * 3.3).backward();
  CHECK(bf16_exact(x.grad()));  // a bf16 tensor's gradient is bf16
  CHECK(bf16_exact(w.grad()));
  CHECK_FALSE(bit_equal(F::linear(x.detach(), w.detach(), b), y));  // off: full f32

  Tensor cx = randn({2, 3, 8, 8}).requires_grad_(), cw = randn({4, 3, 3, 3});
  Tensor cy;
  {
    AutocastGuard ac({LowPrecision::bf16});
    cy = F::conv2d(cx, cw, Tensor(), 1, 1);
  }
  CHECK(bf16_exact(cy));
  expect_close(cy, F::conv2d(cx.detach().to(DType::bf16).to(DType::f32), cw.to(DType::bf16).to(DType::f32),
                              Tensor(), 1, 1).to(DType::bf16).to(DType::f32), 0, "bf16 conv");
  CHECK_THROWS_WITH(AutocastGuard({LowPrecision::fp8, Rounding::stochastic}), Catch::Contains("bf16 and fp16"));
  CHECK_THROWS_WITH(parse_low_precision("fp4"), Catch::Contains("known: bf16, fp16, fp8, int8"));
}

TEST_CASE("autocast: bf16 casts folded into conv2d give the values and gradients of the explicit casts", "[autocast]") {
  struct Case { int64_t C, H, O, k, pad; bool relu, pool = false; };
  // a thin first layer (C*k*k = 9: the dot-product weight gradient), the cnn's
  // second layer shape (y^T forward), a pointwise conv (x feeds the GEMM
  // directly), 16 in and out channels (with AVX512-BF16 the direct kernels
  // take the forward, the input gradient and the weight gradient), and the
  // last two again with a 2x2 max pool fused behind the conv (the pooled
  // kernels; unfused, the pool runs after the explicit casts' conv).
  std::vector<Case> cases{{1, 10, 8, 3, 1, true},        {6, 7, 16, 3, 1, false},     {5, 6, 4, 1, 0, true},
                          {16, 8, 16, 3, 1, true},       {16, 8, 16, 3, 1, true, true}, {1, 10, 8, 3, 1, true, true}};
  struct FoldOff {
    bool prev = autocast_fold_casts();
    ~FoldOff() { set_autocast_fold_casts(prev); }
  } restore;
  for (const Case& c : cases) {
    manual_seed(5);
    Tensor x0 = randn({3, c.C, c.H, c.H}), w0 = randn({c.O, c.C, c.k, c.k}), b0 = randn({c.O});
    int64_t side = (c.H + 2 * c.pad - c.k + 1) / (c.pool ? 2 : 1);
    Tensor r = randn({3, c.O, side, side});
    std::string last_node;
    auto run = [&](bool fold) {
      set_autocast_fold_casts(fold);
      Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      Tensor y;
      {
        AutocastGuard ac({LowPrecision::bf16});
        y = c.pool ? F::conv2d_max_pool2d(x, w, b, 1, c.pad, 1, 1, c.relu) : F::conv2d_relu(x, w, b, 1, c.pad, 1, 1, c.relu);
        last_node = y.grad_fn()->name();
        sum(y * r).backward();
      }
      CHECK(bf16_exact(y));
      CHECK(bf16_exact(x.grad()));
      CHECK(bf16_exact(w.grad()));
      return cat({y.reshape({-1}), x.grad().reshape({-1}), w.grad().reshape({-1}), b.grad()});
    };
    std::string what = "conv C" + std::to_string(c.C) + " k" + std::to_string(c.k) + (c.pool ? " pooled" : "");
    Tensor explicit_casts = run(false);
    if (c.pool)
      CHECK(last_node.rfind("Conv2d", 0) != 0);  // the pool (or its ReLU) after the explicit casts' conv
    else
      CHECK(last_node == "AutocastCastBackward");  // the output cast is its own node
    // On every CPU the native kernel takes the folded casts: with bf16 dot
    // products, or (no AVX512-BF16) with the f32 GEMM on rounded copies.
    Tensor folded = run(true);
    CHECK(last_node.rfind("Conv2d", 0) == 0);  // the conv node itself: no cast passes
    CHECK(last_backend(c.pool ? "conv2d_pool_fwd" : "conv2d_fwd") == "cpu");
    INFO(what);
    CHECK(bit_equal(folded, explicit_casts));
    // The ref kernel honours the folded casts too (double sums: close, not equal).
    Tensor ref_out;
    {
      ForceBackend fb("ref");
      ref_out = run(true);
      CHECK(last_backend(c.pool ? "conv2d_pool_fwd" : "conv2d_fwd") == "ref");
      CHECK(last_node.rfind("Conv2d", 0) == 0);
    }
    expect_close(folded, ref_out, dtype_tol(DType::bf16, c.C * c.k * c.k * 3), what + " folded, native vs ref");
  }
}

TEST_CASE("autocast: bf16 casts folded into linear give the values and gradients of the explicit casts", "[autocast]") {
  struct Restore {
    bool fold = autocast_fold_casts();
    ~Restore() { set_autocast_fold_casts(fold); }
  } restore;
  // Every GEMM path: AMX tiles, AVX512-BF16 dot products, and the f32 kernel
  // on rounded copies (an ISA without bf16 dot products).
  for_each_gemm_path({{"avx512", "amx"}, {"avx512", "avx512bf16"}, {"avx2"}}, [&](const GemmPath&) {
    for (int variant = 0; variant < 3; ++variant) {  // 0: bias, 1: no bias, 2: bias and a frozen weight
      bool bias = variant != 1, wgrad = variant != 2;
      manual_seed(7);
      Tensor x0 = randn({2, 5, 40}), w0 = randn({24, 40}), b0 = randn({24}), r = randn({2, 5, 24});
      std::string node;
      auto run = [&](bool fold) {
        set_autocast_fold_casts(fold);
        Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(wgrad), b = b0.clone().requires_grad_();
        Tensor y;
        {
          AutocastGuard ac({LowPrecision::bf16});
          y = F::linear(x, w, bias ? b : Tensor());
          node = y.grad_fn()->name();
          sum(y * r).backward();
        }
        CHECK(bf16_exact(y));
        CHECK(bf16_exact(x.grad()));
        std::vector<Tensor> parts{y.reshape({-1}), x.grad().reshape({-1})};
        if (wgrad) {
          CHECK(bf16_exact(w.grad()));
          parts.push_back(w.grad().reshape({-1}));
        }
        if (bias) parts.push_back(b.grad());
        return cat(parts);
      };
      INFO("variant " << variant);
      Tensor explicit_casts = run(false);
      CHECK(node == "AutocastCastBackward");
      Tensor folded = run(true);
      CHECK(node == "LinearBf16Backward");  // one node: no cast passes
      CHECK(bit_equal(folded, explicit_casts));
      // Independently: y = bf16(rounded x @ rounded w^T + b) with f64 sums
      // (within one bf16 step where an f32 sum lands on a rounding boundary),
      // and the bias gradient = the column sums of the rounded r.
      Tensor xr = x0.to(DType::bf16).to(DType::f64), wr = w0.to(DType::bf16).to(DType::f64);
      Tensor want = matmul(xr, wr.t()) + (bias ? b0.to(DType::f64) : zeros({24}, TensorOptions(DType::f64)));
      expect_close(folded.narrow(0, 0, 240).reshape({2, 5, 24}).to(DType::f64), want, 1.0 / 128, "folded y");
      if (bias)
        expect_close(folded.narrow(0, folded.size(0) - 24, 24).to(DType::f64),
                     sum(r.to(DType::bf16).to(DType::f64).reshape({10, 24}), {0}), 1e-5, "bias gradient");
    }
  });
  CHECK_THROWS_WITH(round_bf16_nearest(randn({3, 4}), randn({5})), Catch::Contains("does not match x"));
}

TEST_CASE("autocast: fp8 rounds inputs to E4M3 and gradients to E5M2, per-tensor scaled", "[autocast]") {
  manual_seed(2);
  Tensor x = randn({5, 16}).requires_grad_();
  Tensor c = randn({5, 16});
  Tensor xc;
  {
    AutocastGuard ac({LowPrecision::fp8});
    xc = autocast_cast(x, CastRole::activation);
  }
  double amax = max(abs(x.detach())).item(), s4 = fp8_max(Fp8Format::e4m3) / amax;
  expect_close(xc, fp8_dequantize(fp8_quantize(x.detach(), Fp8Format::e4m3, s4), Fp8Format::e4m3, s4), 0, "e4m3");
  sum(xc * c).backward();  // the gradient arriving at xc is c
  double gmax = max(abs(c)).item(), s5 = fp8_max(Fp8Format::e5m2) / gmax;
  expect_close(x.grad(), fp8_dequantize(fp8_quantize(c, Fp8Format::e5m2, s5), Fp8Format::e5m2, s5), 0, "e5m2 grad");
  CHECK(max_rel_err(x.grad(), c) > 1e-3);  // E5M2 really is coarse
  CHECK(max_rel_err(x.grad(), c) < 0.13);  // ... within 2^-3
}

TEST_CASE("autocast: int8 linear is SwitchBack (int8 forward and input grad, f32 weight grad)", "[autocast]") {
  manual_seed(3);
  Tensor x = randn({9, 40}).requires_grad_(), w = randn({6, 40}).requires_grad_(), b = randn({6});
  Tensor y;
  {
    AutocastGuard ac({LowPrecision::int8});
    y = F::linear(x, w, b);
  }
  Tensor ref = F::linear(x.detach(), w.detach(), b);
  CHECK(bit_equal(y.detach(), int8_matmul(x.detach(), w.detach().t()) + b));
  // per element: |err| <= sum_k (|x_ik| e_w + |w_jk| e_x + e_x e_w), e = max|row| / 254
  Tensor ex = max(abs(x.detach()), {1}, true) / 254.0, ew = max(abs(w.detach()), {1}, true) / 254.0;
  Tensor bound = matmul(abs(x.detach()), ew.t().expand({40, 6})) + matmul(ex.expand({9, 40}), abs(w.detach()).t()) +
                 matmul(ex.expand({9, 40}), ew.t().expand({40, 6}));
  CHECK(max(abs(y.detach() - ref) - bound * 1.001).item() <= 1e-5);
  Tensor g = randn({9, 6});
  sum(y * g).backward();
  CHECK(bit_equal(w.grad(), matmul(g.t(), x.detach())));  // weight gradient in f32, exactly
  CHECK(bit_equal(x.grad(), int8_matmul(g, w.detach())));  // input gradient through int8
  // g by rows (9 x 6), w by input columns (6 x 40): the same error bound as forward
  Tensor eg = max(abs(g), {1}, true) / 254.0, ec = max(abs(w.detach()), {0}, true) / 254.0;  // [9,1], [1,40]
  Tensor gbound = matmul(abs(g), ec.expand({6, 40})) + matmul(eg.expand({9, 6}), abs(w.detach())) +
                  matmul(eg.expand({9, 6}), ec.expand({6, 40}));
  CHECK(max(abs(x.grad() - matmul(g, w.detach())) - gbound * 1.001).item() <= 1e-5);
}

TEST_CASE("precision: stochastic rounding keeps weight decay moving bf16 weights, nearest loses it", "[autocast]") {
  Tensor w_near = ones({4000}), w_sr = ones({4000});
  Generator g(7);
  for (int step = 0; step < 50; ++step) {  // w <- w (1 - lr wd), lr wd = 1e-4: far below half an ulp of 1 (2^-9)
    w_near = round_to_format(w_near * (1 - 1e-4), LowPrecision::bf16, Rounding::nearest, false);
    w_sr = round_to_format(w_sr * (1 - 1e-4), LowPrecision::bf16, Rounding::stochastic, false, &g);
  }
  CHECK(max(abs(w_near - 1.0)).item() == 0.0);  // every decay step rounded away
  double mean_sr = mean(w_sr).item();
  CHECK(mean_sr == Approx(std::pow(1 - 1e-4, 50)).epsilon(2e-4));  // tracks the exact decay on average
  CHECK(bf16_exact(w_sr));
}

TEST_CASE("precision: the method trains with bf16, fp8, int8, master or bf16 weights, exact resume", "[autocast][train]") {
  for (std::string spec : {"precision:dtype=bf16", "precision:dtype=fp8", "precision:dtype=int8",
                           "precision:dtype=bf16,rounding=stochastic,weights=bf16"}) {
    INFO(spec);
    TrainConfig c = small_config("brisk_precision");
    c.methods = {spec};
    brisk::train::Trainer t(c, brisk::efficiency::make_methods);
    t.fit();
    auto m = read_jsonl(c.out + "/metrics.jsonl");
    CHECK(m.back()["test_acc"].get<double>() > 0.8);
    CHECK(m.back()["skipped_steps"] == 0);
    CHECK_FALSE(m.back().contains("loss_scale"));  // scaling is for fp16
    bool all_bf16 = true;
    for (auto& [n, p] : t.model().named_parameters()) all_bf16 = all_bf16 && bf16_exact(p);
    CHECK(all_bf16 == (spec.find("weights=bf16") != std::string::npos));  // master weights stay f32
  }
  TrainConfig r = small_config("brisk_precision_resume");
  r.methods = {"precision:dtype=bf16,rounding=stochastic,weights=bf16"};
  check_resume_bit_exact(r, {5});
  CHECK_THROWS_WITH(brisk::efficiency::make_method("precision:dtype=int8,rounding=stochastic"),
                    Catch::Contains("stochastic applies to bf16 and fp16"));
  CHECK_THROWS_WITH(brisk::efficiency::make_method("precision:dtype=fp4"), Catch::Contains("unknown low-precision"));
}

// Injects an inf into one gradient at one step (a hook on a weight).
class InfAt : public brisk::train::Callback {
 public:
  int64_t at;
  TensorMap before_params, before_state;
  explicit InfAt(int64_t s) : at(s) {}
  std::string name() const override { return "inf_at"; }
  void on_fit_start(brisk::train::Trainer& t) override {
    Tensor w = t.model().named_parameters()[0].second;
    auto* tr = &t;
    w.register_hook([tr, this](const Tensor& g) -> std::optional<Tensor> {
      if (tr->state().step != at) return std::nullopt;
      return g * std::numeric_limits<double>::infinity();
    });
  }
  void on_batch_start(brisk::train::Trainer& t) override {
    if (t.state().step != at) return;
    for (auto& [n, p] : t.model().named_parameters()) before_params[n] = p.detach().clone();
    for (auto& [n, st] : t.optimizer().state())
      for (auto& [k, v] : st) before_state[n + "/" + k] = v.clone();
  }
  void on_batch_end(brisk::train::Trainer& t) override {
    if (t.state().step != at + 1) return;  // step was incremented
    for (auto& [n, p] : t.model().named_parameters()) CHECK(bit_equal(p, before_params.at(n)));
    for (auto& [n, st] : t.optimizer().state())
      for (auto& [k, v] : st) CHECK(bit_equal(v, before_state.at(n + "/" + k)));
  }
};

TEST_CASE("precision: fp16 scales the loss, an injected inf skips the step untouched and halves the scale", "[autocast][train]") {
  TrainConfig c = small_config("brisk_fp16");
  c.methods = {"precision:dtype=fp16"};
  c.eval_every = 4;
  c.momentum = 0.9;
  brisk::train::Trainer t(c, brisk::efficiency::make_methods);
  auto* inj = new InfAt(6);
  t.add_callback(std::unique_ptr<brisk::train::Callback>(inj));
  t.fit();
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  CHECK(m[0]["loss_scale"] == 65536.0);
  CHECK(m[0]["skipped_steps"] == 0);
  CHECK(m[1]["loss_scale"] == 32768.0);  // halved once
  CHECK(m[1]["skipped_steps"] == 1);
  CHECK(m.back()["test_acc"].get<double>() > 0.8);
  CHECK(inj->before_params.size() > 0);
  TrainConfig r = small_config("brisk_fp16_resume");
  r.methods = {"precision:dtype=fp16"};
  check_resume_bit_exact(r, {7});
}

TEST_CASE("autocast: the one-pass bf16 rounding equals the cast through bf16, specials included", "[autocast]") {
  Tensor x = randn({10000}) * 1000.0;
  std::vector<double> sp{0.0, -0.0, 1.0 + 1.0 / 256, 1.0 + 3.0 / 256, 3.4e38, -3.4e38, 1e-40, -1e-45,
                         std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  Tensor all = cat({x, from_vector(sp, {int64_t(sp.size())})}, 0);
  Tensor want = all.to(DType::bf16).to(DType::f32);
  CHECK(bit_equal(round_to_format(all, LowPrecision::bf16, Rounding::nearest, false), want));
  Tensor nan = from_vector({std::nan("")}, {1});
  CHECK(std::isnan(round_to_format(nan, LowPrecision::bf16, Rounding::nearest, false).item()));
}

// Attention under bf16 autocast, on AMX tiles (kernels/cpu/attention_amx.cpp)
// and on the tiled f32 kernels' bf16 GEMM, against an f64 recomputation of
// the definition on the bf16-rounded q, k, v and output gradient. Both
// kernels also round the probabilities and the score gradients to bf16
// (2^-9 relative) as the products' operands: both are up to 1e-2 off here
// (a query with few keys sums few rounded products), hence 3e-2; a wrong
// offset, stride or mask is off by O(1). Shapes: gpt-small's heads (T 128,
// D 32); ragged T and D below a tile (37, 20) on strided heads; fewer
// queries than keys (a KV cache) with D past two tiles (72); one token.
TEST_CASE("autocast: bf16 attention on AMX tiles and on the bf16 GEMM matches the definition on rounded operands",
          "[autocast][attention]") {
  struct Case {
    int64_t B, H, Tq, Tk, D;
    bool causal, strided;
  };
  for (Case c : {Case{2, 4, 128, 128, 32, true, false}, Case{2, 3, 37, 37, 20, true, true},
                 Case{1, 2, 19, 45, 72, true, false}, Case{1, 2, 19, 45, 72, false, false},
                 Case{1, 1, 1, 1, 8, true, false}}) {
    INFO("B " << c.B << " H " << c.H << " Tq " << c.Tq << " Tk " << c.Tk << " D " << c.D << " causal " << c.causal
              << " strided " << c.strided);
    manual_seed(7);
    auto make = [&](int64_t T) { return c.strided ? randn({c.B, T, c.H, c.D}) : randn({c.B, c.H, T, c.D}); };
    auto heads = [&](const Tensor& t) { return c.strided ? t.transpose(1, 2) : t; };
    auto rounded = [](const Tensor& t) { return t.detach().to(DType::bf16).to(DType::f64).requires_grad_(); };
    Tensor q = make(c.Tq), k = make(c.Tk), v = make(c.Tk), go = randn({c.B, c.H, c.Tq, c.D});
    double scale = 1.0 / std::sqrt(double(c.D));
    Tensor q64 = rounded(q), k64 = rounded(k), v64 = rounded(v);
    Tensor o64 = F::scaled_dot_product_attention_composite(heads(q64), heads(k64), heads(v64), c.causal, scale);
    sum(o64 * go.to(DType::bf16).to(DType::f64)).backward();
    for_each_gemm_path({{"avx512", "amx"}, {"avx512", "avx512bf16"}}, [&](const GemmPath& path) {
      Tensor qf = q.detach().requires_grad_(), kf = k.detach().requires_grad_(), vf = v.detach().requires_grad_();
      Tensor o;
      {
        AutocastGuard ac({LowPrecision::bf16});  // forward and backward, as the precision method runs a step
        o = F::scaled_dot_product_attention(heads(qf), heads(kf), heads(vf), c.causal);
        sum(o * go).backward();
      }
      expect_close(o.to(DType::f64), o64.detach(), 3e-2, "output");
      expect_close(qf.grad().to(DType::f64), q64.grad(), 3e-2, "dq");
      expect_close(kf.grad().to(DType::f64), k64.grad(), 3e-2, "dk");
      expect_close(vf.grad().to(DType::f64), v64.grad(), 3e-2, "dv");
      if (c.Tk > 1) CHECK(max_rel_err(o.to(DType::f64), o64.detach()) > 0);  // bf16 P: not the f64 values
      if (std::string(path.bf16) == "amx") {  // the dispatch ran the AMX kernel: its direct output, bit for bit
        Tensor qh = heads(q), kh = heads(k), vh = heads(v), od = empty({c.B, c.H, c.Tq, c.D}),
               lse = empty({c.B * c.H * c.Tq});
        kern::cpu::attention_fwd_amx(kern::HeadSlices<const float>(qh), kern::HeadSlices<const float>(kh),
                                     kern::HeadSlices<const float>(vh), kern::HeadSlices<float>(od),
                                     lse.data_ptr<float>(), {c.B * c.H, c.Tq, c.Tk, c.D, float(scale), c.causal});
        CHECK(bit_equal(od, o.contiguous()));
      }
    });
  }
}

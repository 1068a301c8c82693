// CUDA backend. Cases tagged [cuda] that need a device say "SKIPPED" visibly
// and return when none is found; the rest (registration coverage, errors
// without a device, backend switches) run everywhere.
// Parity: every op runs on the cpu and on cuda from the same inputs, forward
// and backward (sum(f(x) * r) with a fixed random r), and must agree within a
// tolerance derived from the dtype.
#include <set>

#include "core/autocast.h"
#include "core/cuda.h"
#include "core/op_keys.h"
#if BRISK_HAS_CUDA
#include "kernels/cuda/gemm_wgmma.h"
#endif
#include "efficiency/method.h"
#include "models/models.h"
#include "nn/functional.h"
#include "optim/optimizer.h"
#include "tests/helpers.h"
#include "tests/lm_helpers.h"
#include "tests/train_helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;

namespace {

const Device kCuda(DeviceType::cuda, 0);

bool skip_without_cuda() {
  if (cuda::available()) return false;
  WARN("SKIPPED: no CUDA device found (CUDA " << (cuda::compiled() ? "compiled in" : "not compiled")
                                             << "); this CUDA test did not run");
  return true;
}

Tensor leaf(const Tensor& t, Device d) {
  Tensor c = t.detach().to(d).contiguous().clone().detach();
  if (is_floating(c.dtype())) c.requires_grad_(true);
  return c;
}

// Runs f on cpu and cuda copies of `inputs`; compares outputs and the
// gradients of every floating input.
void parity(const std::string& name, const std::function<Tensor(const std::vector<Tensor>&)>& f,
            const std::vector<Tensor>& inputs, double tol) {
  INFO("cuda parity: " << name);
  std::vector<Tensor> xc, xg;
  for (auto& t : inputs) {
    xc.push_back(leaf(t, kCPU));
    xg.push_back(leaf(t, kCuda));
  }
  Tensor yc = f(xc), yg = f(xg);
  REQUIRE(yg.device() == kCuda);
  REQUIRE(yc.dtype() == yg.dtype());
  expect_close(yg.to(kCPU), yc, tol, name + " forward");
  if (!yc.requires_grad()) return;
  Generator gen(7);
  Tensor r = rand(yc.shape(), TensorOptions(yc.dtype()), &gen) + 0.5;
  sum(yc * r).backward();
  sum(yg * r.to(kCuda)).backward();
  for (size_t i = 0; i < xc.size(); ++i) {
    if (!xc[i].requires_grad()) continue;
    INFO("gradient of input " << i);
    REQUIRE(xg[i].grad().defined());
    expect_close(xg[i].grad().to(kCPU), xc[i].grad(), tol, name + " backward");
  }
}

Tensor randu(const Shape& s, DType t = DType::f32, uint64_t seed = 1, double lo = -1, double hi = 1) {
  Generator g(seed);
  return (rand(s, DType::f64, &g) * (hi - lo) + lo).to(t);
}

}  // namespace

// ---------------------------------------------------------------- everywhere

TEST_CASE("cuda: every primitive op has a hand-written CUDA kernel", "[cuda]") {
  if (!cuda::compiled()) {
    WARN("SKIPPED: brisk was built without CUDA; nothing is registered for cuda");
    CHECK(kernel_backends("gemm", DeviceType::cuda, DType::f32).empty());
    return;
  }
  // Every op the cpu registers for f32, except the ones documented as cpu-only
  // (CSR sparse kernels) and the fused conv overrides (cuda runs their
  // composite, im2col + gemm, unless cuDNN is selected).
  const std::set<std::string> cpu_only{"csr_linear", "csr_linear_bwd_weight", "conv2d_fwd", "conv2d_bwd_input",
                                       "conv2d_bwd_weight", "conv2d_pool_fwd"};
  for (const char* op : {"exp", "relu", "gelu_deriv", "sign", "binary", "compare", "where", "copy", "fill", "reduce", "gemm", "softmax",
                         "im2col", "col2im", "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
                         "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "bias_relu", "cross_entropy_fwd",
                         "cross_entropy_bwd", "sgd_step", "adamw_step", "gather", "scatter_add", "batch_norm_fwd",
                         "batch_norm_bwd", "layer_norm_fwd", "layer_norm_bwd", "csr_linear", "conv2d_fwd",
                         "conv2d_pool_fwd"}) {
    INFO("op " << op);
    CHECK_FALSE(kernel_backends(op, DeviceType::cpu, DType::f32).empty());
    auto b = kernel_backends(op, DeviceType::cuda, DType::f32);
    bool native = std::find(b.begin(), b.end(), "cuda") != b.end();
    CHECK(native != (cpu_only.count(op) > 0));
  }
  // Every dtype the cpu has a kernel for, cuda has one too (a missing one
  // stops a run on the card with "no kernel", as an i64 sum once stopped
  // cross-entropy), except the ones docs/cuda.md lists as cpu-only: the
  // stochastic rounding and the fp8/int8 quantization kernels (bf16's
  // nearest rounding has one), int8 GEMM, the CSR
  // kernels, and the fused conv overrides (cuda's conv is the composite, or
  // cuDNN).
  const std::set<std::string> cpu_only_key{
      "stochastic_round", "fp8_quantize", "fp8_dequantize", "fp8_round", "int8_quantize_rows",
      "int8_dequantize_rows", "int8_gemm", "csr_build", "csr_linear", "csr_linear_bwd_weight", "conv2d_fwd",
      "conv2d_bwd_input", "conv2d_bwd_weight", "conv2d_pool_fwd"};
  for (const auto& k : op_keys()) {
    if (cpu_only_key.count(k.key)) continue;
    for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
      INFO("op " << k.key << " in " << t);
      if (!kernel_backends(k.key, DeviceType::cpu, t).empty())
        CHECK_FALSE(kernel_backends(k.key, DeviceType::cuda, t).empty());
    }
  }
  // 16-bit: elementwise and GEMM (tensor cores); cuBLAS as the vendor GEMM.
  for (DType t : {DType::f16, DType::bf16}) {
    auto g = kernel_backends("gemm", DeviceType::cuda, t);
    CHECK(std::find(g.begin(), g.end(), "cuda") != g.end());
    CHECK(std::find(g.begin(), g.end(), "cublas") != g.end());
    CHECK_FALSE(kernel_backends("binary", DeviceType::cuda, t).empty());
    CHECK_FALSE(kernel_backends("tanh", DeviceType::cuda, t).empty());
  }
}

TEST_CASE("cuda: without a device, every entry point says so", "[cuda]") {
  if (cuda::available()) {
    CHECK_NOTHROW(zeros({2}, TensorOptions(DType::f32, kCuda)));
    CHECK_THROWS_WITH(zeros({2}, TensorOptions(DType::f32, Device(DeviceType::cuda, 99))),
                      Catch::Contains("cuda:99 does not exist"));
    return;
  }
  WARN("no CUDA device: checking the errors a user gets instead");
  CHECK_THROWS_WITH(zeros({2}, TensorOptions(DType::f32, kCuda)), Catch::Contains("CUDA") && Catch::Contains("cpu"));
  CHECK_THROWS_AS(ones({3}).to(kCuda), brisk::Error);
  CHECK_THROWS_WITH(rand({3}, TensorOptions(DType::f32, kCuda)), Catch::Contains("cuda:0"));
  CHECK_THROWS_WITH(rand({3}, TensorOptions(DType::f32, Device(DeviceType::meta))), Catch::Contains("meta"));
  CHECK_THROWS_AS(cuda::Stream(), brisk::Error);
  CHECK_THROWS_AS(cuda::Event(), brisk::Error);
  CHECK(cuda::allocator_stats().requests == 0);
  TrainConfig c = small_config("brisk_cuda_nodev");
  c.device = "cuda";
  CHECK_THROWS_WITH(train::Trainer(c, brisk::efficiency::make_methods), Catch::Contains("--device cuda") && Catch::Contains("use --device cpu"));
}

TEST_CASE("cuda: a kernel never sees a tensor from another device", "[cuda]") {
  // meta tensors stand in for a second device on any machine
  Tensor a = ones({4}), m = empty({4}, TensorOptions(DType::f32, Device(DeviceType::meta)));
  Tensor out = empty({4});
  BinaryParams p{BinaryOp::add};
  Tensor ins[2] = {a, m};
  Tensor outs[1] = {out};
  CHECK_THROWS_WITH(dispatch("binary", kCPU, DType::f32, KernelArgs{ins, outs, &p}),
                    Catch::Contains("op binary") && Catch::Contains("meta"));
}

TEST_CASE("cuda: GEMM and convolution backends switch at run time", "[cuda]") {
  CHECK_THROWS_WITH(set_gemm_backend("mkl"), Catch::Contains("unknown GEMM backend 'mkl'"));
  CHECK_THROWS_WITH(set_conv_backend("winograd"), Catch::Contains("unknown convolution backend"));
  if (!cuda::compiled()) {
    CHECK_THROWS_WITH(set_gemm_backend("cublas"), Catch::Contains("without CUDA"));
    return;
  }
  set_gemm_backend("cublas");
  CHECK(gemm_backend() == "cublas");
  CHECK(kernel_backends("gemm", DeviceType::cuda, DType::f32).front() == "cublas");
  matmul(ones({8, 8}), ones({8, 8}));
  CHECK(last_backend("gemm") == "cpu");  // the cpu keeps its native kernel
  set_gemm_backend("native");
  CHECK(kernel_backends("gemm", DeviceType::cuda, DType::f32).front() == "cuda");
  CHECK(kernel_backends("gemm", DeviceType::cpu, DType::f32).front() == "cpu");
#ifdef BRISK_HAS_CUDNN
  set_conv_backend("cudnn");
  CHECK(kernel_backends("conv2d_fwd", DeviceType::cuda, DType::f32).front() == "cudnn");
  CHECK(kernel_backends("batch_norm_fwd", DeviceType::cuda, DType::f32).front() == "cudnn");
  set_conv_backend("native");
  CHECK(kernel_backends("batch_norm_fwd", DeviceType::cuda, DType::f32).front() == "cuda");
#endif
}

// ---------------------------------------------------------------- on a device

TEST_CASE("cuda: to(device) round trips, and gradients flow back across devices", "[cuda]") {
  if (skip_without_cuda()) return;
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i64, DType::boolean}) {
    Tensor x = randu({3, 5}, DType::f64, 3).to(t);
    Tensor back = x.to(kCuda).to(kCPU);
    CHECK(bit_equal(back, x));
  }
  Generator g1(3), g2(3);  // random factories draw on the cpu: the same values on every device
  CHECK(bit_equal(randn({7, 3}, TensorOptions(DType::f32, kCuda), &g1).to(kCPU), randn({7, 3}, DType::f32, &g2)));
  Tensor s = randu({4, 6}).transpose(0, 1);  // strided source
  CHECK(bit_equal(s.to(kCuda).to(kCPU), s.contiguous()));
  Tensor x = randu({5}).requires_grad_(true);
  Tensor y = (x.to(kCuda) * 3.0).to(kCPU);
  sum(y).backward();
  expect_close(x.grad(), full({5}, 3.0), 0, "grad through to(cuda)");
}

TEST_CASE("cuda: caching allocator reuses blocks and counts them", "[cuda]") {
  if (skip_without_cuda()) return;
  if (!cuda::caching_allocator()) {  // compute-sanitizer runs: every allocation is a cudaMalloc
    WARN("SKIPPED: BRISK_CUDA_CACHING_ALLOCATOR=0: no cache to test");
    return;
  }
  cuda::reset_allocator_counters();
  auto s0 = cuda::allocator_stats();
  { Tensor a = empty({1000}, TensorOptions(DType::f32, kCuda)); }
  { Tensor b = empty({1000}, TensorOptions(DType::f32, kCuda)); }  // same rounded size: a cache hit
  auto s1 = cuda::allocator_stats();
  CHECK(s1.requests - s0.requests == 2);
  CHECK(s1.cache_hits - s0.cache_hits >= 1);
  CHECK(s1.bytes_in_use == s0.bytes_in_use);
  CHECK(s1.peak_bytes_in_use >= 4000);
  cuda::empty_cache();
  CHECK(cuda::allocator_stats().bytes_cached == 0);
  // Another stream never takes a block cached for the default stream.
  { Tensor c = empty({1000}, TensorOptions(DType::f32, kCuda)); }
  cuda::Stream st;
  auto s2 = cuda::allocator_stats();
  {
    cuda::StreamGuard g(st);
    Tensor d = empty({1000}, TensorOptions(DType::f32, kCuda));
  }
  CHECK(cuda::allocator_stats().system_allocs == s2.system_allocs + 1);
}

TEST_CASE("cuda: streams and events order and time work", "[cuda]") {
  if (skip_without_cuda()) return;
  cuda::Stream st;
  cuda::Event e0, e1;
  Tensor a = randu({512, 512}).to(kCuda);
  Tensor c;
  {
    cuda::StreamGuard g(st);
    CHECK(cuda::current_stream() == st.handle());
    e0.record();
    c = matmul(a, a);
    e1.record();
  }
  CHECK(cuda::current_stream() == nullptr);
  e1.synchronize();
  CHECK(e1.query());
  CHECK(e0.elapsed_ms(e1) >= 0.0f);
  st.synchronize();
  expect_close(c.to(kCPU), matmul(a.to(kCPU), a.to(kCPU)), dtype_tol(DType::f32, 512), "matmul on a stream");
}

TEST_CASE("cuda: elementwise ops match the cpu", "[cuda]") {
  if (skip_without_cuda()) return;
  for (DType t : {DType::f32, DType::f64}) {
    double tol = dtype_tol(t, 4);
    Tensor x = randu({7, 33}, t, 1), y = randu({7, 33}, t, 2), pos = randu({7, 33}, t, 3, 0.1, 2.0);
    for (UnaryOp op : {UnaryOp::neg, UnaryOp::exp, UnaryOp::tanh, UnaryOp::sigmoid, UnaryOp::relu, UnaryOp::gelu,
                       UnaryOp::abs, UnaryOp::sign}) {
      parity(std::string("unary ") + unary_op_name(op), [op](auto& v) { return unary(op, v[0]); }, {x}, tol);
    }
    parity("log", [](auto& v) { return log(v[0]); }, {pos}, tol);
    parity("sqrt", [](auto& v) { return sqrt(v[0]); }, {pos}, tol);
    parity("rsqrt", [](auto& v) { return rsqrt(v[0]); }, {pos}, tol);
    parity("add", [](auto& v) { return v[0] + v[1]; }, {x, y}, tol);
    parity("sub broadcast", [](auto& v) { return v[0] - v[1]; }, {x, randu({33}, t, 4)}, tol);
    parity("mul strided", [](auto& v) { return v[0].transpose(0, 1) * v[1].transpose(0, 1); }, {x, y}, tol);
    parity("div", [](auto& v) { return v[0] / v[1]; }, {x, pos}, tol);
    parity("pow", [](auto& v) { return pow(v[1], v[0]); }, {x, pos}, tol);
    parity("maximum", [](auto& v) { return maximum(v[0], v[1]); }, {x, y}, tol);
    parity("minimum", [](auto& v) { return minimum(v[0], v[1]); }, {x, y}, tol);
    parity("where", [](auto& v) { return where(gt(v[0], v[1]), v[0], v[1] * 2.0); }, {x, y}, tol);
    parity("compare", [](auto& v) { return le(v[0], v[1]); }, {x, y}, 0);
  }
  // 16-bit storage, f32 math: both sides round once.
  for (DType t : {DType::f16, DType::bf16}) {
    Tensor x = randu({9, 130}, t, 5), y = randu({9, 130}, t, 6);
    expect_close((x.to(kCuda) + y.to(kCuda)).to(kCPU), x + y, dtype_tol(t), "16-bit add");
    expect_close(relu(x.to(kCuda)).to(kCPU), relu(x), 0, "16-bit relu");
  }
  // casts: nearest-even into 16 bits, exact between integers
  Tensor v = randu({1000}, DType::f32, 8, -100, 100);
  for (DType t : {DType::f16, DType::bf16, DType::f64, DType::i64, DType::i32})
    CHECK(bit_equal(v.to(kCuda).to(t).to(kCPU), v.to(t)));
  Tensor f = full({3, 4}, 2.5, TensorOptions(DType::f32, kCuda));
  CHECK(bit_equal(f.to(kCPU), full({3, 4}, 2.5)));
}

TEST_CASE("cuda: reductions, softmax and cross-entropy match the cpu", "[cuda]") {
  if (skip_without_cuda()) return;
  for (int64_t K : {1, 10, 33, 1000, 5000}) {
    Tensor x = randu({6, K}, DType::f32, uint64_t(K));
    double tol = dtype_tol(DType::f32, K);
    parity("sum rows", [](auto& v) { return sum(v[0], {1}); }, {x}, tol);
    parity("sum cols", [](auto& v) { return sum(v[0], {0}); }, {x}, tol);
    parity("mean", [](auto& v) { return mean(v[0]); }, {x}, tol);
    parity("max", [](auto& v) { return max(v[0], {1}); }, {x}, 0);
    parity("argmax", [](auto& v) { return argmax(v[0], 1); }, {x}, 0);
    parity("softmax", [](auto& v) { return softmax(v[0], 1); }, {x}, tol);
    parity("log_softmax", [](auto& v) { return log_softmax(v[0], 1); }, {x}, tol);
  }
  // Integer rows: a bool mask's sum (i64, as cross-entropy counts its kept
  // targets), and max, min and argmax in i32, i64 and u8; exact. Values from
  // -50 (0 for u8) to 150, with ties, and rows past one block (K 5000).
  for (DType t : {DType::i32, DType::i64, DType::u8}) {
    for (int64_t K : {1, 33, 5000}) {
      Tensor xi = randu({4, K}, DType::f64, uint64_t(K) + 3, t == DType::u8 ? 0 : -50, 150).to(t);
      INFO("dtype " << t << ", K " << K);
      CHECK(bit_equal(sum(xi.to(kCuda), {1}).to(kCPU), sum(xi, {1})));
      CHECK(bit_equal(sum(gt(xi, scalar_like(xi, 40)).to(kCuda)).to(kCPU), sum(gt(xi, scalar_like(xi, 40)))));
      CHECK(bit_equal(max(xi.to(kCuda), {1}).to(kCPU), max(xi, {1})));
      CHECK(bit_equal(min(xi.to(kCuda), {1}).to(kCPU), min(xi, {1})));
      CHECK(bit_equal(argmax(xi.to(kCuda), 1).to(kCPU), argmax(xi, 1)));
    }
  }
  Tensor logits = randu({64, 10}, DType::f32, 11, -3, 3);
  std::vector<double> tv;
  for (int i = 0; i < 64; ++i) tv.push_back(i % 7 == 0 ? -100 : i % 10);
  Tensor target = from_vector(tv, {64}, DType::i64);
  for (double eps : {0.0, 0.1})
    parity("cross_entropy", [&](auto& v) { return F::cross_entropy(v[0], v[1], F::Reduction::mean, -100, eps); },
           {logits, target}, dtype_tol(DType::f32, 64));
}

TEST_CASE("cuda: GEMM matches the cpu for every dtype, layout and batch", "[cuda]") {
  if (skip_without_cuda()) return;
  struct Case { int64_t b, m, k, n; };
  for (Case c : {Case{1, 1, 1, 1}, Case{1, 17, 33, 65}, Case{3, 64, 64, 64}, Case{2, 128, 96, 256},
                 Case{1, 256, 512, 128}, Case{1, 300, 129, 70}}) {
    for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
      INFO("b " << c.b << " m " << c.m << " k " << c.k << " n " << c.n << " dtype " << t);
      Tensor a = randu({c.b, c.m, c.k}, t, 1), b = randu({c.b, c.k, c.n}, t, 2);
      // The cpu reference computes in f64 from the same (rounded) values.
      Tensor want = matmul(a.to(DType::f64), b.to(DType::f64));
      double tol = t == DType::f32 || t == DType::f64 ? dtype_tol(t, c.k) : 4 * dtype_tol(t, 1);
      for (const char* be : {"native", "cublas"}) {
        set_gemm_backend(be);
        INFO("backend " << be);
        expect_close(matmul(a.to(kCuda), b.to(kCuda)).to(kCPU).to(DType::f64), want, tol, "A @ B");
        // transposed operands (the backward's layouts: views with stride 1
        // along m in A and along k in B, made on the device, since to()
        // copies a strided tensor contiguously) and a broadcast batch
        Tensor at = a.transpose(1, 2).contiguous().to(kCuda).transpose(1, 2);
        Tensor bt = b.transpose(1, 2).contiguous().to(kCuda).transpose(1, 2);
        REQUIRE((at.stride(1) == 1 && bt.stride(1) == 1));
        expect_close(matmul(at, bt).to(kCPU).to(DType::f64), want, tol, "A^T^T @ B^T^T");
        expect_close(matmul(at, b.to(kCuda)).to(kCPU).to(DType::f64), want, tol, "A^T^T @ B");
        expect_close(matmul(a.to(kCuda), bt).to(kCPU).to(DType::f64), want, tol, "A @ B^T^T");
        Tensor b0 = randu({c.k, c.n}, t, 3);
        expect_close(matmul(a.to(kCuda), b0.to(kCuda)).to(kCPU).to(DType::f64),
                     matmul(a.to(DType::f64), b0.to(DType::f64)), tol, "broadcast B");
      }
      set_gemm_backend("native");
    }
  }
}

TEST_CASE("cuda: the Hopper GEMM (wgmma, TMA) matches the cpu for every operand layout", "[cuda]") {
  if (skip_without_cuda()) return;
#if BRISK_HAS_CUDA
  using kern::cuda::gemm_wgmma;
  if (!kern::cuda::gemm_wgmma_available()) {
    WARN("SKIPPED: the device is not compute capability 9.0 (or BRISK_CUDA_WGMMA=0): no wgmma GEMM here");
    return;
  }
  auto nan_count = [](const Tensor& x) {
    int64_t n = 0;
    for (double v : x.to(kCPU).to(DType::f64).to_vector()) n += std::isnan(v);
    return n;
  };
  struct Case { int64_t m, k, n; };
  for (DType t : {DType::f16, DType::bf16}) {
    for (Case c : {Case{128, 64, 256}, Case{256, 192, 512}, Case{384, 1024, 768}}) {
      INFO("m " << c.m << " k " << c.k << " n " << c.n << " dtype " << t);
      Tensor a = randu({1, c.m, c.k}, t, 21), b = randu({1, c.k, c.n}, t, 22);
      Tensor want = matmul(a.to(DType::f64), b.to(DType::f64));
      double tol = 4 * dtype_tol(t, 1);
      // Row-major A and B (B goes through its transposed copy), B as the
      // transposed view of a row-major [N, K] (read in place, as linear's
      // W^T), and A as the transposed view of a row-major [K, M].
      Tensor ag = a.to(kCuda), bg = b.to(kCuda);
      Tensor bt = b.transpose(1, 2).contiguous().to(kCuda).transpose(1, 2);
      Tensor at = a.transpose(1, 2).contiguous().to(kCuda).transpose(1, 2);
      REQUIRE(bt.stride(1) == 1);
      REQUIRE(at.stride(1) == 1);
      for (auto [x, y, what] : {std::tuple{ag, bg, "A @ B"}, std::tuple{ag, bt, "A @ (B^T)^T"},
                                std::tuple{at, bg, "(A^T)^T @ B"}}) {
        Tensor out = full({1, c.m, c.n}, std::nan(""), TensorOptions(t, kCuda));  // poison: every element written?
        REQUIRE(gemm_wgmma(x, y, out));
        CHECK(nan_count(out) == 0);
        expect_close(out.to(kCPU).to(DType::f64), want, tol, what);
      }
      // matmul takes this kernel for these shapes (same bits as the direct call).
      Tensor direct = full({1, c.m, c.n}, 0.0, TensorOptions(t, kCuda));
      REQUIRE(gemm_wgmma(ag, bg, direct));
      CHECK(bit_equal(matmul(ag, bg).to(kCPU), direct.to(kCPU)));
    }
  }
  // Shapes off the tiles, a batch, or f32 are declined (gemm.cu's WMMA or SIMT runs).
  Tensor a = randu({1, 100, 64}, DType::bf16, 23).to(kCuda), b = randu({1, 64, 256}, DType::bf16, 24).to(kCuda);
  CHECK_FALSE(gemm_wgmma(a, b, empty({1, 100, 256}, TensorOptions(DType::bf16, kCuda))));
  Tensor a2 = randu({2, 128, 64}, DType::bf16, 25).to(kCuda), b2 = randu({2, 64, 256}, DType::bf16, 26).to(kCuda);
  CHECK_FALSE(gemm_wgmma(a2, b2, empty({2, 128, 256}, TensorOptions(DType::bf16, kCuda))));
  Tensor a3 = randu({1, 128, 64}, DType::f32, 27).to(kCuda), b3 = randu({1, 64, 256}, DType::f32, 28).to(kCuda);
  CHECK_FALSE(gemm_wgmma(a3, b3, empty({1, 128, 256}, TensorOptions(DType::f32, kCuda))));
#endif
}

TEST_CASE("cuda: conv, pooling, norms and linear layers match the cpu (forward and backward)", "[cuda]") {
  if (skip_without_cuda()) return;
  double tol = dtype_tol(DType::f32, 300);
  Tensor x = randu({4, 3, 13, 11}, DType::f32, 1), w = randu({5, 3, 3, 3}, DType::f32, 2), b = randu({5}, DType::f32, 3);
  for (const char* conv_be : {"native", "cudnn"}) {
#ifndef BRISK_HAS_CUDNN
    if (std::string(conv_be) == "cudnn") continue;
#endif
    set_conv_backend(conv_be);
    INFO("conv backend " << conv_be);
    parity("conv2d", [](auto& v) { return F::conv2d(v[0], v[1], v[2], 1, 1); }, {x, w, b}, tol);
    parity("conv2d stride 2 dilation 2", [](auto& v) { return F::conv2d(v[0], v[1], v[2], 2, 2, 2); }, {x, w, b}, tol);
    parity("conv2d+relu", [](auto& v) { return F::conv2d_relu(v[0], v[1], v[2], 1, 0, 1, 1, true); }, {x, w, b}, tol);
    parity("batch_norm", [](auto& v) { return F::batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], true); },
           {x, randu({3}, DType::f32, 4), randu({3}, DType::f32, 5)}, tol);
  }
  set_conv_backend("native");
  parity("max_pool2d", [](auto& v) { return F::max_pool2d(v[0], 2); }, {x}, 0);
  parity("max_pool2d overlapping", [](auto& v) { return F::max_pool2d(v[0], 3, F::Pair(2), 1); }, {x}, tol);
  parity("avg_pool2d", [](auto& v) { return F::avg_pool2d(v[0], 3, F::Pair(2), 1); }, {x}, tol);
  parity("adaptive_avg_pool2d", [](auto& v) { return F::adaptive_avg_pool2d(v[0], F::Pair(4, 3)); }, {x}, tol);
  Tensor h = randu({16, 40}, DType::f32, 6), lw = randu({24, 40}, DType::f32, 7), lb = randu({24}, DType::f32, 8);
  parity("linear_relu (bias_relu)", [](auto& v) { return F::linear_relu(v[0], v[1], v[2]); }, {h, lw, lb}, tol);
  parity("layer_norm", [](auto& v) { return F::layer_norm(v[0], {40}, v[1], v[2]); },
         {h, randu({40}, DType::f32, 9), randu({40}, DType::f32, 10)}, tol);
  std::vector<double> iv{3, 0, 3, 7, 15, 1};
  Tensor idx = from_vector(iv, {6}, DType::i64);
  parity("index_select (gather + scatter_add backward)", [](auto& v) { return index_select(v[0], 0, v[1]); },
         {h, idx}, 0);
  // Integer scatter_add (atomic adds; exact whatever their order), with
  // repeated indices, and u8 arithmetic, against the cpu.
  for (DType t : {DType::i32, DType::i64}) {
    INFO("scatter_add in " << t);
    Tensor self = randu({16, 5}, DType::f64, 12, -1000, 1000).to(t);
    Tensor src = randu({6, 5}, DType::f64, 13, -1000, 1000).to(t);
    Tensor ind = idx.unsqueeze(1).expand({6, 5}).contiguous();
    CHECK(bit_equal(scatter_add(self.to(kCuda), 0, ind.to(kCuda), src.to(kCuda)).to(kCPU),
                    scatter_add(self, 0, ind, src)));
  }
  Tensor ua = randu({7, 9}, DType::f64, 14, 0, 256).to(DType::u8), ub = randu({7, 9}, DType::f64, 15, 0, 256).to(DType::u8);
  CHECK(bit_equal((ua.to(kCuda) + ub.to(kCuda)).to(kCPU), ua + ub));
  CHECK(bit_equal((ua.to(kCuda) * ub.to(kCuda)).to(kCPU), ua * ub));
  CHECK(bit_equal((ua.to(kCuda) - ub.to(kCuda)).to(kCPU), ua - ub));
}

TEST_CASE("cuda: attention, bias+GELU and embeddings match the cpu (forward and backward)", "[cuda]") {
  if (skip_without_cuda()) return;
  // The transformer's kernels (attention_fwd/bwd, bias_gelu_fwd/bwd, gather
  // and its scatter_add backward) at sizes that leave partial thread blocks:
  // T = 37 and 130 (kThreads = 128 queries or keys a block), heads of 8 to 64
  // dims, causal and not, Tq != Tk (a cached decode's shape).
  double tol = dtype_tol(DType::f32, 400);
  for (int64_t D : {8, 64}) {
    for (int64_t T : {37, 130}) {
      INFO("head dim " << D << ", T " << T);
      Tensor q = randu({2, 3, T, D}, DType::f32, 1), k = randu({2, 3, T, D}, DType::f32, 2),
             v = randu({2, 3, T, D}, DType::f32, 3);
      parity("sdpa causal", [](auto& t) { return F::scaled_dot_product_attention(t[0], t[1], t[2], true); }, {q, k, v},
             tol);
      parity("sdpa full", [](auto& t) { return F::scaled_dot_product_attention(t[0], t[1], t[2], false, 0.3); },
             {q, k, v}, tol);
    }
    Tensor q1 = randu({2, 3, 5, D}, DType::f32, 4), k1 = randu({2, 3, 19, D}, DType::f32, 5),
           v1 = randu({2, 3, 19, D}, DType::f32, 6);
    parity("sdpa causal, 5 queries over 19 keys", [](auto& t) { return F::scaled_dot_product_attention(t[0], t[1], t[2], true); },
           {q1, k1, v1}, tol);
  }
  // Heads read in place from a packed projection: strided operands.
  parity("attention_packed_qkv", [](auto& t) { return F::attention_packed_qkv(t[0], 4, true); },
         {randu({3, 33, 3 * 4 * 16}, DType::f32, 7)}, tol);
  parity("bias_gelu", [](auto& t) { return F::bias_gelu(t[0], t[1]); },
         {randu({5, 7, 96}, DType::f32, 8, -4, 4), randu({96}, DType::f32, 9)}, tol);
  parity("linear_gelu", [](auto& t) { return F::linear_gelu(t[0], t[1], t[2]); },
         {randu({6, 40}, DType::f32, 10), randu({72, 40}, DType::f32, 11), randu({72}, DType::f32, 12)}, tol);
  std::vector<double> ids{3, 0, 3, 7, 15, 1, 7, 7};
  parity("embedding (repeated ids: atomic adds in the backward)", [](auto& t) { return F::embedding(t[1], t[0]); },
         {randu({16, 24}, DType::f32, 13), from_vector(ids, {2, 4}, DType::i64)}, tol);
}

TEST_CASE("cuda: a gpt's forward, backward and training on cuda match the cpu", "[cuda]") {
  if (skip_without_cuda()) return;
  // One step of the whole model, from the same weights: logits and every
  // parameter's gradient (embeddings, layer norms, packed attention, GELU
  // MLP, tied head).
  models::GPTConfig gc;
  gc.vocab_size = 64, gc.block_size = 40, gc.n_layer = 2, gc.n_head = 2, gc.n_embd = 32;
  manual_seed(3);
  models::GPT mc(gc);
  manual_seed(3);
  models::GPT mg(gc);
  mg.to(kCuda);
  Generator gen(11);
  Tensor idx = randint(0, 64, {4, 40}, DType::i64, &gen), tgt = randint(0, 64, {4 * 40}, DType::i64, &gen);
  Tensor lc = F::cross_entropy(mc.forward(idx).reshape({4 * 40, 64}), tgt);
  Tensor lg = F::cross_entropy(mg.forward(idx.to(kCuda)).reshape({4 * 40, 64}), tgt.to(kCuda));
  CHECK(std::abs(lc.item() - lg.item()) <= 1e-4 * std::abs(lc.item()));
  lc.backward();
  lg.backward();
  auto pc = mc.named_parameters(), pg = mg.named_parameters();
  REQUIRE(pc.size() == pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    INFO("gradient of " << pc[i].first);
    REQUIRE(pg[i].second.grad().defined());
    CHECK(pg[i].second.grad().device() == kCuda);
    CHECK(max_rel_err(pg[i].second.grad().to(kCPU), pc[i].second.grad()) <= 1e-4);
  }
  // brisk train --device cuda on a text corpus (AdamW, the trainer's text
  // path): the loss falls as on the cpu, and both runs end at nearly the
  // same validation loss (embedding gradients add atomically on cuda, so not
  // bit for bit).
  TrainConfig cc = lm_config("brisk_cuda_gpt_cpu"), cg = lm_config("brisk_cuda_gpt_cuda");
  cg.device = "cuda";
  train::Trainer tc(cc), tg(cg);
  tc.fit();
  auto rg = tg.fit();
  CHECK(rg.acc > 0.2);  // next-byte accuracy, the cpu test's bar
  auto mcl = read_jsonl(cc.out + "/metrics.jsonl"), mgl = read_jsonl(cg.out + "/metrics.jsonl");
  REQUIRE(mcl.size() == 2);
  REQUIRE(mgl.size() == 2);
  double vc = mcl[1]["val_loss"].get<double>(), vg = mgl[1]["val_loss"].get<double>();
  CHECK(mgl[1]["val_loss"].get<double>() < mgl[0]["val_loss"].get<double>());
  CHECK(std::abs(vg - vc) <= 2e-2 * vc);
}

TEST_CASE("cuda: bf16 autocast on tensor cores matches the cpu (rounding, GEMM, layers, training)", "[cuda]") {
  if (skip_without_cuda()) return;
  // The cast kernel: the cpu's bits, ties to even, NaN and inf, with a bias.
  {
    std::vector<double> v{1.0, 1.00390625, 1.01171875, -2.5e-39, 3.4e38, 1e-45, -0.0};
    Tensor x = cat({from_vector(v, {7}, DType::f32), randu({2, 7}, DType::f32, 3, -1e3, 1e3).reshape({14})}, 0)
                   .reshape({3, 7});
    std::vector<double> sp{std::nan(""), INFINITY, -INFINITY, 0.0, 1.0, 2.0, 3.0};
    Tensor special = from_vector(sp, {1, 7}, DType::f32);
    x = cat({x, special}, 0);
    Tensor b = randu({7}, DType::f32, 4);
    CHECK(bit_equal(round_bf16_nearest(x.to(kCuda)).to(kCPU), round_bf16_nearest(x)));
    CHECK(bit_equal(round_bf16_nearest(x.to(kCuda), b.to(kCuda)).to(kCPU), round_bf16_nearest(x, b)));
  }
  // The f32 GEMM under bf16 operands: bf16 roundings of A and B multiplied
  // with f32 accumulation (an f64 product of the rounded operands is the
  // reference), for row-major and transposed operands, partial tiles and a
  // broadcast batch; the same call without the scope stays exact f32.
  struct G { int64_t b, m, n, k; bool ta, tb; };
  for (G g : {G{1, 77, 45, 33, false, false}, G{2, 128, 256, 64, true, false}, G{3, 130, 70, 200, false, true},
              G{2, 64, 96, 40, true, true}}) {
    INFO("gemm " << g.b << " x " << g.m << " x " << g.n << " x " << g.k << " ta " << g.ta << " tb " << g.tb);
    Tensor a = randu(g.ta ? Shape{g.b, g.k, g.m} : Shape{g.b, g.m, g.k}, DType::f32, 11);
    Tensor bm = randu(g.tb ? Shape{1, g.n, g.k} : Shape{1, g.k, g.n}, DType::f32, 12);  // batch broadcast
    Tensor ag = a.to(kCuda), bg = bm.to(kCuda);
    if (g.ta) ag = ag.transpose(1, 2), a = a.transpose(1, 2);  // views made on the device: strided operands
    if (g.tb) bg = bg.transpose(1, 2), bm = bm.transpose(1, 2);
    Tensor ref = matmul(round_bf16_nearest(a.contiguous()).to(DType::f64), round_bf16_nearest(bm.contiguous()).to(DType::f64));
    Tensor exact = matmul(a.to(DType::f64), bm.to(DType::f64));
    Tensor c;
    {
      GemmBf16Scope on(true);
      c = matmul(ag, bg).to(kCPU).to(DType::f64);
      set_gemm_backend("cublas");  // declines under bf16 operands: the same kernel runs
      CHECK(bit_equal(matmul(ag, bg).to(kCPU).to(DType::f64), c));
      set_gemm_backend("native");
    }
    CHECK(max_rel_err(c, ref) <= dtype_tol(DType::f32, g.k));
    CHECK(max_rel_err(c, exact) > 1e-4);  // the operands were rounded
    CHECK(max_rel_err(matmul(ag, bg).to(kCPU).to(DType::f64), exact) <= dtype_tol(DType::f32, g.k));
  }
  // Layers under autocast, forward and backward: every output and gradient
  // is bf16-rounded on both devices, so they agree to an ulp of bf16.
  {
    AutocastGuard ac({LowPrecision::bf16});
    double tol = 2 * std::ldexp(1.0, -8);
    Tensor h = randu({16, 40}, DType::f32, 6), lw = randu({24, 40}, DType::f32, 7), lb = randu({24}, DType::f32, 8);
    parity("linear (bf16 autocast)", [](auto& v) { return F::linear(v[0], v[1], v[2]); }, {h, lw, lb}, tol);
    Tensor x = randu({4, 3, 13, 11}, DType::f32, 1), w = randu({5, 3, 3, 3}, DType::f32, 2), b = randu({5}, DType::f32, 3);
    parity("conv2d+relu (bf16 autocast)", [](auto& v) { return F::conv2d_relu(v[0], v[1], v[2], 1, 1, 1, 1, true); },
           {x, w, b}, tol);
  }
  // --method precision:dtype=bf16 --device cuda trains as on the cpu
  // (telemetry's per-layer ranges read the card's tensors too).
  TrainConfig cc = small_config("brisk_cuda_bf16_cpu"), cg = small_config("brisk_cuda_bf16_cuda");
  cc.methods = cg.methods = {"precision:dtype=bf16"};
  cg.device = "cuda";
  cc.telemetry_every = cg.telemetry_every = 5;
  auto rc = train::Trainer(cc, brisk::efficiency::make_methods).fit();
  auto rg = train::Trainer(cg, brisk::efficiency::make_methods).fit();
  CHECK(rg.acc > 0.9);
  CHECK(std::abs(rg.acc - rc.acc) <= 0.02);
  // The formats without cuda kernels are refused by name.
  TrainConfig e = small_config("brisk_cuda_fp16_refused");
  e.device = "cuda";
  for (std::string spec : {"precision:dtype=fp16", "precision:dtype=bf16,rounding=stochastic", "precision:dtype=int8"}) {
    e.methods = {spec};
    CHECK_THROWS_WITH(train::Trainer(e, brisk::efficiency::make_methods),
                      Catch::Contains("--method precision runs on the cpu only"));
  }
}

TEST_CASE("cuda: fused optimizer steps match the cpu", "[cuda]") {
  if (skip_without_cuda()) return;
  for (bool adam : {false, true}) {
    INFO((adam ? "adamw" : "sgd momentum nesterov"));
    Tensor p0 = randu({37, 11}, DType::f32, 1);
    std::vector<Tensor> ps{p0.clone().requires_grad_(true), p0.to(kCuda).clone().requires_grad_(true)};
    std::vector<std::unique_ptr<optim::Optimizer>> opts;
    for (auto& p : ps) {
      optim::NamedParams np{{"w", p}};
      if (adam) {
        optim::AdamWOptions o;
        o.lr = 0.01;
        o.weight_decay = 0.1;
        opts.push_back(std::make_unique<optim::AdamW>(np, o));
      } else {
        optim::SGDOptions o;
        o.lr = 0.1;
        o.momentum = 0.9;
        o.nesterov = true;
        o.weight_decay = 1e-3;
        opts.push_back(std::make_unique<optim::SGD>(np, o));
      }
    }
    for (int s = 0; s < 5; ++s) {
      Tensor g = randu({37, 11}, DType::f32, uint64_t(10 + s));
      for (size_t i = 0; i < 2; ++i) {
        ps[i].set_grad(g.to(ps[i].device()));
        opts[i]->step();
      }
    }
    expect_close(ps[1].detach().to(kCPU), ps[0].detach(), 1e-5, "parameters after 5 steps");
  }
}

TEST_CASE("cuda: a cnn trained 50 steps on cpu and on cuda from the same weights agrees", "[cuda]") {
  if (skip_without_cuda()) return;
  manual_seed(0);
  auto mc = models::make_model("cnn");
  manual_seed(0);
  auto mg = models::make_model("cnn");
  mg->to(kCuda);
  // lr 0.01: at 0.05 this training is chaotic, and the cpu alone, started
  // from weights scaled by 1 + 1e-6, ends 50 steps later 2e-2 away in the last
  // bias; at 0.01 that perturbation moves no parameter more than 5e-4, so the
  // 1e-2 below is 20x what rounding alone can explain (measured on the cpu).
  optim::SGDOptions o;
  o.lr = 0.01;
  o.momentum = 0.9;
  optim::SGD oc(mc->named_parameters(), o), og(mg->named_parameters(), o);
  Generator gen(5);
  double lc = 0, lg = 0;
  for (int step = 0; step < 50; ++step) {
    Tensor x = randn({32, 1, 28, 28}, DType::f32, &gen);
    Tensor y = argmax(sum(x.reshape({32, 28 * 28}).narrow(1, 0, 700).reshape({32, 10, 70}), {2}), 1);  // learnable labels
    Tensor loss_c = F::cross_entropy(mc->forward(x), y);
    Tensor loss_g = F::cross_entropy(mg->forward(x.to(kCuda)), y.to(kCuda));
    oc.zero_grad();
    og.zero_grad();
    loss_c.backward();
    loss_g.backward();
    oc.step();
    og.step();
    lc = loss_c.item();
    lg = loss_g.item();
  }
  CHECK(std::abs(lc - lg) <= 1e-2 * (1 + std::abs(lc)));
  auto pc = mc->named_parameters(), pg = mg->named_parameters();
  for (size_t i = 0; i < pc.size(); ++i) {
    INFO("parameter " << pc[i].first);
    CHECK(max_rel_err(pg[i].second.detach().to(kCPU), pc[i].second.detach()) <= 1e-2);
  }
}

TEST_CASE("cuda: brisk train --device cuda trains the mlp", "[cuda]") {
  if (skip_without_cuda()) return;
  TrainConfig c = small_config("brisk_cuda_train");
  c.device = "cuda";
  c.epochs = 2;
  auto r = train::Trainer(c, brisk::efficiency::make_methods).fit();
  CHECK(r.acc > 0.9);  // the synthetic classes are easy (same bar as the cpu test)
  // Checkpoints hold cpu copies of the cuda state, and a run stopped twice
  // and resumed on cuda ends bit for bit where the uninterrupted one did (the
  // mlp's kernels on cuda have no atomics: its step is deterministic).
  check_resume_bit_exact(c, {5, 11}, false);
}

TEST_CASE("cuda: pruning masks (gradual, global, N:M) train on cuda as on the cpu", "[cuda]") {
  if (skip_without_cuda()) return;
  for (std::string spec : {"prune:target=0.8,schedule=gradual,frequency=3,end=1", "prune:target=0.7,scope=global",
                           "prune:structure=2:4"}) {
    INFO(spec);
    TrainConfig cc = small_config("brisk_cuda_prune_cpu"), cg = small_config("brisk_cuda_prune_cuda");
    cc.methods = cg.methods = {spec};
    cg.device = "cuda";
    train::Trainer tc(cc, brisk::efficiency::make_methods), tg(cg, brisk::efficiency::make_methods);
    tc.fit();
    auto rg = tg.fit();
    CHECK(rg.acc > 0.9);
    auto pc = tc.model().named_parameters(), pg = tg.model().named_parameters();
    int64_t zeros_c = 0, zeros_g = 0, agree = 0, total = 0;
    for (size_t i = 0; i < pg.size(); ++i) {
      if (pg[i].second.dim() < 2) continue;
      INFO("parameter " << pg[i].first);
      Tensor mg = get_mask(pg[i].second), mc = get_mask(pc[i].second);
      REQUIRE(mg.defined());
      REQUIRE(mc.defined());
      CHECK(mg.device() == kCuda);  // the mask lives with its parameter
      Tensor w = pg[i].second.detach().to(kCPU).to(DType::f64), m = mg.to(kCPU).to(DType::f64);
      // Every pruned weight is exactly zero after training (masks hold through the steps).
      CHECK(sum(abs(w * (1.0 - m))).item() == 0.0);
      auto vm = m.to_vector(), vc = mc.to(DType::f64).to_vector();
      for (size_t k = 0; k < vm.size(); ++k) agree += vm[k] == vc[k];
      total += int64_t(vm.size());
      zeros_g += count_zeros(mg);
      zeros_c += count_zeros(mc);
      if (spec.find("2:4") != std::string::npos) {  // at most 2 of every 4 consecutive inputs kept
        auto v = w.to_vector();
        for (size_t g = 0; g + 3 < v.size(); g += 4)
          REQUIRE((v[g] != 0) + (v[g + 1] != 0) + (v[g + 2] != 0) + (v[g + 3] != 0) <= 2);
      }
    }
    CHECK(zeros_g == zeros_c);  // the same number of weights pruned as on the cpu
    // The same weights, but for near-ties in magnitude between the two devices' rounding.
    CHECK(double(agree) / double(total) >= 0.98);
  }
  // A checkpointed, twice-resumed pruned run on cuda ends bit for bit where
  // the uninterrupted one did (masks go to the file and back to the card).
  TrainConfig c = small_config("brisk_cuda_prune_resume");
  c.methods = {"prune:target=0.8,schedule=gradual,frequency=3,end=1"};
  c.device = "cuda";
  train::Trainer(c, brisk::efficiency::make_methods).fit();
  check_resume_bit_exact(c, {5, 11}, false);
  // Methods not yet run on a card are refused by name.
  TrainConfig e = small_config("brisk_cuda_method_refused");
  e.device = "cuda";
  e.methods = {"prune:target=0.8,schedule=rigl"};
  CHECK_THROWS_WITH(train::Trainer(e, brisk::efficiency::make_methods),
                    Catch::Contains("--method prune runs on the cpu only") && Catch::Contains("--device cpu"));
  e.methods = {"select:kind=infobatch"};
  CHECK_THROWS_WITH(train::Trainer(e, brisk::efficiency::make_methods), Catch::Contains("--method select runs on"));
}

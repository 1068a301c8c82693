// Every optimized (cpu) and vendor (openblas) kernel against kernels/cpu/ref
// on the same inputs, with tolerances derived from the dtype. Each case also
// asserts which backend ran, so a kernel that silently declines fails here.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include "core/autocast.h"
#include "core/dispatch.h"
#include "core/op_keys.h"
#include "kernels/cpu/conv2d_amx.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/pool2d.h"
#include "tests/gemm_paths.h"
#include "tests/helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;

// Runs fn under `backend` and under ref; checks the claim and closeness.
// `op` is the dispatch key whose claim is checked.
static bool has_openblas() {
  auto b = kernel_backends("gemm", DeviceType::cpu, DType::f32);
  return std::find(b.begin(), b.end(), "openblas") != b.end();
}

template <class Fn>
static void compare_backend(const std::string& backend, const std::string& op, const std::string& what, Fn fn,
                            double tol) {
  Tensor ref_out, out;
  {
    ForceBackend fb("ref");
    ref_out = fn();
  }
  {
    ForceBackend fb(backend);
    out = fn();
    INFO(what << " expected backend " << backend);
    CHECK(last_backend(op) == backend);
  }
  expect_close(out, ref_out, tol, what + " [" + backend + " vs ref]");
}

TEST_CASE("kernels: cpu elementwise vs ref, contiguous and broadcast", "[kernels]") {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = randn({33, 65}, dt), y = randn({65}, dt), z = randn({33, 1}, dt);
    Tensor pos = rand({33, 65}, dt) + 0.1;
    for (int u = 0; u <= int(UnaryOp::sign); ++u) {
      UnaryOp op = UnaryOp(u);
      Tensor in = (op == UnaryOp::log || op == UnaryOp::sqrt || op == UnaryOp::rsqrt) ? pos : x;
      compare_backend("cpu", unary_op_name(op), unary_op_name(op), [&] { NoGradGuard ng; return unary(op, in); }, dtype_tol(dt, 4));
    }
    for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div, BinaryOp::maximum,
                        BinaryOp::minimum}) {
      compare_backend("cpu", "binary", binary_op_name(op), [&] { return binary(op, x, y); }, dtype_tol(dt));
      compare_backend("cpu", "binary", binary_op_name(op), [&] { return binary(op, z, x); }, dtype_tol(dt));
      compare_backend("cpu", "binary", binary_op_name(op), [&] { return binary(op, x, scalar_like(x, 1.5)); }, dtype_tol(dt));
    }
    for (BinaryOp op : {BinaryOp::eq, BinaryOp::lt, BinaryOp::ge})
      compare_backend("cpu", "compare", binary_op_name(op), [&] { return binary(op, x, y); }, 0);
    compare_backend("cpu", "copy", "copy transposed", [&] { return x.t().contiguous(); }, 0);
    // the 16x16-tiled transpose path: ragged tiles, batches, a leading dimension wider than the rows
    Tensor big = randn({3, 40, 70}, dt);
    compare_backend("cpu", "copy", "tiled transpose", [&] { return big.select(0, 1).t().contiguous(); }, 0);
    compare_backend("cpu", "copy", "tiled batched transpose", [&] { return big.transpose(1, 2).contiguous(); }, 0);
    compare_backend("cpu", "copy", "tiled transpose, ld > rows",
                    [&] { return big.select(0, 2).narrow(1, 3, 50).t().contiguous(); }, 0);
    compare_backend("cpu", "fill", "fill", [&] { return full({100}, 3.25, dt); }, 0);
  }
  // 16-bit storage: computed in f32, stored in 16 bits
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor x = randn({33, 65}).to(dt), y = randn({65}).to(dt), pos = (rand({33, 65}) + 0.1).to(dt);
    for (UnaryOp op : {UnaryOp::relu, UnaryOp::exp, UnaryOp::neg, UnaryOp::tanh, UnaryOp::sqrt})
      compare_backend("cpu", unary_op_name(op), std::string(unary_op_name(op)) + " " + dtype_name(dt),
                      [&] { NoGradGuard ng; return unary(op, op == UnaryOp::sqrt ? pos : x); }, dtype_tol(dt, 4));
    for (BinaryOp op : {BinaryOp::add, BinaryOp::mul, BinaryOp::maximum})
      compare_backend("cpu", "binary", std::string(binary_op_name(op)) + " " + dtype_name(dt),
                      [&] { return binary(op, x, y); }, dtype_tol(dt));
  }
  Tensor ix = randint(-50, 50, {40}, DType::i64), iy = randint(1, 9, {40}, DType::i64);
  compare_backend("cpu", "binary", "i64 add", [&] { return ix + iy; }, 0);
  compare_backend("cpu", "binary", "i64 max", [&] { return maximum(ix, iy); }, 0);
}

TEST_CASE("kernels: attention and cross-entropy gradients carry no f32 denormals", "[kernels]") {
  manual_seed(0);  // the draws it was sized on, whichever tests ran before it in this process
  // A confident model: scores and logits far apart, so that exp underflows.
  // The optimized kernels flush what would be denormals (each a microcode
  // assist in the GEMMs they feed on Intel cores) to 0; the ref keeps them.
  auto denormals = [](const Tensor& t) {
    int64_t n = 0;
    for (double v : t.to_vector()) n += v != 0 && std::fabs(v) < double(std::numeric_limits<float>::min());
    return n;
  };
  Tensor q = (randn({1, 2, 70, 8}) * 12.0).requires_grad_(), k = (randn({1, 2, 70, 8}) * 12.0).requires_grad_();
  Tensor v = randn({1, 2, 70, 8}).requires_grad_();
  Tensor logits = (randn({64, 40}) * 60.0).requires_grad_();
  Tensor target = randint(0, 40, {64}, DType::i64);
  auto run = [&](const char* backend, bool& ran) {
    ForceBackend fb(backend);
    for (Tensor* t : {&q, &k, &v, &logits}) t->set_grad(Tensor());
    Tensor o = F::scaled_dot_product_attention(q, k, v, true);
    sum(o * o).backward();
    F::cross_entropy(logits, target).backward();
    ran = last_backend("attention_bwd") == backend && last_backend("cross_entropy_bwd") == backend;
    return std::vector<Tensor>{o.detach(), q.grad(), k.grad(), v.grad(), logits.grad()};
  };
  bool ran_ref = false, ran_cpu = false;
  auto ref = run("ref", ran_ref);
  auto cpu = run("cpu", ran_cpu);
  REQUIRE(ran_cpu);
  int64_t ref_denormals = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    CHECK(denormals(cpu[i]) == 0);
    ref_denormals += denormals(ref[i]);
    expect_close(cpu[i], ref[i], 1e-4, "flushed vs exact");
  }
  CHECK(ref_denormals > 0);  // the case does produce them where nothing flushes
}

TEST_CASE("kernels: a NaN in attention, cross-entropy and bias_gelu stays NaN where the ref's does", "[kernels]") {
  // The vectorized kernels clamp exp's argument and mask lanes: neither may
  // turn a NaN into a number (a NaN loss must reach the trainer's check).
  manual_seed(5);
  Tensor q = randn({1, 2, 70, 8}), k = randn({1, 2, 70, 8}), v = randn({1, 2, 70, 8});
  k.data_ptr<float>()[3 * 8 + 1] = NAN;  // head 0, key 3: causal queries >= 3 see it
  Tensor logits = randn({6, 40}), target = from_vector({0, 39, 5, 17, 2, 20}, {6}, DType::i64);
  logits.data_ptr<float>()[1 * 40 + 3] = NAN;  // row 1, an early block of 16 lanes
  Tensor y = randn({4, 40}), b = randn({40});
  y.data_ptr<float>()[2 * 40 + 33] = NAN;  // in the ragged last block
  auto run = [&](const char* backend) {
    ForceBackend fb(backend);
    std::vector<Tensor> r{F::scaled_dot_product_attention(q, k, v, true),
                          F::cross_entropy(logits, target, F::Reduction::none), F::bias_gelu(y, b)};
    CHECK(last_backend("attention_fwd") == backend);
    CHECK(last_backend("cross_entropy_fwd") == backend);
    CHECK(last_backend("bias_gelu_fwd") == backend);
    return r;
  };
  auto ref = run("ref"), cpu = run("cpu");
  for (size_t i = 0; i < ref.size(); ++i) {
    auto a = cpu[i].to_vector(), e = ref[i].to_vector();
    int64_t nans = 0, mismatched = 0;
    for (size_t j = 0; j < e.size(); ++j) {
      nans += std::isnan(e[j]);
      mismatched += std::isnan(a[j]) != std::isnan(e[j]);
    }
    INFO("output " << i);
    CHECK(nans > 0);
    CHECK(mismatched == 0);
  }
}

TEST_CASE("kernels: sums of bf16-rounded values without the rounded copy", "[kernels]") {
  // sum_rounded_bf16 (the reduce op's round_bf16): the CPU kernel rounds each
  // element as it adds it, over rows and over leading dims (column sums); the
  // same bits as rounding first with the same kernel, and the ref's f64 sum
  // of rounded values.
  manual_seed(9);
  for (Shape s : {Shape{300, 70}, Shape{6, 50, 33}, Shape{5, 1000}}) {
    Tensor x = randn(s) * 3.0;
    Tensor rounded = x.to(DType::bf16).to(DType::f32);
    for (int64_t d : {int64_t(0), int64_t(s.size()) - 1}) {
      INFO("shape " << shape_str(s) << " dim " << d);
      Tensor got, want, ref_got;
      {
        ForceBackend fb("cpu");
        got = sum_rounded_bf16(x, {d});
        CHECK(last_backend("reduce") == "cpu");
        want = sum(rounded, {d});
      }
      {
        ForceBackend fb("ref");
        ref_got = sum_rounded_bf16(x, {d});
        CHECK(last_backend("reduce") == "ref");
      }
      CHECK(bit_equal(got, want));
      expect_close(got, ref_got, dtype_tol(DType::f32, s[size_t(d)]), "cpu vs ref");
      // ... and not the sum of the unrounded values (the rounding happened).
      CHECK_FALSE(bit_equal(got, sum(x, {d})));
    }
  }
  CHECK_THROWS_WITH(sum_rounded_bf16(randn({3, 4}, DType::f64), {0}), Catch::Contains("expected f32, got f64"));
}

TEST_CASE("kernels: cpu reductions and softmax vs ref", "[kernels]") {
  for (DType dt : {DType::f32, DType::f64})
    for (Shape s : {Shape{7, 1000}, Shape{1000, 3}, Shape{5, 17, 9}}) {
      Tensor x = randn(s, dt);
      compare_backend("cpu", "reduce", "sum last", [&] { return sum(x, {-1}); }, dtype_tol(dt, s.back()));
      compare_backend("cpu", "reduce", "sum first", [&] { return sum(x, {0}); }, dtype_tol(dt, s[0]));
      compare_backend("cpu", "softmax", "softmax", [&] { return softmax(x, -1); }, dtype_tol(dt, s.back()));
      compare_backend("cpu", "softmax", "log_softmax", [&] { return log_softmax(x, 0); }, dtype_tol(dt, s[0]));
    }
  // Sums over the leading dims of a contiguous tensor reach the kernels as a
  // column-contiguous view (no transposing copy): a bias gradient's shape,
  // several 64-column blocks with a ragged last one, and row counts that are
  // not a multiple of the kernel's 4 interleaved partial sums.
  for (DType dt : {DType::f32, DType::f64})
    for (Shape s : {Shape{8, 129, 200}, Shape{3, 5, 7}, Shape{1001, 64}}) {
      Tensor x = randn(s, dt);
      int64_t K = s.size() == 3 ? s[0] * s[1] : s[0];
      std::vector<int64_t> lead = s.size() == 3 ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{0};
      compare_backend("cpu", "reduce", "sum over leading dims", [&] { return sum(x, lead); }, dtype_tol(dt, K));
      Tensor ref = zeros({s.back()}, dt);  // the same sums by hand, row after row
      Tensor rows = x.reshape({K, s.back()});
      for (int64_t k = 0; k < K; ++k) ref = ref + rows.select(0, k);
      expect_close(sum(x, lead), ref, dtype_tol(dt, K), "sum over leading dims vs row-by-row adds");
    }
  Tensor im = randint(-9, 9, {6, 4, 5}, DType::i64);  // ref kernel, i64, columns: max and argmax over dim 0
  CHECK(bit_equal(max(im, {0}), max(im.permute({1, 2, 0}).contiguous(), {2})));
  CHECK(bit_equal(argmax(im, 0), argmax(im.permute({1, 2, 0}).contiguous(), 2)));
}

TEST_CASE("kernels: the GEMM epilogue (bias, ReLU, bf16 rounding) vs ref on every GEMM path", "[kernels]") {
  ThreadCount threads(2);  // the GEMM splits C between threads: each part gets its own bias columns
  manual_seed(11);
  // K = 1100: several K blocks on every path, and the epilogue must wait for
  // the last; bf16-valued operands so that the bf16 paths and the f64 ref
  // multiply the same numbers; a bias large enough that adding it twice or
  // not at all shows.
  Tensor a = randn({70, 1100}).to(DType::bf16).to(DType::f32), b = randn({1100, 45}).to(DType::bf16).to(DType::f32);
  Tensor bias = randn({45}) * 5.0;
  auto bf16_exact = [](const Tensor& t) { return bit_equal(t.to(DType::bf16).to(DType::f32), t); };
  // AMX tiles, AVX512-BF16 dot products, the f32 kernels, and an ISA without
  // bf16 dot products under the bf16 scope (its rounded copies).
  for_each_gemm_path({{"avx512", "amx", true}, {"avx512", "avx512bf16", true}, {"avx512"}, {"avx2"},
                      {"avx2", "", true}, {"sse"}},
                     [&](const GemmPath& path) {
                       GemmBf16Scope scope(path.bf16_scope);
                       for (bool round : {false, true})
                         for (bool with_bias : {true, false})
                           for (bool relu : {false, true}) {
                             INFO("round " << round << ", bias " << with_bias << ", relu " << relu);
                             auto run = [&](bool rnd, bool rl) {
                               return matmul_epilogue(a, b, with_bias ? bias : Tensor(), rnd, rl);
                             };
                             Tensor ref_out, out, plain;
                             {
                               ForceBackend fb("ref");
                               ref_out = run(round, relu);
                             }
                             {
                               ForceBackend fb("cpu");
                               out = run(round, relu);
                               CHECK(last_backend("gemm") == "cpu");
                               plain = run(false, false);
                             }
                             if (round) CHECK(bf16_exact(out));
                             // one bf16 ulp of |C| ~ 33
                             expect_close(out, ref_out, round ? 1.0 / 128 : 1e-4, "epilogue vs ref");
                             // The same kernel's plain product, then ReLU and rounding by other code:
                             // the epilogue must apply them in that order, to every element.
                             Tensor want = relu ? brisk::relu(plain) : plain;
                             if (round) want = want.to(DType::bf16).to(DType::f32);
                             CHECK(bit_equal(out, want));
                             if (relu) CHECK(min(out).item() == 0.0);
                             // and the bias as an add after the product, with A row-major (read in
                             // place) and column-major (packed): the f32 kernel adds it in registers
                             if (with_bias && !path.bf16_scope) {
                               Tensor a_cols = a.t().contiguous().t();  // the same values, column-major
                               ForceBackend fb("cpu");
                               Tensor added = matmul(a, b) + bias;
                               CHECK(bit_equal(plain, added));
                               CHECK(bit_equal(matmul_epilogue(a_cols, b, bias, false, false), added));
                             }
                           }
                     });
  CHECK_THROWS_WITH(matmul_epilogue(a, b, randn({7}), false), Catch::Contains("bias must be f32 [45]"));
  CHECK_THROWS_WITH(matmul_epilogue(a, a, Tensor(), false), Catch::Contains("expected a [M, K] and b [K, N]"));
}

TEST_CASE("kernels: gemm (cpu and openblas) vs ref over shapes and transposes", "[kernels]") {
  std::vector<std::string> backends{"cpu"};
  if (has_openblas())
    backends.push_back("openblas");
  else
    WARN("OpenBLAS backend not compiled in: skipping its parity checks");
  struct Case { int64_t B, M, K, N; };
  for (DType dt : {DType::f32, DType::f64})
    for (auto c : {Case{1, 64, 64, 64}, Case{3, 37, 53, 29}, Case{2, 130, 70, 260}, Case{1, 5, 300, 600}}) {
      Tensor a = randn({c.B, c.M, c.K}, dt), b = randn({c.B, c.K, c.N}, dt);
      Tensor at = randn({c.B, c.K, c.M}, dt).transpose(1, 2), bt2 = randn({c.B, c.N, c.K}, dt).transpose(1, 2);
      for (auto& be : backends) {
        std::string what = "gemm " + std::to_string(c.M) + "x" + std::to_string(c.K) + "x" + std::to_string(c.N);
        double tol = dtype_tol(dt, c.K);
        compare_backend(be, "gemm", what + " NN", [&] { return matmul(a, b); }, tol);
        compare_backend(be, "gemm", what + " TN", [&] { return matmul(at, b); }, tol);
        compare_backend(be, "gemm", what + " NT", [&] { return matmul(a, bt2); }, tol);
        compare_backend(be, "gemm", what + " TT", [&] { return matmul(at, bt2); }, tol);
      }
    }
  // bf16 / f16 operands, f32 accumulation: vs the double-accumulating ref, and
  // bit-identical to the f32 GEMM on the widened values
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor a = randn({2, 37, 300}).to(dt), b = randn({2, 300, 70}).to(dt);
    Tensor at = randn({2, 300, 37}).to(dt).transpose(1, 2);
    compare_backend("cpu", "gemm", std::string("gemm ") + dtype_name(dt), [&] { return matmul(a, b); },
                    dtype_tol(dt, 300));
    compare_backend("cpu", "gemm", std::string("gemm TN ") + dtype_name(dt), [&] { return matmul(at, b); },
                    dtype_tol(dt, 300));
    Tensor wide = matmul(a.to(DType::f32), b.to(DType::f32)).to(dt);
    CHECK(bit_equal(matmul(a, b), wide));
    CHECK(last_backend("gemm") == "cpu");
  }
  // a broadcast batch operand (batch stride 0)
  Tensor w = randn({40, 50}), x = randn({3, 50, 60});
  compare_backend("cpu", "gemm", "gemm broadcast batch", [&] { return matmul(w, x); }, dtype_tol(DType::f32, 50));
}

TEST_CASE("kernels: a GEMM a few columns wide (a classifier head) equals its transpose's product, bit for bit", "[kernels]") {
  // sgemm computes a product at most half a micro-tile wide as C^T = B^T A^T
  // (then transposes it into C): each C element must be the bits of the
  // transposed problem run the ordinary way, A and B in either layout, over one
  // and two K blocks, accumulating onto C, and with the epilogue; and within
  // the f32 tolerance of the f64 ref.
  ThreadCount threads(2);
  for_each_gemm_path({{"avx512"}, {"avx2"}, {"sse"}}, [&](const GemmPath&) {
    for (int64_t N : {1, 3, 8, 10, 16})
      for (int64_t M : {64, 130})
        for (int64_t K : {7, 256, 600}) {  // 600: two K blocks of 300 (kc 512 for both orientations here)
          for (int layout = 0; layout < 4; ++layout) {
            INFO("M " << M << " N " << N << " K " << K << " layout " << layout);
            manual_seed(uint64_t(N * 1000 + M + K + layout));
            Tensor a = layout & 1 ? randn({K, M}).t() : randn({M, K}), b = layout & 2 ? randn({N, K}).t() : randn({K, N});
            Tensor c0 = randn({M, N}), bias = randn({N});
            auto mat = [](const Tensor& t) { return kern::cpu::MatF{t.data_ptr<float>(), t.stride(0), t.stride(1)}; };
            for (int mode = 0; mode < 3; ++mode) {  // plain, accumulate, bias + ReLU epilogue
              INFO("mode " << mode);
              kern::cpu::GemmEpilogue ep{bias.data_ptr<float>(), false, true};
              Tensor c = mode == 1 ? c0.clone() : zeros({M, N});
              kern::cpu::sgemm(M, N, K, mat(a), mat(b), c.data_ptr<float>(), N, mode == 1, mode == 2 ? &ep : nullptr);
              // the transposed problem, N' = M columns: the ordinary tiling
              Tensor ct = mode == 1 ? c0.t().clone().contiguous() : zeros({N, M});  // (N = 1: c0.t() is contiguous, a view)
              kern::cpu::sgemm(N, M, K, mat(b).t(), mat(a).t(), ct.data_ptr<float>(), M, mode == 1);
              Tensor want = ct.t().contiguous();
              if (mode == 2) {
                float* w = want.data_ptr<float>();
                const float* bp = bias.data_ptr<float>();
                for (int64_t i = 0; i < M; ++i)
                  for (int64_t j = 0; j < N; ++j) {
                    float v = w[i * N + j] + bp[j];
                    w[i * N + j] = v < 0.f ? 0.f : v;
                  }
              }
              CHECK(bit_equal(c, want));
              Tensor ref = matmul(a.to(DType::f64), b.to(DType::f64));
              if (mode == 1) ref = ref + c0.to(DType::f64);
              if (mode == 2) ref = relu(ref + bias.to(DType::f64));
              expect_close(c, ref.to(DType::f32), dtype_tol(DType::f32, K), "vs f64");
            }
          }
        }
  });
}

TEST_CASE("kernels: the bf16 GEMMs (AVX512-BF16, AMX) under bf16 autocast vs the f32 GEMM of the rounded operands", "[kernels]") {
  if (!kern::cpu::sgemm_bf16_supported()) {
    WARN("SKIPPED: CPU lacks AVX512-BF16 (or the sgemm ISA is not avx512): the bf16 dot-product GEMM did not run");
    GemmBf16Scope on(true);
    CHECK_FALSE(kern::cpu::gemm_bf16_active());
    return;
  }
  CHECK_FALSE(kern::cpu::gemm_bf16_active());
  {
    AutocastGuard ac({LowPrecision::bf16});
    CHECK(kern::cpu::gemm_bf16_active());
    AutocastGuard off({});
    CHECK_FALSE(kern::cpu::gemm_bf16_active());
  }
  // Each bf16 kernel the machine has (AVX512-BF16 dot products, AMX tiles),
  // every packing path: A row- and column-major (full and partial strips),
  // B row- and column-major, odd K (a half-empty last pair), K split into
  // several blocks and not a multiple of a tile's 32, tails in M and N,
  // accumulation into C.
  struct Restore {
    std::string prev = kern::cpu::bf16_gemm_kernel();
    ~Restore() { kern::cpu::set_bf16_gemm_kernel(prev); }
  } restore;
  for (const char* kernel : {"avx512bf16", "amx"}) {
    if (!kern::cpu::bf16_gemm_kernel_supported(kernel)) {
      WARN("SKIPPED: this machine lacks the bf16 GEMM kernel " << kernel);
      CHECK_THROWS_WITH(kern::cpu::set_bf16_gemm_kernel(kernel), Catch::Contains("does not support"));
      continue;
    }
    kern::cpu::set_bf16_gemm_kernel(kernel);
    CHECK(kern::cpu::bf16_gemm_kernel() == kernel);
    struct Case { int64_t M, K, N; };
    for (auto c : {Case{1, 1, 1}, Case{8, 2, 32}, Case{37, 53, 29}, Case{64, 288, 196}, Case{130, 1030, 70},
                   Case{96, 544, 64}}) {
      for (int layout = 0; layout < 4; ++layout) {
        INFO(kernel << " " << c.M << "x" << c.K << "x" << c.N << " layout " << layout);
        Tensor a = layout & 1 ? randn({c.K, c.M}).t() : randn({c.M, c.K});
        Tensor b = layout & 2 ? randn({c.N, c.K}).t() : randn({c.K, c.N});
        Tensor ar = a.to(DType::bf16).to(DType::f64), br = b.to(DType::bf16).to(DType::f64);
        Tensor want = matmul(ar, br);  // exact products of the rounded operands, f64 sums
        Tensor got, got_acc = randn({c.M, c.N});
        Tensor acc0 = got_acc.clone();
        {
          GemmBf16Scope on(true);
          got = matmul(a, b);
          // C += A @ B straight through the kernel (the conv weight gradient's accumulation)
          kern::cpu::sgemm(c.M, c.N, c.K, kern::cpu::MatF{a.data_ptr<float>(), a.stride(0), a.stride(1)},
                           kern::cpu::MatF{b.data_ptr<float>(), b.stride(0), b.stride(1)}, got_acc.data_ptr<float>(), c.N,
                           true);
        }
        // f32 accumulation over K products: the f32 GEMM's own tolerance
        expect_close(got.to(DType::f64), want, dtype_tol(DType::f32, c.K) * 4, std::string(kernel) + " GEMM");
        expect_close(got_acc.to(DType::f64), acc0.to(DType::f64) + want, dtype_tol(DType::f32, c.K) * 4,
                     std::string(kernel) + " GEMM accumulating");
        // and it really rounded: differs from the f32 GEMM of the unrounded operands
        if (c.K >= 53) CHECK(max_rel_err(got, matmul(a, b)) > 1e-4);
      }
    }
  }
  CHECK_THROWS_WITH(kern::cpu::set_bf16_gemm_kernel("amx2"), Catch::Contains("unknown kernel 'amx2'"));
}

TEST_CASE("kernels: under bf16 autocast an ISA without bf16 dot products multiplies rounded copies", "[kernels]") {
  // The contract linear's folded casts rely on: GemmBf16Scope means bf16
  // operands on every CPU path, not only where AVX512-BF16 or AMX exist.
  struct IsaGuard {
    ~IsaGuard() { kern::cpu::set_sgemm_isa("auto"); }
  } guard;
  for (const char* isa : {"avx2", "sse"}) {
    if (!kern::cpu::sgemm_isa_supported(isa)) {
      WARN("SKIPPED: this CPU lacks " << isa);
      continue;
    }
    kern::cpu::set_sgemm_isa(isa);
    for (int layout = 0; layout < 4; ++layout) {
      INFO(isa << " layout " << layout);
      manual_seed(11 + layout);
      Tensor a = layout & 1 ? randn({53, 37}).t() : randn({37, 53});
      Tensor b = layout & 2 ? randn({29, 53}).t() : randn({53, 29});
      Tensor got;
      {
        GemmBf16Scope on(true);
        CHECK_FALSE(kern::cpu::gemm_bf16_active());
        got = matmul(a, b);
      }
      // the same f32 kernel on operands rounded beforehand
      Tensor want = matmul(a.to(DType::bf16).to(DType::f32), b.to(DType::bf16).to(DType::f32));
      CHECK(bit_equal(got, want));
      CHECK(max_rel_err(got, matmul(a, b)) > 1e-4);  // it did round
    }
  }
}

TEST_CASE("kernels: BRISK_GEMM switch: native by default, openblas or auto on request", "[kernels]") {
  struct Restore {
    std::string prev = gemm_backend();
    ~Restore() { set_gemm_backend(prev); }
  } restore;
  set_gemm_backend("native");
  matmul(randn({128, 128}), randn({128, 128}));
  CHECK(last_backend("gemm") == "cpu");
  CHECK_THROWS_WITH(set_gemm_backend("mkl"), Catch::Contains("unknown GEMM backend 'mkl'"));
  CHECK(gemm_backend() == "native");
  if (!has_openblas()) {
    WARN("OpenBLAS backend not compiled in: skipping the openblas half");
    CHECK_THROWS_WITH(set_gemm_backend("openblas"), Catch::Contains("not compiled in"));
    return;
  }
  set_gemm_backend("openblas");
  CHECK(gemm_backend() == "openblas");
  matmul(randn({128, 128}), randn({128, 128}));
  CHECK(last_backend("gemm") == "openblas");
}

TEST_CASE("kernels: openblas declines shapes it does not win on", "[kernels]") {
  if (!has_openblas()) {
    WARN("OpenBLAS backend not compiled in: skipping");
    return;
  }
  struct Restore {
    std::string prev = gemm_backend();
    ~Restore() { set_gemm_backend(prev); }
  } restore;
  set_gemm_backend("auto");  // priority order: OpenBLAS first where it accepts
  matmul(randn({4, 4}), randn({4, 4}));
  CHECK(last_backend("gemm") == "cpu");  // tiny: native kernel
  matmul(randn({128, 128}), randn({128, 128}));
  CHECK(last_backend("gemm") == "openblas");
  matmul(randn({128, 128}), randn({128, 128}).slice(1, 0, 128, 2));  // no unit stride: native
  CHECK(last_backend("gemm") == "cpu");
  // Inside a brisk parallel region OpenBLAS would oversubscribe: native runs.
  // (Two pool threads, whatever BRISK_NUM_THREADS says: with one, parallel_for
  // runs inline and there is no parallel region.)
  bt::ThreadCount threads(2);
  Tensor a = randn({128, 128}), b = randn({128, 128});
  std::vector<std::string> seen(2);
  parallel_for(0, 2, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      matmul(a, b);
      seen[size_t(i)] = last_backend("gemm");
    }
  });
  CHECK(seen[0] == "cpu");
  CHECK(seen[1] == "cpu");
}

TEST_CASE("kernels: cpu im2col/col2im vs ref", "[kernels]") {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = randn({2, 3, 9, 8}, dt);
    Geom2d g{2, 3, 9, 8, 3, 2, 2, 1, 1, 0, 2, 1, 0, 0};
    g.Ho = (9 + 2 - 2 * 2 - 1) / 2 + 1;
    g.Wo = (8 - 1 - 1) / 1 + 1;
    compare_backend("cpu", "im2col", "im2col", [&] { return im2col(x, g); }, 0);
    Tensor cols = randn({2, 3 * 3 * 2, g.Ho * g.Wo}, dt);
    compare_backend("cpu", "col2im", "col2im", [&] { return col2im(cols, g); }, dtype_tol(dt, 6));
  }
}

TEST_CASE("kernels: cpu max_pool2d forward/backward and casting copies vs ref", "[kernels]") {
  namespace F = brisk::nn::functional;
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = randn({3, 4, 9, 10}, dt);
    compare_backend("cpu", "max_pool2d", "max_pool2d k2", [&] { return F::max_pool2d(x, 2); }, 0);
    compare_backend("cpu", "max_pool2d", "max_pool2d k3 s2 p1", [&] { return F::max_pool2d(x, 3, F::Pair(2), 1); }, 0);
    compare_backend("cpu", "max_pool2d_backward", "max_pool2d backward", [&] {
      Tensor xl = x.clone().requires_grad_();
      Tensor y = F::max_pool2d(xl, 3, F::Pair(2), 1);
      sum(y * y).backward();
      return xl.grad();
    }, dtype_tol(dt, 4));
    // the 2x2 fast path: gradients land on the same (first-max) elements,
    // also with ties (rounded values repeat within windows)
    Tensor xr = (x * 2.0).to(DType::i32).to(dt);
    compare_backend("cpu", "max_pool2d_backward", "max_pool2d k2 backward with ties", [&] {
      Tensor xl = xr.clone().requires_grad_();
      Tensor y = F::max_pool2d(xl, 2);
      sum(y * y).backward();
      return cat({y.reshape({-1}), xl.grad().reshape({-1})});
    }, 0);
    Tensor xo = (randn({2, 3, 7, 37}, dt) * 2.0).to(DType::i32).to(dt);  // odd height and width, a 16-window row tail
    compare_backend("cpu", "max_pool2d_backward", "max_pool2d k2 backward, odd sizes", [&] {
      Tensor xl = xo.clone().requires_grad_();
      Tensor y = F::max_pool2d(xl, 2);
      sum(y * y).backward();
      return cat({y.reshape({-1}), xl.grad().reshape({-1})});
    }, 0);
    {  // the kernel writes every element of gx (its buffer starts as NaN here, not as fresh zero pages)
      Geom2d g{2, 3, 7, 37, 2, 2, 2, 2, 0, 0, 1, 1, 3, 18};
      Tensor y = empty({2, 3, 3, 18}, dt), idx = empty({2, 3, 3, 18}, DType::i64), gy = randn({2, 3, 3, 18}, dt);
      {
        Tensor ins[1] = {xo}, outs[2] = {y, idx};
        dispatch("max_pool2d", DeviceType::cpu, dt, KernelArgs{ins, outs, &g});
      }
      Tensor got = full({2, 3, 7, 37}, NAN, dt), want = full({2, 3, 7, 37}, NAN, dt);
      Tensor ins[2] = {gy, idx}, o1[1] = {got}, o2[1] = {want};
      dispatch("max_pool2d_backward", DeviceType::cpu, dt, KernelArgs{ins, o1, &g});
      {
        ForceBackend fb("ref");
        dispatch("max_pool2d_backward", DeviceType::cpu, dt, KernelArgs{ins, o2, &g});
      }
      CHECK(bit_equal(got, want));
    }
    for (DType to : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean})
      compare_backend("cpu", "copy", std::string("cast to ") + dtype_name(to), [&] { return (x * 100.0).transpose(2, 3).to(to); }, 0);
  }
  Tensor nan_x = randn({1, 1, 4, 4});
  nan_x.data_ptr<float>()[5] = NAN;
  nan_x.data_ptr<float>()[10] = NAN;  // two NaNs in one window (10, 11): the first wins
  nan_x.data_ptr<float>()[11] = NAN;
  compare_backend("cpu", "max_pool2d", "max_pool2d NaN", [&] { return F::max_pool2d(nan_x, 2); }, 0);
  compare_backend("cpu", "max_pool2d_backward", "max_pool2d NaN backward", [&] {
    Tensor xl = nan_x.clone().requires_grad_();
    F::max_pool2d(xl, 2).backward(ones({1, 1, 2, 2}));
    return xl.grad();
  }, 0);
  Tensor b = gt(randn({50, 7}), scalar_tensor(0.0));
  compare_backend("cpu", "copy", "bool to f32", [&] { return b.to(DType::f32); }, 0);
}

TEST_CASE("kernels: fused batch norm (cpu and ref) vs the composite, forward and backward", "[kernels]") {
  namespace F = brisk::nn::functional;
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x0 = randn({6, 5, 7, 3}, dt) * 2.0 + 1.0, w0 = randn({5}, dt), b0 = randn({5}, dt);
    Tensor gy = randn({6, 5, 7, 3}, dt);
    auto run = [&](bool fused) {
      Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      Tensor rm = zeros({5}, dt), rv = ones({5}, dt);
      Tensor y = fused ? F::batch_norm(x, rm, rv, w, b, true) : F::batch_norm_composite(x, rm, rv, w, b, true);
      y.backward(gy);
      return cat({y.reshape({-1}), x.grad().reshape({-1}), w.grad(), b.grad(), rm, rv});
    };
    Tensor composite = run(false);
    for (const char* be : {"cpu", "ref"}) {
      ForceBackend fb(be);
      Tensor fused = run(true);
      CHECK(last_backend("batch_norm_bwd") == be);
      expect_close(fused, composite, dtype_tol(dt, 6 * 21), std::string("batch_norm fused ") + be);
    }
  }
}

TEST_CASE("kernels: fused conv2d (native) vs ref and vs the composite, fwd and bwd", "[kernels]") {
  struct Case { int64_t N, C, H, W, O, k, stride, pad, dil; bool bias, relu; };
  std::vector<Case> cases{{3, 3, 12, 11, 8, 3, 1, 1, 1, true, true},  {2, 1, 28, 28, 32, 3, 1, 1, 1, true, false},
                          {2, 5, 9, 9, 4, 3, 2, 0, 1, false, false}, {2, 4, 7, 8, 6, 1, 1, 0, 1, true, true},
                          {1, 2, 10, 10, 3, 3, 1, 2, 2, false, true}, {5, 6, 6, 6, 40, 2, 2, 1, 1, true, false},
                          // the cnn's second layer (forward as y^T: 196 positions fill 8-row tiles better than
                          // 32-column ones) and a layer whose weight gradient runs as gw^T (CKK 18 < O 64)
                          {2, 32, 14, 14, 64, 3, 1, 1, 1, true, true}, {2, 2, 9, 9, 64, 3, 1, 1, 1, true, false},
                          // thin first layers (C*k*k <= 16): channel counts off the 8-channel blocks, a
                          // position count off the 16-lane chunks, dilation; C*k*k = 16 (the weight
                          // gradient's row blocks, 5 rows at a time without AVX-512, and a ragged last)
                          {2, 1, 9, 7, 5, 3, 1, 1, 1, true, true}, {2, 1, 10, 10, 12, 3, 1, 2, 2, false, false},
                          {2, 4, 7, 7, 6, 2, 1, 0, 1, true, false}};
  for (auto c : cases) {
    Tensor x0 = randn({c.N, c.C, c.H, c.W}), w0 = randn({c.O, c.C, c.k, c.k}) * 0.3, b0 = randn({c.O});
    // ReLU's kink: a pre-activation within rounding of 0 (8e-7 once, a sum of
    // 288 terms) is positive in one summation order and not in another, and
    // the two backward passes then differ by a whole gradient element. Such
    // inputs say nothing about the kernels: draw again until every
    // pre-activation is clear of 0 (1e-4, about 100x the sums' rounding).
    for (int tries = 0; c.relu && tries < 20; ++tries) {
      Tensor pre = F::conv2d_composite(x0.to(DType::f64), w0.to(DType::f64), c.bias ? b0.to(DType::f64) : Tensor(),
                                       c.stride, c.pad, c.dil, 1, false);
      if (min(abs(pre)).item() >= 1e-4) break;
      x0 = randn({c.N, c.C, c.H, c.W});
    }
    Tensor r = randn({c.N, c.O, (c.H + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1,
                      (c.W + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1});
    auto run = [&](bool composite) {
      Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      Tensor bb = c.bias ? b : Tensor();
      Tensor y = composite ? F::conv2d_composite(x, w, bb, c.stride, c.pad, c.dil, 1, c.relu)
                           : F::conv2d_relu(x, w, bb, c.stride, c.pad, c.dil, 1, c.relu);
      sum(y * r).backward();
      std::vector<Tensor> parts{y.reshape({-1}), x.grad().reshape({-1}), w.grad().reshape({-1})};
      if (c.bias) parts.push_back(b.grad());
      return cat(parts);
    };
    std::string what = "conv " + std::to_string(c.C) + "->" + std::to_string(c.O) + " k" + std::to_string(c.k) +
                       " s" + std::to_string(c.stride) + " p" + std::to_string(c.pad) + " d" + std::to_string(c.dil) +
                       (c.relu ? " relu" : "");
    double tol = dtype_tol(DType::f32, c.N * c.C * c.k * c.k * c.H * c.W);
    // Every GEMM micro-kernel the CPU has (and with it the AVX-512 or the
    // portable im2col rows, and each ISA's tile shape choosing the orientation).
    struct IsaRestore {
      ~IsaRestore() { kern::cpu::set_sgemm_isa("auto"); }
    } restore;
    for (const char* isa : {"avx512", "avx2", "sse"}) {
      if (!kern::cpu::sgemm_isa_supported(isa)) {
        WARN("SKIPPED: conv2d on the " << isa << " GEMM: this CPU lacks it");
        continue;
      }
      kern::cpu::set_sgemm_isa(isa);
      // Each fused op ran on the native kernel, and matches the naive ref kernel.
      for (const char* op : {"conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight"})
        compare_backend("cpu", op, what + " " + op + " " + isa, [&] { return run(false); }, tol);
      // The fused op equals the composite it overrides.
      expect_close(run(false), run(true), tol, what + " fused vs composite " + isa);
    }
  }
}

// Under bf16 autocast the convolutions run on the bf16 GEMM kernel; on AMX
// tiles the "same" geometries (stride 1, output size = input size) take
// conv2d_amx.cpp's packed path for the forward and the input gradient. Each
// kernel the machine has, against the ref kernel honouring the same folded
// casts (double sums: the outputs, rounded to bf16, may differ by one bf16
// ulp where the f32 and double sums straddle a rounding boundary).
TEST_CASE("kernels: conv2d under bf16 autocast on each bf16 GEMM kernel vs ref", "[kernels]") {
  struct Case { int64_t N, C, H, W, O, k, pad, dil, stride; bool bias, relu; };
  std::vector<Case> cases{
      {3, 3, 12, 11, 40, 3, 1, 1, 1, true, true},   // K = 27 (< one tile deep), O = 40 (a partial A strip), L = 132;
                                                    // C = 3: the input gradient takes the unfold-then-GEMM path
      {2, 32, 14, 14, 64, 3, 1, 1, 1, true, true},  // the cnn's second layer: K = 288, L = 196
      {2, 1, 28, 28, 32, 3, 1, 1, 1, true, false},  // the cnn's first layer: K = 9
      {2, 5, 9, 10, 20, 5, 4, 2, 1, false, true},   // 5x5, dilation 2, pad 4: still "same"
      {2, 4, 9, 9, 6, 3, 0, 1, 2, true, false},     // stride 2: not "same", the GEMM path
  };
  struct Restore {
    std::string prev = kern::cpu::bf16_gemm_kernel();
    ~Restore() { kern::cpu::set_bf16_gemm_kernel(prev); }
  } restore;
  bool any = false;
  for (const char* kernel : {"amx", "avx512bf16"}) {
    if (!kern::cpu::bf16_gemm_kernel_supported(kernel)) {
      WARN("SKIPPED: conv2d on the bf16 GEMM kernel " << kernel << ": this machine lacks it");
      continue;
    }
    any = true;
    kern::cpu::set_bf16_gemm_kernel(kernel);
    for (auto c : cases) {
      int64_t Ho = (c.H + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1,
              Wo = (c.W + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1;
      Tensor x0 = randn({c.N, c.C, c.H, c.W}), w0 = randn({c.O, c.C, c.k, c.k}) * 0.3, b0 = randn({c.O});
      Tensor r = randn({c.N, c.O, Ho, Wo});
      auto run = [&] {
        Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
        Tensor y;
        {
          AutocastGuard ac({LowPrecision::bf16});
          y = F::conv2d_relu(x, w, c.bias ? b : Tensor(), c.stride, c.pad, c.dil, 1, c.relu);
          sum(y * r).backward();
        }
        std::vector<Tensor> parts{y.reshape({-1}), x.grad().reshape({-1}), w.grad().reshape({-1})};
        if (c.bias) parts.push_back(b.grad());
        return cat(parts);
      };
      std::string what = std::string(kernel) + " conv " + std::to_string(c.C) + "->" + std::to_string(c.O) + " k" +
                         std::to_string(c.k) + " s" + std::to_string(c.stride) + " d" + std::to_string(c.dil);
      double tol = dtype_tol(DType::bf16, c.C * c.k * c.k * 4);
      for (const char* op : {"conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight"})
        compare_backend("cpu", op, what + " " + op, [&] { return run(); }, tol);
    }
  }
  if (!any) return;
  // The packed AMX forward itself, called directly (so a dispatch change
  // cannot route around it), against the ref forward on rounded operands.
  if (!kern::cpu::bf16_gemm_kernel_supported("amx")) return;
  kern::cpu::set_bf16_gemm_kernel("amx");
  for (bool bf16_out : {false, true}) {
    Geom2d g{2, 3, 12, 11, 3, 3, 1, 1, 1, 1, 1, 1, 12, 11};
    REQUIRE(kern::cpu::conv2d_amx_applies(g));
    Tensor x = randn({2, 3, 12, 11}).to(DType::bf16).to(DType::f32);
    Tensor w = (randn({40, 3, 3, 3}) * 0.3).to(DType::bf16).to(DType::f32), b = randn({40});
    Tensor got = empty({2, 40, 12, 11}), want = empty({2, 40, 12, 11});
    {
      GemmBf16Scope on(true);
      kern::cpu::conv2d_forward_amx(x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), g, 40, true,
                                    bf16_out, got.data_ptr<float>());
    }
    ConvParams p{g, true, bf16_out};
    Tensor ins[3] = {x, w, b}, outs[1] = {want};
    {
      ForceBackend fb("ref");
      dispatch(opkey::conv2d_fwd, DeviceType::cpu, DType::f32, KernelArgs{ins, outs, &p});
    }
    expect_close(got, want, bf16_out ? dtype_tol(DType::bf16, 27) : dtype_tol(DType::f32, 27) * 4,
                 bf16_out ? "AMX conv forward, output rounded" : "AMX conv forward");
    if (bf16_out) CHECK(bit_equal(got.to(DType::bf16).to(DType::f32), got));
  }
}

// conv2d_max_pool2d's backward hands the CPU kernels the pooled gradient and
// the pool's indices; each expands one sample at a time (GySample in
// kernels/cpu/conv2d.cpp; on AMX tiles, the input gradient's unfold reads the
// expanded sample through a ConvSampleSource; the f32 Winograd input
// gradient expands it into its zero-bordered planes). Against the ref kernels, which
// expand with their own scatter, on every f32 GEMM ISA and bf16 GEMM kernel
// the CPU has; and in f32 against the unfused max_pool2d(conv2d_composite).
TEST_CASE("kernels: conv2d + 2x2 max pool, backward kernels on the pooled gradient vs ref", "[kernels]") {
  struct Case { int64_t N, C, H, W, O; };
  std::vector<Case> cases{{2, 32, 14, 14, 64},  // the cnn's second layer (AMX: the input gradient's source path)
                          {2, 1, 28, 28, 32},   // the cnn's first layer
                          {3, 16, 9, 7, 24}};   // odd height and width: the last row and column get no gradient
  struct Restore {
    std::string bf16 = kern::cpu::bf16_gemm_kernel();
    ~Restore() {  // the f32 ISA first: a bf16 kernel is usable only over the AVX-512 sgemm
      kern::cpu::set_sgemm_isa("auto");
      kern::cpu::set_bf16_gemm_kernel(bf16);
    }
  } restore;
  for (const char* mode : {"avx512", "avx2", "sse", "amx", "avx512bf16"}) {
    bool bf16 = std::string(mode) == "amx" || std::string(mode) == "avx512bf16";
    if (bf16) kern::cpu::set_sgemm_isa("auto");  // the sse pass above would hide every bf16 kernel
    if (bf16 ? !kern::cpu::bf16_gemm_kernel_supported(mode) : !kern::cpu::sgemm_isa_supported(mode)) {
      WARN("SKIPPED: conv2d + max pool on the " << mode << " GEMM: this CPU lacks it");
      continue;
    }
    kern::cpu::set_sgemm_isa(bf16 ? "auto" : mode);
    if (bf16) kern::cpu::set_bf16_gemm_kernel(mode);
    for (auto c : cases) {
      Tensor x0 = randn({c.N, c.C, c.H, c.W}), w0 = randn({c.O, c.C, 3, 3}) * 0.3, b0 = randn({c.O});
      Tensor r = randn({c.N, c.O, c.H / 2, c.W / 2});
      auto run = [&](bool unfused) {
        Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
        Tensor y;
        {
          std::optional<AutocastGuard> ac;
          if (bf16) ac.emplace(AutocastPolicy{LowPrecision::bf16});
          y = unfused ? F::max_pool2d(F::conv2d_composite(x, w, b, 1, 1, 1, 1, false), 2)
                      : F::conv2d_max_pool2d(x, w, b, 1, 1);
          sum(y * r).backward();
        }
        return cat({y.reshape({-1}), x.grad().reshape({-1}), w.grad().reshape({-1}), b.grad()});
      };
      std::string what = std::string(mode) + " conv " + std::to_string(c.C) + "->" + std::to_string(c.O) + " " +
                         std::to_string(c.H) + "x" + std::to_string(c.W) + " + pool";
      double tol = bf16 ? dtype_tol(DType::bf16, c.C * 9 * 4) : dtype_tol(DType::f32, c.N * c.C * 9 * c.H * c.W);
      for (const char* op : {"conv2d_pool_fwd", "conv2d_bwd_input", "conv2d_bwd_weight"})
        compare_backend("cpu", op, what + " " + op, [&] { return run(false); }, tol);
      if (!bf16) expect_close(run(false), run(true), tol, what + " vs unfused composite");
    }
  }
}

// The fused conv + pool's window codes (one byte: 2 * row + column in the
// window) against max_pool2d's own indices on the same planes: with ties,
// NaNs (first NaN wins), odd sizes and every length of a vector row's tail
// (16 windows with AVX-512, 8 with AVX2); and their backward writing every
// element of a plane that starts as NaN.
TEST_CASE("kernels: 2x2 max pool window codes match the pool's indices, forward and backward", "[kernels]") {
  const int64_t H = 7, Ho = 3, P = 6;
  for (int64_t W : {37, 32, 31, 30, 29, 27, 25, 23, 21, 19, 17, 16, 15, 13, 11, 9, 7, 5, 3, 2}) {
    const int64_t Wo = W / 2;
    Geom2d g{1, 1, H, W, 2, 2, 2, 2, 0, 0, 1, 1, Ho, Wo};
    Tensor x = (randn({P, H, W}) * 2.0).to(DType::i32).to(DType::f32);  // ties within windows
    float* xp = x.data_ptr<float>();
    xp[3 % W] = NAN;                       // plane 0, row 0: a NaN (at a window's second column if W > 3)
    xp[W + 10 % W] = NAN;                  // row 1 as well: in the same window for W = 37, the first NaN wins
    xp[2 * H * W + 3 * W + W - 2] = NAN;   // plane 2: row 3, the lower row of a window, in the row's tail
    xp[4 * H * W + 2 * W + 2 * Wo - 1] = NAN;
    Tensor gy = randn({P, Ho, Wo});
    std::vector<float> all_y(P * Ho * Wo), all_g(P * H * W);  // each plane's results, for the slack form below
    std::vector<uint8_t> all_code(P * Ho * Wo);
    for (int64_t p = 0; p < P; ++p) {
      std::vector<float> y64(Ho * Wo), y8(Ho * Wo);
      std::vector<int64_t> idx(Ho * Wo);
      std::vector<uint8_t> code(Ho * Wo);
      kern::cpu::max_pool_2x2(xp + p * H * W, g, y64.data(), idx.data());
      kern::cpu::max_pool_2x2(xp + p * H * W, g, y8.data(), code.data());
      for (int64_t l = 0; l < Ho * Wo; ++l) {
        int64_t oh = l / Wo, ow = l % Wo, want = -1;  // the first NaN, else the first maximum, in row-major order
        for (int64_t k = 0; k < 4; ++k) {
          float v = xp[p * H * W + (2 * oh + k / 2) * W + 2 * ow + k % 2];
          if (std::isnan(v)) {
            want = k;
            break;
          }
          if (want < 0 || v > xp[p * H * W + (2 * oh + want / 2) * W + 2 * ow + want % 2]) want = k;
        }
        float wantv = xp[p * H * W + (2 * oh + want / 2) * W + 2 * ow + want % 2];
        INFO("width " << W << " plane " << p << " window " << l);
        CHECK(int64_t(code[size_t(l)]) == want);
        CHECK(idx[size_t(l)] == (2 * oh + want / 2) * W + 2 * ow + want % 2);
        CHECK(std::memcmp(&y64[size_t(l)], &wantv, sizeof(float)) == 0);
        CHECK(std::memcmp(&y64[size_t(l)], &y8[size_t(l)], sizeof(float)) == 0);
      }
      // the backward against a scatter into zeros: each window's gradient at its argmax
      std::vector<float> g64(H * W, NAN), g8(H * W, NAN), want(H * W, 0.f);
      const float* gp = gy.data_ptr<float>() + p * Ho * Wo;
      for (int64_t l = 0; l < Ho * Wo; ++l) want[size_t(idx[size_t(l)])] = gp[l];
      REQUIRE(kern::cpu::max_pool_2x2_backward(gp, idx.data(), g, g64.data()));
      kern::cpu::max_pool_2x2_backward_codes(gp, code.data(), g, g8.data());
      INFO("width " << W << " plane " << p);
      CHECK(std::memcmp(g64.data(), want.data(), g64.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(g64.data(), g8.data(), g64.size() * sizeof(float)) == 0);
      // an index outside its window is refused (the caller then scatters)
      std::vector<int64_t> off = idx;
      off[size_t(Ho * Wo - 1)] += W + 2;
      CHECK_FALSE(kern::cpu::max_pool_2x2_backward(gp, off.data(), g, g64.data()));
      std::copy(y8.begin(), y8.end(), all_y.begin() + p * Ho * Wo);
      std::copy(code.begin(), code.end(), all_code.begin() + p * Ho * Wo);
      std::copy(g8.begin(), g8.end(), all_g.begin() + p * H * W);
    }
    // The slack form, as the fused conv kernels call it: the planes in order
    // in one buffer, each allowed to read and spill past its end into the
    // next plane, the last one's output into kPoolSlack more elements; the
    // inputs end exactly at the last plane (so ASan sees an over-read). Same
    // bits as plane by plane, and the guard after the slack left alone.
    const int64_t slack = kern::cpu::kPoolSlack, guard = 24;
    std::vector<float> xin(xp, xp + P * H * W), gin(gy.data_ptr<float>(), gy.data_ptr<float>() + P * Ho * Wo);
    std::vector<float> ys(P * Ho * Wo + slack + guard, 7.f), gs(P * H * W + slack + guard, 7.f);
    std::vector<uint8_t> cs(P * Ho * Wo + slack + guard, 9);
    for (int64_t p = 0; p < P; ++p)
      kern::cpu::max_pool_2x2(xin.data() + p * H * W, g, ys.data() + p * Ho * Wo, cs.data() + p * Ho * Wo,
                              kern::cpu::PoolSlack{(P - p - 1) * H * W, (P - p - 1) * Ho * Wo + slack});
    std::vector<uint8_t> cin(all_code);  // exactly P planes of codes
    for (int64_t p = 0; p < P; ++p)
      kern::cpu::max_pool_2x2_backward_codes(gin.data() + p * Ho * Wo, cin.data() + p * Ho * Wo, g,
                                             gs.data() + p * H * W,
                                             kern::cpu::PoolSlack{(P - p - 1) * Ho * Wo, (P - p - 1) * H * W + slack});
    INFO("width " << W << ", with slack");
    CHECK(std::memcmp(ys.data(), all_y.data(), all_y.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(cs.data(), all_code.data(), all_code.size()) == 0);
    CHECK(std::memcmp(gs.data(), all_g.data(), all_g.size() * sizeof(float)) == 0);
    for (int64_t i = 0; i < guard; ++i) {
      CHECK(ys[size_t(P * Ho * Wo + slack + i)] == 7.f);
      CHECK(cs[size_t(P * Ho * Wo + slack + i)] == 9);
      CHECK(gs[size_t(P * H * W + slack + i)] == 7.f);
    }
  }
}

TEST_CASE("kernels: whole conv2d forward and backward, native vs ref", "[kernels]") {
  Tensor x0 = randn({4, 3, 12, 12}), w0 = randn({8, 3, 3, 3});
  auto run = [&] {
    Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
    Tensor y = F::conv2d(x, w, Tensor(), 1, 1);
    sum(y * y).backward();
    return cat({y.reshape({-1}), x.grad().reshape({-1}), w.grad().reshape({-1})});
  };
  Tensor ref_out, out;
  {
    ForceBackend fb("ref");
    ref_out = run();
  }
  out = run();
  expect_close(out, ref_out, dtype_tol(DType::f32, 4 * 144 * 8), "conv2d fwd+bwd");
}

// The weight gradient sums fixed blocks of samples, one partial per block
// added in block order, whichever thread ran a block: its bits are the same
// at every thread count (thin first layer and GEMM layer, plain and pooled,
// a batch that is not a whole number of blocks).
TEST_CASE("kernels: conv2d weight gradient has the same bits at 1, 2 and 3 threads", "[kernels]") {
  for (int64_t C : {1, 8}) {
    for (bool pool : {false, true}) {
      Tensor x0 = randn({19, C, 10, 10}), w0 = randn({16, C, 3, 3}) * 0.3, b0 = randn({16});
      auto grads = [&](int threads) {
        bt::ThreadCount tc(threads);
        Tensor w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
        Tensor y = pool ? F::conv2d_max_pool2d(x0, w, b, 1, 1, 1, 1, true) : F::conv2d_relu(x0, w, b, 1, 1, 1, 1, true);
        sum(y * y).backward();
        return cat({w.grad().reshape({-1}), b.grad()});
      };
      Tensor one = grads(1);
      for (int t : {2, 3}) {
        Tensor other = grads(t);
        INFO("C " << C << (pool ? " pooled" : "") << ", threads " << t);
        REQUIRE(other.numel() == one.numel());
        CHECK(std::memcmp(one.data_ptr<float>(), other.data_ptr<float>(), sizeof(float) * size_t(one.numel())) == 0);
      }
    }
  }
}

TEST_CASE("kernels: cpu copy into a strided destination (a slice) vs ref", "[kernels]") {
  // The backward of narrow/split writes a gradient into a slice of a larger
  // tensor: rows contiguous, the destination not. Source contiguous and
  // transposed.
  for (DType dt : {DType::f32, DType::i64}) {
    Tensor src = randn({6, 4, 7}).to(dt), srct = randn({6, 7, 4}).to(dt).transpose(1, 2);
    for (const Tensor& s : {src, srct}) {
      compare_backend("cpu", "copy", "copy into narrow(2, 3, 7) " + std::string(dtype_name(dt)), [&] {
        Tensor big = zeros({6, 4, 12}, dt);
        big.narrow(2, 3, 7).copy_(s);
        return big;
      }, 0.0);
    }
  }
}

// Both thin-forward tests compare the AVX-512 thin path with the AVX2 GEMM
// path: conv2d_relu (stride 1, the given padding) on one sgemm ISA, the
// automatic choice restored afterwards.
static bool thin_and_gemm_paths() {
  if (kern::cpu::sgemm_isa_supported("avx512") && kern::cpu::sgemm_isa_supported("avx2")) return true;
  WARN("SKIPPED: needs both the AVX-512 (thin) and the AVX2 (GEMM) paths");
  return false;
}
static Tensor conv_relu_on(const char* isa, const Tensor& x, const Tensor& w, const Tensor& b, F::Pair pad) {
  struct IsaRestore {
    ~IsaRestore() { kern::cpu::set_sgemm_isa("auto"); }
  } restore;
  kern::cpu::set_sgemm_isa(isa);
  return F::conv2d_relu(x, w, b, 1, pad, 1, 1, true);
}

// The thin forward (C*k*k <= 16, a "same" geometry; AVX-512 and AVX2 each
// have one) against the sum it promises, written out here: for each output,
// an FMA chain over k = (c, i, j) from 0 (std::fma: one rounding each), then
// + bias, then std::max(v, 0) -- bit for bit, for each K class, channel
// counts with remainders, and planes whose last chunk is partial.
TEST_CASE("kernels: thin conv2d forward equals its FMA chain by definition on every ISA", "[kernels]") {
  struct IsaRestore {
    ~IsaRestore() { kern::cpu::set_sgemm_isa("auto"); }
  } restore;
  struct Case { int64_t C, kh, kw, O, H, W; };
  int ran = 0;
  for (const char* isa : {"avx512", "avx2"}) {
    if (!kern::cpu::sgemm_isa_supported(isa)) {
      WARN("SKIPPED: the " << isa << " thin forward (this CPU lacks it)");
      continue;
    }
    ++ran;
    for (Case c : {Case{1, 3, 3, 13, 9, 11}, Case{1, 1, 3, 6, 28, 28}, Case{4, 1, 3, 11, 7, 5},
                   Case{5, 3, 1, 9, 10, 3}, Case{1, 3, 3, 32, 28, 28}, Case{3, 3, 3, 5, 6, 6}}) {
      INFO(isa << ": C " << c.C << " kernel " << c.kh << "x" << c.kw << " O " << c.O << " plane " << c.H << "x" << c.W);
      Tensor x = randn({2, c.C, c.H, c.W}), w = randn({c.O, c.C, c.kh, c.kw}), b = randn({c.O});
      int64_t ph = c.kh / 2, pw = c.kw / 2, L = c.H * c.W, K = c.C * c.kh * c.kw;
      Tensor got = conv_relu_on(isa, x, w, b, F::Pair(ph, pw));
      REQUIRE(got.shape() == std::vector<int64_t>{2, c.O, c.H, c.W});
      const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *bp = b.data_ptr<float>();
      const float* gp = got.data_ptr<float>();
      int64_t bad = 0;
      for (int64_t n = 0; n < 2; ++n)
        for (int64_t o = 0; o < c.O; ++o)
          for (int64_t p = 0; p < L; ++p) {
            float acc = 0.f;
            for (int64_t k = 0; k < K; ++k) {
              int64_t ch = k / (c.kh * c.kw), i = k / c.kw % c.kh, j = k % c.kw;
              int64_t h = p / c.W + i - ph, v = p % c.W + j - pw;
              float xv = h >= 0 && h < c.H && v >= 0 && v < c.W ? xp[((n * c.C + ch) * c.H + h) * c.W + v] : 0.f;
              acc = std::fma(wp[o * K + k], xv, acc);
            }
            float want = std::max(acc + bp[o], 0.f), have = gp[(n * c.O + o) * L + p];
            bad += std::memcmp(&want, &have, sizeof(float)) != 0;
          }
      CHECK(bad == 0);
    }
  }
  if (ran == 0) WARN("SKIPPED: no thin forward on this CPU (needs AVX2 or AVX-512)");
}

// The thin first-layer forward (AVX-512, C*k*k <= 16) applies the conv
// epilogue's ReLU rule, std::max(v, 0): a NaN stays NaN, as on the GEMM path
// of the other instruction sets; and the values agree.
TEST_CASE("kernels: thin conv2d forward keeps the GEMM path's NaN and ReLU rule", "[kernels]") {
  if (!thin_and_gemm_paths()) return;
  Tensor x = randn({2, 1, 9, 11}), w = randn({12, 1, 3, 3}), b = randn({12});
  x.data_ptr<float>()[40] = NAN;
  Tensor thin = conv_relu_on("avx512", x, w, b, 1), gemm = conv_relu_on("avx2", x, w, b, 1);
  const float *p = thin.data_ptr<float>(), *q = gemm.data_ptr<float>();
  int64_t nans = 0, bad = 0;
  for (int64_t i = 0; i < thin.numel(); ++i) {
    nans += std::isnan(p[i]);
    bad += std::isnan(p[i]) != std::isnan(q[i]) || (!std::isnan(p[i]) && std::abs(p[i] - q[i]) > 1e-5f);
  }
  CHECK(nans > 0);
  CHECK(bad == 0);
}

// Whatever product the native forward picks (thin, y = w @ col, or y^T with
// the transposing epilogue), its ReLU keeps std::max(v, 0)'s rule as the ref
// kernel does: a NaN stays NaN in the same places, the other values agree.
TEST_CASE("kernels: conv2d + ReLU forward keeps NaN where the ref kernel does, in every orientation", "[kernels]") {
  struct Case { int64_t C, O, H, W; };
  for (Case c : {Case{1, 32, 28, 28}, Case{8, 16, 14, 14}, Case{3, 5, 9, 11}, Case{16, 24, 7, 7}}) {
    INFO("C " << c.C << " O " << c.O << " plane " << c.H << "x" << c.W);
    Tensor x = randn({2, c.C, c.H, c.W}), w = randn({c.O, c.C, 3, 3}), b = randn({c.O});
    x.data_ptr<float>()[c.H * c.W / 2 + 3] = NAN;
    Tensor got = F::conv2d_relu(x, w, b, 1, 1, 1, 1, true), want;
    {
      ForceBackend fb("ref");
      want = F::conv2d_relu(x, w, b, 1, 1, 1, 1, true);
    }
    const float *p = got.data_ptr<float>(), *q = want.data_ptr<float>();
    int64_t nans = 0, bad = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
      nans += std::isnan(p[i]);
      bad += std::isnan(p[i]) != std::isnan(q[i]) || (!std::isnan(p[i]) && std::abs(p[i] - q[i]) > 1e-4f);
    }
    CHECK(nans > 0);
    CHECK(bad == 0);
  }
}

// The thin forward is compiled per K = C * kh * kw (1..16): two 16-position
// chunks at a time up to K = 9, one above. Each class, with channel counts
// that leave a remainder after the blocks of 4 or 8 and planes whose last
// chunk is partial, gives the GEMM path's values bit for bit.
TEST_CASE("kernels: thin conv2d forward matches the GEMM path for every K class", "[kernels]") {
  if (!thin_and_gemm_paths()) return;
  struct Case { int64_t C, kh, kw, O, H, W; };
  for (Case c : {Case{1, 3, 3, 13, 9, 11}, Case{1, 1, 3, 6, 28, 28}, Case{4, 1, 3, 11, 7, 5},
                 Case{5, 3, 1, 9, 10, 3}, Case{1, 3, 3, 32, 28, 28}}) {
    INFO("C " << c.C << " kernel " << c.kh << "x" << c.kw << " O " << c.O << " plane " << c.H << "x" << c.W);
    Tensor x = randn({3, c.C, c.H, c.W}), w = randn({c.O, c.C, c.kh, c.kw}), b = randn({c.O});
    F::Pair pad(c.kh / 2, c.kw / 2);
    Tensor thin = conv_relu_on("avx512", x, w, b, pad), gemm = conv_relu_on("avx2", x, w, b, pad);
    REQUIRE(thin.shape() == gemm.shape());
    CHECK(std::memcmp(thin.data_ptr<float>(), gemm.data_ptr<float>(), size_t(thin.numel()) * sizeof(float)) == 0);
  }
}

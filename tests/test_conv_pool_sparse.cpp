// The pooled convolution's input gradient as a scatter of the pooled
// gradient's nonzeros (kernels/cpu/conv2d_pool_sparse_grad.h), against the
// dense definition summed here in double: the pooled gradient expanded by
// its codes to full size, convolved with the flipped weights over every
// position. f32 and bf16 (on the rounded operands, output rounded); odd
// planes, one and two 16-channel vectors a chunk, ReLU'd windows (code 4),
// NaN and infinite gradients, the fallbacks (a non-finite weight, too many
// live windows), 1 and 2 threads, and the layer end to end through
// conv2d_max_pool2d with its ReLU; on each vector ISA the CPU has (AVX-512:
// 32 channels a pass, AVX2: 8). Needs an AVX2 or AVX-512 build.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/conv2d_pool_sparse_grad.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"

using namespace bt;
namespace kc = brisk::kern::cpu;
namespace F = brisk::nn::functional;

namespace {

struct Case {
  int64_t N, C, H, W, O;
};

Geom2d geom(const Case& c) { return Geom2d{c.N, c.C, c.H, c.W, 3, 3, 1, 1, 1, 1, 1, 1, c.H, c.W}; }

// Codes 0..3 with a share `relu` of 4 (a window the ReLU zeroed), from a hash.
std::vector<uint8_t> codes(int64_t n, double relu, uint64_t seed) {
  std::vector<uint8_t> c(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    uint64_t h = (uint64_t(i) + seed) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    c[size_t(i)] = double(h % 1000) < relu * 1000 ? 4 : uint8_t((h >> 20) % 4);
  }
  return c;
}

// The definition: gx[n, c, r, s] = sum over o, (h, x), (i, j) with r = h + i
// - 1, s = x + j - 1 of w[o, c, i, j] * gy[n, o, h, x], gy the expansion of
// gq by the codes; rounded operands with bf16. Sum and sum of magnitudes.
struct Want {
  std::vector<double> v, mag;
};
Want definition(const Case& c, const std::vector<float>& gq, const std::vector<uint8_t>& code,
                const std::vector<float>& w, bool bf16) {
  const int64_t Hq = c.H / 2, Wq = c.W / 2;
  auto r = [&](float v) { return double(bf16 ? bf16_rounded(v) : v); };
  Want out{std::vector<double>(size_t(c.N * c.C * c.H * c.W), 0.0), {}};
  out.mag = out.v;
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t x = 0; x < c.W; ++x) {
          double g = 0;  // the expanded gradient at (h, x)
          if (h / 2 < Hq && x / 2 < Wq) {
            size_t at = size_t((n * c.O + o) * Hq * Wq + h / 2 * Wq + x / 2);
            if (code[at] == 2 * (h % 2) + x % 2) g = r(gq[at]);
          }
          for (int64_t ch = 0; ch < c.C; ++ch)
            for (int i = 0; i < 3; ++i)
              for (int j = 0; j < 3; ++j) {
                int64_t rr = h + i - 1, ss = x + j - 1;
                if (rr < 0 || rr >= c.H || ss < 0 || ss >= c.W) continue;
                double t = r(w[size_t((o * c.C + ch) * 9 + 3 * i + j)]) * g;
                size_t k = size_t(((n * c.C + ch) * c.H + rr) * c.W + ss);
                out.v[k] += t;
                out.mag[k] += std::abs(t);
              }
        }
  return out;
}

// The weight gradient's definition: gw[o, c, i, j] = sum over n, (h, x) of
// gy[n, o, h, x] * x[n, c, h + i - 1, x + j - 1] (zero outside the plane),
// gb[o] = sum of gy[n, o]; rounded operands with bf16.
struct WantW {
  std::vector<double> gw, mag, gb, gbmag;
};
WantW weight_definition(const Case& c, const std::vector<float>& gq, const std::vector<uint8_t>& code,
                        const std::vector<float>& x, bool bf16) {
  const int64_t Hq = c.H / 2, Wq = c.W / 2;
  auto r = [&](float v) { return double(bf16 ? bf16_rounded(v) : v); };
  WantW out{std::vector<double>(size_t(c.O * c.C * 9), 0.0), {}, std::vector<double>(size_t(c.O), 0.0), {}};
  out.mag = out.gw;
  out.gbmag = out.gb;
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t q = 0; q < Hq * Wq; ++q) {
        size_t at = size_t((n * c.O + o) * Hq * Wq + q);
        if (code[at] > 3) continue;
        const double g = r(gq[at]);
        const int64_t h = 2 * (q / Wq) + code[at] / 2, xx = 2 * (q % Wq) + code[at] % 2;
        out.gb[size_t(o)] += g;
        out.gbmag[size_t(o)] += std::abs(g);
        for (int64_t ch = 0; ch < c.C; ++ch)
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
              int64_t rr = h + i - 1, ss = xx + j - 1;
              if (rr < 0 || rr >= c.H || ss < 0 || ss >= c.W) continue;
              double t = g * r(x[size_t(((n * c.C + ch) * c.H + rr) * c.W + ss)]);
              size_t k = size_t((o * c.C + ch) * 9 + 3 * i + j);
              out.gw[k] += t;
              out.mag[k] += std::abs(t);
            }
      }
  return out;
}

// Entries of got off the definition (want, with the sum of its terms'
// magnitudes mag) by more than a few f32 roundings, plus, with bf16, its
// own rounding and any entry that is not a bf16 value.
int count_off(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& mag,
              bool bf16) {
  int bad = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    double tol = 1e-6 * mag[k] + 1e-30;
    if (bf16) {
      tol += std::ldexp(std::abs(want[k]), -8);
      if (bf16_rounded(got[k]) != got[k]) ++bad;
    }
    if (!(std::abs(double(got[k]) - want[k]) <= tol)) ++bad;
  }
  return bad;
}

bool have_kernel(const Geom2d& g) {
  if (kc::conv2d_pool_sparse_input_grad_applies(g)) return true;
  WARN("SKIPPED: the sparse pooled input gradient: this build or CPU has neither AVX-512 nor AVX2");
  return false;
}

// The precisions the scatters run: f32; bf16 on AVX512-BF16 dot products
// (SKIPPED where the CPU lacks them); bf16 on f32 multiply-adds (what an
// AVX-512 CPU without them runs; here by set_conv_pool_sparse_bf16_dot).
struct Mode {
  bool bf16, dot;
  const char* name;
};
std::vector<Mode> modes(const std::string& isa = "avx512") {
  std::vector<Mode> m{{false, false, "f32"}};
  if (isa == "avx512") {  // the AVX2 kernels have no dot-product form
    if (kc::sgemm_bf16_supported()) m.push_back({true, true, "bf16 dot products"});
    else WARN("SKIPPED: the sparse pooled gradients on bf16 dot products: this CPU lacks AVX512-BF16");
  }
  m.push_back({true, false, "bf16 f32 multiply-adds"});
  return m;
}

// The vector ISAs the scatters run on (AVX-512: 32 channels a pass; AVX2:
// 8), each set for the loop body and "auto" restored after.
struct IsaScope {
  explicit IsaScope(const char* isa) { kc::set_sgemm_isa(isa); }
  ~IsaScope() { kc::set_sgemm_isa("auto"); }
};
std::vector<const char*> isas() { return vector_sgemm_isas("the sparse pooled gradients"); }

// Sets the bf16 scatters' dot products for a scope; restores them after.
struct DotScope {
  explicit DotScope(bool on) { kc::set_conv_pool_sparse_bf16_dot(on); }
  ~DotScope() { kc::set_conv_pool_sparse_bf16_dot(true); }
};

const std::vector<Case> kCases{{2, 32, 14, 14, 64},  // the cnn's second layer
                               {2, 16, 9, 11, 5},    // odd planes: the last row and column get no gradient; one vector
                               {1, 48, 6, 34, 8},    // chunks of 32 and 16 channels; rows wider than a transpose
                               {2, 64, 2, 2, 3}};    // one window per plane, two chunks

}  // namespace

TEST_CASE("conv2d pool sparse input gradient vs the dense definition", "[conv_pool_sparse]") {
  if (!have_kernel(geom(kCases[0]))) return;
  const int prev = get_num_threads();
  for (const char* isa : isas())
    for (const Case& c : kCases)
      for (const Mode& mode : modes(isa))
        for (int threads : {1, 2}) {
          IsaScope scope(isa);
          const bool bf16 = mode.bf16;
          DotScope dot(mode.dot);
          Geom2d g = geom(c);
          REQUIRE(kc::conv2d_pool_sparse_input_grad_applies(g));
          const int64_t Lq = (c.H / 2) * (c.W / 2), CHW = c.C * c.H * c.W;
          auto gq = normal_floats(c.N * c.O * Lq, 1, 1.0), w = normal_floats(c.O * c.C * 9, 2, 0.3);
          auto code = codes(c.N * c.O * Lq, 0.5, 3);
          for (size_t i = 0; i < gq.size(); i += 7) gq[i] = 0.f;  // zeros among the live windows
          std::vector<float> gx(size_t(c.N * CHW), std::nanf(""));
          set_num_threads(threads);
          REQUIRE(kc::conv2d_pool_sparse_input_grad(gq.data(), code.data(), w.data(), g, c.O, bf16, gx.data()));
          Want want = definition(c, gq, code, w, bf16);
          int bad = count_off(gx, want.v, want.mag, bf16);
          INFO(isa << " C=" << c.C << " O=" << c.O << " " << c.H << "x" << c.W << " " << mode.name << " threads "
                   << threads);
          CHECK(bad == 0);
        }
  set_num_threads(prev);
}

TEST_CASE("conv2d pool sparse input gradient: NaN and infinite gradients reach what the definition reaches",
          "[conv_pool_sparse]") {
  const Case c{1, 16, 8, 8, 4};
  Geom2d g = geom(c);
  if (!have_kernel(g)) return;
  const int64_t Lq = 16;
  auto gq = normal_floats(c.O * Lq, 4, 1.0), w = normal_floats(c.O * c.C * 9, 5, 0.3);
  auto code = codes(c.O * Lq, 0.6, 6);
  code[5] = 1, code[20] = 3, code[40] = 4;  // live, live, ReLU'd
  gq[5] = std::nanf(""), gq[20] = INFINITY, gq[40] = std::nanf("");  // the ReLU'd NaN reaches nothing
  for (const char* isa : isas())
    for (const Mode& mode : modes(isa)) {
      IsaScope scope(isa);
      DotScope dot(mode.dot);
      std::vector<float> gx(size_t(c.C * 64), -7.f);
      REQUIRE(kc::conv2d_pool_sparse_input_grad(gq.data(), code.data(), w.data(), g, c.O, mode.bf16, gx.data()));
      Want want = definition(c, gq, code, w, mode.bf16);
      int bad = 0, nan = 0, inf = 0;
      for (size_t k = 0; k < gx.size(); ++k) {
        nan += std::isnan(gx[k]);
        inf += std::isinf(gx[k]);
        const double tol = 1e-6 * want.mag[k] + 1e-30 + (mode.bf16 ? std::ldexp(std::abs(want.v[k]), -8) : 0.0);
        if (std::isnan(want.v[k]) != std::isnan(gx[k])) ++bad;
        else if (std::isinf(want.v[k]) && gx[k] != float(want.v[k])) ++bad;
        else if (std::isfinite(want.v[k]) && !(std::abs(gx[k] - want.v[k]) <= tol)) ++bad;
      }
      INFO(isa << " " << mode.name);
      CHECK(bad == 0);
      CHECK(nan >= 9 * c.C - 2 * c.C);  // the NaN window's 3x3 neighbourhood (clipped at the plane's edge)
      CHECK(inf > 0);
    }
}

TEST_CASE("conv2d pool sparse input gradient: falls back on a non-finite weight or too many live windows",
          "[conv_pool_sparse]") {
  const Case c{2, 32, 14, 14, 64};
  Geom2d g = geom(c);
  if (!have_kernel(g)) return;
  const int64_t Lq = 49;
  auto gq = normal_floats(c.N * c.O * Lq, 7, 1.0), w = normal_floats(c.O * c.C * 9, 8, 0.3);
  auto sparse = codes(c.N * c.O * Lq, 0.5, 9), dense = codes(c.N * c.O * Lq, 0.0, 9);
  std::vector<float> gx(size_t(c.N * c.C * 196), -7.f);
  for (const char* isa : isas())
    for (bool bf16 : {false, true}) {
      IsaScope scope(isa);
      INFO(isa << (bf16 ? " bf16" : " f32"));
      CHECK_FALSE(kc::conv2d_pool_sparse_input_grad(gq.data(), dense.data(), w.data(), g, c.O, bf16, gx.data()));
      auto bad = w;
      bad[100] = INFINITY;
      CHECK_FALSE(kc::conv2d_pool_sparse_input_grad(gq.data(), sparse.data(), bad.data(), g, c.O, bf16, gx.data()));
      bad[100] = std::nanf("");
      CHECK_FALSE(kc::conv2d_pool_sparse_input_grad(gq.data(), sparse.data(), bad.data(), g, c.O, bf16, gx.data()));
      CHECK(std::all_of(gx.begin(), gx.end(), [](float v) { return v == -7.f; }));  // untouched
      // bf16: a weight that rounds to infinity is non-finite too
      if (bf16) {
        bad[100] = 3.4e38f;
        CHECK_FALSE(kc::conv2d_pool_sparse_input_grad(gq.data(), sparse.data(), bad.data(), g, c.O, true, gx.data()));
      }
    }
  // Geometries it does not take: C must fill whole vectors (16 lanes on AVX-512, 8 on AVX2)
  for (const char* isa : isas()) {
    IsaScope scope(isa);
    INFO(isa);
    for (Geom2d other : {Geom2d{1, 12, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8},    // C not a multiple of 8
                         Geom2d{1, 32, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 4, 4},    // stride 2
                         Geom2d{1, 32, 8, 8, 3, 3, 1, 1, 0, 0, 1, 1, 6, 6},    // "valid"
                         Geom2d{1, 32, 8, 8, 5, 5, 1, 1, 2, 2, 1, 1, 8, 8}})  // 5x5
      CHECK_FALSE(kc::conv2d_pool_sparse_input_grad_applies(other));
    const Geom2d c24{1, 24, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8};  // a multiple of 8, not of 16
    CHECK(kc::conv2d_pool_sparse_input_grad_applies(c24) == (std::string(isa) == "avx2"));
  }
  kc::set_conv_pool_sparse(false);
  CHECK_FALSE(kc::conv2d_pool_sparse_input_grad_applies(g));
  kc::set_conv_pool_sparse(true);
}

TEST_CASE("conv2d pool sparse weight gradient vs the dense definition", "[conv_pool_sparse]") {
  if (!have_kernel(geom(kCases[0]))) return;
  const int prev = get_num_threads();
  for (const char* isa : isas())
    for (Case c : kCases)
      for (const Mode& mode : modes(isa))
        for (int threads : {1, 2}) {
          IsaScope scope(isa);
          const bool bf16 = mode.bf16;
          DotScope dot(mode.dot);
          if (c.N < 9) c.N += 8;  // more than one block of 8 samples: partials added in block order
          Geom2d g = geom(c);
          const int64_t Lq = (c.H / 2) * (c.W / 2), CHW = c.C * c.H * c.W;
          auto gq = normal_floats(c.N * c.O * Lq, 11, 1.0), x = normal_floats(c.N * CHW, 12, 1.0);
          auto code = codes(c.N * c.O * Lq, 0.5, 13);
          for (size_t i = 0; i < gq.size(); i += 7) gq[i] = 0.f;
          std::vector<float> gw(size_t(c.O * c.C * 9), std::nanf("")), gb(size_t(c.O), std::nanf(""));
          set_num_threads(threads);
          REQUIRE(kc::conv2d_pool_sparse_weight_grad(gq.data(), code.data(), x.data(), g, c.O, bf16, gw.data(),
                                                     gb.data()));
          WantW want = weight_definition(c, gq, code, x, bf16);
          int bad = count_off(gw, want.gw, want.mag, bf16) + count_off(gb, want.gb, want.gbmag, false);
          INFO(isa << " C=" << c.C << " O=" << c.O << " " << c.H << "x" << c.W << " N " << c.N << " " << mode.name
                   << " threads " << threads);
          CHECK(bad == 0);
          // no bias: gb is not written
          std::vector<float> gw2(gw.size());
          REQUIRE(kc::conv2d_pool_sparse_weight_grad(gq.data(), code.data(), x.data(), g, c.O, bf16, gw2.data(), nullptr));
          CHECK(std::memcmp(gw.data(), gw2.data(), sizeof(float) * gw.size()) == 0);
        }
  set_num_threads(prev);
}

TEST_CASE("conv2d pool sparse weight gradient: falls back on a non-finite input or too many live windows",
          "[conv_pool_sparse]") {
  const Case c{9, 32, 14, 14, 64};
  Geom2d g = geom(c);
  if (!have_kernel(g)) return;
  const int64_t Lq = 49, CHW = 32 * 196;
  auto gq = normal_floats(c.N * c.O * Lq, 14, 1.0), x = normal_floats(c.N * CHW, 15, 1.0);
  auto sparse = codes(c.N * c.O * Lq, 0.5, 16), dense = codes(c.N * c.O * Lq, 0.0, 16);
  std::vector<float> gw(size_t(c.O * 288), -7.f), gb(size_t(c.O), -7.f);
  for (const char* isa : isas())
    for (bool bf16 : {false, true}) {
      IsaScope scope(isa);
      INFO(isa << (bf16 ? " bf16" : " f32"));
      CHECK_FALSE(kc::conv2d_pool_sparse_weight_grad(gq.data(), dense.data(), x.data(), g, c.O, bf16, gw.data(), gb.data()));
      for (float v : {INFINITY, -INFINITY, std::nanf("")}) {
        auto bad = x;
        bad[size_t(8 * CHW + 5 * 196 + 100)] = v;  // the last sample (the second block)
        CHECK_FALSE(kc::conv2d_pool_sparse_weight_grad(gq.data(), sparse.data(), bad.data(), g, c.O, bf16, gw.data(),
                                                       gb.data()));
      }
      {  // finite in f32 but infinite as bf16 (it rounds up past the largest bf16): only f32 takes it
        auto big = x;
        big[size_t(8 * CHW + 5 * 196 + 100)] = std::numeric_limits<float>::max();
        std::vector<float> gw2(gw.size()), gb2(gb.size());
        CHECK(kc::conv2d_pool_sparse_weight_grad(gq.data(), sparse.data(), big.data(), g, c.O, bf16, gw2.data(),
                                                 gb2.data()) == !bf16);
      }
      // no samples: left to the dense kernel
      Geom2d none = g;
      none.N = 0;
      CHECK_FALSE(kc::conv2d_pool_sparse_weight_grad(gq.data(), sparse.data(), x.data(), none, c.O, bf16, gw.data(),
                                                     gb.data()));
      CHECK(std::all_of(gw.begin(), gw.end(), [](float v) { return v == -7.f; }));  // untouched
      CHECK(std::all_of(gb.begin(), gb.end(), [](float v) { return v == -7.f; }));
    }
}

TEST_CASE("conv2d pool sparse gradients: conv2d_max_pool2d with ReLU end to end vs the composite",
          "[conv_pool_sparse]") {
  if (!have_kernel(geom(kCases[0]))) return;
  // A bias well below zero: the ReLU zeroes about half the pooled windows (as in
  // training), where with b near 0 the max of 4 outputs is almost always positive.
  Tensor x0 = randn({4, 32, 14, 14}), w0 = randn({64, 32, 3, 3}) * 0.1, b0 = randn({64}) * 0.1 - 1.7;
  Tensor r = randn({4, 64, 7, 7});
  auto run = [&](bool sparse, bool composite) {
    kc::set_conv_pool_sparse(sparse);
    Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    Tensor y = composite ? relu(F::max_pool2d(F::conv2d_composite(x, w, b, 1, 1, 1, 1, false), 2))
                         : F::conv2d_max_pool2d(x, w, b, 1, 1, 1, 1, true);
    sum(y * r).backward();
    kc::set_conv_pool_sparse(true);
    return std::vector<Tensor>{x.grad(), w.grad(), b.grad()};
  };
  for (const char* isa : isas()) {
    IsaScope scope(isa);
    INFO(isa);
    auto on = run(true, false), off = run(false, false), ref = run(false, true);
    const char* names[3] = {"input", "weight", "bias"};
    for (int i = 0; i < 3; ++i) {
      double tol = dtype_tol(DType::f32, i == 0 ? 64 * 9 : 4 * 196 * (i == 1 ? 1 : 32));
      expect_close(on[size_t(i)], ref[size_t(i)], tol, std::string("sparse ") + names[i] + " gradient vs the composite");
      expect_close(off[size_t(i)], ref[size_t(i)], tol, std::string("dense ") + names[i] + " gradient vs the composite");
    }
    // the ReLU zeroes about half the windows: the sparse kernels ran, summing in their own order
    for (int i = 0; i < 2; ++i)
      CHECK(std::memcmp(on[size_t(i)].data_ptr<float>(), off[size_t(i)].data_ptr<float>(),
                        sizeof(float) * size_t(on[size_t(i)].numel())) != 0);
  }
}

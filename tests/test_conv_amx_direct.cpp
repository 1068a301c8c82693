// The direct bf16 convolutions on AMX tiles (kernels/cpu/conv2d_amx_direct.h),
// called directly so no dispatch change can route around them: the forward
// (with bias, ReLU and the output's bf16 rounding; through a sample source
// and sink) and the weight gradient, against the convolution's sums in
// double on bf16-rounded operands, written out here from the definition.
// Shapes: the cnn's second layer; O not a multiple of 32; C filling 3/4 of
// a 32-channel block and C spanning two; 5x5 and 1x1 kernels; rows wider
// than 16; more samples than the weight gradient holds at once. SKIPPED
// where the CPU (or the OS) gives no AMX tiles.
#include <cmath>

#include "kernels/cpu/conv2d_amx_direct.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"

using namespace bt;
namespace kc = brisk::kern::cpu;

namespace {

struct DCase { int64_t N, C, H, W, O, k; };
const std::vector<DCase> kCases{{3, 32, 14, 14, 64, 3},  // the cnn's second layer
                                {2, 24, 5, 19, 40, 3},   // 3/4 of a channel block; O = 40; rows of 19
                                {2, 48, 6, 7, 16, 5},    // two channel blocks, 5x5 pad 2
                                {7, 32, 3, 4, 33, 1},    // 1x1; O = 33; 7 samples (held 3 at a time)
                                {2, 64, 1, 1, 32, 3}};   // a 1x1 plane: every tap but the centre in the border

std::vector<float> rounded(int64_t n, uint64_t seed, double scale) {
  std::vector<float> out = normal_floats(n, seed, scale);
  for (float& v : out) v = brisk::bf16_rounded(v);
  return out;
}

Geom2d same(const DCase& c) {
  int64_t p = (c.k - 1) / 2;
  return Geom2d{c.N, c.C, c.H, c.W, c.k, c.k, 1, 1, p, p, 1, 1, c.H, c.W};
}

}  // namespace

TEST_CASE("kernels: direct AMX conv forward and weight gradient vs their sums in double", "[kernels]") {
  if (!kc::bf16_gemm_kernel_supported("amx")) {
    WARN("SKIPPED: the direct AMX convolutions: this CPU or OS gives no AMX tiles");
    return;
  }
  for (const DCase& c : kCases) {
    Geom2d g = same(c);
    REQUIRE(kc::conv2d_amx_direct_applies(g));
    const int64_t L = c.H * c.W, K = c.C * c.k * c.k, p = (c.k - 1) / 2;
    // operands already bf16 values: the kernels' rounding of them is exact
    std::vector<float> x = rounded(c.N * c.C * L, 1, 1.0), w = rounded(c.O * K, 2, 0.3), b = rounded(c.O, 3, 1.0),
                       gy = rounded(c.N * c.O * L, 4, 1.0);
    auto xat = [&](int64_t n, int64_t ci, int64_t r, int64_t col) -> double {
      return r < 0 || r >= c.H || col < 0 || col >= c.W ? 0.0 : x[size_t(((n * c.C + ci) * c.H + r) * c.W + col)];
    };
    std::string what = std::to_string(c.C) + "->" + std::to_string(c.O) + " k" + std::to_string(c.k) + " " +
                       std::to_string(c.H) + "x" + std::to_string(c.W);
    for (bool bf16_out : {false, true}) {
      std::vector<float> y(size_t(c.N * c.O * L), -7.f), ysink(y.size(), -7.f);
      kc::conv2d_forward_amx_direct(x.data(), w.data(), b.data(), g, c.O, true, bf16_out, y.data(), nullptr, nullptr);
      // the same through a source (x_n from elsewhere) and a sink (y_n handed on, y not written)
      kc::ConvSampleSource src = [&](int64_t n) { return x.data() + n * c.C * L; };
      kc::ConvSampleSink sink = [&](int64_t n, const float* yn) {
        std::copy(yn, yn + c.O * L, ysink.begin() + n * c.O * L);
      };
      std::vector<float> untouched(size_t(c.N * c.O * L), -7.f);
      kc::conv2d_forward_amx_direct(nullptr, w.data(), b.data(), g, c.O, true, bf16_out, untouched.data(), &sink, &src);
      int64_t bad = 0, notbf = 0;
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t o = 0; o < c.O; ++o)
          for (int64_t r = 0; r < c.H; ++r)
            for (int64_t col = 0; col < c.W; ++col) {
              double s = b[size_t(o)], mag = std::abs(s);
              for (int64_t ci = 0; ci < c.C; ++ci)
                for (int64_t i = 0; i < c.k; ++i)
                  for (int64_t j = 0; j < c.k; ++j) {
                    double t = w[size_t(((o * c.C + ci) * c.k + i) * c.k + j)] * xat(n, ci, r + i - p, col + j - p);
                    s += t, mag += std::abs(t);
                  }
              double want = std::max(s, 0.0);
              float got = y[size_t(((n * c.O + o) * c.H + r) * c.W + col)];
              double tol = 1e-5 * (1 + mag) + (bf16_out ? std::abs(want) / 256 : 0.0);
              bad += !(std::abs(got - want) <= tol);
              notbf += bf16_out && brisk::bf16_rounded(got) != got;
            }
      INFO(what << (bf16_out ? " forward, output rounded" : " forward"));
      CHECK(bad == 0);
      CHECK(notbf == 0);
      CHECK(ysink == y);
      CHECK(std::all_of(untouched.begin(), untouched.end(), [](float v) { return v == -7.f; }));
    }
    // gw^T [K, O] += sum_n unfold(x_n) gy_n^T, onto a nonzero start
    std::vector<float> gwt(size_t(K * c.O));
    for (size_t i = 0; i < gwt.size(); ++i) gwt[i] = float(i % 7) - 3.f;
    std::vector<float> start = gwt;
    {
      kc::AmxDirectWeightGrad acc(g, c.O, 3, gwt.data());
      for (int64_t n = 0; n < c.N; ++n) acc.add(gy.data() + n * c.O * L, x.data() + n * c.C * L);
      acc.finish();
    }
    int64_t bad = 0;
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t ci = 0; ci < c.C; ++ci)
        for (int64_t i = 0; i < c.k; ++i)
          for (int64_t j = 0; j < c.k; ++j) {
            int64_t kk = (ci * c.k + i) * c.k + j;
            double s = start[size_t(kk * c.O + o)], mag = std::abs(s);
            for (int64_t n = 0; n < c.N; ++n)
              for (int64_t r = 0; r < c.H; ++r)
                for (int64_t col = 0; col < c.W; ++col) {
                  double t = gy[size_t(((n * c.O + o) * c.H + r) * c.W + col)] * xat(n, ci, r + i - p, col + j - p);
                  s += t, mag += std::abs(t);
                }
            bad += !(std::abs(gwt[size_t(kk * c.O + o)] - s) <= 1e-5 * (1 + mag));
          }
    INFO(what << " weight gradient");
    CHECK(bad == 0);
  }
  // A pooled gradient as the input (the input gradient of a conv fused with
  // its 2x2 max pool): the same bits as its expansion passed as x, odd sizes
  // included (the last row and column get nothing).
  for (DCase c : {DCase{2, 64, 14, 14, 32, 3}, DCase{3, 32, 9, 7, 24, 3}}) {
    Geom2d g = same(c);
    const int64_t Hq = c.H / 2, Wq = c.W / 2, L = c.H * c.W;
    std::vector<float> gq = rounded(c.N * c.C * Hq * Wq, 5, 1.0), w = rounded(c.O * c.C * 9, 6, 0.3);
    std::vector<uint8_t> code(gq.size());
    for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t(i * 7 % 5);  // 4: a ReLU'd window, no gradient
    std::vector<float> x(size_t(c.N * c.C * L), 0.f);
    for (int64_t nc = 0; nc < c.N * c.C; ++nc)
      for (int64_t r = 0; r < Hq; ++r)
        for (int64_t q = 0; q < Wq; ++q) {
          size_t i = size_t((nc * Hq + r) * Wq + q);
          if (code[i] < 4) x[size_t(nc * L + (2 * r + code[i] / 2) * c.W + 2 * q + code[i] % 2)] = gq[i];
        }
    std::vector<float> want(size_t(c.N * c.O * L)), got(want.size());
    kc::conv2d_forward_amx_direct(x.data(), w.data(), nullptr, g, c.O, false, true, want.data(), nullptr, nullptr);
    kc::PooledInput pooled{gq.data(), code.data(), Hq, Wq};
    kc::conv2d_forward_amx_direct(nullptr, w.data(), nullptr, g, c.O, false, true, got.data(), nullptr, nullptr,
                                  &pooled);
    INFO("pooled input " << c.H << "x" << c.W);
    CHECK(got == want);
  }
  // The switch: off, no geometry takes the direct path.
  kc::set_conv_amx_direct(false);
  CHECK_FALSE(kc::conv2d_amx_direct_applies(same(kCases[0])));
  kc::set_conv_amx_direct(true);
  // Too few channels to fill a tile's reduction: the packed path keeps them.
  CHECK_FALSE(kc::conv2d_amx_direct_applies(same(DCase{1, 8, 14, 14, 64, 3})));
}

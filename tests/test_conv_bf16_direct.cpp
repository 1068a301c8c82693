// The bf16 direct convolution (kernels/cpu/conv2d_bf16_direct.h): forward
// and weight gradient called directly, against the convolution by its
// definition on bf16-rounded operands, summed here in double. Geometries
// that exercise the partial tiles (positions not a multiple of 8, channels
// not a multiple of 32), an odd channel count (a zero partner in the last
// pair), C = 1, dilation, padding past "same", "valid" convolutions and a
// 1x3 kernel; the epilogue (bias, ReLU, output rounding); the sink and
// source forms against the plain one bit for bit. Needs AVX512-BF16.
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cpu/conv2d_bf16_direct.h"
#include "kernels/cpu/pool2d.h"
#include "tests/helpers.h"

using namespace bt;
namespace kc = brisk::kern::cpu;

namespace {

struct Case {
  int64_t N, C, H, W, O, kh, kw, ph, pw, dh, dw;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c{
      {3, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1},  // the cnn's second layer
      {2, 5, 9, 12, 40, 3, 3, 1, 1, 1, 1},    // odd C; O = 32 + 8; L = 108 (a partial position tile)
      {2, 3, 10, 8, 5, 5, 5, 4, 4, 2, 2},     // 5x5, dilation 2, "same"; O = 5
      {2, 4, 9, 11, 33, 3, 3, 0, 0, 1, 1},    // "valid": 7x9 (odd rows: no direct weight gradient)
      {2, 2, 7, 6, 16, 3, 3, 2, 2, 1, 1},     // pad 2: 9x8, larger than the input
      {1, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1},   // C = 1: the pair's partner is zero
      {2, 6, 8, 10, 8, 1, 3, 0, 1, 1, 1},     // a 1x3 kernel
      {2, 3, 11, 13, 8, 3, 3, 1, 1, 1, 1},    // odd rows of 13 (> 10: pooled by row pairs; last row and column unpooled)
      {1, 2, 7, 31, 36, 3, 3, 1, 1, 1, 1},    // rows of 31: 14 + 14 + 2 positions per row pair, 2 strips of 32
  };
  return c;
}

Geom2d geom(const Case& c) {
  return Geom2d{c.N, c.C, c.H, c.W, c.kh, c.kw, 1, 1, c.ph, c.pw, c.dh, c.dw,
                c.H + 2 * c.ph - c.dh * (c.kh - 1), c.W + 2 * c.pw - c.dw * (c.kw - 1)};
}


// The convolution's terms for output (n, o, h, w) by its definition, on the
// bf16 roundings of x and w: their sum and the sum of their magnitudes.
struct Sum {
  double v = 0, mag = 0;
};
Sum conv_at(const Geom2d& g, const std::vector<float>& x, const std::vector<float>& w, int64_t n, int64_t o,
            int64_t h, int64_t wo) {
  Sum s;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t r = h + i * g.dh - g.ph, q = wo + j * g.dw - g.pw;
        if (r < 0 || r >= g.H || q < 0 || q >= g.W) continue;
        double t = double(bf16_rounded(x[size_t(((n * g.C + c) * g.H + r) * g.W + q)])) *
                   double(bf16_rounded(w[size_t(((o * g.C + c) * g.kh + i) * g.kw + j)]));
        s.v += t;
        s.mag += std::abs(t);
      }
  return s;
}

// The full-size planes [NC, H, W] a pooled gradient gq [NC, H/2, W/2]
// expands to by its window codes: each window's value at its code's
// position (2 * row + column; 4: none), +0 elsewhere.
std::vector<float> expand_pooled(const std::vector<float>& gq, const std::vector<uint8_t>& code, int64_t NC,
                                 int64_t H, int64_t W) {
  int64_t Hq = H / 2, Wq = W / 2, Lq = Hq * Wq;
  std::vector<float> full(static_cast<size_t>(NC * H * W), 0.f);
  for (int64_t nc = 0; nc < NC; ++nc)
    for (int64_t wn = 0; wn < Lq; ++wn) {
      size_t at = size_t(nc * Lq + wn);
      if (code[at] < 4) full[size_t(nc * H * W + (2 * (wn / Wq) + code[at] / 2) * W + 2 * (wn % Wq) + code[at] % 2)] = gq[at];
    }
  return full;
}

bool have_kernel() {
  if (kc::bf16_gemm_kernel_supported("avx512bf16")) return true;
  WARN("SKIPPED: the bf16 direct convolution: this CPU lacks AVX512-BF16");
  return false;
}

}  // namespace

TEST_CASE("conv2d bf16 direct: forward vs the convolution of the rounded operands", "[conv_bf16_direct]") {
  if (!have_kernel()) return;
  for (const Case& c : cases()) {
    Geom2d g = geom(c);
    REQUIRE(kc::conv2d_bf16_direct_applies(g));
    int64_t L = g.Ho * g.Wo, CHW = c.C * c.H * c.W;
    auto x = normal_floats(c.N * CHW, 1, 1.0), w = normal_floats(c.O * c.C * c.kh * c.kw, 2, 0.3),
         b = normal_floats(c.O, 3, 1.0);
    for (int flags = 0; flags < 4; ++flags) {
      bool relu = flags & 1, out_bf16 = flags & 2, bias = flags != 0;
      std::vector<float> y(static_cast<size_t>(c.N * c.O * L), -7.f);
      kc::conv2d_forward_bf16_direct(x.data(), w.data(), bias ? b.data() : nullptr, g, c.O, relu, out_bf16, y.data());
      int bad = 0;
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t o = 0; o < c.O; ++o)
          for (int64_t h = 0; h < g.Ho; ++h)
            for (int64_t q = 0; q < g.Wo; ++q) {
              Sum s = conv_at(g, x, w, n, o, h, q);
              double want = s.v + (bias ? double(b[size_t(o)]) : 0.0);
              if (relu) want = std::max(want, 0.0);
              float got = y[size_t((n * c.O + o) * L + h * g.Wo + q)];
              // f32 sums of exact products: within a few f32 roundings of the terms' magnitude
              double tol = 1e-6 * (s.mag + std::abs(bias ? b[size_t(o)] : 0.f)) + 1e-30;
              if (out_bf16) {
                tol += std::ldexp(std::abs(want), -8);  // the output's own rounding (half an ulp of bf16)
                if (bf16_rounded(got) != got) ++bad;
              }
              if (!(std::abs(double(got) - want) <= tol)) ++bad;
            }
      INFO("C=" << c.C << " O=" << c.O << " " << c.H << "x" << c.W << " k" << c.kh << "x" << c.kw << " pad " << c.ph
                << " dil " << c.dh << " relu " << relu << " bf16 out " << out_bf16 << " bias " << bias);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("conv2d bf16 direct: the sink and source forms give the plain form's bits", "[conv_bf16_direct]") {
  if (!have_kernel()) return;
  const Case c = cases()[1];
  Geom2d g = geom(c);
  int64_t L = g.Ho * g.Wo, CHW = c.C * c.H * c.W;
  auto x = normal_floats(c.N * CHW, 4, 1.0), w = normal_floats(c.O * c.C * 9, 5, 0.3),
       b = normal_floats(c.O, 6, 1.0);
  std::vector<float> plain(static_cast<size_t>(c.N * c.O * L)), viaf(plain.size(), 0.f);
  kc::conv2d_forward_bf16_direct(x.data(), w.data(), b.data(), g, c.O, true, false, plain.data());
  int sourced = 0;
  kc::ConvSampleSource source = [&](int64_t n) {
    ++sourced;
    return x.data() + n * CHW;
  };
  kc::ConvSampleSink sink = [&](int64_t n, const float* yn) {
    std::memcpy(viaf.data() + n * c.O * L, yn, sizeof(float) * size_t(c.O * L));
  };
  kc::conv2d_forward_bf16_direct(nullptr, w.data(), b.data(), g, c.O, true, false, nullptr, &sink, &source);
  CHECK(sourced == c.N);
  CHECK(std::memcmp(plain.data(), viaf.data(), sizeof(float) * plain.size()) == 0);
}

TEST_CASE("conv2d bf16 direct: the pooled forward is the plain forward's output pooled", "[conv_bf16_direct]") {
  if (!have_kernel()) return;
  for (const Case& c : cases()) {
    Geom2d g = geom(c);
    if (g.Ho < 2 || g.Wo < 2) continue;
    int64_t L = g.Ho * g.Wo, CHW = c.C * c.H * c.W, Hq = g.Ho / 2, Wq = g.Wo / 2, Lq = Hq * Wq;
    auto x = normal_floats(c.N * CHW, 7, 1.0), w = normal_floats(c.O * c.C * c.kh * c.kw, 8, 0.3),
         b = normal_floats(c.O, 9, 1.0);
    // Channel 0's filter is zero: its 4 outputs per window tie (the first
    // wins). A NaN input reaches the windows whose taps cover it.
    std::fill(w.begin(), w.begin() + c.C * c.kh * c.kw, 0.f);
    x[size_t(CHW / 2)] = std::nanf("");
    for (int flags = 0; flags < 8; ++flags) {
      bool relu = flags & 1, out_bf16 = flags & 2, bias = flags & 4;
      std::vector<float> full(static_cast<size_t>(c.N * c.O * L));
      kc::conv2d_forward_bf16_direct(x.data(), w.data(), bias ? b.data() : nullptr, g, c.O, false, out_bf16,
                                     full.data());
      std::vector<float> y(static_cast<size_t>(c.N * c.O * Lq), -7.f);
      std::vector<uint8_t> code(y.size(), 99);
      kc::conv2d_pool_forward_bf16_direct(x.data(), w.data(), bias ? b.data() : nullptr, g, c.O, relu, out_bf16,
                                          y.data(), code.data());
      // max_pool2d's rule, then the ReLU of the pooled value (code 4 where it zeroes)
      int bad = 0, nans = 0;
      for (int64_t no = 0; no < c.N * c.O; ++no)
        for (int64_t py = 0; py < Hq; ++py)
          for (int64_t px = 0; px < Wq; ++px) {
            float best = 0.f;
            int k = -1;
            for (int d = 0; d < 4; ++d) {
              float v = full[size_t(no * L + (2 * py + d / 2) * g.Wo + 2 * px + d % 2)];
              if (k < 0 || (std::isnan(v) && !std::isnan(best)) || v > best) best = v, k = d;
            }
            if (relu && !(best > 0.f)) best = 0.f, k = 4;
            nans += std::isnan(best);
            size_t at = size_t(no * Lq + py * Wq + px);
            if (std::memcmp(&best, &y[at], 4) != 0 || code[at] != k) ++bad;
          }
      INFO("C=" << c.C << " O=" << c.O << " " << c.H << "x" << c.W << " k" << c.kh << "x" << c.kw << " pad " << c.ph
                << " relu " << relu << " bf16 out " << out_bf16 << " bias " << bias);
      CHECK(bad == 0);
      if (!relu) CHECK(nans > 0);  // the ReLU zeroes NaN windows (code 4)
    }
  }
}

TEST_CASE("conv2d bf16 direct: a pooled input gives the bits of its expansion", "[conv_bf16_direct]") {
  if (!have_kernel()) return;
  // The input gradient's geometry for the cnn's second layer (64 gradient
  // channels in, 32 out), then odd planes (9 x 11: the last row and column
  // are outside every window), an odd channel count and windows wider than
  // a vector (34 columns: 17 windows).
  const std::vector<Case> pooled_cases{{3, 64, 14, 14, 32, 3, 3, 1, 1, 1, 1},
                                       {2, 5, 9, 11, 8, 3, 3, 1, 1, 1, 1},
                                       {2, 3, 6, 34, 20, 3, 3, 1, 1, 1, 1}};
  for (const Case& c : pooled_cases) {
    Geom2d g = geom(c);
    int64_t Hq = c.H / 2, Wq = c.W / 2, Lq = Hq * Wq, L = g.Ho * g.Wo;
    auto gq = normal_floats(c.N * c.C * Lq, 10, 1.0), w = normal_floats(c.O * c.C * 9, 11, 0.3);
    gq[3] = std::nanf("");
    std::vector<uint8_t> code(gq.size());
    for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t((i * 7 + i / 5) % 5);  // 0..3, and 4 (ReLU'd)
    std::vector<float> full = expand_pooled(gq, code, c.N * c.C, c.H, c.W);
    for (bool out_bf16 : {false, true}) {
      std::vector<float> want(static_cast<size_t>(c.N * c.O * L)), got(want.size(), -7.f);
      kc::conv2d_forward_bf16_direct(full.data(), w.data(), nullptr, g, c.O, false, out_bf16, want.data());
      kc::PooledInput in{gq.data(), code.data(), Hq, Wq};
      kc::conv2d_forward_bf16_direct(nullptr, w.data(), nullptr, g, c.O, false, out_bf16, got.data(), nullptr, nullptr,
                                     &in);
      INFO("C=" << c.C << " " << c.H << "x" << c.W << " bf16 out " << out_bf16);
      CHECK(std::memcmp(want.data(), got.data(), sizeof(float) * want.size()) == 0);
    }
  }
}

TEST_CASE("conv2d bf16 direct: weight gradient vs its definition on the rounded operands", "[conv_bf16_direct]") {
  if (!have_kernel()) return;
  for (const Case& c : cases()) {
    Geom2d g = geom(c);
    INFO("C=" << c.C << " O=" << c.O << " " << c.H << "x" << c.W << " k" << c.kh << "x" << c.kw << " pad " << c.ph
              << " dil " << c.dh);
    if (g.Wo % 2) {  // its k pairs are neighbouring positions of a row
      CHECK_FALSE(kc::conv2d_bf16_direct_wgrad_applies(g));
      continue;
    }
    REQUIRE(kc::conv2d_bf16_direct_wgrad_applies(g));
    int64_t L = g.Ho * g.Wo, CHW = c.C * c.H * c.W, CKK = c.C * c.kh * c.kw;
    auto x = normal_floats(c.N * CHW, 7, 1.0), gy = normal_floats(c.N * c.O * L, 8, 1.0);
    auto gw = normal_floats(c.O * CKK, 9, 1.0);  // accumulated into
    const std::vector<float> gw0 = gw;
    {
      kc::Bf16DirectWeightGrad acc(g, c.O, c.N + 1);  // room for one more sample than it gets
      for (int64_t n = 0; n < c.N; ++n) acc.add(gy.data() + n * c.O * L, x.data() + n * CHW);
      acc.finish(gw.data());
    }
    int bad = 0;
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t ch = 0; ch < c.C; ++ch)
        for (int64_t i = 0; i < c.kh; ++i)
          for (int64_t j = 0; j < c.kw; ++j) {
            double want = 0, mag = 0;
            for (int64_t n = 0; n < c.N; ++n)
              for (int64_t h = 0; h < g.Ho; ++h)
                for (int64_t q = 0; q < g.Wo; ++q) {
                  int64_t r = h + i * g.dh - g.ph, s = q + j * g.dw - g.pw;
                  if (r < 0 || r >= g.H || s < 0 || s >= g.W) continue;
                  double t = double(bf16_rounded(gy[size_t((n * c.O + o) * L + h * g.Wo + q)])) *
                             double(bf16_rounded(x[size_t(((n * c.C + ch) * g.H + r) * g.W + s)]));
                  want += t;
                  mag += std::abs(t);
                }
            size_t k = size_t(o * CKK + (ch * c.kh + i) * c.kw + j);
            want += gw0[k];
            if (!(std::abs(double(gw[k]) - want) <= 1e-6 * (mag + std::abs(gw0[k])) + 1e-30)) ++bad;
          }
    CHECK(bad == 0);
  }
  // More samples than it was made for: an error, not a write past its buffers.
  Geom2d g = geom(cases()[0]);
  kc::Bf16DirectWeightGrad one(g, 64, 1);
  std::vector<float> gy(static_cast<size_t>(64 * g.Ho * g.Wo), 1.f), x(static_cast<size_t>(32 * 14 * 14), 1.f);
  one.add(gy.data(), x.data());
  CHECK_THROWS_AS(one.add(gy.data(), x.data()), Error);
}

TEST_CASE("conv2d bf16 direct: weight gradient from a pooled gradient gives the bits of its expansion",
          "[conv_bf16_direct]") {
  if (!have_kernel()) return;
  // The cnn's second layer; odd output rows (9: the last row is outside
  // every window); output channels past a strip (40) and fewer than a
  // register transpose (5); windows not a multiple of 8.
  const std::vector<Case> pooled_cases{{3, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1},
                                       {3, 4, 9, 10, 40, 3, 3, 1, 1, 1, 1},
                                       {2, 3, 6, 10, 5, 3, 3, 1, 1, 1, 1}};
  for (const Case& c : pooled_cases) {
    Geom2d g = geom(c);
    REQUIRE(kc::conv2d_bf16_direct_wgrad_applies(g));
    int64_t L = g.Ho * g.Wo, CHW = c.C * c.H * c.W, CKK = c.C * 9, Hq = g.Ho / 2, Wq = g.Wo / 2, Lq = Hq * Wq;
    auto x = normal_floats(c.N * CHW, 12, 1.0), gq = normal_floats(c.N * c.O * Lq, 13, 1.0);
    // magnitudes spread over 2^-12 .. 2^12, so that f32 sums round and their order shows in the bits
    for (size_t i = 0; i < gq.size(); ++i) gq[i] = std::ldexp(gq[i], int(i * 7 % 25) - 12);
    std::vector<uint8_t> code(gq.size());
    for (size_t i = 0; i < code.size(); ++i) code[i] = uint8_t((i * 3 + i / 7) % 5);
    std::vector<float> full = expand_pooled(gq, code, c.N * c.O, g.Ho, g.Wo);
    std::vector<float> gw_full(static_cast<size_t>(c.O * CKK), 0.5f), gw_pooled = gw_full;
    std::vector<float> gb(static_cast<size_t>(c.O), 0.25f);
    {
      kc::Bf16DirectWeightGrad a(g, c.O, 8), b(g, c.O, 8);
      for (int64_t n = 0; n < c.N; ++n) {
        a.add(full.data() + n * c.O * L, x.data() + n * CHW);
        b.add_pooled(gq.data() + n * c.O * Lq, code.data() + n * c.O * Lq, Hq, Wq, x.data() + n * CHW, gb.data());
      }
      a.finish(gw_full.data());
      b.finish(gw_pooled.data());
    }
    INFO("C=" << c.C << " O=" << c.O << " " << c.H << "x" << c.W);
    CHECK(std::memcmp(gw_full.data(), gw_pooled.data(), sizeof(float) * gw_full.size()) == 0);
    // The bias, bit for bit as its contract orders the sums: per sample, 16
    // f32 lanes by position mod 16 up to the last whole 16, a tail after,
    // then tail + lanes 0..15, added to gb (which started at 0.25).
    int bad = 0;
    double worst = 0;
    for (int64_t o = 0; o < c.O; ++o) {
      float want = 0.25f;
      double exact = 0.25;
      for (int64_t n = 0; n < c.N; ++n) {
        float lanes[16] = {}, tail = 0.f;
        for (int64_t l = 0; l < L; ++l) {
          float v = bf16_rounded(full[size_t((n * c.O + o) * L + l)]);
          (l < L / 16 * 16 ? lanes[l % 16] : tail) += v;
          exact += v;
        }
        for (float u : lanes) tail += u;
        want += tail;
      }
      if (std::memcmp(&want, &gb[size_t(o)], 4) != 0) ++bad;
      worst = std::max(worst, std::abs(exact - double(want)));
    }
    CHECK(bad == 0);
    CHECK(worst < 1e-2);  // and that order's sums are the sums (to f32 rounding of terms up to 2^12)
  }
  Geom2d g = geom(cases()[0]);  // pooled planes that do not tile the output: an error
  kc::Bf16DirectWeightGrad one(g, 64, 2);
  std::vector<float> gq(static_cast<size_t>(64 * 49), 1.f), x(static_cast<size_t>(32 * 14 * 14), 1.f);
  std::vector<uint8_t> code(gq.size(), 0);
  CHECK_THROWS_AS(one.add_pooled(gq.data(), code.data(), 7, 6, x.data(), nullptr), Error);
}

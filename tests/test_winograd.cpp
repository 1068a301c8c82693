// conv2d's Winograd F(2x2, 3x3) forward (kernels/cpu/conv2d_winograd.h)
// against the convolution by its definition, summed here in double; its
// sink, source and pooled forms against its plain form bit for bit (the
// pool's rule written out here); its bits at 1 and 3 threads; and the
// switch that turns it off. Every ISA it runs on that the CPU has.
#include <cmath>
#include <cstring>

#include "core/autocast.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"

using namespace bt;
namespace kc = brisk::kern::cpu;
namespace F = brisk::nn::functional;

namespace {

struct Shape5 { int64_t N, C, O, H, W; };

std::vector<float> values(int64_t n, uint64_t seed, double scale = 1.0) {
  Generator g(seed);
  std::vector<double> d = randn({n}, {}, &g).to_vector();
  std::vector<float> out(d.size());
  for (size_t i = 0; i < d.size(); ++i) out[i] = float(d[i] * scale);
  return out;
}

Geom2d same3x3(const Shape5& s) { return Geom2d{s.N, s.C, s.H, s.W, 3, 3, 1, 1, 1, 1, 1, 1, s.H, s.W}; }

struct IsaRestore {
  ~IsaRestore() {
    kc::set_sgemm_isa("auto");
    kc::set_conv_winograd(true);
  }
};

}  // namespace

TEST_CASE("kernels: Winograd conv2d forward matches the convolution by definition", "[kernels][winograd]") {
  IsaRestore restore;
  // The cnn's second layer (a batch that leaves a partial block), odd planes,
  // a plane narrower than a tile row chunk, a row of three chunks, channel
  // counts off the GEMM's tiles, and C = 9 (no spare row after the last
  // channel of a 16-wide strip).
  // And a plane of 272 tiles (blocks of one sample).
  std::vector<Shape5> shapes{{5, 32, 64, 14, 14}, {2, 8, 8, 9, 7}, {3, 9, 13, 2, 3}, {2, 11, 20, 5, 37},
                             {2, 8, 9, 34, 32}};
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    // Planes past 128 x 128 run the direct path.
    CHECK(kc::conv2d_winograd_applies(same3x3({1, 8, 8, 128, 128}), 8));
    CHECK_FALSE(kc::conv2d_winograd_applies(same3x3({1, 8, 8, 130, 128}), 8));
    for (const Shape5& s : shapes)
      for (bool relu : {false, true}) {
        Geom2d g = same3x3(s);
        REQUIRE(kc::conv2d_winograd_applies(g, s.O));
        int64_t HW = s.H * s.W, Y = s.N * s.O * HW;
        std::vector<float> x = values(s.N * s.C * HW, 1), w = values(s.O * s.C * 9, 2, 0.3), b = values(s.O, 3);
        const int64_t guard = 32;
        std::vector<float> y(size_t(Y + guard), NAN);  // NaN: an output never written fails
        for (int64_t i = 0; i < guard; ++i) y[size_t(Y + i)] = 7.f;
        kc::conv2d_forward_winograd(x.data(), w.data(), b.data(), g, s.O, relu, y.data());
        int64_t bad = 0;
        double worst = 0;
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t o = 0; o < s.O; ++o)
            for (int64_t h = 0; h < s.H; ++h)
              for (int64_t v = 0; v < s.W; ++v) {
                double sum = b[size_t(o)], mag = std::abs(b[size_t(o)]);
                for (int64_t c = 0; c < s.C; ++c)
                  for (int64_t i = 0; i < 3; ++i)
                    for (int64_t j = 0; j < 3; ++j) {
                      int64_t r = h + i - 1, q = v + j - 1;
                      if (r < 0 || r >= s.H || q < 0 || q >= s.W) continue;
                      double t = double(x[size_t(((n * s.C + c) * s.H + r) * s.W + q)]) *
                                 w[size_t(((o * s.C + c) * 3 + i) * 3 + j)];
                      sum += t, mag += std::abs(t);
                    }
                if (relu) sum = std::max(sum, 0.0);
                double got = y[size_t(((n * s.O + o) * s.H + h) * s.W + v)], err = std::abs(got - sum) / (1 + mag);
                worst = std::max(worst, std::isnan(err) ? 1e9 : err);
                bad += !(err <= 1e-5);
              }
        INFO(isa << " N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W << (relu ? " relu" : "")
                 << ": worst error " << worst << " of the magnitude");
        CHECK(bad == 0);
        for (int64_t i = 0; i < guard; ++i) CHECK(y[size_t(Y + i)] == 7.f);
      }
  }
}

TEST_CASE("kernels: Winograd conv2d's sink, source and pooled forms equal its plain form bit for bit",
          "[kernels][winograd]") {
  IsaRestore restore;
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    for (Shape5 s : {Shape5{5, 32, 64, 14, 14}, Shape5{3, 16, 24, 9, 7}, Shape5{2, 9, 10, 6, 20}}) {
      Geom2d g = same3x3(s);
      int64_t HW = s.H * s.W, Hp = s.H / 2, Wp = s.W / 2;
      std::vector<float> x = values(s.N * s.C * HW, 4), w = values(s.O * s.C * 9, 5, 0.3), b = values(s.O, 6);
      x[size_t(HW + 2 * s.W + 3)] = NAN;  // sample 0, channel 1: a NaN that reaches several pool windows
      std::vector<float> plain(size_t(s.N * s.O * HW));
      kc::conv2d_forward_winograd(x.data(), w.data(), b.data(), g, s.O, false, plain.data());
      INFO(isa << " N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W);
      // sink: each sample's planes from the per-thread buffer; source: x_n from a buffer reused per call
      std::vector<float> sunk(plain.size(), NAN);
      kc::ConvSampleSink sink = [&](int64_t n, const float* yn) {
        std::memcpy(sunk.data() + n * s.O * HW, yn, sizeof(float) * size_t(s.O * HW));
      };
      kc::ConvSampleSource source = [&](int64_t n) {
        static thread_local std::vector<float> buf;
        buf.assign(x.begin() + n * s.C * HW, x.begin() + (n + 1) * s.C * HW);
        return static_cast<const float*>(buf.data());
      };
      kc::conv2d_forward_winograd(nullptr, w.data(), b.data(), g, s.O, false, nullptr, &sink, &source);
      CHECK(std::memcmp(sunk.data(), plain.data(), sizeof(float) * plain.size()) == 0);
      // pooled: max_pool_2x2's rule on the plain output (the first NaN, else
      // the first maximum, row-major in the window), then relu_pooled's
      for (bool relu : {false, true}) {
        int64_t P = s.N * s.O * Hp * Wp, guard = 24;
        std::vector<float> yp(size_t(P + guard), NAN);
        std::vector<uint8_t> code(size_t(P + guard), 99);
        for (int64_t i = 0; i < guard; ++i) yp[size_t(P + i)] = 7.f;
        kc::conv2d_pool_forward_winograd(x.data(), w.data(), b.data(), g, s.O, relu, yp.data(), code.data());
        int64_t bad = 0, nans = 0;
        for (int64_t q = 0; q < s.N * s.O; ++q)
          for (int64_t r = 0; r < Hp; ++r)
            for (int64_t c = 0; c < Wp; ++c) {
              const float* win = plain.data() + q * HW + 2 * r * s.W + 2 * c;
              int k = -1;
              for (int t = 0; t < 4; ++t) {
                float v = win[t / 2 * s.W + t % 2];
                if (std::isnan(v)) {
                  k = t;
                  break;
                }
                if (k < 0 || v > win[k / 2 * s.W + k % 2]) k = t;
              }
              float v = win[k / 2 * s.W + k % 2];
              if (relu && !(v > 0.f)) v = 0.f, k = 4;
              size_t at = size_t((q * Hp + r) * Wp + c);
              nans += std::isnan(v);
              bad += std::memcmp(&v, &yp[at], sizeof v) != 0 || code[at] != k;
            }
        INFO((relu ? "pooled + relu" : "pooled"));
        CHECK(bad == 0);
        if (relu) CHECK(nans == 0);
        else CHECK(nans > 0);
        for (int64_t i = 0; i < guard; ++i) CHECK((yp[size_t(P + i)] == 7.f && code[size_t(P + i)] == 99));
      }
    }
  }
}

TEST_CASE("kernels: Winograd conv2d runs for conv2d, with the same bits at 1 and 3 threads, and switches off",
          "[kernels][winograd]") {
  IsaRestore restore;
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    Shape5 s{7, 16, 32, 10, 12};
    Tensor x = randn({s.N, s.C, s.H, s.W}), w = randn({s.O, s.C, 3, 3}) * 0.3, b = randn({s.O});
    auto conv = [&](int threads) {
      bt::ThreadCount tc(threads);
      return F::conv2d_relu(x, w, b, 1, 1, 1, 1, true);
    };
    Tensor one = conv(1), three = conv(3);
    INFO(isa);
    CHECK(bit_equal(one, three));
    // conv2d dispatched to it: the kernel called directly gives the same bits
    std::vector<float> direct(size_t(one.numel()));
    kc::conv2d_forward_winograd(x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), same3x3(s), s.O, true,
                                direct.data());
    CHECK(std::memcmp(direct.data(), one.data_ptr<float>(), sizeof(float) * direct.size()) == 0);
    // off: the direct unfold-and-GEMM path, other roundings of the same sums
    {
      GemmBf16Scope bf16(true);  // the bf16 GEMM's rounded operands: not this f32 path
      CHECK_FALSE(kc::conv2d_winograd_applies(same3x3(s), s.O));
    }
    kc::set_conv_winograd(false);
    CHECK_FALSE(kc::conv2d_winograd_applies(same3x3(s), s.O));
    Tensor off = conv(2);
    kc::set_conv_winograd(true);
    CHECK_FALSE(bit_equal(off, one));
    expect_close(off, one, 1e-5, "Winograd vs direct");
  }
}

TEST_CASE("kernels: Winograd conv2d weight gradient matches its definition", "[kernels][winograd]") {
  IsaRestore restore;
  // an odd sample count (a partial GEMM batch of samples), odd planes, a row
  // of three tile chunks, C = 9
  std::vector<Shape5> shapes{{3, 32, 64, 14, 14}, {5, 8, 8, 9, 7}, {1, 9, 13, 2, 3}, {2, 11, 20, 5, 37},
                             {3, 8, 9, 34, 32}};
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    for (const Shape5& s : shapes) {
      Geom2d g = same3x3(s);
      int64_t HW = s.H * s.W;
      std::vector<float> x = values(s.N * s.C * HW, 7), gy = values(s.N * s.O * HW, 8);
      std::vector<float> gw(size_t(s.O * s.C * 9), 0.5f);  // finish() adds to what is there
      {
        kc::WinogradWeightGrad wg(g, s.O);
        std::vector<float> buf(size_t(s.O * HW));  // gy_n from a buffer reused for the next sample
        for (int64_t n = 0; n < s.N; ++n) {
          std::copy(gy.begin() + n * s.O * HW, gy.begin() + (n + 1) * s.O * HW, buf.begin());
          wg.add(buf.data(), x.data() + n * s.C * HW);
          std::fill(buf.begin(), buf.end(), NAN);
        }
        wg.finish(gw.data());
      }
      int64_t bad = 0;
      double worst = 0;
      for (int64_t o = 0; o < s.O; ++o)
        for (int64_t c = 0; c < s.C; ++c)
          for (int64_t i = 0; i < 3; ++i)
            for (int64_t j = 0; j < 3; ++j) {
              double sum = 0.5, mag = 0.5;
              for (int64_t n = 0; n < s.N; ++n)
                for (int64_t h = 0; h < s.H; ++h)
                  for (int64_t v = 0; v < s.W; ++v) {
                    int64_t r = h + i - 1, q = v + j - 1;
                    if (r < 0 || r >= s.H || q < 0 || q >= s.W) continue;
                    double t = double(gy[size_t(((n * s.O + o) * s.H + h) * s.W + v)]) *
                               x[size_t(((n * s.C + c) * s.H + r) * s.W + q)];
                    sum += t, mag += std::abs(t);
                  }
              double err = std::abs(gw[size_t(((o * s.C + c) * 3 + i) * 3 + j)] - sum) / (1 + mag);
              worst = std::max(worst, std::isnan(err) ? 1e9 : err);
              bad += !(err <= 1e-5);
            }
      INFO(isa << " N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W << ": worst error "
               << worst << " of the magnitude");
      CHECK(bad == 0);
    }
  }
}


// Under bf16 autocast on the AVX512-BF16 kernel the forward runs in bf16:
// x and w rounded, then the transformed tiles V = B^T x B and U = G w G^T
// rounded again, products in bf16, sums in f32. Against the convolution of
// the rounded operands in double, each output's error must lie within the
// bound those roundings allow, computed here from this file's own
// transforms: |y - y*| <= 2.01 u sum_xi |a_xi| sum_c |U_xi,c| |V_xi,c| + f32
// summation (u = 2^-8, a_xi the output transform's +-1 weights of the
// output); and since the roundings are independent, their sum must stay far
// below the sum of the bounds (a layout error reaches the bound's scale).
// Outputs rounded to bf16 when asked; the pooled form equals the plain form
// pooled; conv2d under autocast dispatches to it; the gradients keep the
// direct path.
TEST_CASE("kernels: Winograd conv2d forward in bf16 is within its rounding bound of the rounded operands' convolution",
          "[kernels][winograd]") {
  IsaRestore restore;
  struct Bf16Restore {
    std::string prev = kc::bf16_gemm_kernel();
    ~Bf16Restore() {
      kc::set_sgemm_isa("auto");
      kc::set_bf16_gemm_kernel(prev);
    }
  } bf16_restore;
  if (!kc::bf16_gemm_kernel_supported("avx512bf16")) {
    WARN("SKIPPED: the bf16 Winograd forward: this CPU lacks AVX512-BF16");
    return;
  }
  kc::set_bf16_gemm_kernel("avx512bf16");
  const double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  const double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
  std::vector<Shape5> shapes{{5, 32, 64, 14, 14}, {2, 8, 8, 9, 7}, {3, 9, 13, 2, 3}, {2, 11, 20, 5, 37},
                             {2, 8, 9, 34, 32}};
  for (const Shape5& s : shapes)
    for (bool round_out : {false, true}) {
      Geom2d g = same3x3(s);
      int64_t HW = s.H * s.W, Y = s.N * s.O * HW;
      std::vector<float> x = values(s.N * s.C * HW, 11), w = values(s.O * s.C * 9, 12, 0.3), b = values(s.O, 13);
      std::vector<float> y(static_cast<size_t>(Y));
      {
        GemmBf16Scope on(true);
        REQUIRE(kc::conv2d_winograd_bf16_applies(g, s.O));
        CHECK_FALSE(kc::conv2d_winograd_applies(g, s.O));  // the f32 form refuses rounded operands
        kc::conv2d_forward_winograd(x.data(), w.data(), b.data(), g, s.O, false, y.data(), nullptr, nullptr, round_out);
      }
      std::vector<double> xr(x.size()), U(size_t(s.O * s.C * 16));
      for (size_t i = 0; i < x.size(); ++i) xr[i] = brisk::bf16_rounded(x[i]);
      for (int64_t oc = 0; oc < s.O * s.C; ++oc)  // U = G w G^T of the rounded weights
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) {
            double u = 0;
            for (int k = 0; k < 3; ++k)
              for (int l = 0; l < 3; ++l) u += G[i][k] * brisk::bf16_rounded(w[size_t(oc * 9 + k * 3 + l)]) * G[j][l];
            U[size_t(oc * 16 + i * 4 + j)] = u;
          }
      auto xat = [&](int64_t n, int64_t c, int64_t r, int64_t q) {
        return r < 0 || r >= s.H || q < 0 || q >= s.W ? 0.0 : xr[size_t(((n * s.C + c) * s.H + r) * s.W + q)];
      };
      int64_t bad = 0;
      double err_sum = 0, bound_sum = 0;
      std::vector<double> V(size_t(s.C * 16));
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t ty = 0; ty < (s.H + 1) / 2; ++ty)
          for (int64_t tx = 0; tx < (s.W + 1) / 2; ++tx) {
            for (int64_t c = 0; c < s.C; ++c)  // V = B^T d B of the tile's rounded input
              for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) {
                  double v = 0;
                  for (int k = 0; k < 4; ++k)
                    for (int l = 0; l < 4; ++l) v += BT[i][k] * xat(n, c, 2 * ty - 1 + k, 2 * tx - 1 + l) * BT[j][l];
                  V[size_t(c * 16 + i * 4 + j)] = v;
                }
            for (int64_t o = 0; o < s.O; ++o)
              for (int di = 0; di < 2; ++di)
                for (int dj = 0; dj < 2; ++dj) {
                  int64_t h = 2 * ty + di, v = 2 * tx + dj;
                  if (h >= s.H || v >= s.W) continue;
                  double want = b[size_t(o)], bound = 0, mag = std::abs(b[size_t(o)]);
                  for (int64_t c = 0; c < s.C; ++c) {
                    for (int k = 0; k < 9; ++k) {
                      double t = xat(n, c, h + k / 3 - 1, v + k % 3 - 1) * brisk::bf16_rounded(w[size_t((o * s.C + c) * 9 + k)]);
                      want += t, mag += std::abs(t);
                    }
                    for (int xi = 0; xi < 16; ++xi)
                      bound += std::abs(AT[di][xi / 4] * AT[dj][xi % 4]) *
                               std::abs(U[size_t((o * s.C + c) * 16 + xi)] * V[size_t(c * 16 + xi)]);
                  }
                  bound = 2.01 * 0x1p-8 * bound + 1e-5 * (1 + mag);  // + f32 sums
                  if (round_out) {  // and the output's own rounding
                    want = brisk::bf16_rounded(float(want));
                    bound += 0x1p-8 * (std::abs(want) + bound);
                  }
                  double got = y[size_t(((n * s.O + o) * s.H + h) * s.W + v)], err = std::abs(got - want);
                  bad += !(err <= bound) || (round_out && double(brisk::bf16_rounded(float(got))) != got);
                  err_sum += err, bound_sum += bound;
                }
          }
      INFO("N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W << (round_out ? " rounded" : "")
                << ": errors sum to " << err_sum / bound_sum << " of the bounds'");
      CHECK(bad == 0);
      CHECK(err_sum <= 0.25 * bound_sum);
      CHECK(err_sum > 0);  // the bf16 products did run (the f32 form would be far closer)
    }
  // Exact where every step is: nonzero integers within 4 (plus 2^-10, which
  // only the input's rounding removes: V would keep it where its integer
  // part is 0) and weights within 3 make V integers below 16 and U quarters below
  // 64, all exact in bf16, and every product and sum exact in f32.
  for (bool round_out : {false, true}) {
    Shape5 s{3, 32, 40, 9, 14};
    int64_t HW = s.H * s.W, Y = s.N * s.O * HW;
    std::vector<float> x = values(s.N * s.C * HW, 14), w = values(s.O * s.C * 9, 15), b = values(s.O, 16);
    for (float& e : x) {  // k != 0: 2^-10 is below half of k's bf16 ulp
      float k = std::clamp(std::round(e * 2.f), -4.f, 4.f);
      e = (k == 0.f ? 1.f : k) + 0x1p-10f;
    }
    for (float& e : w) {  // likewise 2^-10 past the nonzero ones (U keeps it where its entry cancels to 0)
      float k = std::clamp(std::round(e * 1.5f), -3.f, 3.f);
      e = k == 0.f ? 0.f : k + 0x1p-10f;
    }
    for (float& e : b) e = std::round(e * 8.f) / 4.f;
    std::vector<float> y(static_cast<size_t>(Y));
    {
      GemmBf16Scope on(true);
      kc::conv2d_forward_winograd(x.data(), w.data(), b.data(), same3x3(s), s.O, true, y.data(), nullptr, nullptr,
                                  round_out);
    }
    int64_t bad = 0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t o = 0; o < s.O; ++o)
        for (int64_t h = 0; h < s.H; ++h)
          for (int64_t v = 0; v < s.W; ++v) {
            double want = b[size_t(o)];
            for (int64_t c = 0; c < s.C; ++c)
              for (int k = 0; k < 9; ++k) {
                int64_t r = h + k / 3 - 1, q = v + k % 3 - 1;
                if (r >= 0 && r < s.H && q >= 0 && q < s.W)
                  want += std::round(x[size_t(((n * s.C + c) * s.H + r) * s.W + q)]) *
                          std::round(w[size_t((o * s.C + c) * 9 + k)]);
              }
            want = std::max(want, 0.0);
            if (round_out) want = brisk::bf16_rounded(float(want));
            bad += double(y[size_t(((n * s.O + o) * s.H + h) * s.W + v)]) != want;
          }
    INFO("exact case" << (round_out ? ", rounded" : ""));
    CHECK(bad == 0);
  }
  // conv2d + 2x2 pool under autocast (folded casts) runs it, pooled in
  // registers: the plain form's rounded outputs, pooled (first maximum).
  Shape5 s{3, 16, 24, 10, 12};
  Tensor x = randn({s.N, s.C, s.H, s.W}), w = randn({s.O, s.C, 3, 3}) * 0.3, bt = randn({s.O});
  Tensor yp;
  {
    AutocastGuard ac(AutocastPolicy{LowPrecision::bf16});
    yp = F::conv2d_max_pool2d(x, w, bt, 1, 1, 1, 1, false);
  }
  CHECK(last_backend("conv2d_pool_fwd") == "cpu");
  std::vector<float> plain(size_t(s.N * s.O * s.H * s.W));
  {
    GemmBf16Scope on(true);
    kc::conv2d_forward_winograd(x.data_ptr<float>(), w.data_ptr<float>(), bt.data_ptr<float>(), same3x3(s), s.O, false,
                                plain.data(), nullptr, nullptr, true);
  }
  auto pv = yp.to_vector();
  int64_t bad = 0, Hp = s.H / 2, Wp = s.W / 2;
  for (int64_t p = 0; p < s.N * s.O; ++p)
    for (int64_t r = 0; r < Hp; ++r)
      for (int64_t c = 0; c < Wp; ++c) {
        float m = -INFINITY;
        for (int k = 0; k < 4; ++k) m = std::max(m, plain[size_t((p * s.H + 2 * r + k / 2) * s.W + 2 * c + k % 2)]);
        bad += pv[size_t((p * Hp + r) * Wp + c)] != double(m);
      }
  CHECK(bad == 0);
}

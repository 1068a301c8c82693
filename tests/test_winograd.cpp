// conv2d's Winograd F(2x2, 3x3) forward (kernels/cpu/conv2d_winograd.h)
// against the convolution by its definition, summed here in double; its
// sink, source and pooled forms against its plain form bit for bit (the
// pool's rule written out here); its bits at 1 and 3 threads; and the
// switch that turns it off. Every ISA it runs on that the CPU has.
#include <cmath>
#include <cstring>
#include <utility>

#include "core/autocast.h"
#include "kernels/cpu/conv2d_winograd.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "tests/helpers.h"
#include "tests/winograd_helpers.h"

using namespace bt;
using namespace bt::winograd;
namespace kc = brisk::kern::cpu;
namespace F = brisk::nn::functional;

TEST_CASE("kernels: Winograd conv2d forward matches the convolution by definition", "[kernels][winograd]") {
  IsaRestore restore;
  // The cnn's second layer (a batch that leaves a partial block), odd planes,
  // a plane narrower than a tile row chunk, a row of three chunks, channel
  // counts off the GEMM's tiles, and C = 9 (no spare row after the last
  // channel of a 16-wide strip).
  // And a plane of 272 tiles (blocks of one sample). Planes up to 7 tiles
  // wide take the 16-lane transforms on AVX-512 (two tile rows a vector):
  // an odd tile-row count, odd widths, one tile a row.
  std::vector<Shape5> shapes{{5, 32, 64, 14, 14}, {2, 8, 8, 9, 7}, {3, 9, 13, 2, 3}, {2, 11, 20, 5, 37},
                             {2, 8, 9, 34, 32},   {3, 8, 12, 10, 13}, {3, 8, 10, 5, 2}};
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
        std::vector<float> x = normal_floats(s.N * s.C * HW, 1), w = normal_floats(s.O * s.C * 9, 2, 0.3), b = normal_floats(s.O, 3);
        const int64_t guard = 32;
        std::vector<float> y(size_t(Y + guard), NAN);  // NaN: an output never written fails
        for (int64_t i = 0; i < guard; ++i) y[size_t(Y + i)] = 7.f;
        kc::conv2d_forward_winograd(x.data(), w.data(), b.data(), g, s.O, relu, false, y.data());
        int64_t bad = 0;
        double worst = 0;
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t o = 0; o < s.O; ++o)
            for (int64_t h = 0; h < s.H; ++h)
              for (int64_t v = 0; v < s.W; ++v) {
                double mag, sum = conv_at(s, x, w, b, n, o, h, v, mag);
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
    // (10 x 13: an odd count of pooled rows, fewer pooled columns than tiles a row)
    for (Shape5 s : {Shape5{5, 32, 64, 14, 14}, Shape5{3, 16, 24, 9, 7}, Shape5{2, 9, 10, 6, 20},
                     Shape5{3, 8, 12, 10, 13}}) {
      Geom2d g = same3x3(s);
      int64_t HW = s.H * s.W, Hp = s.H / 2, Wp = s.W / 2;
      std::vector<float> x = normal_floats(s.N * s.C * HW, 4), w = normal_floats(s.O * s.C * 9, 5, 0.3), b = normal_floats(s.O, 6);
      x[size_t(HW + 2 * s.W + 3)] = NAN;  // sample 0, channel 1: a NaN that reaches several pool windows
      std::vector<float> plain(size_t(s.N * s.O * HW));
      kc::conv2d_forward_winograd(x.data(), w.data(), b.data(), g, s.O, false, false, plain.data());
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
      kc::conv2d_forward_winograd(nullptr, w.data(), b.data(), g, s.O, false, false, nullptr, &sink, &source);
      CHECK(std::memcmp(sunk.data(), plain.data(), sizeof(float) * plain.size()) == 0);
      // pooled: max_pool_2x2's rule on the plain output (the first NaN, else
      // the first maximum, row-major in the window), then relu_pooled's
      for (bool relu : {false, true}) {
        int64_t P = s.N * s.O * Hp * Wp, guard = 24;
        std::vector<float> yp(size_t(P + guard), NAN);
        std::vector<uint8_t> code(size_t(P + guard), 99);
        for (int64_t i = 0; i < guard; ++i) yp[size_t(P + i)] = 7.f;
        kc::conv2d_pool_forward_winograd(x.data(), w.data(), b.data(), g, s.O, relu, false, yp.data(), code.data());
        int64_t nans = 0;
        INFO((relu ? "pooled + relu" : "pooled"));
        CHECK(pool_mismatches(s, plain, relu, yp, code, nans) == 0);
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
                                false, direct.data());
    CHECK(std::memcmp(direct.data(), one.data_ptr<float>(), sizeof(float) * direct.size()) == 0);
    // off: the direct unfold-and-GEMM path, other roundings of the same sums
    {
      // the bf16 GEMM's rounded operands: this path (rounding them itself)
      // only where the CPU has no bf16 dot products for conv2d's bf16 kernels
      GemmBf16Scope bf16(true);
      CHECK(kc::conv2d_winograd_applies(same3x3(s), s.O) == !kc::sgemm_bf16_supported());
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
                             {3, 8, 9, 34, 32},   {3, 8, 12, 10, 13}, {3, 8, 10, 5, 2}};
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    for (const Shape5& s : shapes) {
      Geom2d g = same3x3(s);
      int64_t HW = s.H * s.W;
      std::vector<float> x = normal_floats(s.N * s.C * HW, 7), gy = normal_floats(s.N * s.O * HW, 8);
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
      auto [bad, worst] = weight_grad_errors(s, x, gy, gw, 0.5);
      INFO(isa << " N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W << ": worst error "
               << worst << " of the magnitude");
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("kernels: Winograd weight gradient from a pooled gradient and its codes matches its definition",
          "[kernels][winograd]") {
  IsaRestore restore;
  // Even planes: the cnn's second layer, a plane 6 tiles wide, one 10 wide.
  std::vector<Shape5> shapes{{3, 32, 64, 14, 14}, {3, 8, 12, 10, 12}, {2, 9, 8, 6, 20}};
  if (!kc::WinogradWeightGrad::pooled_applies(same3x3(shapes[0]))) {
    WARN("SKIPPED: the pooled Winograd weight gradient needs an AVX-512 build");
    return;
  }
  CHECK_FALSE(kc::WinogradWeightGrad::pooled_applies(same3x3({1, 8, 8, 9, 8})));  // odd height
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    for (const Shape5& s : shapes) {
      Geom2d g = same3x3(s);
      const int64_t HW = s.H * s.W, P = (s.H / 2) * (s.W / 2);
      std::vector<float> x = normal_floats(s.N * s.C * HW, 9), gp = normal_floats(s.N * s.O * P, 10);
      std::vector<uint8_t> code = pool_codes(gp.size());
      // bf16 (folded casts): the sums of x's and gp's bf16 roundings
      for (bool bf16 : {false, true}) {
        std::vector<float> gw(size_t(s.O * s.C * 9), 0.25f);
        {
          kc::WinogradWeightGrad wg(g, s.O, bf16);
          for (int64_t n = 0; n < s.N; ++n)
            wg.add_pooled(gp.data() + n * s.O * P, code.data() + n * s.O * P, x.data() + n * s.C * HW);
          wg.finish(gw.data());
        }
        std::vector<float> gy = expand_pooled(s, bf16 ? bf16_roundings(gp) : gp, code);
        auto [bad, worst] = weight_grad_errors(s, bf16 ? bf16_roundings(x) : x, gy, gw, 0.25);
        INFO(isa << " N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W << (bf16 ? " bf16" : "")
                 << ": worst error " << worst << " of the magnitude");
        CHECK(bad == 0);
        if (bf16)  // rounded: not the f32 operands' sums
          CHECK(weight_grad_errors(s, x, expand_pooled(s, gp, code), gw, 0.25).first > 0);
      }
    }
  }
}

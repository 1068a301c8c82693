// conv2d's Winograd F(2x2, 3x3) kernels under folded bf16 casts
// (kernels/cpu/conv2d_winograd.h, "bf16"), which CPUs without bf16 dot
// products run under bf16 autocast: the forward against the convolution of
// the operands' bf16 roundings by definition (in double), then rounded; its
// pooled, source and pooled-input forms against its plain form bit for bit;
// the weight gradient against its definition on rounded operands; and
// conv2d under autocast dispatching to it, against the unfold path.
#include <cmath>
#include <cstring>

#include "core/autocast.h"
#include "tests/helpers.h"
#include "tests/winograd_helpers.h"

using namespace bt;
using namespace bt::winograd;
namespace kc = brisk::kern::cpu;
namespace F = brisk::nn::functional;

namespace {

uint32_t bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

// Whether y, a bf16 value, is `exact` (a double) rounded to bf16 (nearest
// even), allowing the other neighbour where exact lies within tol of the
// midpoint between the two (the kernel's f32 sums differ from exact by a
// few f32 ulps, which can carry it across).
bool rounded_from(float y, double exact, double tol) {
  const float want = bf16_rounded(float(exact));
  if (bits(y) == bits(want)) return true;
  const double mid = (double(y) + double(want)) / 2;
  return std::abs(exact - mid) <= tol && std::abs(double(y) - double(want)) <= std::abs(double(want)) / 64;
}

std::vector<Shape5> shapes() {
  // The cnn's second layer (a partial block of samples), odd planes, a plane
  // narrower than a tile-row chunk, a row of three chunks, 16-lane pairs
  // on AVX-512 (planes up to 7 tiles wide), C = 9.
  return {{5, 32, 64, 14, 14}, {2, 8, 8, 9, 7}, {3, 9, 13, 2, 3}, {2, 11, 20, 5, 37}, {3, 8, 12, 10, 13}};
}

}  // namespace

TEST_CASE("kernels: Winograd conv2d in bf16 is the rounded operands' convolution, rounded",
          "[kernels][winograd][winograd_bf16]") {
  IsaRestore restore;
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    for (const Shape5& s : shapes())
      for (bool relu : {false, true}) {
        Geom2d g = same3x3(s);
        const int64_t HW = s.H * s.W, Y = s.N * s.O * HW;
        std::vector<float> x = normal_floats(s.N * s.C * HW, 21), w = normal_floats(s.O * s.C * 9, 22, 0.3), b = normal_floats(s.O, 23);
        std::vector<float> y(size_t(Y), NAN);
        kc::conv2d_forward_winograd(x.data(), w.data(), b.data(), g, s.O, relu, true, y.data());
        const std::vector<float> xr = bf16_roundings(x), wr = bf16_roundings(w);
        int64_t bad = 0, not_bf16 = 0, off_unrounded = 0;
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t o = 0; o < s.O; ++o)
            for (int64_t h = 0; h < s.H; ++h)
              for (int64_t v = 0; v < s.W; ++v) {
                const float got = y[size_t(((n * s.O + o) * s.H + h) * s.W + v)];
                double mag, exact = conv_at(s, xr, wr, b, n, o, h, v, mag);
                double mag_f, exact_f = conv_at(s, x, w, b, n, o, h, v, mag_f);  // the f32 operands', unrounded
                if (relu) exact = std::max(exact, 0.0), exact_f = std::max(exact_f, 0.0);
                bad += !rounded_from(got, exact, 1e-5 * (1 + mag));
                not_bf16 += (bits(got) & 0xffffu) != 0;
                off_unrounded += !rounded_from(got, exact_f, 1e-5 * (1 + mag_f));
              }
        INFO(isa << " N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W << (relu ? " relu" : ""));
        CHECK(bad == 0);
        CHECK(not_bf16 == 0);
        // the operands were rounded: some outputs are not the f32 operands' sums rounded
        CHECK(off_unrounded > 0);
      }
  }
}

TEST_CASE("kernels: Winograd conv2d in bf16: pooled, source and pooled-input forms give its plain form's bits",
          "[kernels][winograd][winograd_bf16]") {
  IsaRestore restore;
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    for (Shape5 s : {Shape5{5, 32, 64, 14, 14}, Shape5{3, 16, 24, 9, 7}, Shape5{3, 8, 12, 10, 12}}) {
      Geom2d g = same3x3(s);
      const int64_t HW = s.H * s.W;
      std::vector<float> x = normal_floats(s.N * s.C * HW, 24), w = normal_floats(s.O * s.C * 9, 25, 0.3), b = normal_floats(s.O, 26);
      x[size_t(HW + 2 * s.W + 3)] = NAN;  // a NaN reaching several pool windows: quiet, rounded or not
      std::vector<float> plain(size_t(s.N * s.O * HW));
      kc::conv2d_forward_winograd(x.data(), w.data(), b.data(), g, s.O, false, true, plain.data());
      INFO(isa << " N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W);
      // source: x_n from a buffer
      std::vector<float> from_source(plain.size(), NAN);
      kc::ConvSampleSource source = [&](int64_t n) {
        static thread_local std::vector<float> buf;
        buf.assign(x.begin() + n * s.C * HW, x.begin() + (n + 1) * s.C * HW);
        return static_cast<const float*>(buf.data());
      };
      kc::ConvSampleSink sink = [&](int64_t n, const float* yn) {
        std::memcpy(from_source.data() + n * s.O * HW, yn, sizeof(float) * size_t(s.O * HW));
      };
      kc::conv2d_forward_winograd(nullptr, w.data(), b.data(), g, s.O, false, true, nullptr, &sink, &source);
      CHECK(std::memcmp(from_source.data(), plain.data(), sizeof(float) * plain.size()) == 0);
      // pooled: max_pool_2x2's rule on the rounded plain output
      for (bool relu : {false, true}) {
        const int64_t P = s.N * s.O * (s.H / 2) * (s.W / 2);
        std::vector<float> yp(size_t(P), NAN);
        std::vector<uint8_t> code(size_t(P), 99);
        kc::conv2d_pool_forward_winograd(x.data(), w.data(), b.data(), g, s.O, relu, true, yp.data(), code.data());
        int64_t nans = 0;
        INFO((relu ? "pooled + relu" : "pooled"));
        CHECK(pool_mismatches(s, plain, relu, yp, code, nans) == 0);
        CHECK((relu ? nans == 0 : nans > 0));
      }
      // a pooled input (the input gradient's form): the bits of its expansion
      if (s.H % 2 == 0 && s.W % 2 == 0) {
        const Shape5 in{s.N, 0, s.C, s.H, s.W};  // expand_pooled's planes: N * C of them
        std::vector<float> gq = normal_floats(s.N * s.C * (s.H / 2) * (s.W / 2), 27);
        std::vector<uint8_t> codes = pool_codes(gq.size());
        std::vector<float> full = expand_pooled(in, gq, codes), want(plain.size()), got(plain.size(), NAN);
        kc::conv2d_forward_winograd(full.data(), w.data(), nullptr, g, s.O, false, true, want.data());
        kc::PooledInput pooled{gq.data(), codes.data(), s.H / 2, s.W / 2};
        kc::conv2d_forward_winograd(nullptr, w.data(), nullptr, g, s.O, false, true, got.data(), nullptr, nullptr,
                                    &pooled);
        CHECK(std::memcmp(got.data(), want.data(), sizeof(float) * want.size()) == 0);
      }
    }
  }
}

TEST_CASE("kernels: Winograd conv2d weight gradient in bf16 sums the rounded operands' products",
          "[kernels][winograd][winograd_bf16]") {
  IsaRestore restore;
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    for (const Shape5& s : shapes()) {
      Geom2d g = same3x3(s);
      const int64_t HW = s.H * s.W;
      std::vector<float> x = normal_floats(s.N * s.C * HW, 28), gy = normal_floats(s.N * s.O * HW, 29);
      // gw [O, C, 3, 3] from 0.5 plus every sample's sums, with the flag given
      auto weight_grad = [&](bool bf16) {
        std::vector<float> out(size_t(s.O * s.C * 9), 0.5f);
        kc::WinogradWeightGrad wg(g, s.O, bf16);
        for (int64_t n = 0; n < s.N; ++n) wg.add(gy.data() + n * s.O * HW, x.data() + n * s.C * HW);
        wg.finish(out.data());
        return out;
      };
      const std::vector<float> gw = weight_grad(true);
      auto [bad, worst] = weight_grad_errors(s, bf16_roundings(x), bf16_roundings(gy), gw, 0.5);
      INFO(isa << " N " << s.N << " C " << s.C << " O " << s.O << " " << s.H << "x" << s.W << ": worst error " << worst
               << " of the magnitude");
      CHECK(bad == 0);
      CHECK(weight_grad_errors(s, x, gy, gw, 0.5).first > 0);  // rounded: not the f32 operands' sums
      // bf16 (the flag) or the bf16 GEMM's operands (autocast's scope): the same sums
      std::vector<float> scoped;
      {
        GemmBf16Scope on(true);
        scoped = weight_grad(false);
      }
      CHECK(std::memcmp(scoped.data(), gw.data(), sizeof(float) * gw.size()) == 0);
    }
  }
}

TEST_CASE("conv2d under bf16 autocast runs Winograd where the CPU has no bf16 dot products",
          "[kernels][winograd][winograd_bf16]") {
  IsaRestore restore;
  for (const char* isa : vector_sgemm_isas("Winograd conv2d")) {
    kc::set_sgemm_isa(isa);
    const Shape5 s{7, 16, 32, 10, 12};
    {
      GemmBf16Scope on(true);
      if (kc::sgemm_bf16_supported()) {  // conv2d's bf16 kernels take it there
        CHECK_FALSE(kc::conv2d_winograd_applies(same3x3(s), s.O));
        continue;
      }
      REQUIRE(kc::conv2d_winograd_applies(same3x3(s), s.O));
    }
    manual_seed(31);
    Tensor x0 = randn({s.N, s.C, s.H, s.W}), w0 = randn({s.O, s.C, 3, 3}) * 0.3, b0 = randn({s.O});
    Tensor r = randn({s.N, s.O, s.H, s.W}), rp = randn({s.N, s.O, s.H / 2, s.W / 2});
    // y, then the gradients of x, w and b, for sum(y * r); pooled: conv2d_max_pool2d with its ReLU
    auto run = [&](bool pooled, int threads) {
      bt::ThreadCount tc(threads);
      Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      AutocastGuard ac({LowPrecision::bf16});
      Tensor y = pooled ? F::conv2d_max_pool2d(x, w, b, 1, 1, 1, 1, true) : F::conv2d_relu(x, w, b, 1, 1, 1, 1, false);
      sum(y * (pooled ? rp : r)).backward();
      return std::vector<Tensor>{y, x.grad(), w.grad(), b.grad()};
    };
    INFO(isa);
    for (bool pooled : {false, true}) {
      std::vector<Tensor> one = run(pooled, 1), three = run(pooled, 3);
      for (size_t i = 0; i < one.size(); ++i) CHECK(bit_equal(one[i], three[i]));
      for (size_t i = 0; i < 3; ++i)  // y, x.grad, w.grad: bf16 values (b stays f32)
        CHECK(bit_equal(one[i].to(DType::bf16).to(DType::f32), one[i]));
      // dispatched to Winograd: the kernel called directly gives the forward's bits
      const int64_t Y = one[0].numel();
      std::vector<float> direct(static_cast<size_t>(Y));
      std::vector<uint8_t> code(static_cast<size_t>(Y));
      if (pooled)
        kc::conv2d_pool_forward_winograd(x0.data_ptr<float>(), w0.data_ptr<float>(), b0.data_ptr<float>(),
                                         same3x3(s), s.O, true, true, direct.data(), code.data());
      else
        kc::conv2d_forward_winograd(x0.data_ptr<float>(), w0.data_ptr<float>(), b0.data_ptr<float>(), same3x3(s),
                                    s.O, false, true, direct.data());
      CHECK(std::memcmp(direct.data(), one[0].data_ptr<float>(), sizeof(float) * size_t(Y)) == 0);
      if (pooled) continue;  // a pool window's argmax can flip between two paths' roundings: compared unpooled
      // the unfold path on rounded copies: the same values to a bf16 rounding of f32 sums
      kc::set_conv_winograd(false);
      std::vector<Tensor> off = run(false, 2);
      kc::set_conv_winograd(true);
      const char* names[] = {"y", "x.grad", "w.grad", "b.grad"};
      for (size_t i = 0; i < one.size(); ++i)
        expect_close(one[i], off[i], 1e-2, std::string("Winograd vs unfold, ") + names[i]);
    }
  }
}

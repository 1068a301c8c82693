// Emulated f8: every code round-trips, casts saturate, ties go to even, the
// quantize/dequantize error is within 2^-4 (E4M3) / 2^-3 (E5M2) of |x| in the
// normal range, and delayed scaling follows scale = max * 2^-margin / amax.
#include "core/fp8.h"
#include "tests/helpers.h"

using namespace bt;

TEST_CASE("fp8: representable values round-trip, saturation, ties to even", "[fp8]") {
  for (Fp8Format f : {Fp8Format::e4m3, Fp8Format::e5m2}) {
    INFO(fp8_name(f));
    int finite = 0;
    for (int c = 0; c < 256; ++c) {
      float v = fp8_decode(uint8_t(c), f);
      if (!std::isfinite(v)) continue;
      ++finite;
      uint8_t back = fp8_encode(v, f);
      // +0 and -0 keep their sign; every other value maps back to its own code
      CHECK(fp8_decode(back, f) == v);
      if (v != 0) CHECK(back == c);
    }
    CHECK(finite == (f == Fp8Format::e4m3 ? 254 : 248));  // E4M3: 2 NaN codes; E5M2: 2 inf + 6 NaN
    double mx = fp8_max(f);
    CHECK(fp8_decode(fp8_encode(1e9f, f), f) == float(mx));
    CHECK(fp8_decode(fp8_encode(-1e9f, f), f) == float(-mx));
    CHECK(fp8_decode(fp8_encode(INFINITY, f), f) == float(mx));
    CHECK(std::isnan(fp8_decode(fp8_encode(NAN, f), f)));
  }
  // E4M3 has 3 mantissa bits: between 1 and 2 the step is 1/8.
  CHECK(fp8_decode(fp8_encode(1.0625f, Fp8Format::e4m3), Fp8Format::e4m3) == 1.0f);   // tie -> even (1.000)
  CHECK(fp8_decode(fp8_encode(1.1875f, Fp8Format::e4m3), Fp8Format::e4m3) == 1.25f);  // tie -> even (1.010)
  CHECK(fp8_decode(fp8_encode(1.07f, Fp8Format::e4m3), Fp8Format::e4m3) == 1.125f);
  // E5M2 has 2: step 1/4
  CHECK(fp8_decode(fp8_encode(1.125f, Fp8Format::e5m2), Fp8Format::e5m2) == 1.0f);
  CHECK(fp8_decode(fp8_encode(1.375f, Fp8Format::e5m2), Fp8Format::e5m2) == 1.5f);
  // smallest subnormals: E4M3 2^-9, E5M2 2^-16
  CHECK(fp8_decode(0x01, Fp8Format::e4m3) == std::ldexp(1.0f, -9));
  CHECK(fp8_decode(0x01, Fp8Format::e5m2) == std::ldexp(1.0f, -16));
}

TEST_CASE("fp8: quantize/dequantize error in the normal range is within 2^-4 / 2^-3", "[fp8]") {
  for (auto [f, bound, min_normal] : {std::tuple{Fp8Format::e4m3, 1.0 / 16, std::ldexp(1.0, -6)},
                                      std::tuple{Fp8Format::e5m2, 1.0 / 8, std::ldexp(1.0, -14)}}) {
    INFO(fp8_name(f));
    Generator g(9);
    // log-uniform magnitudes over the normal range, random signs
    double lo = std::log(min_normal), hi = std::log(fp8_max(f));
    Tensor x = exp(rand({50000}, DType::f64, &g) * (hi - lo) + lo) * sign(randn({50000}, DType::f64, &g));
    Tensor scale_x = x * 4.0;  // with a scale of 1/4 the stored values are x
    Tensor y = fp8_dequantize(fp8_quantize(scale_x, f, 0.25), f, 0.25).to(DType::f64);
    double worst = max(abs(y - scale_x) / abs(scale_x)).item();
    CHECK(worst <= bound);
    CHECK(worst > bound / 4);  // and the bound is not vacuous
  }
  CHECK_THROWS_WITH(fp8_quantize(randn({2}), Fp8Format::e4m3, 0.0), Catch::Contains("scale"));
  CHECK_THROWS_WITH(fp8_dequantize(randn({2}), Fp8Format::e4m3), Catch::Contains("u8"));
}

TEST_CASE("fp8: delayed scaling uses the history's amax and keeps the scale on 0 or inf", "[fp8]") {
  Fp8DelayedScaling s(Fp8Format::e4m3, 3, 1);
  CHECK(s.scale() == 1.0);
  s.update(zeros({4}));
  CHECK(s.scale() == 1.0);  // amax 0: unchanged
  s.update(from_vector({0.5, -2.0}, {2}));
  CHECK(s.scale() == Approx(448.0 / 2 / 2.0));  // max * 2^-margin / amax
  s.update(from_vector({1.0}, {1}));
  CHECK(s.scale() == Approx(448.0 / 2 / 2.0));  // history max is still 2
  s.update(from_vector({1.0}, {1}));
  s.update(from_vector({1.0}, {1}));  // 2.0 has left the 3-step history
  CHECK(s.scale() == Approx(448.0 / 2 / 1.0));
  double before = s.scale();
  s.update(from_vector({INFINITY}, {1}));
  CHECK(s.scale() == before);  // non-finite amax: unchanged
  CHECK(s.amax_history().size() == 3);
}

TEST_CASE("fp8: fp8_round equals dequantize(quantize()) bit for bit", "[fp8]") {
  std::vector<double> v;
  Generator g(11);
  Tensor r = randn({20000}, DType::f32, &g);
  Tensor e = rand({20000}, DType::f32, &g) * 40.0 - 25.0;  // magnitudes 2^-25 .. 2^15: subnormal to saturated
  Tensor x = r * pow(full({20000}, 2.0), e);
  std::vector<double> xs = x.to_vector();
  for (double s : {0.0, -0.0, 448.0, 464.0, 480.0, 57344.0, 61440.0, 1e9, -1e9, 1.0 / 512, 3.0 / 1024})
    xs.push_back(s);
  xs.push_back(std::numeric_limits<double>::infinity());
  xs.push_back(-std::numeric_limits<double>::infinity());
  Tensor all = from_vector(xs, {int64_t(xs.size())});
  for (Fp8Format f : {Fp8Format::e4m3, Fp8Format::e5m2})
    for (double scale : {1.0, 0.37, 1024.0}) {
      INFO(fp8_name(f) << " scale " << scale);
      Tensor want = fp8_dequantize(fp8_quantize(all, f, scale), f, scale);
      CHECK(bit_equal(fp8_round(all, f, scale), want));
    }
  Tensor nan = from_vector({std::nan("")}, {1});
  CHECK(std::isnan(fp8_round(nan, Fp8Format::e4m3).item()));
}

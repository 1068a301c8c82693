// Stochastic rounding to f16/bf16: every result is x's representable
// neighbour below or above (checked against a table of all 65,536 values),
// exact values are unchanged, the sample mean tracks x, and a seed fixes
// the outcome.
#include <algorithm>

#include "tests/helpers.h"

using namespace bt;

namespace {
// All finite values of a 16-bit float format, sorted.
std::vector<float> all_values(DType dt) {
  std::vector<float> v;
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = dt == DType::f16 ? half_bits_to_float(uint16_t(b)) : bf16_bits_to_float(uint16_t(b));
    if (std::isfinite(f)) v.push_back(f);
  }
  std::sort(v.begin(), v.end());
  return v;
}
}  // namespace

TEST_CASE("precision: stochastic rounding gives round-down or round-up, exact values stay", "[precision]") {
  for (DType dt : {DType::f16, DType::bf16}) {
    INFO(dtype_name(dt));
    auto table = all_values(dt);
    Generator g(3);
    // magnitudes across the range, including f16 subnormals, negatives
    Tensor x = randn({20000}, DType::f32, &g) * exp(randn({20000}, DType::f32, &g) * 3.0);
    Tensor r = stochastic_round(x, dt, &g).to(DType::f32);
    const float *xp = x.data_ptr<float>(), *rp = r.data_ptr<float>();
    int bad = 0, ups = 0, inexact = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      float v = xp[i];
      if (std::abs(v) > table.back()) continue;  // beyond the format: nearest (inf), not tested here
      auto hi_it = std::lower_bound(table.begin(), table.end(), v);  // smallest >= v
      float hi = *hi_it, lo = (hi == v) ? v : *(hi_it - 1);
      if (rp[i] != lo && rp[i] != hi) ++bad;
      if (lo != hi) {
        ++inexact;
        ups += rp[i] == hi;
      }
    }
    CHECK(bad == 0);
    CHECK(inexact > 1000);
    CHECK(ups > inexact / 4);  // both directions really occur
    CHECK(ups < 3 * inexact / 4);
    // representable values come back unchanged
    Tensor exact = from_vector({1.0, -2.5, 0.0, 1024.0, 0.15625}, {5});
    CHECK(bit_equal(stochastic_round(exact, dt, &g).to(DType::f32), exact));
  }
}

TEST_CASE("precision: the mean of stochastic roundings tracks x, a seed fixes the outcome", "[precision]") {
  for (DType dt : {DType::f16, DType::bf16}) {
    INFO(dtype_name(dt));
    // x one third of the way from 1 to the next value up
    float ulp = dt == DType::f16 ? 1.0f / 1024 : 1.0f / 128;
    float x = 1.0f + ulp / 3;
    int64_t n = 200000;
    Generator g(11);
    Tensor r = stochastic_round(full({n}, double(x)), dt, &g).to(DType::f64);
    double mean = sum(r).item() / double(n);
    double sd = ulp * std::sqrt((1.0 / 3) * (2.0 / 3) / double(n));  // Bernoulli(1/3) scaled by ulp
    CHECK(std::abs(mean - double(x)) < 5 * sd);
    // round-to-nearest would give 1 every time: a bias of ulp/3
    CHECK(full({1}, double(x)).to(dt).to(DType::f32).item() == 1.0);
    Generator g1(5), g2(5);
    Tensor y = randn({1000});
    CHECK(bit_equal(stochastic_round(y, dt, &g1), stochastic_round(y, dt, &g2)));
  }
  CHECK_THROWS_WITH(stochastic_round(randn({3}), DType::f32), Catch::Contains("f16 or bf16"));
  CHECK_THROWS_WITH(stochastic_round(randint(0, 3, {3}, DType::i64), DType::bf16), Catch::Contains("floating"));
}

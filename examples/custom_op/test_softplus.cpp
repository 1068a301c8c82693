// The custom op's checks: forward against the reference composition and
// against values worked out by hand; backward against the reference's
// gradient and against central finite differences (in double precision the
// difference quotient of softplus itself, computed here).
#include <cmath>
#include <cstdio>

#include "softplus.h"

static int failures = 0;
static void expect(bool ok, const char* what, double err) {
  std::printf("%s %s (max error %.2e)\n", ok ? "PASS" : "FAIL", what, err);
  failures += !ok;
}

int main() {
  using namespace brisk;
  manual_seed(1);
  // By hand: softplus(0) = ln 2; softplus(100) = 100 (no overflow); softplus(-100) = e^-100 ~ 0.
  {
    Tensor y = example::softplus(from_vector(std::vector<double>{0.0, 100.0, -100.0}, {3}));
    auto v = y.to_vector();
    double err = std::max({std::fabs(v[0] - std::log(2.0)), std::fabs(v[1] - 100.0), std::fabs(v[2])});
    expect(err < 1e-6, "values by hand: ln 2, 100, ~0", err);
  }
  Tensor x = randn({64, 33}) * 4.0;  // odd sizes, both tails
  {
    double err = max(abs(example::softplus(x) - example::softplus_reference(x))).item();
    expect(err < 1e-5, "forward matches the reference composition", err);
  }
  // Backward through a weighted sum, so every element gets its own upstream gradient.
  Tensor w = randn({64, 33});
  Tensor a = x.detach().requires_grad_(true), b = x.detach().requires_grad_(true);
  sum(example::softplus(a) * w).backward();
  sum(example::softplus_reference(b) * w).backward();
  {
    double err = max(abs(a.grad() - b.grad())).item();
    expect(err < 1e-5, "gradient matches the reference's autograd", err);
  }
  {
    // Central differences in double: d/dx softplus at each x, times w.
    auto xs = x.to_vector(), ws = w.to_vector(), gs = a.grad().to_vector();
    auto sp = [](double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::fabs(t))); };
    double err = 0, h = 1e-5;
    for (size_t i = 0; i < xs.size(); ++i)
      err = std::max(err, std::fabs(gs[i] - ws[i] * (sp(xs[i] + h) - sp(xs[i] - h)) / (2 * h)));
    expect(err < 1e-4, "gradient matches finite differences", err);
  }
  bool refused = false;
  try {
    example::softplus(zeros({2}, DType::f64));
  } catch (const Error&) {
    refused = true;
  }
  expect(refused, "an f64 input is refused with an error", 0);
  std::printf("%d failed\n", failures);
  return failures ? 1 : 0;
}

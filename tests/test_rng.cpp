// Counter-based RNG and determinism: same seed and thread count, same bits;
// random tensors do not even depend on the thread count.
#include "tests/helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;

TEST_CASE("rng: Philox4x32-10 matches the Random123 known-answer vector", "[rng]") {
  // Random123 kat_vectors: philox4x32 10 rounds, counter and key all zero.
  auto r = philox4x32({0, 0, 0, 0}, {0, 0});
  CHECK(r[0] == 0x6627e8d5u);
  CHECK(r[1] == 0xe169c58du);
  CHECK(r[2] == 0xbc57ac4cu);
  CHECK(r[3] == 0x9b00dbd8u);
  auto s = philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  CHECK(s[0] == 0x408f276du);
  CHECK(s[1] == 0x41c83b0eu);
  CHECK(s[2] == 0xa20bc7c6u);
  CHECK(s[3] == 0x6d5451fdu);
}

TEST_CASE("rng: same seed gives the same tensors, independent of thread count", "[rng]") {
  int threads = get_num_threads();
  set_num_threads(1);
  manual_seed(123);
  Tensor a = randn({10007});
  Tensor ua = rand({333}, DType::f64);
  set_num_threads(2);
  manual_seed(123);
  Tensor b = randn({10007});
  Tensor ub = rand({333}, DType::f64);
  set_num_threads(threads);
  CHECK(bit_equal(a, b));
  CHECK(bit_equal(ua, ub));
  manual_seed(124);
  CHECK_FALSE(bit_equal(a, randn({10007})));
}

TEST_CASE("rng: randn has mean 0 and variance 1, randint and randperm are in range", "[rng]") {
  Generator g(5);
  Tensor x = randn({200000}, DType::f64, &g);
  CHECK(std::abs(mean(x).item()) < 0.01);
  CHECK(std::abs(var(x).item() - 1) < 0.02);
  Tensor r = randint(3, 7, {1000}, DType::i64, &g);
  CHECK(min(r).item() == 3);
  CHECK(max(r).item() == 6);
  Tensor p = randperm(100, &g);
  auto v = p.to_vector();
  std::sort(v.begin(), v.end());
  for (int i = 0; i < 100; ++i) REQUIRE(v[size_t(i)] == i);
}

// A few SGD steps of a small conv net; returns the final weights.
static Tensor train_steps(uint64_t seed) {
  manual_seed(seed);
  Tensor w = (randn({4, 1, 3, 3}) * 0.3).detach().requires_grad_();
  Tensor v = (randn({10, 4 * 4 * 4}) * 0.1).detach().requires_grad_();
  for (int step = 0; step < 5; ++step) {
    Tensor x = randn({16, 1, 8, 8});
    Tensor y = randint(0, 10, {16});
    Tensor h = F::max_pool2d(relu(F::conv2d(x, w, Tensor(), 1, 1)), 2);
    Tensor loss = F::cross_entropy(F::linear(F::dropout(h.flatten(1), 0.1, true), v), y);
    w.set_grad(Tensor());
    v.set_grad(Tensor());
    loss.backward();
    NoGradGuard ng;
    w.add_(w.grad(), -0.1);
    v.add_(v.grad(), -0.1);
  }
  return cat({w.detach().reshape({-1}), v.detach().reshape({-1})});
}

TEST_CASE("rng: same seed and thread count give bit-identical training", "[rng][determinism]") {
  Tensor a = train_steps(7), b = train_steps(7);
  CHECK(bit_equal(a, b));
  CHECK_FALSE(bit_equal(a, train_steps(8)));
}

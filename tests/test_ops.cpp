// Forward values of ops against hand-computed results.
#include "tests/helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;

static std::vector<double> vals(const Tensor& t) { return t.to_vector(); }

TEST_CASE("ops: broadcasting arithmetic", "[ops]") {
  Tensor a = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = from_vector({10, 20, 30}, {3});
  CHECK(vals(a + b) == std::vector<double>({11, 22, 33, 14, 25, 36}));
  CHECK(vals(a * from_vector({2, 3}, {2, 1})) == std::vector<double>({2, 4, 6, 12, 15, 18}));
  CHECK(vals(b - 5.0) == std::vector<double>({5, 15, 25}));
  CHECK(vals(60.0 / b) == std::vector<double>({6, 3, 2}));
  CHECK(vals(pow(b, 2.0)) == std::vector<double>({100, 400, 900}));
  CHECK(vals(maximum(a, scalar_tensor(3.5))) == std::vector<double>({3.5, 3.5, 3.5, 4, 5, 6}));
  CHECK(vals(minimum(a, scalar_tensor(3.5))) == std::vector<double>({1, 2, 3, 3.5, 3.5, 3.5}));
  CHECK(broadcast_shapes({5, 1, 4}, {3, 1}, "t") == Shape({5, 3, 4}));
  Tensor ia = from_vector({7, -7}, {2}, DType::i64);
  CHECK(vals(ia / from_vector({2, 2}, {2}, DType::i64)) == std::vector<double>({3, -3}));
}

TEST_CASE("ops: unary values", "[ops]") {
  Tensor x = from_vector({-1, 0, 2}, {3}, DType::f64);
  CHECK(vals(relu(x)) == std::vector<double>({0, 0, 2}));
  CHECK(vals(abs(x)) == std::vector<double>({1, 0, 2}));
  CHECK(vals(neg(x)) == std::vector<double>({1, -0.0, -2}));
  CHECK(vals(sign(x)) == std::vector<double>({-1, 0, 1}));
  CHECK(sigmoid(x).to_vector()[1] == 0.5);
  CHECK(std::abs(gelu(x).to_vector()[0] - (-0.15865525393145707)) < 1e-12);  // torch.nn.functional.gelu(-1)
  CHECK(std::abs(tanh(x).to_vector()[2] - std::tanh(2.0)) < 1e-15);
  CHECK(rsqrt(full({1}, 4.0, DType::f64)).item() == 0.5);
  // sigmoid stays finite at extremes
  auto s = vals(sigmoid(from_vector({-1000, 1000}, {2})));
  CHECK(s[0] == 0.0);
  CHECK(s[1] == 1.0);
}

TEST_CASE("ops: comparisons, where, masked_fill", "[ops]") {
  Tensor a = from_vector({1, 2, 3}, {3}), b = from_vector({3, 2, 1}, {3});
  CHECK(vals(lt(a, b)) == std::vector<double>({1, 0, 0}));
  CHECK(vals(le(a, b)) == std::vector<double>({1, 1, 0}));
  CHECK(vals(eq(a, b)) == std::vector<double>({0, 1, 0}));
  CHECK(vals(ne(a, b)) == std::vector<double>({1, 0, 1}));
  CHECK(vals(gt(a, b)) == std::vector<double>({0, 0, 1}));
  CHECK(vals(ge(a, b)) == std::vector<double>({0, 1, 1}));
  CHECK(lt(a, b).dtype() == DType::boolean);
  CHECK(vals(where(gt(a, b), a, b)) == std::vector<double>({3, 2, 3}));
  CHECK(vals(masked_fill(a, eq(a, b), -1)) == std::vector<double>({1, -1, 3}));
}

TEST_CASE("ops: reductions", "[ops]") {
  Tensor x = arange(0, 24, 1, DType::f64).reshape({2, 3, 4});
  CHECK(sum(x).item() == 276);
  CHECK(sum(x, {0, 2}).shape() == Shape({3}));
  CHECK(vals(sum(x, {0, 2})) == std::vector<double>({60, 92, 124}));
  CHECK(sum(x, {1}, true).shape() == Shape({2, 1, 4}));
  CHECK(vals(mean(x, {-1})) == std::vector<double>({1.5, 5.5, 9.5, 13.5, 17.5, 21.5}));
  CHECK(vals(max(x, {1})) == std::vector<double>({8, 9, 10, 11, 20, 21, 22, 23}));
  CHECK(min(x).item() == 0);
  CHECK(vals(argmax(x, 2)) == std::vector<double>({3, 3, 3, 3, 3, 3}));
  CHECK(argmax(x).item() == 23);
  CHECK(argmax(from_vector({1, 5, 5, 2}, {4})).item() == 1);  // first maximum
  CHECK(std::abs(var(from_vector({1, 2, 3, 4}, {4}, DType::f64)).item() - 5.0 / 3.0) < 1e-15);
  CHECK(var(from_vector({1, 2, 3, 4}, {4}, DType::f64), {}, 0).item() == 1.25);
  CHECK(sum(ones({3}, DType::boolean)).dtype() == DType::i64);
  CHECK(sum(ones({3}, DType::i32)).item() == 3);
  CHECK(std::isnan(max(from_vector({1, NAN, 3}, {3})).item()));  // NaN propagates
}

TEST_CASE("ops: softmax is stable and normalized", "[ops]") {
  Tensor x = from_vector({1000, 1001, 1002, -5, 0, 5}, {2, 3});
  Tensor s = softmax(x, 1);
  auto v = vals(s);
  CHECK(std::abs(v[0] + v[1] + v[2] - 1) < 1e-6);
  CHECK(std::abs(v[2] - 0.66524096) < 1e-6);
  auto l = vals(log_softmax(x, 1));
  CHECK(std::abs(l[2] - std::log(0.66524096)) < 1e-5);
  CHECK(std::isfinite(l[3]));
  auto c = vals(softmax(x, 0));
  CHECK(std::abs(c[0] + c[3] - 1) < 1e-6);
}

TEST_CASE("ops: matmul shapes follow torch.matmul", "[ops]") {
  CHECK(matmul(ones({3}), ones({3})).shape() == Shape({}));
  CHECK(matmul(ones({3}), ones({3})).item() == 3);
  CHECK(matmul(ones({2, 3}), ones({3})).shape() == Shape({2}));
  CHECK(matmul(ones({3}), ones({3, 4})).shape() == Shape({4}));
  CHECK(matmul(ones({5, 1, 2, 3}), ones({4, 3, 6})).shape() == Shape({5, 4, 2, 6}));
  Tensor a = from_vector({1, 2, 3, 4}, {2, 2}), b = from_vector({5, 6, 7, 8}, {2, 2});
  CHECK(vals(matmul(a, b)) == std::vector<double>({19, 22, 43, 50}));
  CHECK(vals(matmul(a.t(), b)) == std::vector<double>({26, 30, 38, 44}));
}

TEST_CASE("ops: conv2d and pooling values", "[ops]") {
  Tensor x = arange(0, 16, 1, DType::f64).reshape({1, 1, 4, 4});
  Tensor w = ones({1, 1, 2, 2}, DType::f64);
  CHECK(vals(F::conv2d(x, w)) == std::vector<double>({10, 14, 18, 26, 30, 34, 42, 46, 50}));
  CHECK(F::conv2d(x, w, Tensor(), 1, 1).shape() == Shape({1, 1, 5, 5}));
  CHECK(F::conv2d(ones({2, 4, 7, 7}), ones({6, 2, 3, 3}), ones({6}), 2, 1, 1, 2).shape() == Shape({2, 6, 4, 4}));
  CHECK(vals(F::max_pool2d(x, 2)) == std::vector<double>({5, 7, 13, 15}));
  CHECK(vals(F::avg_pool2d(x, 2)) == std::vector<double>({2.5, 4.5, 10.5, 12.5}));
  CHECK(vals(F::adaptive_avg_pool2d(x, 1)) == std::vector<double>({7.5}));
  // count_include_pad: corner window of a padded 3x3 pool sees 4 real values of 9
  CHECK(F::avg_pool2d(ones({1, 1, 4, 4}), 3, F::Pair(1), 1).to_vector()[0] == Approx(4.0 / 9.0));
}

TEST_CASE("ops: batch_norm updates running stats like torch", "[ops]") {
  Tensor x = from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2, 1, 1}, DType::f64);
  Tensor rm = zeros({2}, DType::f64), rv = ones({2}, DType::f64);
  Tensor y = F::batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.1, 0.0);
  // channel 0 values 1,3,5,7: mean 4, biased var 5, unbiased 20/3
  CHECK(rm.to_vector()[0] == Approx(0.4));
  CHECK(rv.to_vector()[0] == Approx(0.9 + 0.1 * 20.0 / 3.0));
  CHECK(y.to_vector()[0] == Approx(-3 / std::sqrt(5.0)));
  Tensor ye = F::batch_norm(x, rm, rv, Tensor(), Tensor(), false, 0.1, 0.0);
  CHECK(ye.to_vector()[0] == Approx((1 - 0.4) / std::sqrt(rv.to_vector()[0])));
}

TEST_CASE("ops: layer_norm, dropout, embedding", "[ops]") {
  Tensor x = from_vector({1, 2, 3, 4}, {1, 4}, DType::f64);
  auto ln = vals(F::layer_norm(x, {4}, Tensor(), Tensor(), 0));
  CHECK(ln[0] == Approx(-1.5 / std::sqrt(1.25)));
  Tensor d = F::dropout(ones({10000}), 0.25, true);
  auto dv = vals(d);
  int zeros_n = int(std::count(dv.begin(), dv.end(), 0.0));
  CHECK(zeros_n > 2300);
  CHECK(zeros_n < 2700);
  CHECK(*std::max_element(dv.begin(), dv.end()) == Approx(1 / 0.75));
  CHECK(bit_equal(F::dropout(x, 0.5, false), x));  // eval: identity
  Tensor table = arange(0, 6, 1, DType::f32).reshape({3, 2});
  Tensor e = F::embedding(from_vector({2, 0}, {2}, DType::i64), table);
  CHECK(vals(e) == std::vector<double>({4, 5, 0, 1}));
}

TEST_CASE("ops: cross_entropy matches torch", "[ops]") {
  Tensor logits = from_vector({1, 2, 3, 1, 1, 1}, {2, 3}, DType::f64);
  Tensor t = from_vector({2, 0}, {2}, DType::i64);
  double l0 = -std::log(std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)));
  double l1 = std::log(3.0);
  CHECK(F::cross_entropy(logits, t).item() == Approx((l0 + l1) / 2));
  CHECK(F::cross_entropy(logits, t, F::Reduction::sum).item() == Approx(l0 + l1));
  CHECK(F::cross_entropy(logits, from_vector({2, -100}, {2}, DType::i64)).item() == Approx(l0));
  // torch.nn.functional.cross_entropy([[1,2,3]], [2], label_smoothing=0.1) = 0.50760596...
  CHECK(F::cross_entropy(logits.narrow(0, 0, 1), t.narrow(0, 0, 1), F::Reduction::mean, -100, 0.1).item() ==
        Approx(0.5076059644).epsilon(1e-8));
  CHECK(F::mse_loss(from_vector({1, 2}, {2}), from_vector({0, 0}, {2})).item() == 2.5);
}

TEST_CASE("ops: cat, stack, split, gather, scatter_add, index_select", "[ops]") {
  Tensor a = from_vector({1, 2}, {1, 2}), b = from_vector({3, 4, 5, 6}, {2, 2});
  CHECK(vals(cat({a, b}, 0)) == std::vector<double>({1, 2, 3, 4, 5, 6}));
  CHECK(stack({a, a}, 0).shape() == Shape({2, 1, 2}));
  auto parts = split(arange(0, 5, 1, DType::f32), 2);
  REQUIRE(parts.size() == 3);
  CHECK(vals(parts[2]) == std::vector<double>({4}));
  Tensor src = from_vector({10, 20, 30, 40}, {2, 2});
  Tensor idx = from_vector({1, 0, 0, 0}, {2, 2}, DType::i64);
  CHECK(vals(gather(src, 1, idx)) == std::vector<double>({20, 10, 30, 30}));
  CHECK(vals(scatter_add(zeros({2, 2}), 1, idx, src)) == std::vector<double>({20, 10, 70, 0}));
  CHECK(vals(index_select(src, 0, from_vector({1, 1, 0}, {3}, DType::i64))) ==
        std::vector<double>({30, 40, 30, 40, 10, 20}));
}

// Autograd semantics: accumulation, no_grad, detach, retain_graph, explicit
// gradients, hooks, retain_grad, and that the graph is freed after backward.
#include "tests/helpers.h"

using namespace bt;

TEST_CASE("autograd: gradients accumulate into .grad across backward calls", "[autograd]") {
  Tensor x = from_vector({1, 2, 3}, {3}, DType::f64).requires_grad_();
  sum(x * x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>({2, 4, 6}));
  sum(x * 3.0).backward();
  CHECK(x.grad().to_vector() == std::vector<double>({5, 7, 9}));
  x.set_grad(Tensor());
  CHECK_FALSE(x.grad().defined());
}

// A leaf may take the incoming gradient's buffer as its .grad instead of a
// copy, but only a buffer nothing else sees: never one handed to two leaves,
// nor one a hook kept. Accumulating into one .grad must leave the others as
// they were.
TEST_CASE("autograd: a leaf's .grad shares its buffer with no other tensor", "[autograd]") {
  Tensor a = from_vector({1, 2}, {2}, DType::f64).requires_grad_();
  Tensor b = from_vector({3, 4}, {2}, DType::f64).requires_grad_();
  Tensor c = from_vector({5, 6}, {2}, DType::f64);
  Tensor kept;
  b.register_hook([&](const Tensor& g) -> std::optional<Tensor> {
    kept = g;  // a hook holding on to the gradient it saw
    return std::nullopt;
  });
  sum((a + b) * c).backward();  // the add hands one gradient (c) to both leaves
  CHECK(a.grad().to_vector() == std::vector<double>({5, 6}));
  CHECK(b.grad().to_vector() == std::vector<double>({5, 6}));
  CHECK(a.grad().storage() != b.grad().storage());
  CHECK(b.grad().storage() != kept.storage());
  sum(a * c).backward();  // accumulates into a.grad only
  CHECK(a.grad().to_vector() == std::vector<double>({10, 12}));
  CHECK(b.grad().to_vector() == std::vector<double>({5, 6}));
  CHECK(kept.to_vector() == std::vector<double>({5, 6}));
  // A weight's gradient from a matmul reaches one leaf only: taken as is,
  // and still summed with the next backward's.
  Tensor x = from_vector({1, 2, 3, 4}, {2, 2}, DType::f64);
  Tensor w = from_vector({1, 0, 0, 1}, {2, 2}, DType::f64).requires_grad_();
  sum(matmul(x, w)).backward();  // dW = x^T @ ones
  CHECK(w.grad().to_vector() == std::vector<double>({4, 4, 6, 6}));
  sum(matmul(x, w)).backward();
  CHECK(w.grad().to_vector() == std::vector<double>({8, 8, 12, 12}));
}

TEST_CASE("autograd: a tensor used twice gets the summed gradient", "[autograd]") {
  Tensor x = from_vector({2}, {1}, DType::f64).requires_grad_();
  Tensor y = x * x + exp(x) * x;  // dy/dx = 2x + e^x (1 + x)
  y.backward(ones({1}, DType::f64));
  CHECK(x.grad().item() == Approx(4 + std::exp(2.0) * 3));
}

TEST_CASE("autograd: no_grad and detach build no graph", "[autograd]") {
  Tensor x = ones({2}).requires_grad_();
  {
    NoGradGuard ng;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(grad_enabled());
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.storage() == x.storage());
  Tensor y = x * 2.0;
  CHECK(y.requires_grad());
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(y.grad_fn()->name() == "MulBackward");
  CHECK_FALSE((ones({2}) * 2.0).requires_grad());
}

TEST_CASE("autograd: retain_graph allows a second backward, without it, a clear error", "[autograd]") {
  Tensor x = from_vector({1, 2}, {2}, DType::f64).requires_grad_();
  Tensor loss = sum(exp(x));
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward();
  CHECK(x.grad().to_vector()[0] == Approx(2 * std::exp(1.0)));
  CHECK_THROWS_WITH(loss.backward(), Catch::Contains("backward through the graph a second time"));
}

TEST_CASE("autograd: backward of a non-scalar needs an explicit gradient", "[autograd]") {
  Tensor x = from_vector({1, 2, 3}, {3}, DType::f64).requires_grad_();
  Tensor y = x * x;
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("implicitly created only for a one-element"));
  y.backward(from_vector({1, 0, 2}, {3}, DType::f64));
  CHECK(x.grad().to_vector() == std::vector<double>({2, 0, 12}));
}

TEST_CASE("autograd: hooks see and may replace gradients", "[autograd]") {
  Tensor w = from_vector({1, 2, 3}, {3}, DType::f64).requires_grad_();
  Tensor mask = from_vector({1, 0, 1}, {3}, DType::f64);
  std::vector<double> seen;
  w.register_hook([&](const Tensor& g) -> std::optional<Tensor> {
    seen = g.to_vector();
    return g * mask;  // the pruning use case: masked gradients
  });
  Tensor h = w * 2.0;
  h.register_hook([](const Tensor& g) -> std::optional<Tensor> { return g * 10.0; });
  sum(h).backward();
  CHECK(seen == std::vector<double>({20, 20, 20}));
  CHECK(w.grad().to_vector() == std::vector<double>({20, 0, 20}));
}

TEST_CASE("autograd: a post-accumulate hook runs once per backward, after the sum into .grad", "[autograd]") {
  // w is used twice (as a tied embedding is): its gradient is final only after
  // both uses are summed, and that is when the hook must see it.
  Tensor w = from_vector({1, 2}, {2}, DType::f64).requires_grad_();
  std::vector<std::vector<double>> seen;
  int64_t h = w.register_post_accumulate_grad_hook([&](const Tensor& leaf) {
    CHECK(leaf.is_same(w));
    seen.push_back(leaf.grad().to_vector());
  });
  sum(w * 3.0 + w * w).backward();  // d/dw = 3 + 2w
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == std::vector<double>({5, 7}));
  sum(w * 1.0).backward();  // accumulates: the hook sees the running .grad
  REQUIRE(seen.size() == 2);
  CHECK(seen[1] == std::vector<double>({6, 8}));
  w.remove_post_accumulate_grad_hook(h);
  sum(w * 1.0).backward();
  CHECK(seen.size() == 2);
  Tensor nonleaf = w * 2.0;
  CHECK_THROWS_WITH(nonleaf.register_post_accumulate_grad_hook([](const Tensor&) {}), Catch::Contains("leaf"));
}

TEST_CASE("autograd: retain_grad keeps a non-leaf gradient", "[autograd]") {
  Tensor x = from_vector({1, 2}, {2}, DType::f64).requires_grad_();
  Tensor y = x * 3.0;
  y.retain_grad();
  sum(y * y).backward();
  CHECK(y.grad().to_vector() == std::vector<double>({6, 12}));
  CHECK(x.grad().to_vector() == std::vector<double>({18, 36}));
}

TEST_CASE("autograd: the graph and its saved tensors are freed after backward", "[autograd]") {
  Tensor x = randn({64}).requires_grad_();
  std::weak_ptr<TensorImpl> saved;
  std::weak_ptr<Node> node;
  {
    Tensor h = exp(x);  // exp saves its output
    saved = h.impl_ptr();
    Tensor loss = sum(h * h);  // mul saves h
    node = h.grad_fn();
    h = Tensor();
    CHECK_FALSE(saved.expired());  // kept alive by the graph
    loss.backward();
    CHECK(saved.expired());  // released by backward, even while loss is alive
    CHECK_FALSE(node.expired());
  }
  CHECK(node.expired());  // nodes die with the last output referencing them
}

TEST_CASE("autograd: gradients flow only to inputs that need them", "[autograd]") {
  Tensor a = ones({2}).requires_grad_(), b = ones({2});
  sum(a * b).backward();
  CHECK(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  // integer path (argmax) does not break the graph walk
  Tensor x = from_vector({1, 3, 2}, {3}).requires_grad_();
  Tensor loss = sum(x) + argmax(x).to(DType::f32);
  loss.backward();
  CHECK(x.grad().to_vector() == std::vector<double>({1, 1, 1}));
}

TEST_CASE("autograd: in-place update of a tensor that requires grad is refused", "[autograd]") {
  Tensor w = ones({2}).requires_grad_();
  CHECK_THROWS_WITH(w.add_(ones({2})), Catch::Contains("in-place update"));
  NoGradGuard ng;
  w.add_(ones({2}), 0.5);
  CHECK(w.to_vector() == std::vector<double>({1.5, 1.5}));
}

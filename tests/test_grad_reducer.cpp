// The data-parallel gradient reducer against a scripted process group of two
// ranks (the real MPI runs are in tests/distributed/): buckets in reverse
// parameter order, started during the backward pass and in bucket order,
// results read only after their collective completes, and the averages equal
// to a plain backward's gradients.
#include <catch2/catch.hpp>

#include "brisk.h"
#include "train/grad_reducer.h"

using namespace brisk;
namespace dist = brisk::train::dist;

namespace {

// Rank 0 of two, where the other rank holds the same gradients: a float sum
// doubles the values, but only when its request completes (the second test()
// or a wait()), so a result read too early is caught. The double sums (which
// parameters have gradients) add `peer_has`.
class ScriptedPair final : public dist::ProcessGroup {
 public:
  struct Start {
    int64_t n;
    bool in_backward;
  };
  std::vector<Start> starts;
  std::vector<double> peer_has;
  bool in_backward = false;

  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_size() const override { return 2; }
  int local_rank() const override { return 0; }
  std::string backend() const override { return "scripted"; }
  void all_reduce_sum(float* x, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) x[i] *= 2;
  }
  void all_reduce_sum(double* x, int64_t n) override {
    REQUIRE(int64_t(peer_has.size()) == n);
    for (int64_t i = 0; i < n; ++i) x[i] += peer_has[size_t(i)];
  }
  std::unique_ptr<dist::Request> all_reduce_sum_async(float* x, int64_t n) override {
    starts.push_back({n, in_backward});
    return std::make_unique<Req>(this, x, n);
  }
  int64_t all_reduce_min(int64_t v) override { return v; }
  int64_t all_reduce_max(int64_t v) override { return v; }
  void broadcast(void*, int64_t, int) override {}
  void all_gather(const void*, int64_t, void*) override { FAIL("not used"); }
  std::vector<std::string> all_gather_bytes(const std::string& s) override { return {s, s}; }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }

 private:
  struct Req final : dist::Request {
    ScriptedPair* g;
    float* x;
    int64_t n;
    int tests = 0;
    bool done = false;
    Req(ScriptedPair* g_, float* x_, int64_t n_) : g(g_), x(x_), n(n_) {}
    bool test() override {
      if (!done && ++tests >= 2) complete();
      return done;
    }
    void wait() override {
      if (!done) complete();
    }
    void complete() {
      g->all_reduce_sum(x, n);
      done = true;
    }
  };
};

// y = w2 relu(w1 x + b1) + b2, loss = sum(y * y): parameters in layer order.
struct TwoLayers {
  Tensor w1, b1, w2, b2;
  explicit TwoLayers(uint64_t seed) {
    Generator g(seed);
    w1 = randn({4, 3}, {}, &g).requires_grad_();
    b1 = randn({4}, {}, &g).requires_grad_();
    w2 = randn({2, 4}, {}, &g).requires_grad_();
    b2 = randn({2}, {}, &g).requires_grad_();
  }
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
  void backward() const {
    Generator g(9);
    Tensor x = randn({5, 3}, {}, &g);
    Tensor h = relu(matmul(x, w1.t()) + b1);
    Tensor y = matmul(h, w2.t()) + b2;
    sum(y * y).backward();
  }
};

std::vector<std::vector<double>> grads_of(const std::vector<Tensor>& ps) {
  std::vector<std::vector<double>> out;
  for (auto& p : ps) out.push_back(p.grad().defined() ? p.grad().to_vector() : std::vector<double>{});
  return out;
}

}  // namespace

TEST_CASE("grad reducer: buckets start during backward, in order, and average to the plain gradients",
          "[distributed]") {
  TwoLayers ref(3), m(3);
  ref.backward();
  ScriptedPair g;
  g.peer_has.assign(4, 1.0);
  // 40 bytes = 10 floats: reverse order gives [b2, w2] (2 + 8), [b1] (4), [w1] (12, its own).
  dist::GradReducer r(g, m.params(), 40);
  REQUIRE(r.bucket_count() == 3);
  r.arm();
  g.in_backward = true;
  m.backward();
  g.in_backward = false;
  REQUIRE(g.starts.size() == 3);
  CHECK(g.starts[0].n == 10);
  CHECK(g.starts[1].n == 4);
  CHECK(g.starts[2].n == 12);
  for (auto& s : g.starts) CHECK(s.in_backward);
  CHECK(r.started_early() == 3);
  r.finish();
  CHECK(r.values() == 26);
  // (g + g) / 2 == g exactly: the averages are the plain backward's gradients.
  CHECK(grads_of(m.params()) == grads_of(ref.params()));

  // The next step starts again from the armed state.
  m.w1.set_grad(Tensor());
  m.b1.set_grad(Tensor());
  m.w2.set_grad(Tensor());
  m.b2.set_grad(Tensor());
  g.starts.clear();
  r.arm();
  m.backward();
  r.finish();
  CHECK(g.starts.size() == 3);
  CHECK(grads_of(m.params()) == grads_of(ref.params()));
}

TEST_CASE("grad reducer: gradients missing on a rank count as zeros, missing everywhere stay undefined",
          "[distributed]") {
  TwoLayers m(4);
  Tensor unused = ones({3}).requires_grad_();  // no gradient reaches it on this rank
  std::vector<Tensor> ps = m.params();
  ps.insert(ps.begin(), unused);  // first: it shares the last bucket with w1
  ScriptedPair g;
  dist::GradReducer r(g, ps, 1 << 20);  // one bucket: it can only start once every gradient is in
  REQUIRE(r.bucket_count() == 1);

  SECTION("the other rank has it") {
    g.peer_has.assign(5, 1.0);
    r.arm();
    m.backward();
    CHECK(r.started_early() == 0);  // `unused` never arrived: finish() starts the bucket
    r.finish();
    REQUIRE(unused.grad().defined());
    CHECK(unused.grad().to_vector() == std::vector<double>({0, 0, 0}));
  }
  SECTION("no rank has it") {
    g.peer_has = {0, 1, 1, 1, 1};
    r.arm();
    m.backward();
    r.finish();
    CHECK_FALSE(unused.grad().defined());
    CHECK(m.w1.grad().defined());
  }
}

TEST_CASE("grad reducer: a backward outside arm()..finish() starts nothing, new parameters need a new reducer",
          "[distributed]") {
  TwoLayers m(5);
  ScriptedPair g;
  g.peer_has.assign(4, 1.0);
  {
    dist::GradReducer r(g, m.params(), 40);
    m.backward();  // a method's own probe between steps
    CHECK(g.starts.empty());
    CHECK(r.serves(m.params()));
    std::vector<Tensor> grown = m.params();
    grown[2] = zeros({3, 4}).requires_grad_();  // surgery replaced w2
    CHECK_FALSE(r.serves(grown));
    m.b1.requires_grad_(false);  // frozen
    CHECK_FALSE(r.serves(m.params()));
    m.b1.requires_grad_(true);
    CHECK_THROWS_WITH(r.finish(), Catch::Contains("without arm"));
  }
  // The reducer removed its hooks when it went: a later backward starts nothing.
  m.backward();
  CHECK(g.starts.empty());
  CHECK_THROWS_WITH(dist::GradReducer(g, m.params(), 0), Catch::Contains("at least one"));
}

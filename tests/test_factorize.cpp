// Low-rank factorization (surgery/factorize.h, efficiency/factorization):
// the truncated SVD against a matrix with known singular values (the
// Frobenius error is the discarded ones, Eckart-Young) and the optimality
// conditions of a random one; a full-rank split computes the same function;
// the optimizer loses the old layer and its state and gains the factors with
// none; forward FLOPs of a factorized layer by hand; the method through the
// trainer, its refusals, and bit-exact resume across the surgery.
#include <cmath>

#include "core/flops.h"
#include "surgery/factorize.h"
#include "tests/train_helpers.h"

using namespace bt;
using brisk::train::Trainer;

TEST_CASE("factorize: the truncated SVD keeps the largest singular values (Eckart-Young)", "[factorize][surgery]") {
  // W [5, 7] with singular values 9, 5, 3, 2, 1: a scaled permutation-like
  // matrix (rows and columns permuted, signs flipped), so the values are known.
  const double s[5] = {3, 9, 1, 5, 2};
  const int64_t col[5] = {4, 0, 6, 2, 5};
  Tensor w = zeros({5, 7}, DType::f64);
  for (int64_t i = 0; i < 5; ++i) w.select(0, i).select(0, col[i]).fill_(i % 2 ? -s[i] : s[i]);
  for (int64_t r : {1, 2, 3, 5}) {
    INFO("rank " << r);
    auto f = brisk::nn::low_rank_split(w, r);
    REQUIRE(f.first.shape() == Shape({r, 7}));
    REQUIRE(f.second.shape() == Shape({5, r}));
    Tensor err = w - matmul(f.second, f.first);
    double discarded[6] = {81 + 25 + 9 + 4 + 1, 25 + 9 + 4 + 1, 9 + 4 + 1, 4 + 1, 1, 0};
    CHECK(sum(err * err).item() == Approx(discarded[r]).margin(1e-9));
  }
  // A random matrix: the residual of the best rank-r approximation is
  // orthogonal to both factors' spaces, and full rank reproduces W.
  for (auto [m, n] : {std::pair<int64_t, int64_t>{12, 30}, {30, 12}}) {
    Tensor a = uniform64({m, n}, -1, 1, 7);
    auto f = brisk::nn::low_rank_split(a, 4);
    Tensor res = a - matmul(f.second, f.first);
    CHECK(max(abs(matmul(res, f.first.t()))).item() < 1e-9);
    CHECK(max(abs(matmul(f.second.t(), res))).item() < 1e-9);
    auto full = brisk::nn::low_rank_split(a, std::min(m, n));
    CHECK(max(abs(a - matmul(full.second, full.first))).item() < 1e-9);
  }
  CHECK_THROWS_WITH(brisk::nn::low_rank_split(w, 6), Catch::Contains("rank 6 must be in [1, 5]"));
}

TEST_CASE("factorize: a full-rank split keeps the function, and the optimizer swaps old state for fresh factors", "[factorize][surgery]") {
  using namespace brisk::nn;
  for (bool conv : {false, true}) {
    INFO((conv ? "conv" : "linear"));
    std::shared_ptr<Sequential> seq;
    Tensor x;
    if (conv) {
      seq = std::make_shared<Sequential>(std::vector<ModulePtr>{std::make_shared<Conv2d>(3, 8, 3, 1, 1),
                                                                std::make_shared<ReLU>(),
                                                                std::make_shared<Conv2d>(8, 6, 3, 1, 1)});
      x = uniform64({2, 3, 5, 5}, -1, 1, 3).to(DType::f32);
    } else {
      seq = std::make_shared<Sequential>(std::vector<ModulePtr>{std::make_shared<Linear>(20, 16),
                                                                std::make_shared<ReLU>(),
                                                                std::make_shared<Linear>(16, 8)});
      x = uniform64({4, 20}, -1, 1, 3).to(DType::f32);
    }
    brisk::optim::SGDOptions o;
    o.momentum = 0.9;
    brisk::optim::SGD opt(seq->named_parameters(), o);
    for (auto& [n, p] : seq->named_parameters()) p.set_grad(ones_like(p));
    opt.step();  // every parameter now has momentum state
    Tensor before;
    {
      NoGradGuard ng;
      before = seq->forward(x);
    }
    int64_t full = conv ? 8 : 16;  // min(m, n) of layer 0: conv 8 x 27, linear 16 x 20
    factorize(*seq, 0, full, &opt);
    REQUIRE(seq->size() == 4);
    {
      NoGradGuard ng;
      CHECK(max_rel_err(seq->forward(x), before) < 1e-4);
    }
    // Optimizer: the old layer 0 is gone with its state, the factors are 0
    // and 1 (no state), and the last layer (was 2, now 3) kept its state.
    std::set<std::string> names;
    for (auto& [n, p] : opt.params()) names.insert(n);
    std::set<std::string> want{"0.weight", "1.weight", "1.bias", "3.weight", "3.bias"};
    CHECK(names == want);
    CHECK(!opt.state().count("0.weight"));
    CHECK(!opt.state().count("1.weight"));
    CHECK(opt.state().count("3.weight"));
    CHECK(bit_equal(opt.param("3.weight"), seq->parameter("3.weight")));
  }
  // FLOPs of a factorized Linear(784 -> 128) at rank 32, batch 4: 2 * 4 * 32 * (784 + 128).
  auto seq = std::make_shared<Sequential>(std::vector<ModulePtr>{std::make_shared<Linear>(784, 128)});
  factorize(*seq, 0, 32, nullptr);
  Tensor x = zeros({4, 784});
  int64_t f0 = brisk::flops_counted();
  {
    NoGradGuard ng;
    seq->forward(x);
  }
  CHECK(brisk::flops_counted() - f0 == 2 * 4 * 32 * (784 + 128));
}

TEST_CASE("factorize: the method factorizes the hidden layers mid-run and resumes bit-exactly", "[factorize][train]") {
  TrainConfig c = small_config("factorize");
  c.model = "cnn";
  c.methods = {"factorize:rank=0.25,at=0.5"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  std::vector<int64_t> params;
  p->after_step = [&](Trainer& tr) { params.push_back(tr.model().num_parameters()); };
  t.fit();
  // cnn: conv1 1->32 (k3) | conv2 32->64 (k3): W [64, 288], r = 16 | fc1 3136->128: W [128, 3136], r = 32 | fc2.
  int64_t dense = 32 * 9 + 32 + 64 * 288 + 64 + 128 * 3136 + 128 + 10 * 128 + 10;
  int64_t fact = 32 * 9 + 32 + (16 * 288 + 64 * 16 + 64) + (32 * 3136 + 128 * 32 + 128) + 10 * 128 + 10;
  CHECK(params.front() == dense);
  CHECK(params.at(7) == dense);  // before step 8 = half of 16
  CHECK(params.at(8) == fact);
  CHECK(params.back() == fact);
  CHECK(read_jsonl(c.out + "/metrics.jsonl").back()["factorized_layers"] == 2);
  TrainConfig r = small_config("factorize_resume");
  r.model = "cnn";
  r.methods = c.methods;
  check_resume_bit_exact(r, {5, 9});
  TrainConfig bad = small_config("factorize_bad");
  bad.methods = {"factorize", "prune:target=0.5"};
  CHECK_THROWS_WITH(Trainer(bad, brisk::efficiency::make_methods), Catch::Contains("'factorize' and 'prune' cannot"));
  bad.methods = {"factorize", "ema"};
  CHECK_THROWS_WITH(Trainer(bad, brisk::efficiency::make_methods), Catch::Contains("'ema' cannot be combined"));
  // A model where the method would do nothing is refused, not run dense.
  TrainConfig res = small_config("factorize_resnet");
  res.model = "resnet";
  res.methods = {"factorize"};
  CHECK_THROWS_WITH(Trainer(res, brisk::efficiency::make_methods).fit(), Catch::Contains("--method factorize: model resnet"));
  refused_spec("factorize:rank=1", "rank must be in (0, 1)");
  refused_spec("factorize:at=1", "at must be in [0, 1)");
}

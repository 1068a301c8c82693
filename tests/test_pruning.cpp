// Pruning: exact counts with ties, masks only shrink, zeros survive SGD and
// AdamW (state included), 2:4 groups, the gradual schedule, and the method end
// to end with bit-exact resume.
#include <set>

#include "efficiency/method.h"
#include "efficiency/pruning/rigl/dst.h"
#include "efficiency/pruning/magnitude.h"
#include "models/models.h"
#include "nn/layers.h"
#include "surgery/surgery.h"
#include "core/mask.h"
#include "optim/optimizer.h"
#include "tests/train_helpers.h"

using namespace bt;
using namespace brisk::pruning;
using brisk::train::Trainer;

static std::vector<double> mask_of(const Tensor& w, int64_t k, const Tensor& prev = Tensor()) {
  return magnitude_mask(w, k, prev).to_vector();
}

TEST_CASE("pruning: magnitude masks prune exactly k, lower index first on ties", "[pruning]") {
  Tensor w = from_vector({1, -1, 1, 1, 2, 0.5}, {2, 3});
  CHECK(mask_of(w, 0) == std::vector<double>({1, 1, 1, 1, 1, 1}));
  CHECK(mask_of(w, 1) == std::vector<double>({1, 1, 1, 1, 1, 0}));
  CHECK(mask_of(w, 2) == std::vector<double>({0, 1, 1, 1, 1, 0}));  // ties: index 0 before 1, 2, 3
  CHECK(mask_of(w, 3) == std::vector<double>({0, 0, 1, 1, 1, 0}));
  CHECK(mask_of(w, 6) == std::vector<double>(6, 0.0));
  Tensor same = full({1000}, 0.25);
  for (int64_t k : {0, 1, 499, 500, 999, 1000}) {
    auto m = mask_of(same, k);
    CHECK(std::count(m.begin(), m.end(), 0.0) == k);  // never one too many
    if (k > 0 && k < 1000) CHECK(m[size_t(k - 1)] == 0.0);
    if (k < 1000) CHECK(m[size_t(k)] == 1.0);
  }
  CHECK(prune_count(0.9, 1000) == 900);
  CHECK(prune_count(0.5, 5) == 3);  // llround, documented
  CHECK_THROWS_WITH(magnitude_mask(w, 7), Catch::Contains("cannot prune 7 of 6"));
}

TEST_CASE("pruning: masks only shrink", "[pruning]") {
  Tensor w = from_vector({1, 2, 3, 4, 5, 6}, {6});
  Tensor prev = from_vector({1, 1, 1, 1, 0, 1}, {6});  // the 5 is already pruned
  CHECK(mask_of(w, 2, prev) == std::vector<double>({0, 1, 1, 1, 0, 1}));
  CHECK(mask_of(w, 0, prev) == std::vector<double>({1, 1, 1, 1, 0, 1}));  // k below the pruned count
}

TEST_CASE("pruning: global ranking, and no layer is emptied unless asked", "[pruning]") {
  Tensor big = from_vector({5, 6, 7, 8}, {4}), tiny = from_vector({0.1, 0.2}, {2});
  auto m = global_magnitude_masks({big, tiny}, 0.5, {});
  // 3 of 6 go; each tensor's largest (8, 0.2) is exempt, so 0.1, 5, 6 are pruned
  CHECK(m[0].to_vector() == std::vector<double>({0, 0, 1, 1}));
  CHECK(m[1].to_vector() == std::vector<double>({0, 1}));  // tiny keeps its largest
  auto e = global_magnitude_masks({big, tiny}, 0.5, {}, /*allow_empty=*/true);
  CHECK(e[0].to_vector() == std::vector<double>({0, 1, 1, 1}));
  CHECK(e[1].to_vector() == std::vector<double>({0, 0}));
  int64_t zeros = 0;
  for (auto& t : global_magnitude_masks({randn({30}), randn({20})}, 0.9, {}))
    zeros += brisk::count_zeros(t);
  CHECK(zeros == 45);
}

TEST_CASE("pruning: N:M keeps exactly N per group of M input channels (ASP's grouping)", "[pruning]") {
  Tensor w = randn({6, 8, 3, 3});  // [O, C, kh, kw]: groups run along C at each (o, kh, kw)
  auto m = nm_mask(w, 2, 4).to_vector();
  auto wv = w.to_vector();
  auto at = [](int64_t o, int64_t c, int64_t s) { return size_t((o * 8 + c) * 9 + s); };
  for (int64_t o = 0; o < 6; ++o)
    for (int64_t c0 = 0; c0 < 8; c0 += 4)
      for (int64_t s = 0; s < 9; ++s) {
        double kept = 0;
        for (int64_t j = 0; j < 4; ++j) kept += m[at(o, c0 + j, s)];
        REQUIRE(kept == 2.0);
        for (int64_t i = 0; i < 4; ++i)
          for (int64_t j = 0; j < 4; ++j)  // the best pattern of the group
            if (m[at(o, c0 + i, s)] == 1.0 && m[at(o, c0 + j, s)] == 0.0)
              REQUIRE(std::abs(wv[at(o, c0 + i, s)]) >= std::abs(wv[at(o, c0 + j, s)]));
      }
  // Grouping along the flattened C·kh·kw would not give 2 per input-channel
  // group: a weight whose big entries lie along kw shows the difference.
  std::vector<double> v2(16, 0.0);
  v2[0] = 5.0, v2[1] = 4.0, v2[2] = 3.0;  // (c=0, kw=0..2): one group per kw column
  auto m2 = nm_mask(from_vector(v2, {1, 4, 1, 4}), 2, 4).to_vector();
  CHECK(m2[0] == 1.0);
  CHECK(m2[1] == 1.0);  // flattened grouping would have kept only 2 of c=0's 4 entries
  CHECK(m2[2] == 1.0);
  for (int64_t s = 0; s < 4; ++s) CHECK(m2[size_t(s)] + m2[size_t(4 + s)] + m2[size_t(8 + s)] + m2[size_t(12 + s)] == 2.0);
  std::vector<double> tie_keep{1.0, 1.0, 0.0, 0.0};
  CHECK(nm_mask(ones({1, 4}), 2, 4).to_vector() == tie_keep);  // ties: lower index stays
  CHECK_THROWS_WITH(nm_mask(ones({2, 6}), 2, 4), Catch::Contains("not divisible by M=4"));
}

TEST_CASE("pruning: the gradual schedule's endpoints and update times", "[pruning]") {
  // s_f = 0.9, s_i = 0, t0 = 100, n = 10 updates every 50 steps
  CHECK(gradual_sparsity(0, 0, 0.9, 100, 10, 50) == 0.0);
  CHECK(gradual_sparsity(100, 0, 0.9, 100, 10, 50) == 0.0);
  CHECK(gradual_sparsity(149, 0, 0.9, 100, 10, 50) == 0.0);  // held until the next update
  CHECK(gradual_sparsity(150, 0, 0.9, 100, 10, 50) == Approx(0.9 + (0 - 0.9) * std::pow(0.9, 3)));
  CHECK(gradual_sparsity(600, 0, 0.9, 100, 10, 50) == 0.9);
  CHECK(gradual_sparsity(10000, 0, 0.9, 100, 10, 50) == 0.9);
  double prev = 0;
  for (int64_t t = 0; t <= 700; t += 10) {
    double s = gradual_sparsity(t, 0, 0.9, 100, 10, 50);
    CHECK(s >= prev);
    prev = s;
  }
}

static void check_stays_zero(const std::string& opt_name) {
  INFO(opt_name);
  manual_seed(3);
  brisk::nn::Linear l1(20, 16), l2(16, 4);
  brisk::set_mask(l1.weight, magnitude_mask(l1.weight, 200));
  brisk::set_mask(l2.weight, nm_mask(l2.weight, 2, 4));
  brisk::optim::NamedParams ps{{"w1", l1.weight}, {"b1", l1.bias}, {"w2", l2.weight}, {"b2", l2.bias}};
  std::unique_ptr<brisk::optim::Optimizer> opt;
  if (opt_name == "sgd")
    opt = std::make_unique<brisk::optim::SGD>(ps, brisk::optim::SGDOptions{0.05, 0.9, 0, 5e-3, true});
  else
    opt = std::make_unique<brisk::optim::AdamW>(ps, brisk::optim::AdamWOptions{0.01, 0.9, 0.999, 1e-8, 0.1});
  Tensor m1 = brisk::get_mask(l1.weight), m2 = brisk::get_mask(l2.weight);
  for (int step = 0; step < 25; ++step) {
    Tensor x = randn({8, 20});
    Tensor loss = mean(pow(l2.forward(relu(l1.forward(x))), 2.0));
    opt->zero_grad();
    loss.backward();
    CHECK(brisk::count_zeros(l1.weight.grad() * (1.0 - m1)) == l1.weight.numel());  // grads masked
    opt->step();
  }
  for (auto [w, m, key] : {std::tuple{l1.weight, m1, "w1"}, {l2.weight, m2, "w2"}}) {
    Tensor pruned = 1.0 - m;
    CHECK(max(abs(w * pruned)).item() == 0.0);          // exactly zero, not small
    CHECK(max(abs(w * m)).item() > 0.0);
    for (auto& [k, st] : opt->state().at(key))
      if (st.shape() == w.shape()) {
        INFO("state " << k);
        CHECK(max(abs(st * pruned)).item() == 0.0);
      }
  }
}

TEST_CASE("pruning: masked weights and optimizer state stay exactly zero", "[pruning]") {
  check_stays_zero("sgd");
  check_stays_zero("adamw");
}

TEST_CASE("pruning: set_mask validates its input", "[pruning]") {
  brisk::nn::Linear l(3, 2);
  CHECK_THROWS_WITH(brisk::set_mask(l.weight, ones({3, 2})), Catch::Contains("[3, 2]") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_WITH(brisk::set_mask(l.weight, full({2, 3}, 0.5)), Catch::Contains("only hold 0 and 1"));
  Tensor leaf = ones({2}).requires_grad_(true);
  CHECK_THROWS_WITH(brisk::set_mask(leaf * 2.0, ones({2})), Catch::Contains("parameters"));  // not a leaf
  CHECK_THROWS_WITH(brisk::set_mask(ones({2}, DType::i64), ones({2})), Catch::Contains("parameters"));
}

TEST_CASE("pruning: the prune method reaches its target and resumes bit-exactly", "[pruning][train]") {
  TrainConfig c = small_config("brisk_prune");
  c.epochs = 2;
  c.methods = {"prune:target=0.9,schedule=gradual,frequency=3,end=1"};
  auto r = Trainer(c, brisk::efficiency::make_methods).fit();
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  REQUIRE(m.size() == 2);
  CHECK(m.back()["sparsity"].get<double>() == Approx(0.9).margin(1e-3));
  CHECK(m.front()["sparsity"].get<double>() < m.back()["sparsity"].get<double>());
  CHECK(r.acc > 0.5);

  check_resume_bit_exact(c, {7}, /*run_full=*/false);
}

TEST_CASE("pruning: method spellings", "[pruning]") {
  using brisk::efficiency::make_method;
  CHECK(make_method("prune:target=0.9,schedule=gradual")->name() == "prune");
  CHECK(make_method("prune:structure=2:4")->name() == "prune");
  CHECK(make_method("prune:target=0.8,scope=global")->name() == "prune");
  CHECK(make_method("prune:target=0.9,schedule=rigl")->name() == "prune");
  CHECK(make_method("prune:target=0.9,schedule=set,distribution=uniform")->name() == "prune");
  CHECK(make_method("prune:target=0.9,schedule=imp")->name() == "prune");
  CHECK_THROWS_WITH(make_method("prune:structure=2:4,schedule=gradual"), Catch::Contains("schedule=oneshot"));
  CHECK(make_method("prune:target=0.5,structure=channel")->name() == "prune");
  CHECK_THROWS_WITH(make_method("prune:structure=channel,schedule=gradual"), Catch::Contains("schedule=oneshot"));
  CHECK_THROWS_WITH(make_method("prune:structure=4:2"), Catch::Contains("1 <= N < M"));
  CHECK_THROWS_WITH(make_method("prune:target=1.5"), Catch::Contains("target must be in [0, 1)"));
  CHECK_THROWS_WITH(make_method("prune:scope=row"), Catch::Contains("unknown scope 'row'"));

  TrainConfig c = small_config("brisk_prune_nm");
  c.epochs = 1;
  c.methods = {"prune:structure=2:4"};
  Trainer t(c, brisk::efficiency::make_methods);
  t.fit();
  for (auto& [n, p] : t.model().named_parameters()) {
    if (p.dim() < 2) continue;
    auto v = p.to_vector();
    for (size_t g = 0; g < v.size(); g += 4) REQUIRE((v[g] != 0) + (v[g + 1] != 0) + (v[g + 2] != 0) + (v[g + 3] != 0) <= 2);
  }
  // the cnn's first conv (C = 1 input channel) has no 2:4 pattern: it stays dense, the rest are 2:4
  TrainConfig cc = small_config("brisk_prune_nm_cnn");
  cc.model = "cnn";
  cc.epochs = 1;
  cc.max_steps = 2;
  cc.methods = {"prune:structure=2:4,start=0"};
  Trainer tc(cc, brisk::efficiency::make_methods);
  tc.fit();
  auto& seq = dynamic_cast<brisk::nn::Sequential&>(tc.model());
  CHECK_FALSE(brisk::has_mask(seq[0]->parameter("weight")));
  Tensor w3 = seq[3]->parameter("weight");
  CHECK(sum(ne(w3, zeros_like(w3)).to(DType::f64)).item() == w3.numel() / 2);
  auto m = read_jsonl(cc.out + "/metrics.jsonl");
  // prunable weights (rank >= 2): 288 + 18432 + 401408 + 1280 = 421408, all but the first conv halved
  CHECK(m.back()["sparsity"].get<double>() == Approx(0.5 * (421408.0 - 288) / 421408.0).epsilon(1e-4));
}

TEST_CASE("pruning: ERK densities hit the target and favour small layers", "[pruning]") {
  std::vector<Shape> shapes{{32, 1, 3, 3}, {64, 32, 3, 3}, {128, 3136}, {10, 128}};
  auto d = erk_densities(shapes, 0.9);
  double nnz = 0, total = 0;
  for (size_t l = 0; l < shapes.size(); ++l) {
    CHECK(d[l] > 0);
    CHECK(d[l] <= 1.0);
    nnz += d[l] * double(shape_numel(shapes[l]));
    total += double(shape_numel(shapes[l]));
  }
  CHECK(nnz / total == Approx(0.1).epsilon(1e-9));
  CHECK(d[0] == 1.0);  // the 288-weight first conv would exceed 1: kept dense
  // the others follow (sum of dims) / (product of dims)
  double r1 = (64.0 + 32 + 3 + 3) / (64.0 * 32 * 9), r2 = (128.0 + 3136) / (128.0 * 3136);
  CHECK(d[1] / d[2] == Approx(r1 / r2));
  CHECK(rigl_fraction(0.3, 0, 100) == Approx(0.3));
  CHECK(rigl_fraction(0.3, 50, 100) == Approx(0.15));
  CHECK(rigl_fraction(0.3, 100, 100) == 0.0);
}

TEST_CASE("pruning: drop and grow sets are disjoint and the count is constant", "[pruning]") {
  Generator gen(3);
  Tensor w = randn({20, 10}, DType::f32, &gen), g = randn({20, 10}, DType::f32, &gen);
  Tensor m = random_mask({20, 10}, 0.3, DType::f32, gen);
  w = w * m;
  for (bool rigl : {true, false}) {
    auto r = drop_and_grow(w, m, rigl ? g : Tensor(), 12, &gen);
    std::set<int64_t> dropped(r.dropped.begin(), r.dropped.end()), grown(r.grown.begin(), r.grown.end());
    CHECK(dropped.size() == 12);
    CHECK(grown.size() == 12);
    for (int64_t i : grown) CHECK_FALSE(dropped.count(i));
    CHECK(brisk::count_zeros(r.mask) == brisk::count_zeros(m));
    auto mv = m.to_vector(), wv = w.to_vector(), gv = g.to_vector();
    double max_dropped = 0, min_kept = 1e9;
    for (int64_t i = 0; i < 200; ++i) {
      if (dropped.count(i)) max_dropped = std::max(max_dropped, std::abs(wv[size_t(i)]));
      else if (mv[size_t(i)] == 1) min_kept = std::min(min_kept, std::abs(wv[size_t(i)]));
    }
    CHECK(max_dropped <= min_kept);  // dropped the smallest active
    for (int64_t i : grown) CHECK(mv[size_t(i)] == 0.0);  // grew only inactive positions
    if (rigl) {
      double min_grown = 1e9, max_other = 0;
      for (int64_t i = 0; i < 200; ++i) {
        if (grown.count(i)) min_grown = std::min(min_grown, std::abs(gv[size_t(i)]));
        else if (mv[size_t(i)] == 0) max_other = std::max(max_other, std::abs(gv[size_t(i)]));
      }
      CHECK(min_grown >= max_other);  // grew the largest |dense gradient|
    }
  }
}

TEST_CASE("pruning: RigL and SET keep per-layer counts constant and resume bit-exactly", "[pruning][train]") {
  for (std::string sched : {"rigl", "set"}) {
    INFO(sched);
    TrainConfig c = small_config("brisk_dst_" + sched);
    c.epochs = 2;
    c.eval_every = 4;
    c.methods = {"prune:target=0.8,schedule=" + sched + ",frequency=2,alpha=0.5"};
    Trainer t(c, brisk::efficiency::make_methods);
    t.fit();
    auto m = read_jsonl(c.out + "/metrics.jsonl");
    REQUIRE(m.size() == 4);
    // Weights regrown at zero count as zeros until they train, so the metric
    // sits at or just above the target.
    for (auto& line : m) CHECK(line["sparsity"].get<double>() == Approx(0.8).margin(0.02));
    CHECK(m.back()["dst_regrown"].get<int64_t>() > 0);
    // Masks keep each layer's ERK count exactly, after every drop/grow.
    std::vector<Shape> shapes;
    std::vector<std::string> names;
    for (auto& [n, p] : t.model().named_parameters())
      if (p.dim() >= 2) { shapes.push_back(p.shape()); names.push_back(n); }
    auto dens = erk_densities(shapes, 0.8);
    TensorMap fin = final_tensors(c.out);
    for (size_t l = 0; l < names.size(); ++l) {
      Tensor mask = fin.at("method/0/" + names[l]);
      int64_t n = mask.numel();
      CHECK(n - brisk::count_zeros(mask) == std::llround(dens[l] * double(n)));
      // pruned weights are exactly zero
      CHECK(max(abs(fin.at("model/" + names[l]) * (1.0 - mask))).item() == 0.0);
    }

    check_resume_bit_exact(c, {5}, /*run_full=*/false);
  }
}

// Checks, right after each IMP pruning, that the weights were rewound.
class RewindCheck : public brisk::train::Callback {
 public:
  int checks = 0;
  std::string name() const override { return "rewind_check"; }
  void on_batch_start(Trainer& t) override {
    if (t.state().step != 5 && t.state().step != 10) return;  // 16 steps: rounds of 5, 5, 6
    TensorMap st = t.callbacks()[0]->state_tensors();
    for (auto& [n, p] : t.model().named_parameters()) {
      Tensor snap = st.at("imp/" + n);
      Tensor m = brisk::get_mask(p);
      Tensor want = m.defined() ? snap * m : snap;
      INFO("param " << n << " step " << t.state().step << " diff " << max(abs(p.detach() - want)).item());
      REQUIRE(bit_equal(p.detach(), want));
    }
    for (auto& [n, s] : t.optimizer().state())
      for (auto& [k, v] : s) REQUIRE(max(abs(v)).item() == 0.0);
    checks++;
  }
};

TEST_CASE("pruning: IMP prunes each round, rewinds and reaches the target", "[pruning][train]") {
  TrainConfig c = small_config("brisk_imp");  // 8 steps per epoch
  c.epochs = 2;
  c.max_steps = 0;
  c.methods = {"prune:target=0.75,schedule=imp,rounds=3,rewind=0.1"};
  Trainer t(c, brisk::efficiency::make_methods);
  CHECK(t.total_steps() == 16);  // rounds of 5, 5, 6 steps
  auto* rc = new RewindCheck;
  t.add_callback(std::unique_ptr<brisk::train::Callback>(rc));
  t.fit();
  CHECK(rc->checks == 2);  // after the two prunings
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  CHECK(m.back()["sparsity"].get<double>() == Approx(0.75).margin(1e-3));
  check_resume_bit_exact(c, {6}, /*run_full=*/false);
  CHECK_THROWS_WITH(brisk::efficiency::make_method("prune:schedule=imp,rounds=1"), Catch::Contains("rounds >= 2"));
}

TEST_CASE("pruning: removing channels equals masking them, and state is cut alike", "[pruning][surgery]") {
  manual_seed(8);
  auto cnn = brisk::models::cnn();
  auto masked = brisk::models::cnn();
  std::map<size_t, std::vector<int64_t>> keep;
  Generator g(3);
  for (auto [layer, n, k] : {std::tuple<size_t, int64_t, int64_t>{0, 32, 20}, {3, 64, 40}, {7, 128, 100}}) {
    Tensor perm = randperm(n, &g);
    std::vector<int64_t> kk(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + k);
    std::sort(kk.begin(), kk.end());
    keep[layer] = kk;
  }
  brisk::optim::SGD opt(cnn->named_parameters(), {0.1, 0.9});
  Tensor x = randn({3, 1, 28, 28});
  opt.zero_grad();
  sum(cnn->forward(x)).backward();
  opt.step();
  masked->load_state_dict(cnn->state_dict());  // same weights after the step, with the
  for (auto& [layer, kk] : keep) {             // removed units' rows and biases zeroed
    int64_t n = masked->parameter(std::to_string(layer) + ".weight").size(0);
    std::vector<double> m(static_cast<size_t>(n), 0.0);
    for (int64_t u : kk) m[size_t(u)] = 1.0;
    Tensor mask = from_vector(m, {n});
    NoGradGuard ng;
    Tensor w = masked->parameter(std::to_string(layer) + ".weight").detach(),
           b = masked->parameter(std::to_string(layer) + ".bias").detach();
    Shape bs(size_t(w.dim()), 1);
    bs[0] = n;
    w.mul_(mask.reshape(bs));
    b.mul_(mask);
  }
  Tensor mom = opt.state().at("3.weight").at("momentum_buffer").clone();
  for (auto& [layer, kk] : keep) remove_units(*cnn, layer, kk, &opt);
  CHECK(cnn->parameter("3.weight").shape() == Shape({40, 20, 3, 3}));
  CHECK(cnn->parameter("7.weight").shape() == Shape({100, 40 * 49}));
  CHECK(cnn->parameter("9.weight").shape() == Shape({10, 100}));
  {
    NoGradGuard ng;
    cnn->eval();
    masked->eval();
    expect_close(cnn->forward(x), masked->forward(x), dtype_tol(DType::f32, 3136), "pruned vs masked");
  }
  // momentum rows of conv 3 = the kept rows, columns = the kept inputs of conv 0
  Tensor want = index_select(index_select(mom, 0, from_vector(std::vector<double>(keep[3].begin(), keep[3].end()),
                                                                {40}, DType::i64)),
                             1, from_vector(std::vector<double>(keep[0].begin(), keep[0].end()), {20}, DType::i64));
  CHECK(bit_equal(opt.state().at("3.weight").at("momentum_buffer"), want));
  CHECK(opt.param("3.weight").is_same(cnn->parameter("3.weight")));
}

TEST_CASE("pruning: channel pruning shrinks the model mid-training and resumes bit-exactly", "[pruning][train]") {
  TrainConfig c = small_config("brisk_channel");
  c.epochs = 2;
  c.methods = {"prune:target=0.5,structure=channel,start=0.25"};
  Trainer t(c, brisk::efficiency::make_methods);
  t.fit();
  CHECK(t.model().num_parameters() == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  CHECK(m.back()["sparsity"].get<double>() == Approx(1.0 - 235146.0 / 535818.0));
  CHECK(m.back()["test_acc"].get<double>() > 0.5);
  check_resume_bit_exact(c, {3, 6}, /*run_full=*/false);  // stops before and after the pruning step (4)
  TrainConfig rn = small_config("brisk_channel_resnet");
  rn.model = "resnet";
  rn.epochs = 1;
  rn.methods = {"prune:target=0.5,structure=channel,start=0.25,score=bn"};
  Trainer tr(rn, brisk::efficiency::make_methods);
  tr.fit();  // coupled channels of the residual stream pruned together
  auto& seq = dynamic_cast<brisk::nn::Sequential&>(tr.model());
  for (auto& g : brisk::nn::channel_groups(seq))
    for (auto& p : g.producers) CHECK(p.layer->parameter("weight").size(0) == g.width());
  CHECK(std::dynamic_pointer_cast<brisk::nn::Linear>(seq[8])->in_features == 32);
  CHECK(tr.model().num_parameters() < brisk::models::resnet()->num_parameters() / 3);
  check_resume_bit_exact(rn, {1, 3}, /*run_full=*/false);
}

TEST_CASE("pruning: CSR sparse linear matches the dense masked layer, forward and backward", "[pruning][kernels]") {
  namespace F = brisk::nn::functional;
  Generator g(21);
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor w0 = randn({24, 40}, dt, &g), b0 = randn({24}, dt, &g);
    Tensor mask = lt(rand({24, 40}, dt, &g), scalar_tensor(0.15, dt)).to(dt);  // ~85% sparse
    Tensor x0 = randn({3, 5, 40}, dt, &g), gy = randn({3, 5, 24}, dt, &g);
    auto run = [&](bool sparse, const char* backend) {
      ForceBackend fb(backend);
      Tensor x = x0.clone().requires_grad_(), w = (w0 * mask).detach().requires_grad_(), b = b0.clone().requires_grad_();
      Tensor y = sparse ? F::sparse_linear(x, w, mask, b) : matmul(x, w.t()) + b;
      y.backward(gy);
      if (sparse) CHECK(last_backend("csr_linear_bwd_weight") == backend);
      return cat({y.reshape({-1}), x.grad().reshape({-1}), (w.grad() * mask).reshape({-1}), b.grad()});
    };
    Tensor dense = run(false, "ref");
    for (const char* be : {"ref", "cpu"}) expect_close(run(true, be), dense, dtype_tol(dt, 40), std::string("sparse ") + be);
  }
  Tensor mask = lt(rand({4, 6}, DType::f64, &g), scalar_tensor(0.5, DType::f64)).to(DType::f64);
  gradcheck("sparse_linear", [&](const std::vector<Tensor>& in) { return F::sparse_linear(in[0], in[1], mask, in[2]); },
            {uniform64({3, 6}, -1, 1, 1), uniform64({4, 6}, -1, 1, 2), uniform64({4}, -1, 1, 3)});
}

TEST_CASE("pruning: linear switches to the CSR kernel above the sparsity threshold", "[pruning][kernels]") {
  brisk::nn::Linear l(64, 32);
  Tensor x = randn({8, 64});
  Tensor dense_out = l.forward(x);
  double threshold = brisk::nn::functional::sparse_linear_threshold();
  CHECK(threshold == 0.9);  // the default, from bench/sparse_linear.cpp's crossover
  brisk::set_mask(l.weight, magnitude_mask(l.weight, 64 * 32 * 97 / 100));  // above the threshold
  Tensor masked_ref;
  {
    brisk::nn::functional::set_sparse_linear_threshold(2.0);  // off
    masked_ref = l.forward(x);
    brisk::nn::functional::set_sparse_linear_threshold(threshold);
  }
  Tensor y = l.forward(x);
  CHECK(last_backend("csr_linear") == "cpu");
  expect_close(y, masked_ref, dtype_tol(DType::f32, 64), "auto sparse vs dense masked");
  brisk::nn::Linear l2(64, 32);
  brisk::set_mask(l2.weight, magnitude_mask(l2.weight, 64 * 32 / 2));  // 50%: stays dense
  auto csr_calls = [] {
    for (auto& s : op_stats())
      if (s.op == "csr_linear") return s.calls;
    return int64_t(0);
  };
  set_op_profiling(true);
  reset_op_stats();
  l2.forward(x);
  CHECK(csr_calls() == 0);
  l.forward(x);
  CHECK(csr_calls() == 1);
  set_op_profiling(false);
}

// A masked weight must not cost the fused bias + activation kernels (the
// unfused GELU is a scalar pass per element, and a 2:4 GPT paid 1.3x a step
// for it), on the dense path (50%) or the CSR one (97%); values as the dense
// masked product. Each mask's sparsity is computed once, however the layers
// alternate.
TEST_CASE("pruning: masked linears stay fused with their bias + activation and compute each sparsity once",
          "[pruning][kernels]") {
  namespace F = brisk::nn::functional;
  Generator g(5);
  Tensor x = randn({6, 64}, DType::f32, &g), b = randn({32}, DType::f32, &g);
  auto calls = [](const char* op) {
    for (auto& s : op_stats())
      if (s.op == op) return s.calls;
    return int64_t(0);
  };
  std::vector<Tensor> ws;
  for (int64_t pruned : {64 * 32 / 2, 64 * 32 * 97 / 100}) {
    Tensor w = randn({32, 64}, DType::f32, &g).requires_grad_();
    brisk::set_mask(w, magnitude_mask(w, pruned));
    ws.push_back(w);
    Tensor dense = matmul(x, w.detach().t()) + b;  // w already zero where masked
    set_op_profiling(true);
    reset_op_stats();
    Tensor yg = F::linear_gelu(x, w, b), yr = F::linear_relu(x, w, b);
    INFO("pruned " << pruned);
    CHECK(calls("bias_gelu_fwd") == 1);
    CHECK(calls("bias_relu") == 1);
    CHECK(calls("gelu") == 0);
    CHECK(calls("csr_linear") == (pruned > 64 * 32 / 2 ? 2 : 0));
    set_op_profiling(false);
    expect_close(yg, gelu(dense), dtype_tol(DType::f32, 64), "linear_gelu, masked");
    expect_close(yr, relu(dense), dtype_tol(DType::f32, 64), "linear_relu, masked");
  }
  set_op_profiling(true);
  reset_op_stats();
  for (int i = 0; i < 3; ++i)
    for (auto& w : ws) F::linear(x, w, b);
  CHECK(calls("reduce") == 0);  // both sparsities were computed above
  set_op_profiling(false);
}

// Sample selection: the per-example statistics store (keyed by dataset index)
// and RS2 (exact round sizes, full coverage per cycle, schedule over the
// reduced step count, bit-exact resume).
#include <set>

#include "efficiency/method.h"
#include "efficiency/selection/example_stats.h"
#include "efficiency/selection/grand/grand.h"
#include "models/models.h"
#include "nn/functional.h"
#include "efficiency/selection/infobatch/infobatch.h"
#include "efficiency/selection/rho_loss/rho_loss.h"
#include "efficiency/selection/selective_backprop/selective_backprop.h"
#include "tests/train_helpers.h"

using namespace bt;
using brisk::selection::ExampleStats;
using brisk::train::Trainer;

TEST_CASE("selection: example statistics are kept by dataset index", "[selection]") {
  ExampleStats a(10), b(10);
  Tensor idx = from_vector({7, 2, 5}, {3}, DType::i64), y = from_vector({0, 1, 1}, {3}, DType::i64);
  Tensor logits = from_vector({5, 0, 0, 5, 5, 0}, {3, 2}), loss = from_vector({0.1, 0.2, 0.3}, {3});
  a.update(idx, loss, logits, y, 0);
  // the same examples in another batch order give the same per-index stats
  Tensor perm = from_vector({2, 0, 1}, {3}, DType::i64);
  b.update(index_select(idx, 0, perm), index_select(loss, 0, perm), index_select(logits, 0, perm),
           index_select(y, 0, perm), 0);
  CHECK(a.last_loss == b.last_loss);
  CHECK(a.el2n == b.el2n);
  CHECK(a.last_loss[5] == Approx(0.3f));
  CHECK(a.last_epoch[7] == 0);
  CHECK(a.last_epoch[0] == -1);
  // EL2N of index 7: p = softmax([5, 0]), y = 0: ||p - e0|| = sqrt(2) * p1
  double p1 = 1 / (1 + std::exp(5.0));
  CHECK(a.el2n[7] == Approx(std::sqrt(2.0) * p1).epsilon(1e-5));
  // forgetting: index 7 correct, then wrong
  a.update(from_vector({7}, {1}, DType::i64), from_vector({2.0}, {1}), from_vector({0, 5}, {1, 2}),
           from_vector({0}, {1}, DType::i64), 1);
  CHECK(a.forgetting[7] == 1);
  CHECK(a.times_seen[7] == 2);
  CHECK(a.times_selected[7] == 2);
  CHECK(a.forgetting[2] == 0);
  ExampleStats c(10);
  c.from_tensors(a.to_tensors());
  CHECK(c.forgetting == a.forgetting);
  CHECK(c.el2n == a.el2n);
  CHECK_THROWS_WITH(a.update(from_vector({12}, {1}, DType::i64), from_vector({1}, {1}), zeros({1, 2}),
                             zeros({1}, DType::i64), 0),
                    Catch::Contains("index 12 out of range"));
}

TEST_CASE("selection: RS2 rounds are exact, cover the data each cycle, and set the schedule", "[selection][train]") {
  TrainConfig c = small_config("brisk_rs2");  // 512 examples, batch 64
  c.epochs = 8;
  c.methods = {"select:kind=rs2,ratio=0.25"};
  Trainer t(c, brisk::efficiency::make_methods);
  CHECK(t.total_steps() == 8 * 2);  // 128 examples = 2 batches per round
  t.fit();
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  REQUIRE(m.size() == 8);
  CHECK(m.back()["examples_backpropagated"] == 8 * 128);
  CHECK(m.back()["selected_frac"].get<double>() == Approx(0.25));
  CHECK(m.back()["step"] == 16);
  TensorMap fin = final_tensors(c.out);
  auto seen = fin.at("method/0/stats/times_seen").to_vector();
  for (double s : seen) REQUIRE(s == 2.0);  // two cycles of 4 rounds: each example exactly twice

  TrainConfig odd = small_config("brisk_rs2_odd");
  odd.epochs = 3;
  odd.methods = {"select:kind=rs2,ratio=0.3"};  // 153.6 -> 128 (whole batches), 4 rounds per cycle
  Trainer t2(odd, brisk::efficiency::make_methods);
  CHECK(t2.total_steps() == 3 * 2);

  check_resume_bit_exact(c, {5}, /*run_full=*/false);
}

TEST_CASE("selection: method spellings", "[selection]") {
  using brisk::efficiency::make_method;
  CHECK(make_method("select:kind=rs2")->name() == "select");
  CHECK(make_method("select:kind=infobatch")->name() == "select");
  CHECK(make_method("select:kind=selective-backprop")->name() == "select");
  CHECK(make_method("select:kind=rho-loss")->name() == "select");
  CHECK_THROWS_WITH(make_method("select:kind=rho-loss,il_model=vgg"), Catch::Contains("unknown model"));
  CHECK_THROWS_WITH(make_method("select:kind=random"), Catch::Contains("unknown kind 'random'"));
  CHECK_THROWS_WITH(make_method("select:kind=rs2,ratio=0"), Catch::Contains("ratio must be in (0, 1]"));
}

TEST_CASE("selection: InfoBatch's weighted gradient is unbiased and its kept set exact", "[selection]") {
  // 50 examples, all seen; 20 have a loss below the mean (0.1 vs 1.0).
  std::vector<float> loss(50, 1.0f);
  for (int i = 0; i < 20; ++i) loss[size_t(i * 2)] = 0.1f;
  std::vector<int32_t> seen(50, 1);
  Generator gg(1);
  Tensor g = randn({50, 3}, DType::f64, &gg);  // per-example "gradients"
  Tensor full = sum(g, {0});
  Tensor acc = zeros({3}, DType::f64);
  const int trials = 4000;
  for (int s = 0; s < trials; ++s) {
    Generator gen(uint64_t(s) + 100);
    auto plan = brisk::selection::infobatch_plan(loss, seen, 0.5, gen);
    REQUIRE(plan.keep.size() == 50 - 10);  // exactly round(0.5 * 20) dropped
    std::vector<double> w(plan.weight.begin(), plan.weight.end());
    acc = acc + sum(g * from_vector(w, {50, 1}, DType::f64), {0});
    for (int i = 0; i < 50; ++i)
      if (loss[size_t(i)] >= 1.0f) REQUIRE(plan.weight[size_t(i)] == 1.0f);  // above the mean: untouched
  }
  Tensor mc = acc / double(trials);
  // each low-loss example is kept with p = 1/2 and weighted 2: E = full gradient
  CHECK(max(abs(mc - full)).item() < 0.15);
  CHECK(max(abs(full)).item() > 0.5);  // the check is not vacuous
  std::vector<int32_t> unseen(50, 0);
  Generator gen(5);
  CHECK(brisk::selection::infobatch_plan(loss, unseen, 0.5, gen).keep.size() == 50);  // nothing known: keep all
}

TEST_CASE("selection: InfoBatch uses all data first and last, and resumes bit-exactly", "[selection][train]") {
  TrainConfig c = small_config("brisk_infobatch");
  c.epochs = 8;
  c.methods = {"select:kind=infobatch,ratio=0.5,delta=0.25"};
  Trainer(c, brisk::efficiency::make_methods).fit();
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  REQUIRE(m.size() == 8);
  std::vector<int64_t> steps;
  int64_t prev = 0;
  for (auto& line : m) {
    steps.push_back(line["step"].get<int64_t>() - prev);
    prev = line["step"].get<int64_t>();
  }
  CHECK(steps[0] == 8);  // first epoch: full data
  for (int e = 1; e < 6; ++e) CHECK(steps[size_t(e)] < 8);  // pruned epochs
  CHECK(steps[6] == 8);  // final delta = 25% of epochs: full data
  CHECK(steps[7] == 8);
  CHECK(m.back()["selected_frac"].get<double>() < 1.0);

  check_resume_bit_exact(c, {11}, /*run_full=*/false);
}

TEST_CASE("selection: static EL2N / forgetting pruning keeps exactly the top scores", "[selection][train]") {
  for (std::string kind : {"el2n", "forgetting"}) {
    INFO(kind);
    TrainConfig c = small_config("brisk_static_" + kind);
    c.epochs = 4;
    c.methods = {"select:kind=" + kind + ",keep=0.25,start=2"};
    Trainer t(c, brisk::efficiency::make_methods);
    CHECK(t.total_steps() == 8 + 8 + 2 + 2);  // two scoring epochs, then 128 examples
    t.fit();
    auto m = read_jsonl(c.out + "/metrics.jsonl");
    REQUIRE(m.size() == 4);
    CHECK(m[1]["step"] == 16);
    CHECK(m[3]["step"] == 20);
    TensorMap fin = final_tensors(c.out);
    Tensor kept = fin.at("method/0/static/kept");
    CHECK(kept.numel() == 128);
    // every kept example scores at least as high as every dropped one (scores frozen after epoch 2
    // are not saved separately, so compare the kept set with the visits instead)
    auto seen = fin.at("method/0/stats/times_seen").to_vector();
    std::set<int64_t> k;
    for (double v : kept.to_vector()) k.insert(int64_t(v));
    for (int64_t i = 0; i < 512; ++i) REQUIRE(seen[size_t(i)] == (k.count(i) ? 4.0 : 2.0));
  }
  TrainConfig all = small_config("brisk_static_all");
  all.epochs = 2;
  all.methods = {"select:kind=el2n,keep=1,start=1"};
  Trainer t(all, brisk::efficiency::make_methods);
  CHECK(t.total_steps() == 16);  // keep = 1 selects everything
}

TEST_CASE("selection: Selective Backprop's probability rises with loss, beta 0 takes all", "[selection]") {
  std::vector<float> hist;
  for (int i = 0; i < 100; ++i) hist.push_back(float(i) / 10);
  double prev = -1;
  for (float loss : {0.0f, 1.0f, 3.3f, 5.0f, 9.85f}) {
    double p = brisk::selection::selection_probability(hist, loss, 2.0);
    CHECK(p > prev);
    prev = p;
    CHECK(brisk::selection::selection_probability(hist, loss, 0.0) == 1.0);
  }
  CHECK(brisk::selection::selection_probability(hist, 20.0f, 2.0) == 1.0);
  CHECK(brisk::selection::selection_probability(hist, 4.95f, 1.0) == Approx(0.5));
  // By hand (Jiang et al.: p = F(loss)^beta, F the fraction of the history <= loss):
  // 0.0 .. 3.3 are 34 of the 100 values, so p = 0.34^2 at beta 2; 0.0 alone is 1 value.
  CHECK(brisk::selection::selection_probability(hist, 3.3f, 2.0) == Approx(0.34 * 0.34));
  CHECK(brisk::selection::selection_probability(hist, 0.0f, 3.0) == Approx(1e-6));
  CHECK(brisk::selection::selection_probability(hist, -1.0f, 1.0) == 0.0);
  CHECK(brisk::selection::selection_probability({}, 1.0f, 3.0) == 1.0);
}

class BatchSizeCheck : public brisk::train::Callback {
 public:
  int64_t batches = 0;
  std::string name() const override { return "batch_size_check"; }
  void on_after_forward(Trainer& t) override {
    REQUIRE(t.batch.y.numel() == t.config().batch_size);
    batches++;
  }
};

TEST_CASE("selection: Selective Backprop buffers full batches, exact rank counts, exact resume", "[selection][train]") {
  TrainConfig all = small_config("brisk_sb_all");
  all.epochs = 2;
  all.methods = {"select:kind=selective-backprop,beta=0"};
  Trainer t0(all, brisk::efficiency::make_methods);
  t0.fit();
  CHECK(t0.state().step == 16);  // beta = 0: everything is backpropagated

  TrainConfig rank = small_config("brisk_sb_rank");
  rank.epochs = 2;
  rank.methods = {"select:kind=selective-backprop,variant=rank,keep=0.5,start=0,end=1"};
  Trainer t1(rank, brisk::efficiency::make_methods);
  auto* check = new BatchSizeCheck;
  t1.add_callback(std::unique_ptr<brisk::train::Callback>(check));
  t1.fit();
  CHECK(t1.state().step == 8);  // 32 of every 64 scored -> 4 full batches per epoch
  CHECK(check->batches == 8);
  auto m = read_jsonl(rank.out + "/metrics.jsonl");
  CHECK(m.back()["examples_backpropagated"] == 512);
  CHECK(m.back()["selected_frac"].get<double>() == Approx(0.5));
  CHECK(m.back()["score_s"].get<double>() > 0.0);

  TrainConfig prob = small_config("brisk_sb_prob");
  prob.epochs = 3;
  prob.methods = {"select:kind=selective-backprop,beta=2,history=256"};
  Trainer t2(prob, brisk::efficiency::make_methods);
  auto* check2 = new BatchSizeCheck;
  t2.add_callback(std::unique_ptr<brisk::train::Callback>(check2));
  t2.fit();
  CHECK(t2.state().step > 8);    // the first epoch is unfiltered
  CHECK(t2.state().step < 24);   // later epochs drop examples
  check_resume_bit_exact(prob, {10}, /*run_full=*/false);
}

TEST_CASE("selection: RHO-LOSS looks irreducible losses up by dataset index", "[selection]") {
  std::vector<float> il(100, 0.0f);
  il[42] = 5.0f;  // example 42 is hard for the holdout model too: low reducible loss
  il[7] = 0.0f;
  Tensor idx = from_vector({42, 7, 13, 99}, {4}, DType::i64);
  Tensor loss = from_vector({5.5, 1.0, 0.2, 0.9}, {4});
  auto sel = brisk::selection::rho_select(loss, idx, il, 0.5).to_vector();
  CHECK(sel == std::vector<double>{0.0, 1.0, 0.0, 1.0});  // 7 (1.0) and 99 (0.9) beat 42 (0.5)
  // the same examples, shuffled: the same examples are chosen
  Tensor perm = from_vector({3, 0, 2, 1}, {4}, DType::i64);
  auto sel2 = brisk::selection::rho_select(index_select(loss, 0, perm), index_select(idx, 0, perm), il, 0.5);
  auto chosen = index_select(idx, 0, perm).to_vector(), s2 = sel2.to_vector();
  std::set<int64_t> picked;
  for (size_t i = 0; i < 4; ++i)
    if (s2[i] == 1.0) picked.insert(int64_t(chosen[i]));
  CHECK(picked == std::set<int64_t>{7, 99});
  CHECK_THROWS_WITH(brisk::selection::rho_select(loss, from_vector({1, 2, 3, 100}, {4}, DType::i64), il, 0.5),
                    Catch::Contains("index 100"));
}

TEST_CASE("selection: RHO-LOSS end to end: holdout never trained on, time counted, exact resume", "[selection][train]") {
  TrainConfig c = small_config("brisk_rho");
  c.epochs = 2;
  c.methods = {"select:kind=rho-loss,keep=0.5,holdout=0.25,il_epochs=1"};
  Trainer t(c, brisk::efficiency::make_methods);
  t.fit();
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  CHECK(m.back()["score_s"].get<double>() > 0.0);
  TensorMap fin = final_tensors(c.out);
  auto seen = fin.at("method/0/stats/times_seen").to_vector();
  int64_t never = std::count(seen.begin(), seen.end(), 0.0);
  CHECK(never == 128);  // the 25% holdout is scored by the IL model only, never trained on
  CHECK(fin.at("method/0/rho/il").numel() == 512);
  // 384 training examples, half kept: 192 per epoch = 3 full batches
  CHECK(t.state().step == 6);

  check_resume_bit_exact(c, {2}, /*run_full=*/false);
}

// Captures epoch 2's order and the selection method's EL2N scores as they
// were when that order was made (before the epoch's first batch trains), and
// recomputes EL2N independently at the end of epoch 2's predecessor (same
// weights: evaluation does not change them): a plain loop over the examples,
// softmax and the error norm in double.
class OrderCheck : public brisk::train::Callback {
 public:
  std::vector<double> first_epoch_order, el2n, recomputed;
  int64_t epoch = -1;
  std::string name() const override { return "order_check"; }
  void on_epoch_start(Trainer& t) override { epoch = t.state().epoch; }
  void on_epoch_end(Trainer& t) override {
    if (t.state().epoch != 2) return;
    brisk::NoGradGuard ng;
    t.model().eval();
    const auto& ds = t.train_loader().dataset();
    brisk::data::DataLoader dl(ds, brisk::data::in_order(64));
    dl.start_epoch(0);
    recomputed.assign(size_t(ds.size()), -1.0);
    while (auto b = dl.next()) {
      auto z = t.model().forward(b->x).to_vector();
      int64_t B = b->y.numel(), C = int64_t(z.size()) / B;
      for (int64_t i = 0; i < B; ++i) {
        double mx = -1e300, den = 0, e2 = 0;
        for (int64_t c = 0; c < C; ++c) mx = std::max(mx, z[size_t(i * C + c)]);
        for (int64_t c = 0; c < C; ++c) den += std::exp(z[size_t(i * C + c)] - mx);
        int64_t y = int64_t(b->y.to_vector()[size_t(i)]);
        for (int64_t c = 0; c < C; ++c) {
          double d = std::exp(z[size_t(i * C + c)] - mx) / den - (c == y ? 1.0 : 0.0);
          e2 += d * d;
        }
        recomputed[size_t(b->indices.to_vector()[size_t(i)])] = std::sqrt(e2);
      }
    }
    t.model().train();
  }
  void on_batch_start(Trainer& t) override {
    if (epoch == 2 && t.epoch_order.defined() && first_epoch_order.empty()) {
      first_epoch_order = t.epoch_order.to_vector();
      el2n = t.callbacks()[0]->state_tensors().at("static/scores").to_vector();
    }
  }
};

TEST_CASE("selection: curriculum visits the kept set from easy to hard", "[selection][train]") {
  TrainConfig c = small_config("brisk_curriculum");
  c.epochs = 3;
  c.methods = {"select:kind=el2n,keep=0.5,start=2,order=curriculum"};
  Trainer t(c, brisk::efficiency::make_methods);
  auto* oc = new OrderCheck;
  t.add_callback(std::unique_ptr<brisk::train::Callback>(oc));
  t.fit();
  REQUIRE(oc->first_epoch_order.size() == 256);
  // EL2N scored every example with the weights at the start of epoch 2
  // (Paul et al.), not as a running mean over the visits of earlier epochs
  REQUIRE(oc->recomputed.size() == 512);
  for (size_t i = 0; i < 512; ++i) REQUIRE(oc->el2n[i] == Approx(oc->recomputed[i]).margin(1e-5));
  for (size_t i = 1; i < 256; ++i)  // easy to hard
    REQUIRE(oc->el2n[size_t(oc->first_epoch_order[i - 1])] <= oc->el2n[size_t(oc->first_epoch_order[i])]);
  // and the kept half is the hardest half
  double easiest_kept = oc->el2n[size_t(oc->first_epoch_order[0])];
  std::set<double> kept_set(oc->first_epoch_order.begin(), oc->first_epoch_order.end());
  for (int64_t i = 0; i < 512; ++i)
    if (!kept_set.count(double(i))) REQUIRE(oc->el2n[size_t(i)] <= easiest_kept);
  TensorMap fin = final_tensors(c.out);
  CHECK(fin.at("method/0/static/kept").numel() == 256);
  std::set<double> kept(oc->first_epoch_order.begin(), oc->first_epoch_order.end());
  CHECK(kept.size() == 256);
  CHECK_THROWS_WITH(brisk::efficiency::make_method("select:kind=el2n,order=hardest"), Catch::Contains("unknown order"));
}

// GraNd against autograd: example i alone, backward, the norm of the chosen
// parameters' gradients.
TEST_CASE("selection: GraNd scores equal per-example gradient norms", "[selection]") {
  brisk::data::Dataset ds;
  const int64_t n = 7;
  std::vector<double> px(16 * 7), py(7);
  std::mt19937 rng(3);
  for (auto& v : px) v = double(rng() % 256);
  for (int64_t i = 0; i < n; ++i) py[size_t(i)] = double(i % 3);
  ds.images = from_vector(px, {n, 1, 4, 4}, DType::u8);
  ds.labels = from_vector(py, {n}, DType::i64);
  ds.num_classes = 3;
  ds.mean = 0.3;
  ds.std = 0.2;
  manual_seed(5);
  auto model = std::make_shared<brisk::nn::Sequential>(std::vector<brisk::nn::ModulePtr>{
      std::make_shared<brisk::nn::Flatten>(), std::make_shared<brisk::nn::Linear>(16, 6),
      std::make_shared<brisk::nn::ReLU>(), std::make_shared<brisk::nn::Linear>(6, 3)});
  model->train();
  // batch 3 so batches are partial and indices matter
  auto last = brisk::selection::grand_scores(*model, ds, brisk::selection::GrandScope::last, 3);
  auto full = brisk::selection::grand_scores(*model, ds, brisk::selection::GrandScope::full, 3);
  CHECK(model->is_training());  // mode restored
  auto params = model->named_parameters();
  for (int64_t i = 0; i < n; ++i) {
    INFO("example " << i);
    Tensor x = ((ds.images.narrow(0, i, 1).to(DType::f32) / 255.0) - ds.mean) / ds.std;
    for (auto& [k, p] : params) p.set_grad(Tensor());
    model->eval();
    brisk::nn::functional::cross_entropy(model->forward(x), ds.labels.narrow(0, i, 1)).backward();
    model->train();
    double s_last = 0, s_full = 0;
    for (auto& [k, p] : params) {
      double s = 0;
      for (double g : p.grad().to_vector()) s += g * g;
      s_full += s;
      if (k.rfind("3.", 0) == 0) s_last += s;
    }
    CHECK(last[size_t(i)] == Approx(std::sqrt(s_last)).epsilon(1e-4));
    CHECK(full[size_t(i)] == Approx(std::sqrt(s_full)).epsilon(1e-4));
    CHECK(full[size_t(i)] > last[size_t(i)]);
  }
  // a model without a Linear head is refused for grand=last
  brisk::nn::Sequential headless(std::vector<brisk::nn::ModulePtr>{std::make_shared<brisk::nn::Flatten>()});
  CHECK_THROWS_WITH(brisk::selection::grand_scores(headless, ds, brisk::selection::GrandScope::last),
                    Catch::Contains("grand=full"));
}

TEST_CASE("selection: static GraNd pruning keeps exactly the top scores, and resumes bit-exactly", "[selection][train]") {
  TrainConfig c = small_config("brisk_static_grand");
  c.epochs = 3;
  c.methods = {"select:kind=grand,keep=0.25,start=1"};
  Trainer t(c, brisk::efficiency::make_methods);
  CHECK(t.total_steps() == 8 + 2 + 2);
  t.fit();
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  REQUIRE(m.size() == 3);
  CHECK(m[2]["step"] == 12);
  CHECK(m[2]["score_s"].get<double>() > 0);  // the scoring pass is charged to the method
  TensorMap fin = final_tensors(c.out);
  auto kept = fin.at("method/0/static/kept").to_vector();
  auto score = fin.at("method/0/static/scores").to_vector();
  REQUIRE(kept.size() == 128);
  std::set<int64_t> k;
  for (double v : kept) k.insert(int64_t(v));
  double min_kept = 1e30, max_dropped = -1;
  for (int64_t i = 0; i < 512; ++i) {
    if (k.count(i)) min_kept = std::min(min_kept, score[size_t(i)]);
    else max_dropped = std::max(max_dropped, score[size_t(i)]);
  }
  CHECK(min_kept >= max_dropped);
  CHECK(max_dropped > 0);
  // stopped after the scoring (10) and right before it (8), resumed: bit-identical
  check_resume_bit_exact(c, {8, 10}, /*run_full=*/false);
  CHECK_THROWS_WITH(Trainer([&] {
                      TrainConfig bad = small_config("brisk_static_grand_bad");
                      bad.methods = {"select:kind=grand,grand=middle"};
                      return bad;
                    }(), brisk::efficiency::make_methods),
                    Catch::Contains("unknown grand scope 'middle'"));
}

// Method conformance: each method does what its paper defines, checked
// against an answer computed apart from the method's code (by hand, or by a
// dense recomputation), and the invariants the design promises (optimizer
// state zero where a mask is zero after every step and every mask change).
#include <cmath>
#include <functional>
#include <set>

#include "core/fp8.h"
#include "core/mask.h"
#include "efficiency/method.h"
#include "efficiency/selection/example_stats.h"
#include "models/models.h"
#include "nn/functional.h"
#include "nn/layers.h"
#include "optim/optimizer.h"
#include "tests/train_helpers.h"

using namespace bt;
using brisk::train::Trainer;
namespace F = brisk::nn::functional;

namespace {


json last_metrics(const TrainConfig& c) { return read_jsonl(c.out + "/metrics.jsonl").back(); }

// Every masked parameter's same-shape optimizer state is exactly zero where its mask is.
int64_t state_nonzeros_at_pruned(Trainer& t) {
  int64_t bad = 0;
  for (auto& [n, p] : t.model().named_parameters()) {
    Tensor m = brisk::get_mask(p);
    if (!m.defined()) continue;
    auto it = t.optimizer().state().find(n);
    if (it == t.optimizer().state().end()) continue;
    for (auto& [k, st] : it->second)
      if (st.shape() == p.shape()) bad += st.numel() - brisk::count_zeros(st * (1.0 - m)) ;
  }
  return bad;
}

}  // namespace

// RigL (Evci et al. 2020) grows the inactive positions of largest |dense
// gradient|. The expected mask is recomputed here from a dense copy of the
// model (no masks, so no CSR path) on the same batch: drop the k active
// weights of smallest |w|, grow the k inactive, not-just-dropped positions of
// largest |g| (ties: lower index), k = round(alpha/2 (1 + cos(pi t / T)) · active).
TEST_CASE("conformance: RigL grows by the dense gradient, also on CSR-sparse layers", "[conformance][pruning]") {
  TrainConfig c = small_config("conf_rigl");
  c.optimizer = "sgd";
  c.momentum = 0;
  c.methods = {"prune:schedule=rigl,target=0.95,distribution=uniform,frequency=4,alpha=0.3"};
  Trainer t(c, brisk::efficiency::make_methods);
  REQUIRE(F::sparse_linear_threshold() <= 0.95);  // every layer is sparse enough for the CSR kernel
  Probe* pr = add_probe(t);
  std::map<std::string, std::vector<double>> expect;
  int64_t checked = 0;
  pr->after_backward = [&](Trainer& tr) {
    if (tr.clock() != 4) return;  // the first update: t = 4 of T = 12 (end 0.75 of 16)
    auto dense = brisk::models::make_model("mlp");
    auto src = tr.model().named_parameters();
    auto dst = dense->named_parameters();
    {
      brisk::NoGradGuard ng;
      for (size_t i = 0; i < src.size(); ++i) dst[i].second.detach().copy_(src[i].second.detach());
    }
    Tensor loss = F::cross_entropy(dense->forward(tr.batch.x), tr.batch.y);
    loss.backward();
    double frac = 0.3 / 2 * (1 + std::cos(M_PI * 4.0 / 12.0));
    for (size_t i = 0; i < src.size(); ++i) {
      const Tensor& p = src[i].second;
      if (p.dim() < 2) continue;
      auto w = p.detach().to_vector(), m = brisk::get_mask(p).to_vector(), g = dst[i].second.grad().to_vector();
      int64_t active = 0;
      for (double v : m) active += v != 0;
      int64_t k = std::llround(frac * double(active));
      std::vector<int64_t> on, off;
      for (int64_t j = 0; j < int64_t(m.size()); ++j) (m[size_t(j)] != 0 ? on : off).push_back(j);
      std::stable_sort(on.begin(), on.end(), [&](int64_t a, int64_t b) { return std::abs(w[size_t(a)]) < std::abs(w[size_t(b)]); });
      std::stable_sort(off.begin(), off.end(), [&](int64_t a, int64_t b) { return std::abs(g[size_t(a)]) > std::abs(g[size_t(b)]); });
      std::vector<double> nm = m;
      for (int64_t j = 0; j < k; ++j) nm[size_t(on[size_t(j)])] = 0;
      for (int64_t j = 0; j < k; ++j) nm[size_t(off[size_t(j)])] = 1;
      REQUIRE(k > 0);
      REQUIRE(std::abs(g[size_t(off[size_t(k - 1)])]) > 0);  // growth is decided by real gradient values
      expect[src[i].first] = nm;
    }
  };
  pr->after_step = [&](Trainer& tr) {
    if (tr.clock() != 4) return;
    for (auto& [n, p] : tr.model().named_parameters()) {
      if (!expect.count(n)) continue;
      INFO(n);
      CHECK(brisk::get_mask(p).to_vector() == expect.at(n));
      ++checked;
    }
  };
  t.fit();
  CHECK(checked == 3);
}

// Forgetting events (Toneva et al. 2019) on a scripted sequence of visits:
// an event is a correct -> incorrect change between consecutive visits; an
// example never classified correctly counts as most forgotten.
TEST_CASE("conformance: forgetting counts from a scripted sequence, never-learned examples rank first", "[conformance][selection]") {
  brisk::selection::ExampleStats st(3);
  // visit v: example i is correct when script[i][v] == 1
  const int script[3][5] = {{1, 0, 1, 0, 0}, {0, 0, 0, 0, 0}, {0, 1, 1, 1, 1}};
  for (int v = 0; v < 5; ++v) {
    std::vector<double> logits;
    for (int i = 0; i < 3; ++i)  // label 0; correct: class 0 wins, else class 1
      for (int c = 0; c < 2; ++c) logits.push_back(script[i][v] ? (c == 0 ? 2.0 : 0.0) : (c == 0 ? 0.0 : 2.0));
    st.update(from_vector({0, 1, 2}, {3}, DType::i64), zeros({3}), from_vector(logits, {3, 2}),
              zeros({3}, DType::i64), v);
  }
  CHECK(st.forgetting == std::vector<int32_t>{2, 0, 0});
  CHECK(st.ever_correct == std::vector<uint8_t>{1, 0, 1});

  // The method: scores are the counts, infinite for never-learned examples.
  TrainConfig c = small_config("conf_forgetting");
  c.epochs = 3;
  c.lr = 0.002;  // slow learning: some examples stay unlearned through the scoring epochs
  c.methods = {"select:kind=forgetting,keep=0.5,start=2"};
  Trainer(c, brisk::efficiency::make_methods).fit();
  TensorMap fin = final_tensors(c.out);
  auto score = fin.at("method/0/static/scores").to_vector();
  auto forg = fin.at("method/0/stats/forgetting").to_vector();
  auto ever = fin.at("method/0/stats/ever_correct").to_vector();
  auto seen = fin.at("method/0/stats/times_seen").to_vector();
  std::set<double> kept;
  for (double v : fin.at("method/0/static/kept").to_vector()) kept.insert(v);
  int64_t never = 0, infinite = 0;
  double min_kept = INFINITY, max_dropped = -1;
  for (size_t i = 0; i < score.size(); ++i) {
    // stats are final (3 visits for kept examples); the scores were fixed after 2 epochs:
    // an example never correct by the end was never correct then either
    if (ever[i] == 0) {
      CHECK(std::isinf(score[i]));
      ++never;
    } else if (!std::isinf(score[i])) {
      CHECK(score[i] <= forg[i]);
    }
    infinite += std::isinf(score[i]);
    (kept.count(double(i)) ? min_kept : max_dropped) =
        kept.count(double(i)) ? std::min(min_kept, score[i]) : std::max(max_dropped, score[i]);
    CHECK(seen[i] >= 2);
  }
  CHECK(never > 0);
  CHECK(min_kept >= max_dropped);  // never-learned (infinite) first, then by count
  if (infinite < int64_t(kept.size())) CHECK(std::isinf(max_dropped) == false);
  CHECK_THROWS_WITH(brisk::efficiency::make_method("select:kind=forgetting,start=1"),
                    Catch::Contains("needs start >= 2"));
}

// Selective backprop outside its [start, end) window scores nothing: the
// run's counted FLOPs over the first half equal a plain run's exactly (a
// scoring pass would add a forward pass per batch).
TEST_CASE("conformance: selective backprop does no scoring outside its window", "[conformance][selection]") {
  TrainConfig plain = small_config("conf_sb_plain");
  Trainer(plain, brisk::efficiency::make_methods).fit();
  TrainConfig sb = small_config("conf_sb_window");
  sb.methods = {"select:kind=selective-backprop,variant=rank,keep=0.5,start=0.5,end=1"};
  Trainer(sb, brisk::efficiency::make_methods).fit();
  auto a = read_jsonl(plain.out + "/metrics.jsonl"), b = read_jsonl(sb.out + "/metrics.jsonl");
  REQUIRE(a.size() == 2);
  REQUIRE(b.size() == 2);
  CHECK(b[0]["flops"].get<double>() == a[0]["flops"].get<double>());  // epoch 1: outside the window
  CHECK(b[0]["step"] == a[0]["step"]);
  CHECK(b[1]["flops"].get<double>() > a[0]["flops"].get<double>());
  CHECK(b[1]["step"].get<int64_t>() == 8 + 4);  // the second epoch trains half of its 8 batches
}

// 2:4 on ASP's recipe: dense training first (default start = half the run),
// then the N:M mask, kept to the end.
TEST_CASE("conformance: N:M prunes after dense training, not at initialization", "[conformance][pruning]") {
  TrainConfig c = small_config("conf_nm_default");
  c.methods = {"prune:structure=2:4"};
  Trainer t(c, brisk::efficiency::make_methods);
  std::vector<int64_t> masked_at;
  add_probe(t)->after_step = [&](Trainer& tr) {
    for (auto& [n, p] : tr.model().named_parameters())
      if (brisk::has_mask(p)) {
        masked_at.push_back(tr.clock());
        return;
      }
  };
  t.fit();
  REQUIRE(!masked_at.empty());
  CHECK(masked_at.front() == 8);  // clock 8 of 16
}

// Optimizer state is exactly zero where a mask is zero: after every step
// (Optimizer::step) even when the mask was set on a parameter with live
// state, and at once when a method changes a mask.
TEST_CASE("conformance: optimizer state is zero where a mask is, after steps and mask changes", "[conformance][pruning]") {
  for (std::string opt_name : {"sgd", "adamw"}) {
    INFO(opt_name);
    brisk::manual_seed(3);
    brisk::nn::Linear l(12, 6);
    brisk::optim::NamedParams ps{{"w", l.weight}, {"b", l.bias}};
    std::unique_ptr<brisk::optim::Optimizer> opt;
    if (opt_name == "sgd") opt = std::make_unique<brisk::optim::SGD>(ps, brisk::optim::SGDOptions{0.05, 0.9});
    else opt = std::make_unique<brisk::optim::AdamW>(ps, brisk::optim::AdamWOptions{0.01});
    auto step = [&] {
      Tensor loss = mean(pow(l.forward(randn({4, 12})), 2.0));
      opt->zero_grad();
      loss.backward();
      opt->step();
    };
    for (int i = 0; i < 3; ++i) step();  // dense: the state is nonzero everywhere
    Tensor m = from_vector(std::vector<double>(72, 1.0), {6, 12});
    std::vector<double> mv(72, 1.0);
    for (size_t i = 0; i < 72; i += 3) mv[i] = 0;
    brisk::set_mask(l.weight, from_vector(mv, {6, 12}));
    step();
    Tensor pruned = 1.0 - brisk::get_mask(l.weight);
    for (auto& [k, st] : opt->state().at("w"))
      if (st.shape() == l.weight.shape()) {
        INFO(k);
        CHECK(max(abs(st * pruned)).item() == 0.0);
      }
  }
  // In training: gradual pruning of a momentum run, checked after every
  // method's batch_start (where masks change) and after every step.
  TrainConfig c = small_config("conf_state_zero");
  c.optimizer = "sgd";
  c.momentum = 0.9;
  c.methods = {"prune:schedule=gradual,target=0.8,start=0.25,end=0.75,frequency=2"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* pr = add_probe(t);
  int64_t checks = 0, bad = 0;
  pr->batch_start = [&](Trainer& tr) { bad += state_nonzeros_at_pruned(tr), ++checks; };
  pr->after_step = [&](Trainer& tr) { bad += state_nonzeros_at_pruned(tr), ++checks; };
  t.fit();
  CHECK(checks == 32);
  CHECK(bad == 0);
  CHECK(last_metrics(c)["sparsity"].get<double>() == Approx(0.8).margin(0.01));
}

// EMA follows masks: the weights evaluated for a pruned model are the
// average masked, so zero wherever the mask is; EMA next to a method that
// changes shapes is refused up front.
TEST_CASE("conformance: EMA evaluates a sparse model sparse, and refuses shape surgery", "[conformance][compose]") {
  TrainConfig c = small_config("conf_ema_mask");
  c.methods = {"prune:target=0.7,schedule=gradual,end=0.5,frequency=2", "ema:decay=0.9"};
  Trainer t(c, brisk::efficiency::make_methods);
  int64_t evals = 0, dense_at_pruned = 0;
  add_probe(t)->eval_start = [&](Trainer& tr) {  // after ema swapped its average in
    ++evals;
    for (auto& [n, p] : tr.model().named_parameters()) {
      Tensor m = brisk::get_mask(p);
      if (m.defined()) dense_at_pruned += p.numel() - brisk::count_zeros(p.detach() * (1.0 - m));
    }
  };
  t.fit();
  CHECK(evals == 2);
  CHECK(dense_at_pruned == 0);
  for (const char* shape_changer : {"grow:kind=net2net", "prune:structure=channel,target=0.5"}) {
    TrainConfig bad = small_config("conf_ema_refused");
    bad.methods = {shape_changer, "ema"};
    CHECK_THROWS_WITH(Trainer(bad, brisk::efficiency::make_methods), Catch::Contains("'ema' cannot be combined"));
  }
}

// IMP rewinds the whole network state at the rewind point: BatchNorm's
// running statistics too (they are part of what was trained).
TEST_CASE("conformance: IMP rewinds BatchNorm buffers with the weights", "[conformance][pruning]") {
  TrainConfig c = small_config("conf_imp_bn");
  c.model = "resnet";
  c.epochs = 1;
  c.methods = {"prune:schedule=imp,rounds=2,target=0.5"};
  c.max_steps = 5;
  Trainer t(c, brisk::efficiency::make_methods);
  TensorMap at_start;
  int64_t compared = 0;
  add_probe(t)->batch_start = [&](Trainer& tr) {
    if (tr.clock() == 0)
      for (auto& [n, b] : tr.model().named_buffers()) at_start[n] = b.detach().clone();
    if (tr.clock() == 4)  // round 2 begins: IMP has just pruned and rewound to clock 0
      for (auto& [n, b] : tr.model().named_buffers()) {
        INFO(n);
        CHECK(bit_equal(b.detach(), at_start.at(n)));
        ++compared;
      }
  };
  t.fit();
  CHECK(compared > 0);
}

// Under fp16 loss scaling an overflowed forward loss skips the step (as the
// scaler skips inf gradients) instead of stopping the run; without loss
// scaling it stops with a clear error.
TEST_CASE("conformance: a non-finite loss under loss scaling skips the step", "[conformance][precision]") {
  auto run = [](const std::string& method) {
    TrainConfig c = small_config("conf_fp16_inf");
    c.methods = {method};
    auto t = std::make_unique<Trainer>(c, brisk::efficiency::make_methods);
    add_probe(*t)->after_loss = [](Trainer& tr) {
      if (tr.clock() == 3) tr.per_example_loss = tr.per_example_loss * INFINITY;  // an overflow
    };
    t->fit();
    return last_metrics(c);
  };
  json m = run("precision:dtype=fp16");
  CHECK(m["skipped_steps"] == 1);
  CHECK(m["loss_scale"].get<double>() == 32768.0);
  CHECK(std::isfinite(m["train_loss"].get<double>()));
  CHECK_THROWS_WITH(run("precision:dtype=bf16"), Catch::Contains("training stopped: loss is"));
}

// fp8 delayed scaling (per cast site, amax history), by hand: a site's first
// tensor uses its own amax; later ones the max over the last `history` amaxes
// seen before them.
TEST_CASE("conformance: fp8 delayed scaling follows the amax history per site", "[conformance][precision]") {
  brisk::Fp8SiteScaling s(2);
  auto E4 = brisk::Fp8Format::e4m3, E5 = brisk::Fp8Format::e5m2;
  auto amax_tensor = [](double a) { return from_vector({a, -a / 2}, {2}); };
  std::vector<std::pair<double, double>> site0, site1;  // (amax given, scale returned)
  for (double a0 : {2.0, 4.0, 1.0, 0.5}) {
    s.begin_step();
    site0.push_back({a0, s.next_scale(amax_tensor(a0), E4)});
    site1.push_back({a0 * 100, s.next_scale(amax_tensor(a0 * 100), E5)});
  }
  REQUIRE(s.sites() == 2);
  CHECK(site0[0].second == 448.0 / 2);  // first visit: its own amax
  CHECK(site0[1].second == 448.0 / 2);  // history {2}
  CHECK(site0[2].second == 448.0 / 4);  // history {2, 4}
  CHECK(site0[3].second == 448.0 / 4);  // history {4, 1} (length 2)
  CHECK(site1[3].second == 57344.0 / 400);
  s.begin_step();
  CHECK_THROWS_WITH(s.next_scale(amax_tensor(1), E5), Catch::Contains("changed order"));

  // In training: delayed is the fp8 default and resumes bit-exactly.
  TrainConfig c = small_config("conf_fp8_delayed");
  c.methods = {"precision:dtype=fp8"};
  check_resume_bit_exact(c, {5});
  TrainConfig cur = small_config("conf_fp8_current");
  cur.methods = {"precision:dtype=fp8,scaling=current"};
  Trainer(cur, brisk::efficiency::make_methods).fit();
  TensorMap a = final_tensors(c.out), b = final_tensors(cur.out);
  CHECK_FALSE(bit_equal(a.at("model/1.weight"), b.at("model/1.weight")));  // the scales differ
  CHECK_THROWS_WITH(brisk::efficiency::make_method("precision:dtype=bf16,scaling=delayed"),
                    Catch::Contains("does not apply"));
}

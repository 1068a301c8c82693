// Label smoothing, MixUp and CutMix as methods (efficiency/regularization):
// the smoothed loss against a hand computation from the logits; the mixed
// batch and loss against the loaded batch (re-read from an identical loader)
// and the definitions, with lambda and the partner of each example recovered
// from the images, not asked of the method; the Beta(alpha, alpha) sampler's
// moments; bit-exact resume.
#include <cmath>

#include "efficiency/regularization/mix.h"
#include "nn/functional.h"
#include "tests/train_helpers.h"

using namespace bt;
using brisk::train::Trainer;
namespace F = brisk::nn::functional;

namespace {
// The batch the loader gives at (epoch, batch index) of a run with config c.
brisk::data::Batch loaded_batch(const Trainer& t, const TrainConfig& c, int64_t epoch, int64_t index) {
  brisk::data::LoaderOptions lo;
  lo.batch_size = c.batch_size;
  lo.seed = c.seed;
  brisk::data::DataLoader dl(const_cast<Trainer&>(t).train_loader().dataset(), lo);
  dl.start_epoch(epoch);
  for (int64_t i = 0;; ++i) {
    auto b = dl.next();
    REQUIRE(b);
    if (i == index) return *b;
  }
}

// -log softmax(z)[k] for one row of logits, in double.
double nll(const std::vector<double>& z, int64_t k) {
  double m = *std::max_element(z.begin(), z.end()), s = 0;
  for (double v : z) s += std::exp(v - m);
  return -(z[size_t(k)] - m - std::log(s));
}
std::vector<double> row(const Tensor& logits, int64_t i) {
  Tensor r = logits.detach().select(0, i).to(DType::f64).contiguous();
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
}
}  // namespace

TEST_CASE("regularize: label smoothing's loss is (1 - eps) CE + eps * mean over classes of -log p", "[regularize][conformance]") {
  TrainConfig c = small_config("reg_ls");
  c.epochs = 1;
  c.methods = {"regularize:kind=label-smoothing,eps=0.2"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  int64_t checked = 0;
  p->after_loss = [&](Trainer& tr) {
    for (int64_t i = 0; i < 4; ++i) {
      auto z = row(tr.logits, i);
      int64_t y = int64_t(tr.batch.y.select(0, i).item());
      double uniform = 0;
      for (int64_t k = 0; k < 10; ++k) uniform += nll(z, k) / 10;
      double want = 0.8 * nll(z, y) + 0.2 * uniform;
      CHECK(tr.per_example_loss.select(0, i).item() == Approx(want).epsilon(1e-5));
      ++checked;
    }
  };
  t.fit();
  CHECK(checked == 32);
}

TEST_CASE("regularize: MixUp trains on lambda x + (1 - lambda) x[pi] with the mixed loss", "[regularize][conformance]") {
  TrainConfig c = small_config("reg_mixup");
  c.epochs = 1;
  c.methods = {"regularize:kind=mixup,alpha=0.4"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  int64_t checked = 0;
  p->after_loss = [&](Trainer& tr) {
    brisk::data::Batch orig = loaded_batch(tr, c, tr.batch.epoch, tr.batch.index);
    Tensor xm = tr.batch.x.reshape({64, -1}).to(DType::f64), xo = orig.x.reshape({64, -1}).to(DType::f64);
    // Recover lambda from one row and its partner: the partner j of row i is
    // the one for which x'_i - lambda x_i - (1 - lambda) x_j = 0 with a single
    // lambda; solve by least squares over pixels for each candidate j.
    // First pass: lambda from the rows that moved (a row paired with itself stays as it was).
    double lambda = -1;
    std::vector<int64_t> partner(64, -1);
    for (int64_t i = 0; i < 64; ++i) {
      Tensor a = xo.select(0, i), m = xm.select(0, i);
      if (max(abs(a - m)).item() < 1e-5) {  // lambda x + (1 - lambda) x, up to rounding
        partner[size_t(i)] = i;
        continue;
      }
      double best = 1e30, best_lam = 0;
      for (int64_t j = 0; j < 64; ++j) {
        if (j == i) continue;
        Tensor b = xo.select(0, j), d = a - b;  // m - b = lambda (a - b)
        double dd = sum(d * d).item();
        if (dd == 0) continue;
        double lam = sum((m - b) * d).item() / dd;
        double r = sum(pow(m - b - d * lam, 2.0)).item();
        if (r < best) best = r, best_lam = lam, partner[size_t(i)] = j;
      }
      INFO("row " << i);
      CHECK(best < 1e-6);  // exactly a two-image mix
      if (lambda < 0) lambda = best_lam;
      CHECK(best_lam == Approx(lambda).margin(1e-4));  // one lambda for the batch
    }
    if (lambda < 0) return;  // every row paired with itself (or lambda = 1)
    for (int64_t i = 0; i < 64; ++i) {
      auto z = row(tr.logits, i);
      double want = lambda * nll(z, int64_t(orig.y.select(0, i).item())) +
                    (1 - lambda) * nll(z, int64_t(orig.y.select(0, partner[size_t(i)]).item()));
      INFO("row " << i);
      CHECK(tr.per_example_loss.select(0, i).item() == Approx(want).epsilon(1e-4));
    }
    CHECK(lambda >= 0);
    CHECK(lambda <= 1);
    ++checked;
  };
  t.fit();
  CHECK(checked == 8);
  CHECK(read_jsonl(c.out + "/metrics.jsonl").back()["mixed_batches"] == 8);
}

TEST_CASE("regularize: CutMix pastes one box from the partner and weighs the loss by the box area", "[regularize][conformance]") {
  TrainConfig c = small_config("reg_cutmix");
  c.epochs = 1;
  c.methods = {"regularize:kind=cutmix,alpha=1"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  int64_t boxes = 0;
  p->after_loss = [&](Trainer& tr) {
    brisk::data::Batch orig = loaded_batch(tr, c, tr.batch.epoch, tr.batch.index);
    Tensor xm = tr.batch.x.to(DType::f64), xo = orig.x.to(DType::f64);  // [64, 1, 28, 28]
    // The pasted box: the bounding box of the pixels that changed, over the batch.
    Tensor changed = ne(xm, xo).to(DType::f64);
    Tensor per_pixel = sum(changed, {0, 1});  // [28, 28]
    int64_t r0 = 28, r1 = 0, c0 = 28, c1 = 0;
    for (int64_t r = 0; r < 28; ++r)
      for (int64_t q = 0; q < 28; ++q)
        if (per_pixel.select(0, r).select(0, q).item() > 0) {
          r0 = std::min(r0, r), r1 = std::max(r1, r + 1), c0 = std::min(c0, q), c1 = std::max(c1, q + 1);
        }
    if (r1 <= r0) return;  // an empty box (lambda = 1): nothing to check
    ++boxes;
    double lambda = 1.0 - double((r1 - r0) * (c1 - c0)) / 784.0;
    for (int64_t i = 0; i < 64; ++i) {
      // Outside the box: the example's own pixels; inside: one partner's.
      Tensor in_m = xm.select(0, i).narrow(1, r0, r1 - r0).narrow(2, c0, c1 - c0);
      int64_t partner = -1;
      for (int64_t j = 0; j < 64 && partner < 0; ++j)
        if (bit_equal(in_m, xo.select(0, j).narrow(1, r0, r1 - r0).narrow(2, c0, c1 - c0))) partner = j;
      INFO("row " << i);
      REQUIRE(partner >= 0);
      Tensor outside = xm.select(0, i).clone(), own = xo.select(0, i).clone();
      outside.narrow(1, r0, r1 - r0).narrow(2, c0, c1 - c0).zero_();
      own.narrow(1, r0, r1 - r0).narrow(2, c0, c1 - c0).zero_();
      CHECK(bit_equal(outside, own));
      auto z = row(tr.logits, i);
      double want = lambda * nll(z, int64_t(orig.y.select(0, i).item())) +
                    (1 - lambda) * nll(z, int64_t(orig.y.select(0, partner).item()));
      CHECK(tr.per_example_loss.select(0, i).item() == Approx(want).epsilon(1e-4));
    }
  };
  t.fit();
  CHECK(boxes >= 6);
}

TEST_CASE("regularize: lambda follows Beta(alpha, alpha), and prob mixes that share of batches", "[regularize][conformance]") {
  for (double alpha : {0.2, 1.0, 4.0}) {
    INFO("alpha " << alpha);
    const int n = 4000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      double l = brisk::efficiency::draw_mix(7, i, alpha, 1.0, 8, 28, 28, false).lambda;
      s += l;
      s2 += l * l;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    double want_var = 1.0 / (4.0 * (2 * alpha + 1));  // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    CHECK(mean == Approx(0.5).margin(0.02));
    CHECK(var == Approx(want_var).epsilon(0.08));
  }
  int mixed = 0;
  for (int i = 0; i < 2000; ++i) mixed += brisk::efficiency::draw_mix(3, i, 1.0, 0.3, 8, 28, 28, true).mixed;
  CHECK(mixed == Approx(600).margin(70));
  // Every draw's permutation is a permutation.
  auto d = brisk::efficiency::draw_mix(1, 5, 1.0, 1.0, 50, 28, 28, true);
  std::vector<int64_t> sorted = d.perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) CHECK(sorted[size_t(i)] == i);
}

TEST_CASE("regularize: resume is bit-exact and bad keys are refused", "[regularize][train]") {
  TrainConfig c = small_config("reg_resume");
  c.methods = {"regularize:kind=cutmix,alpha=1,prob=0.5"};
  check_resume_bit_exact(c, {5, 11});
  refused_spec("regularize:kind=dropout", "unknown kind 'dropout'");
  refused_spec("regularize:eps=1", "eps must be in [0, 1)");
  refused_spec("regularize:kind=mixup,alpha=0", "alpha must be in (0, 100]");
  refused_spec("regularize:kind=cutmix,prob=2", "prob must be in [0, 1]");
  refused_spec("regularize:kind=mixup,eps=0.1", "eps");
}

// The method's invariants, checked against answers worked out by hand:
//  1. select() keeps exactly the examples at or above factor x the batch mean;
//  2. in training, every optimizer step sees a full batch of selected
//     examples, so the examples trained (samples_seen) are the ones kept,
//     less the partial batch left in the buffer at the end (< batch size);
//  3. factor 0 keeps everything: the run trains on every example.
// Runs on a small generated dataset (argv[1]: a folder of IDX files).
#include <cmath>
#include <cstdio>

#include "loss_threshold.h"

static int failures = 0;
static void expect(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what);
  failures += !ok;
}

static brisk::train::TrainConfig config(const char* data_dir, const char* out) {
  brisk::train::TrainConfig c;
  c.model = "mlp";
  c.data_dir = data_dir;
  c.epochs = 1;
  c.batch_size = 32;
  c.threads = 1;
  c.progress = "off";
  c.telemetry = false;
  c.out = out;
  return c;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: test_loss_threshold DATA_DIR OUT_DIR\n");
    return 2;
  }
  using namespace brisk;
  {
    // Mean of {0.5, 2.0, 1.0, 4.5} is 2.0: factor 1 keeps 2.0 and 4.5; factor 0.5 also 1.0.
    example::LossThreshold m1(1.0), m05(0.5);
    Tensor losses = from_vector(std::vector<double>{0.5, 2.0, 1.0, 4.5}, {4});
    Tensor k1 = m1.decide(losses);
    Tensor k05 = m05.decide(losses);
    auto bits = [](const Tensor& t) {
      std::string s;
      for (double v : t.to(DType::f32).to_vector()) s += v != 0 ? '1' : '0';
      return s;
    };
    expect(bits(k1) == "0101" && m1.kept() == 2 && m1.seen() == 4, "factor 1 keeps the losses >= the mean (0101)");
    expect(bits(k05) == "0111", "factor 0.5 keeps the losses >= half the mean (0111)");
  }
  for (double factor : {1.0, 0.0}) {
    std::string out = std::string(argv[2]) + (factor == 0 ? "/all" : "/half");
    train::Trainer t(config(argv[1], out.c_str()));
    auto method = std::make_unique<example::LossThreshold>(factor);
    auto* m = method.get();
    t.add_callback(std::move(method));
    t.fit();
    int64_t trained = t.state().samples_seen, kept = m->kept(), B = 32;
    std::printf("factor %.1f: scored %lld, kept %lld, trained %lld\n", factor, (long long)m->seen(), (long long)kept,
                (long long)trained);
    expect(trained % B == 0 && trained <= kept && kept - trained < B,
           "every step trains a full batch of kept examples; fewer than a batch is left over");
    if (factor == 0) expect(kept == m->seen() && m->seen() == t.train_loader().dataset().size(),
                            "factor 0 keeps every example of the epoch");
    else expect(kept < m->seen() && kept > 0, "factor 1 keeps some, not all");
  }
  std::printf("%d failed\n", failures);
  return failures ? 1 : 0;
}

// Trains the mlp on Fashion-MNIST with the loss-threshold selection method of
// loss_threshold.h, added to brisk's Trainer as a callback.
//   example_loss_threshold [--factor 1.0] [--epochs 1] [--max-steps 0] [--data-dir DIR] [--out DIR]
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "loss_threshold.h"

int main(int argc, char** argv) {
  double factor = 1.0;
  brisk::train::TrainConfig cfg;
  cfg.model = "mlp";
  cfg.epochs = 1;
  cfg.batch_size = 128;
  cfg.lr = 0.05;
  cfg.progress = "off";
  cfg.out = "runs/loss_threshold";
  try {
    for (int i = 1; i < argc; i += 2) {
      std::string k = argv[i];
      BRISK_CHECK(i + 1 < argc, "flag ", k, " needs a value");
      if (k == "--factor") factor = std::stod(argv[i + 1]);
      else if (k.rfind("--", 0) == 0) cfg.set(k.substr(2), argv[i + 1]);  // any `brisk train` key
      else BRISK_FAIL("unknown argument '", k, "'");
    }
    cfg.validate();
    brisk::train::Trainer trainer(cfg);
    auto method = std::make_unique<example::LossThreshold>(factor);
    auto* m = method.get();
    trainer.add_callback(std::move(method));
    auto r = trainer.fit();
    std::printf("loss-threshold x%.2f: kept %lld of %lld scored examples (%.1f%%), test_acc %.4f in %.1f s\n", factor,
                (long long)m->kept(), (long long)m->seen(), 100.0 * double(m->kept()) / double(std::max<int64_t>(m->seen(), 1)),
                r.acc, trainer.state().wall_s);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

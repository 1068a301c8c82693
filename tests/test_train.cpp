// Trainer end to end on a small synthetic IDX dataset the test writes itself:
// event order, metrics and config files, checkpoints, bit-exact resume, NaN
// stops that keep the checkpoint, config files and method specs.
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "core/safetensors.h"
#include "efficiency/method.h"
#include "tests/helpers.h"
#include "tests/train_helpers.h"
#include "train/trainer.h"

using namespace bt;
using namespace brisk::train;
namespace fs = std::filesystem;
using json = nlohmann::json;

class Recorder : public Callback {
 public:
  std::vector<std::string>* log;
  explicit Recorder(std::vector<std::string>* l) : log(l) {}
  std::string name() const override { return "recorder"; }
  void on_fit_start(Trainer&) override { log->push_back("fit_start"); }
  void on_epoch_start(Trainer&) override { log->push_back("epoch_start"); }
  void on_batch_start(Trainer& t) override { log->push_back("batch_start"); CHECK(t.batch.indices.numel() == 64); }
  void on_after_forward(Trainer& t) override { log->push_back("after_forward"); CHECK(t.logits.shape() == Shape({64, 10})); }
  void on_after_loss(Trainer& t) override { log->push_back("after_loss"); CHECK(t.per_example_loss.shape() == Shape({64})); }
  void on_after_backward(Trainer&) override { log->push_back("after_backward"); }
  void on_before_step(Trainer&) override { log->push_back("before_step"); }
  void on_after_step(Trainer&) override { log->push_back("after_step"); }
  void on_batch_end(Trainer&) override { log->push_back("batch_end"); }
  void on_epoch_end(Trainer&) override { log->push_back("epoch_end"); }
  void on_eval_start(Trainer&) override { log->push_back("eval_start"); }
  void on_eval_end(Trainer&) override { log->push_back("eval_end"); }
  void on_fit_end(Trainer&) override { log->push_back("fit_end"); }
  void add_metrics(json& j) const override { j["recorder_events"] = log->size(); }
};

TEST_CASE("train: events fire in the documented order", "[train]") {
  TrainConfig c = small_config("brisk_events");
  c.epochs = 1;
  c.max_steps = 2;
  std::vector<std::string> log;
  Trainer t(c, brisk::efficiency::make_methods);
  t.add_callback(std::make_unique<Recorder>(&log));
  t.fit();
  std::vector<std::string> batch{"batch_start", "after_forward", "after_loss", "after_backward",
                                 "before_step", "after_step", "batch_end"};
  std::vector<std::string> want{"fit_start", "epoch_start"};
  for (int i = 0; i < 2; ++i) want.insert(want.end(), batch.begin(), batch.end());
  want.insert(want.end(), {"eval_start", "eval_end", "fit_end"});  // stopped mid-epoch: no epoch_end
  CHECK(log == want);
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  REQUIRE(m.size() == 1);
  CHECK(m[0]["recorder_events"] == 17);
  // a complete epoch ends with epoch_end before the evaluation
  TrainConfig c2 = small_config("brisk_events2");
  c2.epochs = 1;
  std::vector<std::string> log2;
  Trainer t2(c2, brisk::efficiency::make_methods);
  t2.add_callback(std::make_unique<Recorder>(&log2));
  t2.fit();
  REQUIRE(log2.size() >= 4);
  CHECK(std::vector<std::string>(log2.end() - 4, log2.end()) ==
        std::vector<std::string>({"epoch_end", "eval_start", "eval_end", "fit_end"}));
}

TEST_CASE("train: learns, and writes metrics.jsonl, config.json and a checkpoint", "[train]") {
  TrainConfig c = small_config("brisk_learns");
  c.epochs = 3;
  auto r = Trainer(c, brisk::efficiency::make_methods).fit();
  CHECK(r.acc > 0.9);  // the synthetic classes are easy
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  REQUIRE(m.size() == 3);
  for (const char* k : {"epoch", "step", "samples_seen", "wall_s", "train_loss", "test_loss", "test_acc"})
    CHECK(m[2].contains(k));
  CHECK(m[2]["step"] == 24);
  CHECK(m[2]["samples_seen"] == 24 * 64);
  CHECK(m[2]["epoch"] == 3.0);
  CHECK(m[2]["wall_s"].get<double>() > m[0]["wall_s"].get<double>());
  std::ifstream f(c.out + "/config.json");
  json cfg = json::parse(f);
  for (const char* k : {"brisk_version", "compiler", "cpu", "threads_used", "model", "lr", "seed"})
    CHECK(cfg.contains(k));
  CHECK(fs::exists(c.out + "/checkpoint.json"));
}

TEST_CASE("train: a resumed run is bit-identical to an uninterrupted one", "[train][determinism]") {
  for (std::string opt : {"sgd", "adamw"}) {
    INFO("optimizer " << opt);
    TrainConfig full = small_config("brisk_full_" + opt);
    full.optimizer = opt;
    full.lr = opt == "sgd" ? 0.05 : 0.002;
    full.augment = "crop+flip";
    full.methods = {"ema:decay=0.9"};
    check_resume_bit_exact(full, {5, 11});  // stops mid-epoch 1 and mid-epoch 2
    auto ma = read_jsonl(full.out + "/metrics.jsonl"), mb = read_jsonl(full.out + "_part/metrics.jsonl");
    CHECK(ma.back()["test_acc"] == mb.back()["test_acc"]);
    CHECK(ma.back()["samples_seen"] == mb.back()["samples_seen"]);
  }
}

// --steps: the run's length in steps, mid-epoch if need be; the schedule is
// fitted to it (a linear decay checked against its formula by hand) and so is
// every method's "fraction of training" (progress() reaches 1 at the end).
TEST_CASE("train: --steps ends the run mid-epoch with the schedule fitted to it", "[train]") {
  TrainConfig c = small_config("brisk_steps");
  c.schedule = "linear";
  c.optimizer = "sgd";
  int64_t nb = 0;
  {
    TrainConfig probe = c;
    probe.out += "_nb";
    nb = Trainer(probe).train_loader().num_batches();
  }
  REQUIRE(nb >= 4);
  c.steps = nb + nb / 2;  // one and a half epochs (c.epochs = 2 is overridden)
  c.epochs = 7;
  std::vector<double> lrs, progress;
  {
    Trainer t(c);
    Probe* p = add_probe(t);
    p->before_step = [&](Trainer& tr) {
      lrs.push_back(tr.optimizer().lr());
      progress.push_back(tr.progress());
    };
    CHECK(t.total_steps() == c.steps);
    CHECK(t.epochs() == 2);
    CHECK(t.full_steps() == c.steps);
    t.fit();
    CHECK(t.state().step == c.steps);
  }
  REQUIRE(int64_t(lrs.size()) == c.steps);
  for (int64_t i = 0; i < c.steps; ++i) {
    INFO("step " << i);
    CHECK(lrs[i] == Approx(c.lr * (1.0 - double(i) / double(c.steps))));  // linear decay to 0 at `steps`
    CHECK(progress[i] == Approx(double(i) / double(c.steps)));
  }
  auto m = read_jsonl(c.out + "/metrics.jsonl");
  REQUIRE(m.size() == 2);  // the end of epoch 1, then the stop mid-epoch 2
  CHECK(m.back()["step"].get<int64_t>() == c.steps);
  CHECK(m.back()["epoch"].get<double>() == Approx(1.5).epsilon(0.05));
  CHECK(json::parse(std::ifstream(c.out + "/config.json"))["steps"].get<int64_t>() == c.steps);
  // Stopped (--max-steps) and resumed across the epoch boundary: bit-identical.
  fs::remove_all(c.out);
  check_resume_bit_exact(c, {nb / 2, nb + 1});
  // Under InfoBatch (epochs 2 and 3 of 3 planned visit fewer batches) the run
  // still takes exactly `steps` steps and the schedule ends with it.
  TrainConfig ib = small_config("brisk_steps_ib");
  ib.schedule = "linear";
  ib.steps = 3 * nb;
  ib.methods = {"select:kind=infobatch,ratio=0.5"};
  std::vector<double> lr_ib;
  {
    Trainer t(ib, brisk::efficiency::make_methods);
    add_probe(t)->before_step = [&](Trainer& tr) { lr_ib.push_back(tr.optimizer().lr()); };
    t.fit();
    CHECK(t.state().epoch >= 3);  // shorter epochs: a fourth one began
  }
  REQUIRE(int64_t(lr_ib.size()) == ib.steps);
  for (int64_t i = 0; i < ib.steps; ++i) CHECK(lr_ib[i] == Approx(ib.lr * (1.0 - double(i) / double(ib.steps))));
  TrainConfig bad;
  CHECK_THROWS_WITH(bad.set("steps", "many"), Catch::Contains("'steps' must be an integer"));
  bad.steps = -3;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("steps must be in [0"));
}

TEST_CASE("train: a NaN loss stops with the step named and keeps the checkpoint", "[train]") {
  TrainConfig c = small_config("brisk_nan");
  c.epochs = 1;
  Trainer(c, brisk::efficiency::make_methods).fit();
  std::string before;
  {
    std::ifstream f(c.out + "/checkpoint.json");
    before.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  TrainConfig bad = c;
  bad.epochs = 3;
  bad.lr = 1e30;  // diverges at once
  CHECK_THROWS_WITH(Trainer(bad, brisk::efficiency::make_methods).fit(true), Catch::Contains("loss is") && Catch::Contains("at step") &&
                                                 Catch::Contains("untouched"));
  std::ifstream f(c.out + "/checkpoint.json");
  std::string after((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(before == after);
  CHECK_NOTHROW(final_tensors(c.out));
}

TEST_CASE("train: checkpoints are never overwritten by a fresh run, and corruption is reported", "[train]") {
  TrainConfig c = small_config("brisk_ckpt");
  c.epochs = 1;
  c.max_steps = 3;
  Trainer(c, brisk::efficiency::make_methods).fit();
  CHECK_THROWS_WITH(Trainer(c, brisk::efficiency::make_methods).fit(false), Catch::Contains("already holds a checkpoint") && Catch::Contains("--resume"));
  // truncate the tensors file
  std::ifstream jf(c.out + "/checkpoint.json");
  json j = json::parse(jf);
  std::string tpath = c.out + "/" + j["tensors_file"].get<std::string>();
  fs::resize_file(tpath, fs::file_size(tpath) / 2);
  CHECK_THROWS_WITH(Trainer(c, brisk::efficiency::make_methods).fit(true), Catch::Contains("truncated"));
  atomic_write(c.out + "/checkpoint.json", "{ not json");
  CHECK_THROWS_WITH(Trainer(c, brisk::efficiency::make_methods).fit(true), Catch::Contains("corrupt") && Catch::Contains("checkpoint.json"));
  TrainConfig none = small_config("brisk_nockpt");
  CHECK_THROWS_WITH(Trainer(none, brisk::efficiency::make_methods).fit(true), Catch::Contains("no checkpoint to resume"));
}

TEST_CASE("train: config keys, TOML files and method specs are validated", "[train]") {
  TrainConfig c;
  c.set("batch_size", "32");
  c.set("weight-decay", "0.1");
  CHECK(c.batch_size == 32);
  CHECK(c.weight_decay == 0.1);
  CHECK_THROWS_WITH(c.set("bogus", "1"), Catch::Contains("unknown config key 'bogus'"));
  CHECK_THROWS_WITH(c.set("epochs", "ten"), Catch::Contains("'epochs' must be an integer"));
  CHECK_THROWS_WITH(c.set("model", "vgg"), Catch::Contains("unknown model 'vgg'"));
  CHECK_THROWS_WITH(c.set("optimizer", "lion"), Catch::Contains("unknown optimizer 'lion'"));
  fs::path toml = fs::temp_directory_path() / "brisk_cfg.toml";
  std::ofstream(toml) << "model = \"resnet\"\nepochs = 3\nlr = 0.1\nnesterov = true\nmethod = [\"ema:decay=0.99\"]\n";
  TrainConfig t;
  t.load_toml(toml.string());
  CHECK(t.model == "resnet");
  CHECK(t.epochs == 3);
  CHECK(t.nesterov);
  CHECK(t.methods == std::vector<std::string>({"ema:decay=0.99"}));
  std::ofstream(toml) << "epochs = 3\nlearning_rate = 0.1\n";
  CHECK_THROWS_WITH(TrainConfig().load_toml(toml.string()), Catch::Contains("unknown config key 'learning_rate'"));
  std::ofstream(toml) << "epochs = [[\n";
  CHECK_THROWS_WITH(TrainConfig().load_toml(toml.string()), Catch::Contains("brisk_cfg.toml") && Catch::Contains("line"));
  // Devices and folders are refused by name, not read as an empty config.
  CHECK_THROWS_WITH(TrainConfig().load_toml("/dev/zero"), Catch::Contains("/dev/zero: not a regular file"));
  CHECK_THROWS_WITH(TrainConfig().load_toml(fs::temp_directory_path().string()), Catch::Contains("not a regular file"));
  CHECK_THROWS_WITH(TrainConfig().load_toml((fs::temp_directory_path() / "brisk_no_such.toml").string()),
                    Catch::Contains("brisk_no_such.toml: not found"));
  CHECK(TrainConfig::from_json(t.to_json()).to_json() == t.to_json());

  CHECK_THROWS_WITH(brisk::efficiency::make_method("distill:teacher=x"),
                    Catch::Contains("unknown method family 'distill'") && Catch::Contains("ema") &&
                        Catch::Contains("prune"));
  CHECK_THROWS_WITH(brisk::efficiency::make_method("ema:decy=0.9"), Catch::Contains("unknown key 'decy'"));
  CHECK_THROWS_WITH(brisk::efficiency::make_method("ema:decay=abc"), Catch::Contains("must be a number"));
  CHECK_THROWS_WITH(brisk::efficiency::make_method("ema:decay"), Catch::Contains("key=value"));
  CHECK(brisk::efficiency::make_method("ema:decay=0.5")->name() == "ema");
}

// Every shipped recipe parses, validates, and builds its methods in a
// composition the rules accept (a recipe that cannot start is a defect).
TEST_CASE("train: every recipe in recipes/ loads and its methods compose", "[train]") {
  fs::path dir = fs::path(BRISK_TEST_DATA_DIR).parent_path().parent_path() / "recipes";
  int64_t n = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".toml") continue;
    INFO(e.path().string());
    TrainConfig c;
    c.load_toml(e.path().string());
    c.validate();
    CHECK_NOTHROW(brisk::efficiency::make_methods(c.methods));
    ++n;
  }
  CHECK(n >= 16);
}

TEST_CASE("train: bad devices and missing data are clear errors", "[train]") {
  TrainConfig c = small_config("brisk_dev");
  c.device = "cuda";
  CHECK_THROWS_WITH(Trainer(c, brisk::efficiency::make_methods), Catch::Contains("--device cuda"));
  TrainConfig d = small_config("brisk_nodata");
  d.data_dir = "/nonexistent/fmnist";
  CHECK_THROWS_WITH(Trainer(d, brisk::efficiency::make_methods), Catch::Contains("/nonexistent/fmnist") && Catch::Contains("dataset-fashion-mnist"));
}

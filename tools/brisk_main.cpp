// The `brisk` command line. Subcommands so far:
//   brisk train  train a model (flags, or a TOML --config; see train/config.h)
//   brisk demo   train a small MLP on Fashion-MNIST with the raw tensor API
//   brisk info   build configuration and registered kernel backends
//   brisk speedup  time-to-accuracy of recipes vs a baseline over budgets and seeds
//   brisk profile  where a recipe's training time goes, per phase and per kernel
//   brisk generate  sample text from a trained language model's checkpoint
//   brisk report  one offline HTML page of runs' curves and what each method decided
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>

#include "brisk.h"
#include "data/idx.h"
#include "efficiency/method.h"
#include "efficiency/speedup/harness.h"
#include "core/op_keys.h"
#include "core/int8.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/int8_amx.h"
#include "report/report.h"
#include "train/generate.h"
#include "train/profile.h"
#include "train/trainer.h"

namespace F = brisk::nn::functional;
using namespace brisk;

namespace {

struct DemoOptions {
  std::string data_dir = data::kFashionMnistDir;
  int epochs = 2;
  int batch_size = 128;
  double lr = 0.1;
  int threads = 0;
  uint64_t seed = 0;
  int64_t limit = 0;  // 0 = full training set
};

// x [N, 1, 28, 28] u8 -> [N, 784] f32 in [0, 1]
Tensor to_features(const Tensor& images) {
  return images.reshape({images.size(0), -1}).to(DType::f32) / 255.0;
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  Tensor pred = argmax(logits, 1);
  return sum(eq(pred, labels)).item() / double(labels.size(0));
}

int run_demo(const DemoOptions& o) {
  if (o.threads > 0) set_num_threads(o.threads);
  manual_seed(o.seed);
  auto train = data::load_mnist_split(o.data_dir, true);
  auto test = data::load_mnist_split(o.data_dir, false);
  Tensor xtr = to_features(train.images), ytr = train.labels;
  if (o.limit > 0 && o.limit < xtr.size(0)) {
    xtr = xtr.narrow(0, 0, o.limit);
    ytr = ytr.narrow(0, 0, o.limit);
  }
  Tensor xte = to_features(test.images), yte = test.labels;
  int64_t n = xtr.size(0);
  std::printf("brisk demo: MLP 784-256-10, %lld training examples, %d epochs, batch %d, lr %g, %d threads\n",
              (long long)n, o.epochs, o.batch_size, o.lr, get_num_threads());

  // Kaiming-uniform-like init, as torch.nn.Linear does: U(-1/sqrt(in), 1/sqrt(in)).
  auto uniform = [](Shape s, double bound) {
    return ((rand(s) * 2.0 - 1.0) * bound).detach().requires_grad_(true);
  };
  Tensor w1 = uniform({256, 784}, 1 / std::sqrt(784.0)), b1 = uniform({256}, 1 / std::sqrt(784.0));
  Tensor w2 = uniform({10, 256}, 1 / std::sqrt(256.0)), b2 = uniform({10}, 1 / std::sqrt(256.0));
  std::vector<Tensor> params{w1, b1, w2, b2};
  auto forward = [&](const Tensor& x) { return F::linear(relu(F::linear(x, w1, b1)), w2, b2); };

  double train_s = 0;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor perm = randperm(n);
    double loss_sum = 0;
    int64_t batches = 0;
    for (int64_t start = 0; start + o.batch_size <= n; start += o.batch_size) {
      Tensor idx = perm.narrow(0, start, o.batch_size);
      Tensor loss = F::cross_entropy(forward(index_select(xtr, 0, idx)), index_select(ytr, 0, idx));
      double lv = loss.item();
      BRISK_CHECK(std::isfinite(lv), "demo: loss is ", lv, " at epoch ", epoch, " batch ", batches,
                  "; stopping");
      for (auto& p : params) p.set_grad(Tensor());
      loss.backward();
      {
        NoGradGuard ng;
        for (auto& p : params) p.add_(p.grad(), -o.lr);
      }
      loss_sum += lv;
      ++batches;
      if (isatty(STDOUT_FILENO) && batches % 50 == 0) {
        std::printf("\r  epoch %d  batch %lld/%lld  loss %.4f", epoch, (long long)batches,
                    (long long)(n / o.batch_size), loss_sum / double(batches));
        std::fflush(stdout);
      }
    }
    train_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    NoGradGuard ng;
    double acc = accuracy(forward(xte), yte);
    std::printf("%sepoch %d  train_loss %.4f  test_acc %.4f  time %.1fs\n", isatty(STDOUT_FILENO) ? "\r" : "",
                epoch, loss_sum / double(std::max<int64_t>(batches, 1)), acc, train_s);
    if (epoch == o.epochs)
      std::printf("done: test_acc %.4f  train_seconds %.1f\n", acc, train_s);
  }
  return 0;
}

int run_info() {
  std::printf("brisk %s\n", BRISK_VERSION);
  std::printf("threads: %d\n", get_num_threads());
  std::printf("cuda: %s, devices: %d\n", cuda_compiled() ? "compiled" : "not compiled", cuda_device_count());
  std::printf("data parallel: mpi %s, nccl %s (docs/distributed.md)\n", train::dist::mpi_built() ? "built" : "not built",
              train::dist::nccl_built() ? "built" : "not built");
  std::printf("method families:");
  for (auto& f : efficiency::method_families()) std::printf(" %s", f.c_str());
  std::printf("\n");
  std::printf("gemm backend: %s, conv backend: %s (BRISK_GEMM, BRISK_CONV)\n", gemm_backend().c_str(),
              conv_backend().c_str());
  // The CPU kernels picked by CPUID: the f32 GEMM's instruction set, and the
  // bf16 (autocast) and int8 GEMMs: AMX tiles where the CPU and OS allow.
  // (Both switches are read, and a bad environment value reported, either way.)
  std::string bf16 = kern::cpu::bf16_gemm_kernel(), int8 = kern::cpu::int8_gemm_kernel();
  std::printf("cpu kernels: sgemm %s (BRISK_SGEMM_ISA), bf16 gemm %s (BRISK_BF16_GEMM), int8 gemm %s (BRISK_INT8_GEMM)\n",
              kern::cpu::sgemm_isa().c_str(), kern::cpu::sgemm_bf16_supported() ? bf16.c_str() : "none (f32 products)",
              int8_vnni_supported() ? int8.c_str() : "ref (scalar)");
  // Every op key (core/op_keys.h) with its stem and, per device, the
  // backends registered for f32 (else for the first dtype that has any), best first.
  std::printf("%-30s %-14s %-28s %s\n", "op", "stem", "cpu (f32)", cuda_compiled() ? "cuda (f32)" : "");
  auto backends = [](const char* op, DeviceType dev) {
    std::string out;
    for (DType t : {DType::f32, DType::i64, DType::f64}) {
      auto bs = kernel_backends(op, dev, t);
      if (bs.empty()) continue;
      for (auto& b : bs) out += (out.empty() ? "" : " ") + b;
      if (t != DType::f32) out += " (" + std::string(dtype_name(t)) + ")";
      break;
    }
    return out.empty() ? std::string("-") : out;
  };
  for (const OpKeyInfo& k : op_keys()) {
    std::printf("%-30s %-14s %-28s", k.key, k.stem, backends(k.key, DeviceType::cpu).c_str());
    if (cuda_compiled()) std::printf(" %s", backends(k.key, DeviceType::cuda).c_str());
    std::printf("\n");
  }
  return 0;
}

// Flags of `brisk train`, kept as text: only the ones given override the
// config file (or the resumed run's config).
struct TrainFlags {
  std::map<std::string, std::string> values;
  std::vector<std::string> methods;
  std::string config, resume;
  bool distributed = false;
};

// The settings a resumed run continues with: those its checkpoint was made
// with (checkpoint.json's "config"), so that flags tried in a run that failed
// before its next checkpoint (say, a learning rate that diverged) do not
// stick; config.json where no checkpoint exists yet.
train::TrainConfig resumed_config(const std::string& dir, const std::string& flag = "--resume") {
  std::string file = dir + "/checkpoint.json";
  bool from_checkpoint = std::filesystem::exists(file);
  if (!from_checkpoint) file = dir + "/config.json";
  std::ifstream in(file);
  BRISK_CHECK(in.good(), flag, " ", dir, ": no config.json there (is it a brisk run folder?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    BRISK_FAIL(flag, " ", file, " is corrupt: ", e.what());
  }
  if (from_checkpoint) {
    BRISK_CHECK(j.is_object() && j.contains("config"), flag, " ", file, ": no 'config' field");
    j = j["config"];
  }
  BRISK_CHECK(j.is_object(), flag, " ", file, ": the run's config is not a JSON object");
  nlohmann::json keep;
  for (auto& k : train::TrainConfig::keys())
    if (j.contains(k)) keep[k] = j[k];
  try {
    return train::TrainConfig::from_json(keep);
  } catch (const Error& e) {
    BRISK_FAIL(flag, " ", file, ": ", e.what());
  } catch (const nlohmann::json::exception& e) {
    BRISK_FAIL(flag, " ", file, ": the run's config has a value of the wrong type: ", e.what());
  }
}

// With --json -, stdout carries the JSON alone: what the run itself prints
// (its evaluation's line) goes to stderr while the guard lives.
struct StdoutToStderr {
  int saved = -1;
  explicit StdoutToStderr(bool on) {
    if (!on) return;
    std::fflush(stdout);
    saved = dup(STDOUT_FILENO);
    if (saved >= 0) dup2(STDERR_FILENO, STDOUT_FILENO);
  }
  ~StdoutToStderr() {
    if (saved < 0) return;
    std::fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
  }
};

// `brisk profile`: the recipe with its --set overrides, profiled; the report
// as text, or as JSON to a file or (json "-") alone on stdout.
int run_profile_command(const std::string& config, const std::vector<std::string>& sets,
                        const train::ProfileOptions& po, const std::string& json) {
  train::TrainConfig cfg;
  if (!config.empty()) cfg.load_toml(config);
  for (auto& kv : sets) {
    size_t eq = kv.find('=');
    BRISK_CHECK(eq != std::string::npos && eq > 0, "profile: --set expects key=value, got '", kv, "'");
    cfg.set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  cfg.validate();
  if (!json.empty() && json != "-") {
    // Refused before the run, not after it: a long profile is not lost to a typo in the path.
    std::filesystem::path out(json), dir = out.parent_path().empty() ? "." : out.parent_path();
    BRISK_CHECK(std::filesystem::is_directory(dir) && access(dir.c_str(), W_OK) == 0, "profile: cannot write --json ",
                json, ": ", dir.string(), " is not a writable folder");
    BRISK_CHECK(!std::filesystem::exists(out) || (!std::filesystem::is_directory(out) && access(out.c_str(), W_OK) == 0),
                "profile: cannot write --json ", json, ": it is a folder or not writable");
  }
  nlohmann::json rep;
  {
    StdoutToStderr redirect(json == "-");
    rep = train::run_profile(cfg, po, efficiency::make_methods);
  }
  if (json == "-") {
    std::printf("%s\n", rep.dump(2).c_str());
    return 0;
  }
  std::printf("%s", train::format_profile(rep).c_str());
  if (!json.empty()) {
    std::ofstream f(json);
    BRISK_CHECK(f.good(), "profile: cannot write ", json);
    f << rep.dump(2) << "\n";
    f.close();
    BRISK_CHECK(!f.fail(), "profile: writing ", json, " failed (disk full, or not a regular file?)");
  }
  return 0;
}

int run_train(CLI::App& sub, const TrainFlags& f) {
  train::TrainConfig cfg;
  if (!f.resume.empty()) {
    cfg = resumed_config(f.resume);
    cfg.out = f.resume;
  }
  if (!f.config.empty()) cfg.load_toml(f.config);
  for (auto& [k, v] : f.values)
    if (sub.count("--" + k)) cfg.set(k, v);
  if (!f.methods.empty()) {
    cfg.methods.clear();
    for (auto& m : f.methods) cfg.set("method", m);
  }
  // Under mpirun every rank runs this; the process group decides who shards what.
  train::dist::set_default_group(train::dist::init_from_environment(f.distributed));
  return train::run_training(cfg, !f.resume.empty(), efficiency::make_methods);
}

}  // namespace

// Prints the error and returns the exit code. In a data-parallel job the
// other ranks may be waiting in a collective for this one: the whole job is
// ended (MPI_Abort), so that no rank hangs; the rank is named in the message.
static int fail(const std::string& what) {
  auto pg = train::dist::default_group();
  if (pg->size() == 1) {
    std::fprintf(stderr, "brisk: error: %s\n", what.c_str());
    return 1;
  }
  std::fprintf(stderr, "brisk: error (rank %d of %d): %s\n", pg->rank(), pg->size(), what.c_str());
  std::fflush(stderr);
  pg->abort(1);
  return 1;  // not reached
}

int main(int argc, char** argv) {
  CLI::App app{"brisk: deep-learning training with efficiency built in"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("brisk ") + BRISK_VERSION);
  DemoOptions demo;
  auto* d = app.add_subcommand("demo", "train a small MLP on Fashion-MNIST with the raw tensor API");
  d->add_option("--data-dir", demo.data_dir, "folder of IDX files")->capture_default_str();
  d->add_option("--epochs", demo.epochs, "epochs")->check(CLI::PositiveNumber)->capture_default_str();
  d->add_option("--batch-size", demo.batch_size, "batch size")->check(CLI::PositiveNumber)->capture_default_str();
  d->add_option("--lr", demo.lr, "SGD learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  d->add_option("--threads", demo.threads, "threads (default: all cores)")->check(CLI::NonNegativeNumber);
  d->add_option("--seed", demo.seed, "random seed")->capture_default_str();
  d->add_option("--limit", demo.limit, "use only the first N training examples")->check(CLI::NonNegativeNumber);
  auto* info = app.add_subcommand("info", "build configuration and kernel backends");
  TrainFlags tf;
  auto* tr = app.add_subcommand("train", "train a model on a dataset");
  const std::vector<std::pair<std::string, std::string>> train_opts = {
      {"model", "mlp|cnn|resnet|resnet-deep|gpt-tiny|gpt-small"},
      {"data", "fashion-mnist | text:kjv | text:PATH (UTF-8 text, byte tokens)"}, {"data-dir", "folder of IDX files"},
      {"epochs", "epochs (the schedule's budget)"}, {"batch-size", "batch size"}, {"lr", "peak learning rate"},
      {"optimizer", "sgd|adamw|lars|lamb"}, {"schedule", "constant|cosine|onecycle|linear|step"},
      {"momentum", "SGD momentum"}, {"nesterov", "true|false"}, {"weight-decay", "weight decay"},
      {"decay", "all|matrices: adamw decays only weights of >= 2 dims (not biases, norms)"},
      {"warmup-epochs", "linear warmup length in epochs"}, {"label-smoothing", "cross-entropy label smoothing"},
      {"augment", "none|flip|crop|crop+flip"}, {"clip-grad", "max gradient norm (0: off)"}, {"seed", "random seed"},
      {"trust-coefficient", "LARS trust coefficient eta"}, {"threads", "threads (0: all cores)"}, {"device", "cpu|cuda"}, {"out", "run folder"},
      {"max-steps", "stop after this many steps (the schedule still spans --epochs)"},
      {"steps", "train for this many steps instead of --epochs; the schedule and methods fit to it (0: epochs)"},
      {"eval-every", "steps between evaluations (0: each epoch)"}, {"progress", "auto|on|off"},
      {"block-size", "gpt: context length in tokens (0: the size's default)"},
      {"n-layer", "gpt: transformer blocks (0: default)"}, {"n-head", "gpt: attention heads (0: default)"},
      {"n-embd", "gpt: embedding width (0: default)"}, {"dropout", "gpt: dropout probability (default 0)"},
      {"telemetry", "true|false: record what each method decides in telemetry.jsonl (brisk report draws it)"},
      {"telemetry-every", "optimizer steps between training-loss records (default 20)"},
      {"comm-overlap", "true|false: data parallel: average gradients during the backward pass (default true)"},
      {"bucket-mb", "data parallel: megabytes of gradients per all-reduce (default 1)"}};
  for (auto& [k, help] : train_opts) tr->add_option("--" + k, tf.values[k], help);
  tr->add_option("--method", tf.methods, "efficiency method FAMILY:key=value,... (repeatable)");
  tr->add_option("--config", tf.config, "TOML file with the same keys as the flags")->check(CLI::ExistingFile);
  tr->add_option("--resume", tf.resume, "continue the run in this folder from its checkpoint");
  tr->add_flag("--distributed", tf.distributed,
               "data-parallel over the ranks of an MPI launch (mpirun -np N brisk train ...; detected without "
               "this flag, which makes a run outside mpirun an error)");
  speedup::SpeedupOptions so;
  std::string budgets = "1,2,4,8", candidate_budgets, targets = "0.91", target_loss, lr_grid = "0.5,1,2";
  auto* sp = app.add_subcommand("speedup", "time-to-accuracy of candidate recipes vs a baseline (budgets x seeds)");
  sp->add_option("--baseline", so.baseline, "baseline recipe (TOML)")->required();
  sp->add_option("--candidate", so.candidates, "candidate recipe (TOML, repeatable)");
  sp->add_option("--budgets", budgets, "comma-separated budgets (epochs, or steps with --budget-unit steps)")
      ->capture_default_str();
  auto* cand_budgets = sp->add_option("--candidate-budgets", candidate_budgets,
                 "the candidates' budgets, one per --budgets entry (default: the same): a method cheaper per step "
                 "may spend its savings on more steps");
  sp->add_option("--budget-unit", so.unit, "epochs|steps: what a budget counts (steps: fractions of an epoch)")
      ->capture_default_str();
  sp->add_option("--seeds", so.seeds, "seeds per (recipe, budget)")->capture_default_str();
  auto* tacc = sp->add_option("--target-acc", targets, "comma-separated target test accuracies")->capture_default_str();
  sp->add_option("--target-loss", target_loss,
                 "comma-separated target test losses (lower is better; a language model's validation loss): "
                 "the report compares time to loss instead of accuracy")
      ->excludes(tacc);
  sp->add_option("--lr-grid", lr_grid,
                 "baseline lr multipliers tried at every budget (the best is the baseline; 1 = no tuning)")
      ->capture_default_str();
  sp->add_option("--match-final", so.match_delta,
                 "report each candidate's time to the baseline's final quality this much worse (accuracy: "
                 "0.002 = 0.2 points; loss: nats)")
      ->capture_default_str();
  sp->add_option("--out", so.out, "report folder (finished runs in it are not redone)")->capture_default_str();
  sp->add_option("--set", so.overrides, "key=value applied to every recipe (repeatable), e.g. threads=2");
  sp->add_flag("--no-plot", [&](int64_t) { so.plot = false; }, "skip pareto.png");
  sp->add_option("--search", so.search.recipe,
                 "first search this recipe's settings (--grid) on seeds seed+1000..; its best joins the candidates");
  sp->add_option("--grid", so.search.grid, "KEY=v1,v2,... searched with --search (KEY: a recipe key, or "
                 "FAMILY.KEY of a --method), repeatable");
  sp->add_option("--search-budget", so.search.budget, "epochs per search run (default: the largest budget)");
  sp->add_option("--search-seeds", so.search.seeds, "search seeds per setting")->capture_default_str();
  std::string prof_config, prof_json;
  std::vector<std::string> prof_sets;
  train::ProfileOptions po;
  auto* pf = app.add_subcommand("profile", "time per phase and per kernel of a recipe, and what bounds it");
  pf->add_option("--config", prof_config, "TOML recipe (default: the cnn baseline's defaults)")->check(CLI::ExistingFile);
  pf->add_option("--steps", po.steps, "steps to profile (after a warm-up)")->capture_default_str();
  pf->add_option("--warmup", po.warmup, "steps before the clocks start")->capture_default_str();
  pf->add_option("--set", prof_sets, "key=value overriding the recipe (repeatable), e.g. model=mlp");
  pf->add_option("--json", prof_json, "also write the report as JSON to this file ('-': JSON on stdout only)");
  train::GenerateOptions go;
  std::string gen_run;
  auto* gn = app.add_subcommand("generate", "sample text from a trained language model (gpt-*) run folder");
  gn->add_option("--checkpoint", gen_run, "run folder with a checkpoint")->required();
  gn->add_option("--prompt", go.prompt, "text to continue")->capture_default_str();
  gn->add_option("--tokens", go.tokens, "tokens to generate")->capture_default_str();
  gn->add_option("--temperature", go.temperature, "softmax temperature (0: greedy)")->capture_default_str();
  gn->add_option("--top-k", go.top_k, "sample among the k most likely tokens (0: all)")->capture_default_str();
  gn->add_option("--seed", go.seed, "sampling seed")->capture_default_str();
  gn->add_flag("--no-kv-cache", [&](int64_t) { go.kv_cache = false; },
               "recompute the whole context for every token (slower; for comparison)");
  report::ReportOptions ro;
  auto* rp = app.add_subcommand("report", "one self-contained HTML page (offline) of run folders and speedup reports: "
                                           "curves, time per phase, what each method decided");
  rp->add_option("runs", ro.inputs, "run folders, `brisk speedup` folders, or folders of runs")->required();
  rp->add_option("--out", ro.out, "HTML file to write")->capture_default_str();
  rp->add_option("--title", ro.title, "page title")->capture_default_str();
  rp->add_option("--chartjs", ro.chartjs, "Chart.js file to inline (default: $BRISK_CHARTJS, else Debian's libjs-chart.js)");
  // CLI11 answers a mistyped command ("brisk trian") with "A subcommand is
  // required", which hides what was wrong: name it and list the commands.
  if (argc > 1 && argv[1][0] != '-') {
    std::string known;
    bool found = false;
    for (const CLI::App* s : app.get_subcommands([](CLI::App*) { return true; })) {
      found = found || s->get_name() == argv[1];
      known += (known.empty() ? "" : ", ") + s->get_name();
    }
    if (!found) {
      std::fprintf(stderr, "brisk: error: unknown command '%s' (known: %s; brisk --help describes them)\n", argv[1],
                   known.c_str());
      return 1;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    // Only training is data-parallel: another command under mpirun -np N would
    // run N times over and write the same files at once.
    for (const char* k : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
      const char* v = std::getenv(k);
      BRISK_CHECK(tr->parsed() || info->parsed() || !v || std::atoi(v) <= 1, "only `brisk train` runs data-parallel; "
                  "run this command without mpirun");
    }
    if (tr->parsed()) return run_train(*tr, tf);
    if (d->parsed()) return run_demo(demo);
    if (info->parsed()) return run_info();
    if (gn->parsed()) {
      train::TrainConfig cfg = resumed_config(gen_run, "--checkpoint");
      std::shared_ptr<models::GPT> model;
      // A run that grew its model (depth stacking, MSG) saved the grown shapes
      // and gates: the Trainer replays the growth to rebuild them.
      bool grew = std::any_of(cfg.methods.begin(), cfg.methods.end(),
                              [](const std::string& m) { return m.rfind("grow", 0) == 0; });
      if (grew) {
        BRISK_CHECK(models::is_gpt(cfg.model), "generate: the run in ", gen_run, " trained model ", cfg.model,
                    ", not a language model (gpt-tiny, gpt-small)");
        train::Trainer t(cfg, efficiency::make_methods);
        t.restore_model(gen_run);
        model = std::dynamic_pointer_cast<models::GPT>(t.model_ptr());
      } else {
        model = train::load_gpt_checkpoint(gen_run, cfg);
      }
      std::fwrite(go.prompt.data(), 1, go.prompt.size(), stdout);
      std::fflush(stdout);
      train::generate(*model, go, [](int64_t t) {
        std::fputc(int(t), stdout);
        std::fflush(stdout);
      });
      std::fputc('\n', stdout);
      return 0;
    }
    if (rp->parsed()) {
      report::ReportSummary rs = report::write_report(ro);
      for (auto& w : rs.warnings) std::fprintf(stderr, "brisk report: warning: %s\n", w.c_str());
      std::printf("brisk report: %d run%s, %d speedup report%s -> %s\n", rs.runs, rs.runs == 1 ? "" : "s", rs.speedups,
                  rs.speedups == 1 ? "" : "s", ro.out.c_str());
      return 0;
    }
    if (pf->parsed()) return run_profile_command(prof_config, prof_sets, po, prof_json);
    if (sp->parsed()) {
      auto split = [](const std::string& s, const char* what) {
        std::vector<std::string> out;
        std::stringstream ss(s);
        std::string item;
        while (std::getline(ss, item, ',')) out.push_back(item);
        BRISK_CHECK(!out.empty(), "speedup: ", what, " is empty");
        return out;
      };
      // Each comma-separated item must parse completely: parse(item, &used).
      auto numbers = [&](const std::string& s, const char* what, const char* noun, auto parse) {
        std::vector<decltype(parse(s, nullptr))> out;
        for (auto& item : split(s, what)) {
          try {
            size_t used = 0;
            out.push_back(parse(item, &used));
            BRISK_CHECK(used == item.size(), "");
          } catch (const std::exception&) {
            BRISK_FAIL("speedup: ", what, ": '", item, "' is not ", noun);
          }
        }
        return out;
      };
      so.budgets = numbers(budgets, "--budgets", "an integer",
                           [](const std::string& v, size_t* u) { return int64_t(std::stoll(v, u)); });
      if (cand_budgets->count() > 0)  // given, even empty: parsed (and refused when empty)
        so.candidate_budgets = numbers(candidate_budgets, "--candidate-budgets", "an integer",
                                       [](const std::string& v, size_t* u) { return int64_t(std::stoll(v, u)); });
      if (!target_loss.empty()) so.metric = "loss";
      so.targets = numbers(target_loss.empty() ? targets : target_loss,
                           target_loss.empty() ? "--target-acc" : "--target-loss", "a number",
                           [](const std::string& v, size_t* u) { return std::stod(v, u); });
      so.lr_grid = numbers(lr_grid, "--lr-grid", "a number",
                           [](const std::string& v, size_t* u) { return std::stod(v, u); });
      BRISK_CHECK(so.search.recipe.empty() == so.search.grid.empty(),
                  "speedup: --search RECIPE and --grid KEY=v1,v2 go together (got only ",
                  so.search.recipe.empty() ? "--grid" : "--search", ")");
      if (so.search.budget == 0) so.search.budget = *std::max_element(so.budgets.begin(), so.budgets.end());
      for (int i = 0; i < argc; ++i) so.command += (i ? " " : "") + std::string(argv[i]);
      speedup::run_speedup(so);
      std::printf("brisk speedup: report in %s/report.md\n", so.out.c_str());
      return 0;
    }
  } catch (const brisk::Error& e) {
    return fail(e.what());
  } catch (const std::filesystem::filesystem_error& e) {  // e.g. --out names a regular file
    return fail(std::string("file system: ") + e.what());
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("malformed JSON value: ") + e.what());
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unknown exception");
  }
  return 0;
}

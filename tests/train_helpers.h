// Shared by the trainer tests: a small synthetic IDX dataset (written once per
// process) and a fast config on it.
#pragma once
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/safetensors.h"
#include "tests/helpers.h"
#include "efficiency/method.h"
#include "train/trainer.h"

namespace bt {
using brisk::train::TrainConfig;
namespace fs = std::filesystem;
using json = nlohmann::json;

// 28x28 images: class k is a bright 6x6 square at a class-specific spot, plus noise.
inline void write_idx_gz(const std::string& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b{0, 0, 8, uint8_t(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, b.data(), unsigned(b.size()));
  gzclose(f);
}

inline std::string synthetic_dir() {
  static std::string dir = [] {
    // Per process: ctest runs test cases in parallel processes.
    fs::path d = fs::temp_directory_path() / ("brisk_synthetic_mnist_" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::mt19937 rng(1);
    for (auto [prefix, n] : {std::pair<const char*, uint32_t>{"train", 512}, {"t10k", 128}}) {
      std::vector<uint8_t> img(size_t(n) * 784), lab(n);
      for (uint32_t i = 0; i < n; ++i) {
        uint8_t k = uint8_t(i % 10);
        lab[i] = k;
        for (int p = 0; p < 784; ++p) img[size_t(i) * 784 + size_t(p)] = uint8_t(rng() % 60);
        int r0 = 2 + 8 * (k / 3 % 3), c0 = 2 + 8 * (k % 3) + (k == 9 ? 4 : 0);
        for (int r = r0; r < r0 + 6; ++r)
          for (int c = c0; c < c0 + 6; ++c) img[size_t(i) * 784 + size_t(r * 28 + c)] = 250;
      }
      write_idx_gz((d / (std::string(prefix) + "-images-idx3-ubyte.gz")).string(), {n, 28, 28}, img);
      write_idx_gz((d / (std::string(prefix) + "-labels-idx1-ubyte.gz")).string(), {n}, lab);
    }
    return d.string();
  }();
  return dir;
}

inline TrainConfig small_config(const std::string& out) {
  TrainConfig c;
  c.model = "mlp";
  c.data_dir = synthetic_dir();
  c.epochs = 2;
  c.batch_size = 64;
  c.lr = 0.05;
  c.threads = 0;  // the pool's default (BRISK_NUM_THREADS, else all cores): the sanitizer shards set 1
  c.progress = "off";
  c.out = (fs::temp_directory_path() / (out + "_" + std::to_string(::getpid()))).string();
  fs::remove_all(c.out);
  return c;
}

inline std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream f(path);
  std::vector<json> out;
  std::string line;
  while (std::getline(f, line)) out.push_back(json::parse(line));
  return out;
}

inline TensorMap final_tensors(const std::string& dir) {
  std::ifstream f(dir + "/checkpoint.json");
  json j = json::parse(f);
  return load_safetensors(dir + "/" + j["tensors_file"].get<std::string>());
}


// A user callback (acts after every method at each event) with hooks as lambdas.
struct Probe : brisk::train::Callback {
  std::function<void(brisk::train::Trainer&)> batch_start, after_loss, after_backward, before_step, after_step,
      epoch_end, eval_start;
  std::string name() const override { return "probe"; }
  void on_batch_start(brisk::train::Trainer& t) override { if (batch_start) batch_start(t); }
  void on_after_loss(brisk::train::Trainer& t) override { if (after_loss) after_loss(t); }
  void on_after_backward(brisk::train::Trainer& t) override { if (after_backward) after_backward(t); }
  void on_before_step(brisk::train::Trainer& t) override { if (before_step) before_step(t); }
  void on_after_step(brisk::train::Trainer& t) override { if (after_step) after_step(t); }
  void on_epoch_end(brisk::train::Trainer& t) override { if (epoch_end) epoch_end(t); }
  void on_eval_start(brisk::train::Trainer& t) override { if (eval_start) eval_start(t); }
};

inline Probe* add_probe(brisk::train::Trainer& t) {
  auto* p = new Probe;
  t.add_callback(std::unique_ptr<brisk::train::Callback>(p));
  return p;
}

// A method spec that must be refused with a message containing `msg`.
inline void refused_spec(const char* spec, const char* msg) {
  INFO(spec);
  CHECK_THROWS_WITH(brisk::efficiency::make_method(spec), Catch::Contains(msg));
}

// Runs `full` to the end, then the same config in a second folder stopped at
// each of `stops` (by --max-steps) and resumed, and checks that every final
// tensor (model, optimizer, method state) is bit-identical.
inline void check_resume_bit_exact(const TrainConfig& full, const std::vector<int64_t>& stops, bool run_full = true) {
  if (run_full) brisk::train::Trainer(full, brisk::efficiency::make_methods).fit();
  TrainConfig part = full;
  part.out = full.out + "_part";
  fs::remove_all(part.out);
  bool resume = false;
  for (int64_t s : stops) {
    part.max_steps = s;
    brisk::train::Trainer(part, brisk::efficiency::make_methods).fit(resume);
    resume = true;
  }
  part.max_steps = 0;
  brisk::train::Trainer(part, brisk::efficiency::make_methods).fit(true);
  TensorMap a = final_tensors(full.out), b = final_tensors(part.out);
  REQUIRE(a.size() == b.size());
  for (auto& [k, v] : a) {
    INFO(k);
    REQUIRE(b.count(k));
    CHECK(bit_equal(v, b.at(k)));
  }
}

}  // namespace bt

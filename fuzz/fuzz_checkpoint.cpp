// Checkpoint loader (train/checkpoint.cpp). A real 3-step run on a tiny
// synthetic dataset is made once; each input replaces either its
// checkpoint.json (first byte even) or its tensors file (odd), and a fresh
// Trainer tries to resume from it.
#include <random>

#include "core/rng.h"
#include "fuzz/fuzz_common.h"
#include "efficiency/method.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace {

void write_idx(const fs::path& p, std::vector<uint32_t> dims, const std::vector<uint8_t>& body) {
  std::ofstream f(p, std::ios::binary);
  f.put(0).put(0).put(8).put(char(dims.size()));
  for (uint32_t d : dims) f.put(char(d >> 24)).put(char(d >> 16)).put(char(d >> 8)).put(char(d));
  f.write(reinterpret_cast<const char*>(body.data()), long(body.size()));
}

brisk::train::TrainConfig base_config() {
  static brisk::train::TrainConfig cfg = [] {
    fs::path d = brisk_fuzz::scratch() / "data";
    fs::create_directories(d);
    std::mt19937 rng(1);
    for (auto [split, n] : {std::pair<const char*, uint32_t>{"train", 64}, {"t10k", 16}}) {
      std::vector<uint8_t> img(size_t(n) * 784), lab(n);
      for (auto& v : img) v = uint8_t(rng());
      for (uint32_t i = 0; i < n; ++i) lab[i] = uint8_t(i % 10);
      write_idx(d / (std::string(split) + "-images-idx3-ubyte"), {n, 28, 28}, img);
      write_idx(d / (std::string(split) + "-labels-idx1-ubyte"), {n}, lab);
    }
    brisk::train::TrainConfig c;
    c.model = "mlp";
    c.data_dir = d.string();
    c.batch_size = 16;
    c.epochs = 2;
    c.max_steps = 3;
    c.threads = 1;
    c.progress = "off";
    c.out = (brisk_fuzz::scratch() / "base").string();
    fs::remove_all(c.out);
    brisk::train::Trainer(c, brisk::efficiency::make_methods).fit();
    return c;
  }();
  return cfg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  brisk::train::TrainConfig cfg = base_config();
  fs::path run = brisk_fuzz::scratch() / "run";
  fs::remove_all(run);
  fs::copy(cfg.out, run);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(run / "checkpoint.json"));
  std::string target = (data[0] % 2 == 0) ? "checkpoint.json" : j["tensors_file"].get<std::string>();
  std::ofstream(run / target, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data + 1), long(size - 1));
  cfg.out = run.string();
  try {
    brisk::train::Trainer t(cfg, brisk::efficiency::make_methods);
    t.load_checkpoint(cfg.out);
  } catch (const brisk::Error&) {
  }
  return 0;
}

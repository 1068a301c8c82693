// TrainConfig: every setting of a training run. Flags, TOML files and
// config.json all go through set(key, value), so they share one validation
// path and one set of names (dashes or underscores both accepted).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace brisk::train {

struct TrainConfig {
  std::string model = "cnn";
  std::string data = "fashion-mnist";  // or text:kjv, text:PATH (language models)
  std::string data_dir;  // empty: the dataset's default folder
  int64_t epochs = 10;
  int64_t batch_size = 128;
  double lr = 0.05;
  std::string optimizer = "sgd";  // sgd | adamw | lars | lamb (optim/layerwise.h)
  double trust_coefficient = 0.001;  // LARS eta
  std::string schedule = "cosine";  // constant | cosine | onecycle | linear | step
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  std::string decay = "all";  // all | matrices: adamw decays only params of >= 2 dims (GPT-2's rule)
  double warmup_epochs = 0.0;
  double label_smoothing = 0.0;
  std::string augment = "none";  // none | flip | crop | crop+flip
  double clip_grad = 0.0;        // 0: off
  uint64_t seed = 0;
  int64_t threads = 0;           // 0: all cores
  std::string device = "cpu";
  std::string out = "runs/latest";
  int64_t max_steps = 0;         // 0: no limit (stops early; the schedule still spans the whole run)
  // The run's length in steps (loaded batches) instead of epochs: the
  // schedule, its warmup and every method's "fraction of training" are fitted
  // to it, and training ends there, mid-epoch if need be (Composer's
  // max_duration in batches). 0: epochs x the epoch's batches.
  int64_t steps = 0;
  int64_t eval_every = 0;        // steps between evaluations; 0: once per epoch
  std::vector<std::string> methods;  // "family:key=value,..."
  std::string progress = "auto";  // auto | on | off
  // Language models (gpt-*): 0 (dropout -1) keeps the model size's default.
  int64_t block_size = 0, n_layer = 0, n_head = 0, n_embd = 0;
  double dropout = -1;
  // Method telemetry (train/telemetry.h): telemetry.jsonl in the run folder;
  // the training-loss trace is kept every telemetry_every optimizer steps.
  bool telemetry = true;
  int64_t telemetry_every = 20;
  // Data parallel (train/grad_reducer.h): gradients averaged in buckets of
  // bucket_mb megabytes, started during the backward pass when comm_overlap
  // (else one blocking average after it).
  bool comm_overlap = true;
  double bucket_mb = 1.0;

  // Sets one key from its text form; throws brisk::Error naming the key on an
  // unknown key or a bad value.
  void set(const std::string& key, const std::string& value);
  void validate() const;
  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
  // Applies a TOML file's keys (same names as the flags).
  void load_toml(const std::string& path);
  static const std::vector<std::string>& keys();
};

}  // namespace brisk::train

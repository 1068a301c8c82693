// Text generation from a trained language model (`brisk generate`).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "models/gpt.h"
#include "train/config.h"

namespace brisk::train {

struct GenerateOptions {
  std::string prompt = "\n";
  int64_t tokens = 300;       // new tokens to sample
  double temperature = 0.8;   // 0: greedy (argmax)
  int64_t top_k = 40;         // sample among the k most likely (0: all)
  uint64_t seed = 0;
  bool kv_cache = true;       // false: recompute the whole context per token (O(T^2); for comparison)
  void validate(int64_t vocab) const;
};

// Samples opt.tokens tokens after the prompt, calling emit(token) for each as
// soon as it exists. With the KV cache each token runs the model on one
// position against the cached keys and values (O(T) work); when the context
// fills block_size, it keeps the last half and re-reads it (positions are
// learned, so the cache cannot simply slide). Deterministic for a seed.
void generate(models::GPT& model, const GenerateOptions& opt, const std::function<void(int64_t)>& emit);

// The model of a run folder's last checkpoint (checkpoint.json + its tensors),
// built from the config it was trained with. Throws naming the folder when it
// holds no checkpoint, a damaged one, or a model that is not a language model.
std::shared_ptr<models::GPT> load_gpt_checkpoint(const std::string& run_dir, const TrainConfig& cfg);

}  // namespace brisk::train

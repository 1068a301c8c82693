// Sampling loop with a KV cache (see train/generate.h).
#include "train/generate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/rng.h"
#include "models/models.h"
#include "train/trainer.h"

namespace brisk::train {

namespace fs = std::filesystem;

void GenerateOptions::validate(int64_t vocab) const {
  BRISK_CHECK(!prompt.empty(), "generate: --prompt must not be empty");
  BRISK_CHECK(tokens >= 1 && tokens <= 1'000'000, "generate: --tokens must be in [1, 1000000], got ", tokens);
  BRISK_CHECK(std::isfinite(temperature) && temperature >= 0 && temperature <= 100,
              "generate: --temperature must be in [0, 100] (0: greedy), got ", temperature);
  BRISK_CHECK(top_k >= 0 && top_k <= vocab, "generate: --top-k must be in [0, ", vocab, "] (0: all), got ", top_k);
}

namespace {
// Picks the next token from logits [V] (f32, on the cpu).
int64_t sample(const Tensor& logits, const GenerateOptions& o, Generator& g, uint64_t step) {
  Tensor l = logits.to(DType::f64).contiguous();
  const double* p = l.data_ptr<double>();
  int64_t V = l.numel();
  std::vector<int64_t> ids(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) ids[size_t(i)] = i;
  // Highest first, ties to the lower id: the same pick on every machine.
  std::stable_sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  if (o.temperature == 0) return ids[0];
  int64_t k = o.top_k > 0 ? std::min(o.top_k, V) : V;
  std::vector<double> w(static_cast<size_t>(k));
  double total = 0;
  for (int64_t i = 0; i < k; ++i) total += w[size_t(i)] = std::exp((p[ids[size_t(i)]] - p[ids[0]]) / o.temperature);
  auto words = g.block(step);
  double u = (double(words[0]) * 4294967296.0 + double(words[1])) / 18446744073709551616.0 * total;
  for (int64_t i = 0; i < k; ++i) {
    u -= w[size_t(i)];
    if (u < 0) return ids[size_t(i)];
  }
  return ids[size_t(k - 1)];
}

Tensor ids_tensor(const std::vector<int64_t>& ids, size_t from) {
  std::vector<double> v(ids.begin() + std::ptrdiff_t(from), ids.end());
  return from_vector(v, {1, int64_t(v.size())}, DType::i64);
}
}  // namespace

void generate(models::GPT& model, const GenerateOptions& opt, const std::function<void(int64_t)>& emit) {
  const int64_t V = model.config.vocab_size, T = model.config.block_size;
  opt.validate(V);
  NoGradGuard ng;
  bool was_training = model.is_training();
  model.eval();
  std::vector<int64_t> ctx;
  for (unsigned char c : opt.prompt) {
    BRISK_CHECK(int64_t(c) < V, "generate: prompt byte ", int(c), " is outside the model's vocabulary of ", V);
    ctx.push_back(c);
  }
  Generator g(opt.seed);
  models::KVCache cache;
  size_t cached = 0;  // ctx[..cached) is in the cache, starting at ctx index `base`
  size_t base = 0;
  for (int64_t step = 0; step < opt.tokens; ++step) {
    Tensor logits;  // [1, t, V]
    if (opt.kv_cache) {
      if (int64_t(ctx.size() - base) > T) {  // full: keep the last half of the context and re-read it
        base = ctx.size() - size_t(std::max<int64_t>(1, T / 2));
        cache = models::KVCache();
        cached = base;
      }
      logits = model.forward_cached(ids_tensor(ctx, cached), cache);
      cached = ctx.size();
    } else {
      base = ctx.size() > size_t(T) ? ctx.size() - size_t(T) : 0;
      logits = model.forward(ids_tensor(ctx, base));
    }
    Tensor last = logits.narrow(1, logits.size(1) - 1, 1).reshape({V});
    int64_t next = sample(last, opt, g, uint64_t(step));
    ctx.push_back(next);
    emit(next);
  }
  model.train(was_training);
}

std::shared_ptr<models::GPT> load_gpt_checkpoint(const std::string& dir, const TrainConfig& cfg) {
  BRISK_CHECK(models::is_gpt(cfg.model), "generate: the run in ", dir, " trained model ", cfg.model,
              ", not a language model (gpt-tiny, gpt-small)");
  fs::path cj = fs::path(dir) / "checkpoint.json";
  BRISK_CHECK(fs::exists(cj), "generate: ", dir, " holds no checkpoint.json (a run writes one after its first "
              "evaluation)");
  nlohmann::json j;
  {
    std::ifstream in(cj);
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      BRISK_FAIL("generate: ", cj.string(), " is corrupt: ", e.what());
    }
  }
  BRISK_CHECK(j.is_object() && j.contains("tensors_file") && j["tensors_file"].is_string(), "generate: ",
              cj.string(), " names no tensors_file");
  std::string tname = j["tensors_file"].get<std::string>();
  BRISK_CHECK(tname.find('/') == std::string::npos && tname.rfind("checkpoint-step", 0) == 0, "generate: ",
              cj.string(), ": tensors_file '", tname, "' is not a checkpoint file name");
  TensorMap all = load_safetensors((fs::path(dir) / tname).string());
  auto model = std::make_shared<models::GPT>(models::gpt_config(cfg.model, gpt_options(cfg)));
  TensorMap sd;
  for (auto& [k, v] : all)
    if (k.rfind("model/", 0) == 0) sd[k.substr(6)] = v;
  try {
    model->load_state_dict(sd);
  } catch (const Error& e) {
    BRISK_FAIL("generate: the checkpoint in ", dir, " does not fit model ", cfg.model, ": ", e.what());
  }
  return model;
}

}  // namespace brisk::train

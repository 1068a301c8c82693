// TrainConfig parsing and validation.
#include "train/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <toml++/toml.h>

#include "core/error.h"
#include "core/thread_pool.h"

namespace brisk::train {

namespace {

std::string norm_key(std::string k) {
  std::replace(k.begin(), k.end(), '_', '-');
  return k;
}

int64_t to_int(const std::string& key, const std::string& v) {
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  BRISK_FAIL("config: '", key, "' must be an integer, got '", v, "'");
}

double to_double(const std::string& key, const std::string& v) {
  try {
    size_t used = 0;
    double x = std::stod(v, &used);
    if (used == v.size() && std::isfinite(x)) return x;
  } catch (const std::exception&) {
  }
  BRISK_FAIL("config: '", key, "' must be a number, got '", v, "'");
}

bool to_bool(const std::string& key, const std::string& v) {
  if (v == "true" || v == "1" || v == "on") return true;
  if (v == "false" || v == "0" || v == "off") return false;
  BRISK_FAIL("config: '", key, "' must be true or false, got '", v, "'");
}

void one_of(const std::string& key, const std::string& v, std::initializer_list<const char*> ok) {
  std::string known;
  for (const char* o : ok) {
    if (v == o) return;
    known += (known.empty() ? "" : ", ") + std::string(o);
  }
  BRISK_FAIL("unknown ", key, " '", v, "' (known: ", known, ")");
}

}  // namespace

const std::vector<std::string>& TrainConfig::keys() {
  static const std::vector<std::string> k{
      "model", "data", "data-dir", "epochs", "batch-size", "lr", "optimizer", "schedule", "momentum",
      "nesterov", "weight-decay", "warmup-epochs", "label-smoothing", "augment", "clip-grad", "seed",
      "trust-coefficient", "threads", "device", "out", "max-steps", "steps", "eval-every", "method", "progress",
      "block-size", "n-layer", "n-head", "n-embd", "dropout", "decay", "telemetry", "telemetry-every",
      "comm-overlap", "bucket-mb"};
  return k;
}

void TrainConfig::set(const std::string& key_in, const std::string& v) {
  std::string key = norm_key(key_in);
  if (key == "model") { one_of("model", v, {"mlp", "cnn", "resnet", "resnet-deep", "gpt-tiny", "gpt-small"}); model = v; }
  else if (key == "data") {
    BRISK_CHECK(v == "fashion-mnist" || (v.rfind("text:", 0) == 0 && v.size() > 5), "unknown dataset '", v,
                "' (known: fashion-mnist, text:kjv, text:PATH for a UTF-8 text file)");
    data = v;
  }
  else if (key == "decay") { one_of("decay", v, {"all", "matrices"}); decay = v; }
  else if (key == "block-size") block_size = to_int(key, v);
  else if (key == "n-layer") n_layer = to_int(key, v);
  else if (key == "n-head") n_head = to_int(key, v);
  else if (key == "n-embd") n_embd = to_int(key, v);
  else if (key == "dropout") dropout = to_double(key, v);
  else if (key == "data-dir") data_dir = v;
  else if (key == "epochs") epochs = to_int(key, v);
  else if (key == "batch-size") batch_size = to_int(key, v);
  else if (key == "lr") lr = to_double(key, v);
  else if (key == "optimizer") { one_of("optimizer", v, {"sgd", "adamw", "lars", "lamb"}); optimizer = v; }
  else if (key == "trust-coefficient") trust_coefficient = to_double(key, v);
  else if (key == "schedule") { one_of("schedule", v, {"constant", "cosine", "onecycle", "linear", "step"}); schedule = v; }
  else if (key == "momentum") momentum = to_double(key, v);
  else if (key == "nesterov") nesterov = to_bool(key, v);
  else if (key == "weight-decay") weight_decay = to_double(key, v);
  else if (key == "warmup-epochs") warmup_epochs = to_double(key, v);
  else if (key == "label-smoothing") label_smoothing = to_double(key, v);
  else if (key == "augment") { one_of("augmentation", v, {"none", "flip", "crop", "crop+flip"}); augment = v; }
  else if (key == "clip-grad") clip_grad = to_double(key, v);
  else if (key == "seed") {
    int64_t x = to_int(key, v);
    BRISK_CHECK(x >= 0, "config: 'seed' must be >= 0, got ", x);
    seed = uint64_t(x);
  }
  else if (key == "threads") threads = to_int(key, v);
  else if (key == "device") device = v;
  else if (key == "out") out = v;
  else if (key == "max-steps") max_steps = to_int(key, v);
  else if (key == "steps") steps = to_int(key, v);
  else if (key == "eval-every") eval_every = to_int(key, v);
  else if (key == "method") methods.push_back(v);
  else if (key == "telemetry") telemetry = to_bool(key, v);
  else if (key == "telemetry-every") telemetry_every = to_int(key, v);
  else if (key == "comm-overlap") comm_overlap = to_bool(key, v);
  else if (key == "bucket-mb") bucket_mb = to_double(key, v);
  else if (key == "progress") { one_of("progress", v, {"auto", "on", "off"}); progress = v; }
  else {
    std::string known;
    for (auto& k : keys()) known += (known.empty() ? "" : ", ") + k;
    BRISK_FAIL("unknown config key '", key_in, "' (known: ", known, ")");
  }
}

// Upper bounds keep step counts (epochs x batches) and buffer sizes far from
// 64-bit overflow; they are far above any run this machine class can do.
constexpr int64_t kMaxEpochs = 1'000'000, kMaxBatch = int64_t(1) << 20;

void TrainConfig::validate() const {
  BRISK_CHECK(epochs >= 1 && epochs <= kMaxEpochs, "config: epochs must be in [1, ", kMaxEpochs, "], got ", epochs);
  BRISK_CHECK(batch_size >= 1 && batch_size <= kMaxBatch, "config: batch-size must be in [1, ", kMaxBatch, "], got ",
              batch_size);
  BRISK_CHECK(lr > 0, "config: lr must be > 0, got ", lr);
  BRISK_CHECK(momentum >= 0 && momentum < 1, "config: momentum must be in [0, 1), got ", momentum);
  BRISK_CHECK(weight_decay >= 0, "config: weight-decay must be >= 0, got ", weight_decay);
  BRISK_CHECK(warmup_epochs >= 0 && warmup_epochs <= double(epochs), "config: warmup-epochs must be in [0, epochs]");
  BRISK_CHECK(label_smoothing >= 0 && label_smoothing < 1, "config: label-smoothing must be in [0, 1)");
  BRISK_CHECK(clip_grad >= 0, "config: clip-grad must be >= 0");
  BRISK_CHECK(trust_coefficient > 0 && trust_coefficient <= 1, "config: trust-coefficient (LARS eta) must be in (0, 1], got ",
              trust_coefficient);
  BRISK_CHECK(threads >= 0 && threads <= max_num_threads(), "config: threads must be in [0, ", max_num_threads(),
              "] (0: all cores; at most 4x the cores), got ", threads);
  BRISK_CHECK(max_steps >= 0 && eval_every >= 0, "config: max-steps and eval-every must be >= 0");
  BRISK_CHECK(steps >= 0 && steps <= kMaxEpochs * int64_t(1'000'000), "config: steps must be in [0, 1e12] (0: epochs), got ",
              steps);
  BRISK_CHECK(!out.empty(), "config: out must not be empty");
  BRISK_CHECK(telemetry_every >= 1 && telemetry_every <= 1'000'000'000,
              "config: telemetry-every must be in [1, 1e9] steps, got ", telemetry_every);
  BRISK_CHECK(bucket_mb >= 0.001 && bucket_mb <= 4096, "config: bucket-mb must be in [0.001, 4096] megabytes, got ",
              bucket_mb);
  BRISK_CHECK(block_size >= 0 && n_layer >= 0 && n_head >= 0 && n_embd >= 0,
              "config: block-size, n-layer, n-head and n-embd must be >= 0 (0: the model's default)");
  BRISK_CHECK(dropout == -1 || (dropout >= 0 && dropout < 1), "config: dropout must be in [0, 1), got ", dropout);
  BRISK_CHECK(decay == "all" || optimizer == "adamw", "config: decay = ", decay, " is for the adamw optimizer (got ",
              optimizer, ")");
}

nlohmann::json TrainConfig::to_json() const {
  return {{"model", model}, {"data", data}, {"data-dir", data_dir}, {"epochs", epochs},
          {"batch-size", batch_size}, {"lr", lr}, {"optimizer", optimizer}, {"schedule", schedule},
          {"momentum", momentum}, {"nesterov", nesterov}, {"weight-decay", weight_decay},
          {"warmup-epochs", warmup_epochs}, {"label-smoothing", label_smoothing}, {"augment", augment},
          {"clip-grad", clip_grad}, {"seed", seed}, {"trust-coefficient", trust_coefficient}, {"threads", threads}, {"device", device}, {"out", out},
          {"max-steps", max_steps}, {"steps", steps}, {"eval-every", eval_every}, {"method", methods}, {"progress", progress},
          {"block-size", block_size}, {"n-layer", n_layer}, {"n-head", n_head}, {"n-embd", n_embd}, {"dropout", dropout},
          {"decay", decay}, {"telemetry", telemetry}, {"telemetry-every", telemetry_every},
          {"comm-overlap", comm_overlap}, {"bucket-mb", bucket_mb}};
}

static std::string scalar_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_float()) {
    std::ostringstream os;
    os.precision(17);
    os << v.get<double>();
    return os.str();
  }
  BRISK_FAIL("config: unsupported value ", v.dump());
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  for (auto& [k, v] : j.items()) {
    if (norm_key(k) == "method") {
      c.methods.clear();
      for (auto& m : v) c.methods.push_back(m.get<std::string>());
    } else {
      c.set(k, scalar_text(v));
    }
  }
  return c;
}

void TrainConfig::load_toml(const std::string& path) {
  // A device or a folder would read as an empty file (toml++ sizes the read by
  // the file's length): every key left at its default, silently.
  std::error_code ec;
  BRISK_CHECK(std::filesystem::exists(path, ec), "config file ", path, ": not found");
  BRISK_CHECK(std::filesystem::is_regular_file(path, ec), "config file ", path,
              ": not a regular file (give a .toml file; recipes/ holds examples)");
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << e.description() << " at line " << e.source().begin.line << ", column " << e.source().begin.column;
    BRISK_FAIL("config file ", path, ": ", os.str());
  }
  for (auto& [k, node] : tbl) {
    std::string key(k.str());
    try {
      if (norm_key(key) == "method") {
        if (auto* arr = node.as_array()) {
          for (auto& m : *arr) {
            auto s = m.value<std::string>();
            BRISK_CHECK(s.has_value(), "'method' entries must be strings");
            methods.push_back(*s);
          }
        } else if (auto s = node.value<std::string>()) {
          methods.push_back(*s);
        } else {
          BRISK_FAIL("'method' must be a string or an array of strings");
        }
        continue;
      }
      if (auto s = node.value_exact<std::string>()) set(key, *s);
      else if (auto b = node.value_exact<bool>()) set(key, *b ? "true" : "false");
      else if (auto i = node.value_exact<int64_t>()) set(key, std::to_string(*i));
      else if (auto d = node.value_exact<double>()) {
        std::ostringstream os;
        os.precision(17);
        os << *d;
        set(key, os.str());
      } else BRISK_FAIL("'", key, "' must be a string, number or boolean");
    } catch (const Error& e) {
      BRISK_FAIL("config file ", path, ": ", e.what());
    }
  }
}

}  // namespace brisk::train

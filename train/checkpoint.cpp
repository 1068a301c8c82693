// Checkpoints: DIR/checkpoint-step<N>.safetensors (model, optimizer and method
// tensors) and DIR/checkpoint.json (trainer, optimizer, schedule, RNG and
// method state, and the tensors file's name and size). The tensors file is
// written first under a new name, then the JSON is atomically replaced, then
// older tensor files are removed: a crash at any point leaves a complete,
// consistent checkpoint behind.
#include <filesystem>
#include <fstream>

#include "train/trainer.h"

namespace brisk::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

static constexpr const char* kFormat = "brisk-checkpoint-1";

void Trainer::save_checkpoint() {
  fs::path dir(cfg_.out);
  fs::create_directories(dir);
  TensorMap tensors;
  for (auto& [k, v] : model_->state_dict()) tensors["model/" + k] = v;
  for (auto& [k, v] : optimizer_->state_tensors()) tensors[k] = v;
  if (epoch_order.defined() && state_.batch_in_epoch > 0) tensors["trainer/epoch_order"] = epoch_order;
  if (buffer_.y.defined() && buffer_.y.numel() > 0) {  // selected examples not trained yet
    tensors["trainer/buffer_x"] = buffer_.x;
    tensors["trainer/buffer_y"] = buffer_.y;
    tensors["trainer/buffer_indices"] = buffer_.indices;
  }
  json methods = json::array();
  for (size_t i = 0; i < callbacks_.size(); ++i) {
    for (auto& [k, v] : callbacks_[i]->state_tensors()) tensors["method/" + std::to_string(i) + "/" + k] = v;
    methods.push_back({{"name", callbacks_[i]->name()}, {"state", callbacks_[i]->state_json()}});
  }
  std::string tname = "checkpoint-step" + std::to_string(state_.step) + ".safetensors";
  save_safetensors((dir / tname).string(), tensors, {{"format", kFormat}});
  Generator& g = default_generator();
  json j = {{"format", kFormat},
            {"tensors_file", tname},
            {"tensors_bytes", fs::file_size(dir / tname)},
            {"epoch", state_.epoch},
            {"batch_in_epoch", state_.batch_in_epoch},
            {"step", state_.step},
            {"samples_seen", state_.samples_seen},
            {"wall_s", state_.wall_s},
            {"flops", state_.flops},
            {"score_s", score_s_},
            {"loss_sum", state_.loss_sum},
            {"loss_count", state_.loss_count},
            {"rng", {{"seed", g.seed()}, {"offset", g.offset()}}},
            {"optimizer", optimizer_->hyper_json()},
            {"schedule", {{"kind", schedule_->options().kind}, {"total_steps", schedule_->options().total_steps}}},
            {"methods", methods},
            {"last_eval", {{"test_loss", last_eval_.loss}, {"test_acc", last_eval_.acc}}},
            {"config", cfg_.to_json()}};
  atomic_write((dir / "checkpoint.json").string(), j.dump(2) + "\n");
  for (auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-step", 0) == 0 && n != tname) fs::remove(e.path());
  }
}

void Trainer::load_checkpoint(const std::string& dir_s) {
  fs::path dir(dir_s);
  fs::path jpath = dir / "checkpoint.json";
  BRISK_CHECK(fs::exists(jpath), "no checkpoint to resume in ", dir_s, " (expected ", jpath.string(), ")");
  json j;
  try {
    std::ifstream f(jpath);
    j = json::parse(f);
  } catch (const json::exception& e) {
    BRISK_FAIL("checkpoint ", jpath.string(), " is corrupt: ", e.what());
  }
  try {
    BRISK_CHECK(j.value("format", "") == kFormat, "checkpoint ", jpath.string(), " has format '",
                j.value("format", "?"), "', expected '", kFormat, "'");
    fs::path tpath = dir / j.at("tensors_file").get<std::string>();
    BRISK_CHECK(fs::exists(tpath), "checkpoint ", jpath.string(), " refers to missing tensors file ", tpath.string());
    BRISK_CHECK(fs::file_size(tpath) == j.at("tensors_bytes").get<uint64_t>(), "checkpoint tensors file ",
                tpath.string(), " has ", fs::file_size(tpath), " bytes, expected ", j.at("tensors_bytes").get<uint64_t>(),
                " (truncated or replaced)");
    TensorMap all = load_safetensors(tpath.string());
    TensorMap model_sd, optim_sd;
    std::vector<TensorMap> method_sd(callbacks_.size());
    for (auto& [k, v] : all) {
      if (k.rfind("model/", 0) == 0) model_sd[k.substr(6)] = v;
      else if (k.rfind("optim/", 0) == 0) optim_sd[k] = v;
      else if (k == "trainer/epoch_order") epoch_order = v;
      else if (k == "trainer/buffer_x") buffer_.x = v;
      else if (k == "trainer/buffer_y") buffer_.y = v;
      else if (k == "trainer/buffer_indices") buffer_.indices = v;
      else if (k.rfind("method/", 0) == 0) {
        size_t slash = k.find('/', 7);
        size_t i = std::stoul(k.substr(7, slash - 7));
        BRISK_CHECK(i < callbacks_.size(), "checkpoint has state for method #", i, " but this run has ",
                    callbacks_.size(), " methods");
        method_sd[i][k.substr(slash + 1)] = v;
      }
    }
    const json& methods = j.at("methods");
    BRISK_CHECK(methods.size() == callbacks_.size(), "checkpoint was made with ", methods.size(),
                " methods but this run has ", callbacks_.size(), "; resume with the same --method flags");
    for (size_t i = 0; i < callbacks_.size(); ++i) {
      BRISK_CHECK(methods[i].at("name").get<std::string>() == callbacks_[i]->name(), "checkpoint method #", i,
                  " is '", methods[i].at("name").get<std::string>(), "' but this run has '", callbacks_[i]->name(), "'");
      callbacks_[i]->load_state_json(methods[i].at("state"));
      callbacks_[i]->load_state_tensors(method_sd[i]);
    }
    for (auto& cb : callbacks_) cb->on_restore(*this);  // replay structural changes first
    model_->load_state_dict(model_sd, true);
    optimizer_->load_hyper_json(j.at("optimizer"));
    optimizer_->load_state_tensors(optim_sd);
    state_.epoch = j.at("epoch").get<int64_t>();
    state_.batch_in_epoch = j.at("batch_in_epoch").get<int64_t>();
    state_.step = j.at("step").get<int64_t>();
    state_.samples_seen = j.at("samples_seen").get<int64_t>();
    state_.wall_s = j.at("wall_s").get<double>();
    state_.flops = j.value("flops", 0.0);
    score_s_ = j.value("score_s", 0.0);
    state_.loss_sum = j.at("loss_sum").get<double>();
    state_.loss_count = j.at("loss_count").get<int64_t>();
    default_generator().set_state(j.at("rng").at("seed").get<uint64_t>(), j.at("rng").at("offset").get<uint64_t>());
    last_eval_ = {j.at("last_eval").at("test_loss").get<double>(), j.at("last_eval").at("test_acc").get<double>()};
  } catch (const json::exception& e) {
    BRISK_FAIL("checkpoint ", jpath.string(), " is missing or has a bad field: ", e.what());
  }
}

}  // namespace brisk::train

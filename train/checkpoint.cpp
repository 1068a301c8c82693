// Checkpoints: DIR/checkpoint-step<N>.safetensors (model, optimizer and method
// tensors) and DIR/checkpoint.json (trainer, optimizer, schedule, RNG and
// method state, and the tensors file's name and size). The tensors file is
// written first under a name no file has (checkpoint-step<N>-<k> when the
// step's name is taken), then the JSON is atomically replaced, then
// older tensor files are removed: a crash at any point leaves a complete,
// consistent checkpoint behind.
#include <filesystem>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "models/models.h"
#include "train/trainer.h"

namespace brisk::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Format 2 lists every tensor name in the JSON (the manifest): a tensors file
// missing one, or holding an extra one, is refused.
static constexpr const char* kFormat = "brisk-checkpoint-2";

void Trainer::save_checkpoint() {
  // Data parallel: the main rank writes; the others only send it what is
  // theirs alone (the selection buffer; everything else is the same on all).
  const int world = pg_->size();
  Tensor buffer_counts;
  data::Batch buffers = buffer_;
  if (world > 1) {
    int64_t mine = buffer_.y.defined() ? buffer_.y.size(0) : 0;
    if (pg_->all_reduce_max(mine) > 0) {
      Tensor xs = buffer_.x, ys = buffer_.y, is = buffer_.indices;
      if (mine == 0) {  // an empty buffer still sends its row shape
        Shape s{0};
        for (int64_t d : models::input_shape(cfg_.model)) s.push_back(d);
        xs = empty(s, DType::f32);
        ys = empty({0}, DType::i64);
        is = empty({0}, DType::i64);
      }
      buffers.x = gather_rows(xs);
      buffers.y = gather_rows(ys);
      buffers.indices = gather_rows(is);
      buffer_counts = gather_rows(from_vector({double(mine)}, {1}, DType::i64));
    }
  }
  if (!is_main()) return;
  fs::path dir(cfg_.out);
  fs::create_directories(dir);
  TensorMap tensors;
  for (auto& [k, v] : model_->state_dict()) tensors["model/" + k] = v;
  for (auto& [k, v] : optimizer_->state_tensors()) tensors[k] = v;
  if (epoch_order.defined() && state_.batch_in_epoch > 0) tensors["trainer/epoch_order"] = epoch_order;
  if (buffers.y.defined() && buffers.y.numel() > 0) {  // selected examples not trained yet
    tensors["trainer/buffer_x"] = buffers.x;
    tensors["trainer/buffer_y"] = buffers.y;
    tensors["trainer/buffer_indices"] = buffers.indices;
    if (buffer_counts.defined()) tensors["trainer/buffer_counts"] = buffer_counts;  // rows per rank
  }
  json methods = json::array();
  for (size_t i = 0; i < callbacks_.size(); ++i) {
    for (auto& [k, v] : callbacks_[i]->state_tensors()) tensors["method/" + std::to_string(i) + "/" + k] = v;
    methods.push_back({{"name", callbacks_[i]->name()}, {"state", callbacks_[i]->state_json()}});
  }
  // A run on cuda checkpoints through host copies (the file holds cpu
  // tensors; a resume moves them back to each parameter's device).
  for (auto& [k, v] : tensors)
    if (v.device() != kCPU) v = v.to(kCPU);
  json manifest = json::array();
  for (auto& [k, v] : tensors) manifest.push_back(k);
  // A new name every time: a resumed epoch that ends before its first step
  // checkpoints the step checkpoint.json already names, and writing that
  // file over would leave the JSON describing other bytes if the process
  // died before the JSON is replaced.
  const std::string stem = "checkpoint-step" + std::to_string(state_.step);
  std::string tname = stem + ".safetensors";
  for (int k = 1; fs::exists(dir / tname); ++k) tname = stem + "-" + std::to_string(k) + ".safetensors";
  save_safetensors((dir / tname).string(), tensors, {{"format", kFormat}});
  Generator& g = default_generator();
  json j = {{"format", kFormat},
            {"tensors_file", tname},
            {"tensors_bytes", fs::file_size(dir / tname)},
            {"tensors", manifest},
            {"epoch", state_.epoch},
            {"batch_in_epoch", state_.batch_in_epoch},
            {"step", state_.step},
            {"world_size", world},
            {"batches", state_.batches},
            {"samples_seen", state_.samples_seen},
            {"tokens_seen", state_.tokens_seen},
            {"wall_s", state_.wall_s},
            {"flops", state_.flops},
            {"score_s", score_s_},
            {"loss_sum", state_.loss_sum},
            {"loss_count", state_.loss_count},
            {"metrics_lines", metrics_lines_},
            {"telemetry_lines", telemetry_.lines()},
            {"trace_loss_sum", trace_loss_sum_},
            {"trace_loss_count", trace_loss_count_},
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

namespace {

// Typed, range-checked reads of checkpoint.json fields: a wrong type, a
// fraction where a count belongs, a negative count or a non-finite number is
// named, never wrapped or defaulted.
struct Fields {
  const json& j;
  std::string path;
  const json& at(const json& obj, const char* key) const {
    BRISK_CHECK(obj.is_object() && obj.contains(key), "checkpoint ", path, ": field '", key, "' is missing");
    return obj.at(key);
  }
  uint64_t u64(const json& obj, const char* key) const {
    const json& v = at(obj, key);
    BRISK_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), "checkpoint ", path,
                ": field '", key, "' must be a non-negative integer, got ", v.dump());
    return v.get<uint64_t>();
  }
  int64_t count(const json& obj, const char* key) const {
    uint64_t u = u64(obj, key);
    BRISK_CHECK(u <= uint64_t(INT64_MAX), "checkpoint ", path, ": field '", key, "' is out of range: ", u);
    return int64_t(u);
  }
  double number(const json& obj, const char* key, bool non_negative) const {
    const json& v = at(obj, key);
    BRISK_CHECK(v.is_number(), "checkpoint ", path, ": field '", key, "' must be a number, got ", v.dump());
    double d = v.get<double>();
    BRISK_CHECK(std::isfinite(d) && (!non_negative || d >= 0), "checkpoint ", path, ": field '", key,
                "' must be a finite", non_negative ? " non-negative" : "", " number, got ", d);
    return d;
  }
  std::string string(const json& obj, const char* key) const {
    const json& v = at(obj, key);
    BRISK_CHECK(v.is_string(), "checkpoint ", path, ": field '", key, "' must be a string, got ", v.dump());
    return v.get<std::string>();
  }
};

// "method/<i>/<name>" -> (i, name); i in [0, n).
std::pair<size_t, std::string> method_key(const std::string& k, size_t n, const std::string& path) {
  size_t slash = k.find('/', 7);
  std::string num = k.substr(7, slash == std::string::npos ? std::string::npos : slash - 7);
  BRISK_CHECK(slash != std::string::npos && slash + 1 < k.size() && !num.empty() && num.size() <= 6 &&
                  std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }),
              "checkpoint ", path, ": tensor '", k, "' is not method/<index>/<name>");
  size_t i = std::stoul(num);
  BRISK_CHECK(i < n, "checkpoint ", path, ": has state for method #", i, " but this run has ", n, " methods");
  return {i, k.substr(slash + 1)};
}

// A 1-D i64 tensor of dataset indices, each in [0, n).
void check_indices(const Tensor& t, int64_t n, const std::string& what) {
  BRISK_CHECK(t.dim() == 1 && t.dtype() == DType::i64, what, " must be a 1-D i64 tensor, got ", t.str());
  const int64_t* p = t.contiguous().data_ptr<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    BRISK_CHECK(p[i] >= 0 && p[i] < n, what, " holds index ", p[i], " outside the dataset's [0, ", n, ")");
}

}  // namespace

// One validation pass, then the state is applied: a checkpoint is either fully
// valid for this model, optimizer and methods, or refused with a message
// naming what is wrong. Nothing is written while loading.
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
  const std::string P = jpath.string();
  BRISK_CHECK(j.is_object(), "checkpoint ", P, " is not a JSON object");
  Fields F{j, P};
  // The data order, the shards and the selection buffers are per rank: a run
  // continues on the number of ranks it was checkpointed on.
  int64_t saved_world = j.contains("world_size") ? F.count(j, "world_size") : 1;
  BRISK_CHECK(saved_world >= 1, "checkpoint ", P, ": field 'world_size' must be at least 1, got ", saved_world);
  BRISK_CHECK(saved_world == pg_->size(), "checkpoint ", P, " was written by a run on ", saved_world,
              saved_world == 1 ? " rank" : " ranks", " but this run has ", pg_->size(),
              ": resume it on the same number of ranks (mpirun -np ", saved_world, ")");
  std::string format = j.contains("format") && j["format"].is_string() ? j["format"].get<std::string>() : "?";
  BRISK_CHECK(format == kFormat, "checkpoint ", P, " has format '", format, "', expected '", kFormat,
              "' (made by another brisk version; start a new run)");

  // --- the tensors file, against the manifest
  std::string tname = F.string(j, "tensors_file");
  BRISK_CHECK(!tname.empty() && tname.find('/') == std::string::npos && tname != "." && tname != "..",
              "checkpoint ", P, ": tensors_file '", tname, "' must be a file name in the run folder");
  fs::path tpath = dir / tname;
  BRISK_CHECK(fs::is_regular_file(tpath), "checkpoint ", P, " refers to missing tensors file ", tpath.string());
  uint64_t want_bytes = F.u64(j, "tensors_bytes");
  BRISK_CHECK(fs::file_size(tpath) == want_bytes, "checkpoint tensors file ", tpath.string(), " has ",
              fs::file_size(tpath), " bytes, expected ", want_bytes, " (truncated or replaced)");
  TensorMap all = load_safetensors(tpath.string());
  const json& manifest = F.at(j, "tensors");
  BRISK_CHECK(manifest.is_array(), "checkpoint ", P, ": field 'tensors' must be a list of names");
  std::set<std::string> listed;
  for (auto& n : manifest) {
    BRISK_CHECK(n.is_string() && listed.insert(n.get<std::string>()).second, "checkpoint ", P,
                ": 'tensors' must list distinct names, got ", n.dump());
    BRISK_CHECK(all.count(n.get<std::string>()), "checkpoint ", P, ": tensor '", n.get<std::string>(),
                "' is missing from ", tpath.string());
  }
  for (auto& [k, v] : all)
    BRISK_CHECK(listed.count(k), "checkpoint ", P, ": ", tpath.string(), " holds tensor '", k,
                "' that the checkpoint does not list");

  // --- counters and scalars
  TrainState st;
  st.epoch = F.count(j, "epoch");
  st.batch_in_epoch = F.count(j, "batch_in_epoch");
  st.step = F.count(j, "step");
  st.batches = j.contains("batches") ? F.count(j, "batches") : st.step;  // older checkpoints: no batch-level selection clock
  st.samples_seen = F.count(j, "samples_seen");
  st.tokens_seen = j.contains("tokens_seen") ? F.count(j, "tokens_seen") : 0;  // absent before language models
  st.wall_s = F.number(j, "wall_s", true);
  st.flops = F.number(j, "flops", true);
  st.loss_sum = F.number(j, "loss_sum", false);
  st.loss_count = F.count(j, "loss_count");
  double score_s = F.number(j, "score_s", true);
  int64_t metrics_lines = F.count(j, "metrics_lines");
  // Absent before telemetry: an empty file and trace.
  int64_t telemetry_lines = j.contains("telemetry_lines") ? F.count(j, "telemetry_lines") : 0;
  double trace_sum = j.contains("trace_loss_sum") ? F.number(j, "trace_loss_sum", false) : 0.0;
  int64_t trace_count = j.contains("trace_loss_count") ? F.count(j, "trace_loss_count") : 0;
  const json& rng = F.at(j, "rng");
  uint64_t rng_seed = F.u64(rng, "seed"), rng_offset = F.u64(rng, "offset");
  const json& ev = F.at(j, "last_eval");
  EvalResult last{F.number(ev, "test_loss", true), F.number(ev, "test_acc", true)};
  BRISK_CHECK(last.acc <= 1, "checkpoint ", P, ": test_acc ", last.acc, " is not a fraction");
  // Every step trains at least one example and adds at most one loss (the
  // loaded-batch clock may trail the step count under batch-size warmup, or
  // lead it under selection: no order between them).
  BRISK_CHECK(st.samples_seen >= st.step && st.loss_count <= st.step, "checkpoint ", P,
              ": inconsistent counters (step ", st.step, ", batches ", st.batches, ", samples_seen ", st.samples_seen, ", loss_count ",
              st.loss_count, ")");

  // --- tensors by owner
  const int64_t n_train = train_loader_->dataset().size();
  TensorMap model_sd, optim_sd;
  std::vector<TensorMap> method_sd(callbacks_.size());
  Tensor order, bx, by, bi, bcounts;
  for (auto& [k, v] : all) {
    if (k.rfind("model/", 0) == 0) model_sd[k.substr(6)] = v;
    else if (k.rfind("optim/", 0) == 0) optim_sd[k] = v;
    else if (k == "trainer/epoch_order") order = v;
    else if (k == "trainer/buffer_x") bx = v;
    else if (k == "trainer/buffer_y") by = v;
    else if (k == "trainer/buffer_indices") bi = v;
    else if (k == "trainer/buffer_counts") bcounts = v;
    else if (k.rfind("method/", 0) == 0) {
      auto [i, name] = method_key(k, callbacks_.size(), P);
      method_sd[i][name] = v;
    } else {
      BRISK_FAIL("checkpoint ", P, ": unknown tensor '", k, "'");
    }
  }
  if (order.defined()) {
    BRISK_CHECK(st.batch_in_epoch > 0, "checkpoint ", P, ": an epoch order is stored outside an epoch");
    BRISK_CHECK(order.dtype() == DType::i64, "checkpoint ", P, ": trainer/epoch_order must be i64, got ", order.str());
    try {
      train_loader_->check_order(order.contiguous());
    } catch (const Error& e) {
      BRISK_FAIL("checkpoint ", P, ": trainer/epoch_order: ", e.what());
    }
  }
  {
    const auto& lo = train_loader_->options();
    int64_t visit = (order.defined() ? order.numel() : n_train) / lo.world, B = lo.batch_size;
    int64_t batches = lo.drop_last ? visit / B : (visit + B - 1) / B;
    BRISK_CHECK(st.batch_in_epoch <= batches, "checkpoint ", P, ": batch_in_epoch ", st.batch_in_epoch,
                " is past the epoch's ", batches, " batches (was it made with another --batch-size?)");
  }
  BRISK_CHECK(bx.defined() == by.defined() && by.defined() == bi.defined(), "checkpoint ", P,
              ": the selection buffer needs buffer_x, buffer_y and buffer_indices together");
  BRISK_CHECK(!bcounts.defined() || (by.defined() && pg_->size() > 1), "checkpoint ", P,
              ": trainer/buffer_counts belongs with a data-parallel selection buffer");
  int64_t buffer_first = 0, buffer_rows = by.defined() ? by.numel() : 0;  // this rank's rows
  if (by.defined() && pg_->size() > 1) {
    BRISK_CHECK(bcounts.defined() && bcounts.dtype() == DType::i64 && bcounts.dim() == 1 &&
                    bcounts.numel() == pg_->size(),
                "checkpoint ", P, ": a data-parallel selection buffer needs trainer/buffer_counts, i64 [",
                pg_->size(), "]");
    const int64_t* c = bcounts.contiguous().data_ptr<int64_t>();
    int64_t total = 0;
    for (int r = 0; r < pg_->size(); ++r) {
      BRISK_CHECK(c[r] >= 0 && c[r] <= by.numel() - total, "checkpoint ", P, ": trainer/buffer_counts ",
                  bcounts.str(), " does not split the buffer of ", by.numel(), " rows");
      if (r == pg_->rank()) buffer_first = total, buffer_rows = c[r];
      total += c[r];
    }
    BRISK_CHECK(total == by.numel(), "checkpoint ", P, ": trainer/buffer_counts adds up to ", total, ", not ",
                by.numel());
  }
  if (by.defined()) {
    int64_t L = by.numel();
    Shape xs{L};
    for (int64_t d : models::input_shape(cfg_.model)) xs.push_back(d);
    // One rank keeps fewer than a batch; with several ranks a rank may keep
    // more (each trains only when all have a batch).
    BRISK_CHECK(by.dim() == 1 && by.dtype() == DType::i64 && (L < cfg_.batch_size || pg_->size() > 1) &&
                    bx.shape() == xs &&
                    bx.dtype() == DType::f32 && bi.shape() == by.shape(),
                "checkpoint ", P, ": selection buffer has x ", bx.str(), ", y ", by.str(), ", indices ", bi.str(),
                " (want fewer than a batch of ", cfg_.batch_size, " examples of ", shape_str(xs), ")");
    check_indices(bi, n_train, "checkpoint " + P + ": trainer/buffer_indices");
    check_indices(by, train_loader_->dataset().num_classes, "checkpoint " + P + ": trainer/buffer_y (labels)");
  }

  // --- methods, in the order this run has them
  const json& methods = F.at(j, "methods");
  BRISK_CHECK(methods.is_array() && methods.size() == callbacks_.size(), "checkpoint was made with ",
              methods.is_array() ? methods.size() : 0, " methods but this run has ", callbacks_.size(),
              "; resume with the same --method flags");
  for (size_t i = 0; i < callbacks_.size(); ++i) {
    std::string name = F.string(methods[i], "name");
    BRISK_CHECK(name == callbacks_[i]->name(), "checkpoint method #", i, " is '", name, "' but this run has '",
                callbacks_[i]->name(), "'");
    F.at(methods[i], "state");
  }
  const json& opt = F.at(j, "optimizer");
  BRISK_CHECK(F.string(opt, "name") == optimizer_->name(), "checkpoint ", P, ": optimizer state is for '",
              F.string(opt, "name"), "' but this run uses '", optimizer_->name(), "'");
  BRISK_CHECK(F.number(opt, "lr", true) > 0, "checkpoint ", P, ": optimizer lr must be > 0");

  // --- apply. Methods may still refuse their own state (each validates it);
  // structure is replayed before the model and optimizer state are checked
  // against the (possibly pruned or grown) model.
  try {
    for (size_t i = 0; i < callbacks_.size(); ++i) {
      callbacks_[i]->load_state_json(methods[i].at("state"));
      callbacks_[i]->load_state_tensors(method_sd[i]);
    }
    for (auto& cb : callbacks_) cb->on_restore(*this);  // replay structural changes first
    model_->load_state_dict(model_sd, true);
    optimizer_->load_hyper_json(opt);
    optimizer_->load_state_tensors(optim_sd);
  } catch (const json::exception& e) {
    BRISK_FAIL("checkpoint ", P, ": bad method or optimizer state: ", e.what());
  }
  epoch_order = order;
  if (by.defined() && pg_->size() > 1) {
    bx = bx.narrow(0, buffer_first, buffer_rows).contiguous();
    by = by.narrow(0, buffer_first, buffer_rows).contiguous();
    bi = bi.narrow(0, buffer_first, buffer_rows).contiguous();
  }
  buffer_.x = bx;
  buffer_.y = by;
  buffer_.indices = bi;
  state_ = st;
  score_s_ = score_s;
  metrics_lines_ = metrics_lines;
  telemetry_lines_ = telemetry_lines;
  trace_loss_sum_ = trace_sum;
  trace_loss_count_ = trace_count;
  default_generator().set_state(rng_seed, rng_offset);
  last_eval_ = last;
}

}  // namespace brisk::train

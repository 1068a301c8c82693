// Hostile inputs, one regression test per class: sizes that overflow, files
// that lie about their contents, numbers past any sane range, specs that would
// silently do nothing, data that does not fit the model, and divergence. Each
// must end in a brisk::Error naming what was wrong, never a crash or a
// silently wrong run. (The command-line side: tests/reliability/*.py.)
#include <cstring>

#include "core/env_switch.h"
#include "data/idx.h"
#include "data/loader.h"
#include "efficiency/method.h"
#include "models/models.h"
#include "tests/train_helpers.h"

using namespace bt;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("brisk_reliability_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

// safetensors file from a header text and a data section.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string h = header;
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(h.size()) >> (8 * i)) & 0xff);
  return out + h + data;
}

std::string load_error(const std::string& header, const std::string& data) {
  fs::path p = scratch("t.safetensors");
  write_bytes(p, safetensors_bytes(header, data));
  try {
    load_safetensors(p.string());
  } catch (const brisk::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("reliability: tensor sizes are checked for overflow", "[reliability]") {
  int64_t big = int64_t(1) << 32;
  CHECK_THROWS_WITH(empty({big, big, 4}), Contains("overflows"));
  CHECK_THROWS_WITH(empty_strided({big, 2}, {int64_t(1) << 40, 1}), Contains("overflows"));
  CHECK_THROWS_WITH(empty({3, -1}), Contains("negative dimension -1"));
  // Sizes that fit but no machine has: a clear out-of-memory error.
  CHECK_THROWS_WITH(empty({int64_t(1) << 61}, DType::u8), Contains("beyond any machine's memory"));
  CHECK(empty({0, big}).numel() == 0);
}

TEST_CASE("reliability: an IDX header cannot make the reader overflow or over-allocate", "[reliability]") {
  // 16 bytes declaring 4 dims of 0x0fffffff: the product wraps 64 bits.
  std::string h = {0, 0, 8, 4};
  for (int i = 0; i < 4; ++i) h += std::string("\x0f\xff\xff\xff", 4);
  write_bytes(scratch("huge.idx"), h);
  CHECK_THROWS_WITH(data::read_idx(scratch("huge.idx").string()), Contains("overflows"));
  // Declares 60000x28x28 but holds 10 bytes: refused before allocating.
  std::string t = {0, 0, 8, 3, 0, 0, char(0xea), 0x60, 0, 0, 0, 28, 0, 0, 0, 28};
  write_bytes(scratch("short.idx"), t + std::string(10, 'x'));
  CHECK_THROWS_WITH(data::read_idx(scratch("short.idx").string()), Contains("truncated"));
  CHECK_THROWS_WITH(data::read_idx(scratch("").string()), Contains("not a regular file"));
  // Compressed, declaring 0xfffffff0 bytes with none behind them: refused
  // without allocating the declared size (found by fuzz_idx as an OOM).
  write_idx_gz(scratch("claim.idx.gz").string(), {0xfffffff0u}, {});
  CHECK_THROWS_WITH(data::read_idx(scratch("claim.idx.gz").string()), Contains("decompresses to 0"));
}

TEST_CASE("reliability: safetensors headers are validated field by field", "[reliability]") {
  std::string eight(8, '\1');
  // The well-formed file loads.
  CHECK(load_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight).empty());
  CHECK_THROWS(load_safetensors(scratch("missing.safetensors").string()));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight),
             Contains("'a' appears twice"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight),
             Contains("overlaps"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
             Contains("belong to no tensor"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight),
             Contains("after the last tensor"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", eight),
             Contains("non-negative integers"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
             Contains("non-negative integers"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
             Contains("overflows"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", eight),
             Contains("unknown field 'x'"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[2]}})", eight), Contains("needs dtype, shape and data_offsets"));
  CHECK_THAT(load_error(R"({"a":7})", eight), Contains("not an object"));
  CHECK_THAT(load_error(R"({"__metadata__":{"k":1}})", ""), Contains("must be a string"));
  CHECK_THAT(load_error(R"([1,2])", ""), Contains("not a JSON object"));
  CHECK_THAT(load_error(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), Contains("need 12"));
}

TEST_CASE("reliability: optimizer state loads all or nothing", "[reliability]") {
  auto w = ones({2, 3}).requires_grad_(true), b = ones({3}).requires_grad_(true);
  optim::AdamW opt({{"w", w}, {"b", b}}, {});
  TensorMap good = {{"optim/w/exp_avg", zeros({2, 3})}, {"optim/w/exp_avg_sq", zeros({2, 3})},
                    {"optim/w/step", zeros({}, DType::f64)}};
  opt.load_state_tensors(good);
  CHECK(opt.state().at("w").size() == 3);
  TensorMap partial = good;
  partial.erase("optim/w/exp_avg_sq");
  CHECK_THROWS_WITH(opt.load_state_tensors(partial), Contains("lacks 'exp_avg_sq'"));
  CHECK(opt.state().at("w").size() == 3);  // unchanged by the refused load
  TensorMap unknown = good;
  unknown["optim/w/velocity"] = zeros({2, 3});
  CHECK_THROWS_WITH(opt.load_state_tensors(unknown), Contains("keeps no 'velocity' state"));
  TensorMap wrong_dtype = good;
  wrong_dtype["optim/w/exp_avg"] = zeros({2, 3}, DType::f64);
  CHECK_THROWS_WITH(opt.load_state_tensors(wrong_dtype), Contains("dtype"));
  TensorMap bad_step = good;
  bad_step["optim/w/step"] = full({}, 2.5, DType::f64);
  CHECK_THROWS_WITH(opt.load_state_tensors(bad_step), Contains("step count 2.5"));
}

TEST_CASE("reliability: an epoch order must be a subset of the dataset", "[reliability]") {
  data::Dataset d = data::load_dataset("fashion-mnist", synthetic_dir(), false);
  data::LoaderOptions lo;
  lo.batch_size = 8;
  data::DataLoader loader(d, lo);
  CHECK_THROWS_WITH(loader.start_epoch(0, 0, full({16}, 5, DType::i64)), Contains("visits example 5 twice"));
  CHECK_THROWS_WITH(loader.start_epoch(0, 0, from_vector({0, 1, 999}, {3}, DType::i64)), Contains("index 999"));
  CHECK_THROWS_WITH(loader.start_epoch(0, 0, from_vector({-1}, {1}, DType::i64)), Contains("index -1"));
  loader.start_epoch(0, 0, from_vector({3, 1, 2}, {3}, DType::i64));  // a subset in any order is fine
}

TEST_CASE("reliability: absurd numbers in a config are refused with their value", "[reliability]") {
  TrainConfig c;
  c.set("epochs", "9223372036854775807");
  CHECK_THROWS_WITH(c.validate(), Contains("epochs must be in [1, 1000000], got 9223372036854775807"));
  c = TrainConfig();
  c.set("threads", "10000");
  CHECK_THROWS_WITH(c.validate(), Contains("got 10000"));
  CHECK_THROWS_WITH(c.set("threads", "4294967297x"), Contains("must be an integer"));
  CHECK_THROWS_WITH(c.set("seed", "-1"), Contains("'seed' must be >= 0, got -1"));
  CHECK_THROWS_WITH(c.set("lr", "nan"), Contains("must be a number"));
  CHECK_THROWS_WITH(set_num_threads(100000), Contains("got 100000"));
  c = TrainConfig();
  c.set("batch-size", "100000000");
  CHECK_THROWS_WITH(c.validate(), Contains("batch-size must be in"));
  // Every model the zoo lists is accepted by the config.
  for (auto& m : models::model_names()) CHECK_NOTHROW(TrainConfig().set("model", m));
}

TEST_CASE("reliability: method specs that would do nothing are refused up front", "[reliability]") {
  CHECK_THROWS_WITH(efficiency::make_method("prune:structure=2:4x"), Contains("unknown structure '2:4x'"));
  CHECK_THROWS_WITH(efficiency::make_method("grow:points="), Contains("points is empty"));
  CHECK_THROWS_WITH(efficiency::make_method("ema:start=1e40"), Contains("'start' is out of range"));
  // 5:11 fits no layer of the mlp (K = 784, 512, 256): refused when training starts.
  auto cfg = small_config("nm_fits_none");
  cfg.methods = {"prune:structure=5:11"};
  CHECK_THROWS_WITH(train::Trainer(cfg, brisk::efficiency::make_methods).fit(), Contains("fits no layer"));
  auto ok = small_config("nm_fits");
  ok.max_steps = 1;
  ok.methods = {"prune:structure=2:4"};
  CHECK_NOTHROW(train::Trainer(ok, brisk::efficiency::make_methods).fit());
}

TEST_CASE("reliability: data that does not fit the model is named when it is opened", "[reliability]") {
  fs::path d = scratch("data_32");
  fs::create_directories(d);
  for (auto [split, n, hw] : {std::tuple<const char*, uint32_t, uint32_t>{"train", 64, 32}, {"t10k", 16, 28}}) {
    write_idx_gz((d / (std::string(split) + "-images-idx3-ubyte.gz")).string(), {n, hw, hw},
                 std::vector<uint8_t>(size_t(n) * hw * hw, 7));
    write_idx_gz((d / (std::string(split) + "-labels-idx1-ubyte.gz")).string(), {n}, std::vector<uint8_t>(n, 1));
  }
  auto cfg = small_config("wrong_size");
  cfg.data_dir = d.string();
  cfg.model = "cnn";
  CHECK_THROWS_WITH(train::Trainer(cfg, brisk::efficiency::make_methods), Contains("training images are [1, 32, 32]"));
  auto big_batch = small_config("big_batch");
  big_batch.batch_size = 100000;
  CHECK_THROWS_WITH(train::Trainer(big_batch, brisk::efficiency::make_methods), Contains("exceeds the 512 training examples"));
  auto not_dir = small_config("out_is_file");
  write_bytes(not_dir.out, "x");
  CHECK_THROWS_WITH(train::Trainer(not_dir, brisk::efficiency::make_methods).fit(), Contains("is not a folder"));
  fs::remove(not_dir.out);
}

namespace {
// Sets every weight to NaN at the end of epoch `at` (1-based): the next
// evaluation sees a diverged model.
struct Poison : train::Callback {
  int64_t at;
  explicit Poison(int64_t a) : at(a) {}
  std::string name() const override { return "poison"; }
  void on_epoch_end(train::Trainer& t) override {
    if (t.state().epoch != at) return;
    NoGradGuard ng;
    for (auto& [n, p] : t.model().named_parameters()) p.detach().fill_(NAN);
  }
};
}  // namespace

TEST_CASE("reliability: a diverged evaluation is never checkpointed", "[reliability]") {
  auto cfg = small_config("diverged");
  cfg.epochs = 3;
  {
    train::Trainer t(cfg, brisk::efficiency::make_methods);
    t.add_callback(std::make_unique<Poison>(2));
    CHECK_THROWS_WITH(t.fit(), Contains("evaluation loss is nan after step 16") &&
                                   Contains("last good checkpoint") && Contains("(step 8)"));
  }
  // The checkpoint on disk is the good one from epoch 1, and it resumes.
  json j = json::parse(std::ifstream(cfg.out + "/checkpoint.json"));
  CHECK(j["step"] == 8);
  auto lines = read_jsonl(cfg.out + "/metrics.jsonl");
  REQUIRE(lines.size() == 1);
  CHECK(std::isfinite(lines[0]["test_loss"].get<double>()));
  train::Trainer again(cfg, brisk::efficiency::make_methods);
  again.add_callback(std::make_unique<Poison>(99));  // the same methods as the checkpoint, never firing
  CHECK(std::isfinite(again.fit(true).loss));
}

TEST_CASE("reliability: resume drops metrics lines past the checkpoint and torn lines", "[reliability]") {
  auto cfg = small_config("trim_metrics");
  cfg.epochs = 2;
  cfg.max_steps = 8;
  train::Trainer(cfg, brisk::efficiency::make_methods).fit();
  // As after a crash between appending a line and saving its checkpoint:
  // a line for a later step, then a torn one.
  {
    std::ofstream f(cfg.out + "/metrics.jsonl", std::ios::app);
    f << R"({"step": 12, "test_acc": 0.5})" << "\n" << R"({"step": 16, "te)";
  }
  cfg.max_steps = 0;
  train::Trainer(cfg, brisk::efficiency::make_methods).fit(true);
  auto lines = read_jsonl(cfg.out + "/metrics.jsonl");
  std::vector<int64_t> steps;
  for (auto& l : lines) steps.push_back(l["step"].get<int64_t>());
  CHECK(steps == std::vector<int64_t>{8, 16});
}

TEST_CASE("reliability: pruning masks survive a checkpoint taken before the first step after a resume",
          "[reliability]") {
  // As with batch-level selection, where a resumed epoch can end (and be
  // checkpointed) before any optimizer step: the masks must still be saved.
  auto cfg = small_config("masks_resume");
  cfg.max_steps = 4;
  cfg.methods = {"prune:target=0.5,schedule=oneshot"};
  train::Trainer(cfg, brisk::efficiency::make_methods).fit();
  TensorMap before = final_tensors(cfg.out);
  train::Trainer t(cfg, brisk::efficiency::make_methods);
  t.load_checkpoint(cfg.out);
  t.save_checkpoint();
  TensorMap after = final_tensors(cfg.out);
  int masks = 0;
  for (auto& [k, v] : before)
    if (k.rfind("method/0/", 0) == 0) {
      ++masks;
      REQUIRE(after.count(k));
      CHECK(bit_equal(v, after.at(k)));
    }
  CHECK(masks == 3);  // the mlp's three weight matrices
}

TEST_CASE("reliability: checkpointing a step again never writes over the tensors file the JSON names",
          "[reliability]") {
  // A resumed epoch can end before its first step and checkpoint the same
  // step again; had the tensors file been written over in place, a crash
  // before checkpoint.json is replaced would leave the JSON naming a file
  // of other bytes (seen as "has N bytes, expected M" on the next resume).
  auto cfg = small_config("same_step");
  cfg.max_steps = 4;
  train::Trainer(cfg, brisk::efficiency::make_methods).fit();
  auto read = [&](const std::string& f) {
    std::ifstream in(cfg.out + "/" + f, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  json first = json::parse(read("checkpoint.json"));
  std::string name = first["tensors_file"], bytes = read(name);
  REQUIRE(name == "checkpoint-step4.safetensors");
  train::Trainer t(cfg, brisk::efficiency::make_methods);
  t.load_checkpoint(cfg.out);
  t.save_checkpoint();
  json second = json::parse(read("checkpoint.json"));
  std::string name2 = second["tensors_file"];
  CHECK(name2 == "checkpoint-step4-1.safetensors");  // beside it, never over it
  CHECK_FALSE(fs::exists(cfg.out + "/" + name));    // the old one is removed once the JSON moved on
  CHECK(second["tensors_bytes"].get<uint64_t>() == fs::file_size(cfg.out + "/" + name2));
  CHECK(bytes.size() == first["tensors_bytes"].get<uint64_t>());
  train::Trainer(cfg, brisk::efficiency::make_methods).load_checkpoint(cfg.out);  // and it loads
}

// BRISK_CONV_WINOGRAD, BRISK_CONV_THIN_POOL, BRISK_CONV_AMX_DIRECT,
// BRISK_CACHING_ALLOCATOR and BRISK_PROFILE take 0 or 1: anything else is reported, naming the
// variable and its value, and the default kept (before, "off" left a path
// on without a word).
TEST_CASE("reliability: environment switches take 0 or 1, anything else is reported and the default kept",
          "[reliability]") {
  for (bool dflt : {false, true}) {
    std::string problem;
    CHECK(brisk::parse_env_switch("BRISK_X", "1", dflt, &problem) == true);
    CHECK(brisk::parse_env_switch("BRISK_X", "0", dflt, &problem) == false);
    CHECK(brisk::parse_env_switch("BRISK_X", nullptr, dflt, &problem) == dflt);
    CHECK(brisk::parse_env_switch("BRISK_X", "", dflt, &problem) == dflt);
    CHECK(problem.empty());
    for (const char* bad : {"off", "on", "yes", "false", " 1", "10", "01", "-1"}) {
      problem.clear();
      CHECK(brisk::parse_env_switch("BRISK_X", bad, dflt, &problem) == dflt);
      INFO(problem);
      CHECK(problem.find("BRISK_X") != std::string::npos);
      CHECK(problem.find(std::string("'") + bad + "'") != std::string::npos);
      CHECK(problem.find("0 or 1") != std::string::npos);
    }
  }
  // read from the environment (the warning goes to stderr)
  ::setenv("BRISK_TEST_SWITCH", "off", 1);
  CHECK(brisk::env_switch("BRISK_TEST_SWITCH", true) == true);
  ::setenv("BRISK_TEST_SWITCH", "0", 1);
  CHECK(brisk::env_switch("BRISK_TEST_SWITCH", true) == false);
  ::unsetenv("BRISK_TEST_SWITCH");
  CHECK(brisk::env_switch("BRISK_TEST_SWITCH", false) == false);
}

// The language-model path: fused attention's memory, the GPT model (shapes,
// causality, parameter count, KV cache), text data (windows, splits, the KJV
// token cache, hostile files), training (metrics, bit-exact resume) and
// generation.
#include <cmath>
#include <cstdlib>
#include <map>

#include "data/text.h"
#include "models/gpt.h"
#include "tests/lm_helpers.h"
#include "train/generate.h"

using namespace bt;
namespace F = brisk::nn::functional;
using brisk::models::GPT;
using brisk::models::GPTConfig;

namespace {

std::string write_file(const std::string& name, const std::string& bytes) {
  fs::path p = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

GPTConfig tiny_config() {
  GPTConfig c;
  c.n_layer = 2, c.n_head = 2, c.n_embd = 16, c.block_size = 24;
  return c;
}

}  // namespace

TEST_CASE("attention: the fused op never holds a T x T score matrix", "[attention]") {
  // 2 slices, T = 1024, D = 16: the score matrix would be 2 x 4 MiB in f32;
  // q, k, v, out and their gradients are 128 KiB each.
  int64_t T = 1024, D = 16;
  Tensor q = randn({2, T, D}).requires_grad_(true), k = randn({2, T, D}).requires_grad_(true),
         v = randn({2, T, D}).requires_grad_(true);
  reset_cpu_allocator_counters();
  int64_t before = cpu_allocator_stats().bytes_in_use;
  Tensor o = F::scaled_dot_product_attention(q, k, v, true);
  sum(o).backward();
  int64_t peak = cpu_allocator_stats().peak_bytes_in_use - before;
  INFO("peak bytes above the inputs: " << peak);
  CHECK(peak < 2 * T * T * 4 / 8);  // well under one score matrix per slice
  // ... while the composite does allocate it (so the check can fail).
  reset_cpu_allocator_counters();
  before = cpu_allocator_stats().bytes_in_use;
  Tensor oc = F::scaled_dot_product_attention_composite(q.detach(), k.detach(), v.detach(), true, 0.25);
  CHECK(cpu_allocator_stats().peak_bytes_in_use - before >= 2 * T * T * 4);
  CHECK(max_rel_err(o.detach(), oc) < 1e-5);
}

TEST_CASE("attention: bad operands are named", "[attention][errors]") {
  Tensor q = randn({2, 5, 8}), k = randn({2, 6, 8});
  CHECK_THROWS_WITH(F::scaled_dot_product_attention(q, k, randn({2, 6, 4})), Catch::Contains("k, v [..., Tk, D]"));
  CHECK_THROWS_WITH(F::scaled_dot_product_attention(q, randn({2, 6, 7}), randn({2, 6, 7})), Catch::Contains("head dim"));
  CHECK_THROWS_WITH(F::scaled_dot_product_attention(q, randn({3, 6, 8}), randn({3, 6, 8})), Catch::Contains("leading dims"));
  CHECK_THROWS_WITH(F::scaled_dot_product_attention(q, k.to(DType::f64), k.to(DType::f64)), Catch::Contains("dtype"));
  CHECK_THROWS_WITH(F::scaled_dot_product_attention(randn({8}), randn({8}), randn({8})), Catch::Contains("expected q"));
  // The packed [B, T, 3 H D] form.
  Tensor qkv = randn({2, 5, 24});
  CHECK_THROWS_WITH(F::attention_packed_qkv(qkv, 0), Catch::Contains("n_head must be > 0, got 0"));
  CHECK_THROWS_WITH(F::attention_packed_qkv(qkv, -2), Catch::Contains("n_head must be > 0, got -2"));
  CHECK_THROWS_WITH(F::attention_packed_qkv(qkv, 3), Catch::Contains("expected qkv [B, T, 3 * n_head * head_dim] (n_head 3), got [2, 5, 24]"));
  CHECK_THROWS_WITH(F::attention_packed_qkv(randn({2, 5, 0}), 2), Catch::Contains("got [2, 5, 0]"));
  CHECK_THROWS_WITH(F::attention_packed_qkv(randn({10, 24}), 2), Catch::Contains("got [10, 24]"));
  CHECK_THROWS_WITH(F::attention_packed_qkv(Tensor(), 2), Catch::Contains("attention_packed_qkv: got an undefined tensor"));
  CHECK_THROWS_WITH(F::attention_packed_qkv(qkv.to(DType::i64), 2), Catch::Contains("expected a floating dtype, got i64"));
  CHECK_THROWS_WITH(F::attention_packed_qkv(qkv, 2, true, std::nan("")), Catch::Contains("scale must be finite"));
  CHECK(F::attention_packed_qkv(qkv, 2).shape() == Shape{2, 5, 8});  // and a good one runs
}

TEST_CASE("gpt: shapes, parameter count by hand, tied head and causality", "[gpt]") {
  manual_seed(3);
  GPTConfig c = tiny_config();
  GPT m(c);
  // wte V*E + wpe T*E + per block (2 LN: 4E, c_attn E*3E+3E, c_proj E*E+E,
  // c_fc E*4E+4E, mlp c_proj 4E*E+E) + ln_f 2E; no separate head (tied).
  int64_t E = 16, V = 256, T = 24;
  int64_t block = 4 * E + (3 * E * E + 3 * E) + (E * E + E) + (4 * E * E + 4 * E) + (4 * E * E + E);
  CHECK(m.num_parameters() == V * E + T * E + 2 * block + 2 * E);
  Tensor idx = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {2, 5}, DType::i64);
  Tensor y = m.forward(idx);
  REQUIRE(y.shape() == Shape({2, 5, 256}));
  // Changing token 3 changes logits at positions >= 3 only.
  Tensor idx2 = from_vector({1, 2, 3, 200, 5, 6, 7, 8, 9, 10}, {2, 5}, DType::i64);
  Tensor y2 = m.forward(idx2);
  CHECK(max_rel_err(y.narrow(1, 0, 3), y2.narrow(1, 0, 3)) == 0.0);
  CHECK(max_rel_err(y.narrow(1, 3, 2), y2.narrow(1, 3, 2)) > 0.0);
  // The head is the token embedding: its gradient collects both uses.
  F::cross_entropy(y.reshape({10, 256}), from_vector({2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {10}, DType::i64)).backward();
  Tensor g = m.wte->weight.grad();
  REQUIRE(g.defined());
  CHECK(sum(abs(g.narrow(0, 100, 1))).item() > 0);  // token 100 is never an input: only the head reaches it
  CHECK_THROWS_WITH(m.forward(from_vector(std::vector<double>(25, 1.0), {1, 25}, DType::i64)),
                    Catch::Contains("block size 24"));
  CHECK_THROWS_WITH(m.forward(randn({1, 4})), Catch::Contains("token ids i64"));
  GPTConfig bad = c;
  bad.n_head = 3;
  CHECK_THROWS_WITH(GPT(bad), Catch::Contains("divisible"));
}

TEST_CASE("gpt: the KV cache gives the full forward's logits, token by token and in chunks", "[gpt]") {
  manual_seed(5);
  GPT m(tiny_config());
  m.eval();
  NoGradGuard ng;
  std::vector<double> toks;
  for (int i = 0; i < 20; ++i) toks.push_back(double((i * 37 + 11) % 256));
  Tensor idx = from_vector(toks, {1, 20}, DType::i64);
  Tensor full = m.forward(idx);
  brisk::models::KVCache cache;
  std::vector<Tensor> parts;
  for (int64_t t = 0; t < 20; ++t) parts.push_back(m.forward_cached(idx.narrow(1, t, 1), cache));
  CHECK(cache.length() == 20);
  CHECK(max_rel_err(cat(parts, 1), full) < 1e-5);
  brisk::models::KVCache c2;
  Tensor a = m.forward_cached(idx.narrow(1, 0, 7), c2), b = m.forward_cached(idx.narrow(1, 7, 13), c2);
  CHECK(max_rel_err(cat({a, b}, 1), full) < 1e-5);
  CHECK_THROWS_WITH(m.forward_cached(from_vector(std::vector<double>(5, 1.0), {1, 5}, DType::i64), c2),
                    Catch::Contains("exceed the block size"));
}

TEST_CASE("text data: windows, targets shifted by one, the split at a line break", "[gpt][data]") {
  std::string text = "abcdefghij\nklmnopqrst\nuvwxyz0123\n456789ABCD\nEFGHIJKLMN\n";  // 55 bytes
  auto c = brisk::data::load_text_corpus(write_file("brisk_text_split", text));
  // 95% of 55 bytes is byte 52; the first line break from there is the last byte (54), so the cut
  // after it would leave no validation text: it is clamped to keep one byte.
  CHECK(c.val_start == 54);
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "line " + std::to_string(i) + "\n";
  auto c2 = brisk::data::load_text_corpus(write_file("brisk_text_split2", long_text));
  int64_t mark = int64_t(double(long_text.size()) * 0.95);
  size_t nl = long_text.find('\n', size_t(mark));
  CHECK(c2.val_start == int64_t(nl + 1));
  CHECK(long_text[size_t(c2.val_start - 1)] == '\n');
  auto d = brisk::data::make_text_dataset(c2, true, 8);
  CHECK(d.size() == (c2.val_start - 1) / 8);
  brisk::data::DataLoader loader(d, brisk::data::in_order(3));
  loader.start_epoch(0);
  auto b = loader.next();
  REQUIRE(b);
  REQUIRE(b->x.shape() == Shape({3, 8}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t t = 0; t < 8; ++t) {
      CHECK(int64_t(b->x.select(0, i).select(0, t).item()) == (unsigned char)long_text[size_t(i * 8 + t)]);
      CHECK(int64_t(b->y.select(0, i).select(0, t).item()) == (unsigned char)long_text[size_t(i * 8 + t + 1)]);
    }
}

TEST_CASE("text data: missing, empty, binary and too-short files are refused by name", "[gpt][data][errors]") {
  using brisk::data::load_text_corpus;
  CHECK_THROWS_WITH(load_text_corpus("/nonexistent/brisk.txt"), Catch::Contains("no such file"));
  CHECK_THROWS_WITH(load_text_corpus(write_file("brisk_empty", "")), Catch::Contains("empty"));
  CHECK_THROWS_WITH(load_text_corpus(write_file("brisk_nul", std::string("ab\0cd", 5))),
                    Catch::Contains("not UTF-8 text") && Catch::Contains("byte 2"));
  CHECK_THROWS_WITH(load_text_corpus(write_file("brisk_latin1", "caf\xe9 au lait")), Catch::Contains("byte 3"));
  CHECK_THROWS_WITH(load_text_corpus(fs::temp_directory_path().string()), Catch::Contains("not a regular file"));
  CHECK_NOTHROW(load_text_corpus(write_file("brisk_utf8", "caf\xc3\xa9 \xe2\x82\xac ok\n")));
  auto c = load_text_corpus(write_file("brisk_short", "short text\nend\n"));
  CHECK_THROWS_WITH(brisk::data::make_text_dataset(c, false, 64), Catch::Contains("fewer than one window"));
  // A language model on images, an image model on text.
  TrainConfig a = lm_config("lm_bad_a");
  a.model = "cnn";
  CHECK_THROWS_WITH(brisk::train::Trainer(a), Catch::Contains("is text"));
  TrainConfig b = small_config("lm_bad_b");
  b.model = "gpt-tiny";
  CHECK_THROWS_WITH(brisk::train::Trainer(b), Catch::Contains("language models (gpt-*) train on text"));
  TrainConfig m = lm_config("lm_bad_m");
  m.methods = {"select:kind=el2n"};
  CHECK_THROWS_WITH(brisk::train::Trainer(m, brisk::efficiency::make_methods), Catch::Contains("language models"));
  CHECK_THROWS_WITH(TrainConfig().set("data", "text:"), Catch::Contains("unknown dataset"));
  CHECK_THROWS_WITH(TrainConfig().set("n-layer", "x"), Catch::Contains("n-layer"));
}

TEST_CASE("text data: the KJV from bible-kjv, split by books, through a token cache", "[gpt][data][kjv]") {
  if (std::system("command -v bible >/dev/null 2>&1") != 0) {
    WARN("SKIPPED: the bible command (package bible-kjv) is not installed");
    return;
  }
  fs::path dir = fs::temp_directory_path() / ("brisk_cache_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ::setenv("BRISK_CACHE_DIR", dir.c_str(), 1);
  auto c = brisk::data::load_text_corpus("kjv");
  REQUIRE(fs::exists(dir / "kjv.tokens"));
  std::string head(c.bytes.begin(), c.bytes.begin() + 40), val(c.bytes.begin() + c.val_start,
                                                               c.bytes.begin() + c.val_start + 12);
  CHECK(head.find("Genesis 1") != std::string::npos);
  CHECK(val == "Colossians 1");  // the last books holding >= 5% of the text
  double frac = double(int64_t(c.bytes.size()) - c.val_start) / double(c.bytes.size());
  CHECK(frac >= 0.05);
  CHECK(frac < 0.06);
  // The cache is read back identically; a damaged one is rebuilt, not trusted.
  auto again = brisk::data::load_text_corpus("kjv");
  CHECK(again.bytes == c.bytes);
  CHECK(again.val_start == c.val_start);
  {
    std::fstream f(dir / "kjv.tokens", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('#');
  }
  auto rebuilt = brisk::data::load_text_corpus("kjv");
  CHECK(rebuilt.bytes == c.bytes);
  ::unsetenv("BRISK_CACHE_DIR");
  fs::remove_all(dir);
}

TEST_CASE("gpt training: loss falls, metrics carry val_loss, val_bpb, tokens_per_s", "[gpt][train]") {
  TrainConfig c = lm_config("lm_train");
  brisk::train::Trainer t(c);
  auto r = t.fit();
  auto lines = read_jsonl(c.out + "/metrics.jsonl");
  REQUIRE(lines.size() == 2);
  for (auto& j : lines) {
    CHECK(j["val_bpb"].get<double>() == Approx(j["val_loss"].get<double>() / std::log(2.0)));
    CHECK(j["tokens_per_s"].get<double>() > 0);
    CHECK(j["val_loss"].get<double>() == j["test_loss"].get<double>());
  }
  CHECK(lines[0]["val_loss"].get<double>() < std::log(256.0) - 1.0);  // far below uniform over bytes
  CHECK(lines[1]["val_loss"].get<double>() < lines[0]["val_loss"].get<double>());
  CHECK(r.acc > 0.2);  // next-byte accuracy of a text with 10 words
}

TEST_CASE("gpt training: stop and resume is bit-exact", "[gpt][train][resume]") {
  TrainConfig c = lm_config("lm_resume");
  c.dropout = 0.1;  // the dropout stream must resume too
  check_resume_bit_exact(c, {5, 23});
}

TEST_CASE("generate: deterministic for a seed, the KV cache matches recomputation, bad settings refused", "[gpt][generate]") {
  TrainConfig c = lm_config("lm_gen");
  c.epochs = 1;
  brisk::train::Trainer(c).fit();
  auto model = brisk::train::load_gpt_checkpoint(c.out, c);
  auto run = [&](brisk::train::GenerateOptions o) {
    std::string s;
    brisk::train::generate(*model, o, [&](int64_t t) { s += char(t); });
    return s;
  };
  brisk::train::GenerateOptions o;
  o.prompt = "the lord";
  o.tokens = 20;  // 8 + 20 < block 32: the cached and recomputed contexts are the same
  o.seed = 4;
  std::string a = run(o), b = run(o);
  CHECK(a.size() == 20);
  CHECK(a == b);
  brisk::train::GenerateOptions greedy = o;
  greedy.temperature = 0;
  std::string g1 = run(greedy);
  greedy.kv_cache = false;
  CHECK(run(greedy) == g1);
  o.seed = 5;
  o.tokens = 60;  // past the block: the cache's window restarts
  CHECK(run(o).size() == 60);
  brisk::train::GenerateOptions bad = o;
  bad.temperature = -1;
  CHECK_THROWS_WITH(run(bad), Catch::Contains("--temperature"));
  bad = o;
  bad.top_k = 1000;
  CHECK_THROWS_WITH(run(bad), Catch::Contains("--top-k"));
  bad = o;
  bad.prompt = "";
  CHECK_THROWS_WITH(run(bad), Catch::Contains("--prompt"));
  CHECK_THROWS_WITH(brisk::train::load_gpt_checkpoint("/nonexistent", c), Catch::Contains("no checkpoint.json"));
  TrainConfig img = small_config("lm_gen_img");
  CHECK_THROWS_WITH(brisk::train::load_gpt_checkpoint(c.out, img), Catch::Contains("not a language model"));
}

TEST_CASE("gpt: golden test against PyTorch (logits, loss and every gradient)", "[gpt][golden]") {
  // bench/golden_gpt.py wrote the file with a current PyTorch: same model,
  // nanoGPT names, tied head, exact GELU, torch's causal SDPA.
  TensorMap g = load_safetensors(BRISK_TEST_DATA_DIR "/golden_gpt.safetensors");
  GPTConfig c;
  c.n_layer = 2, c.n_head = 2, c.n_embd = 32, c.block_size = 16;
  GPT m(c);
  TensorMap sd;
  for (auto& [k, v] : g)
    if (k.rfind("param/", 0) == 0) sd[k.substr(6)] = v;
  m.load_state_dict(sd);  // strict: every brisk parameter has a PyTorch twin of the same shape
  Tensor logits = m.forward(g.at("x"));
  // f32 through 2 blocks with sums of up to 128 terms
  CHECK(max_rel_err(logits, g.at("logits")) < dtype_tol(DType::f32, 128) * 4);
  Tensor loss = F::cross_entropy(logits.reshape({32, 256}), g.at("y").reshape({32}));
  CHECK(loss.item() == Approx(g.at("loss").item()).epsilon(1e-5));
  loss.backward();
  for (auto& [n, p] : m.named_parameters()) {
    INFO("grad of " << n);
    CHECK(max_rel_err(p.grad(), g.at("grad/" + n)) < dtype_tol(DType::f32, 128) * 4);
  }
}

TEST_CASE("gpt methods: sequence-length warmup trains the lengths of its ramp, resumes bit-exactly", "[gpt][methods]") {
  TrainConfig c = lm_config("lm_seqwarm");
  c.methods = {"seq-warmup:start=8,until=0.5,multiple=8"};
  brisk::train::Trainer t(c, brisk::efficiency::make_methods);
  std::vector<int64_t> lens;
  add_probe(t)->batch_start = [&](brisk::train::Trainer& tr) { lens.push_back(tr.batch.x.size(1)); };
  t.fit();
  // By hand: 84 loaded batches (2 epochs x 42), progress p = k / 84 before
  // batch k; L = floor((8 + 24 p / 0.5) / 8) * 8 until p = 0.5, then 32.
  REQUIRE(lens.size() == 84);
  for (size_t k = 0; k < lens.size(); ++k) {
    double p = double(k) / 84.0;
    int64_t want = p >= 0.5 ? 32 : int64_t(std::floor((8.0 + 24.0 * p / 0.5) / 8.0)) * 8;
    INFO("batch " << k);
    CHECK(lens[k] == want);
  }
  // Targets trained: the sum of B x L over the steps (B = 16).
  int64_t tokens = 0;
  for (int64_t l : lens) tokens += 16 * l;
  auto lines = read_jsonl(c.out + "/metrics.jsonl");
  CHECK(lines.back()["seq_len"] == 32);
  CHECK(lines.back()["tokens_per_s"].get<double>() * lines.back()["wall_s"].get<double>() ==
        Approx(double(tokens)).epsilon(1e-9));
  TrainConfig r = lm_config("lm_seqwarm_resume");
  r.methods = c.methods;
  check_resume_bit_exact(r, {7, 30});
  TrainConfig img = small_config("lm_seqwarm_img");
  img.methods = c.methods;
  CHECK_THROWS_WITH(brisk::train::Trainer(img, brisk::efficiency::make_methods).fit(),
                    Catch::Contains("for language models"));
  refused_spec("seq-warmup:until=0", "until must be in (0, 1]");
  refused_spec("seq-warmup:start=0", "start must be in");
}

TEST_CASE("gpt methods: 2:4 on the projections (not the embeddings), InfoBatch per sequence, bf16", "[gpt][methods]") {
  {
    TrainConfig c = lm_config("lm_prune24");
    c.epochs = 1;
    c.methods = {"prune:structure=2:4"};
    brisk::train::Trainer(c, brisk::efficiency::make_methods).fit();
    TensorMap fin = final_tensors(c.out);
    int checked = 0;
    for (auto& [k, v] : fin) {
      if (k.rfind("model/", 0) != 0 || v.dim() != 2) continue;
      std::vector<double> w = v.to_vector();
      int64_t cols = v.size(1), bad = 0, zeros = 0;
      for (size_t i = 0; i < w.size(); i += 4) {  // groups of 4 along the input dim (cols % 4 == 0)
        int64_t z = 0;
        for (size_t j = i; j < i + 4; ++j) z += w[j] == 0.0;
        bad += z < 2;
        zeros += z;
      }
      INFO(k << " [" << v.size(0) << ", " << cols << "]");
      if (k.find("wte") != std::string::npos || k.find("wpe") != std::string::npos) {
        CHECK(zeros == 0);  // embedding tables are not pruned
      } else {
        CHECK(bad == 0);  // every group of 4 keeps at most 2
        ++checked;
      }
    }
    CHECK(checked == 4);  // c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj of the one block
  }
  {
    // InfoBatch keys its statistics on window indices: epoch 2 visits fewer
    // windows than the dataset holds, each at most once, all in range.
    TrainConfig c = lm_config("lm_infobatch");
    c.methods = {"select:kind=infobatch,ratio=0.5"};
    brisk::train::Trainer t(c, brisk::efficiency::make_methods);
    std::map<int64_t, int> seen_e2;
    int64_t n = t.train_loader().dataset().size();
    add_probe(t)->batch_start = [&](brisk::train::Trainer& tr) {
      if (tr.state().epoch != 1) return;
      for (double i : tr.batch.indices.to_vector()) seen_e2[int64_t(i)]++;
    };
    t.fit();
    CHECK(int64_t(seen_e2.size()) < n);
    CHECK(int64_t(seen_e2.size()) > n / 2);
    for (auto& [i, k] : seen_e2) {
      CHECK(k == 1);
      CHECK((i >= 0 && i < n));
    }
  }
  {
    TrainConfig c = lm_config("lm_bf16");
    c.epochs = 1;
    c.methods = {"precision:dtype=bf16"};
    auto r = brisk::train::Trainer(c, brisk::efficiency::make_methods).fit();
    CHECK(std::isfinite(r.loss));
    CHECK(r.loss < std::log(256.0) - 1.0);
  }
  TrainConfig g = lm_config("lm_grow");
  g.methods = {"grow:kind=net2net"};  // msg and stack run on language models (test_gpt_growth.cpp)
  CHECK_THROWS_WITH(brisk::train::Trainer(g, brisk::efficiency::make_methods),
                    Catch::Contains("does not run on language models"));
}

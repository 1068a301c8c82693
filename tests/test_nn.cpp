// nn: modules, names, state dicts, init, layers, models, golden test vs PyTorch.
#include <filesystem>
#include <fstream>

#include "core/safetensors.h"
#include "models/models.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "tests/helpers.h"

using namespace bt;
using namespace brisk::nn;

TEST_CASE("nn: models have PyTorch's parameter names and counts", "[nn]") {
  auto cnn = brisk::models::cnn();
  std::vector<std::string> names;
  for (auto& [n, p] : cnn->named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>({"0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                                           "9.weight", "9.bias"}));
  CHECK(cnn->num_parameters() == 421642);  // torch: sum(p.numel())
  CHECK(brisk::models::mlp()->num_parameters() == 535818);
  auto rn = brisk::models::resnet();
  CHECK(rn->forward(randn({2, 1, 28, 28})).shape() == Shape({2, 10}));
  CHECK(rn->named_buffers().size() == 9 * 3);  // 9 BNs (stem, 2 per block, 2 shortcuts) x 3 buffers
  CHECK(brisk::models::mlp()->forward(randn({3, 1, 28, 28})).shape() == Shape({3, 10}));
  CHECK_THROWS_WITH(brisk::models::make_model("vgg"), Catch::Contains("unknown model 'vgg'"));
}

TEST_CASE("nn: default init matches torch's bounds", "[nn]") {
  Linear l(400, 30);
  double bound = 1 / std::sqrt(400.0);
  CHECK(max(abs(l.weight)).item() <= bound);
  CHECK(max(abs(l.weight)).item() > 0.9 * bound);  // actually spans the range
  CHECK(max(abs(l.bias)).item() <= bound);
  Conv2d c(8, 4, 3);
  CHECK(max(abs(c.weight)).item() <= 1 / std::sqrt(8.0 * 9));
  BatchNorm2d bn(5);
  CHECK(bn.weight.to_vector() == std::vector<double>(5, 1.0));
  CHECK(bn.running_var.to_vector() == std::vector<double>(5, 1.0));
  Tensor w = empty({200, 100});
  init::kaiming_normal_(w);
  CHECK(std::sqrt(var(w).item()) == Approx(std::sqrt(2.0 / 100)).epsilon(0.05));
}

TEST_CASE("nn: state_dict round-trips through safetensors", "[nn]") {
  manual_seed(1);
  auto a = brisk::models::resnet(0.25);
  manual_seed(2);
  auto b = brisk::models::resnet(0.25);
  std::string path = (std::filesystem::temp_directory_path() / "brisk_sd.safetensors").string();
  save_safetensors(path, a->state_dict(), {{"k", "v"}});
  std::map<std::string, std::string> meta;
  b->load_state_dict(load_safetensors(path, &meta));
  CHECK(meta["k"] == "v");
  Tensor x = randn({2, 1, 28, 28});
  a->eval();
  b->eval();
  CHECK(bit_equal(a->forward(x), b->forward(x)));
  auto sd = a->state_dict();
  CHECK(sd.count("3.bn1.running_mean"));
  CHECK(sd.at("3.bn1.num_batches_tracked").dtype() == DType::i64);
}

TEST_CASE("nn: load_state_dict names the offending key", "[nn]") {
  auto m = brisk::models::mlp();
  TensorMap sd = m->state_dict();
  sd["1.weight"] = zeros({3, 3});
  CHECK_THROWS_WITH(m->load_state_dict(sd), Catch::Contains("'1.weight'") && Catch::Contains("[3, 3]"));
  sd = m->state_dict();
  sd["extra"] = zeros({1});
  CHECK_THROWS_WITH(m->load_state_dict(sd), Catch::Contains("unexpected key 'extra'"));
  sd = m->state_dict();
  sd.erase("5.bias");
  CHECK_THROWS_WITH(m->load_state_dict(sd), Catch::Contains("missing key '5.bias'"));
  m->load_state_dict(sd, /*strict=*/false);
}

TEST_CASE("nn: safetensors rejects truncated and corrupt files", "[nn]") {
  auto dir = std::filesystem::temp_directory_path();
  std::string good = (dir / "brisk_good.safetensors").string();
  save_safetensors(good, {{"a", randn({10, 10})}});
  std::string bytes;
  {
    std::ifstream f(good, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  std::string trunc = (dir / "brisk_trunc.safetensors").string();
  atomic_write(trunc, bytes.substr(0, bytes.size() - 10));
  CHECK_THROWS_WITH(load_safetensors(trunc), Catch::Contains("brisk_trunc") && Catch::Contains("truncated"));
  std::string bad = bytes;
  bad[8] = '#';  // the opening brace of the JSON header
  std::string corrupt = (dir / "brisk_corrupt.safetensors").string();
  atomic_write(corrupt, bad);
  CHECK_THROWS_WITH(load_safetensors(corrupt), Catch::Contains("corrupt"));
  CHECK_THROWS_WITH(load_safetensors((dir / "nope.safetensors").string()), Catch::Contains("not found"));
  CHECK(load_safetensors(good).at("a").shape() == Shape({10, 10}));
}

TEST_CASE("nn: train/eval switches dropout and batch norm", "[nn]") {
  Sequential s({std::make_shared<Dropout>(0.5)});
  Tensor x = ones({1000});
  CHECK_FALSE(bit_equal(s.forward(x), x));
  s.eval();
  CHECK(bit_equal(s.forward(x), x));
  BatchNorm2d bn(3);
  Tensor y = randn({8, 3, 4, 4}) * 3.0 + 1.0;
  bn.forward(y);
  CHECK(bn.num_batches_tracked.item() == 1);
  CHECK(bn.running_mean.to_vector()[0] != 0.0);
  bn.eval();
  Tensor before = bn.running_mean.clone();
  bn.forward(y);
  CHECK(bit_equal(before, bn.running_mean));
}

TEST_CASE("nn: Sequential insert renames children", "[nn]") {
  Sequential s({std::make_shared<Linear>(4, 4), std::make_shared<ReLU>()});
  s.insert(1, std::make_shared<Linear>(4, 4));
  std::vector<std::string> names;
  for (auto& [n, p] : s.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>({"0.weight", "0.bias", "1.weight", "1.bias"}));
  CHECK(s.size() == 3);
  CHECK(s.str().find("(1): Linear(4, 4)") != std::string::npos);
}

TEST_CASE("nn: multi-head self-attention shapes, causality and gradients", "[nn]") {
  MultiheadSelfAttention attn(8, 2, /*causal=*/true);
  Tensor x = randn({2, 5, 8});
  Tensor y = attn.forward(x);
  CHECK(y.shape() == Shape({2, 5, 8}));
  // Changing the last token must not change earlier outputs (causal mask).
  Tensor x2 = x.clone();
  {
    NoGradGuard ng;
    x2.narrow(1, 4, 1).fill_(7.0);
  }
  Tensor y2 = attn.forward(x2);
  CHECK(max_rel_err(y.narrow(1, 0, 4), y2.narrow(1, 0, 4)) == 0.0);
  CHECK(max_rel_err(y.narrow(1, 4, 1), y2.narrow(1, 4, 1)) > 0.0);
  sum(y).backward();
  CHECK(attn.in_proj->weight.grad().defined());
  Embedding emb(10, 4);
  CHECK(emb.forward(from_vector({1, 9}, {2}, DType::i64)).shape() == Shape({2, 4}));
}

TEST_CASE("nn: golden test against PyTorch on the cnn", "[nn][golden]") {
  TensorMap g = load_safetensors(BRISK_TEST_DATA_DIR "/golden_cnn.safetensors");
  auto model = brisk::models::cnn();
  TensorMap sd;
  for (auto& [k, v] : g)
    if (k.rfind("param/", 0) == 0) sd[k.substr(6)] = v;
  model->load_state_dict(sd);
  Tensor logits = model->forward(g.at("x"));
  // f32 with K up to 3136 terms: tolerance from the dtype, as in the kernel tests.
  CHECK(max_rel_err(logits, g.at("logits")) < dtype_tol(DType::f32, 3136));
  Tensor loss = brisk::nn::functional::cross_entropy(logits, g.at("y"));
  CHECK(loss.item() == Approx(g.at("loss").item()).epsilon(1e-5));
  loss.backward();
  for (auto& [n, p] : model->named_parameters()) {
    INFO("grad of " << n);
    CHECK(max_rel_err(p.grad(), g.at("grad/" + n)) < dtype_tol(DType::f32, 3136));
  }
}

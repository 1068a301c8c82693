// GPT model (see models/gpt.h).
#include "models/gpt.h"

#include <cmath>

#include "nn/init.h"

namespace brisk::models {

using namespace brisk::nn;

void GPTConfig::validate() const {
  BRISK_CHECK(vocab_size > 0 && vocab_size <= (int64_t(1) << 24), "gpt: vocab_size must be in [1, 2^24], got ",
              vocab_size);
  BRISK_CHECK(block_size > 0 && block_size <= 65536, "gpt: --block-size must be in [1, 65536], got ", block_size);
  BRISK_CHECK(n_layer > 0 && n_layer <= 256, "gpt: --n-layer must be in [1, 256], got ", n_layer);
  BRISK_CHECK(n_head > 0 && n_embd > 0 && n_embd <= 65536, "gpt: --n-head and --n-embd must be positive (n_embd <= 65536), got ",
              n_head, " and ", n_embd);
  BRISK_CHECK(n_embd % n_head == 0, "gpt: --n-embd ", n_embd, " must be divisible by --n-head ", n_head);
  BRISK_CHECK(dropout >= 0 && dropout < 1, "gpt: --dropout must be in [0, 1), got ", dropout);
}

CausalSelfAttention::CausalSelfAttention(const GPTConfig& c)
    : n_head(c.n_head), n_embd(c.n_embd), head_dim(c.n_embd / c.n_head), dropout(c.dropout) {
  c_attn = register_module("c_attn", std::make_shared<Linear>(n_embd, 3 * n_embd));
  c_proj = register_module("c_proj", std::make_shared<Linear>(n_embd, n_embd));
}

Tensor CausalSelfAttention::forward_cached(const Tensor& x, Tensor* kc, Tensor* vc) {
  BRISK_CHECK(x.dim() == 3 && x.size(2) == n_embd, "CausalSelfAttention: expected input [B, T, ", n_embd,
              "], got ", shape_str(x.shape()));
  int64_t B = x.size(0), T = x.size(1), Dh = head_dim, I = n_head * head_dim;
  Tensor qkv = c_attn->forward(x);  // [B, T, 3I]
  if (!kc) {  // training and evaluation: heads read in place, y comes out [B, T, I]
    Tensor y = F::attention_packed_qkv(qkv, n_head, /*causal=*/true);
    if (head_gate.defined())
      y = (y.reshape({B, T, n_head, Dh}) * head_gate.reshape({1, 1, n_head, 1})).reshape({B, T, I});
    return F::dropout(c_proj->forward(y), dropout, is_training());
  }
  auto heads = [&](int64_t i) {     // -> [B, H, T, Dh]
    return qkv.narrow(2, i * I, I).reshape({B, T, n_head, Dh}).transpose(1, 2);
  };
  // Decoding: attend over the cached keys too (causal lines queries up with the last keys).
  Tensor q = heads(0), k = heads(1), v = heads(2);
  *kc = kc->defined() ? cat({*kc, k.contiguous()}, 2) : k.contiguous();
  *vc = vc->defined() ? cat({*vc, v.contiguous()}, 2) : v.contiguous();
  Tensor y = F::scaled_dot_product_attention(q, *kc, *vc, /*causal=*/true);  // [B, H, T, Dh]
  if (head_gate.defined()) y = y * head_gate.reshape({1, n_head, 1, 1});
  y = c_proj->forward(y.transpose(1, 2).reshape({B, T, I}));
  return F::dropout(y, dropout, is_training());
}

std::string CausalSelfAttention::repr() const {
  return "CausalSelfAttention(" + std::to_string(n_embd) + ", heads=" + std::to_string(n_head) + ")";
}

GPTBlock::GPTBlock(const GPTConfig& c) : dropout(c.dropout) {
  ln_1 = register_module("ln_1", std::make_shared<LayerNorm>(Shape{c.n_embd}));
  attn = register_module("attn", std::make_shared<CausalSelfAttention>(c));
  ln_2 = register_module("ln_2", std::make_shared<LayerNorm>(Shape{c.n_embd}));
  mlp = register_module("mlp", std::make_shared<GPTMLP>(c));
}

GPTMLP::GPTMLP(const GPTConfig& c) {
  c_fc = register_module("c_fc", std::make_shared<Linear>(c.n_embd, 4 * c.n_embd));
  c_proj = register_module("c_proj", std::make_shared<Linear>(4 * c.n_embd, c.n_embd));
}

Tensor GPTMLP::forward(const Tensor& x) {
  Tensor a = F::linear_gelu(x, c_fc->weight, c_fc->bias);  // bias + GELU fused
  return c_proj->forward(gate.defined() ? a * gate : a);
}

Tensor GPTBlock::forward_cached(const Tensor& x, Tensor* k, Tensor* v) {
  Tensor h = x + attn->forward_cached(ln_1->forward(x), k, v);
  Tensor m = mlp->forward(ln_2->forward(h));
  return h + F::dropout(m, dropout, is_training());
}

GPT::GPT(const GPTConfig& c) : config(c) {
  config.validate();
  wte = register_module("wte", std::make_shared<Embedding>(c.vocab_size, c.n_embd));
  wpe = register_module("wpe", std::make_shared<Embedding>(c.block_size, c.n_embd));
  h = register_module("h", std::make_shared<Sequential>());
  for (int64_t i = 0; i < c.n_layer; ++i) {
    blocks.push_back(std::make_shared<GPTBlock>(c));
    h->push_back(blocks.back());
  }
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(Shape{c.n_embd}));
  // GPT-2 initialization: N(0, 0.02) weights, zero biases, and the residual
  // projections scaled by 1/sqrt(2 n_layer) so the residual stream's variance
  // does not grow with depth.
  for (auto& [name, p] : named_parameters()) {
    bool is_ln = name.find("ln_") != std::string::npos;
    if (is_ln) continue;  // LayerNorm keeps weight 1, bias 0
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      init::constant_(p, 0);
      continue;
    }
    bool residual = name.find("c_proj.weight") != std::string::npos;
    init::normal_(p, 0, residual ? 0.02 / std::sqrt(2.0 * double(c.n_layer)) : 0.02);
  }
}

Tensor GPT::run(const Tensor& idx, int64_t pos0, KVCache* cache) {
  BRISK_CHECK(idx.dim() == 2 && idx.dtype() == DType::i64, "gpt: expected token ids i64 [B, T], got ",
              idx.dtype(), " ", shape_str(idx.shape()));
  int64_t T = idx.size(1);
  BRISK_CHECK(T > 0 && pos0 + T <= config.block_size, "gpt: ", pos0 + T, " positions exceed the block size ",
              config.block_size, " (the longest context this model was built for)");
  Tensor pos = arange(double(pos0), double(pos0 + T), 1.0, TensorOptions(DType::i64, idx.device()));
  Tensor x = F::dropout(wte->forward(idx) + wpe->forward(pos), config.dropout, is_training());  // [B, T, E]
  if (cache) {
    cache->k.resize(blocks.size());
    cache->v.resize(blocks.size());
  }
  for (size_t i = 0; i < blocks.size(); ++i)
    x = cache ? blocks[i]->forward_cached(x, &cache->k[i], &cache->v[i]) : blocks[i]->forward(x);
  return F::linear(ln_f->forward(x), wte->weight);  // tied head: [B, T, V]
}

Tensor GPT::forward(const Tensor& idx) { return run(idx, 0, nullptr); }

Tensor GPT::forward_cached(const Tensor& idx, KVCache& cache) { return run(idx, cache.length(), &cache); }

std::string GPT::repr() const {
  return "GPT(layers=" + std::to_string(config.n_layer) + ", heads=" + std::to_string(config.n_head) +
         ", embd=" + std::to_string(config.n_embd) + ", block=" + std::to_string(config.block_size) +
         ", vocab=" + std::to_string(config.vocab_size) + ")";
}

bool is_gpt(const std::string& name) { return name == "gpt-tiny" || name == "gpt-small"; }

GPTConfig gpt_config(const std::string& name, const GPTOptions& over) {
  GPTConfig c;
  if (name == "gpt-tiny") {
    c.n_layer = 2, c.n_head = 2, c.n_embd = 64, c.block_size = 64;
  } else if (name == "gpt-small") {
    c.n_layer = 4, c.n_head = 4, c.n_embd = 128, c.block_size = 128;
  } else {
    BRISK_FAIL("unknown gpt size '", name, "' (known: gpt-tiny, gpt-small)");
  }
  if (over.vocab_size > 0) c.vocab_size = over.vocab_size;
  if (over.block_size > 0) c.block_size = over.block_size;
  if (over.n_layer > 0) c.n_layer = over.n_layer;
  if (over.n_head > 0) c.n_head = over.n_head;
  if (over.n_embd > 0) c.n_embd = over.n_embd;
  if (over.dropout >= 0) c.dropout = over.dropout;
  c.validate();
  return c;
}

}  // namespace brisk::models

// GPT: a decoder-only transformer language model (GPT-2 layout, nanoGPT
// parameter names): token + learned position embeddings, n_layer pre-LayerNorm
// blocks of causal multi-head self-attention and a GELU MLP (4x width), a final
// LayerNorm, and an output head tied to the token embedding.
//
// forward(idx i64 [B, T]) -> logits [B, T, vocab]. generate-style decoding
// goes through forward_cached with a KVCache: each new token attends to the
// cached keys and values of the earlier ones, so it costs O(T), not O(T^2).
#pragma once
#include <memory>
#include <vector>

#include "nn/layers.h"

namespace brisk::models {

struct GPTConfig {
  int64_t vocab_size = 256;  // byte-level tokens
  int64_t block_size = 128;  // longest context (rows of the position embedding)
  int64_t n_layer = 4, n_head = 4, n_embd = 128;
  double dropout = 0.0;  // on embeddings, attention output and MLP output
  void validate() const;  // throws naming the bad field
};

// Keys and values of every layer for the tokens seen so far: [B, H, t, Dh].
struct KVCache {
  std::vector<Tensor> k, v;
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
};

class CausalSelfAttention : public nn::Module {
 public:
  CausalSelfAttention(const GPTConfig& c);
  Tensor forward(const Tensor& x) override { return forward_cached(x, nullptr, nullptr); }
  // x [B, T, E]; with a cache, appends this call's keys/values to *k, *v and
  // attends over all of them.
  Tensor forward_cached(const Tensor& x, Tensor* k, Tensor* v);
  std::string repr() const override;
  int64_t n_head, n_embd, head_dim;  // the heads' width n_head * head_dim is n_embd until heads are added
  double dropout;
  std::shared_ptr<nn::Linear> c_attn, c_proj;  // E -> 3I (q, k, v), I -> E; I = n_head * head_dim
  // Masked structural growth of the heads (efficiency/growth/gpt_surgery.h):
  // buffers `head_gate` [n_head] scaling each head's output before c_proj,
  // and `head_birth` [n_head]; undefined until heads are added.
  Tensor head_gate, head_birth;
};

// c_proj(gelu(c_fc(x))): E -> 4E -> E.
class GPTMLP : public nn::Module {
 public:
  explicit GPTMLP(const GPTConfig& c);
  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "GPTMLP"; }
  std::shared_ptr<nn::Linear> c_fc, c_proj;
  // Masked structural growth of the hidden units: buffers `gate` [hidden]
  // multiplying gelu's output, and `birth` [hidden]; undefined until grown.
  Tensor gate, birth;
};

class GPTBlock : public nn::Module {
 public:
  explicit GPTBlock(const GPTConfig& c);
  Tensor forward(const Tensor& x) override { return forward_cached(x, nullptr, nullptr); }
  Tensor forward_cached(const Tensor& x, Tensor* k, Tensor* v);
  std::string repr() const override { return "GPTBlock"; }
  double dropout;
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2;
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<GPTMLP> mlp;
};

class GPT : public nn::Module {
 public:
  explicit GPT(const GPTConfig& c);
  Tensor forward(const Tensor& idx) override;
  // idx [B, Tnew] continuing the tokens already in `cache` (empty: none);
  // returns logits [B, Tnew, vocab] and extends the cache. Positions
  // continue from cache.length(); the total must stay within block_size.
  Tensor forward_cached(const Tensor& idx, KVCache& cache);
  std::string repr() const override;
  GPTConfig config;
  std::shared_ptr<nn::Embedding> wte, wpe;
  std::shared_ptr<nn::Sequential> h;  // the GPTBlocks, children "0", "1", ... (not run as a Sequential)
  std::vector<std::shared_ptr<GPTBlock>> blocks;  // the same blocks, typed
  std::shared_ptr<nn::LayerNorm> ln_f;

 private:
  Tensor run(const Tensor& idx, int64_t pos0, KVCache* cache);
};

// Settings that replace a registered size's defaults where > 0 (dropout: >= 0).
struct GPTOptions {
  int64_t vocab_size = 0, block_size = 0, n_layer = 0, n_head = 0, n_embd = 0;
  double dropout = -1;
};
// The registered sizes: "gpt-tiny" (2 layers, 2 heads, 64 wide, context 64)
// and "gpt-small" (4, 4, 128, 128), with `over` applied.
GPTConfig gpt_config(const std::string& name, const GPTOptions& over);
bool is_gpt(const std::string& model_name);

}  // namespace brisk::models

// Growth surgery on the GPT (see gpt_surgery.h).
#include "efficiency/growth/gpt_surgery.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "nn/init.h"
#include "surgery/surgery.h"

namespace brisk::efficiency::growth_methods {

namespace {

std::string key(size_t block, const std::string& rest) { return "h." + std::to_string(block) + "." + rest; }

// 0, 1, ..., keep - 1 followed by `extra` new entries (-1).
std::vector<int64_t> first_then_new(int64_t keep, int64_t extra) {
  std::vector<int64_t> s(size_t(keep + extra), -1);
  for (int64_t j = 0; j < keep; ++j) s[size_t(j)] = j;
  return s;
}

// c_attn's rows are three sections (q, k, v) of n_head * head_dim each: the
// first `keep` heads' rows of each section, then `extra` heads' new rows.
std::vector<int64_t> qkv_rows(int64_t old_width, int64_t keep, int64_t extra) {
  std::vector<int64_t> s;
  for (int64_t sec = 0; sec < 3; ++sec) {
    for (int64_t j = 0; j < keep; ++j) s.push_back(sec * old_width + j);
    s.insert(s.end(), size_t(extra), -1);
  }
  return s;
}

Tensor normal(const Shape& s, double std, Generator* g) {
  Tensor t = zeros(s);
  if (std > 0) nn::init::normal_(t, 0, std, g);
  return t;
}

// Resizes a Linear's output rows (dim 0 of weight and bias) or input columns
// (dim 1 of weight) by `source`; new entries drawn with `std` (biases zero).
void resize_linear(nn::Linear& l, bool rows, const std::vector<int64_t>& source, double std, Generator* g,
                   optim::Optimizer* opt, const std::string& k) {
  int64_t n = int64_t(source.size());
  Shape ws = l.weight.shape();
  ws[rows ? 0 : 1] = n;
  bool any_new = std::any_of(source.begin(), source.end(), [](int64_t j) { return j < 0; });
  l.weight = nn::remap_parameter(l, "weight", rows ? 0 : 1, source, any_new ? normal(ws, std, g) : Tensor(), opt,
                                 k + ".weight");
  if (rows && l.bias.defined()) l.bias = nn::remap_parameter(l, "bias", 0, source, Tensor(), opt, k + ".bias");
  if (rows) l.out_features = n;
  else l.in_features = n;
}

// A gate and birth pair resized by `source`: kept units keep theirs (1 and -1
// where the module had none yet), new ones start at 0 and are born at `step`.
void resize_gate(nn::Module& m, Tensor& gate, Tensor& birth, const char* gname, const char* bname,
                 const std::vector<int64_t>& source, double step) {
  std::vector<double> gv, bv;
  std::vector<double> og = gate.defined() ? gate.to_vector() : std::vector<double>{};
  std::vector<double> ob = birth.defined() ? birth.to_vector() : std::vector<double>{};
  for (int64_t j : source) {
    bool kept = j >= 0;
    gv.push_back(!kept ? 0.0 : og.empty() ? 1.0 : og[size_t(j)]);
    bv.push_back(!kept ? step : ob.empty() ? -1.0 : ob[size_t(j)]);
  }
  bool all_original = std::all_of(bv.begin(), bv.end(), [](double b) { return b < 0; });
  if (all_original && !gate.defined()) return;  // a cut of a model never grown: no gates
  gate = m.register_buffer(gname, from_vector(gv, {int64_t(gv.size())}));
  birth = m.register_buffer(bname, from_vector(bv, {int64_t(bv.size())}));
}

// Sets every block's MLP to `source` units and its attention to `head_src` heads.
void resize_width(models::GPT& g, const std::vector<int64_t>& source, const std::vector<int64_t>& head_src,
                  optim::Optimizer* opt, double step, Generator* gen) {
  NoGradGuard ng;
  const double std = 0.02, res_std = 0.02 / std::sqrt(2.0 * double(g.blocks.size()));
  for (size_t b = 0; b < g.blocks.size(); ++b) {
    models::GPTMLP& mlp = *g.blocks[b]->mlp;
    resize_linear(*mlp.c_fc, true, source, std, gen, opt, key(b, "mlp.c_fc"));
    resize_linear(*mlp.c_proj, false, source, res_std, gen, opt, key(b, "mlp.c_proj"));
    resize_gate(mlp, mlp.gate, mlp.birth, "gate", "birth", source, step);

    models::CausalSelfAttention& at = *g.blocks[b]->attn;
    int64_t keep = 0, extra = 0;
    for (int64_t h : head_src) (h >= 0 ? keep : extra)++;
    const int64_t Dh = at.head_dim, width = at.n_head * Dh;
    // Kept heads are a prefix (cuts keep the first ones; growth appends).
    for (int64_t i = 0; i < keep; ++i)
      BRISK_CHECK(head_src[size_t(i)] == i, "gpt surgery: heads must be kept as a prefix");
    resize_linear(*at.c_attn, true, qkv_rows(width, keep * Dh, extra * Dh), std, gen, opt, key(b, "attn.c_attn"));
    resize_linear(*at.c_proj, false, first_then_new(keep * Dh, extra * Dh), res_std, gen, opt,
                  key(b, "attn.c_proj"));
    at.n_head = keep + extra;
    resize_gate(at, at.head_gate, at.head_birth, "head_gate", "head_birth", head_src, step);
  }
  g.config.n_head = int64_t(head_src.size());
}

// A copy of block `src` (a model at its configured widths: stacking does not
// compose with width growth, which `--method` refuses as two grow methods).
std::shared_ptr<models::GPTBlock> copy_block(const models::GPT& g, const models::GPTBlock& src) {
  auto copy = std::make_shared<models::GPTBlock>(g.config);
  auto sp = src.named_parameters(), cp = copy->named_parameters();
  BRISK_CHECK(sp.size() == cp.size() && !src.mlp->gate.defined() && !src.attn->head_gate.defined(),
              "gpt stack: block ", src.repr(), " is not at the model's configured widths (a width-grown model "
              "cannot be stacked)");
  NoGradGuard ng;
  for (size_t k = 0; k < sp.size(); ++k) {
    BRISK_CHECK(sp[k].second.shape() == cp[k].second.shape(), "gpt stack: ", sp[k].first, " is ",
                shape_str(sp[k].second.shape()), ", not the configured ", shape_str(cp[k].second.shape()),
                " (a width-grown model cannot be stacked)");
    cp[k].second.detach().copy_(sp[k].second.detach());
  }
  return copy;
}

}  // namespace

models::GPT* as_gpt(nn::Module& m) { return dynamic_cast<models::GPT*>(&m); }

int64_t gpt_hidden(const models::GPT& g) { return g.blocks.front()->mlp->c_fc->out_features; }
int64_t gpt_heads(const models::GPT& g) { return g.blocks.front()->attn->n_head; }

void gpt_truncate(models::GPT& g, int64_t n, optim::Optimizer* opt) {
  BRISK_CHECK(n >= 1 && n <= int64_t(g.blocks.size()), "gpt surgery: cannot keep ", n, " of ", g.blocks.size(),
              " blocks");
  std::set<TensorImpl*> gone;
  while (int64_t(g.blocks.size()) > n) {
    for (auto& [name, p] : g.blocks.back()->named_parameters()) gone.insert(p.unsafe_impl());
    g.h->erase(g.blocks.size() - 1);
    g.blocks.pop_back();
  }
  g.config.n_layer = n;
  if (!opt) return;
  nn::remove_from_optimizer(opt, gone);
  nn::rekey_optimizer(g, opt, "");
}

int64_t gpt_stack(models::GPT& g, int64_t max_layers, optim::Optimizer* opt) {
  const int64_t L = int64_t(g.blocks.size()), want = std::min(2 * L, max_layers);
  for (int64_t i = 0; L + i < want; ++i) {
    g.blocks.push_back(copy_block(g, *g.blocks[size_t(i)]));
    g.h->push_back(g.blocks.back());
  }
  g.config.n_layer = int64_t(g.blocks.size());
  nn::rekey_optimizer(g, opt, "");  // the copies join with no state
  return want > L ? want - L : 0;
}

void gpt_cut_width(models::GPT& g, int64_t hidden, int64_t heads, optim::Optimizer* opt) {
  BRISK_CHECK(hidden >= 1 && hidden <= gpt_hidden(g) && heads >= 1 && heads <= gpt_heads(g),
              "gpt surgery: cannot cut to ", hidden, " hidden units and ", heads, " heads from ", gpt_hidden(g),
              " and ", gpt_heads(g));
  resize_width(g, first_then_new(hidden, 0), first_then_new(heads, 0), opt, -1, nullptr);
}

void gpt_widen_masked(models::GPT& g, int64_t hidden, int64_t heads, optim::Optimizer* opt, int64_t step,
                      Generator* gen) {
  int64_t h0 = gpt_hidden(g), n0 = gpt_heads(g);
  BRISK_CHECK(hidden >= h0 && heads >= n0, "gpt surgery: cannot grow to ", hidden, " hidden units and ", heads,
              " heads from ", h0, " and ", n0);
  resize_width(g, first_then_new(h0, hidden - h0), first_then_new(n0, heads - n0), opt, double(step), gen);
}

void gpt_ramp_gates(models::GPT& g, double now, double ramp_steps) {
  for (auto& b : g.blocks) {
    if (b->mlp->gate.defined()) nn::ramp_gate(b->mlp->gate, b->mlp->birth, now, ramp_steps);
    if (b->attn->head_gate.defined()) nn::ramp_gate(b->attn->head_gate, b->attn->head_birth, now, ramp_steps);
  }
}

}  // namespace brisk::efficiency::growth_methods

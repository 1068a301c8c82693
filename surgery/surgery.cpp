// widen / deepen with optimizer state remapping.
#include "surgery/surgery.h"

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "core/mask.h"
#include "nn/channel_groups.h"

namespace brisk::nn {

namespace {

std::string key(const std::string& prefix, size_t layer, const std::string& name) {
  return (prefix.empty() ? "" : prefix + ".") + std::to_string(layer) + "." + name;
}

// new[j] = old[source[j]] along `dim`; positions j >= n are "new".
Tensor gather_dim(const Tensor& old, int64_t dim, const std::vector<int64_t>& source) {
  Tensor idx = from_vector(std::vector<double>(source.begin(), source.end()), {int64_t(source.size())}, DType::i64);
  return index_select(old.detach(), dim, idx).contiguous();
}

// Same shape as gather_dim, but new positions (j >= n) are zero.
Tensor extend_zero(const Tensor& old, int64_t dim, int64_t new_size) {
  Shape s = old.shape();
  s[size_t(dim)] = new_size;
  Tensor out = zeros(s, TensorOptions(old.dtype()));
  NoGradGuard ng;
  out.narrow(dim, 0, old.size(dim)).copy_(old.detach());
  return out;
}

// Replace parameter `k` in the optimizer (if present) and remap its state.
void remap(optim::Optimizer* opt, const std::string& k, const Tensor& new_param,
           const std::function<Tensor(const std::string&, const Tensor&)>& f) {
  if (!opt) return;
  bool found = false;
  for (auto& [n, p] : opt->params())
    if (n == k) found = true;
  if (!found) return;
  opt->replace_param(k, new_param);
  auto it = opt->state().find(k);
  if (it == opt->state().end()) return;
  for (auto& [sk, t] : it->second)
    if (t.dim() > 0) t = f(sk, t);
}

// Rows `rows` (dim 0) of a parameter or buffer: weight rows, biases, BN
// vectors. The optimizer state of a parameter is either gathered with the same
// rows (pruning) or kept for the old rows and zero for the new ones (growth,
// where rows[j] for j >= old size names the copied unit).
enum class StateRows { gather, zero_new };
Tensor remap_rows(Module& m, const std::string& name, const std::vector<int64_t>& rows, optim::Optimizer* opt,
                  const std::string& k, bool is_param, StateRows state = StateRows::gather) {
  Tensor old = is_param ? m.parameter(name) : Tensor();
  if (!is_param)
    for (auto& [n, b] : m.named_buffers())
      if (n == name) old = b;
  Tensor fresh = gather_dim(old, 0, rows);
  Tensor stored = is_param ? m.register_parameter(name, fresh) : m.register_buffer(name, fresh);
  if (is_param)
    remap(opt, k, stored, [&](const std::string&, const Tensor& s) {
      return state == StateRows::gather ? gather_dim(s, 0, rows) : extend_zero(s, 0, int64_t(rows.size()));
    });
  return stored;
}

// The consumer of layer `layer` in seq: its index and inputs per producer unit.
// A Gate on the way is allowed only where the caller extends it (MSG).
std::pair<size_t, int64_t> find_consumer(Sequential& seq, size_t from, int64_t n, const char* op,
                                         bool allow_gate = false) {
  size_t ci = from;
  for (; ci < seq.size(); ++ci) {
    Module& m = *seq[ci];
    if (dynamic_cast<Linear*>(&m) || dynamic_cast<Conv2d*>(&m)) break;
    BRISK_CHECK(!dynamic_cast<BatchNorm2d*>(&m) && !dynamic_cast<LayerNorm*>(&m) &&
                    !dynamic_cast<ResidualBlock*>(&m) && !dynamic_cast<Sequential*>(&m) &&
                    (allow_gate || !dynamic_cast<Gate*>(&m)),
                op, ": cannot carry the change through ", m.repr(), " at position ", ci);
  }
  BRISK_CHECK(ci < seq.size(), op, ": no Linear or Conv2d consumes the layer's outputs");
  int64_t per_unit = 1;
  if (auto clin = std::dynamic_pointer_cast<Linear>(seq[ci])) {
    BRISK_CHECK(clin->in_features % n == 0, op, ": consumer ", clin->repr(), " does not take ", n, " units");
    per_unit = clin->in_features / n;
  }
  if (auto cconv = std::dynamic_pointer_cast<Conv2d>(seq[ci]))
    BRISK_CHECK(cconv->groups == 1, op, ": grouped consumer convolutions are not supported");
  return {ci, per_unit};
}

}  // namespace

// Children after an insertion point were renamed: re-key the optimizer,
// keeping every entry's state, and add new parameters with no state.
void rekey_optimizer(Module& seq, optim::Optimizer* opt, const std::string& prefix) {
  if (!opt) return;
  std::map<TensorImpl*, std::string> renamed;
  for (auto& [n, p] : seq.named_parameters()) renamed[p.unsafe_impl()] = (prefix.empty() ? "" : prefix + ".") + n;
  optim::NamedParams out;
  std::map<std::string, TensorMap> state;
  for (auto& [on, op] : opt->params()) {
    auto it = renamed.find(op.unsafe_impl());
    std::string nn = it == renamed.end() ? on : it->second;
    if (it != renamed.end()) renamed.erase(it);
    out.emplace_back(nn, op);
    auto st = opt->state().find(on);
    if (st != opt->state().end()) state[nn] = st->second;
  }
  for (auto& [n, p] : seq.named_parameters())
    if (renamed.count(p.unsafe_impl())) out.emplace_back(renamed[p.unsafe_impl()], p);
  opt->reset_params(out);
  opt->state() = state;
}

Tensor remap_parameter(Module& m, const std::string& name, int64_t dim, const std::vector<int64_t>& source,
                       const Tensor& fresh, optim::Optimizer* opt, const std::string& key) {
  Tensor old = m.parameter(name);
  BRISK_CHECK(dim >= 0 && dim < old.dim(), "remap_parameter: dim ", dim, " out of range for ", name, " ",
              shape_str(old.shape()));
  Shape s = old.shape();
  s[size_t(dim)] = int64_t(source.size());
  BRISK_CHECK(!fresh.defined() || fresh.shape() == s, "remap_parameter: fresh values for ", name, " must be ",
              shape_str(s), ", got ", shape_str(fresh.shape()));
  for (int64_t j : source)
    BRISK_CHECK(j < old.size(dim), "remap_parameter: source index ", j, " out of range for ", name, " ",
                shape_str(old.shape()));
  auto build = [&](const Tensor& from, bool use_fresh) {
    NoGradGuard ng;
    Tensor out = use_fresh && fresh.defined() ? fresh.detach().to(from.dtype()).contiguous().clone()
                                              : zeros(s, TensorOptions(from.dtype()));
    for (size_t j = 0; j < source.size(); ++j)
      if (source[j] >= 0) out.narrow(dim, int64_t(j), 1).copy_(from.detach().narrow(dim, source[j], 1));
    return out;
  };
  Tensor stored = m.register_parameter(name, build(old, true));
  remap(opt, key, stored, [&](const std::string&, const Tensor& st) {
    return st.shape() == old.shape() ? build(st, false) : st;  // per-element state only
  });
  return stored;
}

size_t widen_masked(Sequential& seq, size_t layer, int64_t new_width, optim::Optimizer* opt, int64_t step,
                    Generator* gen, const std::string& prefix) {
  BRISK_CHECK(layer < seq.size(), "widen_masked: layer ", layer, " out of range for a Sequential of ", seq.size());
  auto lin = std::dynamic_pointer_cast<Linear>(seq[layer]);
  auto conv = std::dynamic_pointer_cast<Conv2d>(seq[layer]);
  BRISK_CHECK(lin || conv, "widen_masked: layer ", layer, " is ", seq[layer]->repr(), "; only Linear and Conv2d");
  BRISK_CHECK(!conv || conv->groups == 1, "widen_masked: grouped convolutions are not supported");
  int64_t n = lin ? lin->out_features : conv->out_channels;
  BRISK_CHECK(new_width >= n, "widen_masked: new width ", new_width, " is smaller than the current ", n);
  Generator& g = gen ? *gen : default_generator();
  int64_t extra = new_width - n;
  bool bn_next = conv && layer + 1 < seq.size() && dynamic_cast<BatchNorm2d*>(seq[layer + 1].get());
  auto [ci, per_unit] = find_consumer(seq, layer + 1 + (bn_next ? 1 : 0), n, "widen_masked", /*allow_gate=*/true);
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default bound for weights and biases.
  auto fresh = [&](Shape s, double fan_in) {
    double b = 1.0 / std::sqrt(fan_in);
    return (rand(s, DType::f32, &g) * (2 * b) - b).detach();
  };
  auto grow_dim = [&](const Tensor& old, int64_t dim, const Tensor& add) {
    return cat({old.detach(), add.to(old.dtype())}, dim).contiguous();
  };
  auto zero_state = [&](const std::string& k, const Tensor& np, int64_t dim) {
    remap(opt, k, np, [&](const std::string&, const Tensor& s) { return extend_zero(s, dim, np.size(dim)); });
  };
  Module& prod = *seq[layer];
  Tensor w = prod.parameter("weight");
  double fan_in = double(w.numel() / n);
  Shape rs = w.shape();
  rs[0] = extra;
  Tensor w2 = prod.register_parameter("weight", grow_dim(w, 0, fresh(rs, fan_in)));
  zero_state(key(prefix, layer, "weight"), w2, 0);
  Tensor b2;
  if ((lin ? lin->bias : conv->bias).defined()) {
    b2 = prod.register_parameter("bias", grow_dim(prod.parameter("bias"), 0, fresh({extra}, fan_in)));
    zero_state(key(prefix, layer, "bias"), b2, 0);
  }
  if (lin) { lin->weight = w2; lin->bias = b2; lin->out_features = new_width; }
  else { conv->weight = w2; conv->bias = b2; conv->out_channels = new_width; }
  if (bn_next) {
    auto bn = std::dynamic_pointer_cast<BatchNorm2d>(seq[layer + 1]);
    bn->weight = bn->register_parameter("weight", grow_dim(bn->weight, 0, ones({extra})));
    zero_state(key(prefix, layer + 1, "weight"), bn->weight, 0);
    bn->bias = bn->register_parameter("bias", grow_dim(bn->bias, 0, zeros({extra})));
    zero_state(key(prefix, layer + 1, "bias"), bn->bias, 0);
    bn->running_mean = bn->register_buffer("running_mean", grow_dim(bn->running_mean, 0, zeros({extra})));
    bn->running_var = bn->register_buffer("running_var", grow_dim(bn->running_var, 0, ones({extra})));
    bn->num_features = new_width;
  }
  // consumer: fresh columns for the new units (any init: the gate is 0)
  auto clin = std::dynamic_pointer_cast<Linear>(seq[ci]);
  auto cconv = std::dynamic_pointer_cast<Conv2d>(seq[ci]);
  Tensor cw = clin ? clin->weight : cconv->weight;
  Shape cs = cw.shape();
  cs[1] = extra * per_unit;
  double cfan = double(cw.numel() / cw.size(0)) / double(n) * double(new_width);
  Tensor cw2 = seq[ci]->register_parameter("weight", grow_dim(cw, 1, fresh(cs, cfan)));
  if (clin) { clin->weight = cw2; clin->in_features = new_width * per_unit; }
  else { cconv->weight = cw2; cconv->in_channels = new_width; }
  zero_state(key(prefix, ci, "weight"), cw2, 1);
  // the gate: right before the consumer's input path (after the activation)
  size_t gi = layer + 1 + (bn_next ? 1 : 0);
  while (gi < ci && !dynamic_cast<ReLU*>(seq[gi].get()) && !dynamic_cast<GELU*>(seq[gi].get()) &&
         !dynamic_cast<Gate*>(seq[gi].get()))
    ++gi;
  if (gi < ci && !dynamic_cast<Gate*>(seq[gi].get())) ++gi;  // after the activation
  auto gate = std::dynamic_pointer_cast<Gate>(gi < seq.size() ? seq[gi] : nullptr);
  NoGradGuard ng;
  if (!gate) {
    gate = std::make_shared<Gate>(n);
    seq.insert(gi, gate);
    rekey_optimizer(seq, opt, prefix);
  }
  gate->gate = gate->register_buffer("gate", grow_dim(gate->gate, 0, zeros({extra})));
  gate->birth = gate->register_buffer("birth", grow_dim(gate->birth, 0, full({extra}, double(step))));
  return gi;
}

namespace {

// Output rows `rows` of a producer (Linear/Conv2d: weight rows and bias) or of
// a BatchNorm2d over the group (affine, running statistics).
void set_rows(const ChannelSite& s, const std::vector<int64_t>& rows, optim::Optimizer* opt, StateRows st) {
  Module& m = *s.layer;
  int64_t k = int64_t(rows.size());
  if (auto bn = std::dynamic_pointer_cast<BatchNorm2d>(s.layer)) {
    bn->weight = remap_rows(m, "weight", rows, opt, s.key + ".weight", true, st);
    bn->bias = remap_rows(m, "bias", rows, opt, s.key + ".bias", true, st);
    bn->running_mean = remap_rows(m, "running_mean", rows, nullptr, "", false);
    bn->running_var = remap_rows(m, "running_var", rows, nullptr, "", false);
    bn->num_features = k;
    return;
  }
  auto lin = std::dynamic_pointer_cast<Linear>(s.layer);
  auto conv = std::dynamic_pointer_cast<Conv2d>(s.layer);
  Tensor w = remap_rows(m, "weight", rows, opt, s.key + ".weight", true, st);
  Tensor b = (lin ? lin->bias : conv->bias).defined() ? remap_rows(m, "bias", rows, opt, s.key + ".bias", true, st)
                                                      : Tensor();
  if (lin) { lin->weight = w; lin->bias = b; lin->out_features = k; }
  else { conv->weight = w; conv->bias = b; conv->out_channels = k; }
}

// A consumer's weight columns: new column c = old column cols[c] * scale[c];
// `state` maps each optimizer state tensor.
void set_cols(const ChannelSite& s, const Tensor& new_weight, int64_t channels, optim::Optimizer* opt,
              const std::function<Tensor(const std::string&, const Tensor&)>& state) {
  auto lin = std::dynamic_pointer_cast<Linear>(s.layer);
  auto conv = std::dynamic_pointer_cast<Conv2d>(s.layer);
  Tensor stored = s.layer->register_parameter("weight", new_weight.detach());
  if (lin) { lin->weight = stored; lin->in_features = channels * s.per_unit; }
  else { conv->weight = stored; conv->in_channels = channels; }
  remap(opt, s.key + ".weight", stored, state);
}

Tensor consumer_weight(const ChannelSite& s) { return s.layer->parameter("weight"); }

}  // namespace

void remove_group_units(ChannelGroup& g, const std::vector<int64_t>& keep, optim::Optimizer* opt) {
  BRISK_CHECK(g.gates.empty(), "remove_units: channels of ", g.name, " pass through a Gate (MSG growth)");
  int64_t n = g.width();
  BRISK_CHECK(!keep.empty(), "remove_units: must keep at least one unit of ", g.name);
  for (size_t i = 0; i < keep.size(); ++i)
    BRISK_CHECK(keep[i] >= 0 && keep[i] < n && (i == 0 || keep[i] > keep[i - 1]), "remove_units: keep indices must be "
                "ascending, unique and in [0, ", n, ")");
  for (auto& p : g.producers) set_rows(p, keep, opt, StateRows::gather);
  for (auto& p : g.norms) set_rows(p, keep, opt, StateRows::gather);
  int64_t k = int64_t(keep.size());
  for (auto& c : g.consumers) {
    std::vector<int64_t> cols;
    for (int64_t u : keep)
      for (int64_t q = 0; q < c.per_unit; ++q) cols.push_back(u * c.per_unit + q);
    set_cols(c, gather_dim(consumer_weight(c), 1, cols), k, opt,
             [&](const std::string&, const Tensor& st) { return gather_dim(st, 1, cols); });
  }
}

void remove_units(Sequential& seq, size_t layer, const std::vector<int64_t>& keep, optim::Optimizer* opt,
                  const std::string& prefix) {
  ChannelGroup g = group_of(seq, layer, prefix, "remove_units");
  remove_group_units(g, keep, opt);
}

WidenResult widen_group(ChannelGroup& grp, int64_t new_width, optim::Optimizer* opt, double noise, Generator* gen) {
  BRISK_CHECK(grp.gates.empty(), "widen: channels of ", grp.name, " pass through a Gate; use widen_masked (MSG)");
  int64_t n = grp.width();
  BRISK_CHECK(new_width >= n, "widen: new width ", new_width, " is smaller than the current ", n,
              " (use channel pruning to shrink)");
  for (auto& p : grp.producers)
    BRISK_CHECK(!has_mask(p.layer->parameter("weight")), "widen: masked (pruned) layers cannot be widened yet (",
                p.key, ")");
  Generator& g = gen ? *gen : default_generator();
  WidenResult r;
  for (int64_t j = 0; j < new_width; ++j) r.source.push_back(j);
  {
    auto w = g.block(g.reserve(1));  // one block seeds the choices
    Generator pick(uint64_t(w[0]) << 32 | w[1]);
    if (new_width > n) {
      Tensor choice = randint(0, n, {new_width - n}, DType::i64, &pick);
      for (int64_t j = n; j < new_width; ++j) r.source[size_t(j)] = choice.data_ptr<int64_t>()[j - n];
    }
  }
  std::vector<int64_t> count(size_t(n), 0);
  for (int64_t s : r.source) count[size_t(s)]++;

  // 1. every writer of the channels copies its rows (a residual stream: all of them, so replicas stay equal)
  for (auto& p : grp.producers) set_rows(p, r.source, opt, StateRows::zero_new);
  for (auto& p : grp.norms) set_rows(p, r.source, opt, StateRows::zero_new);

  // 2. every reader: replica columns divided by the replica count
  for (auto& c : grp.consumers) {
    const int64_t per_unit = c.per_unit;
    std::vector<int64_t> col_source;
    std::vector<double> col_scale;
    for (int64_t j = 0; j < new_width; ++j)
      for (int64_t p = 0; p < per_unit; ++p) {
        int64_t s = r.source[size_t(j)];
        col_source.push_back(s * per_unit + p);
        col_scale.push_back(1.0 / double(count[size_t(s)]));
      }
    Tensor cw = consumer_weight(c);
    Tensor scale = from_vector(col_scale, {int64_t(col_scale.size())}, TensorOptions(cw.dtype()));
    Shape bshape(size_t(cw.dim()), 1);
    bshape[1] = int64_t(col_scale.size());
    Tensor cw_new = gather_dim(cw, 1, col_source) * scale.reshape(bshape);
    if (noise > 0 && new_width > n) {  // perturb the new replicas' outgoing weights
      Tensor cols = cw_new.detach();
      NoGradGuard ng;
      Tensor tail = cols.narrow(1, n * per_unit, (new_width - n) * per_unit);
      double sd = std::sqrt(var(cw.detach()).item());
      tail.add_(randn(tail.shape(), TensorOptions(cw.dtype()), &g) * (noise * sd));
    }
    int64_t old_cols = n * per_unit;
    set_cols(c, cw_new, new_width, opt, [&](const std::string& sk, const Tensor& s) {
      // old columns divided like the weights (v by the square), new columns zero
      std::vector<double> sc(col_scale.size(), 0.0);
      for (int64_t k = 0; k < old_cols; ++k) {
        double f = col_scale[size_t(k)];
        sc[size_t(k)] = sk == "exp_avg_sq" ? f * f : f;
      }
      Tensor f = from_vector(sc, {int64_t(sc.size())}, TensorOptions(s.dtype())).reshape(bshape);
      return extend_zero(s, 1, int64_t(col_scale.size())) * f;
    });
  }
  return r;
}

WidenResult widen(Sequential& seq, size_t layer, int64_t new_width, optim::Optimizer* opt, const std::string& prefix,
                  double noise, Generator* gen) {
  ChannelGroup g = group_of(seq, layer, prefix, "widen");
  return widen_group(g, new_width, opt, noise, gen);
}

// An identity residual block of width c: bn2's scale and shift are zero, so
// the block computes relu(0 + x) = x for x >= 0 (x is a ReLU output), in
// train and eval mode alike, while its gradients are not zero.
static std::shared_ptr<ResidualBlock> identity_block(int64_t c) {
  auto b = std::make_shared<ResidualBlock>(c, c, 1);
  NoGradGuard ng;
  Tensor w = b->bn2->weight, bb = b->bn2->bias;
  w.zero_();
  bb.zero_();
  return b;
}

static bool is_identity_block(Module* m) {
  auto* b = dynamic_cast<ResidualBlock*>(m);
  return b && b->shortcut->size() == 0 && b->conv1->stride.h == 1 && b->conv1->stride.w == 1;
}

// Runs of consecutive identity blocks: [first, last) positions in seq.
static std::vector<std::pair<size_t, size_t>> identity_runs(Sequential& seq) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t i = 0; i < seq.size();) {
    if (!is_identity_block(seq[i].get())) { ++i; continue; }
    size_t j = i;
    while (j < seq.size() && is_identity_block(seq[j].get())) ++j;
    runs.push_back({i, j});
    i = j;
  }
  return runs;
}

std::vector<int64_t> identity_run_lengths(Sequential& seq) {
  std::vector<int64_t> out;
  for (auto [a, b] : identity_runs(seq)) out.push_back(int64_t(b - a));
  return out;
}

int64_t stack_blocks(Sequential& seq, optim::Optimizer* opt, const std::string& prefix,
                     const std::vector<int64_t>& max_len) {
  auto runs = identity_runs(seq);
  BRISK_CHECK(!runs.empty(), "stack: the model has no identity residual blocks (stride 1, same width) to copy");
  BRISK_CHECK(max_len.empty() || max_len.size() == runs.size(), "stack: ", max_len.size(), " run lengths for ",
              runs.size(), " runs of identity blocks");
  int64_t added = 0;
  NoGradGuard ng;
  for (size_t r = runs.size(); r-- > 0;) {  // back to front: earlier positions stay valid
    auto [a, b] = runs[r];
    int64_t len = int64_t(b - a);
    int64_t want = max_len.empty() ? 2 * len : std::min<int64_t>(2 * len, max_len[r]);
    for (int64_t c = 0; c < want - len; ++c) {  // the run's blocks, copied in order, on top of it
      auto src = std::dynamic_pointer_cast<ResidualBlock>(seq[a + size_t(c)]);
      auto copy = std::make_shared<ResidualBlock>(src->conv1->in_channels, src->conv1->out_channels, 1);
      auto sp = src->named_parameters(), cp = copy->named_parameters();
      for (size_t k = 0; k < sp.size(); ++k) cp[k].second.detach().copy_(sp[k].second.detach());
      auto sb = src->named_buffers(), cb = copy->named_buffers();
      for (size_t k = 0; k < sb.size(); ++k) cb[k].second.copy_(sb[k].second);
      seq.insert(b + size_t(c), copy);
      ++added;
    }
  }
  rekey_optimizer(seq, opt, prefix);
  return added;
}

void truncate_identity_runs(Sequential& seq, const std::vector<int64_t>& keep_len, optim::Optimizer* opt,
                            const std::string& prefix) {
  auto runs = identity_runs(seq);
  BRISK_CHECK(keep_len.size() == runs.size(), "truncate: ", keep_len.size(), " lengths for ", runs.size(), " runs");
  std::set<TensorImpl*> gone;
  for (size_t r = runs.size(); r-- > 0;) {
    auto [a, b] = runs[r];
    BRISK_CHECK(keep_len[r] >= 0 && keep_len[r] <= int64_t(b - a), "truncate: run ", r, " has ", b - a, " blocks");
    for (size_t i = b; i-- > a + size_t(keep_len[r]);) {
      for (auto& [n, p] : seq[i]->named_parameters()) gone.insert(p.unsafe_impl());
      seq.erase(i);
    }
  }
  if (!opt) return;
  remove_from_optimizer(opt, gone);  // the removed blocks' parameters and state
  rekey_optimizer(seq, opt, prefix);
}

void remove_from_optimizer(optim::Optimizer* opt, const std::set<TensorImpl*>& gone) {
  optim::NamedParams kept;
  std::map<std::string, TensorMap> state;
  for (auto& [n, p] : opt->params()) {
    if (gone.count(p.unsafe_impl())) continue;
    kept.emplace_back(n, p);
    auto st = opt->state().find(n);
    if (st != opt->state().end()) state[n] = st->second;
  }
  opt->reset_params(kept);
  opt->state() = state;
}

void deepen(Sequential& seq, size_t after, optim::Optimizer* opt, const std::string& prefix) {
  BRISK_CHECK(after < seq.size(), "deepen: position ", after, " out of range for a Sequential of ", seq.size());
  if (auto b = std::dynamic_pointer_cast<ResidualBlock>(seq[after])) {
    seq.insert(after + 1, identity_block(b->conv2->out_channels));
    rekey_optimizer(seq, opt, prefix);
    return;
  }
  BRISK_CHECK(dynamic_cast<ReLU*>(seq[after].get()), "deepen: insert after a ReLU or a ResidualBlock (position ",
              after, " is ", seq[after]->repr(), "); identity layers are exact only there");
  // Find the width flowing out of `after`: the last Linear/Conv2d before it.
  std::shared_ptr<Linear> lin;
  std::shared_ptr<Conv2d> conv;
  for (size_t i = after + 1; i-- > 0;) {
    if ((lin = std::dynamic_pointer_cast<Linear>(seq[i])) || (conv = std::dynamic_pointer_cast<Conv2d>(seq[i]))) break;
    BRISK_CHECK(!dynamic_cast<Flatten*>(seq[i].get()), "deepen: cannot infer the width across a Flatten");
  }
  BRISK_CHECK(lin || conv, "deepen: no Linear or Conv2d before position ", after);
  std::vector<ModulePtr> added;
  NoGradGuard ng;
  if (lin) {
    int64_t d = lin->out_features;
    auto l = std::make_shared<Linear>(d, d);
    Tensor w = l->weight, b = l->bias;
    w.zero_();
    for (int64_t i = 0; i < d; ++i) w.select(0, i).select(0, i).fill_(1.0);
    b.zero_();
    added = {l, std::make_shared<ReLU>()};
  } else {
    int64_t c = conv->out_channels;
    auto cv = std::make_shared<Conv2d>(c, c, 3, 1, 1, 1, 1, false);
    Tensor w = cv->weight;
    w.zero_();
    for (int64_t i = 0; i < c; ++i) w.select(0, i).select(0, i).select(0, 1).select(0, 1).fill_(1.0);
    auto bn = std::make_shared<BatchNorm2d>(c);
    Tensor rv = bn->running_var;
    rv.fill_(1.0 - bn->eps);  // eval: (x - 0) / sqrt(1 - eps + eps) = x
    added = {cv, bn, std::make_shared<ReLU>()};
  }
  for (size_t k = 0; k < added.size(); ++k) seq.insert(after + 1 + k, added[k]);
  if (!opt) return;
  rekey_optimizer(seq, opt, prefix);
}

}  // namespace brisk::nn

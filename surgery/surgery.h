// Surgery on live models, with the optimizer's per-parameter state remapped in
// the same call (the caller never touches optimizer internals).
//
// widen: Net2WiderNet (Chen et al. 2016). Layer i of a Sequential (Linear or
// Conv2d) grows from n to new_width outputs. New unit j copies a random
// existing unit g(j); the BatchNorm2d right after it (if any) copies g(j)'s
// statistics and affine; the next Linear/Conv2d (also through a Flatten, where
// each conv channel owns H*W consecutive inputs) gets the incoming weights of
// every replica of unit u divided by u's replica count. With noise = 0 the
// network computes the same function (BN in eval mode).
// Optimizer state: producer entries of old units are kept and new ones are
// zero; the consumer's first-moment-like state (momentum, exp_avg) is divided
// like the weights (by the replica count c) and its second moment (exp_avg_sq)
// by c^2; new consumer columns start at zero; step counters are unchanged.
//
// deepen: Net2DeeperNet. Inserts after layer i an identity-initialized
// Linear(d, d) + ReLU, or Conv2d(C, C, 3, p=1) + BatchNorm2d + ReLU (identity
// in eval mode), which is exact when layer i is a ReLU. New parameters join the
// optimizer with zero state.
#pragma once
#include <optional>
#include <set>
#include <vector>

#include "nn/channel_groups.h"
#include "nn/layers.h"
#include "optim/optimizer.h"

namespace brisk::nn {

struct WidenResult {
  std::vector<int64_t> source;  // source[j]: the old unit new unit j copies (identity for j < n)
};

// `prefix` is the Sequential's dotted name inside the model ("" at the root),
// so optimizer keys can be found. opt may be null. Layer i's whole channel
// group is widened (nn/channel_groups.h): across residual additions every
// writer of the stream copies the same units and every reader divides.
WidenResult widen(Sequential& seq, size_t layer, int64_t new_width, optim::Optimizer* opt,
                  const std::string& prefix = "", double noise = 0.0, Generator* gen = nullptr);

WidenResult widen_group(ChannelGroup& g, int64_t new_width, optim::Optimizer* opt, double noise = 0.0,
                        Generator* gen = nullptr);

// After a ResidualBlock, deepen inserts an identity ResidualBlock (bn2's
// scale and shift zero: exact in train and eval mode).
void deepen(Sequential& seq, size_t after, optim::Optimizer* opt, const std::string& prefix = "");

// Depth stacking (Gong et al. 2019, progressive stacking). An identity block
// is a ResidualBlock with stride 1 and an identity shortcut; a run is a
// maximal sequence of them. stack_blocks puts a copy of each run on top of
// itself (weights and BatchNorm statistics copied; the copies' parameters join
// the optimizer with zero state), doubling its length, capped at max_len[r]
// when given. The function changes (the run applies twice); the copies are a
// warm start. Returns the blocks added; throws if there are no runs.
std::vector<int64_t> identity_run_lengths(Sequential& seq);
int64_t stack_blocks(Sequential& seq, optim::Optimizer* opt, const std::string& prefix = "",
                     const std::vector<int64_t>& max_len = {});
// Keeps the first keep_len[r] blocks of each run (the start of a stacking
// schedule); the removed blocks' parameters leave the optimizer.
void truncate_identity_runs(Sequential& seq, const std::vector<int64_t>& keep_len, optim::Optimizer* opt,
                            const std::string& prefix = "");

// Masked structural growth (MSG; Yao et al., ICLR 2024): widen layer i to
// new_width with freshly initialized new rows and consumer columns (PyTorch's
// default init bounds; old weights untouched), and gate the new units with a
// Gate module (inserted after the activation that follows layer i, or the
// existing one extended) whose gate starts at 0, so the function is unchanged
// for any initialization. birth = `step` for the new units. Optimizer state:
// old entries kept, new ones zero; keys re-keyed if a Gate was inserted.
// Returns the Gate's index in seq.
size_t widen_masked(Sequential& seq, size_t layer, int64_t new_width, optim::Optimizer* opt, int64_t step,
                    Generator* gen, const std::string& prefix = "");

// Structured pruning: keep only the output units `keep` (ascending, unique) of
// layer i (Linear or Conv2d), with the BatchNorm2d right after it and the
// consumer's matching inputs (through Flatten) cut the same way. Optimizer
// state is cut with the same indices. The tensors physically shrink, so the
// dense kernels do less work.
// As with widen, the whole channel group of layer i is cut: coupled channels
// of a residual stream go together.
void remove_units(Sequential& seq, size_t layer, const std::vector<int64_t>& keep, optim::Optimizer* opt,
                  const std::string& prefix = "");
void remove_group_units(ChannelGroup& g, const std::vector<int64_t>& keep, optim::Optimizer* opt);

// Shared by the surgery files: drop parameters (by storage) and their state
// from the optimizer; re-key seq's parameters after children were renamed
// (new ones join with no state).
void remove_from_optimizer(optim::Optimizer* opt, const std::set<TensorImpl*>& gone);
void rekey_optimizer(Module& root, optim::Optimizer* opt, const std::string& prefix);

// Replaces parameter `name` of m (optimizer key `key`) along `dim`: entry j of
// the new tensor is old entry source[j], or, where source[j] < 0, `fresh`'s
// entry j (fresh: the new shape; zeros if undefined). The optimizer's state is
// moved the same way, with zeros for new entries. One primitive for cuts
// (source = the kept indices) and growth (-1 for the new ones). Returns the
// stored parameter, for the module's typed member.
Tensor remap_parameter(Module& m, const std::string& name, int64_t dim, const std::vector<int64_t>& source,
                       const Tensor& fresh, optim::Optimizer* opt, const std::string& key);

}  // namespace brisk::nn

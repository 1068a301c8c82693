// Growth surgery on the GPT (models/gpt.h), shared by the grow members that
// run on language models: depth (progressive stacking) and width (masked
// structural growth of the MLP's hidden units and of the attention heads).
// Every function keeps the optimizer in step: parameters that stay keep their
// state, new ones join with zero state, removed ones leave.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "models/gpt.h"
#include "optim/optimizer.h"

namespace brisk::efficiency::growth_methods {

// The model as a GPT, or null.
models::GPT* as_gpt(nn::Module& m);

// Depth. gpt_truncate keeps the first n blocks. gpt_stack (Gong et al. 2019)
// puts copies of blocks 0, 1, ... on top of the L blocks there are, up to
// min(2L, max_layers): block L + i starts as a copy of block i (weights and
// any gates), so the stack applies the trained blocks twice, a warm start
// rather than the same function. Returns the blocks added.
void gpt_truncate(models::GPT& g, int64_t n, optim::Optimizer* opt);
int64_t gpt_stack(models::GPT& g, int64_t max_layers, optim::Optimizer* opt);

// Width. Every block keeps the first `hidden` MLP units (rows of c_fc, columns
// of c_proj) and the first `heads` attention heads (their q, k and v rows of
// c_attn, their columns of c_proj): the initial cut of a full-size model.
void gpt_cut_width(models::GPT& g, int64_t hidden, int64_t heads, optim::Optimizer* opt);
// Masked structural growth (Yao et al., ICLR 2024): every block grows to
// `hidden` MLP units and `heads` heads of the same head size. New rows and
// columns get GPT-2's initialization (N(0, 0.02); residual projections scaled
// by 1/sqrt(2 n_layer)); their gates start at 0, so the model computes the same
// function at the growth whatever those weights are. birth = `step`.
void gpt_widen_masked(models::GPT& g, int64_t hidden, int64_t heads, optim::Optimizer* opt, int64_t step,
                      Generator* gen);
// Gates of grown units: clamp((now - birth) / ramp_steps, 0, 1); 1 for units
// the model started with.
void gpt_ramp_gates(models::GPT& g, double now, double ramp_steps);

// Current widths (every block alike).
int64_t gpt_hidden(const models::GPT& g);
int64_t gpt_heads(const models::GPT& g);

}  // namespace brisk::efficiency::growth_methods

// Causal / full attention on AMX tiles for bf16 autocast (attention_amx.cpp):
// the f32 attention kernels (attention.cpp) hand a call here when the bf16
// GEMM runs on AMX (gemm_amx_active()), i.e. under a bf16 AutocastGuard on a
// CPU with AMX-BF16 whose OS grants tile state.
// Numerics as the tiled f32 kernels under autocast (whose small GEMMs round
// their operands to bf16 too): q, k, v, the output gradient, the
// probabilities P and the score gradients dS enter the products as bf16
// (nearest even), products are exact and summed in f32; softmax, its
// log-normalizer and the running max stay f32.
#pragma once
#include <cstdint>

#include "kernels/strided.h"

namespace brisk::kern::cpu {

// One call's geometry: BH slices of [Tq, D] queries and [Tk, D] keys/values.
struct AttentionGeom {
  int64_t BH, Tq, Tk, D;
  float scale;
  bool causal;
};

// The forward holds a [32, Tk] strip of scores per thread (128 Tk bytes):
// the f32 attention kernels keep longer key ranges to themselves.
constexpr int64_t kAttentionAmxMaxKeys = 8192;

// o [BH, Tq, D] and lse [BH * Tq] (the softmax's log-normalizer per query).
void attention_fwd_amx(HeadSlices<const float> q, HeadSlices<const float> k, HeadSlices<const float> v,
                       HeadSlices<float> o, float* lse, const AttentionGeom& g);
// gq, gk, gv (overwritten) from the output gradient go, the forward's o and lse.
void attention_bwd_amx(HeadSlices<const float> go, HeadSlices<const float> q, HeadSlices<const float> k,
                       HeadSlices<const float> v, HeadSlices<const float> o, const float* lse, HeadSlices<float> gq,
                       HeadSlices<float> gk, HeadSlices<float> gv, const AttentionGeom& g);

}  // namespace brisk::kern::cpu

// Initializers (torch.nn.init semantics). Each fills `t` in place, without
// recording a graph, from the given generator (default: the global one).
#pragma once
#include "core/brisk.h"

namespace brisk::nn::init {

// fan_in, fan_out of a [out, in, ...] weight, as torch computes them.
std::pair<int64_t, int64_t> fans(const Tensor& w);
void uniform_(const Tensor& t, double lo, double hi, Generator* g = nullptr);
void normal_(const Tensor& t, double mean, double std, Generator* g = nullptr);
void constant_(const Tensor& t, double v);
// gain for leaky_relu with slope a: sqrt(2 / (1 + a^2))
void kaiming_uniform_(const Tensor& t, double a = 0.0, Generator* g = nullptr);
void kaiming_normal_(const Tensor& t, double a = 0.0, Generator* g = nullptr);
void xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* g = nullptr);

}  // namespace brisk::nn::init

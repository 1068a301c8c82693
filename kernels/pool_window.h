// The input window [h0, h1) x [w0, w1) behind average-pooling output (oh, ow)
// and its divisor, for the ref kernels and the CUDA kernels alike:
// count_include_pad windows (padding counts in the divisor), or adaptive ones
// spanning [floor(i*H/Ho), ceil((i+1)*H/Ho)).
#pragma once
#include <cstdint>

#include "core/kernel_params.h"
#include "kernels/host_device.h"

namespace brisk::kern {

struct AvgWindow {
  int64_t h0, h1, w0, w1, div;
};

BRISK_HD inline AvgWindow avg_window(const Geom2d& g, int64_t oh, int64_t ow, bool adaptive) {
  if (adaptive) {
    int64_t h0 = oh * g.H / g.Ho, h1 = ((oh + 1) * g.H + g.Ho - 1) / g.Ho;
    int64_t w0 = ow * g.W / g.Wo, w1 = ((ow + 1) * g.W + g.Wo - 1) / g.Wo;
    return {h0, h1, w0, w1, (h1 - h0) * (w1 - w0)};
  }
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = h0 + g.kh < g.H + g.ph ? h0 + g.kh : g.H + g.ph;
  int64_t w1 = w0 + g.kw < g.W + g.pw ? w0 + g.kw : g.W + g.pw;
  int64_t div = (h1 - h0) * (w1 - w0);  // before clipping to the input: padding counts
  return {h0 > 0 ? h0 : 0, h1 < g.H ? h1 : g.H, w0 > 0 ? w0 : 0, w1 < g.W ? w1 : g.W, div};
}

}  // namespace brisk::kern

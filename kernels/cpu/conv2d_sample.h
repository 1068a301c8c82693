// How the convolution forward paths (conv2d.cpp, conv2d_amx.cpp,
// conv2d_winograd.cpp, conv2d_bf16_direct.cpp) take their input and hand on
// their output one sample at a time, so that a fused neighbour (the 2x2 max
// pool, the pooled input gradient's expansion) works on it while in cache.
#pragma once
#include <cstdint>
#include <functional>

namespace brisk::kern::cpu {

// Takes sample n's convolution output y_n [O, Ho*Wo] from a per-thread
// buffer, on the thread that computed it, while it is in cache: the fused
// conv + max-pool forward pools it there instead of storing y. The buffer
// has kPoolSlack (kernels/cpu/pool2d.h) floats of room after y_n, which the
// pool may read.
using ConvSampleSink = std::function<void(int64_t n, const float* y_n)>;
// Gives sample n's input x_n [C, H*W], on the thread that convolves it: the
// input gradient's pooled form expands each sample's output gradient there
// instead of reading a full-size one from memory.
using ConvSampleSource = std::function<const float*(int64_t n)>;

// A pooled gradient as a forward's input (the input gradient of a conv with
// its 2x2 max pool fused, conv2d.cpp): gy [N, C, Hq, Wq] and its window
// codes (conv2d_pool_fwd's); sample n's input [C, H, W] is gy_n expanded by
// the codes (each window's value at its code's position, +0 elsewhere and
// outside the windows), and is never formed. H >= 2 Hq, W >= 2 Wq.
struct PooledInput {
  const float* gy;
  const uint8_t* code;
  int64_t Hq, Wq;
};

}  // namespace brisk::kern::cpu

// The bf16 convolution forward on AMX tiles (kernels/cpu/conv2d_amx.cpp), for
// "same" geometries (stride 1, output size = input size: the cnn's 3x3 pad 1
// layers, and their input gradients, which conv2d.cpp computes as forward
// convolutions). Taken by conv2d.cpp's forward while gemm_amx_active().
#pragma once
#include <cstdint>
#include <memory>

#include "core/kernel_params.h"
#include "kernels/cpu/conv2d_sample.h"

namespace brisk::kern::cpu {

// Whether conv2d_forward_amx handles geometry g.
bool conv2d_amx_applies(const Geom2d& g);

// y [N, O, Ho*Wo] = epilogue(w [O, C*kh*kw] @ unfold(x_n)) per sample: the
// weights packed once per call; each sample unfolded straight into packed
// bf16 pairs (no f32 unfold buffer), multiplied on tiles, and written with
// + bias[o], ReLU and the bf16 rounding (when bf16) applied on the way out.
// Same values as the f32 path on bf16-rounded x and w, summed in f32. With a
// sink, y is not written: each y_n goes to the sink instead. With a source,
// x is not read: x_n comes from the source.
void conv2d_forward_amx(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O, bool relu,
                        bool bf16, float* y, const ConvSampleSink* sink = nullptr,
                        const ConvSampleSource* source = nullptr);

// The weight gradient on AMX tiles, transposed: gw^T [CKK, O] += sum_n
// unfold(x_n) [CKK, L] @ gy_n^T [L, O]. In this orientation the unfold is
// the A operand, whose rows run along k: a "same" geometry unfolds x_n
// straight into packed bf16 rows (no f32 buffer, no transposes); others
// convert the caller's im2col rows. Only gy_n (O x L, the smaller operand)
// goes through the pair transposes. One object per thread.
class AmxWeightGrad {
 public:
  AmxWeightGrad(const Geom2d& g, int64_t O, float* gwt);  // gwt [CKK, O], accumulated into
  ~AmxWeightGrad();
  // Sample n: gy_n [O, L]; x_n [C, H, W]; col_n its unfold [CKK, L], read
  // only when the geometry is not "same" (conv2d_amx_applies).
  void add(const float* gy_n, const float* x_n, const float* col_n);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brisk::kern::cpu

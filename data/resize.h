// Image resizing for the data path (progressive resizing): bilinear
// interpolation with half-pixel centres, torch.nn.functional.interpolate's
// mode="bilinear", align_corners=False, antialias=False. Not an autograd op:
// it acts on batches before they enter the model.
#pragma once
#include "core/brisk.h"

namespace brisk::data {

// x [N, C, H, W] f32 on the cpu -> [N, C, out_h, out_w].
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace brisk::data

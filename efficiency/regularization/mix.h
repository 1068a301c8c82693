// One batch's MixUp / CutMix draw (efficiency/regularization): exposed so
// that tests can check the sampler's distribution apart from the trainer.
#pragma once
#include <cstdint>
#include <vector>

namespace brisk::efficiency {

struct MixDraw {
  bool mixed = false;          // false: this batch trains unmixed (prob < 1)
  double lambda = 1.0;         // weight of each example's own image and label
  std::vector<int64_t> perm;   // [B]: example i mixes with example perm[i]
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;  // cutmix: rows [y0, y1), columns [x0, x1) pasted
};

// Deterministic in (seed, clock). lambda ~ Beta(alpha, alpha); for cutmix the
// box is drawn and lambda re-set to the unpasted fraction of the image.
MixDraw draw_mix(uint64_t seed, int64_t clock, double alpha, double prob, int64_t batch, int64_t h, int64_t w,
                 bool cutmix);

}  // namespace brisk::efficiency

// Initializers.
#include "nn/init.h"

#include <cmath>

namespace brisk::nn::init {

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  BRISK_CHECK(w.dim() >= 2, "init: fan in/out need a weight of rank >= 2, got ", shape_str(w.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.size(d);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

static void assign(const Tensor& t, const Tensor& v) {
  NoGradGuard ng;
  Tensor d = t;
  d.copy_(v);
}

void uniform_(const Tensor& t, double lo, double hi, Generator* g) {
  assign(t, rand(t.shape(), TensorOptions(t.dtype()), g) * (hi - lo) + lo);
}
void normal_(const Tensor& t, double mean, double std, Generator* g) {
  assign(t, randn(t.shape(), TensorOptions(t.dtype()), g) * std + mean);
}
void constant_(const Tensor& t, double v) {
  NoGradGuard ng;
  Tensor d = t;
  d.fill_(v);
}
void kaiming_uniform_(const Tensor& t, double a, Generator* g) {
  double bound = std::sqrt(2.0 / (1 + a * a)) * std::sqrt(3.0 / double(fans(t).first));
  uniform_(t, -bound, bound, g);
}
void kaiming_normal_(const Tensor& t, double a, Generator* g) {
  normal_(t, 0, std::sqrt(2.0 / (1 + a * a)) / std::sqrt(double(fans(t).first)), g);
}
void xavier_uniform_(const Tensor& t, double gain, Generator* g) {
  auto [fi, fo] = fans(t);
  double bound = gain * std::sqrt(6.0 / double(fi + fo));
  uniform_(t, -bound, bound, g);
}

}  // namespace brisk::nn::init

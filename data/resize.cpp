// Bilinear resize (see resize.h). Source coordinate of output pixel d:
// s = (d + 0.5) * in / out - 0.5, clamped at 0; it blends pixels floor(s) and
// floor(s) + 1 (clamped to the edge) with weights 1 - frac and frac.
#include "data/resize.h"

#include <cmath>
#include <vector>

namespace brisk::data {

namespace {
struct Tap {
  int64_t i0, i1;
  float w1;  // weight of i1; i0 gets 1 - w1
};
std::vector<Tap> taps(int64_t in, int64_t out) {
  std::vector<Tap> t(static_cast<size_t>(out));
  const double scale = double(in) / double(out);
  for (int64_t d = 0; d < out; ++d) {
    double s = std::max(0.0, (double(d) + 0.5) * scale - 0.5);
    int64_t i0 = std::min<int64_t>(int64_t(s), in - 1);
    t[size_t(d)] = {i0, std::min<int64_t>(i0 + 1, in - 1), float(s - double(i0))};
  }
  return t;
}
}  // namespace

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w) {
  BRISK_CHECK(x.defined() && x.dim() == 4, "resize_bilinear: expected images [N, C, H, W], got ",
              x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  BRISK_CHECK(x.dtype() == DType::f32 && x.device().type == DeviceType::cpu,
              "resize_bilinear: expected f32 cpu images, got ", x.dtype(), " on ", x.device().str());
  BRISK_CHECK(out_h >= 1 && out_w >= 1 && out_h <= 1 << 16 && out_w <= 1 << 16,
              "resize_bilinear: output size ", out_h, "x", out_w, " must be in [1, 65536]");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor src = x.detach().contiguous();
  Tensor out = empty({N, C, out_h, out_w});
  auto th = taps(H, out_h), tw = taps(W, out_w);
  const float* s = src.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t p = 0; p < N * C; ++p) {
    const float* img = s + p * H * W;
    float* dst = o + p * out_h * out_w;
    for (int64_t r = 0; r < out_h; ++r) {
      const Tap& a = th[size_t(r)];
      const float* r0 = img + a.i0 * W;
      const float* r1 = img + a.i1 * W;
      for (int64_t c = 0; c < out_w; ++c) {
        const Tap& b = tw[size_t(c)];
        float top = r0[b.i0] + (r0[b.i1] - r0[b.i0]) * b.w1;
        float bot = r1[b.i0] + (r1[b.i1] - r1[b.i0]) * b.w1;
        dst[r * out_w + c] = top + (bot - top) * a.w1;
      }
    }
  }
  return out;
}

}  // namespace brisk::data

// EL2N scoring pass (el2n.h).
#include "efficiency/selection/static_pruning/el2n.h"

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"
#include "data/loader.h"

namespace brisk::selection {

std::vector<float> el2n_scores(nn::Module& model, const data::Dataset& ds, int64_t batch_size) {
  const int64_t n = ds.size();
  std::vector<float> out(static_cast<size_t>(n), 0.0f);
  bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  data::DataLoader dl(ds, data::in_order(batch_size));
  dl.start_epoch(0, 0, arange(n));
  while (auto b = dl.next()) {
    Tensor p = softmax(model.forward(b->x), 1).to(DType::f32).contiguous();  // [B, C]
    const int64_t B = p.size(0), C = p.size(1);
    const float* pp = p.data_ptr<float>();
    const int64_t* y = b->y.data_ptr<int64_t>();
    const int64_t* idx = b->indices.data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i) {
      double e2 = 0;
      for (int64_t c = 0; c < C; ++c) {
        double d = double(pp[i * C + c]) - (c == y[i] ? 1.0 : 0.0);
        e2 += d * d;
      }
      out[size_t(idx[i])] = float(std::sqrt(e2));
    }
  }
  model.train(was_training);
  return out;
}

}  // namespace brisk::selection

#include "efficiency/selection/grand/grand.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "data/loader.h"
#include "nn/functional.h"

namespace brisk::selection {

namespace {

// The classifier-only score for a batch: x [B, ...] -> B norms.
void score_last(nn::Sequential& model, nn::Linear& head, const data::Batch& b, std::vector<float>& out) {
  NoGradGuard ng;
  Tensor h = b.x;
  for (size_t i = 0; i + 1 < model.size(); ++i) h = model[i]->forward(h);
  h = h.reshape({h.size(0), -1}).to(DType::f32).contiguous();  // [B, D]
  Tensor z = head.forward(h);                                    // [B, C]
  Tensor p = softmax(z, 1).to(DType::f32).contiguous();
  const int64_t B = h.size(0), D = h.size(1), C = p.size(1);
  const float* hp = h.data_ptr<float>();
  const float* pp = p.data_ptr<float>();
  const int64_t* y = b.y.data_ptr<int64_t>();
  const int64_t* idx = b.indices.data_ptr<int64_t>();
  for (int64_t i = 0; i < B; ++i) {
    double g2 = 0, h2 = 0;
    for (int64_t c = 0; c < C; ++c) {
      double g = double(pp[i * C + c]) - (c == y[i] ? 1.0 : 0.0);
      g2 += g * g;
    }
    for (int64_t d = 0; d < D; ++d) h2 += double(hp[i * D + d]) * double(hp[i * D + d]);
    out[size_t(idx[i])] = float(std::sqrt(g2 * (h2 + (head.bias.defined() ? 1.0 : 0.0))));
  }
}

// Every parameter: one backward pass per example of the batch.
void score_full(nn::Sequential& model, const data::Batch& b, std::vector<float>& out) {
  auto params = model.parameters();
  const int64_t B = b.x.size(0);
  for (int64_t i = 0; i < B; ++i) {
    for (auto& p : params) p.set_grad(Tensor());
    Tensor xi = b.x.narrow(0, i, 1).contiguous(), yi = b.y.narrow(0, i, 1).contiguous();
    nn::functional::cross_entropy(model.forward(xi), yi).backward();
    double s = 0;
    for (auto& p : params) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      Tensor gc = g.to(DType::f64).contiguous();
      const double* gp = gc.data_ptr<double>();
      for (int64_t k = 0; k < gc.numel(); ++k) s += gp[k] * gp[k];
    }
    out[size_t(b.indices.data_ptr<int64_t>()[i])] = float(std::sqrt(s));
  }
  for (auto& p : params) p.set_grad(Tensor());
}

}  // namespace

std::vector<float> grand_scores(nn::Sequential& model, const data::Dataset& ds, GrandScope scope,
                                int64_t batch_size) {
  nn::Linear* head = nullptr;
  if (scope == GrandScope::last) {
    head = model.size() ? dynamic_cast<nn::Linear*>(model[model.size() - 1].get()) : nullptr;
    BRISK_CHECK(head != nullptr, "GraNd grand=last needs a model whose last layer is a Linear classifier; use grand=full");
  }
  const int64_t n = ds.size();
  std::vector<float> out(static_cast<size_t>(n), 0.0f);
  bool was_training = model.is_training();
  model.eval();
  data::DataLoader dl(ds, data::in_order(batch_size));
  dl.start_epoch(0, 0, arange(n));
  while (auto b = dl.next()) {
    if (scope == GrandScope::last) score_last(model, *head, *b, out);
    else score_full(model, *b, out);
  }
  model.train(was_training);
  return out;
}

}  // namespace brisk::selection

// Bucketed gradient all-reduce started from the backward pass (see grad_reducer.h).
#include "train/grad_reducer.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/ops.h"

namespace brisk::train::dist {

GradReducer::GradReducer(ProcessGroup& g, std::vector<Tensor> params, int64_t bucket_bytes)
    : g_(g), params_(std::move(params)), bucket_of_(params_.size()), has_(params_.size()) {
  BRISK_CHECK(bucket_bytes >= 4, "gradient buckets must hold at least one f32 value, got ", bucket_bytes, " bytes");
  const int64_t cap = bucket_bytes / 4;
  // Reverse parameter order: the last layers' gradients are ready first. A
  // parameter larger than the cap gets a bucket of its own.
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    BRISK_CHECK(p.defined() && p.device().type == DeviceType::cpu, "gradient reducer: parameter ", k,
                " is not a cpu tensor");
    int64_t n = p.numel();
    if (buckets_.empty() || (!buckets_.back().params.empty() && int64_t(buckets_.back().buf.size()) + n > cap))
      buckets_.emplace_back();
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    b.params.push_back(k);
    b.offset.push_back(int64_t(b.buf.size()));
    b.buf.resize(b.buf.size() + size_t(n));
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    const Tensor& p = params_[k];
    if (!p.requires_grad() || !p.is_leaf()) {
      hooks_.push_back(0);
      continue;
    }
    hooks_.push_back(p.register_post_accumulate_grad_hook([this, k](const Tensor&) { on_ready(k); }));
  }
}

GradReducer::~GradReducer() {
  for (size_t k = 0; k < params_.size(); ++k)
    if (hooks_[k] != 0) params_[k].remove_post_accumulate_grad_hook(hooks_[k]);
}

bool GradReducer::serves(const std::vector<Tensor>& params) const {
  if (params.size() != params_.size()) return false;
  for (size_t k = 0; k < params.size(); ++k)
    if (!params[k].is_same(params_[k]) || (hooks_[k] != 0) != (params[k].requires_grad() && params[k].is_leaf()))
      return false;
  return true;
}

void GradReducer::arm() {
  for (auto& b : buckets_) {
    b.missing = int64_t(b.params.size());
    b.req.reset();
  }
  std::fill(has_.begin(), has_.end(), 0.0);
  next_start_ = 0;
  started_early_ = 0;
  values_ = 0;
  armed_ = true;
}

// The gradient as contiguous f32 values in the parameter's slot of its bucket
// (zeros where this rank has none).
void GradReducer::copy_in(size_t p) {
  Bucket& b = buckets_[bucket_of_[p]];
  size_t slot = size_t(std::find(b.params.begin(), b.params.end(), p) - b.params.begin());
  float* dst = b.buf.data() + b.offset[slot];
  const int64_t n = params_[p].numel();
  Tensor gr = params_[p].grad();
  if (!gr.defined()) {
    std::memset(dst, 0, size_t(n) * 4);
    return;
  }
  has_[p] = 1.0;
  Tensor c = gr.dtype() == DType::f32 ? gr.contiguous() : gr.to(DType::f32).contiguous();
  std::memcpy(dst, c.data_ptr<float>(), size_t(n) * 4);
}

void GradReducer::on_ready(size_t p) {
  if (!armed_) return;  // a backward outside the training step (a method's own probe)
  copy_in(p);
  buckets_[bucket_of_[p]].missing--;
  start_ready_buckets();
  // MPI moves a started collective only inside MPI calls: give the ones in
  // flight a turn each time the backward pass hands over a gradient.
  for (size_t b = 0; b < next_start_; ++b)
    if (buckets_[b].req) buckets_[b].req->test();
}

void GradReducer::start_ready_buckets() {
  while (next_start_ < buckets_.size() && buckets_[next_start_].missing == 0) {
    Bucket& b = buckets_[next_start_++];
    b.req = g_.all_reduce_sum_async(b.buf.data(), int64_t(b.buf.size()));
    if (armed_) started_early_++;
  }
}

void GradReducer::finish() {
  BRISK_CHECK(armed_, "gradient reducer: finish() without arm()");
  armed_ = false;
  // Gradients that did not arrive through the hooks: none on this rank (zeros),
  // or set outside autograd. Buckets start in order, as during the backward pass.
  for (size_t b = next_start_; b < buckets_.size(); ++b) {
    for (size_t p : buckets_[b].params)
      if (has_[p] == 0) copy_in(p);
    buckets_[b].missing = 0;
  }
  start_ready_buckets();
  // Which parameters had a gradient on any rank (after the buckets, so that
  // every rank issues the collectives in the same order).
  std::vector<double> any = has_;
  g_.all_reduce_sum(any.data(), int64_t(any.size()));
  const float inv = 1.0f / float(g_.size());
  for (Bucket& b : buckets_) {
    b.req->wait();
    for (size_t s = 0; s < b.params.size(); ++s) {
      size_t p = b.params[s];
      Tensor param = params_[p];
      if (any[p] == 0) continue;  // no rank has a gradient: it stays undefined
      Tensor gr = param.grad();
      if (!gr.defined() || gr.dtype() != DType::f32 || !gr.is_contiguous()) {
        gr = empty(param.shape(), DType::f32);
        param.set_grad(gr);
      }
      const float* src = b.buf.data() + b.offset[s];
      float* dst = gr.data_ptr<float>();
      const int64_t n = param.numel();
      for (int64_t e = 0; e < n; ++e) dst[e] = src[e] * inv;
      values_ += n;
    }
  }
}

}  // namespace brisk::train::dist

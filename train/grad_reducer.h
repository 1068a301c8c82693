// Data-parallel gradient averaging overlapped with the backward pass (the
// reducer of PyTorch's DistributedDataParallel, on a ProcessGroup).
//
// The parameters are cut into buckets of about `bucket_bytes`, in reverse
// order (the output layer's gradients are ready first). A hook on each
// parameter (post-accumulate) copies its gradient into its bucket when the
// backward pass has finished with it; a full bucket starts a nonblocking
// all-reduce at once, while the backward pass goes on with the layers below.
// finish() starts what is left, waits, and writes the averages back.
//
// Determinism: buckets depend only on the parameters' order and sizes, and
// they are started strictly in bucket order (a full bucket waits for the ones
// before it), so every rank issues the same collectives in the same order,
// and the same ranks and seed give the same bits. A parameter that received
// no gradient on some rank counts zeros there; one that received none on any
// rank keeps no gradient (as the blocking average did).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "train/distributed.h"

namespace brisk::train::dist {

class GradReducer {
 public:
  GradReducer(ProcessGroup& g, std::vector<Tensor> params, int64_t bucket_bytes);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Whether it was built for exactly these parameter tensors, in this order
  // (surgery that replaces a parameter needs a new reducer).
  bool serves(const std::vector<Tensor>& params) const;
  // Before the backward pass: gradients accumulated from here on are reduced.
  void arm();
  // After it: every bucket started, waited for, and each gradient replaced
  // by its average over the ranks (contiguous f32).
  void finish();

  int64_t bucket_count() const { return int64_t(buckets_.size()); }
  // Of the last finish(): buckets started during the backward pass (the rest
  // were started by finish), and f32 values reduced.
  int64_t started_early() const { return started_early_; }
  int64_t values() const { return values_; }

 private:
  struct Bucket {
    std::vector<size_t> params;   // indices into params_, in bucket order
    std::vector<int64_t> offset;  // each one's place in buf (elements)
    std::vector<float> buf;
    int64_t missing = 0;          // gradients not yet copied in
    std::unique_ptr<Request> req;
  };
  void on_ready(size_t p);
  void copy_in(size_t p);
  void start_ready_buckets();

  ProcessGroup& g_;
  std::vector<Tensor> params_;
  std::vector<int64_t> hooks_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  std::vector<double> has_;  // 1 where this rank's gradient arrived this step
  size_t next_start_ = 0;    // buckets start in this order
  bool armed_ = false;
  int64_t started_early_ = 0, values_ = 0;
};

}  // namespace brisk::train::dist

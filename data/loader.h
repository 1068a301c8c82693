// DataLoader: seeded shuffling, drop_last, augmentation (random crop with
// padding, horizontal flip), normalization, and a background thread that
// builds the next batch while the current one trains (when the training
// threads leave a core free; otherwise the batch is built in place).
//
// Determinism: the order of epoch e and the augmentation of batch b depend only
// on (seed, e, b), never on timing or threads, so a run resumed at (e, b)
// sees exactly the batches an uninterrupted run would.
#pragma once
#include <cstdint>
#include <future>
#include <optional>

#include "data/dataset.h"

namespace brisk::data {

struct Augment {
  int64_t crop_padding = 0;  // > 0: pad with zeros, crop a random HxW window
  bool hflip = false;        // flip left-right with probability 1/2
};
Augment parse_augment(const std::string& spec);  // "none", "flip", "crop", "crop+flip"

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = true;
  uint64_t seed = 0;
  Augment augment;
  bool prefetch = true;  // build the next batch on a thread of its own, when a core is free
  // Data-parallel sharding (as PyTorch's DistributedSampler): every rank
  // computes the same epoch order, drops its last n % world examples so that
  // all ranks take the same number of steps, and reads positions rank,
  // rank + world, rank + 2 world, ... of it. Batch b of all ranks together is
  // then the order's positions [b * B * world, (b + 1) * B * world): the same
  // examples as batch b of one rank with batch size B * world.
  int64_t rank = 0, world = 1;
};

// Every example once, in dataset order, without augmentation or a prefetch
// thread: the options of evaluation and scoring passes.
LoaderOptions in_order(int64_t batch_size);

struct Batch {
  Tensor x;        // [B, C, H, W] f32, normalized (text: [B, T] i64 token ids)
  Tensor y;        // [B] i64 (text: [B, T] i64, the next tokens)
  Tensor indices;  // [B] i64 dataset indices
  int64_t epoch = 0, index = 0;  // batch `index` of `epoch`
};

class DataLoader {
 public:
  DataLoader(Dataset ds, LoaderOptions opt);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  const Dataset& dataset() const { return ds_; }
  const LoaderOptions& options() const { return opt_; }
  int64_t num_batches() const;       // of the current epoch's order (this rank's share)
  int64_t num_batches_full() const;  // of a full pass over the dataset
  // The visiting order of an epoch (a permutation of 0..N-1, or the identity).
  Tensor epoch_order(int64_t epoch) const;
  // Begin `epoch` at batch `first` (resume), with an optional custom order
  // (indices into the dataset: selection methods subset or reorder with it).
  void start_epoch(int64_t epoch, int64_t first = 0, const Tensor& order = Tensor());
  std::optional<Batch> next();
  // Builds batch `b` of the current epoch synchronously (on_pool: its
  // examples spread over the thread pool; false on the background thread).
  Batch make_batch(int64_t b, bool on_pool = true) const;
  bool background() const;  // prefetch on, and the training threads leave a core free
  // Throws unless `order` (i64) is 1-D, in range and visits no example twice.
  void check_order(const Tensor& order) const;

 private:
  Batch make_text_batch(int64_t b) const;
  Dataset ds_;
  LoaderOptions opt_;
  Tensor order_;
  int64_t epoch_ = 0, next_ = 0;
  std::future<Batch> pending_;
};

}  // namespace brisk::data

// In-memory image classification datasets. Every example is addressed by its
// index in the dataset; batches carry those indices (sample selection keys its
// per-example statistics on them).
#pragma once
#include <string>

#include "core/tensor.h"

namespace brisk::data {

struct Dataset {
  std::string name;
  Tensor images;  // [N, C, H, W] u8
  Tensor labels;  // [N] i64
  int64_t num_classes = 10;
  double mean = 0.0, std = 1.0;  // per-pixel normalization of x / 255
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

// "fashion-mnist" from `dir` (default: the Debian package's folder).
Dataset load_dataset(const std::string& name, const std::string& dir, bool train);

}  // namespace brisk::data

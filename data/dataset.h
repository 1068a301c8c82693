// In-memory datasets: image classification, or token windows of a text corpus
// (data/text.h). Every example is addressed by its index in the dataset;
// batches carry those indices (sample selection keys its per-example
// statistics on them).
#pragma once
#include <string>

#include "core/tensor.h"

namespace brisk::data {

struct Dataset {
  std::string name;
  Tensor images;  // [N, C, H, W] u8
  Tensor labels;  // [N] i64
  int64_t num_classes = 10;  // text: the vocabulary
  double mean = 0.0, std = 1.0;  // per-pixel normalization of x / 255
  // Text: the split's tokens [L] u8 and the window length T; example i is
  // tokens [i T, i T + T + 1) (input the first T, targets the last T).
  Tensor tokens;
  int64_t block_size = 0;
  bool is_text() const { return tokens.defined(); }
  int64_t size() const {
    if (is_text()) return (tokens.numel() - 1) / block_size;
    return images.defined() ? images.size(0) : 0;
  }
};

// "fashion-mnist" from `dir` (default: the Debian package's folder), or
// "text:kjv" / "text:PATH" in windows of block_size tokens (data/text.h).
Dataset load_dataset(const std::string& name, const std::string& dir, bool train, int64_t block_size = 0);

}  // namespace brisk::data

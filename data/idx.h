// IDX (MNIST format) files, plain or gzip-compressed, and Fashion-MNIST.
#pragma once
#include <string>

#include "core/tensor.h"

namespace brisk::data {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Reads an IDX file of unsigned bytes (type 0x08). Returns a u8 tensor with the
// file's shape. Throws brisk::Error naming the path on a missing, truncated or
// corrupt file.
Tensor read_idx(const std::string& path);

struct MnistSplit {
  Tensor images;  // [N, 1, 28, 28] u8
  Tensor labels;  // [N] i64
};
// Loads the train or test split from `dir` ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]).
MnistSplit load_mnist_split(const std::string& dir, bool train);

}  // namespace brisk::data

// Dataset registry.
#include "data/dataset.h"

#include "core/ops.h"
#include "data/idx.h"
#include "data/text.h"

namespace brisk::data {

Dataset load_dataset(const std::string& name, const std::string& dir, bool train, int64_t block_size) {
  if (name.rfind("text:", 0) == 0) return make_text_dataset(load_text_corpus(name.substr(5)), train, block_size);
  BRISK_CHECK(name == "fashion-mnist", "unknown dataset '", name, "' (known: fashion-mnist, text:kjv, text:PATH)");
  auto split = load_mnist_split(dir.empty() ? kFashionMnistDir : dir, train);
  Dataset d;
  d.name = name;
  d.images = split.images;
  d.labels = split.labels;
  BRISK_CHECK(min(d.labels).item() >= 0 && max(d.labels).item() < 10, "dataset ", dir,
              ": labels must be in [0, 10)");
  // Fashion-MNIST training-set statistics of x / 255.
  d.mean = 0.2860;
  d.std = 0.3530;
  return d;
}

}  // namespace brisk::data

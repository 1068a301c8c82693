// Shared by the language-model tests: a small deterministic text file and a
// fast gpt-tiny config on it.
#pragma once
#include <random>

#include "tests/train_helpers.h"

namespace bt {

// A deterministic text of ~24 KB: lines of words from a small list.
inline std::string small_text_file() {
  static std::string path = [] {
    fs::path p = fs::temp_directory_path() / ("brisk_text_" + std::to_string(::getpid()) + ".txt");
    const char* words[] = {"and", "the", "lord", "said", "unto", "him", "light", "was", "good", "day"};
    std::mt19937 rng(7);
    std::ofstream f(p);
    for (int line = 0; line < 800; ++line) {
      for (int w = 0; w < 6; ++w) f << (w ? " " : "") << words[rng() % 10];
      f << ".\n";
    }
    return p.string();
  }();
  return path;
}

inline TrainConfig lm_config(const std::string& out) {
  TrainConfig c = small_config(out);
  c.model = "gpt-tiny";
  c.data = "text:" + small_text_file();
  c.data_dir = "";
  c.block_size = 32, c.n_layer = 1, c.n_head = 2, c.n_embd = 32;
  c.optimizer = "adamw";
  c.lr = 3e-3;
  c.weight_decay = 0.1;
  c.batch_size = 16;
  c.epochs = 2;
  return c;
}

}  // namespace bt

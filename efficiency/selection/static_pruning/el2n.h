// EL2N scores (Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet",
// NeurIPS 2021): score_i = ||softmax(f(x_i)) - onehot(y_i)||_2, every example
// scored with the same weights (the paper: early in training, averaged over
// several independent runs; here one run, at the start of epoch `start`).
#pragma once
#include <vector>

#include "data/dataset.h"
#include "nn/module.h"

namespace brisk::selection {

// Scores every example of `ds` by dataset index in one forward-only pass in
// eval mode (BatchNorm statistics do not move); the model is put back in its mode.
std::vector<float> el2n_scores(nn::Module& model, const data::Dataset& ds, int64_t batch_size = 256);

}  // namespace brisk::selection

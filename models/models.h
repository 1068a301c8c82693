// Model zoo for 28x28 single-channel images (Fashion-MNIST), 10 classes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/gpt.h"
#include "nn/layers.h"

namespace brisk::models {

// 784-512-256-10 with ReLU.
std::shared_ptr<nn::Sequential> mlp();
// conv 1->32 3x3 p1, ReLU, maxpool 2; conv 32->64 3x3 p1, ReLU, maxpool 2;
// linear 3136->128, ReLU; linear 128->10. Layer indices match the same
// torch.nn.Sequential, so state dicts are interchangeable.
std::shared_ptr<nn::Sequential> cnn();
// A small ResNet for 28x28: stem conv 1->32 + BN + ReLU at 28x28, then basic
// blocks 32->32 (stride 2, 14x14), 32->64 (stride 2, 7x7), 64->64, global
// average pool, linear 64->10. `width` scales every channel count; `extra`
// identity blocks (stride 1, same width) follow each stage's first block.
// "resnet-deep" is extra = 2: runs of 2 and 3 identity blocks (depth
// stacking needs runs to grow).
std::shared_ptr<nn::Sequential> resnet(double width = 1.0, int64_t extra = 0);

// `gpt` sets the language models' sizes (models/gpt.h); image models ignore it.
std::shared_ptr<nn::Module> make_model(const std::string& name, const GPTOptions& gpt = {});
const std::vector<std::string>& model_names();
// The image shape an image model expects: [C, H, W] = [1, 28, 28]. Throws
// for a language model (is_gpt), which reads token ids [B, T].
Shape input_shape(const std::string& name);

}  // namespace brisk::models

// Model definitions.
#include "models/models.h"

#include <cmath>

namespace brisk::models {

using namespace brisk::nn;

std::shared_ptr<Sequential> mlp() {
  return std::make_shared<Sequential>(std::vector<ModulePtr>{
      std::make_shared<Flatten>(), std::make_shared<Linear>(784, 512), std::make_shared<ReLU>(),
      std::make_shared<Linear>(512, 256), std::make_shared<ReLU>(), std::make_shared<Linear>(256, 10)});
}

std::shared_ptr<Sequential> cnn() {
  return std::make_shared<Sequential>(std::vector<ModulePtr>{
      std::make_shared<Conv2d>(1, 32, 3, 1, 1), std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
      std::make_shared<Conv2d>(32, 64, 3, 1, 1), std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
      std::make_shared<Flatten>(), std::make_shared<Linear>(3136, 128), std::make_shared<ReLU>(),
      std::make_shared<Linear>(128, 10)});
}

std::shared_ptr<Sequential> resnet(double width, int64_t extra) {
  BRISK_CHECK(width > 0, "resnet: width must be positive, got ", width);
  BRISK_CHECK(extra >= 0, "resnet: extra blocks must be >= 0, got ", extra);
  auto ch = [&](int64_t c) { return std::max<int64_t>(1, int64_t(std::lround(double(c) * width))); };
  int64_t c1 = ch(32), c2 = ch(64);
  std::vector<ModulePtr> layers{std::make_shared<Conv2d>(1, c1, 3, 1, 1, 1, 1, false),
                                std::make_shared<BatchNorm2d>(c1), std::make_shared<ReLU>(),
                                std::make_shared<ResidualBlock>(c1, c1, 2)};
  for (int64_t i = 0; i < extra; ++i) layers.push_back(std::make_shared<ResidualBlock>(c1, c1, 1));
  layers.push_back(std::make_shared<ResidualBlock>(c1, c2, 2));
  for (int64_t i = 0; i < 1 + extra; ++i) layers.push_back(std::make_shared<ResidualBlock>(c2, c2, 1));
  layers.push_back(std::make_shared<AdaptiveAvgPool2d>(1));
  layers.push_back(std::make_shared<Flatten>());
  layers.push_back(std::make_shared<Linear>(c2, 10));
  return std::make_shared<Sequential>(layers);
}

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names{"mlp", "cnn", "resnet", "resnet-deep", "gpt-tiny", "gpt-small"};
  return names;
}

static std::string known_models() {
  std::string s;
  for (auto& n : model_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

Shape input_shape(const std::string& name) {
  BRISK_CHECK(!is_gpt(name), "model ", name, " is a language model: it reads token ids [B, T], not images");
  for (auto& n : model_names())
    if (n == name) return {1, 28, 28};
  BRISK_FAIL("unknown model '", name, "' (known: ", known_models(), ")");
}

std::shared_ptr<Module> make_model(const std::string& name, const GPTOptions& gpt) {
  if (is_gpt(name)) return std::make_shared<GPT>(gpt_config(name, gpt));
  if (name == "mlp") return mlp();
  if (name == "cnn") return cnn();
  if (name == "resnet") return resnet();
  if (name == "resnet-deep") return resnet(1.0, 2);
  BRISK_FAIL("unknown model '", name, "' (known: ", known_models(), ")");
}

}  // namespace brisk::models

// Uses the custom softplus op (softplus.h) as an activation: a small MLP
// trained by hand on two Gaussian blobs, as examples/train_mlp does with ReLU.
#include <cstdio>

#include "softplus.h"

int main() {
  using namespace brisk;
  namespace F = brisk::nn::functional;
  manual_seed(0);
  const int64_t N = 512, D = 16;
  Tensor y = randint(0, 2, {N}, DType::i64);
  Tensor x = randn({N, D}) + (y.to(DType::f32) * 1.5 - 0.75).reshape({N, 1});
  nn::Linear l1(D, 32), l2(32, 2);
  std::vector<std::pair<std::string, Tensor>> params;
  for (auto& [n, p] : l1.named_parameters()) params.emplace_back("l1." + n, p);
  for (auto& [n, p] : l2.named_parameters()) params.emplace_back("l2." + n, p);
  optim::SGDOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  optim::SGD opt(params, o);
  double first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    opt.zero_grad();
    Tensor loss = F::cross_entropy(l2.forward(example::softplus(l1.forward(x))), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  std::printf("softplus MLP: loss %.4f -> %.4f\n", first, last);
  return last < first ? 0 : 1;
}

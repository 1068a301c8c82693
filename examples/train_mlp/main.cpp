// A program built outside brisk's tree against the installed package:
// a two-layer MLP learns to tell two Gaussian blobs apart, trained by SGD with
// momentum for 200 full-batch steps.
// Exits non-zero unless the loss falls and the accuracy passes 90%.
#include <brisk.h>

#include <cstdio>

using namespace brisk;
namespace F = brisk::nn::functional;

int main() {
  manual_seed(0);
  // x [512, 16]: class c is centred at +-0.75 in every feature; y i64 [512].
  const int64_t N = 512, D = 16;
  Tensor y = randint(0, 2, {N}, DType::i64);
  Tensor centre = (y.to(DType::f32) * 1.5 - 0.75).reshape({N, 1});
  Tensor x = randn({N, D}) + centre;

  auto model = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
      std::make_shared<nn::Linear>(D, 64), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(64, 2)});
  optim::SGDOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  optim::SGD opt(model->named_parameters(), o);

  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    opt.zero_grad();
    Tensor loss = F::cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  NoGradGuard ng;
  double acc = mean(eq(argmax(model->forward(x), 1), y).to(DType::f32)).item();
  std::printf("brisk %s: loss %.4f -> %.4f, train accuracy %.3f\n", BRISK_VERSION, first, last, acc);
  return last < first && acc > 0.9 ? 0 : 1;
}

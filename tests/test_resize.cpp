// Progressive resizing (efficiency/resizing) and its bilinear resize
// (data/resize.h): the resize against PyTorch's interpolate formula written
// out here in double (and a 2x downscale against the 2x2 mean), the image
// side at every step against hand-listed values, the refusal of a model with
// a fixed-size classifier, and bit-exact resume.
#include <cmath>

#include "data/resize.h"
#include "tests/train_helpers.h"

using namespace bt;
using brisk::train::Trainer;

namespace {
// torch.nn.functional.interpolate(mode="bilinear", align_corners=False) at one output pixel.
double bilinear_ref(const std::vector<double>& img, int64_t H, int64_t W, int64_t oh, int64_t ow, int64_t r,
                    int64_t c) {
  auto coord = [](int64_t d, int64_t in, int64_t out, int64_t& i0, int64_t& i1, double& l) {
    double s = (double(d) + 0.5) * double(in) / double(out) - 0.5;
    if (s < 0) s = 0;
    i0 = int64_t(std::floor(s));
    if (i0 > in - 1) i0 = in - 1;
    i1 = i0 + 1 < in ? i0 + 1 : in - 1;
    l = s - double(i0);
  };
  int64_t y0, y1, x0, x1;
  double ly, lx;
  coord(r, H, oh, y0, y1, ly);
  coord(c, W, ow, x0, x1, lx);
  auto at = [&](int64_t y, int64_t x) { return img[size_t(y * W + x)]; };
  return (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
}
}  // namespace

TEST_CASE("resize_bilinear: PyTorch's bilinear formula, and a 2x downscale is the 2x2 mean", "[resize][data]") {
  Tensor x = uniform64({2, 3, 28, 28}, -1, 1, 4).to(DType::f32);
  Tensor half = brisk::data::resize_bilinear(x, 14, 14);
  Tensor mean2 = (x.narrow(2, 0, 28).reshape({2, 3, 14, 2, 14, 2}).to(DType::f64));
  Tensor want = mean(mean2, {3, 5});
  CHECK(max_rel_err(half.to(DType::f64), want) < 1e-6);
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{20, 20}, {9, 13}, {40, 31}, {28, 28}}) {
    INFO(oh << "x" << ow);
    Tensor y = brisk::data::resize_bilinear(x, oh, ow);
    REQUIRE(y.shape() == Shape({2, 3, oh, ow}));
    Tensor plane = x.select(0, 1).select(0, 2).to(DType::f64).contiguous();
    std::vector<double> img(plane.data_ptr<double>(), plane.data_ptr<double>() + 784);
    Tensor got = y.select(0, 1).select(0, 2).to(DType::f64).contiguous();
    double worst = 0;
    for (int64_t r = 0; r < oh; ++r)
      for (int64_t c = 0; c < ow; ++c)
        worst = std::max(worst, std::fabs(got.data_ptr<double>()[r * ow + c] - bilinear_ref(img, 28, 28, oh, ow, r, c)));
    CHECK(worst < 1e-6);
  }
  CHECK_THROWS_WITH(brisk::data::resize_bilinear(x, 0, 5), Catch::Contains("output size 0x5"));
  CHECK_THROWS_WITH(brisk::data::resize_bilinear(x.select(0, 0), 5, 5), Catch::Contains("[N, C, H, W]"));
  CHECK_THROWS_WITH(brisk::data::resize_bilinear(x.to(DType::f64), 5, 5), Catch::Contains("f32"));
}

TEST_CASE("resize: the image side follows scale, delay, ramp and finetune at every step", "[resize][conformance]") {
  TrainConfig c = small_config("resize_sides");
  c.model = "resnet";
  c.methods = {"resize:scale=0.5,delay=0.25,finetune=0.25,increment=2"};
  Trainer t(c, brisk::efficiency::make_methods);
  Probe* p = add_probe(t);
  std::vector<int64_t> sides;
  p->batch_start = [&](Trainer& tr) { sides.push_back(tr.batch.x.size(2)); };
  t.fit();
  // 16 steps, t = s / 16: scale 0.5 until 0.25, linear to 1 at 0.75, then 1;
  // side = floor(scale * 28 / 2) * 2 (worked out by hand per step).
  std::vector<int64_t> want{14, 14, 14, 14, 14, 14, 16, 18, 20, 22, 24, 26, 28, 28, 28, 28};
  CHECK(sides == want);
  CHECK(read_jsonl(c.out + "/metrics.jsonl").back()["image_side"] == 28);
  TrainConfig r = small_config("resize_resume");
  r.model = "resnet";
  r.methods = c.methods;
  check_resume_bit_exact(r, {3, 9});
}

TEST_CASE("resize: a model with a fixed-size classifier is refused before training", "[resize][errors]") {
  TrainConfig c = small_config("resize_cnn");
  c.model = "cnn";
  c.methods = {"resize:scale=0.5"};
  CHECK_THROWS_WITH(Trainer(c, brisk::efficiency::make_methods).fit(),
                    Catch::Contains("cannot take 12x12 images") && Catch::Contains("global pooling"));
  refused_spec("resize:scale=0", "scale must be in (0, 1]");
  refused_spec("resize:delay=0.7,finetune=0.5", "delay + finetune <= 1");
  refused_spec("resize:increment=0", "increment must be in [1, 1024]");
}

TEST_CASE("resize, stochastic depth, freezing and SWA compose on the resnet, each reaching its end state", "[resize][compose]") {
  TrainConfig c = small_config("resnet_compose");
  c.model = "resnet";
  c.methods = {"swa:start=0.5,frequency=2", "resize:scale=0.5,increment=2", "stochastic-depth:p_last=0.5",
               "freeze:kind=linear,start=0.25"};
  Trainer t(c, brisk::efficiency::make_methods);
  t.fit();
  json m = read_jsonl(c.out + "/metrics.jsonl").back();
  CHECK(m["image_side"] == 28);
  CHECK(m["dropped_block_fraction"].get<double>() > 0);
  CHECK(m["frozen_layers"].get<int64_t>() >= 5);  // 7 layers with parameters; linear freezing reaches 6 by the end
  CHECK(m["swa_models"] == 4);
  CHECK(m["swa_bn_pass_s"].get<double>() > 0);
}

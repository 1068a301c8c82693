// Finite-difference gradient checks in f64 for every differentiable op, on
// seeded random shapes with broadcasting and non-contiguous views.
#include "tests/helpers.h"

using namespace bt;
namespace F = brisk::nn::functional;
using V = std::vector<Tensor>;

TEST_CASE("gradcheck: unary ops on contiguous and transposed inputs", "[gradcheck]") {
  struct U {
    const char* name;
    Tensor (*fn)(const Tensor&);
    double lo, hi;
  };
  // Domains avoid kinks (abs, relu at 0) and poles (log, rsqrt at 0).
  std::vector<U> ops = {{"neg", neg, -2, 2},       {"exp", exp, -2, 2},          {"log", log, 0.5, 3},
                        {"sqrt", sqrt, 0.5, 3},    {"rsqrt", rsqrt, 0.5, 3},     {"abs", abs, 0.2, 2},
                        {"tanh", tanh, -2, 2},     {"sigmoid", sigmoid, -3, 3},  {"relu", relu, 0.1, 2},
                        {"gelu", gelu, -3, 3}};
  std::mt19937 rng(7);
  for (auto& u : ops) {
    Shape s = random_shape(rng, 3, 4);
    Tensor x = uniform64(s, u.lo, u.hi, rng());
    if (std::string(u.name) == "abs" || std::string(u.name) == "relu")
      x = (x * sign(uniform64(s, -1, 1, rng()))).detach().requires_grad_(true);  // both signs, away from 0
    gradcheck(u.name, [&](const V& in) { return u.fn(in[0]); }, {x});
    Tensor m = uniform64({3, 4}, u.lo, u.hi, rng());
    if (std::string(u.name) == "abs" || std::string(u.name) == "relu")
      m = (m * sign(uniform64({3, 4}, -1, 1, rng()))).detach().requires_grad_(true);
    gradcheck(std::string(u.name) + " transposed", [&](const V& in) { return u.fn(in[0].t()); }, {m});
  }
}

TEST_CASE("gradcheck: binary ops with random broadcasting", "[gradcheck]") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 4; ++trial) {
    Shape sa = random_shape(rng, 3, 4);
    Shape sb = broadcastable(rng, sa);
    if (trial % 2) std::swap(sa, sb);
    Tensor a = uniform64(sa, 0.5, 2, rng()), b = uniform64(sb, 0.5, 2, rng());
    INFO("a " << shape_str(sa) << " b " << shape_str(sb));
    gradcheck("add", [](const V& in) { return in[0] + in[1]; }, {a, b});
    gradcheck("sub", [](const V& in) { return in[0] - in[1]; }, {a, b});
    gradcheck("mul", [](const V& in) { return in[0] * in[1]; }, {a, b});
    gradcheck("div", [](const V& in) { return in[0] / in[1]; }, {a, b});
    gradcheck("pow", [](const V& in) { return pow(in[0], in[1]); }, {a, b});
    Tensor c = uniform64(sb, 0.5, 2, rng());  // distinct values: no ties
    gradcheck("maximum", [](const V& in) { return maximum(in[0], in[1]); }, {a, c});
    gradcheck("minimum", [](const V& in) { return minimum(in[0], in[1]); }, {a, c});
  }
  Tensor a = uniform64({4, 3}, 0.5, 2, 3), b = uniform64({4}, 0.5, 2, 4);
  gradcheck("mul non-contiguous", [](const V& in) { return in[0].t() * in[1]; }, {a, b});
  gradcheck("scalar ops", [](const V& in) { return (2.0 - in[0] * 3.0) / 4.0 + 1.0 / in[0]; }, {a});
  gradcheck("pow scalar exponent", [](const V& in) { return pow(in[0], 2.5); }, {a});
}

TEST_CASE("gradcheck: where and masked_fill", "[gradcheck]") {
  Tensor a = uniform64({3, 4}, -1, 1, 1), b = uniform64({4}, -1, 1, 2);
  Tensor cond = gt(uniform64({3, 1}, -1, 1, 3).detach(), scalar_tensor(0, DType::f64));
  gradcheck("where", [&](const V& in) { return where(cond, in[0], in[1]); }, {a, b});
  Tensor mask = gt(uniform64({3, 4}, -1, 1, 5).detach(), scalar_tensor(0, DType::f64));
  gradcheck("masked_fill", [&](const V& in) { return masked_fill(in[0], mask, 7.0); }, {a});
}

TEST_CASE("gradcheck: reductions over dims with keepdim", "[gradcheck]") {
  Tensor x = uniform64({2, 3, 4}, -1, 1, 8);
  for (bool keep : {false, true}) {
    for (std::vector<int64_t> dims : std::vector<std::vector<int64_t>>{{}, {0}, {-1}, {0, 2}, {1, 2}}) {
      INFO("keepdim " << keep << " ndims " << dims.size());
      gradcheck("sum", [&](const V& in) { return sum(in[0], dims, keep); }, {x});
      gradcheck("mean", [&](const V& in) { return mean(in[0], dims, keep); }, {x});
      gradcheck("max", [&](const V& in) { return max(in[0], dims, keep); }, {x});
      gradcheck("min", [&](const V& in) { return min(in[0], dims, keep); }, {x});
      gradcheck("var", [&](const V& in) { return var(in[0], dims, 1, keep); }, {x});
    }
  }
  gradcheck("sum of permuted", [](const V& in) { return sum(in[0].permute({2, 0, 1}), {0}); }, {x});
}

TEST_CASE("gradcheck: softmax and log_softmax along each dim", "[gradcheck]") {
  Tensor x = uniform64({2, 3, 4}, -2, 2, 9);
  for (int64_t d : {0, 1, 2, -1}) {
    gradcheck("softmax", [&](const V& in) { return softmax(in[0], d); }, {x});
    gradcheck("log_softmax", [&](const V& in) { return log_softmax(in[0], d); }, {x});
  }
}

TEST_CASE("gradcheck: matmul shapes, batching and transposes", "[gradcheck]") {
  struct Case { Shape a, b; };
  std::vector<Case> cases = {{{3}, {3}},          {{3}, {3, 2}},          {{2, 3}, {3}},
                             {{2, 3}, {3, 4}},    {{2, 2, 3}, {3, 4}},    {{2, 2, 3}, {2, 3, 4}},
                             {{1, 2, 3}, {2, 3, 2}}, {{2, 1, 2, 3}, {3, 3, 2}}};
  uint64_t seed = 20;
  for (auto& c : cases) {
    Tensor a = uniform64(c.a, -1, 1, seed++), b = uniform64(c.b, -1, 1, seed++);
    gradcheck("matmul " + shape_str(c.a) + "@" + shape_str(c.b),
              [](const V& in) { return matmul(in[0], in[1]); }, {a, b});
  }
  Tensor a = uniform64({3, 2}, -1, 1, 40), b = uniform64({4, 3}, -1, 1, 41);
  gradcheck("matmul transposed views", [](const V& in) { return matmul(in[0].t(), in[1].t()); }, {a, b});
  Tensor x = uniform64({5, 3}, -1, 1, 42), w = uniform64({4, 3}, -1, 1, 43), bias = uniform64({4}, -1, 1, 44);
  gradcheck("linear", [](const V& in) { return F::linear(in[0], in[1], in[2]); }, {x, w, bias});
}

TEST_CASE("gradcheck: conv2d with stride, padding, dilation and groups", "[gradcheck]") {
  struct Case { int64_t C, O, k, stride, pad, dil, groups; };
  std::vector<Case> cases = {{2, 3, 3, 1, 1, 1, 1}, {2, 2, 2, 2, 0, 1, 1}, {4, 4, 3, 1, 2, 2, 2},
                             {3, 3, 1, 1, 0, 1, 3}, {2, 4, 3, 2, 1, 1, 2}};
  uint64_t seed = 50;
  for (auto& c : cases) {
    Tensor x = uniform64({2, c.C, 5, 6}, -1, 1, seed++);
    Tensor w = uniform64({c.O, c.C / c.groups, c.k, c.k}, -1, 1, seed++);
    Tensor b = uniform64({c.O}, -1, 1, seed++);
    // groups == 1 runs the fused op (ref kernels in f64), groups > 1 the composite.
    gradcheck("conv2d", [&](const V& in) {
      return F::conv2d(in[0], in[1], in[2], c.stride, c.pad, c.dil, c.groups);
    }, {x, w, b});
    // The ReLU-fused form and the composite it overrides; an offset keeps
    // pre-activations away from the kink at 0.
    gradcheck("conv2d_relu", [&](const V& in) {
      return F::conv2d_relu(in[0], in[1], in[2] + 0.05, c.stride, c.pad, c.dil, c.groups, true);
    }, {x, w, b});
    gradcheck("conv2d_composite", [&](const V& in) {
      return F::conv2d_composite(in[0], in[1], in[2], c.stride, c.pad, c.dil, c.groups, false);
    }, {x, w, b});
  }
  Geom2d g{1, 2, 4, 5, 2, 3, 1, 2, 1, 1, 1, 1, 0, 0};
  g.Ho = (4 + 2 - 2) / 1 + 1;
  g.Wo = (5 + 2 - 3) / 2 + 1;
  gradcheck("im2col", [&](const V& in) { return im2col(in[0], g); }, {uniform64({1, 2, 4, 5}, -1, 1, 60)});
  gradcheck("col2im", [&](const V& in) { return col2im(in[0], g); },
            {uniform64({1, 2 * 2 * 3, g.Ho * g.Wo}, -1, 1, 61)});
}

TEST_CASE("gradcheck: pooling", "[gradcheck]") {
  // Distinct values so the max is unique in every window.
  Tensor x = (randperm(2 * 3 * 6 * 7).to(DType::f64).reshape({2, 3, 6, 7}) / 50.0).detach().requires_grad_(true);
  gradcheck("max_pool2d k2", [](const V& in) { return F::max_pool2d(in[0], 2); }, {x});
  gradcheck("max_pool2d k3 s2 p1", [](const V& in) { return F::max_pool2d(in[0], 3, F::Pair(2), 1); }, {x});
  gradcheck("avg_pool2d k2", [](const V& in) { return F::avg_pool2d(in[0], 2); }, {x});
  gradcheck("avg_pool2d k3 s2 p1", [](const V& in) { return F::avg_pool2d(in[0], 3, F::Pair(2), 1); }, {x});
  gradcheck("adaptive_avg_pool2d 1x1", [](const V& in) { return F::adaptive_avg_pool2d(in[0], 1); }, {x});
  gradcheck("adaptive_avg_pool2d 4x3", [](const V& in) { return F::adaptive_avg_pool2d(in[0], {4, 3}); }, {x});
  gradcheck("max_pool2d of transposed", [](const V& in) { return F::max_pool2d(in[0].transpose(2, 3), 2); }, {x});
}

TEST_CASE("gradcheck: normalization, dropout, embedding", "[gradcheck]") {
  Tensor x = uniform64({4, 3, 2, 2}, -1, 1, 70);
  Tensor w = uniform64({3}, 0.5, 1.5, 71), b = uniform64({3}, -1, 1, 72);
  Tensor rm = zeros({3}, DType::f64), rv = ones({3}, DType::f64);
  gradcheck("batch_norm train", [&](const V& in) {
    return F::batch_norm(in[0], rm, rv, in[1], in[2], true);
  }, {x, w, b});
  gradcheck("batch_norm train, no affine", [&](const V& in) {
    return F::batch_norm(in[0].transpose(2, 3), Tensor(), Tensor(), Tensor(), Tensor(), true);
  }, {x});
  gradcheck("batch_norm_composite train", [&](const V& in) {
    return F::batch_norm_composite(in[0], rm, rv, in[1], in[2], true);
  }, {x, w, b});
  Tensor rm2 = uniform64({3}, -1, 1, 73).detach(), rv2 = uniform64({3}, 0.5, 2, 74).detach();
  gradcheck("batch_norm eval", [&](const V& in) {
    return F::batch_norm(in[0], rm2, rv2, in[1], in[2], false);
  }, {x, w, b});
  Tensor y = uniform64({3, 4, 5}, -1, 1, 75), lw = uniform64({4, 5}, 0.5, 1.5, 76), lb = uniform64({4, 5}, -1, 1, 77);
  gradcheck("layer_norm", [](const V& in) { return F::layer_norm(in[0], {4, 5}, in[1], in[2]); }, {y, lw, lb});
  gradcheck("layer_norm no affine", [](const V& in) { return F::layer_norm(in[0].transpose(0, 1), {5}); }, {y});
  gradcheck("dropout", [](const V& in) {
    Generator g(5);  // same mask on every evaluation
    return F::dropout(in[0], 0.3, true, &g);
  }, {y});
  Tensor table = uniform64({6, 3}, -1, 1, 78);
  Tensor idx = from_vector({0, 5, 2, 2, 1, 0}, {2, 3}, DType::i64);
  gradcheck("embedding", [&](const V& in) { return F::embedding(idx, in[0]); }, {table});
}

TEST_CASE("gradcheck: losses", "[gradcheck]") {
  Tensor logits = uniform64({5, 4}, -2, 2, 80);
  Tensor target = from_vector({0, 3, 1, 3, 2}, {5}, DType::i64);
  Tensor target_ign = from_vector({0, -100, 1, 3, -100}, {5}, DType::i64);
  for (auto red : {F::Reduction::none, F::Reduction::mean, F::Reduction::sum})
    for (double ls : {0.0, 0.1}) {
      gradcheck("cross_entropy", [&](const V& in) { return F::cross_entropy(in[0], target, red, -100, ls); }, {logits});
      gradcheck("cross_entropy ignore_index", [&](const V& in) {
        return F::cross_entropy(in[0], target_ign, red, -100, ls);
      }, {logits});
    }
  Tensor a = uniform64({3, 4}, -1, 1, 81), t = uniform64({3, 4}, -1, 1, 82);
  for (auto red : {F::Reduction::none, F::Reduction::mean, F::Reduction::sum})
    gradcheck("mse_loss", [&](const V& in) { return F::mse_loss(in[0], in[1], red); }, {a, t});
}

TEST_CASE("gradcheck: joining and indexing", "[gradcheck]") {
  Tensor a = uniform64({2, 3}, -1, 1, 90), b = uniform64({2, 2}, -1, 1, 91), c = uniform64({2, 3}, -1, 1, 92);
  gradcheck("cat dim 1", [](const V& in) { return cat({in[0], in[1]}, 1); }, {a, b});
  gradcheck("cat of transposed", [](const V& in) { return cat({in[0].t(), in[1].t()}, 0); }, {a, b});
  gradcheck("stack", [](const V& in) { return stack({in[0], in[1]}, 1); }, {a, c});
  gradcheck("split", [](const V& in) {
    auto parts = split(in[0], 2, 1);
    return parts[0] * 2.0 + sum(parts[1], {1}, true);
  }, {a});
  Tensor x = uniform64({4, 3}, -1, 1, 93);
  Tensor idx = from_vector({3, 0, 3}, {3}, DType::i64);
  gradcheck("index_select dim 0", [&](const V& in) { return index_select(in[0], 0, idx); }, {x});
  Tensor idx1 = from_vector({2, 2, 0, 1}, {4}, DType::i64);
  gradcheck("index_select dim 1", [&](const V& in) { return index_select(in[0], 1, idx1); }, {x});
  Tensor gidx = from_vector({0, 2, 1, 1, 0, 0, 2, 2}, {4, 2}, DType::i64);
  gradcheck("gather", [&](const V& in) { return gather(in[0], 1, gidx); }, {x});
  Tensor src = uniform64({4, 2}, -1, 1, 94);
  gradcheck("scatter_add", [&](const V& in) { return scatter_add(in[0], 1, gidx, in[1]); }, {x, src});
}

TEST_CASE("gradcheck: views", "[gradcheck]") {
  Tensor x = uniform64({2, 3, 4}, -1, 1, 100);
  gradcheck("reshape", [](const V& in) { return in[0].reshape({4, 6}) * 2.0; }, {x});
  gradcheck("view -1", [](const V& in) { return in[0].view({-1, 4}) * 2.0; }, {x});
  gradcheck("permute", [](const V& in) { return in[0].permute({2, 0, 1}) * 2.0; }, {x});
  gradcheck("transpose+reshape (copy)", [](const V& in) { return in[0].transpose(0, 2).reshape({-1}) * 2.0; }, {x});
  gradcheck("narrow", [](const V& in) { return in[0].narrow(2, 1, 2) * 2.0; }, {x});
  gradcheck("slice step 2", [](const V& in) { return in[0].slice(2, 0, 4, 2) * 2.0; }, {x});
  gradcheck("select", [](const V& in) { return in[0].select(1, -1) * 2.0; }, {x});
  Tensor y = uniform64({3, 1}, -1, 1, 101);
  gradcheck("expand", [](const V& in) { return in[0].expand({2, 3, 4}) * uniform64({2, 3, 4}, -1, 1, 5).detach(); }, {y});
  gradcheck("squeeze/unsqueeze", [](const V& in) { return in[0].squeeze().unsqueeze(0) * 2.0; }, {y});
  gradcheck("contiguous of transposed", [](const V& in) { return in[0].transpose(1, 2).contiguous() * 2.0; }, {x});
  gradcheck("flatten", [](const V& in) { return in[0].flatten(1) * 2.0; }, {x});
  gradcheck("clone", [](const V& in) { return in[0].clone() * 2.0; }, {x});
  gradcheck("to f32 and back", [](const V& in) { return in[0].to(DType::f32).to(DType::f64) * 2.0; }, {x}, 1e-3, 1e-4);
}

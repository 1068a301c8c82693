// Truncated SVD through the Gram matrix, and the layer surgery (factorize.h).
#include "surgery/factorize.h"

#include "surgery/surgery.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace brisk::nn {

namespace {

// Eigen-decomposition of a symmetric k x k matrix a (row-major, double) by
// cyclic Jacobi rotations: on return a's diagonal holds the eigenvalues and
// v's columns the eigenvectors.
void jacobi_eigen(std::vector<double>& a, std::vector<double>& v, int64_t k) {
  v.assign(size_t(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i) v[size_t(i * k + i)] = 1.0;
  auto A = [&](int64_t i, int64_t j) -> double& { return a[size_t(i * k + j)]; };
  double total = 0;
  for (double x : a) total += x * x;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = i + 1; j < k; ++j) off += A(i, j) * A(i, j);
    if (off <= 1e-30 * total || off == 0) return;
    for (int64_t p = 0; p < k; ++p)
      for (int64_t q = p + 1; q < k; ++q) {
        double apq = A(p, q);
        if (std::fabs(apq) < 1e-300) continue;
        double theta = (A(q, q) - A(p, p)) / (2 * apq);
        double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t r = 0; r < k; ++r) {  // columns p, q
          double arp = A(r, p), arq = A(r, q);
          A(r, p) = c * arp - s * arq;
          A(r, q) = s * arp + c * arq;
        }
        for (int64_t r = 0; r < k; ++r) {  // rows p, q
          double apr = A(p, r), aqr = A(q, r);
          A(p, r) = c * apr - s * aqr;
          A(q, r) = s * apr + c * aqr;
        }
        for (int64_t r = 0; r < k; ++r) {
          double vrp = v[size_t(r * k + p)], vrq = v[size_t(r * k + q)];
          v[size_t(r * k + p)] = c * vrp - s * vrq;
          v[size_t(r * k + q)] = s * vrp + c * vrq;
        }
      }
  }
}

}  // namespace

LowRankFactors low_rank_split(const Tensor& w2d, int64_t rank) {
  BRISK_CHECK(w2d.defined() && w2d.dim() == 2, "low_rank_split: expected a matrix, got ",
              w2d.defined() ? shape_str(w2d.shape()) : std::string("undefined"));
  const int64_t m = w2d.size(0), n = w2d.size(1), k = std::min(m, n);
  BRISK_CHECK(rank >= 1 && rank <= k, "low_rank_split: rank ", rank, " must be in [1, ", k, "] for a ", m, "x", n,
              " weight");
  Tensor wd = w2d.detach().to(kCPU).to(DType::f64).contiguous();
  const double* W = wd.data_ptr<double>();
  // Gram matrix of the short side: G = W W^T (m <= n) or W^T W.
  const bool rows = m <= n;
  std::vector<double> g(size_t(k * k), 0.0), vec;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) {
      double s = 0;
      if (rows)
        for (int64_t c = 0; c < n; ++c) s += W[i * n + c] * W[j * n + c];
      else
        for (int64_t r = 0; r < m; ++r) s += W[r * n + i] * W[r * n + j];
      g[size_t(i * k + j)] = g[size_t(j * k + i)] = s;
    }
  jacobi_eigen(g, vec, k);
  std::vector<int64_t> order(static_cast<size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return g[size_t(a * k + a)] > g[size_t(b * k + b)]; });
  Tensor first = zeros({rank, n}, DType::f64), second = zeros({m, rank}, DType::f64);
  double* F1 = first.data_ptr<double>();
  double* F2 = second.data_ptr<double>();
  for (int64_t t = 0; t < rank; ++t) {
    int64_t e = order[size_t(t)];
    double sigma = std::sqrt(std::max(0.0, g[size_t(e * k + e)])), rs = std::sqrt(sigma);
    if (sigma == 0) continue;  // a zero direction: both factors stay zero there
    // rows: u = eigenvector (length m), v = W^T u / sigma; else v = eigenvector, u = W v / sigma.
    for (int64_t i = 0; i < (rows ? m : n); ++i) {
      double x = vec[size_t(i * k + e)];
      if (rows) F2[i * rank + t] = x * rs;
      else F1[t * n + i] = x * rs;
    }
    if (rows) {
      for (int64_t c = 0; c < n; ++c) {
        double s = 0;
        for (int64_t r = 0; r < m; ++r) s += W[r * n + c] * vec[size_t(r * k + e)];
        F1[t * n + c] = s / sigma * rs;
      }
    } else {
      for (int64_t r = 0; r < m; ++r) {
        double s = 0;
        for (int64_t c = 0; c < n; ++c) s += W[r * n + c] * vec[size_t(c * k + e)];
        F2[r * rank + t] = s / sigma * rs;
      }
    }
  }
  return {first.to(w2d.dtype()), second.to(w2d.dtype())};
}

void factorize(Sequential& seq, size_t layer, int64_t rank, optim::Optimizer* opt, const std::string& prefix) {
  BRISK_CHECK(layer < seq.size(), "factorize: layer ", layer, " out of range for a Sequential of ", seq.size());
  auto lin = std::dynamic_pointer_cast<Linear>(seq[layer]);
  auto conv = std::dynamic_pointer_cast<Conv2d>(seq[layer]);
  BRISK_CHECK(lin || (conv && conv->groups == 1), "factorize: layer ", layer, " is ", seq[layer]->repr(),
              "; only Linear and Conv2d with groups 1");
  ModulePtr a, b;
  {
    NoGradGuard ng;
    if (lin) {
      LowRankFactors f = low_rank_split(lin->weight, rank);
      auto l1 = std::make_shared<Linear>(lin->in_features, rank, false);
      auto l2 = std::make_shared<Linear>(rank, lin->out_features, lin->bias.defined());
      l1->weight.copy_(f.first);
      l2->weight.copy_(f.second);
      if (lin->bias.defined()) l2->bias.copy_(lin->bias);
      a = l1, b = l2;
    } else {
      int64_t O = conv->out_channels, C = conv->in_channels, kh = conv->kernel.h, kw = conv->kernel.w;
      LowRankFactors f = low_rank_split(conv->weight.reshape({O, C * kh * kw}), rank);
      auto c1 = std::make_shared<Conv2d>(C, rank, conv->kernel, conv->stride, conv->padding, conv->dilation, 1, false);
      auto c2 = std::make_shared<Conv2d>(rank, O, 1, 1, 0, 1, 1, conv->bias.defined());
      c1->weight.copy_(f.first.reshape({rank, C, kh, kw}));
      c2->weight.copy_(f.second.reshape({O, rank, 1, 1}));
      if (conv->bias.defined()) c2->bias.copy_(conv->bias);
      a = c1, b = c2;
    }
  }
  // The old layer's parameters leave the optimizer with their state.
  std::set<TensorImpl*> gone;
  for (auto& [n, p] : seq[layer]->named_parameters()) gone.insert(p.unsafe_impl());
  seq.erase(layer);
  seq.insert(layer, b);
  seq.insert(layer, a);
  if (!opt) return;
  remove_from_optimizer(opt, gone);
  rekey_optimizer(seq, opt, prefix);
}

}  // namespace brisk::nn

// Magnitude and N:M mask selection, and the gradual schedule.
#include "efficiency/pruning/magnitude.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace brisk::pruning {

int64_t prune_count(double sparsity, int64_t n) {
  BRISK_CHECK(sparsity >= 0 && sparsity <= 1, "pruning: sparsity must be in [0, 1], got ", sparsity);
  return std::clamp<int64_t>(std::llround(sparsity * double(n)), 0, n);
}

namespace {
struct Ranked {
  bool pruned;
  double mag;
  size_t tensor;
  int64_t index;
  bool operator<(const Ranked& o) const {
    if (pruned != o.pruned) return pruned;  // already pruned first
    if (mag != o.mag) return mag < o.mag;
    if (tensor != o.tensor) return tensor < o.tensor;
    return index < o.index;
  }
};

std::vector<double> magnitudes(const Tensor& w) {
  auto v = w.detach().to_vector();
  for (auto& x : v) x = std::abs(x);
  return v;
}
}  // namespace

Tensor magnitude_mask(const Tensor& w, int64_t n_prune, const Tensor& prev) {
  int64_t n = w.numel();
  BRISK_CHECK(n_prune >= 0 && n_prune <= n, "magnitude_mask: cannot prune ", n_prune, " of ", n, " weights");
  std::vector<double> mag = magnitudes(w);
  std::vector<double> pm = prev.defined() ? prev.to_vector() : std::vector<double>(size_t(n), 1.0);
  BRISK_CHECK(int64_t(pm.size()) == n, "magnitude_mask: previous mask has ", pm.size(), " entries, weight has ", n);
  std::vector<Ranked> r(static_cast<size_t>(n));
  int64_t already = 0;
  for (int64_t i = 0; i < n; ++i) {
    r[size_t(i)] = {pm[size_t(i)] == 0.0, mag[size_t(i)], 0, i};
    already += pm[size_t(i)] == 0.0;
  }
  n_prune = std::max(n_prune, already);  // masks only shrink
  std::nth_element(r.begin(), r.begin() + n_prune, r.end());
  std::vector<double> mask(size_t(n), 1.0);
  for (int64_t i = 0; i < n_prune; ++i) mask[size_t(r[size_t(i)].index)] = 0.0;
  return from_vector(mask, w.shape(), TensorOptions(w.dtype()));
}

std::vector<Tensor> global_magnitude_masks(const std::vector<Tensor>& ws, double sparsity,
                                           const std::vector<Tensor>& prev, bool allow_empty) {
  BRISK_CHECK(prev.empty() || prev.size() == ws.size(), "global_magnitude_masks: ", prev.size(),
              " previous masks for ", ws.size(), " tensors");
  std::vector<Ranked> pool;
  std::vector<std::vector<double>> masks(ws.size());
  int64_t total = 0, already = 0;
  for (size_t t = 0; t < ws.size(); ++t) {
    std::vector<double> mag = magnitudes(ws[t]);
    std::vector<double> pm = prev.empty() || !prev[t].defined() ? std::vector<double>(mag.size(), 1.0) : prev[t].to_vector();
    masks[t].assign(mag.size(), 1.0);
    total += int64_t(mag.size());
    // The weight each tensor keeps: its largest kept magnitude (highest index on ties).
    int64_t keep = -1;
    if (!allow_empty)
      for (int64_t i = 0; i < int64_t(mag.size()); ++i)
        if (pm[size_t(i)] != 0.0 && (keep < 0 || mag[size_t(i)] >= mag[size_t(keep)])) keep = i;
    for (int64_t i = 0; i < int64_t(mag.size()); ++i) {
      if (i == keep) continue;
      bool pr = pm[size_t(i)] == 0.0;
      already += pr;
      pool.push_back({pr, mag[size_t(i)], t, i});
    }
  }
  int64_t k = std::min<int64_t>(std::max(prune_count(sparsity, total), already), int64_t(pool.size()));
  std::nth_element(pool.begin(), pool.begin() + k, pool.end());
  for (int64_t i = 0; i < k; ++i) masks[pool[size_t(i)].tensor][size_t(pool[size_t(i)].index)] = 0.0;
  std::vector<Tensor> out;
  for (size_t t = 0; t < ws.size(); ++t) out.push_back(from_vector(masks[t], ws[t].shape(), TensorOptions(ws[t].dtype())));
  return out;
}

Tensor nm_mask(const Tensor& w, int64_t n, int64_t m) {
  BRISK_CHECK(m >= 1 && n >= 0 && n <= m, "nm_mask: need 0 <= N <= M, got ", n, ":", m);
  BRISK_CHECK(w.dim() >= 2, "nm_mask: weight must have rank >= 2, got ", shape_str(w.shape()));
  // w viewed as [O, C, S] (S = kh·kw for a conv, 1 for a linear): a group is
  // M consecutive input channels at one (o, s), as ASP groups them.
  int64_t O = w.size(0), C = w.size(1), S = w.numel() / std::max<int64_t>(O * C, 1);
  BRISK_CHECK(C % m == 0, "nm_mask: input channels ", C, " of weight ", shape_str(w.shape()),
              " are not divisible by M=", m);
  std::vector<double> mag = magnitudes(w.contiguous());
  std::vector<double> mask(mag.size(), 0.0);
  std::vector<int64_t> order(static_cast<size_t>(m));
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c0 = 0; c0 < C; c0 += m)
      for (int64_t sp = 0; sp < S; ++sp) {
        auto at = [&](int64_t j) { return size_t((o * C + c0 + j) * S + sp); };
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return mag[at(a)] > mag[at(b)]; });
        for (int64_t j = 0; j < n; ++j) mask[at(order[size_t(j)])] = 1.0;
      }
  return from_vector(mask, w.shape(), TensorOptions(w.dtype()));
}

double gradual_sparsity(int64_t t, double s_i, double s_f, int64_t t0, int64_t n, int64_t dt) {
  BRISK_CHECK(n >= 0 && dt >= 1, "gradual_sparsity: need n >= 0 and dt >= 1");
  if (t < t0) return s_i;
  if (n == 0 || t >= t0 + n * dt) return s_f;
  int64_t k = (t - t0) / dt;  // updates happen only at t0 + k dt
  double frac = double(k) / double(n);
  return s_f + (s_i - s_f) * std::pow(1.0 - frac, 3);
}

}  // namespace brisk::pruning

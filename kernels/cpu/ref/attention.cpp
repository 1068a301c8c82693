// Reference scaled dot-product attention, forward and backward, in double:
// each query row's scores are formed in full (the oracle may materialize
// them; the optimized kernels do not). Contract in core/kernel_params.h.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/strided.h"

namespace brisk::kern::ref {

namespace {
// Keys query i may see: [0, last) with last = i + 1 + (Tk - Tq) when causal.
int64_t keys_seen(const AttentionParams& p, int64_t i, int64_t Tq, int64_t Tk) {
  if (!p.causal) return Tk;
  return std::max<int64_t>(0, std::min<int64_t>(Tk, i + 1 + Tk - Tq));
}

// p_j = softmax_j(scale q.k_j) over the keys seen, and its log-normalizer.
template <class T>
double row_probs(const AttentionParams& p, const T* q, const T* k, int64_t n, int64_t D, std::vector<double>& pr) {
  pr.assign(size_t(n), 0.0);
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += double(q[d]) * double(k[j * D + d]);
    pr[size_t(j)] = s * p.scale;
    m = std::max(m, pr[size_t(j)]);
  }
  double l = 0;
  for (int64_t j = 0; j < n; ++j) l += std::exp(pr[size_t(j)] - m);
  for (int64_t j = 0; j < n; ++j) pr[size_t(j)] = std::exp(pr[size_t(j)] - m) / l;
  return n > 0 ? m + std::log(l) : -std::numeric_limits<double>::infinity();
}
}  // namespace

template <class T>
bool attention_fwd(const KernelArgs& a) {
  const auto& p = *static_cast<const AttentionParams*>(a.params);
  int64_t BH = a.in[0].size(0), Tq = a.in[0].size(1), D = a.in[0].size(2), Tk = a.in[1].size(1);
  const T *q = ptr<T>(a.in[0]), *k = ptr<T>(a.in[1]), *v = ptr<T>(a.in[2]);
  T *o = ptr<T>(a.out[0]), *lse = ptr<T>(a.out[1]);
  std::vector<double> pr;
  for (int64_t b = 0; b < BH; ++b)
    for (int64_t i = 0; i < Tq; ++i) {
      const T* qi = q + (b * Tq + i) * D;
      const T *kb = k + b * Tk * D, *vb = v + b * Tk * D;
      int64_t n = keys_seen(p, i, Tq, Tk);
      lse[b * Tq + i] = T(row_probs(p, qi, kb, n, D, pr));
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += pr[size_t(j)] * double(vb[j * D + d]);
        o[(b * Tq + i) * D + d] = T(acc);
      }
    }
  return true;
}

// With p = softmax(s), s_j = scale q.k_j, o = sum_j p_j v_j:
//   gv_j += p_j go;  dp_j = go.v_j;  ds_j = p_j (dp_j - go.o);
//   gq += scale sum_j ds_j k_j;  gk_j += scale ds_j q.
template <class T>
bool attention_bwd(const KernelArgs& a) {
  const auto& p = *static_cast<const AttentionParams*>(a.params);
  int64_t BH = a.in[1].size(0), Tq = a.in[1].size(1), D = a.in[1].size(2), Tk = a.in[2].size(1);
  const T *go = ptr<T>(a.in[0]), *q = ptr<T>(a.in[1]), *k = ptr<T>(a.in[2]), *v = ptr<T>(a.in[3]);
  const T* o = ptr<T>(a.in[4]);
  T *gq = ptr<T>(a.out[0]), *gk = ptr<T>(a.out[1]), *gv = ptr<T>(a.out[2]);
  std::vector<double> pr, gkd, gvd;
  for (int64_t b = 0; b < BH; ++b) {
    gkd.assign(size_t(Tk * D), 0.0);
    gvd.assign(size_t(Tk * D), 0.0);
    const T *kb = k + b * Tk * D, *vb = v + b * Tk * D;
    for (int64_t i = 0; i < Tq; ++i) {
      const T *qi = q + (b * Tq + i) * D, *gi = go + (b * Tq + i) * D, *oi = o + (b * Tq + i) * D;
      int64_t n = keys_seen(p, i, Tq, Tk);
      row_probs(p, qi, kb, n, D, pr);
      double di = 0;
      for (int64_t d = 0; d < D; ++d) di += double(gi[d]) * double(oi[d]);
      std::vector<double> gqi(size_t(D), 0.0);
      for (int64_t j = 0; j < n; ++j) {
        double dp = 0;
        for (int64_t d = 0; d < D; ++d) dp += double(gi[d]) * double(vb[j * D + d]);
        double ds = pr[size_t(j)] * (dp - di) * p.scale;
        for (int64_t d = 0; d < D; ++d) {
          gvd[size_t(j * D + d)] += pr[size_t(j)] * double(gi[d]);
          gqi[size_t(d)] += ds * double(kb[j * D + d]);
          gkd[size_t(j * D + d)] += ds * double(qi[d]);
        }
      }
      for (int64_t d = 0; d < D; ++d) gq[(b * Tq + i) * D + d] = T(gqi[size_t(d)]);
    }
    for (int64_t x = 0; x < Tk * D; ++x) {
      gk[b * Tk * D + x] = T(gkd[size_t(x)]);
      gv[b * Tk * D + x] = T(gvd[size_t(x)]);
    }
  }
  return true;
}

void register_attention() {
  constexpr int P = backend_priority::ref;
  BRISK_REGISTER_FLOATING("attention_fwd", "ref", P, attention_fwd);
  BRISK_REGISTER_FLOATING("attention_bwd", "ref", P, attention_bwd);
}

}  // namespace brisk::kern::ref

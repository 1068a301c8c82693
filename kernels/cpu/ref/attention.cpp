// Reference scaled dot-product attention, forward and backward, in double:
// each query row's scores are formed in full (the oracle may materialize
// them; the optimized kernels do not). Operands are [B, H, T, D] with any
// strides but a unit one along D. Contract in core/kernel_params.h.
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

// p_j = softmax_j(scale q.k_j) over the keys seen (k_j at k + j ks), and its
// log-normalizer.
template <class T>
double row_probs(const AttentionParams& p, const T* q, const T* k, int64_t ks, int64_t n, int64_t D,
                 std::vector<double>& pr) {
  pr.assign(size_t(n), 0.0);
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += double(q[d]) * double(k[j * ks + d]);
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
  const Tensor& qt = a.in[0];
  int64_t BH = qt.size(0) * qt.size(1), Tq = qt.size(2), D = qt.size(3), Tk = a.in[1].size(2);
  HeadSlices<const T> Q(qt), K(a.in[1]), V(a.in[2]);
  HeadSlices<T> O(a.out[0]);
  T* lse = ptr<T>(a.out[1]);
  std::vector<double> pr;
  for (int64_t b = 0; b < BH; ++b)
    for (int64_t i = 0; i < Tq; ++i) {
      const T *qi = Q.slice(b) + i * Q.row, *kb = K.slice(b), *vb = V.slice(b);
      int64_t n = keys_seen(p, i, Tq, Tk);
      lse[b * Tq + i] = T(row_probs(p, qi, kb, K.row, n, D, pr));
      T* oi = O.slice(b) + i * O.row;
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += pr[size_t(j)] * double(vb[j * V.row + d]);
        oi[d] = T(acc);
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
  const Tensor& qt = a.in[1];
  int64_t BH = qt.size(0) * qt.size(1), Tq = qt.size(2), D = qt.size(3), Tk = a.in[2].size(2);
  HeadSlices<const T> GO(a.in[0]), Q(qt), K(a.in[2]), V(a.in[3]), O(a.in[4]);
  HeadSlices<T> GQ(a.out[0]), GK(a.out[1]), GV(a.out[2]);
  std::vector<double> pr, gkd, gvd;
  for (int64_t b = 0; b < BH; ++b) {
    gkd.assign(size_t(Tk * D), 0.0);
    gvd.assign(size_t(Tk * D), 0.0);
    const T *kb = K.slice(b), *vb = V.slice(b);
    for (int64_t i = 0; i < Tq; ++i) {
      const T *qi = Q.slice(b) + i * Q.row, *gi = GO.slice(b) + i * GO.row, *oi = O.slice(b) + i * O.row;
      int64_t n = keys_seen(p, i, Tq, Tk);
      row_probs(p, qi, kb, K.row, n, D, pr);
      double di = 0;
      for (int64_t d = 0; d < D; ++d) di += double(gi[d]) * double(oi[d]);
      std::vector<double> gqi(size_t(D), 0.0);
      for (int64_t j = 0; j < n; ++j) {
        double dp = 0;
        for (int64_t d = 0; d < D; ++d) dp += double(gi[d]) * double(vb[j * V.row + d]);
        double ds = pr[size_t(j)] * (dp - di) * p.scale;
        for (int64_t d = 0; d < D; ++d) {
          gvd[size_t(j * D + d)] += pr[size_t(j)] * double(gi[d]);
          gqi[size_t(d)] += ds * double(kb[j * K.row + d]);
          gkd[size_t(j * D + d)] += ds * double(qi[d]);
        }
      }
      for (int64_t d = 0; d < D; ++d) GQ.slice(b)[i * GQ.row + d] = T(gqi[size_t(d)]);
    }
    for (int64_t j = 0; j < Tk; ++j)
      for (int64_t d = 0; d < D; ++d) {
        GK.slice(b)[j * GK.row + d] = T(gkd[size_t(j * D + d)]);
        GV.slice(b)[j * GV.row + d] = T(gvd[size_t(j * D + d)]);
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

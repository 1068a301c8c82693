// Optimized scaled dot-product attention (contract in core/kernel_params.h),
// FlashAttention-style: for a block of queries the keys are visited in blocks
// of kKeys with a running max and normalizer (online softmax), so only a
// [kKeys] row of scores exists at a time, never the Tq x Tk matrix. The
// backward recomputes the probabilities from the saved log-normalizer.
//
// f32: every block product (scores Q K^T, P V, and in the backward dP = dO V^T,
// dV += P^T dO, dK += dS^T Q, dQ += dS K) is a small GEMM on the native sgemm
// (kernels/cpu/gemm), with the softmax work on [64 x 64] tiles in between; exp
// is a polynomial the compiler vectorizes, flushed to 0 below e^-60 (no
// denormal products: fast_math.h's softmax_exp). f64 (the gradient checks) keeps
// plain loops: each key block packed transposed (Kt [D, kKeys]) so the scores
// of one query are an AXPY over contiguous keys.
// Operands are [B, H, T, D] with any strides but a unit one along D (heads read
// in place from a packed projection): every row pointer below is a slice's
// base plus t times its row stride.
// Under bf16 autocast on a CPU with AMX tiles the f32 kernels hand over to
// attention_amx.cpp (the same products on bf16 operands, packed once per
// slice instead of once per small GEMM).
// Threads: the forward splits (slice, query block) pairs; the backward splits
// slices (gk, gv of a slice sum over all its queries, so one thread owns a
// slice and the order of every sum is fixed): results do not depend on the
// thread count.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/attention_rows.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/strided.h"

namespace brisk::kern::cpu {

namespace {
constexpr int64_t kQueries = 64, kKeys = 64;

// Kt[d * kKeys + j] = k[(j0 + j) * ks + d] for j < n.
template <class T>
void pack_transposed(const T* k, int64_t ks, int64_t j0, int64_t n, int64_t D, T* kt) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t d = 0; d < D; ++d) kt[d * kKeys + j] = k[(j0 + j) * ks + d];
}

// s[j] = scale * q . k_j for j < n, from the packed block.
template <class T>
void scores(const T* q, const T* kt, int64_t n, int64_t D, T scale, T* s) {
  for (int64_t j = 0; j < n; ++j) s[j] = 0;
  for (int64_t d = 0; d < D; ++d) {
    T qd = q[d] * scale;
    const T* row = kt + d * kKeys;
    for (int64_t j = 0; j < n; ++j) s[j] += qd * row[j];
  }
}

// One slice's rows: base pointer and row stride (elements).
template <class T>
struct Rows {
  T* p;
  int64_t s;
  T* at(int64_t t) const { return p + t * s; }
};

// One (slice, query block) of the f32 forward: rows i0..i0+bq of o and lse.
// q [Tq, D], k, v [Tk, D] of the slice; o accumulates in place.
void fwd_block_f32(Rows<const float> q, Rows<const float> k, Rows<const float> v, Rows<float> o, float* lse,
                   int64_t i0, int64_t bq, int64_t Tq, int64_t Tk, int64_t D, float scale, bool causal, float* S,
                   float* m, float* l) {
  for (int64_t r = 0; r < bq; ++r) std::fill(o.at(i0 + r), o.at(i0 + r) + D, 0.0f);
  std::fill(m, m + bq, -std::numeric_limits<float>::infinity());
  std::fill(l, l + bq, 0.0f);
  int64_t nmax = keys_seen(causal, i0 + bq - 1, Tq, Tk);
  for (int64_t j0 = 0; j0 < nmax; j0 += kKeys) {
    int64_t jb = std::min(kKeys, nmax - j0);
    sgemm(bq, jb, D, MatF{q.at(i0), q.s, 1}, MatF{k.at(j0), 1, k.s}, S, kKeys);  // S = Q K^T
    for (int64_t r = 0; r < bq; ++r) {
      float* row = S + r * kKeys;
      int64_t n = std::clamp<int64_t>(keys_seen(causal, i0 + r, Tq, Tk) - j0, 0, jb);
      float mx, sum = softmax_row(row, n, jb, scale, m[r], &mx);
      float corr = n > 0 ? softmax_exp(m[r] - mx) : 1.0f;
      if (n == 0) continue;
      float* orow = o.at(i0 + r);
      for (int64_t d = 0; d < D; ++d) orow[d] *= corr;
      l[r] = l[r] * corr + sum;
      m[r] = mx;
    }
    sgemm(bq, D, jb, MatF{S, kKeys, 1}, MatF{v.at(j0), v.s, 1}, o.at(i0), o.s, /*accumulate=*/true);  // O += P V
  }
  for (int64_t r = 0; r < bq; ++r) {
    float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
    float* orow = o.at(i0 + r);
    for (int64_t d = 0; d < D; ++d) orow[d] *= inv;
    lse[i0 + r] = l[r] > 0 ? m[r] + std::log(l[r]) : -std::numeric_limits<float>::infinity();
  }
}

// One slice of the f32 backward (gq, gk, gv zeroed by the caller); di [Tq] =
// go_i . o_i. S and dP are [kQueries, kKeys] tiles.
void bwd_slice_f32(Rows<const float> go, Rows<const float> q, Rows<const float> k, Rows<const float> v,
                   const float* lse, const float* di, Rows<float> gq, Rows<float> gk, Rows<float> gv, int64_t Tq,
                   int64_t Tk, int64_t D, float scale, bool causal, float* S, float* dP) {
  for (int64_t j0 = 0; j0 < Tk; j0 += kKeys) {
    int64_t jb = std::min(kKeys, Tk - j0);
    int64_t ifirst = causal ? std::max<int64_t>(0, j0 - (Tk - Tq)) : 0;  // the first query that sees key j0
    for (int64_t i0 = ifirst; i0 < Tq; i0 += kQueries) {
      int64_t bq = std::min(kQueries, Tq - i0);
      sgemm(bq, jb, D, MatF{q.at(i0), q.s, 1}, MatF{k.at(j0), 1, k.s}, S, kKeys);    // S = Q K^T
      sgemm(bq, jb, D, MatF{go.at(i0), go.s, 1}, MatF{v.at(j0), 1, v.s}, dP, kKeys);  // dP = dO V^T
      for (int64_t r = 0; r < bq; ++r) {
        float *srow = S + r * kKeys, *drow = dP + r * kKeys, li = lse[i0 + r], dr = di[i0 + r];
        int64_t n = std::clamp<int64_t>(keys_seen(causal, i0 + r, Tq, Tk) - j0, 0, jb);
        for (int64_t j = 0; j < n; ++j) {
          float p = softmax_exp(srow[j] * scale - li);
          srow[j] = p;
          drow[j] = p * (drow[j] - dr) * scale;  // dS, with the scale of s = scale q.k folded in
        }
        for (int64_t j = n; j < jb; ++j) srow[j] = drow[j] = 0;
      }
      sgemm(jb, D, bq, MatF{S, 1, kKeys}, MatF{go.at(i0), go.s, 1}, gv.at(j0), gv.s, true);  // dV += P^T dO
      sgemm(jb, D, bq, MatF{dP, 1, kKeys}, MatF{q.at(i0), q.s, 1}, gk.at(j0), gk.s, true);   // dK += dS^T Q
      sgemm(bq, D, jb, MatF{dP, kKeys, 1}, MatF{k.at(j0), k.s, 1}, gq.at(i0), gq.s, true);   // dQ += dS K
    }
  }
}

template <class T>
Rows<T> rows(const HeadSlices<T>& h, int64_t s) {
  return {h.slice(s), h.row};
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
  const T scale = T(p.scale);
  int64_t qblocks = (Tq + kQueries - 1) / kQueries;
  if constexpr (std::is_same_v<T, float>) {
    if (gemm_amx_active() && Tk <= kAttentionAmxMaxKeys) {  // bf16 autocast with AMX tiles: attention_amx.cpp
      attention_fwd_amx(Q, K, V, O, lse, AttentionGeom{BH, Tq, Tk, D, scale, p.causal});
      return true;
    }
    parallel_for(0, BH * qblocks, 1, [&](int64_t lo, int64_t hi) {
      std::vector<float> S(static_cast<size_t>(kQueries * kKeys)), m(static_cast<size_t>(kQueries)),
          l(static_cast<size_t>(kQueries));
      for (int64_t task = lo; task < hi; ++task) {
        int64_t b = task / qblocks, i0 = (task % qblocks) * kQueries;
        fwd_block_f32(rows(Q, b), rows(K, b), rows(V, b), rows(O, b), lse + b * Tq, i0, std::min(kQueries, Tq - i0),
                      Tq, Tk, D, scale, p.causal, S.data(), m.data(), l.data());
      }
    });
    return true;
  }
  parallel_for(0, BH * qblocks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> kt(static_cast<size_t>(D * kKeys)), s(static_cast<size_t>(kKeys)), m(static_cast<size_t>(kQueries)),
        l(static_cast<size_t>(kQueries));
    for (int64_t task = lo; task < hi; ++task) {
      int64_t b = task / qblocks, i0 = (task % qblocks) * kQueries, i1 = std::min(Tq, i0 + kQueries);
      const T *kb = K.slice(b), *vb = V.slice(b);
      Rows<T> ob = rows(O, b);
      for (int64_t i = i0; i < i1; ++i) std::fill(ob.at(i), ob.at(i) + D, T(0));
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      std::fill(l.begin(), l.end(), T(0));
      int64_t nmax = keys_seen(p.causal, i1 - 1, Tq, Tk);
      for (int64_t j0 = 0; j0 < nmax; j0 += kKeys) {
        int64_t jb = std::min(kKeys, nmax - j0);
        pack_transposed(kb, K.row, j0, jb, D, kt.data());
        for (int64_t i = i0; i < i1; ++i) {
          int64_t n = std::min(keys_seen(p.causal, i, Tq, Tk) - j0, jb);
          if (n <= 0) continue;
          scores(Q.slice(b) + i * Q.row, kt.data(), n, D, scale, s.data());
          T mx = m[size_t(i - i0)];
          for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[size_t(j)]);
          T corr = fast_exp(m[size_t(i - i0)] - mx), sum = 0;  // exp(-inf) = 0 on the first block
          for (int64_t j = 0; j < n; ++j) {
            s[size_t(j)] = fast_exp(s[size_t(j)] - mx);
            sum += s[size_t(j)];
          }
          T* oi = ob.at(i);
          for (int64_t d = 0; d < D; ++d) oi[d] *= corr;
          for (int64_t j = 0; j < n; ++j) {
            const T* vj = vb + (j0 + j) * V.row;
            T pj = s[size_t(j)];
            for (int64_t d = 0; d < D; ++d) oi[d] += pj * vj[d];
          }
          l[size_t(i - i0)] = l[size_t(i - i0)] * corr + sum;
          m[size_t(i - i0)] = mx;
        }
      }
      for (int64_t i = i0; i < i1; ++i) {
        T li = l[size_t(i - i0)], inv = li > 0 ? T(1) / li : T(0);
        for (int64_t d = 0; d < D; ++d) ob.at(i)[d] *= inv;
        lse[b * Tq + i] = li > 0 ? m[size_t(i - i0)] + std::log(li) : -std::numeric_limits<T>::infinity();
      }
    }
  });
  return true;
}

// Per slice, key blocks outer and queries inner: p_ij = exp(s_ij - lse_i),
// gv_j += p_ij go_i, ds_ij = p_ij (go_i.v_j - go_i.o_i), gq_i += scale ds_ij k_j,
// gk_j += scale ds_ij q_i.
template <class T>
bool attention_bwd(const KernelArgs& a) {
  const auto& p = *static_cast<const AttentionParams*>(a.params);
  const Tensor& qt = a.in[1];
  int64_t BH = qt.size(0) * qt.size(1), Tq = qt.size(2), D = qt.size(3), Tk = a.in[2].size(2);
  HeadSlices<const T> GO(a.in[0]), Q(qt), K(a.in[2]), V(a.in[3]), O(a.in[4]);
  HeadSlices<T> GQ(a.out[0]), GK(a.out[1]), GV(a.out[2]);
  const T* lse = ptr<T>(a.in[5]);
  const T scale = T(p.scale);
  // Zeroes a slice's gradient rows and sets di [Tq] = go_i . o_i.
  auto start_slice = [&](int64_t b, std::vector<T>& di) {
    for (int64_t i = 0; i < Tq; ++i) std::fill(GQ.slice(b) + i * GQ.row, GQ.slice(b) + i * GQ.row + D, T(0));
    for (int64_t j = 0; j < Tk; ++j) {
      std::fill(GK.slice(b) + j * GK.row, GK.slice(b) + j * GK.row + D, T(0));
      std::fill(GV.slice(b) + j * GV.row, GV.slice(b) + j * GV.row + D, T(0));
    }
    for (int64_t i = 0; i < Tq; ++i) {
      const T *gi = GO.slice(b) + i * GO.row, *oi = O.slice(b) + i * O.row;
      T acc = 0;
      for (int64_t d = 0; d < D; ++d) acc += gi[d] * oi[d];
      di[size_t(i)] = acc;
    }
  };
  if constexpr (std::is_same_v<T, float>) {
    if (gemm_amx_active() && Tk <= kAttentionAmxMaxKeys) {
      attention_bwd_amx(GO, Q, K, V, O, lse, GQ, GK, GV, AttentionGeom{BH, Tq, Tk, D, scale, p.causal});
      return true;
    }
    parallel_for(0, BH, 1, [&](int64_t lo, int64_t hi) {
      const size_t tile = static_cast<size_t>(kQueries * kKeys);
      std::vector<float> S(tile), dP(tile), di(static_cast<size_t>(Tq));
      for (int64_t b = lo; b < hi; ++b) {
        start_slice(b, di);
        bwd_slice_f32(rows(GO, b), rows(Q, b), rows(K, b), rows(V, b), lse + b * Tq, di.data(), rows(GQ, b),
                      rows(GK, b), rows(GV, b), Tq, Tk, D, scale, p.causal, S.data(), dP.data());
      }
    });
    return true;
  }
  parallel_for(0, BH, 1, [&](int64_t lo, int64_t hi) {
    const size_t blk = static_cast<size_t>(D * kKeys), nk = static_cast<size_t>(kKeys);
    std::vector<T> kt(blk), vt(blk), s(nk), dp(nk), di(static_cast<size_t>(Tq));
    for (int64_t b = lo; b < hi; ++b) {
      start_slice(b, di);
      const T *kb = K.slice(b), *vb = V.slice(b);
      for (int64_t j0 = 0; j0 < Tk; j0 += kKeys) {
        int64_t jb = std::min(kKeys, Tk - j0);
        pack_transposed(kb, K.row, j0, jb, D, kt.data());
        pack_transposed(vb, V.row, j0, jb, D, vt.data());
        // The first query that sees key j0 (causal): i + 1 + Tk - Tq > j0.
        int64_t ifirst = p.causal ? std::max<int64_t>(0, j0 - (Tk - Tq)) : 0;
        for (int64_t i = ifirst; i < Tq; ++i) {
          int64_t n = std::min(keys_seen(p.causal, i, Tq, Tk) - j0, jb);
          if (n <= 0) continue;
          const T *qi = Q.slice(b) + i * Q.row, *gi = GO.slice(b) + i * GO.row;
          scores(qi, kt.data(), n, D, scale, s.data());
          T li = lse[b * Tq + i];
          for (int64_t j = 0; j < n; ++j) s[size_t(j)] = fast_exp(s[size_t(j)] - li);  // p_ij
          scores(gi, vt.data(), n, D, T(1), dp.data());                             // go_i . v_j
          T* gqi = GQ.slice(b) + i * GQ.row;
          for (int64_t j = 0; j < n; ++j) {
            T pj = s[size_t(j)], ds = pj * (dp[size_t(j)] - di[size_t(i)]) * scale;
            T *gvj = GV.slice(b) + (j0 + j) * GV.row, *gkj = GK.slice(b) + (j0 + j) * GK.row;
            const T* kj = kb + (j0 + j) * K.row;
            for (int64_t d = 0; d < D; ++d) {
              gvj[d] += pj * gi[d];
              gkj[d] += ds * qi[d];
              gqi[d] += ds * kj[d];
            }
          }
        }
      }
    }
  });
  return true;
}

void register_attention() {
  constexpr int P = backend_priority::native;
  BRISK_REGISTER_FLOATING("attention_fwd", "cpu", P, attention_fwd);
  BRISK_REGISTER_FLOATING("attention_bwd", "cpu", P, attention_bwd);
}

}  // namespace brisk::kern::cpu

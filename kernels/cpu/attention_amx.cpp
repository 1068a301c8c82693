// Attention on AMX tiles (contract in attention_amx.h). The tiled f32 kernels
// (attention.cpp) multiply 64 x 64 x D blocks through the general GEMM, which
// under bf16 autocast re-packs both operands into bf16 on every call; at
// gpt-small's shapes (T = 128, D = 32) that packing and the GEMM's set-up
// cost more than the products. Here each slice's q, k, v (and in the
// backward the output gradient) are packed once into the layouts the tile
// products read, and every block product is a 32 x 32 tile product
// (amx_tile.h: four 16 x 16 f32 tiles, each loaded operand tile used twice):
//   A operands: bf16 rows of 32 k (one 64-byte Step per 32 k);
//   B operands: strips of 32 columns, pair rows (k, k + 1) x 32 (VNNI).
// Forward (per slice, queries in blocks of 32): the block's scores against
// every key it sees, S = Q K^T [32, Tk] (A: q rows, B: k's pairs along d),
// one softmax pass per row in f32 (no running max to correct: the strip is
// 32 x Tk floats, never Tq x Tk), then O = P V in one tile product over all
// those keys (A: P rounded to bf16, B: v's pairs along keys).
// Backward (per slice, keys in blocks of 32 outer, queries in blocks of 32
// inner), in the transposed orientation so that P^T and dS^T come out as rows:
// S^T = K Q^T, dP^T = V dO^T, P^T = exp(scale S^T - lse), dS^T = P^T (dP^T -
// di) scale, then dV += P^T dO, dK += dS^T Q (A: the rows just made, B: dO's
// and q's pairs along queries) and dQ += dS K (dS^T transposed in f32).
// Threads split slices; every sum runs in a fixed order: results do not
// depend on the thread count.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include "kernels/cpu/attention_amx.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/attention_rows.h"
#include "kernels/cpu/fast_math.h"

#define BRISK_GEMM_NS amx
#include "kernels/cpu/gemm/bf16_pack.h"
#include "kernels/cpu/gemm/amx_tile.h"

namespace brisk::kern::cpu {

namespace {
using amx::Step;
constexpr float kInf = std::numeric_limits<float>::infinity();

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// x [T, D] (row stride xs) -> bf16 rows [Tp][kd Steps], zero past D and T.
void pack_rows(const float* x, int64_t xs, int64_t T, int64_t D, int64_t Tp, Step* dst) {
  int64_t kd = (D + 31) / 32;
  for (int64_t r0 = 0; r0 < Tp; r0 += 32)
    amx::pack_a_rows(x + std::min(r0, T) * xs, xs, std::clamp<int64_t>(T - r0, 0, 32), D, dst + r0 * kd);
}

// x [T, D] as the B operand of a product with k = d and n = t (... @ x^T):
// Tp / 32 strips of 32 rows of x, each kd Steps deep (kd * 16 pair rows x 32).
void pack_pairs_d(const float* x, int64_t xs, int64_t T, int64_t D, int64_t Tp, Step* dst) {
  int64_t kd = (D + 31) / 32, strip = kd * 32, full = (T + 31) / 32;
  amx::pack_b_pairs<32>(MatF{x, 1, xs}, 0, D, 0, T, kd * 16, reinterpret_cast<uint32_t*>(dst));
  std::fill(dst + full * strip, dst + Tp / 32 * strip, Step{});
}

// x [T, D] as the B operand of a product with k = t and n = d (... @ x):
// ceil(D / 32) strips of 32 columns, each Tp / 32 Steps deep.
void pack_pairs_t(const float* x, int64_t xs, int64_t T, int64_t D, int64_t Tp, Step* dst) {
  amx::pack_b_pairs<32>(MatF{x, xs, 1}, 0, T, 0, D, Tp / 2, reinterpret_cast<uint32_t*>(dst));
}

// C[32, 32] (+)= A @ B over kc: A 32 bf16 rows of kp = ceil(kc / 32) Steps
// at a, B a 32-column strip at b (amx_tile.h). Every block here is whole:
// operands and accumulators are padded to multiples of 32.
inline void mm32(float* c, int64_t ldc, bool acc, const Step* a, const Step* b, int64_t kc) {
  amx::tile_product_32x32(kc, a, b, c, ldc, acc, 32, 32, nullptr);
}

// 32 f32 -> one Step of bf16 (nearest even; vcvtneps2bf16 reads a denormal
// as zero, as the GEMM's packing does).
inline void to_step(const float* x, Step* s) {
  __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x)), hi = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + 16));
  _mm512_store_si512(s, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}

// dst[j][i] = src[i][j] for a 16 x 16 f32 block (row strides ss, ds floats;
// rows 64-byte aligned).
inline void transpose16(const float* src, int64_t ss, float* dst, int64_t ds) {
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(src + i * ss);
  amx::transpose16(r);
  for (int i = 0; i < 16; ++i) _mm512_store_ps(dst + i * ds, r[i]);
}

// Lanes lo <= l < hi of 16.
inline __mmask16 lanes(int64_t lo, int64_t hi) {
  lo = std::clamp<int64_t>(lo, 0, 16);
  hi = std::clamp<int64_t>(hi, 0, 16);
  return hi <= lo ? __mmask16(0) : __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1));
}

template <class T>
std::vector<T>& grow(std::vector<T>& v, int64_t n) {
  if (v.size() < size_t(n)) v.resize(size_t(n));
  return v;
}
}  // namespace

void attention_fwd_amx(HeadSlices<const float> Q, HeadSlices<const float> K, HeadSlices<const float> V,
                       HeadSlices<float> O, float* lse, const AttentionGeom& g) {
  const int64_t Tq = g.Tq, Tk = g.Tk, D = g.D, kd = (D + 31) / 32, Dp = kd * 32;
  const int64_t Tqp = round_up(Tq, 32), Tkp = round_up(Tk, 32);
  parallel_for(0, g.BH, 1, [&](int64_t lo, int64_t hi) {
    amx::ensure_config();
    thread_local std::vector<Step> qr, kp, vp, P;
    thread_local std::vector<float> S;
    alignas(64) float ob[32 * 64];
    std::vector<float> ob_big;  // Dp > 64
    float* o_acc = Dp > 64 ? grow(ob_big, 32 * Dp).data() : ob;
    grow(qr, Tqp * kd);
    grow(kp, Tkp * kd);
    grow(vp, kd * Tkp);
    grow(S, 32 * Tkp);
    grow(P, Tkp);  // 32 rows of Tkp / 32 Steps
    for (int64_t b = lo; b < hi; ++b) {
      pack_rows(Q.slice(b), Q.row, Tq, D, Tqp, qr.data());
      pack_pairs_d(K.slice(b), K.row, Tk, D, Tkp, kp.data());
      pack_pairs_t(V.slice(b), V.row, Tk, D, Tkp, vp.data());
      for (int64_t i0 = 0; i0 < Tq; i0 += 32) {
        int64_t bq = std::min<int64_t>(32, Tq - i0);
        // The keys any of these queries sees, in whole blocks of 32: np.
        int64_t nmax = keys_seen(g.causal, i0 + bq - 1, Tq, Tk), np = round_up(nmax, 32), kp_ = np / 32;
        float* lse_b = lse + b * Tq;
        if (np == 0) {  // no query of the block sees a key
          for (int64_t r = 0; r < bq; ++r) {
            std::fill(O.slice(b) + (i0 + r) * O.row, O.slice(b) + (i0 + r) * O.row + D, 0.0f);
            lse_b[i0 + r] = -kInf;
          }
          continue;
        }
        for (int64_t j0 = 0; j0 < np; j0 += 32)  // S = Q K^T [32 queries, np keys]
          mm32(S.data() + j0, np, false, qr.data() + i0 * kd, kp.data() + j0 * kd, D);
        float mx[32], l[32];
        for (int64_t r = 0; r < 32; ++r) {
          float* row = S.data() + r * np;
          int64_t n = r < bq ? keys_seen(g.causal, i0 + r, Tq, Tk) : 0;
          l[r] = softmax_row(row, n, np, g.scale, -kInf, &mx[r]);  // zeros for n <= j < np
          for (int64_t t = 0; t < kp_; ++t) to_step(row + 32 * t, P.data() + r * kp_ + t);
        }
        for (int64_t c = 0; c < kd; ++c)  // O = P V over the np keys
          mm32(o_acc + 32 * c, Dp, false, P.data(), vp.data() + c * Tkp, np);
        for (int64_t r = 0; r < bq; ++r) {
          float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
          float* orow = O.slice(b) + (i0 + r) * O.row;
          for (int64_t d = 0; d < D; ++d) orow[d] = o_acc[r * Dp + d] * inv;
          lse_b[i0 + r] = l[r] > 0 ? mx[r] + std::log(l[r]) : -kInf;
        }
      }
    }
  });
}

void attention_bwd_amx(HeadSlices<const float> GO, HeadSlices<const float> Q, HeadSlices<const float> K,
                       HeadSlices<const float> V, HeadSlices<const float> O, const float* lse, HeadSlices<float> GQ,
                       HeadSlices<float> GK, HeadSlices<float> GV, const AttentionGeom& g) {
  const int64_t Tq = g.Tq, Tk = g.Tk, D = g.D, kd = (D + 31) / 32, Dp = kd * 32;
  const int64_t Tqp = round_up(Tq, 32), Tkp = round_up(Tk, 32);
  const float scale = g.scale;
  parallel_for(0, g.BH, 1, [&](int64_t lo, int64_t hi) {
    amx::ensure_config();
    // Per slice: A rows of k and v; B pairs along d of q and go (for S^T and
    // dP^T); B pairs along queries of go and q (dV, dK) and along keys of k (dQ).
    thread_local std::vector<Step> kr, vr, qd, god, goq, qq, kk;
    thread_local std::vector<float> gq, lse_p, di, gk, gv;
    for (auto* v : {&kr, &vr, &kk}) grow(*v, Tkp * kd);
    for (auto* v : {&qd, &god, &goq, &qq}) grow(*v, Tqp * kd);
    grow(gq, Tqp * Dp);
    grow(lse_p, Tqp);
    grow(di, Tqp);
    grow(gk, 32 * Dp);
    grow(gv, 32 * Dp);
    alignas(64) float St[32 * 32], dPt[32 * 32], dS[32 * 32];
    alignas(64) Step Pt[32], dSt_b[32], dS_b[32];
    for (int64_t b = lo; b < hi; ++b) {
      const float *qb = Q.slice(b), *kb = K.slice(b), *vb = V.slice(b), *gob = GO.slice(b), *obp = O.slice(b);
      pack_rows(kb, K.row, Tk, D, Tkp, kr.data());
      pack_rows(vb, V.row, Tk, D, Tkp, vr.data());
      pack_pairs_d(qb, Q.row, Tq, D, Tqp, qd.data());
      pack_pairs_d(gob, GO.row, Tq, D, Tqp, god.data());
      pack_pairs_t(gob, GO.row, Tq, D, Tqp, goq.data());
      pack_pairs_t(qb, Q.row, Tq, D, Tqp, qq.data());
      pack_pairs_t(kb, K.row, Tk, D, Tkp, kk.data());
      for (int64_t i = 0; i < Tqp; ++i) {
        float acc = 0;
        if (i < Tq)
          for (int64_t d = 0; d < D; ++d) acc += gob[i * GO.row + d] * obp[i * O.row + d];
        di[size_t(i)] = acc;  // go_i . o_i
        lse_p[size_t(i)] = i < Tq ? lse[b * Tq + i] : 0.0f;
      }
      std::fill(gq.begin(), gq.begin() + Tqp * Dp, 0.0f);
      for (int64_t j0 = 0; j0 < Tk; j0 += 32) {
        std::fill(gk.begin(), gk.begin() + 32 * Dp, 0.0f);
        std::fill(gv.begin(), gv.begin() + 32 * Dp, 0.0f);
        int64_t ifirst = g.causal ? std::max<int64_t>(0, j0 - (Tk - Tq)) : 0;  // the first query that sees key j0
        for (int64_t i0 = ifirst / 32 * 32; i0 < Tq; i0 += 32) {
          mm32(St, 32, false, kr.data() + j0 * kd, qd.data() + i0 * kd, D);   // S^T = K Q^T [32 keys, 32 queries]
          mm32(dPt, 32, false, vr.data() + j0 * kd, god.data() + i0 * kd, D);  // dP^T = V dO^T
          const __m512 vscale = _mm512_set1_ps(scale), cutoff = _mm512_set1_ps(-60.0f);
          for (int64_t jr = 0; jr < 32; ++jr) {
            int64_t key = j0 + jr;
            // Queries that see this key: causal ones from key - (Tk - Tq) on, none past Tq.
            int64_t qmin = g.causal ? key - (Tk - Tq) : 0;
            for (int64_t hc = 0; hc < 2; ++hc) {
              int64_t qb0 = i0 + 16 * hc;
              __mmask16 k = key < Tk ? lanes(qmin - qb0, Tq - qb0) : __mmask16(0);
              __m512 x = _mm512_fmsub_ps(_mm512_load_ps(St + jr * 32 + 16 * hc), vscale,
                                         _mm512_loadu_ps(lse_p.data() + qb0));
              k &= _mm512_cmp_ps_mask(x, cutoff, _CMP_NLT_UQ);  // softmax_exp's flush below e^-60 (a NaN stays)
              __m512 p = _mm512_maskz_mov_ps(k, fast_exp16(x));
              __m512 dp = _mm512_sub_ps(_mm512_load_ps(dPt + jr * 32 + 16 * hc), _mm512_loadu_ps(di.data() + qb0));
              _mm512_store_ps(St + jr * 32 + 16 * hc, p);
              _mm512_store_ps(dPt + jr * 32 + 16 * hc, _mm512_maskz_mul_ps(k, _mm512_mul_ps(p, dp), vscale));
            }
            to_step(St + jr * 32, Pt + jr);
            to_step(dPt + jr * 32, dSt_b + jr);
          }
          for (int64_t r = 0; r < 32; r += 16)  // dS = (dS^T)^T
            for (int64_t c = 0; c < 32; c += 16) transpose16(dPt + c * 32 + r, 32, dS + r * 32 + c, 32);
          for (int64_t r = 0; r < 32; ++r) to_step(dS + r * 32, dS_b + r);
          for (int64_t c = 0; c < kd; ++c) {
            mm32(gv.data() + 32 * c, Dp, true, Pt, goq.data() + c * Tqp + i0, 32);             // dV += P^T dO
            mm32(gk.data() + 32 * c, Dp, true, dSt_b, qq.data() + c * Tqp + i0, 32);           // dK += dS^T Q
            mm32(gq.data() + i0 * Dp + 32 * c, Dp, true, dS_b, kk.data() + c * Tkp + j0, 32);  // dQ += dS K
          }
        }
        for (int64_t jr = 0; jr < 32 && j0 + jr < Tk; ++jr) {
          std::copy(gk.data() + jr * Dp, gk.data() + jr * Dp + D, GK.slice(b) + (j0 + jr) * GK.row);
          std::copy(gv.data() + jr * Dp, gv.data() + jr * Dp + D, GV.slice(b) + (j0 + jr) * GV.row);
        }
      }
      for (int64_t i = 0; i < Tq; ++i) std::copy(gq.data() + i * Dp, gq.data() + i * Dp + D, GQ.slice(b) + i * GQ.row);
    }
  });
}

}  // namespace brisk::kern::cpu

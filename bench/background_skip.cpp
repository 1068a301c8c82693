// Does skipping an operand's background pay on this CPU? The mlp's first layer
// multiplies a batch of Fashion-MNIST images X [128, 784] by W^T [784, 512].
// Half the pixels are 0, which the loader's normalization maps to one value c,
// so X = c + S with S zero at every background pixel, and
//   X W^T = S W^T + c * 1 colsum(W^T)        (1: a column of ones; exact algebra)
// needs the products of S only where it is nonzero. This program times, calls
// alternated in rotated order, medians with the 10th and 90th percentiles:
//   dense  brisk's sgemm on X as it is;
//   rows   S one row at a time: per row its (k, value) entries in K blocks,
//          each entry a broadcast and NB / 8 FMAs into a row of C held in
//          registers, B's block packed row-major (in L1);
//   pairs  two rows at a time: a k kept where either row is not background,
//          each B vector loaded once for two FMAs (the dense tile's ratio of
//          loads to FMAs), at the cost of the pair's union of nonzeros.
//   six    the dense kernel's own 6 x 16 tile (AVX2), a k skipped only where
//          all six rows are background: per k kept, 2 B loads, 6 broadcasts
//          and 12 FMAs, as in sgemm. Run on the batch in the loader's order
//          and with its rows sorted by label (a minibatch is a set; images
//          of one class share more background: bench/background_panels.py).
//   six in place  the same tile reading X's rows in place (broadcasting
//          x - c) from k lists alone, built 8 k per AVX2 compare.
// Each timed sparse call includes building its entries from X. rows, pairs and
// six (loader's order) also run with a background no entry holds, so that
// nothing is skipped and k runs in order: their speed on dense data. The results are checked against the
// dense product (exit 1 past a relative 1e-4).
//   ./build/bench/brisk_bench_background_skip [rounds=300] [threads=2]
// Findings: docs/PERF.md (thirty-second round; six: thirty-fourth).
#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "brisk.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "kernels/cpu/gemm/sgemm.h"

using namespace brisk;

namespace {

constexpr int W = 8;  // floats per vector: a ymm (GCC lowers it to 2 xmm without AVX)
typedef float vf __attribute__((vector_size(W * 4)));
// v in every lane of out: one broadcast (vf{} + v adds 0.f first, a lane
// loop builds it by inserts). An out parameter, not a return: a 32-byte
// vector returned by value changes the ABI with and without AVX.
inline void splat(float v, vf& out) {
#if defined(__AVX__)
  out = _mm256_set1_ps(v);
#else
  for (int l = 0; l < W; ++l) out[l] = v;
#endif
}

// G rows of S at a time: per group the k (within its K block) where any of the
// G rows is not background, with the G values minus c; seg[g * (nkb + 1) + b]
// is where group g's entries of K block b start.
template <int G>
struct Entries {
  int64_t kb = 0, nkb = 0;
  std::vector<int32_t> k;
  std::vector<float> val;  // [entries, G]
  std::vector<int64_t> seg;
  int64_t count = 0;  // entries over all groups, for the density
  // Scratch kept between builds (no allocation inside the timed calls):
  std::vector<int64_t> counts;   // [groups] entries per group
  std::vector<float> background;  // [K] all c: the rows past M of the last group
};

template <int G>
void build(const float* X, int64_t M, int64_t K, float c, int64_t kb, Entries<G>& e) {
  const int64_t groups = (M + G - 1) / G, nkb = (K + kb - 1) / kb;
  e.kb = kb;
  e.nkb = nkb;
  e.k.resize(size_t(groups * K));
  e.val.resize(size_t(groups * K * G));
  e.seg.resize(size_t(groups * (nkb + 1)));
  e.counts.resize(size_t(groups));
  e.background.assign(size_t(K), c);
  int64_t* counts = e.counts.data();
  const float* background = e.background.data();
  int32_t* __restrict ks = e.k.data();  // locals: the stores below cannot then alias c, K or the bounds
  float* __restrict val = e.val.data();
  int64_t* __restrict segs = e.seg.data();
  parallel_for(0, groups, 4, [=](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g) {
      int64_t p = g * K;  // a group's entries never outnumber K
      const float* row[G];
      for (int r = 0; r < G; ++r) row[r] = g * G + r < M ? X + (g * G + r) * K : background;
      int64_t* seg = segs + g * (nkb + 1);
      for (int64_t b = 0; b < nkb; ++b) {
        seg[b] = p;
        const int64_t k0 = b * kb, k1 = std::min(K, k0 + kb);
        for (int64_t k = k0; k < k1; ++k) {
          bool keep = false;
          for (int r = 0; r < G; ++r) {
            float v = row[r][k];
            val[p * G + r] = v - c;
            keep |= v != c;
          }
          ks[p] = int32_t(k - k0);
          p += keep;  // branch-free: the slot is overwritten when not kept
        }
      }
      seg[nkb] = p;
      counts[g] = p - g * K;
    }
  });
  e.count = 0;
  for (int64_t n : e.counts) e.count += n;
}

// C [M, N] = S B + c 1 colsum(B), B [K, N] row-major; threads split N into
// chunks of NB = NV * W columns, each chunk's K blocks of B packed row-major
// in turn ([kb, NB]: 16-24 KiB, L1) and met by every row. (Tiles of 32 rows
// per pass over the K blocks, so that C's tile and B's block share L1, ran
// no faster.)
template <int G, int NV>
void multiply(const Entries<G>& e, const float* B, int64_t M, int64_t N, int64_t K, float c, float* C) {
  constexpr int64_t NB = NV * W;
  const int64_t groups = (M + G - 1) / G, kb = e.kb;
  parallel_for(0, (N + NB - 1) / NB, 1, [&](int64_t lo, int64_t hi) {
    static thread_local std::vector<vf> block;  // B [kb, NB], this chunk's K block; kept between calls
    block.resize(size_t(kb * NV));
    vf colsum[NV];
    vf acc[G][NV];
    float edge[NB];
    for (int64_t ch = lo; ch < hi; ++ch) {
      const int64_t j0 = ch * NB, nb = std::min(NB, N - j0);
      for (auto& v : colsum) v = vf{};
      for (int64_t b = 0; b < e.nkb; ++b) {
        const int64_t k0 = b * kb, kc = std::min(kb, K - k0);
        for (int64_t k = 0; k < kc; ++k) {
          float* d = reinterpret_cast<float*>(block.data() + k * NV);
          std::memset(d, 0, sizeof(float) * NB);
          std::memcpy(d, B + (k0 + k) * N + j0, sizeof(float) * size_t(nb));
          for (int v = 0; v < NV; ++v) colsum[v] += block[size_t(k * NV + v)];
        }
        const bool last = b == e.nkb - 1;
        for (int64_t g = 0; g < groups; ++g) {
          const int rows = int(std::min<int64_t>(G, M - g * G));
          // acc from C (zero at the first K block); a chunk narrower than NB
          // goes through edge[], so that acc's accesses stay whole vectors
          // and acc stays in registers.
          for (int r = 0; r < G; ++r) {
            const float* src = C + (g * G + r) * N + j0;
            if (b > 0 && r < rows && nb < NB) {
              std::memcpy(edge, src, sizeof(float) * size_t(nb));
              src = edge;
            }
            for (int v = 0; v < NV; ++v) {
              if (b > 0 && r < rows) std::memcpy(&acc[r][v], src + v * W, sizeof(vf));
              else acc[r][v] = vf{};
            }
          }
          const int64_t* seg = e.seg.data() + g * (e.nkb + 1);
          const int32_t* ks = e.k.data();
          const float* vals = e.val.data();
          for (int64_t p = seg[b]; p < seg[b + 1]; ++p) {
            const vf* brow = block.data() + ks[p] * NV;
            vf a[G];
            for (int r = 0; r < G; ++r) splat(vals[p * G + r], a[r]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) {
              vf bv = brow[v];
#if defined(__AVX__)
              asm("" : "+x"(bv));  // one load of B per vector, not one folded into each row's FMA
#endif
              for (int r = 0; r < G; ++r) acc[r][v] += a[r] * bv;
            }
          }
          if (last)
            for (int r = 0; r < G; ++r)
              for (int v = 0; v < NV; ++v) acc[r][v] += c * colsum[v];
          for (int r = 0; r < rows; ++r) {
            float* dst = C + (g * G + r) * N + j0;
            float* out = nb < NB ? edge : dst;
            for (int v = 0; v < NV; ++v) std::memcpy(out + v * W, &acc[r][v], sizeof(vf));
            if (out == edge) std::memcpy(dst, edge, sizeof(float) * size_t(nb));
          }
        }
      }
    }
  });
}

// The "six" kernel: sgemm's 6 x 16 AVX2 tile over the kept entries of a
// K block. The accumulators are locals of a fully unrolled loop (GCC keeps
// them in 12 registers; the tile of multiply<> above, indexed through
// memcpy'd arrays, lives on the stack at G = 6), B's two vectors are loaded
// first, then one broadcast at a time feeds two FMAs: per k kept, 2 + 6
// loads (and ks[p]) for 12 FMAs, as sgemm's.
// a_of(p, k, i, a): the broadcast of row i's value at entry p (block-relative
// k), from the compact entries or from the rows in place.
template <class AOf>
inline void six_tile(int64_t p0, int64_t p1, const int32_t* __restrict ks, const AOf& a_of,
                     const float* __restrict blk, float* __restrict c, int64_t ldc, bool load_c,
                     const float* __restrict add /* [16] added to every row, or null */) {
  vf r[6][2];
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      if (load_c) std::memcpy(&r[i][v], c + i * ldc + v * W, sizeof(vf));
      else r[i][v] = vf{};
    }
  for (int64_t p = p0; p < p1; ++p) {
    const int32_t k = ks[p];
    const float* b = blk + int64_t(k) * 16;
    vf b0, b1;
    std::memcpy(&b0, b, sizeof b0);
    std::memcpy(&b1, b + W, sizeof b1);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      vf a;
      a_of(p, k, i, a);
      r[i][0] += a * b0;
      r[i][1] += a * b1;
    }
  }
  vf a0{}, a1{};
  if (add) {
    std::memcpy(&a0, add, sizeof a0);
    std::memcpy(&a1, add + W, sizeof a1);
  }
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    vf o0 = r[i][0] + a0, o1 = r[i][1] + a1;
    std::memcpy(c + i * ldc, &o0, sizeof o0);
    std::memcpy(c + i * ldc + W, &o1, sizeof o1);
  }
}

// C [M, N] = S B + c 1 colsum(B) with six_tile: threads split N into chunks
// of 16 columns; per chunk and K block, B's block packed row-major ([kb, 16],
// 25 KiB at kb = 392: L1) and met by every group of six rows, whose tile is
// read from and written to C directly (a group past M's end or a chunk past
// N's goes through a [6, 16] scratch tile). tile(g, b, blk, out, ld, load_c,
// add) runs six_tile on group g's entries of K block b.
template <class TileFn>
void multiply_six(int64_t nkb, int64_t kb, const float* B, int64_t M, int64_t N, int64_t K, float c, float* C,
                  const TileFn& tile) {
  constexpr int64_t NB = 16;
  const int64_t groups = (M + 5) / 6;
  parallel_for(0, (N + NB - 1) / NB, 1, [&](int64_t lo, int64_t hi) {
    static thread_local std::vector<vf> store;  // B [kb, NB]; kept between calls
    store.resize(size_t(kb * 2));
    float* blk = reinterpret_cast<float*>(store.data());
    alignas(32) float colsum[NB];
    alignas(32) float t[6 * NB];
    for (int64_t ch = lo; ch < hi; ++ch) {
      const int64_t j0 = ch * NB, nb = std::min(NB, N - j0);
      vf cs0{}, cs1{};
      for (int64_t b = 0; b < nkb; ++b) {
        const int64_t k0 = b * kb, kc = std::min(kb, K - k0);
        for (int64_t k = 0; k < kc; ++k) {
          float* d = blk + k * NB;
          if (nb < NB) std::memset(d, 0, sizeof(float) * NB);
          std::memcpy(d, B + (k0 + k) * N + j0, sizeof(float) * size_t(nb));
          vf d0, d1;
          std::memcpy(&d0, d, sizeof d0);
          std::memcpy(&d1, d + W, sizeof d1);
          cs0 += d0;
          cs1 += d1;
        }
        const bool last = b == nkb - 1;
        if (last) {
          vf s0 = c * cs0, s1 = c * cs1;
          std::memcpy(colsum, &s0, sizeof s0);
          std::memcpy(colsum + W, &s1, sizeof s1);
        }
        for (int64_t g = 0; g < groups; ++g) {
          const int rows = int(std::min<int64_t>(6, M - g * 6));
          float* dst = C + g * 6 * N + j0;
          const bool whole = rows == 6 && nb == NB;
          if (!whole) {
            for (int r = 0; r < 6; ++r)
              for (int64_t j = 0; j < NB; ++j) t[r * NB + j] = (b > 0 && r < rows && j < nb) ? dst[r * N + j] : 0.f;
          }
          float* out = whole ? dst : t;
          const int64_t ld = whole ? N : NB;
          tile(g, b, blk, out, ld, b > 0, last ? colsum : nullptr);
          if (!whole)
            for (int r = 0; r < rows; ++r)
              for (int64_t j = 0; j < nb; ++j) dst[r * N + j] = t[r * NB + j];
        }
      }
    }
  });
}

// six on compact entries (Entries<6>: S's values copied per k kept).
void multiply_six(const Entries<6>& e, const float* B, int64_t M, int64_t N, int64_t K, float c, float* C) {
  const float* vals = e.val.data();
  auto a_of = [vals](int64_t p, int32_t, int i, vf& a) { splat(vals[p * 6 + i], a); };
  multiply_six(e.nkb, e.kb, B, M, N, K, c, C,
               [&](int64_t g, int64_t b, const float* blk, float* out, int64_t ld, bool load_c, const float* add) {
                 const int64_t* seg = e.seg.data() + g * (e.nkb + 1);
                 six_tile(seg[b], seg[b + 1], e.k.data(), a_of, blk, out, ld, load_c, add);
               });
}

// "six in place": only the k lists are built (per group of six rows and K
// block, the k where any row is not background: 8 k per AVX2 compare and
// movemask), and the tile reads X's rows in place, broadcasting x - c (the
// subtraction runs on the FP add pipes, beside the FMAs).
struct Lists {
  int64_t kb = 0, nkb = 0, count = 0;
  std::vector<int32_t> k;  // [groups * K] block-relative k kept
  std::vector<int64_t> seg, counts;
  std::vector<float> background;  // [K] all c: rows past M
};

void build_lists(const float* X, int64_t M, int64_t K, float c, int64_t kb, Lists& e) {
  const int64_t groups = (M + 5) / 6, nkb = (K + kb - 1) / kb;
  e.kb = kb;
  e.nkb = nkb;
  e.k.resize(size_t(groups * K));
  e.seg.resize(size_t(groups * (nkb + 1)));
  e.counts.resize(size_t(groups));
  e.background.assign(size_t(K), c);
  const float* background = e.background.data();
  int32_t* __restrict ks = e.k.data();
  int64_t* __restrict segs = e.seg.data();
  int64_t* counts = e.counts.data();
  parallel_for(0, groups, 4, [=](int64_t lo, int64_t hi) {
    for (int64_t g = lo; g < hi; ++g) {
      const float* row[6];
      for (int r = 0; r < 6; ++r) row[r] = g * 6 + r < M ? X + (g * 6 + r) * K : background;
      int64_t p = g * K;
      int64_t* seg = segs + g * (nkb + 1);
      for (int64_t b = 0; b < nkb; ++b) {
        seg[b] = p;
        const int64_t k0 = b * kb, k1 = std::min(K, k0 + kb);
        int64_t k = k0;
#if defined(__AVX__)
        const __m256 cv = _mm256_set1_ps(c);
        for (; k + 8 <= k1; k += 8) {
          int m = 0;
          for (int r = 0; r < 6; ++r)  // NaN compares not equal: kept, so it reaches C
            m |= _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(row[r] + k), cv, _CMP_NEQ_UQ));
          while (m) {
            ks[p++] = int32_t(k - k0 + __builtin_ctz(unsigned(m)));
            m &= m - 1;
          }
        }
#endif
        for (; k < k1; ++k) {
          bool keep = false;
          for (int r = 0; r < 6; ++r) keep |= !(row[r][k] == c);
          if (keep) ks[p++] = int32_t(k - k0);
        }
      }
      seg[nkb] = p;
      counts[g] = p - g * K;
    }
  });
  e.count = 0;
  for (int64_t n : e.counts) e.count += n;
}

void multiply_six_in_place(const Lists& e, const float* X, const float* B, int64_t M, int64_t N, int64_t K, float c,
                           float* C) {
  vf cv;
  splat(c, cv);
  multiply_six(e.nkb, e.kb, B, M, N, K, c, C,
               [&](int64_t g, int64_t b, const float* blk, float* out, int64_t ld, bool load_c, const float* add) {
                 const float* row[6];
                 for (int r = 0; r < 6; ++r)
                   row[r] = (g * 6 + r < M ? X + (g * 6 + r) * K : e.background.data()) + b * e.kb;
                 auto a_of = [&row, cv](int64_t, int32_t k, int i, vf& a) {
                   splat(row[i][k], a);
                   a -= cv;
                 };
                 const int64_t* seg = e.seg.data() + g * (e.nkb + 1);
                 six_tile(seg[b], seg[b + 1], e.k.data(), a_of, blk, out, ld, load_c, add);
               });
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Summary {
  double med, p10, p90;
};
Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[size_t(q * double(v.size() - 1) + 0.5)]; };
  return {at(0.5), at(0.1), at(0.9)};
}

double max_rel_diff(const std::vector<float>& ref, const std::vector<float>& got) {
  double scale = 0, diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    scale = std::max(scale, double(std::fabs(ref[i])));
    diff = std::max(diff, double(std::fabs(ref[i] - got[i])));
  }
  return diff / std::max(scale, 1e-30);
}


// argv[i] as a whole decimal integer in [lo, hi], else -1 (fallback when absent).
long parse_arg(int argc, char** argv, int i, long fallback, long lo, long hi) {
  if (argc <= i) return fallback;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(argv[i], &end, 10);
  return (errno || end == argv[i] || *end || v < lo || v > hi) ? -1 : v;
}

}  // namespace

int main(int argc, char** argv) {
  const long rounds = parse_arg(argc, argv, 1, 300, 1, 100000);
  const long threads = parse_arg(argc, argv, 2, 2, 1, max_num_threads());
  if (rounds < 0 || threads < 0 || argc > 3) {
    std::fprintf(stderr, "usage: %s [rounds 1..100000, default 300] [threads 1..%d, default 2]\n", argv[0],
                 max_num_threads());
    return 2;
  }
  try {
    set_num_threads(int(threads));
    manual_seed(0);
    data::LoaderOptions opt;
    opt.prefetch = false;
    data::DataLoader loader(data::load_dataset("fashion-mnist", "", true), opt);
    loader.start_epoch(0);
    auto batch = loader.next();
    Tensor x = batch->x.contiguous();  // [128, 1, 28, 28], normalized
    Tensor y = batch->y.contiguous();  // [128] labels
    const int64_t M = x.size(0), K = 784, N = 512;
    const float* X = x.data_ptr<float>();
    const float c = *std::min_element(X, X + M * K);  // the background: a 0 pixel, normalized
    Tensor bt = (randn({K, N}) * 0.05).contiguous();
    const float* B = bt.data_ptr<float>();

    // The same batch with its rows sorted by label (stable), for "six sorted".
    std::vector<float> xs(size_t(M * K));
    {
      const int64_t* lab = y.data_ptr<int64_t>();
      std::vector<int64_t> order(static_cast<size_t>(M));
      for (int64_t i = 0; i < M; ++i) order[size_t(i)] = i;
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lab[a] < lab[b]; });
      for (int64_t i = 0; i < M; ++i)
        std::memcpy(&xs[size_t(i * K)], X + order[size_t(i)] * K, sizeof(float) * size_t(K));
    }
    const float* XS = xs.data();

    std::vector<float> ref(size_t(M * N)), rows_out(ref.size()), pairs_out(ref.size());
    std::vector<float> ref_s(ref.size()), six_out(ref.size()), six_s_out(ref.size());
    Entries<1> rows;
    Entries<2> pairs;
    Entries<6> six, six_s;
    Lists lists, lists_s;
    std::vector<float> sip_out(ref.size()), sip_s_out(ref.size());
    auto dense = [&] {
      kern::cpu::sgemm(M, N, K, kern::cpu::MatF{X, K, 1}, kern::cpu::MatF{B, N, 1}, ref.data(), N);
    };
    // With a background value that no entry holds (c - 1), the same kernels
    // keep every k: they then walk k in order, which tells their speed on
    // dense data apart from what the irregular k of the real background
    // costs them.
    constexpr int kVariants = 10;
    std::vector<double> build_us[kVariants];  // the building part of each sparse call
    auto one_row = [&](float bg, int slot) {
      auto t0 = std::chrono::steady_clock::now();
      build(X, M, K, bg, 64, rows);
      build_us[slot].push_back(seconds_since(t0) * 1e6);
      multiply<1, 8>(rows, B, M, N, K, bg, rows_out.data());
    };
    auto two_rows = [&](float bg, int slot) {
      auto t0 = std::chrono::steady_clock::now();
      build(X, M, K, bg, 128, pairs);
      build_us[slot].push_back(seconds_since(t0) * 1e6);
      multiply<2, 6>(pairs, B, M, N, K, bg, pairs_out.data());
    };
    // K blocks of 392 (the mlp's two, as sgemm runs it): a [392, 16] block of B is 25 KiB, in L1.
    auto six_rows = [&](const float* a, float bg, int slot, Entries<6>& e, std::vector<float>& out) {
      auto t0 = std::chrono::steady_clock::now();
      build(a, M, K, bg, 392, e);
      build_us[slot].push_back(seconds_since(t0) * 1e6);
      multiply_six(e, B, M, N, K, bg, out.data());
    };
    auto six_in_place = [&](const float* a, float bg, int slot, Lists& e, std::vector<float>& out) {
      auto t0 = std::chrono::steady_clock::now();
      build_lists(a, M, K, bg, 392, e);
      build_us[slot].push_back(seconds_since(t0) * 1e6);
      multiply_six_in_place(e, a, B, M, N, K, bg, out.data());
    };
    const float none = c - 1.f;
    dense();
    kern::cpu::sgemm(M, N, K, kern::cpu::MatF{XS, K, 1}, kern::cpu::MatF{B, N, 1}, ref_s.data(), N);
    for (float bg : {none, c}) {  // ends on c: the densities printed below are the background's
      one_row(bg, 0);
      two_rows(bg, 0);
      six_rows(X, bg, 0, six, six_out);
      six_rows(XS, bg, 0, six_s, six_s_out);
      six_in_place(X, bg, 0, lists, sip_out);
      six_in_place(XS, bg, 0, lists_s, sip_s_out);
      double e1 = max_rel_diff(ref, rows_out), e2 = max_rel_diff(ref, pairs_out), e3 = max_rel_diff(ref, six_out),
             e4 = max_rel_diff(ref_s, six_s_out), e5 = max_rel_diff(ref, sip_out), e6 = max_rel_diff(ref_s, sip_s_out);
      if (!(e1 < 1e-4 && e2 < 1e-4 && e3 < 1e-4 && e4 < 1e-4 && e5 < 1e-4 && e6 < 1e-4)) {
        std::fprintf(stderr,
                     "background_skip: sparse products differ from the dense one (rows %.2e, pairs %.2e, six %.2e, "
                     "six sorted %.2e, six in place %.2e, sorted %.2e)\n",
                     e1, e2, e3, e4, e5, e6);
        return 1;
      }
    }

    for (auto& v : build_us) v.clear();
    const double rows_density = double(rows.count) / double(M * K);  // both last built with c
    const double pairs_density = double(pairs.count) / double((M + 1) / 2 * K);
    const double six_density = double(six.count) / double((M + 5) / 6 * K);
    const double six_s_density = double(six_s.count) / double((M + 5) / 6 * K);
    std::vector<double> t[kVariants];
    auto run = [&](int which) {
      auto t0 = std::chrono::steady_clock::now();
      switch (which) {
        case 0: dense(); break;
        case 1: one_row(c, 1); break;
        case 2: two_rows(c, 2); break;
        case 3: one_row(none, 3); break;
        case 4: two_rows(none, 4); break;
        case 5: six_rows(X, c, 5, six, six_out); break;
        case 6: six_rows(XS, c, 6, six_s, six_s_out); break;
        case 7: six_rows(X, none, 7, six, six_out); break;
        case 8: six_in_place(X, c, 8, lists, sip_out); break;
        default: six_in_place(XS, c, 9, lists_s, sip_s_out); break;
      }
      t[which].push_back(seconds_since(t0) * 1e6);
    };
    for (int r = 0; r < rounds; ++r)
      for (int j = 0; j < kVariants; ++j) run((r + j) % kVariants);

    std::printf("%s, %ld threads: X [%lld, %lld] (Fashion-MNIST batch, background %.4f) @ B [%lld, %lld], %ld rounds\n",
                cpu_model_name().c_str(), threads, (long long)M, (long long)K, c, (long long)K, (long long)N, rounds);
    std::printf("density: one row %.3f, pairs' union %.3f, six rows' union %.3f (sorted by label %.3f)\n",
                rows_density, pairs_density, six_density, six_s_density);
    const char* names[kVariants] = {"dense sgemm", "rows (build + multiply)", "pairs (build + multiply)",
                                    "rows, nothing skipped", "pairs, nothing skipped", "six (build + multiply)",
                                    "six, rows sorted by label", "six, nothing skipped",
                                    "six in place", "six in place, sorted"};
    Summary d = summarize(t[0]);
    for (int j = 0; j < kVariants; ++j) {
      Summary s = summarize(t[j]);
      std::printf("  %-27s median %8.1f us  [p10 %8.1f, p90 %8.1f]  %.3fx dense's time", names[j], s.med, s.p10,
                  s.p90, s.med / d.med);
      if (j > 0) std::printf("  (building %.1f us)", summarize(build_us[j]).med);
      std::printf("\n");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "background_skip: %s\n", e.what());
    return 1;
  }
}

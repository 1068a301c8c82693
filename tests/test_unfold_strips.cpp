// conv2d's unfold straight into packed GEMM strips (kernels/cpu/im2col.h):
// every slot of the strips, padding included, against the unfold's
// definition, col[(c, i, j)][(h, w)] = x[c][h + i*dh - ph][w + j*dw - pw] (0
// outside the image), computed here by index arithmetic. The buffers start
// as NaN, so a slot the kernel forgets to write fails too.
#include "kernels/cpu/avx512_warnings.h"  // GCC 12's false positives on AVX-512 intrinsics
#include <cmath>
#include <cstring>

#include "kernels/cpu/gemm/sgemm.h"
#include "kernels/cpu/im2col.h"
#include "tests/helpers.h"

using namespace bt;
namespace kc = brisk::kern::cpu;

namespace {

struct Geo { int64_t C, H, W, k, pad, dil; };

Geom2d same_geom(const Geo& e) {
  // stride 1 and Ho = H, Wo = W: a "same" convolution (pad = dil * (k - 1) / 2)
  return Geom2d{1, e.C, e.H, e.W, e.k, e.k, 1, 1, e.pad, e.pad, e.dil, e.dil, e.H, e.W};
}

// col [C*k*k, H*W] by the definition
std::vector<float> unfold_by_definition(const std::vector<float>& x, const Geo& e) {
  int64_t L = e.H * e.W, CKK = e.C * e.k * e.k;
  std::vector<float> col(size_t(CKK * L));
  for (int64_t c = 0; c < e.C; ++c)
    for (int64_t i = 0; i < e.k; ++i)
      for (int64_t j = 0; j < e.k; ++j)
        for (int64_t h = 0; h < e.H; ++h)
          for (int64_t w = 0; w < e.W; ++w) {
            int64_t y = h + i * e.dil - e.pad, z = w + j * e.dil - e.pad;
            bool in = y >= 0 && y < e.H && z >= 0 && z < e.W;
            col[size_t(((c * e.k + i) * e.k + j) * L + h * e.W + w)] = in ? x[size_t((c * e.H + y) * e.W + z)] : 0.f;
          }
  return col;
}

const std::vector<Geo> kGeos{{32, 14, 14, 3, 1, 1}, {1, 28, 28, 3, 1, 1}, {3, 12, 11, 3, 1, 1}, {2, 10, 10, 3, 2, 2},
                             {2, 5, 7, 5, 2, 1},    {4, 3, 3, 3, 1, 1},   {1, 1, 1, 1, 0, 1},   {2, 40, 40, 3, 1, 1}};

}  // namespace

TEST_CASE("kernels: unfold into packed GEMM strips matches the unfold's definition", "[kernels][gemm]") {
#ifdef __AVX512F__
  if (!kc::sgemm_isa_supported("avx512")) {
    WARN("SKIPPED: the unfold into packed strips is AVX-512 code and this CPU lacks AVX-512");
    return;
  }
  for (const Geo& e : kGeos) {
    Geom2d g = same_geom(e);
    REQUIRE(kc::same_geometry(g));
    int64_t L = e.H * e.W, CKK = e.C * e.k * e.k;
    Tensor xt = randn({e.C * L});
    std::vector<float> x(xt.data_ptr<float>(), xt.data_ptr<float>() + e.C * L);
    std::vector<float> col = unfold_by_definition(x, e);
    for (int64_t w : {8, 32}) {
      INFO("C " << e.C << " " << e.H << "x" << e.W << " k" << e.k << " pad " << e.pad << " dil " << e.dil
                << " strips of " << w);
      // Positions along the strips (the forward's col^T for w = 8, col for w = 32): K = CKK.
      int64_t P = (L + w - 1) / w * w, st = kc::sgemm_packed_stride(CKK, w);
      std::vector<float> d(size_t(kc::sgemm_packed_size(L, CKK, w)), NAN);
      kc::im2col_same_strips_avx512(x.data(), g, w, d.data());
      int64_t bad = 0;
      for (int64_t p = 0; p < P; ++p)
        for (int64_t k = 0; k < CKK; ++k) {
          float want = p < L ? col[size_t(k * L + p)] : 0.f, got = d[size_t(p / w * st + k * w + p % w)];
          bad += !(got == want);
        }
      CHECK(bad == 0);
      // Rows along the strips (the weight gradient's col for w = 8, col^T for w = 32): K = L.
      int64_t R = (CKK + w - 1) / w * w, stt = kc::sgemm_packed_stride(L, w);
      std::vector<float> dt(size_t(kc::sgemm_packed_size(CKK, L, w)), NAN);
      kc::im2col_same_strips_t_avx512(x.data(), g, w, dt.data());
      int64_t bad_t = 0;
      for (int64_t k = 0; k < R; ++k)
        for (int64_t p = 0; p < L; ++p) {
          float want = k < CKK ? col[size_t(k * L + p)] : 0.f, got = dt[size_t(k / w * stt + p * w + k % w)];
          bad_t += !(got == want);
        }
      CHECK(bad_t == 0);
    }
  }
#else
  WARN("SKIPPED: the unfold into packed strips is AVX-512 code, not in this build");
#endif
}

// The AVX2 forward's unfold into the 6-wide A strips of col^T: every slot,
// the padding positions past L included, against the definition; the buffer
// starts as NaN and has room after the last strip, which must stay NaN.
TEST_CASE("kernels: unfold into the AVX2 kernel's 6-wide strips matches the unfold's definition", "[kernels][gemm]") {
#if defined(__AVX2__) && defined(__FMA__)
  if (!kc::sgemm_isa_supported("avx2")) {
    WARN("SKIPPED: the 6-wide strip unfold is AVX2 code and this CPU lacks AVX2");
    return;
  }
  for (const Geo& e : kGeos) {
    Geom2d g = same_geom(e);
    int64_t L = e.H * e.W, CKK = e.C * e.k * e.k, P = (L + 5) / 6 * 6, st = kc::sgemm_packed_stride(CKK, 6);
    Tensor xt = randn({e.C * L});
    std::vector<float> x(xt.data_ptr<float>(), xt.data_ptr<float>() + e.C * L);
    std::vector<float> col = unfold_by_definition(x, e);
    std::vector<float> d(size_t((P / 6) * st) + 16, NAN);
    kc::im2col_same_strips6_avx2(x.data(), g, d.data());
    INFO("C " << e.C << " " << e.H << "x" << e.W << " k" << e.k << " pad " << e.pad << " dil " << e.dil);
    int64_t bad = 0;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t k = 0; k < CKK; ++k) {
        float want = p < L ? col[size_t(k * L + p)] : 0.f, got = d[size_t(p / 6 * st + k * 6 + p % 6)];
        bad += !(got == want);
      }
    CHECK(bad == 0);
    // nothing past each strip's CKK rows (the stride's padding) nor past the last strip
    int64_t wrote_out = 0;
    for (int64_t s = 0; s < P / 6; ++s)
      for (int64_t i = CKK * 6; i < st; ++i) wrote_out += !std::isnan(d[size_t(s * st + i)]);
    for (size_t i = size_t((P / 6) * st); i < d.size(); ++i) wrote_out += !std::isnan(d[i]);
    CHECK(wrote_out == 0);
  }
#else
  WARN("SKIPPED: the 6-wide strip unfold is AVX2 code, not in this build");
#endif
}

// im2col_sample and col2im_sample of a "same" geometry under each GEMM
// instruction set the CPU has: AVX-512 rows, AVX2's whole-plane masked
// copies, or the portable rows, every element against the definition (the
// buffers start as NaN).
TEST_CASE("kernels: the per-sample unfold of a same convolution and its adjoint match the definition on every ISA", "[kernels][gemm]") {
  struct IsaRestore {
    ~IsaRestore() { kc::set_sgemm_isa("auto"); }
  } restore;
  int ran = 0;
  for (const char* isa : {"avx512", "avx2", "sse"}) {
    if (!kc::sgemm_isa_supported(isa)) {
      WARN("SKIPPED: the " << isa << " unfold (this CPU lacks it)");
      continue;
    }
    kc::set_sgemm_isa(isa);
    ++ran;
    for (const Geo& e : kGeos) {
      Geom2d g = same_geom(e);
      int64_t L = e.H * e.W, CKK = e.C * e.k * e.k;
      Tensor xt = randn({e.C * L});
      std::vector<float> x(xt.data_ptr<float>(), xt.data_ptr<float>() + e.C * L);
      std::vector<float> want = unfold_by_definition(x, e), got(size_t(CKK * L) + 16, NAN);
      kc::im2col_sample(x.data(), g, got.data());
      INFO(isa << ": C " << e.C << " " << e.H << "x" << e.W << " k" << e.k << " pad " << e.pad << " dil " << e.dil);
      int64_t bad = 0;
      for (int64_t i = 0; i < CKK * L; ++i) bad += !(got[size_t(i)] == want[size_t(i)]);
      CHECK(bad == 0);
      for (size_t i = size_t(CKK * L); i < got.size(); ++i) CHECK(std::isnan(got[i]));  // nothing written past col
      // col2im, its adjoint: each x element sums, in row order, the col entries the definition maps onto it
      Tensor ct = randn({CKK * L});
      const float* cp = ct.data_ptr<float>();
      std::vector<float> xs(size_t(e.C * L), 0.f), xg(size_t(e.C * L) + 16, NAN);
      for (int64_t c = 0; c < e.C; ++c)
        for (int64_t i = 0; i < e.k; ++i)
          for (int64_t j = 0; j < e.k; ++j)
            for (int64_t p = 0; p < L; ++p) {
              int64_t y = p / e.W + i * e.dil - e.pad, z = p % e.W + j * e.dil - e.pad;
              if (y >= 0 && y < e.H && z >= 0 && z < e.W)
                xs[size_t((c * e.H + y) * e.W + z)] += cp[((c * e.k + i) * e.k + j) * L + p];
            }
      kc::col2im_sample(cp, g, xg.data());
      int64_t bad_x = 0;
      for (int64_t i = 0; i < e.C * L; ++i) bad_x += std::memcmp(&xs[size_t(i)], &xg[size_t(i)], sizeof(float)) != 0;
      CHECK(bad_x == 0);
      for (size_t i = size_t(e.C * L); i < xg.size(); ++i) CHECK(std::isnan(xg[i]));
    }
  }
  CHECK(ran > 0);
}

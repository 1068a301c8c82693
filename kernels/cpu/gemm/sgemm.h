// The native f32 GEMM: packed panels and a register-blocked micro-kernel, one
// build per instruction set (AVX-512, AVX2+FMA, portable SSE), picked at run
// time by CPUID. Other kernels (conv2d, linear) call it directly; the "gemm"
// dispatch op is a thin wrapper.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "core/dtype.h"

namespace brisk::kern::cpu {

// A read-only matrix view: element (r, c) is p[r * rs + c * cs]. Any strides,
// so transposes are free (swap rs and cs). E: float, or a 16-bit float read
// and widened to f32 while packing (the products and sums stay f32).
template <class E>
struct Mat {
  const E* p;
  int64_t rs, cs;
  Mat t() const { return {p, cs, rs}; }
};
using MatF = Mat<float>;

inline float widen(float v) { return v; }
inline float widen(BFloat16 v) {  // bf16 is the top half of an f32: exact, one shift
  uint32_t u = uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float widen(Half v) { return half_bits_to_float(v.bits); }

// What the GEMM does to each block of C once its last k is summed, while the
// block is still in cache: + bias[j] on column j (bias [N]; null: none), then
// ReLU (max(0, v); NaN stays NaN), then rounding to bf16 (nearest even; the
// values stay f32 storage). Saves the separate passes over C that linear's
// bias and ReLU, or its bf16 autocast, would otherwise make.
struct GemmEpilogue {
  const float* bias = nullptr;
  bool round_bf16 = false;
  bool relu = false;
  // This epilogue for the block of C starting at column j0 (bias offset).
  GemmEpilogue at_column(int64_t j0) const { return {bias ? bias + j0 : nullptr, round_bf16, relu}; }
};

// C[M, N] (row stride ldc) = A[M, K] @ B[K, N], or C += A @ B when accumulate;
// then the epilogue, when given. Runs on the brisk thread pool when the
// problem is large enough and the call is not already inside a parallel
// region. Deterministic: each element of C is summed in the same k order
// whatever the thread count.
void sgemm(int64_t M, int64_t N, int64_t K, MatF A, MatF B, float* C, int64_t ldc, bool accumulate = false,
           const GemmEpilogue* ep = nullptr);
// The same GEMM reading bf16 / f16 operands (half the bytes of f32) and
// accumulating in f32: the operands are widened (no vdpbf16ps kernel yet)
// during packing, so the micro-kernel is the f32 one. Results equal sgemm on
// the widened values exactly (widening is exact, the summation order the same).
void sgemm(int64_t M, int64_t N, int64_t K, Mat<BFloat16> A, Mat<BFloat16> B, float* C, int64_t ldc,
           bool accumulate = false);
void sgemm(int64_t M, int64_t N, int64_t K, Mat<Half> A, Mat<Half> B, float* C, int64_t ldc, bool accumulate = false);

// Under bf16 autocast (core/autocast.h: gemm_operands_bf16()), the f32 sgemm
// above rounds its operands to bf16 while packing and multiplies them on AMX
// tiles (sgemm_amx.cpp) or with AVX512-BF16 dot products
// (sgemm_avx512bf16.cpp) where the CPU has them and the ISA is avx512;
// elsewhere it multiplies rounded copies with the f32 kernel. Either way the
// products are of bf16 operands (exact in f32), so callers may hand it
// unrounded f32 values (linear's folded casts); for operands that already
// hold bf16 values only the summation order changes.
bool sgemm_bf16_supported();  // AVX512-BF16 present and the ISA is avx512
bool gemm_bf16_active();      // gemm_operands_bf16() && sgemm_bf16_supported()

// Which bf16 kernel that is: "amx" (tile products, sgemm_amx.cpp) where the
// CPU has AMX-BF16 and the OS grants tile state, else "avx512bf16"; "none"
// where neither runs (no AVX512-BF16, or the f32 GEMM held below AVX-512),
// a name set_bf16_gemm_kernel takes back only there. The environment
// variable BRISK_BF16_GEMM=auto|amx|avx512bf16 sets it at start;
// set_bf16_gemm_kernel switches it (tests run both), throwing brisk::Error for
// an unknown name or one the machine lacks.
std::string bf16_gemm_kernel();
void set_bf16_gemm_kernel(const std::string& name);
bool bf16_gemm_kernel_supported(const std::string& name);
bool gemm_amx_active();  // gemm_bf16_active() on AMX tiles (conv2d's packed path)

// The micro-tile (rows x columns of C) the f32 sgemm runs now, bf16 autocast
// included. A caller free to compute C or C^T (conv2d) picks the product whose
// edge tiles waste less: fill(rows, cols) is the useful fraction of the tiled
// work, e.g. 64 x 196 on 8 x 32 tiles fills 0.875 and 196 x 64 fills 0.98.
struct GemmTile {
  int64_t mr, nr;
  double fill(int64_t rows, int64_t cols) const {
    return double(rows * cols) / double((rows + mr - 1) / mr * mr * ((cols + nr - 1) / nr * nr));
  }
};
GemmTile sgemm_tile();

// Pre-packed operands, for callers that write an operand in the micro-kernel's
// layout themselves or reuse one across many products: conv2d unfolds each
// sample straight into packed strips (no im2col buffer, no packing pass) and
// packs its weight once per batch instead of once per sample. The layout is
// the f32 kernel's of sgemm_isa(), with t = sgemm_f32_tile(): A [M, K] as
// ceil(M / t.mr) strips [K, t.mr], B [K, N] as ceil(N / t.nr) strips
// [K, t.nr], strip s at s * sgemm_packed_stride(K, r) (r = t.mr or t.nr):
// element (row i, k) of A at (i / mr) * stride + k * mr + i % mr, B likewise
// by column, zero past M and N. f32 operands only: under bf16 autocast
// (gemm_operands_bf16()) call sgemm. Pack and multiply under the same
// sgemm_isa(). Bp must be 64-byte aligned (the kernel reads B strips with
// aligned vector loads).
GemmTile sgemm_f32_tile();
int64_t sgemm_packed_stride(int64_t K, int64_t r);  // floats, a multiple of 16
int64_t sgemm_packed_size(int64_t rows, int64_t K, int64_t r);  // floats: ceil(rows / r) strips
void sgemm_pack_a(int64_t M, int64_t K, MatF A, float* dst);
void sgemm_pack_b(int64_t K, int64_t N, MatF B, float* dst);
// C[M, N] (row stride ldc) (+)= A @ B on packed operands, on the calling
// thread (callers run it per sample inside their own parallel_for). Equals
// sgemm on the unpacked operands bit for bit (same K blocks, same kernel).
void sgemm_packed(int64_t M, int64_t N, int64_t K, const float* Ap, const float* Bp, float* C, int64_t ldc,
                  bool accumulate = false);

// The same with A row-major as it is (A[i, k] at A[i * lda + k]) and only B
// packed: the micro-kernel broadcasts A's values from its rows in place (for
// an A whose rows run along K already, like the unfold in the conv weight
// gradient's col @ gy^T). Equals sgemm bit for bit.
void sgemm_packed_b(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp, float* C,
                    int64_t ldc, bool accumulate = false);

// The instruction set sgemm uses: "avx512", "avx2" or "sse". set_sgemm_isa
// forces one (tests run every micro-kernel the CPU supports); "auto" restores
// the CPUID choice. Throws brisk::Error for an unknown name or one the CPU
// lacks.
std::string sgemm_isa();
bool sgemm_isa_avx512();  // sgemm_isa() == "avx512", cheaply: other AVX-512 paths (im2col rows) follow the same switch
bool sgemm_isa_avx2();    // sgemm_isa() == "avx2", cheaply: the AVX2 unfold follows it likewise
void set_sgemm_isa(const std::string& isa);
bool sgemm_isa_supported(const std::string& isa);

// Exact zero skipping (zero_skip.h): the f32 kernels leave out the k where
// a whole A strip (a micro-tile's MR rows) is zero, where that drops at
// least 1/16 of a K block, and only over B panels that are all finite, so
// C gets the dense product's bits. On by default;
// BRISK_SGEMM_ZERO_SKIP=0 turns it off at start, set_sgemm_zero_skip at
// run time (tests and benchmarks compare the two).
bool sgemm_zero_skip();
void set_sgemm_zero_skip(bool on);
// The multiply-adds the f32 kernels have left out so, since the start, on
// all threads (each product's real rows and columns, not the tiles'
// padding); the driver adds each call's.
int64_t sgemm_zero_skip_macs();
void add_zero_skip_macs(int64_t macs);

// The avx512 build has a second f32 micro-tile, 6 x 64 (24 accumulators; 10
// loads per 24 FMAs where 8 x 32 issues 10 per 16), which sgemm runs for f32
// products at least 512 on every side, or at least 1024 rows tall and 64 wide
// and deep ("auto"); "8x32" or "6x64" forces one
// for every sgemm call on avx512 (tests run both). Both give the same bits:
// the K blocks and each element's summation order do not depend on the tile.
// The packed entry points and sgemm_tile() are 8 x 32 throughout. The
// environment variable BRISK_SGEMM_TILE=auto|8x32|6x64 sets it at start;
// set_sgemm_avx512_tile throws brisk::Error for an unknown name.
std::string sgemm_avx512_tile();
void set_sgemm_avx512_tile(const std::string& tile);
// Whether sgemm runs an f32 product of this shape on the 6 x 64 tile now
// (the ISA avx512 and the tile rule above).
bool sgemm_wide_tile(int64_t M, int64_t N, int64_t K);

}  // namespace brisk::kern::cpu

// sgemm built for AVX-512F with a 6x64 micro-tile: 24 accumulators, per k 4
// vector loads of B, 6 broadcasts of A and 24 FMAs (1.42 instructions per
// FMA, against 1.63 for the 8x32 tile of sgemm_avx512.cpp). Where the front
// end rather than the FMA ports bounds the loop (the Xeon this was tuned on:
// 86% of the FMA peak for 8x32 from L1, 91-92% for 6x64), that was 3-4% of
// a large product. Its 64-column B strip (64 KiB at K blocks of 256) does not
// fit in L1, so the A strip always stays there (kAStripInL1). sgemm.cpp picks
// it for large products only; the packed entry points keep 8x32.
#include <immintrin.h>
#define BRISK_GEMM_NS avx512w
#define BRISK_GEMM_W 16
#define BRISK_GEMM_MR 6
#define BRISK_GEMM_NV 4
#define BRISK_GEMM_A_STRIP_IN_L1 1
static inline __m512 vfma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
static inline auto vset1(float a) { return _mm512_set1_ps(a); }
#define BRISK_GEMM_ENTRY sgemm_avx512_wide
#include "kernels/cpu/gemm/sgemm_impl.h"

// GCC 12 reports "may be used uninitialized" for the _mm512_undefined_*()
// that unmasked AVX-512 intrinsics (max, extracts, shuffles, conversions)
// pass as an unused merge source: false positives, reported where the
// intrinsic is inlined, so in every file whose code uses them (and in the
// files including pool2d.h's or im2col.h's AVX-512 paths). Those files
// include this; nothing in them reads an uninitialized value.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

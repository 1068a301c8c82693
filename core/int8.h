// int8 with per-row scales (symmetric): row r is stored as round(x / s_r) in
// [-127, 127] with s_r = max|row r| / 127, so each element's error is at most
// s_r / 2 = max|row| / 254. int8_matmul quantizes A by rows and B by columns
// (the K dim shares one scale per output row / column), multiplies in int32
// and rescales. It dispatches the op "int8_gemm": the scalar reference kernel,
// or the AVX512-VNNI kernel (bit-identical) where the CPU has VNNI.
// Quantization dispatches "int8_quantize_rows" / "int8_dequantize_rows".
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace brisk {

struct Int8Rows {
  int64_t rows = 0, cols = 0;
  Tensor q;      // u8 [rows, cols] holding the int8 values' bytes (values() reads them as int8)
  Tensor scale;  // f32 [rows]; 0 for an all-zero row
  const int8_t* values() const { return reinterpret_cast<const int8_t*>(q.data_ptr<uint8_t>()); }
  const float* scales() const { return scale.data_ptr<float>(); }
};

Int8Rows quantize_rows_int8(const Tensor& x);  // x [rows, cols], floating
Tensor dequantize_rows_int8(const Int8Rows& q);  // -> f32 [rows, cols]
// C [M, N] ~= a [M, K] @ b [K, N], with int8 operands and int32 accumulation.
Tensor int8_matmul(const Tensor& a, const Tensor& b);
// Whether this CPU runs the VNNI kernel (backend "cpu" of "int8_gemm").
bool int8_vnni_supported();

}  // namespace brisk

// Scalar definitions of every elementwise op, written once and shared by the
// ref kernels (instantiated at double), the optimized CPU kernels (at T) and
// the CUDA kernels (the BRISK_HD *_math functions).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "core/error.h"
#include "core/kernel_params.h"
#include "kernels/host_device.h"

namespace brisk::kern {

// The one element conversion every copy kernel uses: exact for same-type
// copies, via double otherwise, f16/bf16 rounding to nearest even.
template <class S, class D>
inline D convert(S s) {
  if constexpr (std::is_same_v<S, D>) return s;
  else if constexpr (std::is_same_v<D, Half> || std::is_same_v<D, BFloat16>) return D(float(to_double(s)));
  else return from_double<D>(to_double(s));
}

// The arithmetic, host and device (kernels/cuda runs the same functions):
// no checks here; the apply_* forms below check that the op applies to T.
template <class T>
BRISK_HD inline T unary_math(UnaryOp op, T x) {
  if constexpr (std::is_floating_point_v<T>) {
    constexpr T kInvSqrt2 = T(0.70710678118654752440);
    constexpr T kInvSqrt2Pi = T(0.39894228040143267794);
    switch (op) {
      case UnaryOp::neg: return -x;
      case UnaryOp::exp: return std::exp(x);
      case UnaryOp::log: return std::log(x);
      case UnaryOp::sqrt: return std::sqrt(x);
      case UnaryOp::rsqrt: return T(1) / std::sqrt(x);
      case UnaryOp::abs: return std::abs(x);
      case UnaryOp::tanh: return std::tanh(x);
      case UnaryOp::sigmoid:  // split by sign so exp never overflows
        return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
      case UnaryOp::relu: return x > 0 ? x : T(0);
      case UnaryOp::gelu: return T(0.5) * x * (T(1) + std::erf(x * kInvSqrt2));
      case UnaryOp::gelu_deriv:
        return T(0.5) * (T(1) + std::erf(x * kInvSqrt2)) + x * kInvSqrt2Pi * std::exp(T(-0.5) * x * x);
      case UnaryOp::sign: return T((x > 0) - (x < 0));
    }
  } else {
    switch (op) {
      case UnaryOp::neg: return T(-x);
      case UnaryOp::abs: return x < 0 ? T(-x) : x;
      case UnaryOp::relu: return x > 0 ? x : T(0);
      case UnaryOp::sign: return T((x > 0) - (x < 0));
      default: break;
    }
  }
  return x;
}

template <class T>
BRISK_HD inline T binary_math(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return T(a + b);
    case BinaryOp::sub: return T(a - b);
    case BinaryOp::mul: return T(a * b);
    case BinaryOp::div: return T(a / b);
    case BinaryOp::pow:
      if constexpr (std::is_floating_point_v<T>) return std::pow(a, b);
      else return T(std::pow(double(a), double(b)));
    case BinaryOp::maximum:
      if constexpr (std::is_floating_point_v<T>)
        if (std::isnan(a) || std::isnan(b)) return a + b;  // NaN propagates, as in torch
      return a > b ? a : b;
    case BinaryOp::minimum:
      if constexpr (std::is_floating_point_v<T>)
        if (std::isnan(a) || std::isnan(b)) return a + b;
      return a < b ? a : b;
    case BinaryOp::relu_grad: return b > T(0) ? a : T(0);
    default: return a;
  }
}

template <class T>
BRISK_HD inline bool compare_math(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::eq: return a == b;
    case BinaryOp::ne: return a != b;
    case BinaryOp::lt: return a < b;
    case BinaryOp::le: return a <= b;
    case BinaryOp::gt: return a > b;
    case BinaryOp::ge: return a >= b;
    default: return false;
  }
}

// Ops defined on integer dtypes besides the comparisons.
inline bool integer_unary_op(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::relu || op == UnaryOp::sign;
}
inline bool arithmetic_op(BinaryOp op) { return int(op) <= int(BinaryOp::relu_grad); }

template <class T>
inline T apply_unary(UnaryOp op, T x) {
  if constexpr (!std::is_floating_point_v<T>)
    BRISK_CHECK(integer_unary_op(op), "op ", unary_op_name(op), ": not defined for integer dtypes");
  return unary_math(op, x);
}

template <class T>
inline T apply_binary(BinaryOp op, T a, T b) {
  BRISK_CHECK(arithmetic_op(op), "op ", binary_op_name(op), ": not an arithmetic op");
  if constexpr (!std::is_floating_point_v<T>)
    BRISK_CHECK(op != BinaryOp::div || b != 0, "op div: integer division by zero");
  return binary_math(op, a, b);
}

// 16-bit floats: computed in f32, rounded once into the 16-bit result.
template <> inline Half apply_unary<Half>(UnaryOp op, Half x) { return Half(apply_unary<float>(op, float(x))); }
template <> inline BFloat16 apply_unary<BFloat16>(UnaryOp op, BFloat16 x) {
  return BFloat16(apply_unary<float>(op, float(x)));
}
template <> inline Half apply_binary<Half>(BinaryOp op, Half a, Half b) {
  return Half(apply_binary<float>(op, float(a), float(b)));
}
template <> inline BFloat16 apply_binary<BFloat16>(BinaryOp op, BFloat16 a, BFloat16 b) {
  return BFloat16(apply_binary<float>(op, float(a), float(b)));
}

template <class T>
inline bool apply_compare(BinaryOp op, T a, T b) {
  BRISK_CHECK(!arithmetic_op(op), "op ", binary_op_name(op), ": not a comparison");
  return compare_math(op, a, b);
}

}  // namespace brisk::kern

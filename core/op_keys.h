// Every kernel op key, with its stem: the one name its pieces share.
//   kernels/cpu/ref/<stem>.cpp         reference kernel (the oracle)
//   kernels/cpu/<stem>.cpp             optimized CPU kernel (where one exists)
//   kernels/cuda/<stem>.cu             CUDA kernel (where one exists)
//   kernels/vendor/<vendor>_<stem>.*   OpenBLAS / cuBLAS / cuDNN
//   tests/test_op_table.cpp            one table entry per key
// A family of keys (forward and backward, or the unary ops) shares a stem.
// register_kernel refuses a key that is not listed here, and refuses a kernel
// registered from a file whose name does not carry the key's stem; the op
// table test fails for a key without an entry. Contracts (operands, layouts,
// params) are in core/kernel_params.h.
#pragma once
#include <span>
#include <string_view>

namespace brisk {

// X(key, stem)
#define BRISK_OP_KEYS(X)                                                                              \
  X(neg, elementwise) X(exp, elementwise) X(log, elementwise) X(sqrt, elementwise)                   \
  X(rsqrt, elementwise) X(abs, elementwise) X(tanh, elementwise) X(sigmoid, elementwise)             \
  X(relu, elementwise) X(gelu, elementwise) X(gelu_deriv, elementwise) X(sign, elementwise)          \
  X(binary, elementwise) X(compare, elementwise) X(where, elementwise) X(copy, elementwise)          \
  X(fill, elementwise)                                                                               \
  X(reduce, reduce)                                                                                  \
  X(softmax, softmax)                                                                                \
  X(gemm, gemm)                                                                                      \
  X(int8_gemm, int8_gemm)                                                                            \
  X(im2col, im2col) X(col2im, im2col)                                                                \
  X(max_pool2d, pool2d) X(max_pool2d_backward, pool2d) X(avg_pool2d, pool2d)                         \
  X(avg_pool2d_backward, pool2d) X(adaptive_avg_pool2d, pool2d)                                      \
  X(adaptive_avg_pool2d_backward, pool2d)                                                            \
  X(conv2d_fwd, conv2d) X(conv2d_bwd_input, conv2d) X(conv2d_bwd_weight, conv2d)                     \
  X(conv2d_pool_fwd, conv2d)                                                                         \
  X(bias_relu, bias_relu)                                                                            \
  X(bias_gelu_fwd, bias_gelu) X(bias_gelu_bwd, bias_gelu)                                            \
  X(cross_entropy_fwd, cross_entropy) X(cross_entropy_bwd, cross_entropy)                            \
  X(sgd_step, sgd_step)                                                                              \
  X(adamw_step, adamw_step)                                                                          \
  X(gather, index) X(scatter_add, index)                                                             \
  X(batch_norm_fwd, batch_norm) X(batch_norm_bwd, batch_norm)                                        \
  X(layer_norm_fwd, layer_norm) X(layer_norm_bwd, layer_norm)                                        \
  X(attention_fwd, attention) X(attention_bwd, attention)                                            \
  X(csr_build, csr_linear) X(csr_linear, csr_linear) X(csr_linear_bwd_weight, csr_linear)            \
  X(bf16_round, bf16_round)                                                                          \
  X(stochastic_round, stochastic_round)                                                              \
  X(fp8_quantize, fp8) X(fp8_dequantize, fp8) X(fp8_round, fp8)                                      \
  X(int8_quantize_rows, int8_quantize) X(int8_dequantize_rows, int8_quantize)

// opkey::gemm == "gemm": call sites name keys through these constants.
namespace opkey {
#define BRISK_OP_KEY_CONST(key, stem) inline constexpr char key[] = #key;
BRISK_OP_KEYS(BRISK_OP_KEY_CONST)
#undef BRISK_OP_KEY_CONST
}  // namespace opkey

struct OpKeyInfo {
  const char* key;
  const char* stem;
};
std::span<const OpKeyInfo> op_keys();               // every key, in the order above
const OpKeyInfo* find_op_key(std::string_view key);  // nullptr when not listed

}  // namespace brisk

// The contract between the op layer and kernels: op names, parameter structs,
// and the layouts each kernel may assume. Any backend registering an op must
// honour exactly this contract; kernels/cpu/ref is its executable definition.
#pragma once
#include <cstdint>

namespace brisk {

enum class UnaryOp : uint8_t {
  neg, exp, log, sqrt, rsqrt, abs, tanh, sigmoid, relu, gelu,
  gelu_deriv,  // d gelu / dx (erf form), used by gelu's backward
  sign,
};
enum class BinaryOp : uint8_t {
  add, sub, mul, div, pow, maximum, minimum,
  relu_grad,  // a where b > 0, else 0: ReLU's backward from (grad, output) in one pass
  eq, ne, lt, le, gt, ge,  // "compare": output dtype bool
};
const char* unary_op_name(UnaryOp op);
const char* binary_op_name(BinaryOp op);

// "unary":   in[0] any strides; out[0] contiguous, same shape and dtype.
struct UnaryParams { UnaryOp op; };
// "binary":  in[0], in[1] already expanded to out's shape (strides may be 0);
//            out[0] contiguous, same dtype. "compare": same, out[0] is bool.
struct BinaryParams { BinaryOp op; };
// "where":   in = {cond (bool), a, b}, all expanded to out's shape; out contiguous.
// "copy":    in[0] -> out[0], same shape, any strides, any dtypes (casting copy, RNE).
// "fill":    out[0] any strides.
struct FillParams { double value; };
// "reduce":  in[0] [M, K] -> out[0] contiguous [M]; argmax writes i64. in[0] is
//            either row-contiguous (strides K, 1) or column-contiguous (strides
//            1, M: a reduction over the leading dims of a contiguous tensor,
//            passed without a transposing copy); kernels may decline the latter.
//            round_bf16 (sum over f32 only): each element is rounded to bf16
//            (nearest even) before it is added, the sum of a bf16-rounded
//            tensor without the rounded copy; kernels without it decline.
enum class ReduceOp : uint8_t { sum, max, min, argmax };
struct ReduceParams {
  ReduceOp op;
  bool round_bf16 = false;
};
// "gemm":    in[0] A [B, M, K], in[1] Bm [B, K, N], any strides (batch stride may
//            be 0 for broadcast, inner dims may be transposed); out[0] C [B, M, N]
//            contiguous. C = A @ Bm. An epilogue may follow (f32): in[2] bias [N]
//            contiguous (or undefined) added to every row of C, and params a
//            GemmParams whose relu then takes max(0, C) (NaN stays NaN) and whose
//            round_bf16 then rounds C to bf16 (nearest even, f32 storage).
//            Backends without the epilogue decline a call that has one (the ref
//            and the native CPU GEMM have it).
struct GemmParams {
  bool round_bf16;
  bool relu = false;
};
// "softmax": in[0] contiguous [M, K] -> out[0] [M, K], along K.
struct SoftmaxParams { bool log; };
// Convolution / pooling geometry over [N, C, H, W].
struct Geom2d {
  int64_t N, C, H, W;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t Ho, Wo;
};
// "im2col":  in[0] [N, C, H, W] contiguous -> out[0] [N, C*kh*kw, Ho*Wo]; row index
//            is (c*kh + i)*kw + j, matching a weight viewed as [O, C*kh*kw].
// "col2im":  the adjoint: in[0] [N, C*kh*kw, Ho*Wo] -> out[0] [N, C, H, W] (sums overlaps).
// "max_pool2d": in[0] [N,C,H,W] -> out[0] [N,C,Ho,Wo], out[1] i64 argmax (h*W+w);
//            padding counts as -inf.
// "max_pool2d_backward": in = {grad_out [N,C,Ho,Wo], indices} -> out[0] [N,C,H,W].
// "avg_pool2d" / "avg_pool2d_backward": padded zeros counted (count_include_pad).
// "adaptive_avg_pool2d" / "_backward": window i spans [floor(i*H/Ho), ceil((i+1)*H/Ho)).
// Fused conv2d (groups == 1), an optional override of the composite
// im2col + matmul (+ bias, + relu); a kernel may decline and the op layer then
// runs the composite. All tensors contiguous; w is viewed as [O, C*kh*kw].
// "conv2d_fwd":        in = {x [N,C,H,W], w, bias [O] or undefined}
//                      -> out[0] y [N,O,Ho,Wo] = (relu)(conv(x, w) + bias).
// "conv2d_bwd_input":  in = {gy [N,O,Ho,Wo], w} -> out[0] gx [N,C,H,W].
// "conv2d_bwd_weight": in = {gy, x} -> out = {gw [O, C*kh*kw], gb [O] or undefined}.
// gy is the gradient after the relu mask has been applied. Pooled form
// (behind conv2d_pool_fwd): a third input, conv2d_pool_fwd's window codes,
// makes in[0] the pooled gradient [N,O,Ho/2,Wo/2], and gy is its 2x2
// max-pool backward (the gradient at each window's code position, zero
// elsewhere); the kernels expand it one sample at a time.
// bf16 (autocast's bf16 casts folded into the kernels): x, w and gy are used
// as their bf16 roundings (nearest even) and y is rounded after bias and
// ReLU, exactly as if each had been cast; gx and gw come out rounded to bf16
// too (the gradients of the cast x and w, which are bf16 tensors), gb does
// not (the bias is added in f32). A kernel that cannot honour it declines conv2d_fwd (then autocast casts
// explicitly), so the backward kernels only see it behind a forward that did.
struct ConvParams {
  Geom2d g;
  bool relu;
  bool bf16 = false;
};
// "conv2d_pool_fwd":   in = {x, w, bias} as conv2d_fwd (relu false; bf16 as
//                      there) -> out = {y [N,O,Ho/2,Wo/2], codes u8}: the
//                      2x2 / stride 2 max pool of conv2d_fwd's output, with
//                      max_pool2d's values (NaN wins) and, per window, the
//                      code 2*dy + dx of its argmax (dy, dx in {0, 1}): one
//                      byte, not max_pool2d's i64 index. The full-size conv
//                      output is not an output: the backward kernels take the
//                      pooled gradient and the codes (pooled form).
// The pool geometry over a conv output [N, O, Ho, Wo] (g: the conv's).
inline Geom2d max_pool_2x2_geom(const Geom2d& g, int64_t O) {
  return Geom2d{g.N, O, g.Ho, g.Wo, 2, 2, 2, 2, 0, 0, 1, 1, g.Ho / 2, g.Wo / 2};
}
// "bias_relu": in = {y [M, N] contiguous, b [N]} -> out[0] [M, N] = max(y + b, 0).
// "bias_gelu_fwd": in = {y [M, N] contiguous, b [N]} -> out[0] [M, N] = gelu(y + b)
//            (exact erf form). "bias_gelu_bwd": in = {g [M, N], y, b} -> out[0]
//            gy [M, N] = g * gelu'(y + b); the bias gradient is gy's column sum.
// Fused softmax + cross-entropy over rows of logits [N, C] (contiguous):
// "cross_entropy_fwd": in = {logits, target i64 [N]} -> out = {loss [N], lse [N]};
//            loss_i = lse_i - (1-eps) x[i,t_i] - eps mean_c x[i,c], 0 where t_i == ignore_index.
// "cross_entropy_bwd": in = {logits, lse, target, gloss [N]} -> out[0] glogits [N, C]
//            = gloss_i (softmax(x_i) - (1-eps) onehot(t_i) - eps/C), 0 on ignored rows.
struct CrossEntropyParams {
  int64_t ignore_index;
  double label_smoothing;
};
// Fused optimizer updates, in place on contiguous tensors of one dtype.
// "sgd_step":   in = {grad}; out = {param, momentum_buffer (undefined when momentum == 0)}.
//   g' = g + wd p; buf = first ? g' : momentum buf + (1 - dampening) g';
//   p -= lr (nesterov ? g' + momentum buf : buf)   (p -= lr g' without momentum)
struct SgdStepParams {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first;
};
// "adamw_step": in = {grad}; out = {param, exp_avg, exp_avg_sq}.
//   p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//   p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
struct AdamWStepParams {
  double lr, beta1, beta2, eps, weight_decay, bc1, bc2;
};
// "gather":  in = {self, index (i64, contiguous, out's shape)}; out[0] contiguous.
//            out[i..] = self[..index[i..] at dim..]. Index values already checked.
// "scatter_add": in = {index (i64 contiguous), src (contiguous, index's shape)};
//            out[0] is accumulated into in place: out[..index[i]..] += src[i].
struct DimParams { int64_t dim; };
// "batch_norm_fwd" (training statistics, fused): in = {x [N, C, L] contiguous,
//            weight [C], bias [C]}; out = {y [N, C, L], mean [C], invstd [C]},
//            invstd = 1 / sqrt(biased var + eps).
// "batch_norm_bwd": in = {gy [N, C, L], x, mean, invstd, weight};
//            out = {gx [N, C, L], gweight [C], gbias [C]}.
struct BatchNormParams { double eps; };
// Fused layer norm over rows (an optional override of the composite in
// nn/functional.cpp; params: BatchNormParams):
// "layer_norm_fwd": in = {x [M, K] contiguous, weight [K] or undefined, bias [K] or undefined}
//            -> out = {y [M, K], mean [M], rstd [M]}, rstd = 1 / sqrt(biased var + eps).
// "layer_norm_bwd": in = {gy [M, K], x, mean, rstd, weight or undefined}
//            -> out = {gx [M, K], gweight [K] or undefined, gbias [K] or undefined}.
// Scaled dot-product attention over BH independent (batch, head) slices,
// never materializing the Tq x Tk score matrix in the optimized kernels
// (online softmax over key blocks, as in FlashAttention). Params: AttentionParams.
// Causal: query i sees keys j <= i + (Tk - Tq), so a query block that ends a
// longer key sequence (a KV cache: Tq = 1) lines up with its last keys.
// "attention_fwd": in = {q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, D]}
//            -> out = {o [B, H, Tq, D], lse [B, H, Tq] contiguous}, lse = log sum_j
//            exp(scale q.k_j) over the keys the query sees (the softmax's normalizer,
//            kept for backward).
// "attention_bwd": in = {go [B, H, Tq, D], q, k, v, o, lse}
//            -> out = {gq [B, H, Tq, D], gk [B, H, Tk, D], gv [B, H, Tk, D]}.
// Every [B, H, T, D] operand, input or output, may have any strides with a unit
// stride along D: heads split out of a packed [B, T, 3 H D] projection are read
// in place, and o, gq, gk, gv may be written straight into [B, T, H, D] and
// [B, T, 3 H D] buffers (the transposes around attention cost no copies).
// kernels/strided.h: HeadSlices walks them.
struct AttentionParams {
  double scale;
  bool causal;
};
// (query, key) pairs attention computes: Tq Tk, or under the causal rule
// sum_i min(Tk, max(0, i + 1 + Tk - Tq)). Forward: 4 D FLOPs per pair
// (q.k and p v); backward: 10 D (the scores again, dP, dV, dK, dQ).
inline int64_t attention_pairs(int64_t Tq, int64_t Tk, bool causal) {
  if (!causal) return Tq * Tk;
  int64_t n = 0;
  for (int64_t i = 0; i < Tq; ++i) {
    int64_t seen = i + 1 + Tk - Tq;
    n += seen < 0 ? 0 : seen > Tk ? Tk : seen;
  }
  return n;
}
// Sparse (CSR) linear layer, W [out, in] with nnz stored entries. The batch is
// the innermost dim of every dense operand, so each stored entry is one AXPY
// (or dot) over B contiguous values:
// "csr_linear":          in = {xT [in, B], row_ptr i64 [out+1], col i64 [nnz], val [nnz]}
//                        -> out[0] yT [out, B] = W x^T.
//                        The input gradient dxT = W^T g^T is the same op on W^T's CSR.
// "csr_linear_bwd_weight": in = {gT [out, B], xT [in, B], row_ptr, col}
//                        -> out[0] dval [nnz]: dW at the stored positions only.
// "csr_build":           in = {mask f32 [out, in]} -> out = {row_ptr [out+1], col [nnz], flat_pos [nnz],
//                        row_ptr_t [in+1], col_t [nnz], flat_pos_t [nnz]} (all i64; nnz counted by
//                        the op layer): the CSR of the mask's nonzeros and of its transpose, with
//                        each entry's flat position in W (outputs ascend within a transposed row).
// "int8_gemm":           in = {a f32 [M, K] contiguous, b f32 [K, N] any strides} -> out[0] f32
//                        [M, N] = a @ b with a quantized by rows and b by columns (core/int8.h),
//                        int32 sums; every backend is bit-identical to the ref. Non-finite
//                        inputs throw, naming the row of A or column of B.
// All operands contiguous.
//
// Low-precision formats (core/autocast.h, core/fp8.h, core/int8.h); all
// operands contiguous:
// "bf16_round":          in = {x f32[, bias f32 [n]]} -> out[0] f32 (may be x): each value of x
//                        (plus bias[j] in column j of x viewed as [rows, n]) on the bf16 grid,
//                        nearest even.
// "stochastic_round":    in = {x f32, u f32 uniform in [0, 1), x's shape} -> out[0] f16 or bf16:
//                        the upper of x's two neighbours when u < (x - lo) / (hi - lo), else
//                        the lower (exact values, NaN and values beyond the range: nearest).
// "fp8_quantize":        in f32 -> out[0] u8 codes of x * scale (saturating, nearest even).
// "fp8_dequantize":      in u8 codes -> out[0] f32 = value(code) / scale.
// "fp8_round":           in f32 -> out[0] f32 = fp8_dequantize(fp8_quantize(x)).
struct Fp8Params {
  uint8_t format;  // Fp8Format: 0 e4m3, 1 e5m2
  double scale;
};
// "int8_quantize_rows":  in f32 [R, C] -> out = {q u8 [R, C] (int8 two's-complement bytes),
//                        scale f32 [R]}: scale_r = max|row r| / 127 (0 for an all-zero row),
//                        q = round(x / scale_r) to nearest even, clamped to [-127, 127]. A row
//                        holding a non-finite value throws, naming the row.
// "int8_dequantize_rows": in = {q u8 [R, C], scale f32 [R]} -> out[0] f32 [R, C] = q * scale_r.

}  // namespace brisk

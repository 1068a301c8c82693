// matmul: torch.matmul semantics on top of one batched GEMM primitive (bmm).
#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/flops.h"
#include "core/ops.h"

namespace brisk {

// C [B, M, N] = A [B, M, K] @ Bm [B, K, N]. A and Bm may be any strided views.
static Tensor bmm(const Tensor& a, const Tensor& b) {
  Tensor out = empty({a.size(0), a.size(1), b.size(2)}, TensorOptions(a.dtype(), a.device()));
  Tensor ins[2] = {a.detach(), b.detach()};
  Tensor outs[1] = {out};
  dispatch(opkey::gemm, a.device(), a.dtype(), KernelArgs{ins, outs, nullptr});
  count_flops(2 * a.size(0) * a.size(1) * a.size(2) * b.size(2));
  bool ra = a.requires_grad(), rb = b.requires_grad();
  return attach_grad(out, "BmmBackward", {a, b}, [=](const Tensor& g) {
    // dA = g @ B^T, dB = A^T @ g; transposes are stride swaps, no copies.
    return std::vector{ra ? bmm(g, b.transpose(1, 2)) : Tensor(),
                       rb ? bmm(a.transpose(1, 2), g) : Tensor()};
  });
}

Tensor matmul_epilogue(const Tensor& a, const Tensor& b, const Tensor& bias, bool round_bf16, bool relu) {
  check_defined("matmul_epilogue", a);
  check_defined("matmul_epilogue", b);
  BRISK_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "op matmul_epilogue: expected a [M, K] and b [K, N], got ", shape_str(a.shape()), " and ",
              shape_str(b.shape()));
  BRISK_CHECK(a.dtype() == DType::f32 && b.dtype() == DType::f32 && a.device() == b.device(),
              "op matmul_epilogue: expected f32 operands on one device, got ", a.dtype(), " on ", a.device(), " and ",
              b.dtype(), " on ", b.device());
  BRISK_CHECK(!bias.defined() || (bias.dtype() == DType::f32 && bias.dim() == 1 && bias.size(0) == b.size(1) &&
                                  bias.device() == a.device()),
              "op matmul_epilogue: bias must be f32 [", b.size(1), "] on ", a.device());
  Tensor out = empty({1, a.size(0), b.size(1)}, TensorOptions(a.dtype(), a.device()));
  Tensor ins[3] = {a.detach().unsqueeze(0), b.detach().unsqueeze(0),
                   bias.defined() ? bias.detach().contiguous() : Tensor()};
  Tensor outs[1] = {out};
  GemmParams p{round_bf16, relu};
  dispatch(opkey::gemm, a.device(), a.dtype(), KernelArgs{ins, outs, &p});
  count_flops(2 * a.size(0) * a.size(1) * b.size(1));
  return out.reshape({a.size(0), b.size(1)});
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined("matmul", a);
  check_defined("matmul", b);
  check_same_device("matmul", a, b);
  check_same_dtype("matmul", a, b);
  BRISK_CHECK(is_floating(a.dtype()), "op matmul: expected a floating dtype, got ", a.dtype());
  BRISK_CHECK(a.dim() >= 1 && b.dim() >= 1, "op matmul: both arguments need at least 1 dim, got ",
              shape_str(a.shape()), " and ", shape_str(b.shape()));
  if (a.dim() == 1 && b.dim() == 1) return matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  BRISK_CHECK(b.size(-2) == K, "op matmul: inner dimensions differ: ", shape_str(a.shape()), " @ ",
              shape_str(b.shape()), " (", K, " vs ", b.size(-2), ")");
  if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
    // [..., M, K] @ [K, N]: fold the batch into M, one big GEMM.
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    out_shape.push_back(N);
    Tensor r = bmm(a.reshape({1, -1, K}), b.unsqueeze(0));
    return r.reshape(out_shape);
  }
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape sa = batch, sb = batch;
  sa.insert(sa.end(), {M, K});
  sb.insert(sb.end(), {K, N});
  int64_t B = shape_numel(batch);
  Tensor a3 = a.expand(sa).reshape({B, M, K});
  Tensor b3 = b.expand(sb).reshape({B, K, N});
  Shape out_shape = batch;
  out_shape.insert(out_shape.end(), {M, N});
  return bmm(a3, b3).reshape(out_shape);
}

}  // namespace brisk

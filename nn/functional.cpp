// nn::functional implementations. Shapes are checked here, with messages that
// name the function, so users never see a lower-level op's complaint.
#include "nn/functional.h"

#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/flops.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include "core/autocast.h"
#include "core/int8.h"

#include <vector>

namespace brisk::nn::functional {

namespace {
double g_sparse_threshold = 0.9;  // crossover measured by bench/sparse_linear.cpp (docs/methods/pruning.md)

// The fraction of zeros of a parameter's mask, computed once per mask tensor
// (set_mask installs a new one whenever the pattern changes), one entry per
// masked layer: a model's linears alternate masks, so one cached value would
// be recomputed at every call.
double mask_sparsity(const Tensor& mask) {
  struct Seen {
    std::weak_ptr<TensorImpl> mask;
    double sparsity;
  };
  static thread_local std::vector<Seen> seen;
  for (const Seen& e : seen)
    if (e.mask.lock() == mask.impl_ptr()) return e.sparsity;
  seen.erase(std::remove_if(seen.begin(), seen.end(), [](const Seen& e) { return e.mask.expired(); }), seen.end());
  seen.push_back({mask.impl_ptr(), 1.0 - sum(mask).item() / double(mask.numel())});
  return seen.back().sparsity;
}
}  // namespace

void set_sparse_linear_threshold(double s) { g_sparse_threshold = s; }
double sparse_linear_threshold() { return g_sparse_threshold; }

Tensor sparse_linear(const Tensor& x, const Tensor& w, const Tensor& mask, const Tensor& b) {
  check_defined("sparse_linear", x);
  check_defined("sparse_linear", w);
  BRISK_CHECK(w.dim() == 2 && mask.shape() == w.shape(), "op sparse_linear: weight ", shape_str(w.shape()),
              " and mask ", shape_str(mask.shape()), " must be the same [out, in]");
  BRISK_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "op sparse_linear: input ", shape_str(x.shape()),
              " does not have ", w.size(1), " features");
  check_same_dtype("sparse_linear", x, w);
  int64_t out = w.size(0), in = w.size(1);
  // CSR of the mask's pattern, and CSR of its transpose (for the input
  // gradient: dx^T = W^T g^T is the forward kernel on the transpose, split
  // over input rows, so it scales across threads without write conflicts).
  // Cached per mask tensor (set_mask installs a new one whenever the pattern
  // changes), one entry per masked layer; values come from the current weights.
  struct Csr {
    std::weak_ptr<TensorImpl> mask;
    Tensor row_ptr, cols, flat_pos;      // rows = outputs
    Tensor row_ptr_t, cols_t, flat_pos_t;  // rows = inputs
  };
  static thread_local std::vector<Csr> caches;
  Csr* hit = nullptr;
  for (auto& c : caches)
    if (c.mask.lock() == mask.impl_ptr()) hit = &c;
  if (!hit) {
    caches.erase(std::remove_if(caches.begin(), caches.end(), [](const Csr& c) { return c.mask.expired(); }),
                 caches.end());
    Csr c;
    Tensor mc = mask.detach().contiguous().to(DType::f32);
    int64_t nz = mc.numel() - int64_t(sum(eq(mc, scalar_like(mc, 0.0))).item());
    c.row_ptr = empty({out + 1}, DType::i64);
    c.cols = empty({nz}, DType::i64);
    c.flat_pos = empty({nz}, DType::i64);
    c.row_ptr_t = empty({in + 1}, DType::i64);
    c.cols_t = empty({nz}, DType::i64);
    c.flat_pos_t = empty({nz}, DType::i64);
    Tensor ins[1] = {mc};
    Tensor outs[6] = {c.row_ptr, c.cols, c.flat_pos, c.row_ptr_t, c.cols_t, c.flat_pos_t};
    dispatch(opkey::csr_build, mc.device(), mc.dtype(), KernelArgs{ins, outs, nullptr});
    c.mask = mask.impl_ptr();
    caches.push_back(c);
    hit = &caches.back();
  }
  Tensor row_ptr = hit->row_ptr, cols = hit->cols, flat_pos = hit->flat_pos;
  Tensor row_ptr_t = hit->row_ptr_t, cols_t = hit->cols_t, flat_pos_t = hit->flat_pos_t;
  int64_t nnz = cols.numel();
  Tensor wflat = w.detach().reshape({-1});
  Tensor vals = gather(wflat, 0, flat_pos), vals_t = gather(wflat, 0, flat_pos_t);  // W's stored values, both orders
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  Tensor xT = x.detach().reshape({-1, in}).t().contiguous();  // [in, B]: batch innermost
  int64_t B = xT.size(1);
  Tensor yT = empty({out, B}, TensorOptions(x.dtype(), x.device()));
  {
    Tensor ins[4] = {xT, row_ptr, cols, vals};
    Tensor outs[1] = {yT};
    dispatch(opkey::csr_linear, x.device(), x.dtype(), KernelArgs{ins, outs, nullptr});
  }
  count_flops(2 * nnz * B);
  Shape ys = lead;
  ys.push_back(out);
  Shape xs = x.shape(), ws = w.shape();
  Tensor r = attach_grad(yT.t().reshape(ys), "SparseLinearBackward", {x, w}, [=](const Tensor& g) {
    Tensor gT = g.reshape({-1, out}).t().contiguous();  // [out, B]
    Tensor dxT = empty({in, B}, TensorOptions(g.dtype(), g.device()));
    {
      Tensor ins[4] = {gT, row_ptr_t, cols_t, vals_t};  // W^T in CSR: the forward kernel, rows = inputs
      Tensor outs[1] = {dxT};
      dispatch(opkey::csr_linear, g.device(), g.dtype(), KernelArgs{ins, outs, nullptr});
    }
    count_flops(4 * nnz * B);  // input and weight gradients
    Tensor dv = empty({nnz}, TensorOptions(g.dtype(), g.device()));
    {
      Tensor ins[4] = {gT, xT, row_ptr, cols};
      Tensor outs[1] = {dv};
      dispatch(opkey::csr_linear_bwd_weight, g.device(), g.dtype(), KernelArgs{ins, outs, nullptr});
    }
    // dense (a Parameter's grad is dense): dW at the stored positions, zero elsewhere (positions are unique)
    Tensor dw = scatter_add(zeros({ws[0] * ws[1]}, TensorOptions(g.dtype(), g.device())), 0, flat_pos, dv).reshape(ws);
    return std::vector{dxT.t().reshape(xs), dw};
  });
  if (b.defined()) {
    BRISK_CHECK(b.shape() == Shape({out}), "op sparse_linear: bias shape ", shape_str(b.shape()), " must be [", out, "]");
    r = r + b;
  }
  return r;
}

Tensor bias_relu(const Tensor& y, const Tensor& b) {
  check_defined("bias_relu", y);
  check_defined("bias_relu", b);
  BRISK_CHECK(y.dim() >= 1 && b.shape() == Shape({y.size(-1)}), "op bias_relu: bias ", shape_str(b.shape()),
              " must be [", y.dim() ? y.size(-1) : 0, "] for input ", shape_str(y.shape()));
  check_same_dtype("bias_relu", y, b);
  check_same_device("bias_relu", y, b);
  int64_t N = b.numel();
  Tensor out = empty(y.shape(), TensorOptions(y.dtype(), y.device()));
  {
    Tensor ins[2] = {y.detach().contiguous(), b.detach().contiguous()};
    Tensor outs[1] = {out};
    dispatch(opkey::bias_relu, y.device(), y.dtype(), KernelArgs{ins, outs, nullptr});
  }
  Tensor od = out.detach();
  return attach_grad(out, "BiasReluBackward", {y, b}, [od, N](const Tensor& g) {
    Tensor gy = relu_backward(g, od);
    return std::vector{gy, sum(gy.reshape({-1, N}), {0})};
  });
}

Tensor bias_gelu(const Tensor& y, const Tensor& b) {
  check_defined("bias_gelu", y);
  check_defined("bias_gelu", b);
  check_floating("bias_gelu", y);
  BRISK_CHECK(y.dim() >= 1 && b.shape() == Shape({y.size(-1)}), "op bias_gelu: bias ", shape_str(b.shape()),
              " must be [", y.dim() ? y.size(-1) : 0, "] for input ", shape_str(y.shape()));
  check_same_dtype("bias_gelu", y, b);
  check_same_device("bias_gelu", y, b);
  if (kernel_backends(opkey::bias_gelu_fwd, y.device().type, y.dtype()).empty() || y.numel() == 0)
    return bias_gelu_composite(y, b);
  int64_t N = b.numel();
  Tensor yd = y.detach().contiguous(), bd = b.detach().contiguous();
  Tensor out = empty(y.shape(), TensorOptions(y.dtype(), y.device()));
  {
    Tensor ins[2] = {yd, bd};
    Tensor outs[1] = {out};
    dispatch(opkey::bias_gelu_fwd, y.device(), y.dtype(), KernelArgs{ins, outs, nullptr});
  }
  return attach_grad(out, "BiasGeluBackward", {y, b}, [yd, bd, N](const Tensor& g) {
    Tensor gy = empty(yd.shape(), TensorOptions(g.dtype(), g.device()));
    Tensor ins[3] = {g.contiguous(), yd, bd};
    Tensor outs[1] = {gy};
    dispatch(opkey::bias_gelu_bwd, g.device(), g.dtype(), KernelArgs{ins, outs, nullptr});
    return std::vector{gy, sum(gy.reshape({-1, N}), {0})};
  });
}

Tensor bias_gelu_composite(const Tensor& y, const Tensor& b) { return gelu(y + b); }

Tensor linear_gelu(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (!b.defined()) return gelu(linear(x, w));
  return bias_gelu(linear(x, w), b);  // a masked weight too: the CSR path of linear needs no bias
}

Tensor int8_linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_defined("int8_linear", x);
  check_defined("int8_linear", w);
  BRISK_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), "op int8_linear: input ",
              shape_str(x.shape()), " and weight ", shape_str(w.shape()), " do not match");
  BRISK_CHECK(x.dtype() == DType::f32 && w.dtype() == DType::f32, "op int8_linear: expects f32 inputs, got ",
              x.dtype(), " and ", w.dtype());
  auto mm = [](const Tensor& a, const Tensor& bt) { return int8_matmul(a, bt); };  // "int8_gemm": VNNI where present
  int64_t in = w.size(1), out = w.size(0);
  Tensor x2 = x.detach().reshape({-1, in});
  Tensor y2 = mm(x2, w.detach().t());  // [B, out]: x by rows, W by output rows
  count_flops(2 * x2.size(0) * in * out);
  Shape ys(x.shape().begin(), x.shape().end() - 1);
  ys.push_back(out);
  Shape xs = x.shape();
  Tensor wd = w.detach();
  Tensor y = attach_grad(y2.reshape(ys), "Int8LinearBackward", {x, w}, [=](const Tensor& g) {
    Tensor g2 = g.reshape({-1, out}).contiguous();
    Tensor dx = mm(g2, wd).reshape(xs);             // g by rows, W by input columns
    Tensor dw = matmul(g2.t(), x2);                 // f32: the weight gradient keeps its precision
    count_flops(4 * g2.size(0) * in * out);
    return std::vector{dx, dw};
  });
  return b.defined() ? y + b : y;
}

static void check_linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  BRISK_CHECK(w.dim() == 2, "op linear: weight must be [out, in], got ", shape_str(w.shape()));
  BRISK_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "op linear: input ", shape_str(x.shape()),
              " has ", x.dim() ? x.size(-1) : 0, " features but weight ", shape_str(w.shape()),
              " expects ", w.size(1));
  check_same_dtype("linear", x, w);
  check_same_device("linear", x, w);
  if (b.defined())
    BRISK_CHECK(b.shape() == Shape({w.size(0)}), "op linear: bias shape ", shape_str(b.shape()),
                " must be [", w.size(0), "]");
}

// linear under bf16 autocast with its casts folded in (as conv2d's), on the
// CPU's native GEMM, which multiplies bf16 roundings of whatever it is handed
// (kernels/cpu/gemm/sgemm.h): x and w are not rounded by separate passes, the
// GEMM's epilogue adds the bias and rounds y, and in the backward the GEMMs
// round the output gradient while packing and round dx and dw (the gradients
// of bf16 tensors) in their epilogues; the bias gradient's column sums round
// each element as they add it. The same values and gradients as the explicit casts
// (autocast_cast on x, w and y, autocast_grad_cast's rounding of dx and dw)
// bit for bit.
//   x [..., in], w [out, in], b [out] or undefined -> y [..., out]
static Tensor linear_bf16_folded(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_linear(x, w, b);
  int64_t in = w.size(1), out = w.size(0);
  Shape ys(x.shape().begin(), x.shape().end() - 1), xs = x.shape();
  ys.push_back(out);
  Tensor x2 = x.detach().reshape({-1, in}), wd = w.detach();
  Tensor y;
  {
    AutocastGuard off({});
    GemmBf16Scope gemm(true);
    y = matmul_epilogue(x2, wd.t(), b.defined() ? b.detach() : Tensor(), /*round_bf16=*/true);  // [rows, out]
  }
  bool rx = x.requires_grad(), rw = w.requires_grad(), rb = b.defined() && b.requires_grad();
  std::vector<Tensor> inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  return attach_grad(y.reshape(ys), "LinearBf16Backward", inputs, [=](const Tensor& g) {
    Tensor g2 = g.reshape({-1, out});
    AutocastGuard off({});
    GemmBf16Scope gemm(true);
    std::vector<Tensor> r(inputs.size());
    if (rx) r[0] = matmul_epilogue(g2, wd, Tensor(), true).reshape(xs);  // dx = round(round(g) @ round(w))
    if (rw) r[1] = matmul_epilogue(g2.t(), x2, Tensor(), true);           // dw = round(round(g)^T @ round(x))
    if (rb) r[2] = sum_rounded_bf16(g2, {0});                            // db = sum(round(g))
    return r;
  });
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_defined("linear", x);
  check_defined("linear", w);
  if (autocast_enabled() && x.dtype() == DType::f32 && w.dtype() == DType::f32) {
    const AutocastPolicy& pol = autocast_policy();
    if (pol.kind == LowPrecision::int8) return int8_linear(x, w, b);
    if (pol.kind == LowPrecision::bf16 && pol.rounding == Rounding::nearest && autocast_fold_casts() &&
        x.device().type == DeviceType::cpu && gemm_backend() == "native" &&
        (!b.defined() || (b.dtype() == DType::f32 && b.device() == x.device())))
      return linear_bf16_folded(x, w, b);
    Tensor xc = autocast_cast(x, CastRole::activation), wc = autocast_cast(w, CastRole::weight);
    Tensor y;
    {
      bool bf16 = autocast_policy().kind == LowPrecision::bf16;
      AutocastGuard off({});
      GemmBf16Scope gemm(bf16);  // operands are bf16 values: the bf16 dot-product GEMM may take them
      y = linear(xc, wc, b);
    }
    return autocast_cast(y, CastRole::output);
  }
  if (auto* m = w.unsafe_impl()->mask.get(); m && g_sparse_threshold <= 1.0 && w.dim() == 2 &&
                                             w.device().type == DeviceType::cpu && x.dtype() == w.dtype()) {
    Tensor mask(w.unsafe_impl()->mask);
    if (mask_sparsity(mask) >= g_sparse_threshold && x.dim() >= 1 && x.size(-1) == w.size(1))
      return sparse_linear(x, w, mask, b);
  }
  check_linear(x, w, b);
  // One node for x @ W^T: the weight gradient is computed as g^T @ x straight
  // into W's [out, in] layout (through w.t()'s autograd it would come out
  // transposed and cost a transposing copy per step). On the CPU's native f32
  // GEMM the bias is the GEMM's epilogue, added to each block of y while it
  // is in cache (the same bits as y + b, without a second pass over y).
  bool fuse_bias = b.defined() && x.dtype() == DType::f32 && b.dtype() == DType::f32 &&
                   x.device().type == DeviceType::cpu && b.device() == x.device() && gemm_backend() == "native";
  int64_t in = w.size(1), out = w.size(0);
  Shape lead(x.shape().begin(), x.shape().end() - 1), ys = lead;
  ys.push_back(out);
  Tensor x2 = x.detach().reshape({-1, in}), wd = w.detach();
  Tensor y;
  {
    NoGradGuard ng;
    y = (fuse_bias ? matmul_epilogue(x2, wd.t(), b.detach(), /*round_bf16=*/false) : matmul(x2, wd.t())).reshape(ys);
  }
  bool rx = x.requires_grad(), rw = w.requires_grad(), rb = fuse_bias && b.requires_grad();
  Shape xs = x.shape();
  std::vector<Tensor> inputs{x, w};
  if (fuse_bias) inputs.push_back(b);
  y = attach_grad(y, "LinearBackward", inputs, [=](const Tensor& g) {
    Tensor g2 = g.reshape({-1, out});
    std::vector<Tensor> r{rx ? matmul(g2, wd).reshape(xs) : Tensor(), rw ? matmul(g2.t(), x2) : Tensor()};
    if (fuse_bias) r.push_back(rb ? sum(g2, {0}) : Tensor());  // [out]
    return r;
  });
  return b.defined() && !fuse_bias ? y + b : y;
}

// relu(x @ W^T + b). On the CPU's native f32 GEMM (no autocast, no mask on W)
// the bias and the ReLU are the GEMM's epilogue, applied to each block of y
// while it is in cache, instead of a second pass over y (the same bits as
// bias_relu(linear(x, w), b)); the backward is bias_relu's then linear's.
//   x [..., in], w [out, in], b [out] -> y [..., out]
Tensor linear_relu(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (!b.defined()) return relu(linear(x, w));
  check_defined("linear_relu", x);
  check_defined("linear_relu", w);
  bool fused = !autocast_enabled() && !w.unsafe_impl()->mask && x.dtype() == DType::f32 &&
               w.dtype() == DType::f32 && b.dtype() == DType::f32 && x.device().type == DeviceType::cpu &&
               w.device() == x.device() && b.device() == x.device() && gemm_backend() == "native";
  if (!fused) return bias_relu(linear(x, w), b);
  check_linear(x, w, b);
  int64_t in = w.size(1), out = w.size(0);
  Shape ys(x.shape().begin(), x.shape().end() - 1), xs = x.shape();
  ys.push_back(out);
  Tensor x2 = x.detach().reshape({-1, in}), wd = w.detach();
  Tensor y = matmul_epilogue(x2, wd.t(), b.detach(), /*round_bf16=*/false, /*relu=*/true).reshape(ys);
  Tensor yd = y.detach();
  bool rx = x.requires_grad(), rw = w.requires_grad(), rb = b.requires_grad();
  return attach_grad(y, "LinearReluBackward", {x, w, b}, [=](const Tensor& g) {
    Tensor gy = relu_backward(g, yd).reshape({-1, out});  // [rows, out]
    return std::vector{rx ? matmul(gy, wd).reshape(xs) : Tensor(), rw ? matmul(gy.t(), x2) : Tensor(),
                       rb ? sum(gy, {0}) : Tensor()};
  });
}

static Geom2d make_geom(const char* op, const Tensor& x, Pair k, Pair s, Pair p, Pair d) {
  check_defined(op, x);
  BRISK_CHECK(x.dim() == 4, "op ", op, ": expected input [N, C, H, W], got ", shape_str(x.shape()));
  check_floating(op, x);
  Geom2d g{x.size(0), x.size(1), x.size(2), x.size(3), k.h, k.w, s.h, s.w, p.h, p.w, d.h, d.w, 0, 0};
  BRISK_CHECK(k.h > 0 && k.w > 0 && s.h > 0 && s.w > 0 && d.h > 0 && d.w > 0 && p.h >= 0 && p.w >= 0,
              "op ", op, ": kernel ", k.h, "x", k.w, ", stride ", s.h, "x", s.w, ", dilation ", d.h,
              "x", d.w, " must be positive and padding ", p.h, "x", p.w, " non-negative");
  g.Ho = (g.H + 2 * p.h - d.h * (k.h - 1) - 1) / s.h + 1;
  g.Wo = (g.W + 2 * p.w - d.w * (k.w - 1) - 1) / s.w + 1;
  BRISK_CHECK(g.H + 2 * p.h >= d.h * (k.h - 1) + 1 && g.W + 2 * p.w >= d.w * (k.w - 1) + 1, "op ", op,
              ": kernel ", k.h, "x", k.w, " (dilation ", d.h, "x", d.w, ") is larger than the padded input ",
              g.H + 2 * p.h, "x", g.W + 2 * p.w, " (input shape ", shape_str(x.shape()), ")");
  return g;
}

// The fused kernels (kernels/cpu/conv2d.cpp) behind one autograd node; returns
// an undefined tensor when no kernel accepts (then the composite runs).
// bf16: autocast's bf16 casts of x, w and y folded into the kernels
// (ConvParams::bf16), which also round the gradients of x and w (in cache,
// where a cast's backward would be one more pass over dx).
// pool: the output is max_pool2d(y, 2) from conv2d_pool_fwd (CPU only), with
// relu the ReLU of that (its window codes mark the windows it zeroes); its
// backward hands the kernels the pooled gradient and the window codes, and
// each expands it one sample at a time, in cache.
static Tensor conv2d_fused(const Tensor& x, const Tensor& w, const Tensor& b, const Geom2d& g, bool relu,
                           bool bf16 = false, bool pool = false) {
  int64_t O = w.size(0);
  ConvParams p{g, relu, bf16};
  Geom2d pg = max_pool_2x2_geom(g, O);
  Tensor xc = x.detach().contiguous(), wc = w.detach().contiguous();
  Tensor y = pool ? empty({g.N, O, pg.Ho, pg.Wo}, TensorOptions(x.dtype(), x.device()))
                  : empty({g.N, O, g.Ho, g.Wo}, TensorOptions(x.dtype(), x.device()));
  Tensor code = pool ? empty(y.shape(), TensorOptions(DType::u8, x.device())) : Tensor();  // window codes
  {
    Tensor ins[3] = {xc, wc, b.defined() ? b.detach().contiguous() : Tensor()};
    Tensor outs[2] = {y, code};
    if (!try_dispatch(pool ? opkey::conv2d_pool_fwd : opkey::conv2d_fwd, x.device(), x.dtype(),
                      KernelArgs{ins, std::span<Tensor>(outs, pool ? 2 : 1), &p}))
      return Tensor();
  }
  int64_t conv_flops = 2 * g.N * O * (wc.numel() / O) * g.Ho * g.Wo;  // per pass
  count_flops(conv_flops);
  bool rx = x.requires_grad(), rw = w.requires_grad(), rb = b.defined() && b.requires_grad();
  std::vector<Tensor> inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  Tensor yd = y.detach();
  Shape ws = w.shape();
  const char* node = pool ? "Conv2dMaxPool2dBackward" : relu ? "Conv2dReluBackward" : "Conv2dBackward";
  return attach_grad(y, node, inputs, [=](const Tensor& gr) {
    // Pooled: the kernels take the pooled gradient and the window codes (their pooled form).
    Tensor gy = pool ? gr.contiguous() : relu ? relu_backward(gr, yd) : gr.contiguous();
    std::optional<GemmBf16Scope> gemm_bf16;  // the folded casts' rounding GEMM, as in the forward
    if (p.bf16) gemm_bf16.emplace(true);
    std::vector<Tensor> r(inputs.size());
    if (rx) {
      r[0] = empty({g.N, g.C, g.H, g.W}, TensorOptions(gy.dtype(), gy.device()));
      Tensor ins[3] = {gy, wc, code};
      Tensor outs[1] = {r[0]};
      dispatch(opkey::conv2d_bwd_input, gy.device(), gy.dtype(), KernelArgs{ins, outs, &p});
      count_flops(conv_flops);
    }
    if (rw || rb) {
      Tensor gw = empty({O, wc.numel() / O}, TensorOptions(gy.dtype(), gy.device()));
      Tensor gb = b.defined() ? empty({O}, TensorOptions(gy.dtype(), gy.device())) : Tensor();
      Tensor ins[3] = {gy, xc, code};
      Tensor outs[2] = {gw, gb};
      dispatch(opkey::conv2d_bwd_weight, gy.device(), gy.dtype(), KernelArgs{ins, outs, &p});
      count_flops(conv_flops);
      if (rw) r[1] = gw.reshape(ws);
      if (rb) r[2] = gb;
    }
    return r;
  });
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Pair stride, Pair padding,
              Pair dilation, int64_t groups) {
  return conv2d_relu(x, w, b, stride, padding, dilation, groups, false);
}

// Shape checks shared by the fused and composite paths; returns the geometry.
static Geom2d check_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Pair stride, Pair padding,
                           Pair dilation, int64_t groups) {
  check_defined("conv2d", w);
  BRISK_CHECK(w.dim() == 4, "op conv2d: weight must be [O, C/groups, kh, kw], got ", shape_str(w.shape()));
  BRISK_CHECK(groups >= 1, "op conv2d: groups must be >= 1, got ", groups);
  Geom2d g = make_geom("conv2d", x, Pair(w.size(2), w.size(3)), stride, padding, dilation);
  check_same_dtype("conv2d", x, w);
  check_same_device("conv2d", x, w);
  int64_t O = w.size(0);
  BRISK_CHECK(g.C % groups == 0 && O % groups == 0, "op conv2d: in_channels ", g.C, " and out_channels ",
              O, " must both be divisible by groups ", groups);
  BRISK_CHECK(w.size(1) * groups == g.C, "op conv2d: input has ", g.C, " channels but weight ",
              shape_str(w.shape()), " with groups=", groups, " expects ", w.size(1) * groups);
  if (b.defined())
    BRISK_CHECK(b.shape() == Shape({O}), "op conv2d: bias shape ", shape_str(b.shape()), " must be [", O, "]");
  return g;
}

Tensor conv2d_relu(const Tensor& x, const Tensor& w, const Tensor& b, Pair stride, Pair padding,
                   Pair dilation, int64_t groups, bool relu) {
  if (autocast_enabled() && x.defined() && w.defined() && x.dtype() == DType::f32 && w.dtype() == DType::f32) {
    const AutocastPolicy& pol = autocast_policy();
    if (pol.kind == LowPrecision::bf16 && pol.rounding == Rounding::nearest && autocast_fold_casts() && groups == 1 &&
        gemm_backend() == "native") {
      // The casts folded into the kernel: no rounding passes over x, w and y
      // (the bf16 GEMM rounds x and w while packing, or the f32 GEMM takes
      // rounded copies where the CPU has no bf16 dot products; the epilogue
      // rounds y; the backward kernels round dx and dw): the same values and
      // gradients as the explicit casts below, which run where no kernel
      // takes folded casts (cuDNN).
      Geom2d g = check_conv2d(x, w, b, stride, padding, dilation, groups);
      Tensor y;
      {
        AutocastGuard off({});
        GemmBf16Scope gemm(true);
        y = conv2d_fused(x, w, b, g, relu, true);
      }
      if (y.defined()) return y;
    }
    Tensor xc = autocast_cast(x, CastRole::activation), wc = autocast_cast(w, CastRole::weight);
    Tensor y;
    {
      bool bf16 = autocast_policy().kind == LowPrecision::bf16;
      AutocastGuard off({});
      GemmBf16Scope gemm(bf16);
      y = conv2d_relu(xc, wc, b, stride, padding, dilation, groups, relu);
    }
    return autocast_cast(y, CastRole::output);
  }
  Geom2d g = check_conv2d(x, w, b, stride, padding, dilation, groups);
  // The fused op (one autograd node, kernels/cpu/conv2d.cpp; the ref kernel
  // for f64) unless an f32 conv must go through the OpenBLAS GEMM switch.
  if (groups == 1 && !(x.dtype() == DType::f32 && gemm_backend() != "native"))
    if (Tensor y = conv2d_fused(x, w, b, g, relu); y.defined()) return y;
  return conv2d_composite(x, w, b, stride, padding, dilation, groups, relu);
}

Tensor conv2d_max_pool2d(const Tensor& x, const Tensor& w, const Tensor& b, Pair stride, Pair padding,
                         Pair dilation, int64_t groups, bool relu) {
  auto unfused = [&] {
    Tensor y = max_pool2d(conv2d(x, w, b, stride, padding, dilation, groups), 2);
    return relu ? brisk::relu(y) : y;
  };
  Geom2d g = check_conv2d(x, w, b, stride, padding, dilation, groups);
  if (groups != 1 || g.Ho < 2 || g.Wo < 2) return unfused();
  if (autocast_enabled()) {
    const AutocastPolicy& pol = autocast_policy();
    if (x.dtype() == DType::f32 && w.dtype() == DType::f32 && pol.kind == LowPrecision::bf16 &&
        pol.rounding == Rounding::nearest && autocast_fold_casts() && gemm_backend() == "native") {
      Tensor y;  // as conv2d_relu's folded casts
      {
        AutocastGuard off({});
        GemmBf16Scope gemm(true);
        y = conv2d_fused(x, w, b, g, relu, true, true);
      }
      if (y.defined()) return y;
    }
    return unfused();
  }
  if (!(x.dtype() == DType::f32 && gemm_backend() != "native"))
    if (Tensor y = conv2d_fused(x, w, b, g, relu, false, true); y.defined()) return y;
  return unfused();
}

Tensor conv2d_composite(const Tensor& x, const Tensor& w, const Tensor& b, Pair stride, Pair padding,
                        Pair dilation, int64_t groups, bool relu) {
  Geom2d g = check_conv2d(x, w, b, stride, padding, dilation, groups);
  int64_t O = w.size(0), L = g.Ho * g.Wo, ckk = w.size(1) * g.kh * g.kw;
  Tensor cols = im2col(x, g);  // [N, C*kh*kw, L]
  Tensor y;
  if (groups == 1) {
    y = matmul(w.reshape({O, ckk}), cols);  // [O, Ckk] @ [N, Ckk, L] -> [N, O, L]
  } else {
    Tensor cg = cols.reshape({g.N, groups, ckk, L});
    Tensor wg = w.reshape({groups, O / groups, ckk});
    y = matmul(wg, cg);  // [N, groups, O/groups, L]
  }
  y = y.reshape({g.N, O, g.Ho, g.Wo});
  if (b.defined()) y = y + b.reshape({1, O, 1, 1});
  return relu ? brisk::relu(y) : y;
}

// Pooling: forward kernel plus a backward kernel, wrapped in one autograd node.
static Tensor pool(const char* op, const Tensor& x, const Geom2d& g) {
  Tensor xc = x.detach().contiguous();
  Tensor y = empty({g.N, g.C, g.Ho, g.Wo}, TensorOptions(x.dtype(), x.device()));
  std::string fwd = op, bwd = fwd + "_backward";
  bool is_max = fwd == "max_pool2d";
  Tensor idx;
  {
    Tensor ins[1] = {xc};
    if (is_max) {
      idx = empty(y.shape(), TensorOptions(DType::i64, x.device()));
      Tensor outs[2] = {y, idx};
      dispatch(op, x.device(), x.dtype(), KernelArgs{ins, outs, &g});
    } else {
      Tensor outs[1] = {y};
      dispatch(op, x.device(), x.dtype(), KernelArgs{ins, outs, &g});
    }
  }
  return attach_grad(y, is_max ? "MaxPool2dBackward" : "AvgPool2dBackward", {x}, [=](const Tensor& gr) {
    Tensor gx = empty({g.N, g.C, g.H, g.W}, TensorOptions(gr.dtype(), gr.device()));
    Tensor outs[1] = {gx};
    if (is_max) {
      Tensor ins[2] = {gr.contiguous(), idx};
      dispatch(bwd.c_str(), gr.device(), gr.dtype(), KernelArgs{ins, outs, &g});
    } else {
      Tensor ins[1] = {gr.contiguous()};
      dispatch(bwd.c_str(), gr.device(), gr.dtype(), KernelArgs{ins, outs, &g});
    }
    return std::vector{gx};
  });
}

Tensor max_pool2d(const Tensor& x, Pair kernel, std::optional<Pair> stride, Pair padding) {
  Geom2d g = make_geom("max_pool2d", x, kernel, stride.value_or(kernel), padding, 1);
  BRISK_CHECK(padding.h * 2 <= kernel.h && padding.w * 2 <= kernel.w, "op max_pool2d: padding ",
              padding.h, "x", padding.w, " must be at most half of kernel ", kernel.h, "x", kernel.w);
  return pool("max_pool2d", x, g);
}

Tensor avg_pool2d(const Tensor& x, Pair kernel, std::optional<Pair> stride, Pair padding) {
  Geom2d g = make_geom("avg_pool2d", x, kernel, stride.value_or(kernel), padding, 1);
  BRISK_CHECK(padding.h * 2 <= kernel.h && padding.w * 2 <= kernel.w, "op avg_pool2d: padding ",
              padding.h, "x", padding.w, " must be at most half of kernel ", kernel.h, "x", kernel.w);
  return pool("avg_pool2d", x, g);
}

Tensor adaptive_avg_pool2d(const Tensor& x, Pair out) {
  BRISK_CHECK(out.h > 0 && out.w > 0, "op adaptive_avg_pool2d: output size must be positive, got ",
              out.h, "x", out.w);
  Geom2d g = make_geom("adaptive_avg_pool2d", x, 1, 1, 0, 1);
  g.Ho = out.h;
  g.Wo = out.w;
  return pool("adaptive_avg_pool2d", x, g);
}

// Checks shared by both batch_norm paths; returns C.
static int64_t check_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                                const Tensor& weight, const Tensor& bias) {
  check_defined("batch_norm", x);
  check_floating("batch_norm", x);
  BRISK_CHECK(x.dim() >= 2, "op batch_norm: expected input [N, C, ...], got ", shape_str(x.shape()));
  int64_t C = x.size(1);
  for (auto [t, what] : {std::pair{&running_mean, "running_mean"}, {&running_var, "running_var"},
                         {&weight, "weight"}, {&bias, "bias"}})
    if (t->defined()) {
      BRISK_CHECK(t->shape() == Shape({C}), "op batch_norm: ", what, " shape ", shape_str(t->shape()),
                  " must be [", C, "] for input ", shape_str(x.shape()));
      check_same_dtype("batch_norm", x, *t);
    }
  return C;
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum, double eps) {
  int64_t C = check_batch_norm(x, running_mean, running_var, weight, bias);
  if (!training) return batch_norm_composite(x, running_mean, running_var, weight, bias, false, momentum, eps);
  int64_t N = x.size(0), L = x.numel() / std::max<int64_t>(N * C, 1);
  BRISK_CHECK(N * L > 1, "op batch_norm: expected more than 1 value per channel when training, got input ",
              shape_str(x.shape()));
  // Fused training-mode kernel; gradients for x, weight and bias in one backward.
  Tensor w = weight.defined() ? weight : ones({C}, TensorOptions(x.dtype(), x.device()));
  Tensor b = bias.defined() ? bias : zeros({C}, TensorOptions(x.dtype(), x.device()));
  Tensor x3 = x.detach().contiguous().reshape({N, C, L});
  Tensor y = empty({N, C, L}, TensorOptions(x.dtype(), x.device()));
  Tensor mu = empty({C}, TensorOptions(x.dtype(), x.device())), invstd = empty_like(mu);
  BatchNormParams p{eps};
  {
    Tensor ins[3] = {x3, w.detach(), b.detach()};
    Tensor outs[3] = {y, mu, invstd};
    dispatch(opkey::batch_norm_fwd, x.device(), x.dtype(), KernelArgs{ins, outs, &p});
  }
  if (running_mean.defined() && running_var.defined()) {
    NoGradGuard ng;
    Tensor rm = running_mean, rv = running_var;  // handles: updates land in the caller's buffers
    Tensor var_b = 1.0 / (invstd * invstd) - eps;
    rm.copy_(running_mean * (1.0 - momentum) + mu * momentum);
    rv.copy_(running_var * (1.0 - momentum) + var_b * (momentum * double(N * L) / double(N * L - 1)));
  }
  Shape xs = x.shape();
  std::vector<Tensor> inputs{x};
  if (weight.defined()) inputs.push_back(weight);
  if (bias.defined()) inputs.push_back(bias);
  bool has_w = weight.defined(), has_b = bias.defined();
  Tensor wd = w.detach();
  Tensor out = attach_grad(y.reshape(xs), "BatchNormBackward", inputs, [=](const Tensor& g) {
    Tensor gx = empty({N, C, L}, TensorOptions(g.dtype(), g.device()));
    Tensor gw = empty({C}, TensorOptions(g.dtype(), g.device())), gb = empty_like(gw);
    Tensor ins[5] = {g.contiguous().reshape({N, C, L}), x3, mu, invstd, wd};
    Tensor outs[3] = {gx, gw, gb};
    dispatch(opkey::batch_norm_bwd, g.device(), g.dtype(), KernelArgs{ins, outs, nullptr});
    std::vector<Tensor> r{gx.reshape(xs)};
    if (has_w) r.push_back(gw);
    if (has_b) r.push_back(gb);
    return r;
  });
  return out;
}

Tensor batch_norm_composite(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                            const Tensor& weight, const Tensor& bias, bool training, double momentum,
                            double eps) {
  int64_t C = check_batch_norm(x, running_mean, running_var, weight, bias);
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  Shape bshape(size_t(x.dim()), 1);
  bshape[1] = C;
  Tensor mu, v;
  if (training) {
    int64_t n = x.numel() / std::max<int64_t>(C, 1);
    BRISK_CHECK(n > 1, "op batch_norm: expected more than 1 value per channel when training, got input ",
                shape_str(x.shape()));
    mu = mean(x, dims, true);
    v = var(x, dims, 0, true);
    if (running_mean.defined() && running_var.defined()) {
      NoGradGuard ng;
      Tensor m = scalar_like(running_mean, momentum);
      Tensor rm = running_mean, rv = running_var;  // handles: updates land in the caller's buffers
      rm.copy_(running_mean * (1.0 - momentum) + m * mu.detach().reshape({C}));
      rv.copy_(running_var * (1.0 - momentum) +
                        m * v.detach().reshape({C}) * (double(n) / double(n - 1)));
    }
  } else {
    BRISK_CHECK(running_mean.defined() && running_var.defined(),
                "op batch_norm: eval mode needs running_mean and running_var");
    mu = running_mean.reshape(bshape);
    v = running_var.reshape(bshape);
  }
  Tensor y = (x - mu) * rsqrt(v + eps);
  if (weight.defined()) y = y * weight.reshape(bshape);
  if (bias.defined()) y = y + bias.reshape(bshape);
  return y;
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  check_defined("layer_norm", x);
  check_floating("layer_norm", x);
  int64_t k = int64_t(normalized_shape.size());
  BRISK_CHECK(k >= 1 && k <= x.dim() &&
                  Shape(x.shape().end() - k, x.shape().end()) == normalized_shape,
              "op layer_norm: normalized_shape ", shape_str(normalized_shape),
              " must match the trailing dims of input ", shape_str(x.shape()));
  if (weight.defined())
    BRISK_CHECK(weight.shape() == normalized_shape, "op layer_norm: weight shape ",
                shape_str(weight.shape()), " must be ", shape_str(normalized_shape));
  if (bias.defined())
    BRISK_CHECK(bias.shape() == normalized_shape, "op layer_norm: bias shape ", shape_str(bias.shape()),
                " must be ", shape_str(normalized_shape));
  if (Tensor y = layer_norm_fused(x, normalized_shape, weight, bias, eps); y.defined()) return y;
  return layer_norm_composite(x, normalized_shape, weight, bias, eps);
}

// The fused kernel where a backend has one for this device and dtype (the
// optimized CPU and CUDA kernels, with the ref as their oracle); else undefined.
Tensor layer_norm_fused(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                        const Tensor& bias, double eps) {
  if (kernel_backends(opkey::layer_norm_fwd, x.device().type, x.dtype()).empty()) return Tensor();
  if ((weight.defined() && weight.dtype() != x.dtype()) || (bias.defined() && bias.dtype() != x.dtype()))
    return Tensor();
  int64_t K = shape_numel(normalized_shape), M = K > 0 ? x.numel() / K : 0;
  if (M == 0 || K == 0) return Tensor();
  Tensor x2 = x.detach().contiguous().reshape({M, K});
  Tensor wd = weight.defined() ? weight.detach().contiguous().reshape({K}) : Tensor();
  Tensor bd = bias.defined() ? bias.detach().contiguous().reshape({K}) : Tensor();
  TensorOptions o(x.dtype(), x.device());
  Tensor y = empty({M, K}, o), mu = empty({M}, o), rstd = empty({M}, o);
  BatchNormParams p{eps};
  {
    Tensor ins[3] = {x2, wd, bd};
    Tensor outs[3] = {y, mu, rstd};
    if (!try_dispatch(opkey::layer_norm_fwd, x.device(), x.dtype(), KernelArgs{ins, outs, &p})) return Tensor();
  }
  std::vector<Tensor> inputs{x};
  if (weight.defined()) inputs.push_back(weight);
  if (bias.defined()) inputs.push_back(bias);
  bool has_w = weight.defined(), has_b = bias.defined();
  Shape xs = x.shape(), ws = normalized_shape;
  return attach_grad(y.reshape(xs), "LayerNormBackward", inputs, [=](const Tensor& g) {
    TensorOptions go(g.dtype(), g.device());
    Tensor gx = empty({M, K}, go);
    Tensor gw = has_w ? empty({K}, go) : Tensor(), gb = has_b ? empty({K}, go) : Tensor();
    Tensor ins[5] = {g.contiguous().reshape({M, K}), x2, mu, rstd, wd};
    Tensor outs[3] = {gx, gw, gb};
    dispatch(opkey::layer_norm_bwd, g.device(), g.dtype(), KernelArgs{ins, outs, &p});
    std::vector<Tensor> r{gx.reshape(xs)};
    if (has_w) r.push_back(gw.reshape(ws));
    if (has_b) r.push_back(gb.reshape(ws));
    return r;
  });
}

// mean/var/rsqrt from primitive ops: the definition the fused kernels are checked against.
Tensor layer_norm_composite(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                            const Tensor& bias, double eps) {
  int64_t k = int64_t(normalized_shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - k; d < x.dim(); ++d) dims.push_back(d);
  Tensor mu = mean(x, dims, true);
  Tensor v = var(x, dims, 0, true);
  Tensor y = (x - mu) * rsqrt(v + eps);
  if (weight.defined()) y = y * weight;
  if (bias.defined()) y = y + bias;
  return y;
}

static void check_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  const char* op = "scaled_dot_product_attention";
  check_defined(op, q);
  check_defined(op, k);
  check_defined(op, v);
  check_floating(op, q);
  check_same_dtype(op, q, k);
  check_same_dtype(op, q, v);
  check_same_device(op, q, k);
  check_same_device(op, q, v);
  BRISK_CHECK(q.dim() >= 2 && k.dim() == q.dim() && k.shape() == v.shape(), "op ", op,
              ": expected q [..., Tq, D] and k, v [..., Tk, D] with the same leading dims, got q ",
              shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  for (int64_t d = 0; d + 2 < q.dim(); ++d)
    BRISK_CHECK(q.size(d) == k.size(d), "op ", op, ": leading dims of q ", shape_str(q.shape()), " and k ",
                shape_str(k.shape()), " differ");
  BRISK_CHECK(q.size(-1) == k.size(-1) && q.size(-1) > 0, "op ", op, ": q's head dim ", q.size(-1),
              " must equal k's ", k.size(-1), " and be > 0");
}

// An attention operand as the kernels' [B, H, T, D] (core/kernel_params.h): a
// 4-D view with a unit stride along D passes as it is (heads split out of a
// packed projection are read in place); anything else is made contiguous and
// viewed as [1, B H, T, D].
static Tensor as_heads(const Tensor& t) {
  if (t.dim() == 4 && t.stride(3) == 1) return t.detach();
  Tensor c = t.detach().contiguous();
  int64_t T = c.size(-2), D = c.size(-1);
  return c.reshape({1, c.numel() / (T * D), T, D});
}

// Runs attention_fwd: o (a [B, H, Tq, D] view the caller allocated, any
// strides with a unit one along D) gets the output; returns lse [B, H, Tq].
static Tensor attention_forward(const Tensor& q4, const Tensor& k4, const Tensor& v4, const Tensor& o4,
                                const AttentionParams& p) {
  Tensor lse = empty({q4.size(0), q4.size(1), q4.size(2)}, TensorOptions(q4.dtype(), q4.device()));
  count_flops(4 * q4.size(0) * q4.size(1) * q4.size(3) * attention_pairs(q4.size(2), k4.size(2), p.causal));
  Tensor ins[3] = {q4, k4, v4};
  Tensor outs[2] = {o4, lse};
  dispatch(opkey::attention_fwd, q4.device(), q4.dtype(), KernelArgs{ins, outs, &p});
  return lse;
}

// Runs attention_bwd into the views gq4, gk4, gv4 (any strides, unit along D).
static void attention_backward(const Tensor& g4, const Tensor& q4, const Tensor& k4, const Tensor& v4,
                               const Tensor& o4, const Tensor& lse, const Tensor& gq4, const Tensor& gk4,
                               const Tensor& gv4, const AttentionParams& p) {
  Tensor ins[6] = {g4, q4, k4, v4, o4, lse};
  Tensor outs[3] = {gq4, gk4, gv4};
  dispatch(opkey::attention_bwd, g4.device(), g4.dtype(), KernelArgs{ins, outs, &p});
  count_flops(10 * q4.size(0) * q4.size(1) * q4.size(3) * attention_pairs(q4.size(2), k4.size(2), p.causal));
}

static double attention_scale(std::optional<double> scale, int64_t D, const char* op) {
  double sc = scale.value_or(1.0 / std::sqrt(double(D)));
  BRISK_CHECK(std::isfinite(sc), "op ", op, ": scale must be finite, got ", sc);
  return sc;
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                    std::optional<double> scale) {
  check_attention(q, k, v);
  int64_t D = q.size(-1), Tq = q.size(-2), Tk = k.size(-2);
  double sc = attention_scale(scale, D, "scaled_dot_product_attention");
  int64_t BH = Tq > 0 ? q.numel() / (Tq * D) : 0;
  if (kernel_backends(opkey::attention_fwd, q.device().type, q.dtype()).empty() || BH == 0 || Tq == 0 || Tk == 0)
    return scaled_dot_product_attention_composite(q, k, v, causal, sc);
  Tensor q4 = as_heads(q), k4 = as_heads(k), v4 = as_heads(v);
  TensorOptions o(q.dtype(), q.device());
  // [B, H, Tq, D] queries write a [B, Tq, H, D] buffer (returned as its
  // transposed view, as PyTorch's flash attention does): the usual
  // y.transpose(1, 2).reshape({B, Tq, H D}) that follows is then free.
  Tensor out = q.dim() == 4 ? empty({q.size(0), Tq, q.size(1), D}, o).transpose(1, 2) : empty(q4.shape(), o);
  AttentionParams p{sc, causal};
  Tensor lse = attention_forward(q4, k4, v4, out, p);
  Shape qs = q.shape(), ks = k.shape();
  return attach_grad(out.reshape(qs), "AttentionBackward", {q, k, v}, [=](const Tensor& g) {
    TensorOptions go(g.dtype(), g.device());
    Tensor gq = empty(q4.shape(), go), gk = empty(k4.shape(), go), gv = empty(k4.shape(), go);
    attention_backward(as_heads(g.reshape(q4.shape())), q4, k4, v4, out, lse, gq, gk, gv, p);
    return std::vector<Tensor>{gq.reshape(qs), gk.reshape(ks), gv.reshape(ks)};
  });
}

Tensor attention_packed_qkv(const Tensor& qkv, int64_t n_head, bool causal, std::optional<double> scale) {
  const char* op = "attention_packed_qkv";
  check_defined(op, qkv);
  check_floating(op, qkv);
  BRISK_CHECK(n_head > 0, "op ", op, ": n_head must be > 0, got ", n_head);
  BRISK_CHECK(qkv.dim() == 3 && qkv.size(2) > 0 && qkv.size(2) % (3 * n_head) == 0, "op ", op,
              ": expected qkv [B, T, 3 * n_head * head_dim] (n_head ", n_head, "), got ", shape_str(qkv.shape()));
  int64_t B = qkv.size(0), T = qkv.size(1), I = qkv.size(2) / 3, D = I / n_head;
  double sc = attention_scale(scale, D, op);
  // [B, H, T, D] views of the q, k and v thirds of x [B, T, 3 I].
  auto heads = [=](const Tensor& x, int64_t i) {
    return x.narrow(2, i * I, I).reshape({B, T, n_head, D}).transpose(1, 2);
  };
  if (kernel_backends(opkey::attention_fwd, qkv.device().type, qkv.dtype()).empty() || B * T == 0) {
    Tensor y = scaled_dot_product_attention(heads(qkv, 0), heads(qkv, 1), heads(qkv, 2), causal, sc);
    return y.transpose(1, 2).reshape({B, T, I});
  }
  Tensor x = qkv.detach().stride(2) == 1 ? qkv.detach() : qkv.detach().contiguous();
  Tensor q4 = heads(x, 0), k4 = heads(x, 1), v4 = heads(x, 2);
  TensorOptions o(qkv.dtype(), qkv.device());
  Tensor y = empty({B, T, I}, o), o4 = y.reshape({B, T, n_head, D}).transpose(1, 2);
  AttentionParams p{sc, causal};
  Tensor lse = attention_forward(q4, k4, v4, o4, p);
  return attach_grad(y, "PackedAttentionBackward", {qkv}, [=](const Tensor& g) {
    // The gradients of q, k and v land in the thirds of one [B, T, 3 I]
    // buffer: no per-head copies, no zero-filled slices to add up.
    Tensor gqkv = empty({B, T, 3 * I}, TensorOptions(g.dtype(), g.device()));
    Tensor g4 = as_heads(g.reshape({B, T, n_head, D}).transpose(1, 2));
    attention_backward(g4, q4, k4, v4, o4, lse, heads(gqkv, 0), heads(gqkv, 1), heads(gqkv, 2), p);
    return std::vector<Tensor>{gqkv};
  });
}

// The definition the fused kernels are checked against: the full score matrix.
Tensor scaled_dot_product_attention_composite(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                                              double scale) {
  check_attention(q, k, v);
  int64_t Tq = q.size(-2), Tk = k.size(-2);
  Tensor s = matmul(q, k.transpose(-2, -1)) * scale;  // [..., Tq, Tk]
  if (causal) {
    Tensor i = arange(double(Tk - Tq), double(Tk), 1.0, DType::i64).unsqueeze(1), j = arange(Tk).unsqueeze(0);
    s = masked_fill(s, gt(j, i), -std::numeric_limits<double>::infinity());
  }
  return matmul(softmax(s, -1), v);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  check_defined("dropout", x);
  BRISK_CHECK(p >= 0.0 && p <= 1.0, "op dropout: probability must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  if (p == 1.0) return x * 0.0;
  check_floating("dropout", x);
  Tensor keep = ge(rand(x.shape(), TensorOptions(x.dtype(), x.device()), gen), scalar_like(x, p));
  return x * keep.to(x.dtype()) * (1.0 / (1.0 - p));
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  check_defined("embedding", indices);
  check_defined("embedding", weight);
  BRISK_CHECK(indices.dtype() == DType::i64, "op embedding: indices must be i64, got ", indices.dtype());
  BRISK_CHECK(weight.dim() == 2, "op embedding: weight must be [num_embeddings, dim], got ",
              shape_str(weight.shape()));
  Tensor flat = indices.reshape({-1}).contiguous();
  Tensor flat_host = flat.to(kCPU);
  const int64_t* p = flat_host.data_ptr<int64_t>();
  for (int64_t i = 0; i < flat.numel(); ++i)
    BRISK_CHECK(p[i] >= 0 && p[i] < weight.size(0), "op embedding: index ", p[i],
                " out of range for ", weight.size(0), " embeddings");
  Shape out = indices.shape();
  out.push_back(weight.size(1));
  return index_select(weight, 0, flat).reshape(out);
}

static Tensor reduce_loss(const Tensor& l, Reduction r) {
  switch (r) {
    case Reduction::none: return l;
    case Reduction::sum: return sum(l);
    case Reduction::mean: return mean(l);
  }
  return l;
}

// Checks shared by the fused and composite paths.
static void check_cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                                double label_smoothing) {
  check_defined("cross_entropy", logits);
  check_defined("cross_entropy", target);
  check_floating("cross_entropy", logits);
  BRISK_CHECK(logits.dim() == 2, "op cross_entropy: logits must be [N, C], got ", shape_str(logits.shape()));
  // Every row's log-sum-exp needs a class, even a row whose target is ignored.
  BRISK_CHECK(logits.size(1) > 0 || logits.size(0) == 0, "op cross_entropy: logits ", shape_str(logits.shape()),
              " have no classes");
  BRISK_CHECK(target.dtype() == DType::i64, "op cross_entropy: target must hold i64 class indices, got ",
              target.dtype());
  BRISK_CHECK(target.shape() == Shape({logits.size(0)}), "op cross_entropy: target shape ",
              shape_str(target.shape()), " must be [", logits.size(0), "] for logits ",
              shape_str(logits.shape()));
  BRISK_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
              "op cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  check_same_device("cross_entropy", logits, target);
  int64_t C = logits.size(1);
  {
    Tensor tc = target.to(kCPU).contiguous();  // a host copy for device targets (one small transfer)
    const int64_t* t = tc.data_ptr<int64_t>();
    for (int64_t i = 0; i < tc.numel(); ++i)
      BRISK_CHECK(t[i] == ignore_index || (t[i] >= 0 && t[i] < C), "op cross_entropy: target ", t[i],
                  " at position ", i, " out of range for ", C, " classes");
  }
}

static Tensor reduce_cross_entropy(const Tensor& loss, const Tensor& valid, Reduction reduction) {
  if (reduction == Reduction::none) return loss;
  if (reduction == Reduction::sum) return sum(loss);
  return sum(loss) / sum(valid).to(loss.dtype());  // mean over non-ignored targets
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction, int64_t ignore_index,
                     double label_smoothing) {
  check_cross_entropy(logits, target, ignore_index, label_smoothing);
  // Fused softmax + NLL: one pass forward (per-row loss and log-sum-exp), one
  // pass backward; the composite below is what it overrides.
  CrossEntropyParams p{ignore_index, label_smoothing};
  int64_t N = logits.size(0);
  Tensor x = logits.detach().contiguous(), t = target.contiguous();
  Tensor loss = empty({N}, TensorOptions(logits.dtype(), logits.device())), lse = empty_like(loss);
  {
    Tensor ins[2] = {x, t};
    Tensor outs[2] = {loss, lse};
    dispatch(opkey::cross_entropy_fwd, x.device(), x.dtype(), KernelArgs{ins, outs, &p});
  }
  loss = attach_grad(loss, "CrossEntropyBackward", {logits}, [=](const Tensor& g) {
    Tensor gx = empty(x.shape(), TensorOptions(g.dtype(), g.device()));
    Tensor ins[4] = {x, lse, t, g.contiguous()};
    Tensor outs[1] = {gx};
    dispatch(opkey::cross_entropy_bwd, g.device(), g.dtype(), KernelArgs{ins, outs, &p});
    return std::vector{gx};
  });
  return reduce_cross_entropy(loss, ne(target, scalar_like(target, double(ignore_index))), reduction);
}

Tensor cross_entropy_composite(const Tensor& logits, const Tensor& target, Reduction reduction,
                               int64_t ignore_index, double label_smoothing) {
  check_cross_entropy(logits, target, ignore_index, label_smoothing);
  Tensor lsm = log_softmax(logits, 1);                       // [N, C]
  Tensor valid = ne(target, scalar_like(target, double(ignore_index)));  // [N] bool
  Tensor safe_t = where(valid, target, zeros_like(target));
  Tensor loss = -gather(lsm, 1, safe_t.unsqueeze(1)).squeeze(1);  // [N] nll
  if (label_smoothing > 0.0)  // uniform target mass eps/C on every class
    loss = loss * (1.0 - label_smoothing) - mean(lsm, {1}) * label_smoothing;
  loss = where(valid, loss, zeros_like(loss));
  return reduce_cross_entropy(loss, valid, reduction);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_defined("mse_loss", input);
  check_defined("mse_loss", target);
  BRISK_CHECK(input.shape() == target.shape(), "op mse_loss: input shape ", shape_str(input.shape()),
              " and target shape ", shape_str(target.shape()), " must match");
  Tensor d = input - target;
  return reduce_loss(d * d, reduction);
}

}  // namespace brisk::nn::functional

// im2col / col2im: the adjoint pair that turns conv2d into GEMM.
#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/ops.h"

namespace brisk {

static void check_geom(const char* op, const Geom2d& g) {
  BRISK_CHECK(g.kh > 0 && g.kw > 0 && g.sh > 0 && g.sw > 0 && g.dh > 0 && g.dw > 0 && g.ph >= 0 &&
                  g.pw >= 0,
              "op ", op, ": kernel, stride and dilation must be > 0 and padding >= 0");
  BRISK_CHECK(g.Ho > 0 && g.Wo > 0, "op ", op, ": output would be empty (input ", g.H, "x", g.W,
              ", kernel ", g.kh, "x", g.kw, ", padding ", g.ph, "x", g.pw, ", dilation ", g.dh, "x",
              g.dw, ")");
}

Tensor im2col(const Tensor& x, const Geom2d& g) {
  check_geom("im2col", g);
  BRISK_CHECK(x.shape() == Shape({g.N, g.C, g.H, g.W}), "op im2col: input shape ",
              shape_str(x.shape()), " does not match geometry [", g.N, ", ", g.C, ", ", g.H, ", ", g.W, "]");
  Tensor out = empty({g.N, g.C * g.kh * g.kw, g.Ho * g.Wo}, TensorOptions(x.dtype(), x.device()));
  Tensor ins[1] = {x.detach().contiguous()};
  Tensor outs[1] = {out};
  dispatch(opkey::im2col, x.device(), x.dtype(), KernelArgs{ins, outs, &g});
  return attach_grad(out, "Im2colBackward", {x},
                     [g](const Tensor& gr) { return std::vector{col2im(gr, g)}; });
}

Tensor col2im(const Tensor& cols, const Geom2d& g) {
  check_geom("col2im", g);
  BRISK_CHECK(cols.shape() == Shape({g.N, g.C * g.kh * g.kw, g.Ho * g.Wo}), "op col2im: input shape ",
              shape_str(cols.shape()), " does not match geometry");
  Tensor out = empty({g.N, g.C, g.H, g.W}, TensorOptions(cols.dtype(), cols.device()));
  Tensor ins[1] = {cols.detach().contiguous()};
  Tensor outs[1] = {out};
  dispatch(opkey::col2im, cols.device(), cols.dtype(), KernelArgs{ins, outs, &g});
  return attach_grad(out, "Col2imBackward", {cols},
                     [g](const Tensor& gr) { return std::vector{im2col(gr, g)}; });
}

}  // namespace brisk

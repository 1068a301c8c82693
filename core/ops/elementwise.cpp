// Elementwise ops: unary, binary with broadcasting, comparisons, where.
// Each backward formula sits right under its forward.
#include <cmath>

#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/ops.h"

namespace brisk {

const char* unary_op_name(UnaryOp op) {
  static const char* names[] = {"neg",  "exp",     "log",  "sqrt", "rsqrt",      "abs",
                                "tanh", "sigmoid", "relu", "gelu", "gelu_deriv", "sign"};
  return names[int(op)];
}
const char* binary_op_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "relu_grad",
                                "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return names[int(op)];
}

void check_defined(const char* op, const Tensor& x) {
  BRISK_CHECK(x.defined(), "op ", op, ": got an undefined tensor");
}
void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  BRISK_CHECK(a.device() == b.device(), "op ", op, ": expected all tensors on the same device, got ",
              a.device(), " (shape ", shape_str(a.shape()), ") and ", b.device(), " (shape ",
              shape_str(b.shape()), ")");
}
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  BRISK_CHECK(a.dtype() == b.dtype(), "op ", op, ": dtype mismatch, ", a.dtype(), " (shape ",
              shape_str(a.shape()), ") vs ", b.dtype(), " (shape ", shape_str(b.shape()),
              "); cast one with .to()");
}
void check_floating(const char* op, const Tensor& x) {
  BRISK_CHECK(is_floating(x.dtype()), "op ", op, ": expected a floating dtype, got ", x.dtype(),
              " (shape ", shape_str(x.shape()), ")");
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    BRISK_CHECK(da == db || da == 1 || db == 1, "op ", op, ": shapes ", shape_str(a), " and ",
                shape_str(b), " cannot be broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor scalar_like(const Tensor& x, double v) {
  return full({}, v, TensorOptions(x.dtype(), x.device()));
}

// ---------------------------------------------------------------- unary

static Tensor unary_forward(UnaryOp op, const Tensor& x) {
  check_defined(unary_op_name(op), x);
  Tensor out = empty(x.shape(), TensorOptions(x.dtype(), x.device()));
  UnaryParams p{op};
  Tensor ins[1] = {x};
  Tensor outs[1] = {out};
  dispatch(unary_op_name(op), x.device(), x.dtype(), KernelArgs{ins, outs, &p});
  return out;
}

Tensor unary(UnaryOp op, const Tensor& x) {
  bool needs_float = op != UnaryOp::neg && op != UnaryOp::abs && op != UnaryOp::sign &&
                     op != UnaryOp::relu;
  check_defined(unary_op_name(op), x);
  if (needs_float) check_floating(unary_op_name(op), x);
  Tensor y = unary_forward(op, x);
  Tensor yd = y.detach();
  switch (op) {
    case UnaryOp::neg:
      return attach_grad(y, "NegBackward", {x}, [](const Tensor& g) { return std::vector{neg(g)}; });
    case UnaryOp::exp:
      return attach_grad(y, "ExpBackward", {x}, [yd](const Tensor& g) { return std::vector{g * yd}; });
    case UnaryOp::log:
      return attach_grad(y, "LogBackward", {x}, [x](const Tensor& g) { return std::vector{g / x}; });
    case UnaryOp::sqrt:  // d sqrt(x) = 1 / (2 sqrt(x))
      return attach_grad(y, "SqrtBackward", {x},
                         [yd](const Tensor& g) { return std::vector{g * 0.5 / yd}; });
    case UnaryOp::rsqrt:  // d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
      return attach_grad(y, "RsqrtBackward", {x},
                         [yd](const Tensor& g) { return std::vector{g * yd * yd * yd * -0.5}; });
    case UnaryOp::abs:
      return attach_grad(y, "AbsBackward", {x}, [x](const Tensor& g) { return std::vector{g * sign(x)}; });
    case UnaryOp::tanh:
      return attach_grad(y, "TanhBackward", {x},
                         [yd](const Tensor& g) { return std::vector{g * (1.0 - yd * yd)}; });
    case UnaryOp::sigmoid:
      return attach_grad(y, "SigmoidBackward", {x},
                         [yd](const Tensor& g) { return std::vector{g * yd * (1.0 - yd)}; });
    case UnaryOp::relu:
      return attach_grad(y, "ReluBackward", {x},
                         [yd](const Tensor& g) { return std::vector{relu_backward(g, yd)}; });
    case UnaryOp::gelu:
      return attach_grad(y, "GeluBackward", {x}, [x](const Tensor& g) {
        return std::vector{g * unary_forward(UnaryOp::gelu_deriv, x.detach())};
      });
    case UnaryOp::gelu_deriv:
    case UnaryOp::sign:
      return y;  // no gradient (sign: zero almost everywhere)
  }
  return y;
}

Tensor neg(const Tensor& x) { return unary(UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::rsqrt, x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::abs, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::sigmoid, x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::relu, x); }
Tensor gelu(const Tensor& x) { return unary(UnaryOp::gelu, x); }
Tensor sign(const Tensor& x) { return unary(UnaryOp::sign, x); }

// ---------------------------------------------------------------- binary

static bool is_compare(BinaryOp op) { return op >= BinaryOp::eq; }

static Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_op_name(op);
  check_defined(name, a);
  check_defined(name, b);
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(s, TensorOptions(is_compare(op) ? DType::boolean : a.dtype(), a.device()));
  BinaryParams p{op};
  Tensor ins[2] = {a.detach().expand(s), b.detach().expand(s)};
  Tensor outs[1] = {out};
  dispatch(is_compare(op) ? opkey::compare : opkey::binary, a.device(), a.dtype(), KernelArgs{ins, outs, &p});
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(op, a, b);
  if (is_compare(op)) return y;
  Shape sa = a.shape(), sb = b.shape();
  bool ra = a.requires_grad(), rb = b.requires_grad();
  switch (op) {
    case BinaryOp::add:
      return attach_grad(y, "AddBackward", {a, b}, [=](const Tensor& g) {
        return std::vector{sum_to(g, sa), sum_to(g, sb)};
      });
    case BinaryOp::sub:
      return attach_grad(y, "SubBackward", {a, b}, [=](const Tensor& g) {
        return std::vector{sum_to(g, sa), rb ? sum_to(neg(g), sb) : Tensor()};
      });
    case BinaryOp::mul:
      return attach_grad(y, "MulBackward", {a, b}, [=](const Tensor& g) {
        return std::vector{ra ? sum_to(g * b, sa) : Tensor(), rb ? sum_to(g * a, sb) : Tensor()};
      });
    case BinaryOp::div:
      return attach_grad(y, "DivBackward", {a, b}, [=](const Tensor& g) {
        return std::vector{ra ? sum_to(g / b, sa) : Tensor(),
                           rb ? sum_to(neg(g) * a / (b * b), sb) : Tensor()};
      });
    case BinaryOp::pow: {
      Tensor yd = y.detach();
      return attach_grad(y, "PowBackward", {a, b}, [=](const Tensor& g) {
        Tensor ga, gb;
        if (ra) ga = sum_to(g * b * pow(a, b - 1.0), sa);
        if (rb) {  // d a^b / db = a^b log a; define 0 where a == 0 (as torch does)
          Tensor zero = scalar_like(a, 0);
          Tensor safe_log = log(where(eq(a, zero), ones_like(a), a));
          gb = sum_to(g * yd * safe_log, sb);
        }
        return std::vector{ga, gb};
      });
    }
    case BinaryOp::maximum:
    case BinaryOp::minimum: {
      // Ties split the gradient evenly, like torch.maximum.
      bool is_max = op == BinaryOp::maximum;
      return attach_grad(y, is_max ? "MaximumBackward" : "MinimumBackward", {a, b}, [=](const Tensor& g) {
        Tensor wa = (is_max ? gt(a, b) : lt(a, b)).to(g.dtype()) + eq(a, b).to(g.dtype()) * 0.5;
        return std::vector{ra ? sum_to(g * wa, sa) : Tensor(), rb ? sum_to(g * (1.0 - wa), sb) : Tensor()};
      });
    }
    default:
      return y;
  }
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::pow, a, b); }
Tensor pow(const Tensor& a, double e) { return binary(BinaryOp::pow, a, scalar_like(a, e)); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::minimum, a, b); }
Tensor relu_backward(const Tensor& grad, const Tensor& out) {
  return binary_forward(BinaryOp::relu_grad, grad.detach(), out.detach());
}
Tensor eq(const Tensor& a, const Tensor& b) { return binary(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(BinaryOp::ge, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", cond);
  check_defined("where", a);
  check_defined("where", b);
  BRISK_CHECK(cond.dtype() == DType::boolean, "op where: condition must be bool, got ", cond.dtype());
  check_same_device("where", cond, a);
  check_same_device("where", a, b);
  check_same_dtype("where", a, b);
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(s, TensorOptions(a.dtype(), a.device()));
  Tensor ins[3] = {cond.expand(s), a.detach().expand(s), b.detach().expand(s)};
  Tensor outs[1] = {out};
  dispatch(opkey::where, a.device(), a.dtype(), KernelArgs{ins, outs, nullptr});
  Shape sa = a.shape(), sb = b.shape();
  return attach_grad(out, "WhereBackward", {a, b}, [=](const Tensor& g) {
    Tensor z = zeros_like(g);
    return std::vector{sum_to(where(cond, g, z), sa), sum_to(where(cond, z, g), sb)};
  });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined("masked_fill", x);
  return where(mask, scalar_like(x, value), x);
}

// ---------------------------------------------------------------- operators

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(b, a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(b, a), b); }

}  // namespace brisk

// Stochastic rounding to f16 / bf16: x goes to one of its two representable
// neighbours lo <= x <= hi, to hi with probability (x - lo) / (hi - lo), so
// the rounding is unbiased in expectation (E[round(x)] = x). The uniform draws
// come from Philox here; the kernel is "stochastic_round". Used for
// low-precision weights that must still feel tiny updates (weight decay,
// small learning rates), where round-to-nearest would drop them.
#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/ops.h"
#include "core/rng.h"

namespace brisk {

Tensor stochastic_round(const Tensor& x, DType to, Generator* gen) {
  check_defined("stochastic_round", x);
  BRISK_CHECK(to == DType::f16 || to == DType::bf16, "op stochastic_round: target dtype must be f16 or bf16, got ",
              to);
  BRISK_CHECK(is_floating(x.dtype()), "op stochastic_round: expected a floating input, got ", x.dtype());
  BRISK_CHECK(x.device().type == DeviceType::cpu, "op stochastic_round: runs on the cpu (no CUDA kernel), got ", x.device());
  Tensor xf = x.detach().to(DType::f32).contiguous();
  Tensor u = rand(x.shape(), DType::f32, gen);  // Philox: same seed, same roundings
  Tensor out = empty(x.shape(), to);
  Tensor ins[2] = {xf, u};
  Tensor outs[1] = {out};
  dispatch(opkey::stochastic_round, xf.device(), DType::f32, KernelArgs{ins, outs, nullptr});
  return out;
}

}  // namespace brisk

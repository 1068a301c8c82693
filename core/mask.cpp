// Parameter masks.
#include "core/mask.h"

#include "core/ops.h"

namespace brisk {

void set_mask(const Tensor& param, const Tensor& mask_in) {
  BRISK_CHECK(param.defined() && mask_in.defined(), "set_mask: undefined parameter or mask");
  // A frozen parameter (requires_grad off, efficiency/freezing) is still a
  // parameter: pruning may mask it, and its gradients are masked once it trains.
  BRISK_CHECK(param.is_leaf() && is_floating(param.dtype()),
              "set_mask: masks go on parameters (floating-point leaf tensors), got ", param.str());
  BRISK_CHECK(mask_in.shape() == param.shape(), "set_mask: mask shape ", shape_str(mask_in.shape()),
              " differs from parameter shape ", shape_str(param.shape()));
  // The mask lives where the parameter does (masks are chosen on the host).
  Tensor mask = mask_in.detach().to(param.dtype()).to(param.device()).contiguous().clone();
  int64_t ones_n = int64_t(sum(eq(mask, scalar_like(mask, 1.0))).item());
  BRISK_CHECK(ones_n + count_zeros(mask) == mask.numel(), "set_mask: a mask may only hold 0 and 1");
  TensorImpl* impl = param.unsafe_impl();
  bool first = impl->mask == nullptr;
  impl->mask = mask.impl_ptr();
  if (first) {
    // Reads the current mask at call time, so later set_mask calls apply too.
    std::weak_ptr<TensorImpl> weak = param.impl_ptr();
    impl->hooks.push_back([weak](const Tensor& g) -> std::optional<Tensor> {
      auto p = weak.lock();
      if (!p || !p->mask) return std::nullopt;
      return g * Tensor(p->mask);
    });
  }
  apply_mask(param);
}

Tensor get_mask(const Tensor& param) {
  auto m = param.unsafe_impl()->mask;
  return m ? Tensor(m) : Tensor();
}

bool has_mask(const Tensor& param) { return param.unsafe_impl()->mask != nullptr; }

void clear_mask(const Tensor& param) { param.unsafe_impl()->mask = nullptr; }

void apply_mask(const Tensor& param) {
  Tensor m = get_mask(param);
  if (!m.defined()) return;
  NoGradGuard ng;
  Tensor p = param.detach();
  p.mul_(m);
  Tensor g = param.grad();
  if (g.defined()) g.mul_(m);
}

int64_t count_zeros(const Tensor& t) {
  return int64_t(sum(eq(t.detach(), scalar_like(t, 0.0))).item());
}

}  // namespace brisk

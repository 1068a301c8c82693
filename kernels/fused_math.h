// The arithmetic of the fused kernels bias_relu, cross_entropy, sgd_step and
// adamw_step, written once: kernels/cpu/ref/<stem>.cpp runs it in plain serial
// loops (the oracle), kernels/cpu/<stem>.cpp in parallel chunks, and
// kernels/cuda/{sgd_step,adamw_step}.cu one element per thread (the optimizer
// steps are BRISK_HD: host and device). Each function handles a range or a row.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/kernel_params.h"
#include "kernels/host_device.h"

namespace brisk::kern::fused {

using std::sqrt;  // f32 and f64 overloads on the host; CUDA's on the device

// One row of bias_relu: o[j] = max(y[j] + b[j], 0).
template <class T>
inline void bias_relu_row(const T* y, const T* b, T* o, int64_t n) {
  for (int64_t j = 0; j < n; ++j) o[j] = std::max(y[j] + b[j], T(0));
}

// One row of cross-entropy: returns the loss; writes log-sum-exp to *lse.
template <class T>
inline T xent_row(const T* x, int64_t C, int64_t t, const CrossEntropyParams& p, T* lse) {
  T mx = x[0];
  for (int64_t c = 1; c < C; ++c) mx = std::max(mx, x[c]);
  double s = 0, sx = 0;
  for (int64_t c = 0; c < C; ++c) {
    s += std::exp(double(x[c] - mx));
    sx += double(x[c]);
  }
  double l = double(mx) + std::log(s);
  *lse = T(l);
  if (t == p.ignore_index) return T(0);
  double eps = p.label_smoothing;
  return T((1 - eps) * (l - double(x[t])) + eps * (l - sx / double(C)));
}

// One row of cross-entropy's backward.
template <class T>
inline void xent_bwd_row(const T* x, T lse, int64_t C, int64_t t, T gl, const CrossEntropyParams& p, T* gx) {
  if (t == p.ignore_index) {
    std::fill(gx, gx + C, T(0));
    return;
  }
  T eps = T(p.label_smoothing), off = eps / T(C);
  for (int64_t c = 0; c < C; ++c) gx[c] = gl * (std::exp(x[c] - lse) - off - (c == t ? T(1) - eps : T(0)));
}

// SGD on elements [lo, hi). The options are loop-invariant, so each case is
// its own loop (a branch inside the loop kept GCC from vectorizing it); the
// arithmetic per element is the same in every case:
//   g' = g + wd p;  b = first ? g' : mom buf + (1 - dampening) g';
//   p -= lr (nesterov ? g' + mom b : b)     (no buffer: p -= lr g').
template <class T>
BRISK_HD inline void sgd_range(const SgdStepParams& q, const T* g, T* p, T* buf, int64_t lo, int64_t hi) {
  T lr = T(q.lr), wd = T(q.weight_decay), mom = T(q.momentum), damp = T(1 - q.dampening);
  if (!buf) {
    for (int64_t i = lo; i < hi; ++i) p[i] -= lr * (g[i] + wd * p[i]);
  } else if (q.first && q.nesterov) {
    for (int64_t i = lo; i < hi; ++i) {
      T gi = g[i] + wd * p[i];
      buf[i] = gi;
      p[i] -= lr * (gi + mom * gi);
    }
  } else if (q.first) {
    for (int64_t i = lo; i < hi; ++i) {
      T gi = g[i] + wd * p[i];
      buf[i] = gi;
      p[i] -= lr * gi;
    }
  } else if (q.nesterov) {
    for (int64_t i = lo; i < hi; ++i) {
      T gi = g[i] + wd * p[i];
      T b = mom * buf[i] + damp * gi;
      buf[i] = b;
      p[i] -= lr * (gi + mom * b);
    }
  } else {
    for (int64_t i = lo; i < hi; ++i) {
      T gi = g[i] + wd * p[i];
      T b = mom * buf[i] + damp * gi;
      buf[i] = b;
      p[i] -= lr * b;
    }
  }
}

// AdamW on elements [lo, hi).
template <class T>
BRISK_HD inline void adamw_range(const AdamWStepParams& q, const T* g, T* p, T* m, T* v, int64_t lo, int64_t hi) {
  T decay = T(1 - q.lr * q.weight_decay), b1 = T(q.beta1), b2 = T(q.beta2);
  T step = T(q.lr / q.bc1), inv_sqrt_bc2 = T(1 / sqrt(q.bc2)), eps = T(q.eps);
  for (int64_t i = lo; i < hi; ++i) {
    T gi = g[i];
    T mi = b1 * m[i] + (1 - b1) * gi;
    T vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (sqrt(vi) * inv_sqrt_bc2 + eps);  // std::sqrt's overloads, device-callable
  }
}

}  // namespace brisk::kern::fused

// 8-bit floats, emulated on the CPU: E4M3 (OCP "fn": bias 7, max 448, no
// infinities) and E5M2 (bias 15, max 57344). Codes are stored as u8 tensors.
// Casts saturate (|x| beyond the max becomes +-max) and round to nearest,
// ties to even; subnormals are kept. Per-tensor delayed scaling follows the
// usual recipe: scale = fp8_max * 2^-margin / amax, amax over a history of
// recent steps, the old scale kept when amax is 0 or not finite.
#pragma once
#include <deque>
#include <vector>

#include "core/tensor.h"

namespace brisk {

enum class Fp8Format : uint8_t { e4m3, e5m2 };
double fp8_max(Fp8Format f);
int fp8_mantissa_bits(Fp8Format f);  // 3 (e4m3), 2 (e5m2)
int fp8_bias(Fp8Format f);           // 7 (e4m3), 15 (e5m2)
const char* fp8_name(Fp8Format f);

uint8_t fp8_encode(float v, Fp8Format f);  // saturating, nearest-even; NaN -> a NaN code
float fp8_decode(uint8_t code, Fp8Format f);

// codes (u8) of x * scale; and back: f32 values code / scale.
Tensor fp8_quantize(const Tensor& x, Fp8Format f, double scale = 1.0);
Tensor fp8_dequantize(const Tensor& codes, Fp8Format f, double scale = 1.0);
// fp8_dequantize(fp8_quantize(x, f, scale), f, scale) in one pass, f32 out:
// the value grid by exponent arithmetic (what autocast's fp8 uses per tensor).
Tensor fp8_round(const Tensor& x, Fp8Format f, double scale = 1.0);

class Fp8DelayedScaling {
 public:
  explicit Fp8DelayedScaling(Fp8Format f, int history = 16, int margin = 0);
  // Records amax(|x|) and recomputes the scale from the history's max.
  void update(const Tensor& x);
  void record(double amax);  // the same, given the amax
  double scale() const { return scale_; }
  Fp8Format format() const { return f_; }
  const std::deque<double>& amax_history() const { return hist_; }
  // Restores a saved state (history oldest first, and the scale).
  void set_state(const std::vector<double>& history, double scale);

 private:
  Fp8Format f_;
  int len_, margin_;
  std::deque<double> hist_;
  double scale_ = 1.0;
};

// Delayed scaling per cast site, as autocast's fp8 uses it with
// precision:dtype=fp8,scaling=delayed (Micikevicius et al. 2022, "FP8
// Formats for Deep Learning"; Transformer Engine's recipe): every tensor that
// autocast casts to fp8 belongs to a site (a layer's input, weight, output,
// or one of their gradients), identified by its position in the step: the
// forward and backward passes cast in the same order every step, so the k-th
// cast of a step is the same site each time. A site's tensor is scaled by
// fp8_max / max(amax over its last `history` steps), computed before this
// step's amax is known; the first visit of a site (no history yet) uses the
// tensor's own amax.
class Fp8SiteScaling {
 public:
  explicit Fp8SiteScaling(int history = 16, int margin = 0);
  void begin_step() { next_ = 0; }
  // The scale for x at the next site, then x's amax is recorded there.
  double next_scale(const Tensor& x, Fp8Format f);
  size_t sites() const { return sites_.size(); }
  const Fp8DelayedScaling& site(size_t i) const { return sites_.at(i); }
  // Checkpointing: per site, format, history and scale.
  struct SiteState {
    Fp8Format format;
    std::vector<double> history;
    double scale;
  };
  std::vector<SiteState> state() const;
  void load_state(const std::vector<SiteState>& s);

 private:
  int len_, margin_;
  std::vector<Fp8DelayedScaling> sites_;
  size_t next_ = 0;
};

}  // namespace brisk

// `--method precision:dtype=bf16|fp16|fp8|int8[,rounding=nearest|stochastic]
//  [,weights=master|bf16][,scaler=auto|on|off]`: autocast for the whole run
// (core/autocast.h: linear and conv2d in the low format; reductions, softmax,
// norms, losses and the optimizer in f32), evaluation included.
//   weights=master (default): the parameters are the f32 master weights; each
//     step casts them for the GEMMs. weights=bf16: after every optimizer step
//     the parameters are rounded to bf16 (stochastically with
//     rounding=stochastic, so updates smaller than half an ulp, weight decay
//     included, still move them on average); optimizer state stays f32.
//   scaler=auto: dynamic loss scaling (optim::GradScaler, PyTorch's defaults)
//     for fp16, whose gradients underflow without it; on/off force it. A step
//     with inf/NaN gradients is skipped (parameters and optimizer state
//     untouched) and the scale halves.
//   scaling=delayed|current (fp8 only; default delayed): each fp8 cast site
//     is scaled by the amax history of its last `amax_history` (16) steps,
//     Transformer Engine's recipe (core/fp8.h Fp8SiteScaling); current scales
//     every tensor by its own amax (exact but needs the amax before the cast).
//   Under loss scaling a step whose forward loss is already inf/NaN (an fp16
//   overflow) is skipped like one with inf/NaN gradients, not an error.
// metrics.jsonl gains `skipped_steps`, and `loss_scale` when scaling.
// Stochastic rounding draws from a generator keyed by (seed, step), so a
// resumed run rounds exactly as the uninterrupted one.
#include <memory>

#include "core/autocast.h"
#include "core/fp8.h"
#include "efficiency/method.h"
#include "optim/grad_scaler.h"

#include <cmath>
#include "train/trainer.h"

namespace brisk::efficiency {

namespace {

class PrecisionMethod : public train::Callback {
 public:
  LowPrecision kind = LowPrecision::bf16;
  Rounding rounding = Rounding::nearest;
  bool bf16_weights = false, use_scaler = false, fp8_delayed = false;
  int64_t amax_history = 16;

  std::string name() const override { return "precision"; }
  // bf16 and fp16 autocast act on GEMM operands only; fp8 and int8 are
  // measured and tested on the image models alone so far.
  bool supports_language_models() const override { return kind == LowPrecision::bf16 || kind == LowPrecision::fp16; }
  // On cuda: bf16 with nearest rounding (the casts are the "bf16_round"
  // kernel, the GEMMs bf16 tensor cores: kernels/cuda/gemm.cu). Stochastic
  // rounding, fp16's loss scaling, fp8 and int8 have kernels on the cpu only.
  bool supports_cuda() const override { return kind == LowPrecision::bf16 && rounding == Rounding::nearest; }

  void on_fit_start(train::Trainer& t) override {
    seed_ = t.config().seed;
    gen_.set_state(seed_ * 0xC2B2AE3D27D4EB4Full + 17, 0);
    AutocastPolicy pol{kind, rounding, &gen_};
    if (fp8_delayed) {
      if (!sites_) sites_ = std::make_unique<Fp8SiteScaling>(int(amax_history));
      pol.fp8_delayed = sites_.get();
    }
    guard_ = std::make_unique<AutocastGuard>(pol);
    if (bf16_weights) round_weights(t);
  }
  void on_fit_end(train::Trainer&) override { guard_.reset(); }

  void on_batch_start(train::Trainer& t) override {
    if (sites_) sites_->begin_step();
    gen_.set_state(seed_ * 0xC2B2AE3D27D4EB4Full + 17 + uint64_t(t.state().step) * 0x9E3779B97F4A7C15ull, 0);
  }
  void on_after_loss(train::Trainer& t) override {
    if (!use_scaler) return;
    t.loss_scale = scaler_.get_scale();
    t.nonfinite_loss_skips = true;  // an overflowed forward gives inf gradients: the scaler skips the step
  }
  void on_after_backward(train::Trainer& t) override {
    // Gradients are still multiplied by the loss scale here: what a
    // low-precision backward would have to represent.
    if (t.telemetry_on() && t.state().step % t.config().telemetry_every == 0) record_ranges(t);
    if (use_scaler) finite_ = scaler_.unscale_(t.optimizer());  // before any gradient clipping
  }
  void on_before_step(train::Trainer& t) override {
    if (use_scaler && !finite_) {
      t.skip_step = true;
      ++skipped_;
    }
  }
  void on_after_step(train::Trainer& t) override {
    if (use_scaler) scaler_.update();  // throws below min_scale: training stops, checkpoint intact
    if (bf16_weights && !t.skip_step) round_weights(t);
  }

  void add_metrics(nlohmann::json& j) const override {
    j["skipped_steps"] = skipped_;
    if (use_scaler) j["loss_scale"] = scaler_.get_scale();
  }
  nlohmann::json state_json() const override {
    nlohmann::json j = {{"dtype", low_precision_name(kind)}, {"skipped_steps", skipped_}, {"scaler", scaler_.state_dict()}};
    if (sites_) {
      nlohmann::json sites = nlohmann::json::array();
      for (auto& st : sites_->state())
        sites.push_back({{"format", fp8_name(st.format)}, {"amax", st.history}, {"scale", st.scale}});
      j["fp8_sites"] = sites;
    }
    return j;
  }
  void load_state_json(const nlohmann::json& j) override {
    skipped_ = j.value("skipped_steps", int64_t(0));
    if (j.contains("scaler")) scaler_.load_state_dict(j.at("scaler"));
    if (fp8_delayed && j.contains("fp8_sites")) {
      std::vector<Fp8SiteScaling::SiteState> st;
      try {
        for (auto& s : j.at("fp8_sites")) {
          std::string f = s.at("format").get<std::string>();
          BRISK_CHECK(f == "e4m3" || f == "e5m2", "format '", f, "'");
          st.push_back({f == "e4m3" ? Fp8Format::e4m3 : Fp8Format::e5m2, s.at("amax").get<std::vector<double>>(),
                        s.at("scale").get<double>()});
        }
      } catch (const std::exception& e) {
        BRISK_FAIL("checkpoint: precision state 'fp8_sites' is malformed: ", e.what());
      }
      if (!sites_) sites_ = std::make_unique<Fp8SiteScaling>(int(amax_history));
      sites_->load_state(st);
    }
  }

 private:
  // Telemetry: the loss scale, steps skipped so far, and per parameter the
  // fraction of weights and (scaled) gradients that would round to zero
  // (|x| below half the format's smallest subnormal, x != 0) or overflow
  // (|x| above its largest finite value, or not finite) in the low format,
  // unscaled. int8 has a per-tensor scale, so it has no fixed range to report.
  void record_ranges(train::Trainer& t) {
    nlohmann::json layers = nlohmann::json::array();
    if (kind != LowPrecision::int8) {
      auto fractions = [&](const Tensor& x, std::pair<float, float> range) {
        auto [tiny, big] = range;
        Tensor c = x.detach().to(DType::f32).to(kCPU).contiguous();  // read on the host, wherever x lives
        const float* p = c.data_ptr<float>();
        int64_t under = 0, over = 0, n = c.numel();
        for (int64_t i = 0; i < n; ++i) {
          float a = std::fabs(p[i]);
          under += a != 0.f && a < tiny;
          over += !(a <= big);
        }
        return std::pair<double, double>{double(under) / double(std::max<int64_t>(n, 1)),
                                         double(over) / double(std::max<int64_t>(n, 1))};
      };
      for (auto& [n, p] : t.model().named_parameters()) {
        auto [wu, ws] = fractions(p, format_range(kind, false));
        nlohmann::json l = {{"name", n}, {"weight_underflow", wu}, {"weight_overflow", ws}};
        if (p.grad().defined()) {
          auto [gu, gs] = fractions(p.grad(), format_range(kind, true));
          l["grad_underflow"] = gu;
          l["grad_overflow"] = gs;
        }
        layers.push_back(l);
      }
    }
    t.record("precision", {{"dtype", low_precision_name(kind)},
                           {"loss_scale", use_scaler ? scaler_.get_scale() : 1.0},
                           {"skipped_steps", skipped_},
                           {"layers", layers}});
  }
  // Half the smallest subnormal (below it a value rounds to zero) and the
  // largest finite value. fp8: e4m3 for weights (the forward format), e5m2
  // for gradients.
  static std::pair<float, float> format_range(LowPrecision k, bool gradient) {
    switch (k) {
      case LowPrecision::fp16: return {float(std::ldexp(1.0, -25)), 65504.f};
      case LowPrecision::fp8:
        return gradient ? std::pair<float, float>{float(std::ldexp(1.0, -17)), 57344.f}
                        : std::pair<float, float>{float(std::ldexp(1.0, -10)), 448.f};
      default: return {float(std::ldexp(1.0, -134)), 3.38953139e38f};  // bf16
    }
  }

  void round_weights(train::Trainer& t) {
    NoGradGuard ng;
    for (auto& [n, p] : t.model().named_parameters()) {
      if (p.dtype() != DType::f32) continue;
      Tensor pd = p.detach();
      pd.copy_(round_to_format(pd, LowPrecision::bf16, rounding, false, &gen_));
    }
  }

  uint64_t seed_ = 0;
  Generator gen_;
  std::unique_ptr<Fp8SiteScaling> sites_;  // fp8 delayed scaling (before guard_: the guard points at it)
  std::unique_ptr<AutocastGuard> guard_;
  optim::GradScaler scaler_;
  bool finite_ = true;
  int64_t skipped_ = 0;
};

}  // namespace

void register_precision_methods() {
  register_method("precision", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<PrecisionMethod>();
    m->kind = parse_low_precision(a.get_string("dtype", "bf16"));
    a.set_kind(std::string("dtype=") + low_precision_name(m->kind),
               {"dtype", "rounding", "weights", "scaler", "scaling", "amax_history"});
    if (m->kind == LowPrecision::fp8) {
      std::string sc = a.get_string("scaling", "delayed");
      BRISK_CHECK(sc == "delayed" || sc == "current", "--method precision: unknown scaling '", sc,
                  "' (known: delayed, current)");
      m->fp8_delayed = sc == "delayed";
      if (m->fp8_delayed) m->amax_history = a.get_int("amax_history", 16);
      BRISK_CHECK(m->amax_history >= 1 && m->amax_history <= 1024, "--method precision: amax_history must be in "
                  "[1, 1024] steps, got ", m->amax_history);
    }
    std::string r = a.get_string("rounding", "nearest");
    BRISK_CHECK(r == "nearest" || r == "stochastic", "--method precision: unknown rounding '", r,
                "' (known: nearest, stochastic)");
    m->rounding = r == "stochastic" ? Rounding::stochastic : Rounding::nearest;
    BRISK_CHECK(m->rounding == Rounding::nearest || m->kind == LowPrecision::bf16 || m->kind == LowPrecision::fp16,
                "--method precision: rounding=stochastic applies to bf16 and fp16, not ", low_precision_name(m->kind));
    std::string w = a.get_string("weights", "master");
    BRISK_CHECK(w == "master" || w == "bf16", "--method precision: unknown weights '", w, "' (known: master, bf16)");
    m->bf16_weights = w == "bf16";
    std::string s = a.get_string("scaler", "auto");
    BRISK_CHECK(s == "auto" || s == "on" || s == "off", "--method precision: unknown scaler '", s,
                "' (known: auto, on, off)");
    m->use_scaler = s == "on" || (s == "auto" && m->kind == LowPrecision::fp16);
    return m;
  });
}

}  // namespace brisk::efficiency

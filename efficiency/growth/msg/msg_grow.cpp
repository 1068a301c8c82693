// Masked structural growth (MSG; Yao et al. 2024): width growth where new
// units get fresh weights behind a Gate that starts at 0 and ramps linearly
// to 1 over `ramp` (fraction of training), so the function is unchanged at
// growth for any initialization. Gates are per layer, so MSG grows layers
// whose channels are not coupled by residual additions (else use net2net).
// On a GPT, MSG grows every block's MLP hidden units and attention heads
// (start of each, doubling at each point), gated per unit and per head.
#include <algorithm>

#include "efficiency/growth/gpt_surgery.h"
#include "efficiency/growth/grow_base.h"
#include "nn/channel_groups.h"
#include "surgery/surgery.h"

namespace brisk::efficiency::growth_methods {

namespace {

class MsgGrow : public GrowBase {
 public:
  using GrowBase::GrowBase;

 protected:
  bool supports_language_models() const override { return true; }
  std::vector<int64_t> full_sizes(train::Trainer& t) const override {
    if (auto* g = as_gpt(t.model())) return {gpt_hidden(*g), gpt_heads(*g)};
    return group_widths(sequential(t));
  }
  void shrink(train::Trainer& t) override {
    if (auto* g = as_gpt(t.model())) {
      gpt_cut_width(*g, size_at(0, spec_.start), size_at(1, spec_.start), &t.optimizer());
      finish_cut(t);
      return;
    }
    shrink_width(t);
  }
  void grow(train::Trainer& t, int64_t k, double mult) override {
    if (auto* g = as_gpt(t.model())) {
      Generator gen = group_generator(t, k, 0);
      gpt_widen_masked(*g, size_at(0, mult), size_at(1, mult), &t.optimizer(), growth_step(t, k), &gen);
      return;
    }
    nn::Sequential& seq = sequential(t);
    for (size_t l = 0; l < full_.size(); ++l) {
      Generator g = group_generator(t, k, l);
      nn::ChannelGroup grp = nn::channel_groups(seq)[l];  // MSG inserts gates: positions move
      BRISK_CHECK(!grp.coupled(), "--method grow:kind=msg: channels of ", grp.name,
                  " are coupled by a residual addition; MSG gates are per layer (use kind=net2net)");
      size_t idx = seq.size();
      for (size_t i = 0; i < seq.size(); ++i)
        if (seq[i] == grp.producers[0].layer) idx = i;
      BRISK_CHECK(idx < seq.size(), "--method grow:kind=msg: ", grp.name, " is inside a block (use kind=net2net)");
      nn::widen_masked(seq, idx, size_at(l, mult), &t.optimizer(), growth_step(t, k), &g);
    }
  }
  // gate = clamp((clock - birth) / ramp_steps, 0, 1) for grown units, 1 for original ones.
  void every_batch(train::Trainer& t) override {
    double steps = std::max(1.0, spec_.ramp * double(t.total_steps()));
    double now = double(t.clock());
    if (auto* g = as_gpt(t.model())) {
      gpt_ramp_gates(*g, now, steps);
      return;
    }
    for (size_t i = 0; i < sequential(t).size(); ++i)
      if (auto* gt = dynamic_cast<nn::Gate*>(sequential(t)[i].get())) nn::ramp_gate(gt->gate, gt->birth, now, steps);
  }
};

}  // namespace

std::unique_ptr<GrowBase> make_msg_grow(const GrowSpec& s) { return std::make_unique<MsgGrow>(s); }

}  // namespace brisk::efficiency::growth_methods

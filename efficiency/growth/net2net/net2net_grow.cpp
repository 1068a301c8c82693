// Net2WiderNet growth (Chen, Goodfellow & Shlens 2016): the model starts at
// `start` of its width (every channel group keeps its first round(start·n)
// units, cut from the full-size initialization) and doubles its width at each
// growth point until full size. New units copy random existing ones and the
// consumers' fan-in is split among the copies, so with noise=0 the network's
// function is unchanged at the moment of growth. Width is counted per channel
// group (nn/channel_groups.h), so channels coupled by residual additions grow
// together; nn::widen_group remaps the optimizer state in the same call.
#include "efficiency/growth/grow_base.h"
#include "nn/channel_groups.h"
#include "surgery/surgery.h"

namespace brisk::efficiency::growth_methods {

namespace {

class Net2NetGrow : public GrowBase {
 public:
  using GrowBase::GrowBase;

 protected:
  std::vector<int64_t> full_sizes(train::Trainer& t) const override { return group_widths(sequential(t)); }
  void shrink(train::Trainer& t) override { shrink_width(t); }
  void grow(train::Trainer& t, int64_t k, double mult) override {
    nn::Sequential& seq = sequential(t);
    for (size_t l = 0; l < full_.size(); ++l) {
      Generator g = group_generator(t, k, l);
      nn::ChannelGroup grp = nn::channel_groups(seq)[l];
      nn::widen_group(grp, size_at(l, mult), &t.optimizer(), spec_.noise, &g);
    }
  }
};

}  // namespace

std::unique_ptr<GrowBase> make_net2net_grow(const GrowSpec& s) { return std::make_unique<Net2NetGrow>(s); }

}  // namespace brisk::efficiency::growth_methods

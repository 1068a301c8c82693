// Channel groups: the units of a model that must be widened or pruned
// together. A group is one channel space: the layers that write it (their
// weight rows and biases), the BatchNorms over it, and the layers that read it
// (their weight columns). A plain chain gives one group per hidden layer;
// a residual addition couples every layer that writes into the same stream
// (a block's conv2 + bn2, its projection shortcut, and all the identity blocks
// after it), and every layer that reads the stream (the next blocks' conv1 and
// projection shortcut, the classifier) consumes it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace brisk::nn {

struct ChannelSite {
  std::shared_ptr<Module> layer;  // Linear, Conv2d or BatchNorm2d
  std::string key;                // its dotted name in the model (optimizer keys are key + ".weight")
  int64_t per_unit = 1;           // consumers: inputs per channel (H*W through a Flatten)
};

struct ChannelGroup {
  std::string name;  // the first producer's key: stable across surgery, used in checkpoints
  std::vector<ChannelSite> producers, norms, consumers;
  std::vector<std::shared_ptr<Gate>> gates;  // MSG gates on the path (widen_masked's business)
  int64_t width() const;
  bool coupled() const { return producers.size() > 1; }
};

// Every group of `seq` whose channels some later layer consumes (the
// classifier's outputs are not a group), in order of first producer. `prefix`
// is seq's dotted name in the model. Throws, naming the module, where channels
// would pass through something the surgery cannot carry them through
// (LayerNorm, attention, grouped convolutions, nested Sequentials).
std::vector<ChannelGroup> channel_groups(Sequential& seq, const std::string& prefix = "");

// The group that layer `layer` of seq produces.
ChannelGroup group_of(Sequential& seq, size_t layer, const std::string& prefix, const char* op);

}  // namespace brisk::nn

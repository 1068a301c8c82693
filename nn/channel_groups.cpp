#include "nn/channel_groups.h"

namespace brisk::nn {

int64_t ChannelGroup::width() const { return producers.at(0).layer->parameter("weight").size(0); }

namespace {

std::string join(const std::string& prefix, const std::string& name) { return prefix.empty() ? name : prefix + "." + name; }

bool passes_channels(Module* m) {
  return dynamic_cast<ReLU*>(m) || dynamic_cast<GELU*>(m) || dynamic_cast<MaxPool2d*>(m) ||
         dynamic_cast<AvgPool2d*>(m) || dynamic_cast<AdaptiveAvgPool2d*>(m) || dynamic_cast<Dropout*>(m);
}

// Walks the chain keeping the group whose channels currently flow.
struct Walker {
  std::vector<ChannelGroup> out;
  std::vector<int64_t> order;  // out[i]'s first producer's position in the walk
  ChannelGroup cur;
  int64_t cur_order = 0, next_order = 0;
  bool open = false, flattened = false;

  void push(const ChannelGroup& g, int64_t at) {
    out.push_back(g);
    order.push_back(at);
  }

  void consume(const std::shared_ptr<Module>& m, const std::string& key) {
    if (!open) return;  // the input image: not a group
    ChannelSite s{m, key, 1};
    if (auto lin = std::dynamic_pointer_cast<Linear>(m)) {
      int64_t w = cur.width();
      BRISK_CHECK(lin->in_features % w == 0 && (flattened || lin->in_features == w), "channel groups: ", key, " (",
                  lin->repr(), ") does not take the ", w, " channels of ", cur.name);
      s.per_unit = lin->in_features / w;
    }
    cur.consumers.push_back(s);
  }
  void close() {
    if (open && !cur.consumers.empty()) push(cur, cur_order);
    cur = ChannelGroup();
    open = false;
    flattened = false;
  }
  void produce(const std::shared_ptr<Module>& m, const std::string& key) {
    cur.name = key;
    cur.producers = {{m, key, 1}};
    cur_order = next_order++;
    open = true;
  }
};

void check_conv(const std::shared_ptr<Module>& m, const std::string& key) {
  if (auto c = std::dynamic_pointer_cast<Conv2d>(m))
    BRISK_CHECK(c->groups == 1, "channel groups: grouped convolution ", key, " is not supported");
}

}  // namespace

std::vector<ChannelGroup> channel_groups(Sequential& seq, const std::string& prefix) {
  Walker w;
  for (size_t i = 0; i < seq.size(); ++i) {
    ModulePtr m = seq[i];
    std::string k = join(prefix, std::to_string(i));
    if (dynamic_cast<Linear*>(m.get()) || dynamic_cast<Conv2d*>(m.get())) {
      check_conv(m, k);
      w.consume(m, k);
      w.close();
      w.produce(m, k);
    } else if (dynamic_cast<BatchNorm2d*>(m.get())) {
      if (w.open) w.cur.norms.push_back({m, k, 1});
    } else if (auto g = std::dynamic_pointer_cast<Gate>(m)) {
      if (w.open) w.cur.gates.push_back(g);
    } else if (dynamic_cast<Flatten*>(m.get())) {
      w.flattened = true;
    } else if (auto b = std::dynamic_pointer_cast<ResidualBlock>(m)) {
      BRISK_CHECK(w.open, "channel groups: ", k, " (ResidualBlock) reads the input directly");
      // inside the block: conv1 -> bn1 -> conv2
      ChannelGroup in;
      int64_t in_order = w.next_order++;  // conv1 comes before conv2 in the walk
      in.name = k + ".conv1";
      in.producers = {{b->conv1, k + ".conv1", 1}};
      in.norms = {{b->bn1, k + ".bn1", 1}};
      in.consumers = {{b->conv2, k + ".conv2", 1}};
      check_conv(b->conv1, k + ".conv1");
      check_conv(b->conv2, k + ".conv2");
      w.consume(b->conv1, k + ".conv1");
      if (b->shortcut->size() == 0) {
        // identity shortcut: the block writes into the stream it reads
        w.cur.producers.push_back({b->conv2, k + ".conv2", 1});
        w.cur.norms.push_back({b->bn2, k + ".bn2", 1});
      } else {
        auto sc = (*b->shortcut)[0];
        check_conv(sc, k + ".shortcut.0");
        w.consume(sc, k + ".shortcut.0");
        w.close();
        w.produce(b->conv2, k + ".conv2");
        w.cur.producers.push_back({sc, k + ".shortcut.0", 1});
        w.cur.norms = {{b->bn2, k + ".bn2", 1}, {(*b->shortcut)[1], k + ".shortcut.1", 1}};
      }
      w.push(in, in_order);  // may be pushed before the stream group it reads; sorted below
    } else if (!passes_channels(m.get())) {
      BRISK_CHECK(!w.open, "channel groups: cannot carry the channels of ", w.cur.name, " through ", m->repr(),
                  " at ", k);
    }
  }
  w.close();  // the classifier's outputs: no consumer, not a group
  // Order by first producer's position in the walk: stream groups are pushed
  // when closed, after the internal groups of the blocks they span.
  std::vector<size_t> idx(w.out.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return w.order[a] < w.order[b]; });
  std::vector<ChannelGroup> sorted;
  for (size_t i : idx) sorted.push_back(w.out[i]);
  return sorted;
}

ChannelGroup group_of(Sequential& seq, size_t layer, const std::string& prefix, const char* op) {
  BRISK_CHECK(layer < seq.size(), op, ": layer ", layer, " out of range for a Sequential of ", seq.size());
  BRISK_CHECK(dynamic_cast<Linear*>(seq[layer].get()) || dynamic_cast<Conv2d*>(seq[layer].get()), op, ": layer ",
              layer, " is ", seq[layer]->repr(), "; only Linear and Conv2d");
  for (auto& g : channel_groups(seq, prefix))
    for (auto& p : g.producers)
      if (p.layer == seq[layer]) return g;
  BRISK_FAIL(op, ": no Linear or Conv2d consumes the outputs of layer ", layer);
}

}  // namespace brisk::nn

// Growth on the GPT: depth stacking and masked structural growth of the MLP
// width and the heads, each checked against a recomputation that does not use
// the surgery (the trained blocks applied twice; a full model whose removed
// units are zeroed), with the optimizer's state carried, and the grow methods
// training a GPT with bit-exact resume.
#include <cmath>

#include "efficiency/growth/gpt_surgery.h"
#include "optim/optimizer.h"
#include "tests/lm_helpers.h"

using namespace bt;
using namespace brisk;
using brisk::models::GPT;
using brisk::models::GPTConfig;
namespace gm = brisk::efficiency::growth_methods;

namespace {

GPTConfig growth_config() {
  GPTConfig c;
  c.n_layer = 4, c.n_head = 2, c.n_embd = 16, c.block_size = 24;
  return c;
}

Tensor tokens() {
  Generator g(3);
  return (rand({2, 12}, DType::f32, &g) * 255.0).to(DType::i64);
}

std::unique_ptr<optim::Optimizer> adamw(GPT& m) {
  optim::AdamWOptions o;
  o.weight_decay = 0;
  return std::make_unique<optim::AdamW>(m.named_parameters(), o);
}

// One AdamW step on a loss of the logits, so that every parameter has state.
std::unique_ptr<optim::Optimizer> stepped(GPT& m) {
  auto opt = adamw(m);
  opt->zero_grad();
  Tensor l = m.forward(tokens());
  mean(l * l).backward();
  opt->step();
  return opt;
}

double max_abs_diff(const Tensor& a, const Tensor& b) { return max(abs(a - b)).item(); }

// The optimizer holds exactly the model's parameters, under their names.
void check_optimizer_matches(GPT& m, optim::Optimizer& opt) {
  auto mp = m.named_parameters();
  auto op = opt.params();
  REQUIRE(mp.size() == op.size());
  std::map<std::string, TensorImpl*> by_name;
  for (auto& [n, p] : op) by_name[n] = p.unsafe_impl();
  for (auto& [n, p] : mp) {
    INFO(n);
    REQUIRE(by_name.count(n));
    CHECK(by_name[n] == p.unsafe_impl());
  }
}

}  // namespace

TEST_CASE("gpt growth: stacking puts copies of the trained blocks on top (the stack applies them twice)",
          "[gpt][growth]") {
  manual_seed(1);
  GPT m(growth_config());
  auto opt = stepped(m);
  gm::gpt_truncate(m, 2, opt.get());
  CHECK(m.blocks.size() == 2);
  CHECK(m.config.n_layer == 2);
  check_optimizer_matches(m, *opt);
  CHECK_FALSE(opt->state().at("h.0.mlp.c_fc.weight").empty());  // kept blocks keep their state
  CHECK(opt->state().count("h.2.mlp.c_fc.weight") == 0);

  // By hand, without the surgery: embeddings, blocks 0, 1, 0, 1, final norm, tied head.
  Tensor idx = tokens();
  Tensor want;
  {
    NoGradGuard ng;
    Tensor pos = arange(0.0, 12.0, 1.0, TensorOptions(DType::i64));
    Tensor x = m.wte->forward(idx) + m.wpe->forward(pos);
    for (int rep = 0; rep < 2; ++rep)
      for (auto& b : m.blocks) x = b->forward(x);
    want = nn::functional::linear(m.ln_f->forward(x), m.wte->weight);
  }
  Tensor state_before = opt->state().at("h.1.attn.c_attn.weight").begin()->second.clone();
  CHECK(gm::gpt_stack(m, 4, opt.get()) == 2);
  REQUIRE(m.blocks.size() == 4);
  CHECK(m.config.n_layer == 4);
  auto p0 = m.blocks[0]->named_parameters(), p2 = m.blocks[2]->named_parameters();
  REQUIRE(p0.size() == p2.size());
  for (size_t k = 0; k < p0.size(); ++k) {
    CHECK(bit_equal(p0[k].second, p2[k].second));
    CHECK(p0[k].second.unsafe_impl() != p2[k].second.unsafe_impl());  // copies, not shared
  }
  NoGradGuard ng;
  CHECK(max_abs_diff(m.forward(idx), want) == 0.0);
  check_optimizer_matches(m, *opt);
  CHECK(opt->state().count("h.3.mlp.c_proj.weight") == 0);  // the copies start with no state
  CHECK(bit_equal(opt->state().at("h.1.attn.c_attn.weight").begin()->second, state_before));
  CHECK(gm::gpt_stack(m, 4, opt.get()) == 0);  // at full depth
  CHECK_THROWS_WITH(gm::gpt_truncate(m, 0, opt.get()), Catch::Contains("cannot keep 0 of 4"));
}

TEST_CASE("gpt growth: the width cut equals the full model with the removed units zeroed, and MSG keeps the function",
          "[gpt][growth]") {
  manual_seed(2);
  GPTConfig c = growth_config();
  c.n_layer = 2;
  GPT m(c), ref(c);
  ref.load_state_dict(m.state_dict());
  Tensor idx = tokens();
  NoGradGuard ng;
  // Reference: hidden units 24.. and head 1 (columns 8..15 of attn.c_proj) removed by zeroing what reads them.
  for (auto& b : ref.blocks) {
    b->mlp->c_proj->weight.narrow(1, 24, 40).zero_();
    b->attn->c_proj->weight.narrow(1, 8, 8).zero_();
  }
  Tensor want = ref.forward(idx);
  auto opt = adamw(m);
  gm::gpt_cut_width(m, 24, 1, opt.get());
  CHECK(gm::gpt_hidden(m) == 24);
  CHECK(gm::gpt_heads(m) == 1);
  CHECK(m.blocks[0]->attn->c_attn->weight.size(0) == 3 * 8);
  CHECK_FALSE(m.blocks[0]->mlp->gate.defined());  // a cut adds no gates
  Tensor got = m.forward(idx);
  CHECK(max_abs_diff(got, want) < 1e-5);
  check_optimizer_matches(m, *opt);

  // Train a step, then grow: old rows keep their state, new rows start at zero.
  {
    set_grad_enabled(true);
    opt->zero_grad();
    Tensor l = m.forward(idx);
    mean(l * l).backward();
    opt->step();
    set_grad_enabled(false);
  }
  Tensor before = m.forward(idx);
  TensorMap st_old = opt->state().at("h.0.mlp.c_fc.weight");
  Generator g(5);
  gm::gpt_widen_masked(m, 64, 2, opt.get(), /*step=*/10, &g);
  CHECK(gm::gpt_hidden(m) == 64);
  CHECK(gm::gpt_heads(m) == 2);
  CHECK(m.config.n_head == 2);
  check_optimizer_matches(m, *opt);
  for (auto& [k, s] : opt->state().at("h.0.mlp.c_fc.weight")) {
    if (s.dim() == 0) continue;
    INFO(k);
    REQUIRE(s.shape() == Shape({64, 16}));
    CHECK(bit_equal(s.narrow(0, 0, 24), st_old.at(k)));
    CHECK(max(abs(s.narrow(0, 24, 40))).item() == 0.0);
  }
  // Gates: 1 for the units the model had, 0 for the new ones (born at step 10).
  CHECK(min(m.blocks[1]->mlp->gate.narrow(0, 0, 24)).item() == 1.0);
  CHECK(max(m.blocks[1]->mlp->gate.narrow(0, 24, 40)).item() == 0.0);
  CHECK(m.blocks[1]->attn->head_gate.to_vector() == std::vector<double>({1, 0}));
  // New weights are nonzero, yet the function is the same at the growth.
  CHECK(max(abs(m.blocks[0]->mlp->c_fc->weight.narrow(0, 24, 40))).item() > 0.0);
  CHECK(max_abs_diff(m.forward(idx), before) < 1e-5);
  // Half-way up the ramp (10 steps from birth 10, 20 steps long) every new gate is 0.5.
  gm::gpt_ramp_gates(m, 20, 20);
  CHECK(m.blocks[0]->attn->head_gate.to_vector() == std::vector<double>({1, 0.5}));
  gm::gpt_ramp_gates(m, 30, 20);
  CHECK(min(m.blocks[0]->mlp->gate).item() == 1.0);
  CHECK(max_abs_diff(m.forward(idx), before) > 1e-4);  // the new units now act
  CHECK_THROWS_WITH(gm::gpt_widen_masked(m, 32, 2, opt.get(), 11, &g), Catch::Contains("cannot grow"));
}

TEST_CASE("gpt growth: grow:kind=stack and kind=msg train a GPT, grow on schedule and resume bit-exactly",
          "[gpt][growth][train]") {
  for (std::string spec : {"grow:kind=stack", "grow:kind=msg,ramp=0.1"}) {
    INFO(spec);
    TrainConfig c = lm_config("lm_" + spec.substr(10, 5));
    c.n_layer = 2;
    c.eval_every = 10;
    c.methods = {spec};
    brisk::train::Trainer t(c, brisk::efficiency::make_methods);
    t.fit();
    auto lines = read_jsonl(c.out + "/metrics.jsonl");
    int64_t first = lines.front()["params"], last = lines.back()["params"];
    auto& g = static_cast<GPT&>(t.model());
    if (spec == "grow:kind=stack") {
      CHECK(g.blocks.size() == 2);
    } else {
      CHECK(gm::gpt_hidden(g) == 128);
      CHECK(gm::gpt_heads(g) == 2);
      CHECK(min(g.blocks[0]->mlp->gate).item() == 1.0);  // ramped up by the end
    }
    CHECK(first < last);
    // `brisk generate`'s path: a fresh Trainer rebuilds the grown model from the checkpoint.
    {
      brisk::train::Trainer back(c, brisk::efficiency::make_methods);
      back.restore_model(c.out);
      auto& gb = static_cast<GPT&>(back.model());
      g.eval();
      NoGradGuard ng;
      Tensor idx = (rand({2, 16}) * 255.0).to(DType::i64);
      CHECK(max_abs_diff(gb.forward(idx), g.forward(idx)) == 0.0);
    }
    CHECK(last == GPT(brisk::models::gpt_config("gpt-tiny", {0, 32, 2, 2, 32, -1})).num_parameters());
    CHECK(std::isfinite(lines.back()["val_loss"].get<double>()));
    TrainConfig r = c;
    r.out = c.out + "_r";
    check_resume_bit_exact(r, {7, 30});
  }
  TrainConfig n2n = lm_config("lm_n2n");
  n2n.methods = {"grow:kind=net2net"};
  CHECK_THROWS_WITH(brisk::train::Trainer(n2n, brisk::efficiency::make_methods).fit(),
                    Catch::Contains("grow (kind=stack: depth; kind=msg: MLP width and heads)"));
}

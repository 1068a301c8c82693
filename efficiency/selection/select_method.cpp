// `--method select:kind=...`: the select family's keys, parsed and checked
// once, then handed to the member (one folder each, with its README card):
//   rs2/                 kind=rs2: a fresh random subset each epoch (ratio=0.5)
//   infobatch/           kind=infobatch: drop below-mean-loss examples, rescale the rest
//                        (ratio=0.5, delta=0.125)
//   static_pruning/      kind=el2n|forgetting: score, then keep the top (keep=0.5,
//                        start=1 (forgetting: 3), order=random|curriculum)
//   grand/               kind=grand: the same with GraNd scores (+ grand=last|full)
//   selective_backprop/  kind=selective-backprop: backpropagate by loss percentile
//                        (beta=1, history=1024, variant=prob|rank, keep=0.5, start, end)
//   rho_loss/            kind=rho-loss: reducible loss against a holdout-trained model
//                        (keep=0.1, holdout=0.1, il_model=mlp, il_epochs=2, il_lr=0.05)
// Shared: select_base.h (statistics store, counters, checkpoints). Every
// member keeps the per-example statistics up to date. The learning-rate
// schedule runs on epoch progress (train/trainer.cpp), so epochs that visit
// fewer examples still span one epoch of the schedule. Keys and measured
// results: docs/methods/selection.md.
#include <string>

#include "efficiency/method.h"
#include "efficiency/selection/select_base.h"
#include "models/models.h"

namespace brisk::efficiency {

using namespace selection_methods;

namespace {
bool is_static(const std::string& kind) { return kind == "el2n" || kind == "forgetting" || kind == "grand"; }
const std::vector<std::string> kSelectKeys = {"kind", "ratio", "delta", "keep", "start", "end", "order", "grand",
                                              "beta", "history", "variant", "holdout", "il_model", "il_epochs",
                                              "il_lr"};
}  // namespace

void register_selection_methods() {
  register_method("select", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<SelectSpec>();  // parsed here, then handed to the member
    m->kind = a.get_string("kind", "rs2");
    BRISK_CHECK(m->kind == "rs2" || m->kind == "infobatch" || is_static(m->kind) || m->kind == "selective-backprop" ||
                    m->kind == "rho-loss",
                "--method select: unknown kind '", m->kind,
                "' (known: selective-backprop, rho-loss, rs2, infobatch, el2n, forgetting, grand)");
    a.set_kind("kind=" + m->kind, kSelectKeys);  // each kind reads only its own keys
    if (m->kind == "rho-loss") {
      m->keep = a.get_double("keep", 0.1);
      m->holdout = a.get_double("holdout", 0.1);
      m->il_model = a.get_string("il_model", "mlp");
      m->il_epochs = a.get_int("il_epochs", 2);
      m->il_lr = a.get_double("il_lr", 0.05);
      BRISK_CHECK(m->keep > 0 && m->keep <= 1, "--method select: keep must be in (0, 1], got ", m->keep);
      BRISK_CHECK(m->holdout > 0 && m->holdout < 1, "--method select: holdout must be in (0, 1), got ", m->holdout);
      BRISK_CHECK(m->il_epochs >= 1 && m->il_lr > 0, "--method select: il_epochs must be >= 1 and il_lr > 0");
      models::make_model(m->il_model);  // validates the name now, not mid-run
      return make_rho_loss_select(*m);
    }
    if (m->kind == "selective-backprop") {
      m->variant = a.get_string("variant", "prob");
      BRISK_CHECK(m->variant == "prob" || m->variant == "rank", "--method select: unknown variant '", m->variant,
                  "' (known: prob, rank)");
      a.set_kind("kind=selective-backprop,variant=" + m->variant, kSelectKeys);
      if (m->variant == "prob") {  // probability F(loss)^beta over the loss history
        m->beta = a.get_double("beta", 1.0);
        m->history = a.get_int("history", 1024);
      } else {  // rank: the top keep·B losses of each batch
        m->keep = a.get_double("keep", 0.5);
      }
      m->win_start = a.get_double("start", -1);
      m->win_end = a.get_double("end", -1);
      BRISK_CHECK(m->beta >= 0, "--method select: beta must be >= 0, got ", m->beta);
      BRISK_CHECK(m->history >= 1, "--method select: history must be >= 1");
      BRISK_CHECK(m->keep > 0 && m->keep <= 1, "--method select: keep must be in (0, 1], got ", m->keep);
      return make_selective_backprop_select(*m);
    }
    if (is_static(m->kind)) {
      m->keep = a.get_double("keep", 0.5);
      // forgetting needs two visits for an event: by default 3 epochs of counting
      m->start = a.get_int("start", m->kind == "forgetting" ? 3 : 1);
      std::string order = a.get_string("order", "random");
      BRISK_CHECK(order == "random" || order == "curriculum", "--method select: unknown order '", order,
                  "' (known: random, curriculum)");
      m->curriculum = order == "curriculum";
      if (m->kind == "grand") {
        std::string g = a.get_string("grand", "last");
        BRISK_CHECK(g == "last" || g == "full", "--method select: unknown grand scope '", g, "' (known: last, full)");
        m->grand_scope = g == "full" ? selection::GrandScope::full : selection::GrandScope::last;
      }
      BRISK_CHECK(m->keep > 0 && m->keep <= 1, "--method select: keep must be in (0, 1], got ", m->keep);
      BRISK_CHECK(m->start >= 1, "--method select: start must be >= 1 epoch of scoring, got ", m->start);
      BRISK_CHECK(m->kind != "forgetting" || m->start >= 2, "--method select: kind=forgetting needs start >= 2 "
                  "epochs (a forgetting event is a change between two visits of an example), got start=", m->start);
      return m->kind == "grand" ? make_grand_select(*m) : make_static_select(*m);
    }
    m->ratio = a.get_double("ratio", 0.5);
    if (m->kind == "rs2") {
      BRISK_CHECK(m->ratio > 0 && m->ratio <= 1, "--method select: ratio must be in (0, 1], got ", m->ratio);
      return make_rs2_select(*m);
    } else {
      m->delta = a.get_double("delta", 0.125);
      BRISK_CHECK(m->ratio >= 0 && m->ratio < 1, "--method select: infobatch ratio must be in [0, 1), got ", m->ratio);
      BRISK_CHECK(m->delta >= 0 && m->delta <= 1, "--method select: delta must be in [0, 1], got ", m->delta);
    }
    return make_infobatch_select(*m);
  });
}

}  // namespace brisk::efficiency

// `--method grow:kind=...`: the grow family's keys, parsed and checked once,
// then handed to the member (one folder each, with its README card):
//   net2net/  function-preserving widening (Net2WiderNet), noise=0.01
//   msg/      masked structural growth: gated new units, ramp=0.05
//   stack/    progressive stacking: depth, not width (--model resnet-deep)
// Shared keys: start, the starting fraction of width (or of each identity
// run's depth); points, slash-separated fractions of training at which the
// size doubles. Defaults: net2net start=0.5, points=0.4 (half width for 40%
// of the run: the measured best of the short spellings, docs/methods/
// growth.md); msg start=0.25, points=0.25/0.5; stack start=0.5,
// points=0.25/0.5. Shared code: grow_base.h (schedule,
// replay on resume, metrics) and surgery/surgery.h. docs/methods/growth.md.
#include <sstream>

#include "efficiency/growth/grow_base.h"
#include "efficiency/method.h"

namespace brisk::efficiency {

using namespace growth_methods;

namespace {

std::vector<double> parse_points(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, '/')) {
    try {
      size_t used = 0;
      double v = std::stod(item, &used);
      BRISK_CHECK(used == item.size(), "");
      out.push_back(v);
    } catch (const std::exception&) {
      BRISK_FAIL("--method grow: points must be fractions separated by '/', e.g. 0.25/0.5, got '", s, "'");
    }
  }
  return out;
}

}  // namespace

void register_growth_methods() {
  register_method("grow", [](MethodArgs& a) -> std::unique_ptr<train::Callback> {
    auto m = std::make_unique<GrowSpec>();  // parsed here, then handed to the member
    m->kind = a.get_string("kind", "net2net");
    BRISK_CHECK(m->kind == "net2net" || m->kind == "msg" || m->kind == "stack", "--method grow: unknown kind '",
                m->kind, "' (known: net2net, msg, stack)");
    a.set_kind("kind=" + m->kind, {"kind", "start", "points", "noise", "ramp"});  // each kind reads only its own keys
    if (m->kind == "msg") {
      m->ramp = a.get_double("ramp", 0.05);
      BRISK_CHECK(m->ramp >= 0 && m->ramp < 1, "--method grow: ramp must be in [0, 1), got ", m->ramp);
    }
    // Net2WiderNet's copies get identical updates until something breaks the
    // symmetry: Chen et al. add noise to the new weights; so does the default.
    if (m->kind == "net2net") m->noise = a.get_double("noise", 0.01);
    bool n2n = m->kind == "net2net";
    m->start = a.get_double("start", m->kind == "msg" ? 0.25 : 0.5);
    m->points = parse_points(a.get_string("points", n2n ? "0.4" : "0.25/0.5"));
    BRISK_CHECK(!m->points.empty(), "--method grow: points is empty, so the model would never grow; give "
                "fractions of training separated by '/', e.g. points=0.25/0.5");
    BRISK_CHECK(m->start > 0 && m->start <= 1, "--method grow: start must be in (0, 1], got ", m->start);
    BRISK_CHECK(m->noise >= 0, "--method grow: noise must be >= 0");
    for (size_t i = 0; i < m->points.size(); ++i)
      BRISK_CHECK(m->points[i] > 0 && m->points[i] < 1 && (i == 0 || m->points[i] > m->points[i - 1]),
                  "--method grow: points must be increasing fractions in (0, 1)");
    if (m->kind == "stack") return make_stack_grow(*m);
    if (m->kind == "msg") return make_msg_grow(*m);
    return make_net2net_grow(*m);
  });
}

}  // namespace brisk::efficiency

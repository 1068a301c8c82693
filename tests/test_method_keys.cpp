// Each method member accepts exactly its own keys: a key that does not apply
// to the chosen kind is an error naming that kind and listing its keys
// (before, `prune:structure=2:4,target=0.9` silently gave 50%).
#include "efficiency/method.h"
#include "tests/helpers.h"

using brisk::efficiency::make_method;
using Catch::Contains;

TEST_CASE("method keys: a key that does not apply to the kind is refused, naming the kind's keys", "[methods]") {
  struct Bad {
    const char* spec;
    const char* kind;
    const char* key;
  };
  for (const Bad& b : std::vector<Bad>{
           {"prune:structure=2:4,target=0.9", "structure=2:4", "target"},
           {"prune:structure=2:4,scope=global", "structure=2:4", "scope"},
           {"prune:schedule=oneshot,alpha=0.5", "schedule=oneshot", "alpha"},
           {"prune:schedule=oneshot,frequency=10", "schedule=oneshot", "frequency"},
           {"prune:schedule=gradual,rounds=3", "schedule=gradual", "rounds"},
           {"prune:schedule=imp,frequency=10", "schedule=imp", "frequency"},
           {"prune:schedule=imp,start=0.1", "schedule=imp", "start"},
           {"prune:schedule=rigl,scope=layer", "schedule=rigl", "scope"},
           {"prune:schedule=set,rewind=0.1", "schedule=set", "rewind"},
           {"prune:structure=channel,alpha=0.3", "structure=channel", "alpha"},
           {"prune:structure=channel,distribution=erk", "structure=channel", "distribution"},
           {"grow:kind=msg,noise=0.1", "kind=msg", "noise"},
           {"grow:kind=net2net,ramp=0.1", "kind=net2net", "ramp"},
           {"grow:kind=stack,noise=0.1", "kind=stack", "noise"},
           {"select:kind=selective-backprop,variant=rank,beta=2", "variant=rank", "beta"},
           {"select:kind=selective-backprop,keep=0.3", "variant=prob", "keep"},
           {"select:kind=rs2,keep=0.5", "kind=rs2", "keep"},
           {"select:kind=infobatch,keep=0.5", "kind=infobatch", "keep"},
           {"select:kind=el2n,ratio=0.5", "kind=el2n", "ratio"},
           {"select:kind=el2n,grand=full", "kind=el2n", "grand"},
           {"select:kind=rho-loss,ratio=0.5", "kind=rho-loss", "ratio"},
       }) {
    INFO(b.spec);
    CHECK_THROWS_WITH(make_method(b.spec), Contains(std::string("key '") + b.key + "' does not apply to") &&
                                               Contains(b.kind) && Contains("its keys:"));
  }
  // each member's own keys are accepted
  for (const char* ok : {"prune:schedule=oneshot,target=0.5,scope=global,start=0.2",
                         "prune:schedule=gradual,target=0.8,initial=0.1,start=0.1,end=0.6,frequency=5,scope=layer",
                         "prune:schedule=imp,target=0.8,rounds=4,rewind=0.05,scope=global",
                         "prune:schedule=rigl,target=0.8,alpha=0.2,distribution=uniform,start=0,end=0.7,frequency=50",
                         "prune:structure=2:4,start=0.5", "prune:structure=channel,target=0.5,start=0.2,score=bn",
                         "grow:kind=net2net,noise=0.01,start=0.5,points=0.4",
                         "grow:kind=msg,ramp=0.1,start=0.5,points=0.4", "grow:kind=stack,start=0.5,points=0.3/0.6",
                         "select:kind=selective-backprop,beta=2,history=64,start=0.1,end=0.9",
                         "select:kind=selective-backprop,variant=rank,keep=0.3,start=0.2,end=0.8",
                         "select:kind=rs2,ratio=0.3", "select:kind=infobatch,ratio=0.4,delta=0.2",
                         "select:kind=el2n,keep=0.6,start=2,order=curriculum", "select:kind=grand,grand=full,keep=0.6",
                         "select:kind=rho-loss,keep=0.2,holdout=0.2,il_model=mlp,il_epochs=1,il_lr=0.1"}) {
    INFO(ok);
    CHECK_NOTHROW(make_method(ok));
  }
}

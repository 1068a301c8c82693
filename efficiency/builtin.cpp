// The built-in method families, registered once (efficiency/method.cpp).
// Each family parses its keys and picks the member (one folder each).
#include "efficiency/method.h"

namespace brisk::efficiency {

void register_pruning_methods();    // efficiency/pruning/prune_method.cpp
void register_selection_methods();  // efficiency/selection/select_method.cpp
void register_growth_methods();     // efficiency/growth/grow_method.cpp
void register_precision_methods();  // efficiency/precision/precision_method.cpp
void register_averaging_methods();  // efficiency/averaging/ema/ema_method.cpp
void register_freezing_methods();   // efficiency/freezing/freeze_method.cpp
void register_regularization_methods();  // efficiency/regularization/regularize_method.cpp
void register_stochastic_depth_method();  // efficiency/stochastic_depth/stochastic_depth.cpp
void register_resizing_method();          // efficiency/resizing/progressive_resize.cpp
void register_factorization_method();     // efficiency/factorization/factorize_method.cpp
void register_batch_scaling_methods();    // efficiency/batch_scaling/batch_warmup_method.cpp
void register_seq_warmup_methods();       // efficiency/seq_warmup/seq_warmup_method.cpp

void register_builtin_methods() {
  register_pruning_methods();
  register_precision_methods();
  register_selection_methods();
  register_growth_methods();
  register_averaging_methods();
  register_freezing_methods();
  register_regularization_methods();
  register_stochastic_depth_method();
  register_resizing_method();
  register_factorization_method();
  register_batch_scaling_methods();
  register_seq_warmup_methods();
}

}  // namespace brisk::efficiency

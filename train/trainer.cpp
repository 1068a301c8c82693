// The training loop. See train/callback.h for the event order.
#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/flops.h"
#include "core/cuda.h"
#include "core/device.h"
#include "models/models.h"
#include "optim/layerwise.h"
#include "train/progress.h"

namespace brisk::train {

namespace fs = std::filesystem;
namespace F = brisk::nn::functional;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Inputs and targets go to the training device; dataset indices stay on the
// cpu (per-example statistics live there).
void Trainer::to_device(data::Batch& b) const {
  if (device_.type == DeviceType::cpu) return;
  b.x = b.x.to(device_);
  b.y = b.y.to(device_);
}

// The data must be what the model reads: checked once, when the data is
// opened, so that a wrong image size is named here and not deep inside an op
// (or silently absorbed by a pooling layer that drops a column).
void Trainer::check_data_fits_model(const data::Dataset& d, const char* split) const {
  std::string where = cfg_.data_dir.empty() ? cfg_.data : cfg_.data_dir;
  BRISK_CHECK(d.size() > 0, "dataset ", where, ": the ", split, " split is empty");
  if (models::is_gpt(cfg_.model) || d.is_text()) {
    BRISK_CHECK(models::is_gpt(cfg_.model) && d.is_text(), "model ", cfg_.model, " and dataset ", cfg_.data,
                " do not fit: language models (gpt-*) train on text (--data text:kjv or text:PATH), image "
                "models on images");
    int64_t V = static_cast<models::GPT&>(*model_).config.vocab_size;
    BRISK_CHECK(d.num_classes <= V, "dataset ", cfg_.data, " has a vocabulary of ", d.num_classes,
                " tokens but model ", cfg_.model, " embeds ", V);
    return;
  }
  Shape got(d.images.shape().begin() + 1, d.images.shape().end()), want = models::input_shape(cfg_.model);
  BRISK_CHECK(got == want, "dataset ", where, ": ", split, " images are ", shape_str(got), " (C, H, W) but model ",
              cfg_.model, " reads ", shape_str(want), " (28x28 grey images)");
}

models::GPTOptions gpt_options(const TrainConfig& c) {
  models::GPTOptions o;
  o.block_size = c.block_size;
  o.n_layer = c.n_layer;
  o.n_head = c.n_head;
  o.n_embd = c.n_embd;
  o.dropout = c.dropout;
  return o;
}

// logits [B, classes] or, for a language model, [B, T, V] with targets
// [B, T]: the loss per example (per sequence: the mean over its tokens).
Tensor Trainer::example_losses(const Tensor& lg, const Tensor& y, double smoothing) const {
  if (lg.dim() != 3) return F::cross_entropy(lg, y, F::Reduction::none, -100, smoothing);
  int64_t B = lg.size(0), T = lg.size(1), V = lg.size(2);
  Tensor l = F::cross_entropy(lg.reshape({B * T, V}), y.reshape({B * T}), F::Reduction::none, -100, smoothing);
  return mean(l.reshape({B, T}), {1});
}

Trainer::Trainer(TrainConfig cfg, const MethodBuilder& methods) : cfg_(std::move(cfg)) {
  cfg_.validate();
  device_ = Device::parse(cfg_.device);
  BRISK_CHECK(device_.type != DeviceType::meta, "--device meta: meta tensors hold no data; use cpu or cuda");
  if (device_.type == DeviceType::cuda) {
    if (pg_->size() > 1) {
      // One GPU per rank: rank r of a machine trains on its GPU r.
      BRISK_CHECK(cfg_.device == "cuda", "--device ", cfg_.device, " on ", pg_->size(), " ranks: give --device cuda "
                  "(each rank takes the GPU of its local rank), not one GPU for all");
      device_.index = pg_->local_rank();
    }
    cuda::require_device(device_.index, ("--device " + cfg_.device + " (rank " + std::to_string(pg_->rank()) + ")").c_str());
    if (pg_->size() > 1) device_comm_ = dist::make_nccl(*pg_, device_.index);
  }
  if (cfg_.threads > 0) {
    set_num_threads(int(cfg_.threads));
  } else if (pg_->local_size() > 1) {  // ranks sharing a machine share its cores
    int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    set_num_threads(std::max(1, cores / pg_->local_size()));
  }
  check_same_config_on_all_ranks();
  manual_seed(cfg_.seed);
  model_ = models::make_model(cfg_.model, gpt_options(cfg_));  // initialized on the cpu (same weights for any device) ...
  model_->to(device_);                      // ... then moved, before the optimizer sees it
  int64_t block = 0;  // text windows: the model's context
  if (models::is_gpt(cfg_.model)) {
    block = static_cast<models::GPT&>(*model_).config.block_size;
    BRISK_CHECK(cfg_.label_smoothing == 0, "--label-smoothing is for classifiers; a language model's loss "
                "(and its bits per byte) is the plain cross-entropy");
  }
  BRISK_CHECK(cfg_.data.rfind("text:", 0) != 0 || models::is_gpt(cfg_.model), "--data ", cfg_.data,
              " is text: train a language model on it (--model gpt-tiny or gpt-small), not ", cfg_.model);

  data::Dataset train_set = data::load_dataset(cfg_.data, cfg_.data_dir, true, block);
  test_set_ = data::load_dataset(cfg_.data, cfg_.data_dir, false, block);
  check_data_fits_model(train_set, "training");
  check_data_fits_model(test_set_, "test");
  BRISK_CHECK(cfg_.batch_size * pg_->size() <= train_set.size(), "--batch-size ", cfg_.batch_size,
              pg_->size() > 1 ? " on each of " + std::to_string(pg_->size()) + " ranks" : "", " exceeds the ",
              train_set.size(), " training examples of ", cfg_.data, ": an epoch would take no step");
  data::LoaderOptions lo;
  lo.batch_size = cfg_.batch_size;
  lo.rank = pg_->rank();
  lo.world = pg_->size();
  lo.seed = cfg_.seed;
  lo.augment = data::parse_augment(cfg_.augment);
  train_loader_ = std::make_unique<data::DataLoader>(train_set, lo);

  if (cfg_.optimizer == "sgd") {
    optim::SGDOptions o;
    o.lr = cfg_.lr;
    o.momentum = cfg_.momentum;
    o.nesterov = cfg_.nesterov;
    o.weight_decay = cfg_.weight_decay;
    optimizer_ = std::make_unique<optim::SGD>(model_->named_parameters(), o);
  } else if (cfg_.optimizer == "lars") {
    optim::LARSOptions o;
    o.lr = cfg_.lr;
    o.momentum = cfg_.momentum;
    o.weight_decay = cfg_.weight_decay;
    o.eta = cfg_.trust_coefficient;
    optimizer_ = std::make_unique<optim::LARS>(model_->named_parameters(), o);
  } else if (cfg_.optimizer == "lamb") {
    optim::LAMBOptions o;
    o.lr = cfg_.lr;
    o.weight_decay = cfg_.weight_decay;
    optimizer_ = std::make_unique<optim::LAMB>(model_->named_parameters(), o);
  } else {
    optim::AdamWOptions o;
    o.lr = cfg_.lr;
    o.weight_decay = cfg_.weight_decay;
    o.decay_matrices_only = cfg_.decay == "matrices";
    optimizer_ = std::make_unique<optim::AdamW>(model_->named_parameters(), o);
  }
  if (!cfg_.methods.empty()) {
    BRISK_CHECK(methods, "Trainer: the config names efficiency methods (", cfg_.methods.front(),
                ", ...) but no method builder was given: construct the Trainer with efficiency::make_methods");
    callbacks_ = methods(cfg_.methods);  // in composition order, conflicts refused
    if (models::is_gpt(cfg_.model))
      for (auto& cb : callbacks_)
        BRISK_CHECK(cb->supports_language_models(), "--method ", cb->name(), ": this method does not run on "
                    "language models in this version (it is built for the image models' batches, logits or "
                    "layers); on ", cfg_.model, " use precision, prune, select (infobatch, rs2, "
                    "selective-backprop), grow (kind=stack: depth; kind=msg: MLP width and heads) or seq-warmup");
    if (device_.type == DeviceType::cuda)
      for (auto& cb : callbacks_)
        BRISK_CHECK(cb->supports_cuda(), "--device ", cfg_.device, ": --method ", cb->name(), " runs on the cpu "
                    "only in this version (its statistics, rewinding or surgery use host memory); on cuda: prune "
                    "with schedule=oneshot|gradual or structure=N:M, precision with dtype=bf16 (rounding=nearest); "
                    "or use --device cpu");
  }
  optim::ScheduleOptions so;
  so.kind = cfg_.schedule;
  so.base_lr = cfg_.lr;
  // The schedule runs on training progress measured in full-data steps:
  // epoch e, batch b of an epoch with n_e batches is at e*N + b*N/n_e (N = full
  // epoch's batches). Plain runs: exactly the step. Selection methods that
  // visit fewer examples (RS2, InfoBatch) get the same curve per epoch, i.e.
  // the schedule is re-fitted to their reduced step count.
  so.total_steps = cfg_.steps > 0 ? cfg_.steps : cfg_.epochs * train_loader_->num_batches();
  so.warmup_steps = std::min<int64_t>(so.total_steps, int64_t(cfg_.warmup_epochs * double(train_loader_->num_batches())));
  so.step_size = std::max<int64_t>(1, so.total_steps / 3);
  schedule_ = std::make_unique<optim::LRSchedule>(so);
  show_progress_ = pg_->is_main() && (cfg_.progress == "on" || (cfg_.progress == "auto" && isatty(STDOUT_FILENO)));
  for (auto& cb : callbacks_)
    if (BatchSelector* s = cb->batch_selector()) {
      BRISK_CHECK(selector_ == nullptr, "only one batch-level selection method may run at a time, got a second: ",
                  cb->name());
      selector_ = s;
    }
}

Trainer::~Trainer() = default;

// The schedule's budget: the batches of every epoch (fewer where a selection
// method visits a subset). --max-steps only stops early, so a stopped-and-
// resumed run follows the same schedule.
int64_t Trainer::total_steps() const {
  if (cfg_.steps > 0) return cfg_.steps;  // the run ends there whatever the epochs' sizes
  int64_t n = train_loader_->dataset().size(), B = cfg_.batch_size, total = 0;
  for (int64_t e = 0; e < cfg_.epochs; ++e) {
    int64_t visit = n;
    for (auto& cb : callbacks_) visit = std::min(visit, cb->epoch_examples(e, n, B));
    visit /= pg_->size();  // this rank's share (data::LoaderOptions::rank)
    total += train_loader_->options().drop_last ? visit / B : (visit + B - 1) / B;
  }
  return std::max<int64_t>(total, 1);
}

int64_t Trainer::epochs() const {
  if (cfg_.steps == 0) return cfg_.epochs;
  int64_t nb = std::max<int64_t>(1, train_loader_->num_batches_full());
  return (cfg_.steps + nb - 1) / nb;
}

int64_t Trainer::full_steps() const {
  return cfg_.steps > 0 ? cfg_.steps : cfg_.epochs * std::max<int64_t>(1, train_loader_->num_batches_full());
}

void Trainer::add_callback(std::unique_ptr<Callback> cb) {
  BRISK_CHECK(cb != nullptr, "add_callback: no callback given");
  // A user's method may select per batch too (examples/loss_threshold_selection).
  if (BatchSelector* s = cb->batch_selector()) {
    BRISK_CHECK(selector_ == nullptr, "only one batch-level selection method may run at a time, got a second: ",
                cb->name());
    selector_ = s;
  }
  callbacks_.push_back(std::move(cb));
}

int64_t Trainer::schedule_position() const {
  if (cfg_.steps > 0) return state_.batches;  // --steps: the schedule spans the clock, whatever the epochs' sizes
  int64_t full = train_loader_->num_batches_full(), now = std::max<int64_t>(train_loader_->num_batches(), 1);
  return state_.epoch * full + state_.batch_in_epoch * full / now;
}

template <class F>
void Trainer::fire(F f) {
  for (auto& cb : callbacks_) {
    auto t0 = Clock::now();
    f(*cb);
    double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    phases_.methods[cb->name()] += dt;
    if (!in_segment_) phases_.methods_outside[cb->name()] += dt;
  }
}

namespace {
// Adds the seconds since the last mark to one phase.
struct PhaseClock {
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
  void to(double& phase) {
    auto now = std::chrono::steady_clock::now();
    phase += std::chrono::duration<double>(now - t).count();
    t = now;
  }
};
}  // namespace

EvalResult Trainer::evaluate() {
  PhaseClock ec;
  struct Done {  // adds the evaluation's time however it returns
    PhaseClock& c;
    double& d;
    ~Done() { c.to(d); }
  } done{ec, phases_.eval};
  NoGradGuard ng;
  sync_buffers();
  bool was_training = model_->is_training();
  model_->eval();
  // Text: loss and accuracy per token (next-token prediction). With several
  // ranks each evaluates every world-th batch and the sums are added up.
  data::DataLoader loader(test_set_, data::in_order(test_set_.is_text() ? 64 : 1000));
  loader.start_epoch(0);
  double sums[3] = {0, 0, 0};  // loss, correct, count
  double &loss_sum = sums[0], &correct = sums[1];
  int64_t n = 0;
  for (int64_t bi = pg_->rank(); bi < loader.num_batches(); bi += pg_->size()) {
    data::Batch b = loader.make_batch(bi);
    to_device(b);
    Tensor out = model_->forward(b.x);
    if (out.dim() == 3) out = out.reshape({-1, out.size(2)});
    Tensor y = b.y.reshape({-1});
    loss_sum += F::cross_entropy(out, y, F::Reduction::sum).item();
    correct += sum(eq(argmax(out, 1), y)).item();
    n += y.size(0);
  }
  sums[2] = double(n);
  pg_->all_reduce_sum(sums, 3);
  model_->train(was_training);
  return {sums[0] / sums[2], sums[1] / sums[2]};
}

// ---------------------------------------------------------------- data parallel

double Trainer::mean_over_ranks(double local_loss) const {
  double v = local_loss;
  pg_->all_reduce_sum(&v, 1);
  return v / double(pg_->size());
}

void Trainer::average_gradients() {
  std::vector<Tensor> params = model_->parameters();
  std::vector<double> has(params.size());
  for (size_t i = 0; i < params.size(); ++i) has[i] = params[i].grad().defined() ? 1.0 : 0.0;
  pg_->all_reduce_sum(has.data(), int64_t(has.size()));
  std::vector<Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    if (has[i] == 0) continue;
    Tensor g = params[i].grad();
    if (!g.defined() || !g.is_contiguous() || g.dtype() != DType::f32) {
      g = g.defined() ? g.to(DType::f32).contiguous() : zeros_like(params[i]);
      params[i].set_grad(g);
    }
    grads.push_back(g);
  }
  if (device_comm_) device_comm_->all_reduce_mean_(grads);
  else dist::all_reduce_mean_(*pg_, grads);
  for (auto& g : grads) phases_.comm_bytes += double(g.numel()) * 4.0;
  phases_.comm_steps += 1;
}

dist::GradReducer& Trainer::grad_reducer() {
  std::vector<Tensor> params = model_->parameters();
  // Surgery (growth, channel pruning, factorization) or freezing changes the
  // parameter set: buckets and hooks follow it.
  if (!reducer_ || !reducer_->serves(params)) {
    reducer_.reset();
    reducer_ = std::make_unique<dist::GradReducer>(*pg_, std::move(params), int64_t(cfg_.bucket_mb * 1e6));
  }
  return *reducer_;
}

// The same configuration on every rank, or a message naming what differs
// (all ranks reach the same verdict, so all exit alike).
void Trainer::check_same_config_on_all_ranks() const {
  if (pg_->size() == 1) return;
  std::string mine = cfg_.to_json().dump();
  std::vector<std::string> all = pg_->all_gather_bytes(mine);
  json first = json::parse(all[0]);
  for (int r = 1; r < pg_->size(); ++r) {
    if (all[size_t(r)] == all[0]) continue;
    json other = json::parse(all[size_t(r)]);
    std::string diff;
    for (auto& [k, v] : first.items())
      if (!other.contains(k) || other[k] != v)
        diff += (diff.empty() ? "" : "; ") + k + " = " + v.dump() + " on rank 0 but " +
                (other.contains(k) ? other[k].dump() : "missing") + " on rank " + std::to_string(r);
    BRISK_FAIL("data-parallel ranks were started with different configurations: ", diff,
               ". Start every rank with the same flags and recipe.");
  }
}

// Methods that choose an epoch's order (selection) must choose it alike on
// every rank, or the shards overlap; checked by hash each epoch.
void Trainer::check_same_order_on_all_ranks() const {
  if (pg_->size() == 1) return;
  uint64_t h = epoch_order.defined() ? dist::tensor_hash(epoch_order.to(DType::i64)) : 0;
  std::vector<uint64_t> all(size_t(pg_->size()));
  pg_->all_gather(&h, sizeof h, all.data());
  for (int r = 1; r < pg_->size(); ++r)
    BRISK_CHECK(all[size_t(r)] == all[0], "data-parallel: rank ", r, " chose another order for epoch ",
                state_.epoch + 1, " than rank 0 (a selection method decided from rank-local statistics)");
}

// Every rank must hold the same model: checked at each evaluation, naming the
// first parameter that differs (a method that decided from rank-local data).
void Trainer::check_same_model_on_all_ranks() const {
  if (pg_->size() == 1) return;
  auto named = model_->named_parameters();
  std::vector<uint64_t> mine;
  for (auto& [k, p] : named) {
    Tensor m = get_mask(p);
    mine.push_back(dist::tensor_hash(p.detach().to(kCPU)) ^ (m.defined() ? dist::tensor_hash(m.to(kCPU)) * 31 : 0));
  }
  int64_t n = int64_t(mine.size());
  BRISK_CHECK(pg_->all_reduce_min(n) == pg_->all_reduce_max(n), "data-parallel: the ranks' models have different "
              "numbers of parameters (", n, " on rank ", pg_->rank(), "): a method changed the architecture on "
              "some ranks only");
  std::vector<uint64_t> all(size_t(n * pg_->size()));
  pg_->all_gather(mine.data(), n * int64_t(sizeof(uint64_t)), all.data());
  for (int r = 1; r < pg_->size(); ++r)
    for (int64_t i = 0; i < n; ++i)
      BRISK_CHECK(all[size_t(r * n + i)] == all[size_t(i)], "data-parallel: parameter ", named[size_t(i)].first,
                  " differs between rank 0 and rank ", r, " at step ", state_.step,
                  ": the ranks' models diverged (a method decided from rank-local data)");
}

// BatchNorm's running statistics see only this rank's examples (BatchNorm is
// local to a rank, as in PyTorch's DDP without SyncBatchNorm): before an
// evaluation or a checkpoint every rank takes rank 0's, as DDP broadcasts them.
void Trainer::sync_buffers() {
  if (pg_->size() == 1) return;
  for (auto& [k, b] : model_->named_buffers()) {
    Tensor c = b.contiguous();
    if (device_comm_) device_comm_->broadcast_(c, 0);
    else dist::broadcast_(*pg_, c, 0);
    if (!c.is_same(b)) b.copy_(c);
  }
}

void Trainer::train_one_batch() {
  skip_step = false;
  loss_scale = 1.0;
  nonfinite_loss_skips = false;
  loss_weights = Tensor();
  label_smoothing = cfg_.label_smoothing;
  fire([&](Callback& c) { c.on_batch_start(*this); });
  PhaseClock pc;
  logits = model_->forward(batch.x);
  pc.to(phases_.forward);
  fire([&](Callback& c) { c.on_after_forward(*this); });
  pc = PhaseClock();
  per_example_loss = example_losses(logits, batch.y, label_smoothing);
  pc.to(phases_.forward);
  fire([&](Callback& c) { c.on_after_loss(*this); });
  pc = PhaseClock();
  loss = loss_weights.defined() ? sum(per_example_loss * loss_weights) / double(per_example_loss.numel())
                                : mean(per_example_loss);
  double lv = loss.item();
  pc.to(phases_.forward);
  if (pg_->size() > 1) {
    lv = mean_over_ranks(lv);
    pc.to(phases_.communicate);
  }
  BRISK_CHECK(std::isfinite(lv) || nonfinite_loss_skips, "training stopped: loss is ", std::isnan(lv) ? "nan" : lv > 0 ? "inf" : "-inf", " at step ", state_.step, " (epoch ",
              state_.epoch + 1, ", batch ", batch.index, "). ", last_checkpoint_note(),
              " Lower --lr or enable --clip-grad.");
  optimizer_->zero_grad();
  // Several ranks on the cpu: each bucket of gradients is averaged as soon as
  // the backward pass has produced it; the wait for the last ones counts as
  // communication.
  const bool overlap = pg_->size() > 1 && !device_comm_ && cfg_.comm_overlap;
  if (overlap) grad_reducer().arm();
  (loss_scale != 1.0 ? loss * loss_scale : loss).backward();
  pc.to(phases_.backward);
  if (overlap) {
    reducer_->finish();
    phases_.comm_bytes += double(reducer_->values()) * 4.0;
    phases_.comm_steps += 1;
    pc.to(phases_.communicate);
  } else if (pg_->size() > 1) {
    average_gradients();
    pc.to(phases_.communicate);
  }
  fire([&](Callback& c) { c.on_after_backward(*this); });
  pc = PhaseClock();
  if (cfg_.clip_grad > 0) optim::clip_grad_norm_(model_->parameters(), cfg_.clip_grad);
  optimizer_->set_lr(schedule_->lr_at(schedule_position()));
  pc.to(phases_.optimizer);
  fire([&](Callback& c) { c.on_before_step(*this); });
  pc = PhaseClock();
  if (!skip_step) optimizer_->step();
  pc.to(phases_.optimizer);
  fire([&](Callback& c) { c.on_after_step(*this); });
  state_.step++;
  state_.samples_seen += batch.y.size(0);
  if (batch.y.dim() == 2) state_.tokens_seen += batch.y.numel();
  if (std::isfinite(lv)) {  // a skipped overflow step (loss scaling) adds nothing to the mean
    state_.loss_sum += lv;
    state_.loss_count++;
    trace_loss_sum_ += lv;
    trace_loss_count_++;
  }
  if (telemetry_.on() && state_.step % cfg_.telemetry_every == 0 && trace_loss_count_ > 0) {
    // Each method's state as it reports it in metrics.jsonl (image side,
    // frozen layers, batch size, sparsity, ...), at this finer grain; timings
    // (keys ending in _s) are left to the phases records.
    json methods = json::object();
    for (auto& cb : callbacks_) cb->add_metrics(methods);
    auto timing = [](const std::string& k) { return k.size() > 2 && k.compare(k.size() - 2, 2, "_s") == 0; };
    for (auto it = methods.begin(); it != methods.end();) it = timing(it.key()) ? methods.erase(it) : std::next(it);
    record("train",
           {{"loss", trace_loss_sum_ / double(trace_loss_count_)}, {"lr", optimizer_->lr()}, {"methods", methods}});
    trace_loss_sum_ = 0;
    trace_loss_count_ = 0;
  }
  fire([&](Callback& c) { c.on_batch_end(*this); });
  logits = per_example_loss = loss = Tensor();  // free the graph's activations now
}

void Trainer::train_loaded() {
  int64_t k = 1;
  for (auto& cb : callbacks_) k = std::max(k, cb->batch_splits(*this));
  int64_t B = batch.y.size(0);
  k = std::min(k, B);
  batch_part = 0;
  batch_parts = k;
  if (k == 1) return train_one_batch();
  // Parts of B / k examples, the first B % k one larger: [len, ...] slices of
  // the loaded batch in order, so the examples seen per epoch are unchanged.
  data::Batch whole = std::move(batch);
  for (int64_t i = 0, off = 0; i < k; ++i) {
    int64_t len = B / k + (i < B % k ? 1 : 0);
    batch.x = whole.x.narrow(0, off, len).contiguous();
    batch.y = whole.y.narrow(0, off, len).contiguous();
    batch.indices = whole.indices.narrow(0, off, len).contiguous();
    batch.epoch = whole.epoch;
    batch.index = whole.index;
    batch_part = i;
    train_one_batch();
    off += len;
  }
}

void Trainer::train_selected(data::Batch loaded, BatchSelector& sel) {
  auto t0 = Clock::now();
  Tensor chosen;
  if (!sel.active(*this)) {
    chosen = full({loaded.y.numel()}, 1.0, DType::boolean);  // no scoring pass: every example trains
  } else {
    NoGradGuard ng;
    model_->eval();  // scoring must not move BatchNorm statistics
    Tensor lg = model_->forward(loaded.x);
    model_->train();
    Tensor losses = example_losses(lg, loaded.y, cfg_.label_smoothing);
    chosen = sel.select(*this, loaded.indices, loaded.y, losses, lg);
  }
  double scored = std::chrono::duration<double>(Clock::now() - t0).count();
  score_s_ += scored;
  phases_.methods["select (scoring passes)"] += scored;
  BRISK_CHECK(chosen.dtype() == DType::boolean && chosen.numel() == loaded.y.numel(),
              "batch selector returned ", chosen.str(), " for a batch of ", loaded.y.numel());
  std::vector<double> pick;
  const bool* c = chosen.contiguous().data_ptr<bool>();
  for (int64_t i = 0; i < chosen.numel(); ++i)
    if (c[i]) pick.push_back(double(i));
  if (!pick.empty()) {
    Tensor rows = from_vector(pick, {int64_t(pick.size())}, DType::i64);
    auto take = [&](const Tensor& t, const Tensor& prev) {
      Tensor s = index_select(t, 0, rows);
      return prev.defined() && prev.numel() > 0 ? cat({prev, s}, 0) : s;
    };
    buffer_.x = take(loaded.x, buffer_.x);
    buffer_.y = take(loaded.y, buffer_.y);
    buffer_.indices = take(loaded.indices, buffer_.indices);
  }
  int64_t B = cfg_.batch_size;
  // Every rank trains a step only when every rank has a full batch waiting
  // (selection keeps a different number per rank), so the ranks stay in step.
  auto buffered = [&] {
    int64_t n = buffer_.y.defined() ? buffer_.y.size(0) : 0;
    return pg_->size() > 1 ? pg_->all_reduce_min(n) : n;
  };
  while (buffered() >= B) {
    int64_t left = buffer_.y.size(0) - B;
    batch.x = buffer_.x.narrow(0, 0, B).contiguous();
    batch.y = buffer_.y.narrow(0, 0, B).contiguous();
    batch.indices = buffer_.indices.narrow(0, 0, B).contiguous();
    batch.epoch = loaded.epoch;
    batch.index = loaded.index;
    buffer_.x = buffer_.x.narrow(0, B, left).contiguous();
    buffer_.y = buffer_.y.narrow(0, B, left).contiguous();
    buffer_.indices = buffer_.indices.narrow(0, B, left).contiguous();
    train_loaded();
  }
}

void Trainer::restore_model(const std::string& dir) {
  BRISK_CHECK(fs::exists(fs::path(dir) / "checkpoint.json"), dir, " holds no checkpoint.json (a run writes one "
              "after its first evaluation)");
  fire([&](Callback& c) { c.on_fit_start(*this); });
  load_checkpoint(dir);
  model_->eval();
}

EvalResult Trainer::fit(bool resume) {
  BRISK_CHECK(!fs::exists(cfg_.out) || fs::is_directory(cfg_.out), "--out ", cfg_.out,
              " exists and is not a folder; choose a folder for the run");
  if (is_main()) fs::create_directories(cfg_.out);
  telemetry_.open(cfg_.out, cfg_.telemetry, is_main());
  if (!resume) {
    BRISK_CHECK(!fs::exists(fs::path(cfg_.out) / "checkpoint.json"), "output folder ", cfg_.out,
                " already holds a checkpoint; continue it with --resume ", cfg_.out,
                " or choose another --out (brisk never overwrites a checkpoint with a fresh run)");
    telemetry_.reset();  // a file left by an earlier run here that never checkpointed
  }
  fire([&](Callback& c) { c.on_fit_start(*this); });
  if (resume) {
    load_checkpoint(cfg_.out);
    if (is_main()) trim_metrics();
    telemetry_.trim(telemetry_lines_);  // the records of fit_start above were written by the first run
    saved_step_ = state_.step;
  } else {
    if (is_main()) std::ofstream(fs::path(cfg_.out) / "metrics.jsonl", std::ios::trunc);
  }
  if (is_main()) write_config_json();
  // --steps ends the run at that clock, mid-epoch if need be; else the
  // epochs do. --max-steps only stops early.
  auto budget_left = [&] { return cfg_.steps == 0 || state_.batches < cfg_.steps; };
  auto steps_left = [&] { return budget_left() && (cfg_.max_steps == 0 || state_.step < cfg_.max_steps); };
  while ((cfg_.steps > 0 || state_.epoch < cfg_.epochs) && steps_left()) {
    // A method may set epoch_order at epoch_start; mid-epoch (after an
    // --eval-every stop or a resume) the epoch keeps the order it began with.
    auto t0 = Clock::now();  // epoch_start work (selection plans, scoring models) is training time
    segment_start_ = t0;
    in_segment_ = true;
    int64_t f0 = flops_counted();
    if (state_.batch_in_epoch == 0) {
      epoch_order = Tensor();
      fire([&](Callback& c) { c.on_epoch_start(*this); });
      check_same_order_on_all_ranks();
    }
    train_loader_->start_epoch(state_.epoch, state_.batch_in_epoch, epoch_order);
    int64_t epoch_batches = train_loader_->num_batches();
    // An epoch that yields no batch would never bring a --steps run to its end.
    BRISK_CHECK(cfg_.steps == 0 || epoch_batches > 0, "--steps ", cfg_.steps, ": epoch ", state_.epoch + 1,
                " has no batch to train on (batch-size ", cfg_.batch_size, ", ", train_loader_->dataset().size(),
                " examples); the run could never reach its steps");
    ProgressBar bar(show_progress_, "epoch " + std::to_string(state_.epoch + 1) + "/" + std::to_string(epochs()),
                    epoch_batches);
    int64_t bar_samples = 0;
    bool stop_for_eval = false;
    while (steps_left()) {
      PhaseClock dc;
      auto b = train_loader_->next();
      if (b) to_device(*b);
      dc.to(phases_.data);
      if (!b) break;
      bar_samples += b->y.size(0);
      if (selector_) {
        train_selected(std::move(*b), *selector_);
      } else {
        batch = std::move(*b);
        train_loaded();
      }
      state_.batch_in_epoch++;
      state_.batches++;
      bar.update(state_.batch_in_epoch, bar_samples, state_.loss_sum / double(std::max<int64_t>(state_.loss_count, 1)));
      // When the step count has reached a multiple of --eval-every not yet
      // evaluated (a checkpoint follows every evaluation): with batch-level
      // selection several loaded batches can pass without an optimizer step,
      // with batch-size warmup one loaded batch can take several.
      if (cfg_.eval_every > 0 && state_.step / cfg_.eval_every > std::max<int64_t>(saved_step_, 0) / cfg_.eval_every &&
          state_.batch_in_epoch < epoch_batches) {
        stop_for_eval = true;
        break;
      }
    }
    state_.wall_s += std::chrono::duration<double>(Clock::now() - t0).count();
    in_segment_ = false;
    state_.flops += double(flops_counted() - f0);
    bar.finish();
    bool epoch_done = state_.batch_in_epoch >= epoch_batches;
    if (epoch_done) {
      state_.epoch++;
      state_.batch_in_epoch = 0;
      fire([&](Callback& c) { c.on_epoch_end(*this); });
    }
    (void)stop_for_eval;
    fire([&](Callback& c) { c.on_eval_start(*this); });
    last_eval_ = evaluate();
    // A diverged model is never checkpointed: the last good checkpoint stays
    // the one --resume continues from.
    BRISK_CHECK(std::isfinite(last_eval_.loss), "training stopped: evaluation loss is ",
                std::isnan(last_eval_.loss) ? "nan" : "inf",
                " after step ", state_.step, "; the model has diverged. ", last_checkpoint_note(),
                " Lower --lr or enable --clip-grad.");
    check_same_model_on_all_ranks();
    write_metrics(last_eval_);
    fire([&](Callback& c) { c.on_eval_end(*this); });
    record_phases();
    telemetry_.flush();  // before the checkpoint that covers these records
    save_checkpoint();
    saved_step_ = state_.step;
  }
  fire([&](Callback& c) { c.on_fit_end(*this); });
  return last_eval_;
}

double Trainer::training_seconds() const {
  if (!in_segment_) return state_.wall_s;
  return state_.wall_s + std::chrono::duration<double>(Clock::now() - segment_start_).count();
}

void Trainer::record(const std::string& kind, json fields) {
  if (!telemetry_.on()) return;
  json r = {{"kind", kind},
            {"step", state_.step},
            {"clock", state_.batches},
            {"epoch", double(state_.epoch) + double(state_.batch_in_epoch) / double(std::max<int64_t>(train_loader_->num_batches(), 1))},
            {"wall_s", training_seconds()}};
  for (auto& [k, v] : fields.items()) r[k] = v;
  telemetry_.record(std::move(r));
}

// Seconds per phase since the last record (so a resumed run's records add up).
void Trainer::record_phases() {
  if (!telemetry_.on()) return;
  const PhaseTimes &a = phases_, &b = phases_recorded_;
  json methods = json::object();
  for (auto& [k, v] : a.methods) {
    auto it = b.methods.find(k);
    methods[k] = v - (it == b.methods.end() ? 0.0 : it->second);
  }
  record("phases", {{"data", a.data - b.data},
                    {"forward", a.forward - b.forward},
                    {"backward", a.backward - b.backward},
                    {"optimizer", a.optimizer - b.optimizer},
                    {"communicate", a.communicate - b.communicate},
                    {"eval", a.eval - b.eval},
                    {"methods", methods}});
  phases_recorded_ = phases_;
}

double Trainer::probe_loss() {
  BRISK_CHECK(batch.x.defined(), "probe_loss: no batch is loaded");
  bool was_training = model_->is_training();
  model_->eval();
  double v;
  {
    NoGradGuard ng;
    Tensor out = model_->forward(batch.x);
    v = mean(example_losses(out, batch.y, 0.0)).item();
  }
  if (was_training) model_->train();
  return v;
}

std::string Trainer::last_checkpoint_note() const {
  if (saved_step_ < 0) return "No checkpoint was written yet.";
  return "The last good checkpoint in " + cfg_.out + " (step " + std::to_string(saved_step_) +
         ") is untouched and resumes with --resume " + cfg_.out + ".";
}

// After a crash, metrics.jsonl may hold lines past the checkpoint (a line is
// appended before the checkpoint that covers it is written) or a torn last
// line. On resume keep the first metrics_lines_ whole lines, the ones the
// checkpoint covers, so that every evaluation appears once as the run goes on.
void Trainer::trim_metrics() { keep_first_lines((fs::path(cfg_.out) / "metrics.jsonl").string(), metrics_lines_); }

void Trainer::write_metrics(const EvalResult& r) {
  double flops = state_.flops;  // this rank's; the metrics report all ranks' work
  pg_->all_reduce_sum(&flops, 1);
  json j = {{"epoch", double(state_.epoch) + double(state_.batch_in_epoch) / double(train_loader_->num_batches())},
            {"step", state_.step},
            {"samples_seen", state_.samples_seen * pg_->size()},  // all ranks: each trains the same count per step
            {"wall_s", state_.wall_s},
            {"flops", flops},
            {"train_loss", state_.loss_count ? state_.loss_sum / double(state_.loss_count) : NAN},
            {"test_loss", r.loss},
            {"test_acc", r.acc},
            {"lr", optimizer_->lr()}};
  if (test_set_.is_text()) {  // byte-level tokens: one token per byte, so bits per byte = nats / ln 2
    j["val_loss"] = r.loss;
    j["val_bpb"] = r.loss / std::log(2.0);
    j["tokens_per_s"] = state_.wall_s > 0 ? double(state_.tokens_seen * pg_->size()) / state_.wall_s : 0.0;
  }
  if (pg_->size() > 1) {  // this rank's totals so far (the main rank's, as written)
    j["world_size"] = pg_->size();
    j["comm_s"] = phases_.communicate;
    j["comm_mb_per_step"] = phases_.comm_steps > 0 ? phases_.comm_bytes / 1e6 / phases_.comm_steps : 0.0;
  }
  for (auto& cb : callbacks_) cb->add_metrics(j);
  for (auto& [k, v] : extra_metrics.items()) j[k] = v;
  extra_metrics = json::object();
  state_.loss_sum = 0;
  state_.loss_count = 0;
  if (!is_main()) return;
  std::ofstream f(fs::path(cfg_.out) / "metrics.jsonl", std::ios::app);
  BRISK_CHECK(f.good(), "cannot append to ", (fs::path(cfg_.out) / "metrics.jsonl").string());
  f << j.dump() << "\n";
  metrics_lines_++;
  if (test_set_.is_text())
    std::printf("epoch %.2f  step %lld  train_loss %.4f  val_loss %.4f  val_bpb %.3f  token_acc %.4f  "
                "%.0f tokens/s  wall %.1fs\n",
                j["epoch"].get<double>(), (long long)state_.step, j["train_loss"].get<double>(), r.loss,
                j["val_bpb"].get<double>(), r.acc, j["tokens_per_s"].get<double>(), state_.wall_s);
  else
    std::printf("epoch %.2f  step %lld  train_loss %.4f  test_loss %.4f  test_acc %.4f  wall %.1fs\n",
                j["epoch"].get<double>(), (long long)state_.step, j["train_loss"].get<double>(), r.loss, r.acc,
                state_.wall_s);
  std::fflush(stdout);
}

void Trainer::write_config_json() {
  json j = cfg_.to_json();
  j["brisk_version"] = BRISK_VERSION;
  j["compiler"] = std::string("g++ ") + __VERSION__;
  j["cpu"] = cpu_model_name();
  j["threads_used"] = get_num_threads();
  j["parameters"] = model_->num_parameters();
  j["methods_resolved"] = json::array();
  for (auto& cb : callbacks_) j["methods_resolved"].push_back({{"name", cb->name()}, {"state", cb->state_json()}});
  atomic_write((fs::path(cfg_.out) / "config.json").string(), j.dump(2) + "\n");
}

int run_training(const TrainConfig& cfg_in, bool resume, const MethodBuilder& methods) {
  TrainConfig cfg = cfg_in;
  Trainer t(cfg, methods);
  const bool main_rank = t.is_main();
  if (main_rank) {
    if (t.process_group().size() > 1)
      std::printf("brisk train: data-parallel on %d ranks (%s), %lld examples per rank per step\n",
                  t.process_group().size(), t.process_group().backend().c_str(), (long long)cfg.batch_size);
    std::printf("brisk train: model %s (%lld parameters), %s, %lld epochs x %lld batches of %lld, %s lr %g %s, "
              "%d threads, out %s%s\n",
              cfg.model.c_str(), (long long)t.model().num_parameters(), cfg.data.c_str(), (long long)t.epochs(),
              (long long)t.train_loader().num_batches(), (long long)cfg.batch_size, cfg.optimizer.c_str(), cfg.lr,
              cfg.schedule.c_str(), get_num_threads(), cfg.out.c_str(), resume ? " (resuming)" : "");
  }
  std::fflush(stdout);
  EvalResult r = t.fit(resume);
  // Wall-clock, FLOPs and nonzeros reported separately: a pruned model's
  // zeros save FLOPs only where a sparse kernel skips them.
  int64_t params = 0, nonzeros = 0;
  for (auto& [n, p] : t.model().named_parameters()) {
    params += p.numel();
    nonzeros += int64_t(sum(ne(p.detach(), zeros_like(p.detach())).to(DType::f64)).item());
  }
  double flops = t.state().flops;
  t.process_group().all_reduce_sum(&flops, 1);
  if (!main_rank) return 0;
  std::printf("final: test_acc %.4f  test_loss %.4f  train_seconds %.2f  steps %lld  gflop %.1f  params %lld  "
              "nonzero_params %lld\n",
              r.acc, r.loss, t.state().wall_s, (long long)t.state().step, flops / 1e9, (long long)params,
              (long long)nonzeros);
  return 0;
}

}  // namespace brisk::train

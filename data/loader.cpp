// DataLoader implementation. A batch built on the background thread is
// assembled with plain loops (not the thread pool), so that thread never
// competes with training kernels for pool workers; one built in place
// (every core training) spreads its examples over the pool.
#include "data/loader.h"

#include <algorithm>
#include <thread>

#include "core/rng.h"
#include "core/thread_pool.h"

namespace brisk::data {

namespace {
// Mixes (seed, a, b) into one 64-bit key (splitmix64 finalizer).
uint64_t mix(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t z = seed ^ (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// dst[q] = src[q] * scale - shift for q in [0, n), or src[n - 1 - q] when
// reversed (a mirrored row). The loader's hot loop: with the operands in
// restrict-qualified locals it vectorizes (16 pixels per instruction with
// AVX-512); written inline in make_batch's lambda, the stores could alias the
// captured scale and shift, so it stayed one scalar pixel at a time.
void normalize_run(const uint8_t* __restrict src, float* __restrict dst, int64_t n, float scale, float shift) {
  for (int64_t q = 0; q < n; ++q) dst[q] = float(src[q]) * scale - shift;
}
void normalize_run_reversed(const uint8_t* __restrict src, float* __restrict dst, int64_t n, float scale,
                            float shift) {
  for (int64_t q = 0; q < n; ++q) dst[q] = float(src[n - 1 - q]) * scale - shift;
}
}  // namespace

Augment parse_augment(const std::string& spec) {
  Augment a;
  if (spec == "none" || spec.empty()) return a;
  if (spec == "flip") a.hflip = true;
  else if (spec == "crop") a.crop_padding = 2;
  else if (spec == "crop+flip" || spec == "flip+crop") { a.crop_padding = 2; a.hflip = true; }
  else BRISK_FAIL("unknown augmentation '", spec, "' (known: none, flip, crop, crop+flip)");
  return a;
}

DataLoader::DataLoader(Dataset ds, LoaderOptions opt) : ds_(std::move(ds)), opt_(opt) {
  BRISK_CHECK(ds_.size() > 0, "DataLoader: dataset '", ds_.name, "' is empty");
  BRISK_CHECK(opt_.batch_size > 0, "DataLoader: batch_size must be > 0, got ", opt_.batch_size);
  BRISK_CHECK(opt_.world >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world, "DataLoader: rank ", opt_.rank,
              " is not in [0, ", opt_.world, ")");
  BRISK_CHECK(!opt_.drop_last || opt_.batch_size * opt_.world <= ds_.size(), "DataLoader: batch_size ",
              opt_.batch_size, opt_.world > 1 ? " on each of " + std::to_string(opt_.world) + " ranks" : "",
              " exceeds the dataset size ", ds_.size(), " with drop_last");
  if (ds_.is_text()) {
    BRISK_CHECK(ds_.tokens.dtype() == DType::u8 && ds_.tokens.dim() == 1 && ds_.tokens.is_contiguous() &&
                    ds_.block_size > 0,
                "DataLoader: text tokens must be contiguous u8 [L] with a block size > 0");
    BRISK_CHECK(opt_.augment.crop_padding == 0 && !opt_.augment.hflip, "DataLoader: dataset '", ds_.name,
                "' is text; image augmentation (--augment) does not apply");
  } else {
    BRISK_CHECK(ds_.images.dtype() == DType::u8 && ds_.images.dim() == 4 && ds_.images.is_contiguous(),
                "DataLoader: images must be contiguous u8 [N, C, H, W]");
  }
}

DataLoader::~DataLoader() {
  if (pending_.valid()) pending_.wait();
}

int64_t DataLoader::num_batches() const {
  int64_t n = (order_.defined() ? order_.numel() : ds_.size()) / opt_.world;
  return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
}

int64_t DataLoader::num_batches_full() const {
  int64_t n = ds_.size() / opt_.world;
  return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
}

Tensor DataLoader::epoch_order(int64_t epoch) const {
  if (!opt_.shuffle) return arange(ds_.size());
  Generator g(mix(opt_.seed, uint64_t(epoch), 0x5eed));
  return randperm(ds_.size(), &g);
}

// A custom order (from a selection method or a checkpoint) is a subset of the
// dataset in some order: 1-D, every index in range, none twice.
void DataLoader::check_order(const Tensor& order) const {
  BRISK_CHECK(order.dim() == 1, "DataLoader: epoch order must be 1-D, got ", shape_str(order.shape()));
  int64_t n = ds_.size();
  std::vector<bool> seen(size_t(n), false);
  const int64_t* o = order.data_ptr<int64_t>();
  for (int64_t i = 0; i < order.numel(); ++i) {
    BRISK_CHECK(o[i] >= 0 && o[i] < n, "DataLoader: epoch order holds index ", o[i], " outside the dataset's [0, ",
                n, ")");
    BRISK_CHECK(!seen[size_t(o[i])], "DataLoader: epoch order visits example ", o[i], " twice");
    seen[size_t(o[i])] = true;
  }
}

void DataLoader::start_epoch(int64_t epoch, int64_t first, const Tensor& order) {
  if (pending_.valid()) pending_.wait();
  pending_ = {};
  epoch_ = epoch;
  order_ = order.defined() ? order.to(DType::i64).contiguous() : epoch_order(epoch);
  if (order.defined()) check_order(order_);
  BRISK_CHECK(first >= 0 && first <= num_batches(), "DataLoader: start batch ", first, " out of range [0, ",
              num_batches(), "]");
  next_ = first;
  if (background() && next_ < num_batches())
    pending_ = std::async(std::launch::async, [this, b = next_] { return make_batch(b, false); });
}

std::optional<Batch> DataLoader::next() {
  if (next_ >= num_batches()) return std::nullopt;
  Batch b = pending_.valid() ? pending_.get() : make_batch(next_);
  ++next_;
  if (background() && next_ < num_batches())
    pending_ = std::async(std::launch::async, [this, nb = next_] { return make_batch(nb, false); });
  return b;
}

// A batch is built on a thread of its own only while the training threads
// leave a core free. With every core training, that thread could only run by
// preempting one of them, and each step then waited on it: on 2 cores and 2
// threads the mlp's step took 1.6 ms with it and 1.4 ms building the batch in
// place (~40-70 us).
bool DataLoader::background() const {
  return opt_.prefetch && get_num_threads() < int(std::max(1u, std::thread::hardware_concurrency()));
}

// Position in the epoch's order of example i of this rank's batch starting at
// `start` (see LoaderOptions::rank).
static inline int64_t order_pos(const LoaderOptions& o, int64_t start, int64_t i) {
  return (start + i) * o.world + o.rank;
}

// Text: x [B, T] and y [B, T] i64 token ids, y shifted by one.
Batch DataLoader::make_text_batch(int64_t b) const {
  int64_t n = order_.numel() / opt_.world, T = ds_.block_size;
  int64_t start = b * opt_.batch_size, B = std::min(opt_.batch_size, n - start);
  Batch out;
  out.epoch = epoch_;
  out.index = b;
  out.indices = empty({B}, DType::i64);
  out.x = empty({B, T}, DType::i64);
  out.y = empty({B, T}, DType::i64);
  const int64_t* ord = order_.data_ptr<int64_t>();
  const uint8_t* tok = ds_.tokens.data_ptr<uint8_t>();
  int64_t *idx = out.indices.data_ptr<int64_t>(), *x = out.x.data_ptr<int64_t>(), *y = out.y.data_ptr<int64_t>();
  for (int64_t i = 0; i < B; ++i) {
    int64_t di = ord[order_pos(opt_, start, i)];
    BRISK_CHECK(di >= 0 && di < ds_.size(), "DataLoader: index ", di, " out of range for dataset of ", ds_.size());
    idx[i] = di;
    const uint8_t* w = tok + di * T;
    for (int64_t t = 0; t < T; ++t) {
      x[i * T + t] = w[t];
      y[i * T + t] = w[t + 1];
    }
  }
  return out;
}

Batch DataLoader::make_batch(int64_t b, bool on_pool) const {
  if (ds_.is_text()) return make_text_batch(b);
  int64_t n = order_.numel() / opt_.world;
  int64_t start = b * opt_.batch_size, B = std::min(opt_.batch_size, n - start);
  int64_t C = ds_.images.size(1), H = ds_.images.size(2), W = ds_.images.size(3), HW = H * W;
  Batch out;
  out.epoch = epoch_;
  out.index = b;
  out.indices = empty({B}, DType::i64);
  out.y = empty({B}, DType::i64);
  out.x = empty({B, C, H, W}, DType::f32);
  const int64_t* ord = order_.data_ptr<int64_t>();
  const uint8_t* img = ds_.images.data_ptr<uint8_t>();
  const int64_t* lab = ds_.labels.data_ptr<int64_t>();
  int64_t* idx = out.indices.data_ptr<int64_t>();
  int64_t* y = out.y.data_ptr<int64_t>();
  float* x = out.x.data_ptr<float>();
  const float scale = float(1.0 / (255.0 * ds_.std)), shift = float(ds_.mean / ds_.std);
  const float zero = -shift;  // a zero pixel after normalization (crop padding)
  const Augment& aug = opt_.augment;
  Generator g(mix(opt_.seed, uint64_t(epoch_), uint64_t(b) + 1));
  for (int64_t i = 0; i < B; ++i) {  // checked here: the fill below runs on the pool and must not throw
    int64_t di = ord[order_pos(opt_, start, i)];
    BRISK_CHECK(di >= 0 && di < ds_.size(), "DataLoader: index ", di, " out of range for dataset of ", ds_.size());
    idx[i] = di;
  }
  auto fill = [&](int64_t lo, int64_t hi) {
    int64_t ahead = lo;  // the next example whose bytes are not yet requested
    for (int64_t i = lo; i < hi; ++i) {
      // Shuffled examples are scattered over the dataset (47 MB for Fashion-
      // MNIST): fetched one after another, every image and label is a chain
      // of cache misses, so each is requested up to 8 examples ahead. Written
      // here, not in a lambda of its own: GCC 12 deletes a call to a lambda
      // that only prefetches (it deems it free of effects), which had left
      // this loader with no prefetch at all.
      for (; ahead < std::min(hi, i + 8); ++ahead) {
        const uint8_t* p = img + idx[ahead] * C * HW;
        __builtin_prefetch(lab + idx[ahead]);
        for (int64_t o = 0; o < C * HW; o += 64) __builtin_prefetch(p + o);
        __builtin_prefetch(p + C * HW - 1);
      }
      int64_t di = idx[i];
      y[i] = lab[di];
      // This example's random words, by its place in the global batch: one rank
      // with batch B * world augments exactly as world ranks with batch B.
      auto w = g.block(uint64_t(i * opt_.world + opt_.rank));
      int64_t dy = 0, dx = 0;
      if (aug.crop_padding > 0) {
        int64_t span = 2 * aug.crop_padding + 1;
        dy = int64_t(w[0] % uint32_t(span)) - aug.crop_padding;
        dx = int64_t(w[1] % uint32_t(span)) - aug.crop_padding;
      }
      bool flip = aug.hflip && (w[2] & 1u);
      // Output pixel (r, q) reads source (r + dy, q' + dx), q' = q or (flip)
      // W - 1 - q; outside the source it is a zero pixel. Per row, the columns
      // that read the source form one run [q0, q1): branch-free loops over it
      // vectorize.
      int64_t q0 = flip ? std::max<int64_t>(0, dx) : std::max<int64_t>(0, -dx);
      int64_t q1 = flip ? std::min<int64_t>(W, W + dx) : std::min<int64_t>(W, W - dx);
      q1 = std::max(q0, q1);
      if (dy == 0 && dx == 0 && !flip) {  // the image as it is: one run over all its pixels
        normalize_run(img + di * C * HW, x + i * C * HW, C * HW, scale, shift);
        continue;
      }
      for (int64_t c = 0; c < C; ++c) {
        const uint8_t* src = img + (di * C + c) * HW;
        float* dst = x + (i * C + c) * HW;
        for (int64_t r = 0; r < H; ++r) {
          float* o = dst + r * W;
          int64_t sr = r + dy;
          if (sr < 0 || sr >= H) {
            std::fill(o, o + W, zero);
            continue;
          }
          const uint8_t* row = src + sr * W;
          std::fill(o, o + q0, zero);
          // Flipped, o[q] reads row[W - 1 - q + dx]: for q in [q0, q1) that is
          // the run row[W - q1 + dx .. W - 1 - q0 + dx] read backwards.
          if (flip) normalize_run_reversed(row + W - q1 + dx, o + q0, q1 - q0, scale, shift);
          else normalize_run(row + q0 + dx, o + q0, q1 - q0, scale, shift);
          std::fill(o + q1, o + W, zero);
        }
      }
    }
  };
  // Built in place (every core training, or no prefetch), on the pool; on
  // the background thread, alone, so as not to contend with the step.
  if (on_pool) parallel_for(0, B, 16, fill);
  else fill(0, B);
  return out;
}

LoaderOptions in_order(int64_t batch_size) {
  LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.drop_last = false;
  lo.prefetch = false;
  return lo;
}

}  // namespace brisk::data

// Process groups: the local group of one, and MPI's world (see distributed.h).
#include "train/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/error.h"

#ifdef BRISK_HAS_MPI
#include <mpi.h>
#endif

namespace brisk::train::dist {

namespace {
class DoneRequest final : public Request {
 public:
  bool test() override { return true; }
  void wait() override {}
};
}  // namespace

std::unique_ptr<Request> ProcessGroup::all_reduce_sum_async(float* x, int64_t n) {
  all_reduce_sum(x, n);
  return std::make_unique<DoneRequest>();
}

namespace {

class LocalGroup final : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string backend() const override { return "local"; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_reduce_sum(double*, int64_t) override {}
  int64_t all_reduce_min(int64_t v) override { return v; }
  int64_t all_reduce_max(int64_t v) override { return v; }
  void broadcast(void*, int64_t, int root) override {
    BRISK_CHECK(root == 0, "broadcast: root rank ", root, " is not in a group of one");
  }
  void all_gather(const void* in, int64_t bytes, void* out) override {
    if (bytes > 0 && in != out) std::memmove(out, in, size_t(bytes));
  }
  std::vector<std::string> all_gather_bytes(const std::string& mine) override { return {mine}; }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

const char* env(const char* k) {
  const char* v = std::getenv(k);
  return v && *v ? v : nullptr;
}

#ifdef BRISK_HAS_MPI
// MPI counts are int: large buffers go in chunks of at most this many elements.
constexpr int64_t kMaxCount = int64_t(1) << 30;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  BRISK_FAIL("MPI ", what, " failed: ", std::string(msg, size_t(len)));
}

// One MPI_Iallreduce per chunk of at most kMaxCount elements.
class MpiRequest final : public Request {
 public:
  explicit MpiRequest(std::vector<MPI_Request> r) : reqs_(std::move(r)) {}
  bool test() override {
    if (done_) return true;
    int flag = 0;
    check(MPI_Testall(int(reqs_.size()), reqs_.data(), &flag, MPI_STATUSES_IGNORE), "Testall");
    done_ = flag != 0;
    return done_;
  }
  void wait() override {
    if (done_) return;
    check(MPI_Waitall(int(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE), "Waitall");
    done_ = true;
  }

 private:
  std::vector<MPI_Request> reqs_;
  bool done_ = false;
};

class MpiGroup final : public ProcessGroup {
 public:
  MpiGroup() {
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "Comm_size");
    // Errors come back as codes (and become brisk::Error) instead of aborting
    // inside MPI with a generic message.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    const char* ls = env("OMPI_COMM_WORLD_LOCAL_SIZE");
    local_ = ls ? std::max(1, std::atoi(ls)) : size_;
    const char* lr = env("OMPI_COMM_WORLD_LOCAL_RANK");
    local_rank_ = lr ? std::max(0, std::atoi(lr)) : rank_;
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_; }
  int local_rank() const override { return local_rank_; }
  std::string backend() const override { return "mpi"; }

  void all_reduce_sum(float* x, int64_t n) override { sum(x, n, MPI_FLOAT); }
  void all_reduce_sum(double* x, int64_t n) override { sum(x, n, MPI_DOUBLE); }
  std::unique_ptr<Request> all_reduce_sum_async(float* x, int64_t n) override {
    std::vector<MPI_Request> reqs;
    for (int64_t off = 0; off < n; off += kMaxCount) {
      reqs.push_back(MPI_REQUEST_NULL);
      check(MPI_Iallreduce(MPI_IN_PLACE, x + off, int(std::min(kMaxCount, n - off)), MPI_FLOAT, MPI_SUM,
                           MPI_COMM_WORLD, &reqs.back()),
            "Iallreduce");
    }
    return std::make_unique<MpiRequest>(std::move(reqs));
  }
  int64_t all_reduce_min(int64_t v) override { return reduce1(v, MPI_MIN); }
  int64_t all_reduce_max(int64_t v) override { return reduce1(v, MPI_MAX); }
  void broadcast(void* data, int64_t bytes, int root) override {
    BRISK_CHECK(root >= 0 && root < size_, "broadcast: root rank ", root, " not in [0, ", size_, ")");
    auto* p = static_cast<char*>(data);
    for (int64_t off = 0; off < bytes; off += kMaxCount)
      check(MPI_Bcast(p + off, int(std::min(kMaxCount, bytes - off)), MPI_BYTE, root, MPI_COMM_WORLD), "Bcast");
  }
  void all_gather(const void* in, int64_t bytes, void* out) override {
    BRISK_CHECK(bytes <= kMaxCount, "all_gather: ", bytes, " bytes per rank is over the 1 GiB limit");
    check(MPI_Allgather(in, int(bytes), MPI_BYTE, out, int(bytes), MPI_BYTE, MPI_COMM_WORLD), "Allgather");
  }
  std::vector<std::string> all_gather_bytes(const std::string& mine) override {
    BRISK_CHECK(int64_t(mine.size()) <= kMaxCount, "all_gather: ", mine.size(), " bytes is over the 1 GiB limit");
    std::vector<int> counts(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
    int n = int(mine.size());
    check(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "Allgather");
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      displs[size_t(r)] = int(total);
      total += counts[size_t(r)];
    }
    BRISK_CHECK(total <= kMaxCount, "all_gather: ", total, " bytes in all is over the 1 GiB limit");
    std::string all(size_t(total), '\0');
    check(MPI_Allgatherv(mine.data(), n, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE,
                         MPI_COMM_WORLD),
          "Allgatherv");
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r) out.push_back(all.substr(size_t(displs[size_t(r)]), size_t(counts[size_t(r)])));
    return out;
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "Barrier"); }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
  }

 private:
  // MPI_Allreduce in place (OpenMPI picks its algorithm from the message
  // and group sizes alone, so a run repeats bit for bit; every rank ends with
  // the same bits, which the trainer verifies at each evaluation). It was
  // 3x faster here than reduce-scatter + all-gather, which would guarantee
  // identical bits by construction (docs/distributed.md).
  template <class T>
  void sum(T* x, int64_t n, MPI_Datatype type) {
    if (size_ == 1) return;
    for (int64_t off = 0; off < n; off += kMaxCount)
      check(MPI_Allreduce(MPI_IN_PLACE, x + off, int(std::min(kMaxCount, n - off)), type, MPI_SUM, MPI_COMM_WORLD),
            "Allreduce");
  }
  int64_t reduce1(int64_t v, MPI_Op op) {
    long long in = v, out = 0;
    check(MPI_Allreduce(&in, &out, 1, MPI_LONG_LONG, op, MPI_COMM_WORLD), "Allreduce");
    return int64_t(out);
  }
  int rank_ = 0, size_ = 1, local_ = 1, local_rank_ = 0;
};

void finalize_mpi() {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}
#endif

std::mutex g_mu;
std::shared_ptr<ProcessGroup> g_default;

}  // namespace

bool mpi_built() {
#ifdef BRISK_HAS_MPI
  return true;
#else
  return false;
#endif
}

bool mpi_launched() { return env("OMPI_COMM_WORLD_SIZE") || env("PMI_SIZE") || env("PMIX_RANK"); }

std::shared_ptr<ProcessGroup> local_group() {
  static auto g = std::make_shared<LocalGroup>();
  return g;
}

std::shared_ptr<ProcessGroup> mpi_world() {
#ifdef BRISK_HAS_MPI
  static std::shared_ptr<ProcessGroup> world = [] {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "Init_thread");
      std::atexit(finalize_mpi);
    }
    return std::shared_ptr<ProcessGroup>(std::make_shared<MpiGroup>());
  }();
  return world;
#else
  BRISK_FAIL("this brisk was built without MPI (install libopenmpi-dev and rebuild with -DBRISK_MPI=ON); "
             "distributed training is not available");
#endif
}

std::shared_ptr<ProcessGroup> init_from_environment(bool force) {
  if (!mpi_launched()) {
    BRISK_CHECK(!force, "--distributed: this process was not started by an MPI launcher; run it as "
                "`mpirun -np N brisk train ...`");
    return local_group();
  }
  return mpi_world();
}

std::shared_ptr<ProcessGroup> default_group() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_default ? g_default : local_group();
}

void set_default_group(std::shared_ptr<ProcessGroup> g) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_default = std::move(g);
}

#ifndef BRISK_HAS_NCCL
bool nccl_built() { return false; }

std::unique_ptr<DeviceCollectives> make_nccl(ProcessGroup&, int) {
  BRISK_FAIL("data-parallel training on cuda needs NCCL: this brisk was built without it (NCCL is looked for "
             "next to the CUDA toolkit, with MPI); train on one rank or on the cpu");
}
#endif

// ------------------------------------------------------------ tensor helpers

namespace {
void check_cpu(const Tensor& t, const char* op) {
  BRISK_CHECK(t.defined() && t.device().type == DeviceType::cpu, op, ": tensors must be defined and on the cpu");
}
}  // namespace

void all_reduce_mean_(ProcessGroup& g, const std::vector<Tensor>& ts, int64_t bucket_bytes) {
  for (auto& t : ts) {
    check_cpu(t, "all_reduce_mean_");
    BRISK_CHECK(t.dtype() == DType::f32 && t.is_contiguous(), "all_reduce_mean_: tensors must be contiguous f32, got ",
                t.str());
  }
  if (g.size() == 1) return;
  // Large tensors are summed where they lie; small ones are packed into a
  // bucket first (one call for many biases and norms). Either way the calls
  // follow the tensors' order, the same on every rank.
  const float inv = 1.0f / float(g.size());
  const int64_t cap = std::max<int64_t>(bucket_bytes / 4, 1), large = std::max<int64_t>(cap / 8, 1);
  static thread_local std::vector<float> bucket;
  std::vector<const Tensor*> packed;
  auto scale = [inv](float* p, int64_t n) {
    for (int64_t e = 0; e < n; ++e) p[e] *= inv;
  };
  auto flush = [&] {
    if (packed.empty()) return;
    int64_t n = 0;
    for (const Tensor* t : packed) n += t->numel();
    if (int64_t(bucket.size()) < n) bucket.resize(size_t(n));
    int64_t off = 0;
    for (const Tensor* t : packed) {
      std::memcpy(bucket.data() + off, t->data_ptr<float>(), size_t(t->numel()) * 4);
      off += t->numel();
    }
    g.all_reduce_sum(bucket.data(), n);
    off = 0;
    for (const Tensor* t : packed) {
      float* p = t->data_ptr<float>();
      for (int64_t e = 0; e < t->numel(); ++e) p[e] = bucket[size_t(off + e)] * inv;
      off += t->numel();
    }
    packed.clear();
  };
  int64_t pending = 0;
  for (const Tensor& t : ts) {
    if (t.numel() >= large) {
      flush();
      pending = 0;
      g.all_reduce_sum(t.data_ptr<float>(), t.numel());
      scale(t.data_ptr<float>(), t.numel());
      continue;
    }
    if (pending + t.numel() > cap) {
      flush();
      pending = 0;
    }
    packed.push_back(&t);
    pending += t.numel();
  }
  flush();
}

Tensor all_gather_rows(ProcessGroup& g, const Tensor& t) {
  check_cpu(t, "all_gather_rows");
  BRISK_CHECK(t.dim() >= 1, "all_gather_rows: needs a tensor of at least one dim, got a scalar");
  if (g.size() == 1) return t;
  Tensor c = t.contiguous();
  // Header: dtype, dim count and shape, so that a mismatch between ranks is
  // an error naming both, not a silently misread buffer.
  std::vector<int64_t> h{int64_t(c.dtype()), c.dim()};
  for (int64_t d = 0; d < c.dim(); ++d) h.push_back(c.size(d));
  std::string mine(reinterpret_cast<const char*>(h.data()), h.size() * sizeof(int64_t));
  mine.append(static_cast<const char*>(c.raw_data()), size_t(c.numel()) * dtype_size(c.dtype()));
  std::vector<std::string> all = g.all_gather_bytes(mine);
  const size_t head = sizeof(int64_t) * size_t(2 + c.dim());
  size_t row_bytes = dtype_size(c.dtype());  // one row: the product of the trailing dims
  for (int64_t d = 1; d < c.dim(); ++d) row_bytes *= size_t(c.size(d));
  int64_t rows = 0;
  for (int r = 0; r < g.size(); ++r) {
    const std::string& s = all[size_t(r)];
    const auto* o = reinterpret_cast<const int64_t*>(s.data());
    bool same = s.size() >= head && o[0] == h[0] && o[1] == h[1] && o[2] >= 0;
    for (int64_t d = 1; same && d < c.dim(); ++d) same = o[2 + d] == h[2 + d];
    same = same && s.size() - head == size_t(o[2]) * row_bytes;
    BRISK_CHECK(same, "all_gather_rows: rank ", r, " sent a tensor of another dtype or row shape than rank ",
                g.rank(), "'s ", c.str());
    rows += o[2];
  }
  Shape shape = c.shape();
  shape[0] = rows;
  Tensor out = empty(shape, c.dtype());
  char* dst = static_cast<char*>(out.raw_data());
  for (auto& s : all) {
    std::memcpy(dst, s.data() + head, s.size() - head);
    dst += s.size() - head;
  }
  return out;
}

void broadcast_(ProcessGroup& g, const Tensor& t, int root) {
  check_cpu(t, "broadcast_");
  if (g.size() == 1) return;
  BRISK_CHECK(t.is_contiguous(), "broadcast_: tensor must be contiguous, got ", t.str());
  g.broadcast(t.raw_data(), t.numel() * int64_t(dtype_size(t.dtype())), root);
}

uint64_t tensor_hash(const Tensor& t) {
  check_cpu(t, "tensor_hash");
  Tensor c = t.contiguous();
  uint64_t h = 1469598103934665603ull;
  auto feed = [&](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  int64_t dt = int64_t(c.dtype());
  feed(&dt, sizeof dt);
  for (int64_t d = 0; d < c.dim(); ++d) {
    int64_t s = c.size(d);
    feed(&s, sizeof s);
  }
  feed(c.raw_data(), size_t(c.numel()) * dtype_size(c.dtype()));
  return h;
}

}  // namespace brisk::train::dist

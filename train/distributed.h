// Data-parallel training: the process group every rank of a job belongs to.
//
// brisk does not implement its own transport: ranks talk through MPI
// (OpenMPI on Debian) when the job was started by `mpirun`, and a run outside
// MPI is a group of one whose collectives are no-ops. The Trainer asks for
// `default_group()`; `brisk train` sets it (init_from_environment) before it
// builds the Trainer, the way torch.distributed.init_process_group does.
//
// Determinism: sums are MPI_Allreduce, whose algorithm OpenMPI chooses from
// the message size and the number of ranks alone, so the same seed on the
// same number of ranks gives the same bits run after run, and every rank
// receives the same sum (the trainer checks this at every evaluation).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace brisk::train::dist {

// A collective in flight. test() lets it progress (MPI moves a nonblocking
// collective only inside MPI calls) and says whether it is done; wait()
// blocks until it is. A request destroyed unfinished is abandoned, not waited
// for: that happens only on the way to ending the job after an error.
class Request {
 public:
  virtual ~Request() = default;
  virtual bool test() = 0;
  virtual void wait() = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks of this job on this machine (for the default thread count), and
  // this rank's place among them (for its GPU).
  virtual int local_size() const = 0;
  virtual int local_rank() const = 0;
  virtual std::string backend() const = 0;  // "local" or "mpi"
  bool is_main() const { return rank() == 0; }

  // In-place sums over the ranks; every rank receives identical bits.
  virtual void all_reduce_sum(float* x, int64_t n) = 0;
  virtual void all_reduce_sum(double* x, int64_t n) = 0;
  // Starts an in-place sum (MPI_Iallreduce); `x` must stay alive and
  // untouched until the request is done. Every rank must start its requests
  // in the same order, as with any collective. Here: summed at once.
  virtual std::unique_ptr<Request> all_reduce_sum_async(float* x, int64_t n);
  virtual int64_t all_reduce_min(int64_t v) = 0;
  virtual int64_t all_reduce_max(int64_t v) = 0;
  // Copies `bytes` bytes from rank `root` into `data` on every rank.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // Every rank's `bytes` bytes, in rank order: out has size() * bytes bytes.
  virtual void all_gather(const void* in, int64_t bytes, void* out) = 0;
  // Like all_gather, for a different byte count on each rank.
  virtual std::vector<std::string> all_gather_bytes(const std::string& mine) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with exit code `code` (after an error on one
  // rank, the others would otherwise wait in a collective for ever).
  [[noreturn]] virtual void abort(int code) = 0;
};

// Whether this build can run on MPI, and whether this process was started by
// an MPI launcher (mpirun / mpiexec: OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK).
bool mpi_built();
bool mpi_launched();
// The group of one process (collectives are no-ops).
std::shared_ptr<ProcessGroup> local_group();
// Initializes MPI once (MPI_Init_thread, funneled: only the training thread
// calls MPI) and returns the world group; MPI_Finalize runs at exit. Throws
// when this build has no MPI.
std::shared_ptr<ProcessGroup> mpi_world();
// `brisk train`: `force` (--distributed) requires an MPI launch; otherwise MPI
// is used when the process was launched by mpirun, and the local group when not.
std::shared_ptr<ProcessGroup> init_from_environment(bool force);

// The group the Trainer uses (local_group() until set).
std::shared_ptr<ProcessGroup> default_group();
void set_default_group(std::shared_ptr<ProcessGroup> g);

// --- tensor collectives (cpu, contiguous; f32 or f64) ---

// Averages each tensor over the ranks in place. Tensors smaller than
// bucket_bytes / 8 are packed into buckets of up to `bucket_bytes`, so that a
// model of many small tensors costs a few calls, not one per tensor; larger
// ones are summed where they lie (no copy). Tensors are visited in the order
// given (the same on every rank: the model's parameter order).
void all_reduce_mean_(ProcessGroup& g, const std::vector<Tensor>& ts, int64_t bucket_bytes = 8 << 20);
// Rows of every rank's tensor concatenated along dim 0, in rank order (the row
// counts may differ between ranks; the other dims and the dtype may not).
Tensor all_gather_rows(ProcessGroup& g, const Tensor& t);
// Copies rank `root`'s values into `t` (same shape and dtype everywhere).
void broadcast_(ProcessGroup& g, const Tensor& t, int root = 0);
// --- CUDA tensors (NCCL) ---

// Collectives on CUDA tensors between the ranks of a host group: NCCL, built
// where NCCL is found next to the CUDA toolkit (like cuDNN). The communicator
// is set up over the host group (rank 0's NCCL id is broadcast over MPI).
class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  // Averages each f32 CUDA tensor over the ranks in place, in the given order.
  virtual void all_reduce_mean_(const std::vector<Tensor>& ts) = 0;
  // Copies rank `root`'s values into `t` (a CUDA tensor of any dtype).
  virtual void broadcast_(const Tensor& t, int root) = 0;
};
bool nccl_built();
// Throws naming what is missing when this build has no NCCL.
std::unique_ptr<DeviceCollectives> make_nccl(ProcessGroup& host, int device_index);

// A 64-bit FNV-1a hash of a tensor's shape, dtype and bytes (cpu).
uint64_t tensor_hash(const Tensor& t);

}  // namespace brisk::train::dist

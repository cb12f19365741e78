// NCCL between GPU workers (data_plane transport TRANSPORT_NCCL). Every worker of the cluster
// joins one world communicator (world rank = stage × tp_size + tp_rank) made from the unique id
// that world rank 0 created in its Handshake; the tensor-parallel group of a stage is split from
// it (color = stage, key = tp_rank), and pipeline transfers go between world ranks on it. All of
// it runs on the backend's CUDA stream.
//
// Communicators are nonblocking (ncclConfig_t.blocking = 0): joining, splitting and every
// operation are polled with a deadline (nccl_wait.h), and a failure or a missed deadline aborts
// the communicators (ncclCommAbort) — a peer that vanishes is an error, never a hang. After any
// error the world is unusable (FAILED_PRECONDITION); the coordinator then loads the workers again
// with a new unique id.
//
// Built only with CUDA and NCCL; elsewhere NcclAvailable() is false and the rest UNIMPLEMENTED.
// Not thread-safe: one thread (the worker's owner thread) makes every call.
#ifndef STRATA_WORKER_DATAPLANE_NCCL_H_
#define STRATA_WORKER_DATAPLANE_NCCL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tensor.h"
#include "worker/dataplane/link.h"
#include "worker/model/collective.h"

namespace strata::dataplane {

inline constexpr size_t kNcclUniqueIdBytes = 128;  // sizeof(ncclUniqueId)

// Whether this build has NCCL.
bool NcclAvailable();

// The bytes of a new ncclUniqueId. Call it in the process that will be world rank 0: the id names
// a bootstrap listener there, which must live until every rank has joined.
absl::StatusOr<std::string> NewNcclUniqueId();

struct NcclWorldOptions {
  std::string unique_id;  // kNcclUniqueIdBytes, from world rank 0
  int world_rank = 0;
  int world_size = 1;
  int device = 0;          // this rank's CUDA device index
  void* stream = nullptr;  // cudaStream_t every operation is ordered on (the backend's); required
  // The tensor-parallel group: ranks with the same `group` (the stage) form one, ordered by
  // `group_rank` (the TP rank).
  int group = 0;
  int group_rank = 0;
  // Bounds joining, splitting and every operation.
  absl::Duration timeout = absl::Seconds(30);
};

class NcclWorld {
 public:
  // Aborts the communicators if an operation failed, else destroys them.
  virtual ~NcclWorld() = default;

  virtual int world_rank() const = 0;
  virtual int world_size() const = 0;
  // The all-reduce of this rank's TP group over device tensors (f32 or bf16) on this rank's GPU.
  // Lives as long as the world.
  virtual model::Collective& group() = 0;
  // Sends contiguous device tensor `x` (f32 or bf16, at most 6 dimensions) to world rank `peer`,
  // preceded by a small header with `key`, dtype and shape. Returns once the transfer completed on
  // this side. Sends and receives between two ranks match in the order they are made (every stage
  // runs the plans in order).
  virtual absl::Status Send(int peer, LinkKey key, const Tensor& x) = 0;
  // Receives from world rank `peer` into `x`: contiguous, on this GPU, of the dtype and shape the
  // peer sends (both sides derive them from the same step plan). DATA_LOSS when the header names
  // another key, dtype or shape.
  virtual absl::Status Recv(int peer, LinkKey key, Tensor& x) = 0;
};

// Joins the world and splits the TP groups; returns once every rank did, or fails within the
// timeout (a rank that never joins is DEADLINE_EXCEEDED).
absl::StatusOr<std::unique_ptr<NcclWorld>> CreateNcclWorld(const NcclWorldOptions& options);

}  // namespace strata::dataplane

#endif  // STRATA_WORKER_DATAPLANE_NCCL_H_

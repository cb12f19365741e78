// The collective a tensor-parallel model calls between its ranks (docs/model.md, "Tensor
// parallelism"): every rank of a TP group runs the same step on its slice of the heads and of the
// MLP's intermediate columns, and sums the partial outputs of o_proj and of the MLP/MoE.
#ifndef STRATA_WORKER_MODEL_COLLECTIVE_H_
#define STRATA_WORKER_MODEL_COLLECTIVE_H_

#include "absl/status/status.h"
#include "common/tensor.h"

namespace strata::model {

class Collective {
 public:
  virtual ~Collective() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether AllReduceSum takes tensors that live on `device` as they are. The model copies a
  // tensor on any other device through the host (an f32 host tensor every collective takes).
  // Host collectives (Gloo) take the CPU only; a device collective (NCCL) takes its own GPU.
  virtual bool Accepts(const Device& device) const { return device.is_cpu(); }
  // x = Σ over the ranks of x, in place. x is contiguous, of the same shape and dtype on every
  // rank, on a device the collective accepts; f32 always, other dtypes where the implementation
  // says so. Every rank ends with bit-identical values. A device collective orders the reduction
  // on its stream and returns once it completed. A peer that fails or vanishes is an error
  // (DEADLINE_EXCEEDED or UNAVAILABLE) within the implementation's timeout, never a hang; after
  // an error the collective is unusable.
  virtual absl::Status AllReduceSum(Tensor& x) = 0;
};

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_COLLECTIVE_H_

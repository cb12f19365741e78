// The collective a tensor-parallel StageEngine hands its model: a fixed rank and size forwarding
// to whichever collective the data plane formed last (Gloo, or the NCCL world's group), so that
// the group can be formed again after a rank restarted without rebuilding the model. Internal to
// worker/service.
#ifndef STRATA_WORKER_SERVICE_TP_GROUP_H_
#define STRATA_WORKER_SERVICE_TP_GROUP_H_

#include "absl/status/status.h"
#include "worker/model/collective.h"

namespace strata::worker {

class TpGroup final : public model::Collective {
 public:
  TpGroup(int rank, int size) : rank_(rank), size_(size) {}

  // `target` (may be null: not formed) must have this rank and size and outlive its use.
  void Set(model::Collective* target) { target_ = target; }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool Accepts(const Device& d) const override {
    return target_ != nullptr ? target_->Accepts(d) : d.is_cpu();
  }
  absl::Status AllReduceSum(Tensor& x) override {
    if (target_ == nullptr) {
      return absl::FailedPreconditionError(
          "the tensor-parallel group is not formed (its last rendezvous failed); LoadShard again");
    }
    return target_->AllReduceSum(x);
  }

 private:
  const int rank_;
  const int size_;
  model::Collective* target_ = nullptr;
};

}  // namespace strata::worker

#endif  // STRATA_WORKER_SERVICE_TP_GROUP_H_

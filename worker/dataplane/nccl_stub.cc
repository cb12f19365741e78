// NCCL entry points of a build without CUDA or NCCL (nccl.h).
#include "worker/dataplane/nccl.h"

namespace strata::dataplane {

bool NcclAvailable() { return false; }

absl::StatusOr<std::string> NewNcclUniqueId() {
  return absl::UnimplementedError("this build has no NCCL");
}

absl::StatusOr<std::unique_ptr<NcclWorld>> CreateNcclWorld(const NcclWorldOptions&) {
  return absl::UnimplementedError("this build has no NCCL");
}

}  // namespace strata::dataplane

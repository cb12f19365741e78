// Creates the backend for a device.
#ifndef STRATA_WORKER_MODEL_BACKEND_FACTORY_H_
#define STRATA_WORKER_MODEL_BACKEND_FACTORY_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "worker/model/backend.h"

namespace strata::model {

// The CPU backend for Device::Cpu(); the CUDA backend (cuda_backend.h) for Device::Cuda(n) in
// builds with CUDA, UNIMPLEMENTED in CPU-only builds.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(Device device);

// What a worker reports about its GPU in the handshake (DeviceInfo in proto/strata/v1).
struct GpuDescription {
  std::string name;  // e.g. "NVIDIA H100 80GB HBM3"
  std::string uuid;  // "GPU-xxxxxxxx-…": tells two ordinals of one physical GPU apart from two GPUs
  int sm_version = 0;  // 80, 90, 121
  uint64_t memory_total = 0;
  uint64_t memory_free = 0;
};
// UNIMPLEMENTED in CPU-only builds; the CUDA error for a device that does not exist.
absl::StatusOr<GpuDescription> DescribeGpu(int index);

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_BACKEND_FACTORY_H_

#include "worker/model/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "worker/model/cpu_backend.h"
#ifdef STRATA_MODEL_WITH_CUDA
#include <cuda_runtime_api.h>

#include "absl/strings/str_format.h"
#include "common/cuda_status.h"
#include "worker/model/cuda_backend.h"
#endif

namespace strata::model {

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(Device device) {
  if (device.is_cpu()) return NewCpuBackend();
#ifdef STRATA_MODEL_WITH_CUDA
  return NewCudaBackend(device.index);
#else
  return absl::UnimplementedError(absl::StrCat("no backend for ", device.ToString(),
                                               ": this build has no CUDA (configure with nvcc)"));
#endif
}

absl::StatusOr<GpuDescription> DescribeGpu(int index) {
#ifdef STRATA_MODEL_WITH_CUDA
  cudaDeviceProp prop;
  CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, index));
  GpuDescription d;
  d.name = prop.name;
  d.sm_version = prop.major * 10 + prop.minor;
  const auto* u = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
  d.uuid = absl::StrFormat(
      "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
      u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  int previous = 0;
  CUDA_RETURN_IF_ERROR(cudaGetDevice(&previous));
  CUDA_RETURN_IF_ERROR(cudaSetDevice(index));
  size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t e = cudaMemGetInfo(&free_bytes, &total_bytes);
  cudaSetDevice(previous);
  CUDA_RETURN_IF_ERROR(e);
  d.memory_total = total_bytes;
  d.memory_free = free_bytes;
  return d;
#else
  return absl::UnimplementedError(
      absl::StrCat("no GPU ", index, ": this build has no CUDA (configure with nvcc)"));
#endif
}

}  // namespace strata::model

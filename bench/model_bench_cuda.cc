// The CUDA BenchDevice (model_bench_device.h): the floors of strata-kernel-bench (floors.h), its
// device fills (bench.h), and CUDA events on the legacy default stream for the timer.
#include <cuda_runtime_api.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench.h"
#include "bench/floors.h"
#include "bench/model_bench_device.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "worker/model/cuda_backend.h"

namespace strata::bench {
namespace {

class CudaBenchDevice final : public BenchDevice {
 public:
  CudaBenchDevice(const model::Backend& backend, const cudaDeviceProp& prop)
      : backend_(backend),
        index_(backend.device().index),
        stream_(static_cast<cudaStream_t>(backend.stream())),
        prop_(prop) {
    env_.device = index_;
    env_.sm_count = prop.multiProcessorCount;
    env_.l2_bytes = prop.l2CacheSize;
    env_.global_mem_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    env_.stream = stream_;
  }
  ~CudaBenchDevice() override {
    for (const auto& [start, stop] : events_) {
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
    }
  }

  absl::Status Init() { return CudaStatus(cudaSetDevice(index_), "cudaSetDevice"); }

  std::string Describe() const override {
    return absl::StrFormat("%s (sm_%d%d, %d SMs, L2 %.0f MB, %.1f GiB)", prop_.name, prop_.major,
                           prop_.minor, prop_.multiProcessorCount, prop_.l2CacheSize / 1e6,
                           prop_.totalGlobalMem / double(1 << 30));
  }

  absl::StatusOr<DeviceFloors> MeasureFloors() override {
    ASSIGN_OR_RETURN(Floors f, bench::MeasureFloors(env_));
    DeviceFloors d;
    d.copy_gbps = f.copy_gbps;
    // The model's GEMMs are cuBLAS calls, so the higher of the two matrix ceilings bounds them
    // (and makes the floor the lower, the conservative choice).
    if (f.cublas_tflops > f.mma_sync_tflops) {
      d.matrix_tflops = f.cublas_tflops;
      d.matrix_source = "cuBLAS bf16 GEMM 8192^3";
    } else {
      d.matrix_tflops = f.mma_sync_tflops;
      d.matrix_source = "bf16 mma.sync peak";
    }
    d.detail = {{"copy_gbps", f.copy_gbps},
                {"mma_sync_tflops", f.mma_sync_tflops},
                {"cublas_tflops", f.cublas_tflops}};
    return d;
  }

  int64_t FreeBytes() const override {
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
    return static_cast<int64_t>(free);
  }

  absl::Status FillUniform(const Tensor& t, uint64_t seed, float lo, float hi) override {
    if (!t.is_contiguous() || !t.device().is_cuda()) {
      return absl::InvalidArgumentError(absl::StrCat("fill: ", t.DebugString()));
    }
    if (t.dtype() == DType::kF32) {
      return CudaStatus(FillUniformF32(t.data<float>(), t.numel(), seed, lo, hi, stream_),
                        "fill f32");
    }
    if (t.dtype() == DType::kBF16) {
      return CudaStatus(FillUniformBF16(t.data(), t.numel(), seed, lo, hi, stream_), "fill bf16");
    }
    return absl::InvalidArgumentError(absl::StrCat("fill: dtype of ", t.DebugString()));
  }

  absl::Status FillF8(void* dst, int64_t n, uint64_t seed) override {
    return CudaStatus(FillRandomF8E4M3(dst, n, seed, stream_), "fill fp8");
  }

  absl::Status Memset2D(void* dst, int64_t pitch, uint8_t value, int64_t width,
                        int64_t height) override {
    return CudaStatus(cudaMemset2DAsync(dst, pitch, value, width, height, stream_), "memset2d");
  }

  absl::Status Synchronize() override { return CudaStatus(cudaDeviceSynchronize(), "synchronize"); }

  // Events on the backend's stream around fn, with a device-wide synchronisation before the stop
  // event: the interval holds fn's host work and all its device work. Calls may nest (an operation
  // timed inside a timed step): each depth has its own pair of events.
  absl::StatusOr<double> TimeMs(const std::function<absl::Status()>& fn) override {
    if (depth_ == static_cast<int>(events_.size())) {
      cudaEvent_t start = nullptr, stop = nullptr;
      CUDA_RETURN_IF_ERROR(cudaEventCreate(&start));
      if (const cudaError_t err = cudaEventCreate(&stop); err != cudaSuccess) {
        cudaEventDestroy(start);
        return CudaStatus(err, "cudaEventCreate");
      }
      events_.emplace_back(start, stop);
    }
    const auto [start, stop] = events_[depth_];
    CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    CUDA_RETURN_IF_ERROR(cudaEventRecord(start, stream_));
    ++depth_;
    const absl::Status status = fn();
    --depth_;
    RETURN_IF_ERROR(status);
    CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
    CUDA_RETURN_IF_ERROR(cudaEventRecord(stop, stream_));
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start, stop));
    return double{ms};
  }

  nlohmann::json KernelCounts() const override {
    const model::CudaKernelCounts c = model::GetCudaKernelCounts(backend_);
    return {{"tuned_sparse_mla", c.tuned_sparse_mla},
            {"generic_sparse_mla", c.generic_sparse_mla},
            {"tuned_indexer", c.tuned_indexer},
            {"generic_indexer", c.generic_indexer}};
  }

 private:
  const model::Backend& backend_;
  int index_;
  cudaStream_t stream_;
  cudaDeviceProp prop_;
  Env env_;
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> events_;  // one pair per nesting depth
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BenchDevice>> NewCudaBenchDevice(const model::Backend& backend) {
  if (!backend.device().is_cuda()) {
    return absl::InvalidArgumentError("NewCudaBenchDevice needs a CUDA backend");
  }
  cudaDeviceProp prop;
  CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, backend.device().index));
  auto device = std::make_unique<CudaBenchDevice>(backend, prop);
  RETURN_IF_ERROR(device->Init());
  return device;
}

}  // namespace strata::bench

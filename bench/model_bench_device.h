// strata-model-bench: what the model benchmark needs from the device beyond the model's Backend —
// the floors measured in the same run, free memory, fills for random weights and caches, and a
// timer. One implementation per device kind: the CPU one (model_bench_cpu.cc, every build, so CI
// runs the whole harness) and the CUDA one (model_bench_cuda.cc, CUDA builds).
#ifndef STRATA_BENCH_MODEL_BENCH_DEVICE_H_
#define STRATA_BENCH_MODEL_BENCH_DEVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "nlohmann/json.hpp"
#include "worker/model/backend.h"

namespace strata::bench {

struct DeviceFloors {
  // A large device-to-device copy: bytes read + written per second, GB/s. The bandwidth floor of
  // a step is its bytes (reads + writes) over this.
  double copy_gbps = 0;
  // The matrix throughput the flop floor divides by, TFLOP/s, and where it comes from.
  double matrix_tflops = 0;
  std::string matrix_source;
  nlohmann::json detail;  // every figure measured, for the JSON
};

class BenchDevice {
 public:
  virtual ~BenchDevice() = default;

  // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)", "cpu".
  virtual std::string Describe() const = 0;
  virtual absl::StatusOr<DeviceFloors> MeasureFloors() = 0;
  // Bytes that can still be allocated on the device.
  virtual int64_t FreeBytes() const = 0;

  // Fills a contiguous f32 or bf16 tensor with values uniform in [lo, hi) (counter-based hash of
  // seed and index: reproducible, fast on large pools).
  virtual absl::Status FillUniform(const Tensor& t, uint64_t seed, float lo, float hi) = 0;
  // Fills n bytes with random finite fp8 E4M3 values (never the NaN encodings 0x7f / 0xff).
  virtual absl::Status FillF8(void* dst, int64_t n, uint64_t seed) = 0;
  // Sets `width` bytes to `value` at dst, dst + pitch, ..., `height` rows.
  virtual absl::Status Memset2D(void* dst, int64_t pitch, uint8_t value, int64_t width,
                                int64_t height) = 0;
  // Waits until every fill (and all other device work) has finished.
  virtual absl::Status Synchronize() = 0;

  // Milliseconds from before `fn` to after everything it enqueued has finished (fn may itself
  // synchronise; the model's Forward does). Calls may nest.
  virtual absl::StatusOr<double> TimeMs(const std::function<absl::Status()>& fn) = 0;

  // Which kernels the backend ran (the CUDA backend's tuned and generic attention calls).
  virtual nlohmann::json KernelCounts() const { return nlohmann::json::object(); }
};

// The CPU: floors are a 256 MiB memcpy and the CPU backend's own f32 Linear.
std::unique_ptr<BenchDevice> NewCpuBenchDevice(model::Backend& backend);

// The device of a CUDA backend (CUDA builds only; UNIMPLEMENTED otherwise): floors from
// bench/floors.h, fills from bench/bench.h on the backend's stream, CUDA events for the timer.
absl::StatusOr<std::unique_ptr<BenchDevice>> NewCudaBenchDevice(const model::Backend& backend);

}  // namespace strata::bench

#endif  // STRATA_BENCH_MODEL_BENCH_DEVICE_H_

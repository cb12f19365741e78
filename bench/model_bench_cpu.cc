// The CPU BenchDevice (model_bench_device.h): what `strata-model-bench --device cpu` measures and
// fills with, so the whole harness runs in CI without a GPU.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/model_bench_device.h"
#include "common/dtype.h"
#include "common/status.h"

namespace strata::bench {
namespace {

// splitmix64 of (seed, index), the same hash as the CUDA fills (bench_util.cu).
uint64_t Mix(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float Uniform(uint64_t seed, uint64_t i, float lo, float hi) {
  const float u = static_cast<float>(Mix(seed, i) >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  return lo + (hi - lo) * u;
}

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Median of `reps` timed calls after one warm-up, ms.
template <typename Fn>
absl::StatusOr<double> MedianMs(int reps, Fn fn) {
  RETURN_IF_ERROR(fn());
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const Clock::time_point start = Clock::now();
    RETURN_IF_ERROR(fn());
    ms.push_back(MsSince(start));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

class CpuBenchDevice final : public BenchDevice {
 public:
  explicit CpuBenchDevice(model::Backend& backend) : backend_(backend) {}

  std::string Describe() const override {
    return absl::StrCat("cpu (", sysconf(_SC_NPROCESSORS_ONLN), " cores online)");
  }

  absl::StatusOr<DeviceFloors> MeasureFloors() override {
    DeviceFloors f;
    // Copy: 256 MiB memcpy, bytes read + written.
    constexpr int64_t kBytes = int64_t{256} << 20;
    std::vector<uint8_t> src(kBytes, 1), dst(kBytes);
    ASSIGN_OR_RETURN(const double copy_ms, MedianMs(5, [&] {
                       std::memcpy(dst.data(), src.data(), kBytes);
                       return absl::OkStatus();
                     }));
    f.copy_gbps = 2.0 * kBytes / (copy_ms * 1e-3) / 1e9;
    // Matrix: the backend's own f32 Linear, [256, 1024] · [1024, 1024]ᵀ.
    constexpr int64_t kM = 256, kK = 1024, kN = 1024;
    ASSIGN_OR_RETURN(Tensor x, backend_.NewTensor(DType::kF32, {kM, kK}));
    ASSIGN_OR_RETURN(Tensor w, backend_.NewTensor(DType::kF32, {kN, kK}));
    ASSIGN_OR_RETURN(Tensor y, backend_.NewTensor(DType::kF32, {kM, kN}));
    RETURN_IF_ERROR(FillUniform(x, 1, -1.0f, 1.0f));
    RETURN_IF_ERROR(FillUniform(w, 2, -1.0f, 1.0f));
    ASSIGN_OR_RETURN(const double mm_ms, MedianMs(5, [&] { return backend_.Linear(x, w, y); }));
    f.matrix_tflops = 2.0 * kM * kK * kN / (mm_ms * 1e-3) / 1e12;
    f.matrix_source = "CPU backend f32 Linear 256x1024x1024";
    f.detail = {{"copy_gbps", f.copy_gbps}, {"cpu_linear_f32_tflops", f.matrix_tflops}};
    return f;
  }

  int64_t FreeBytes() const override {
    return static_cast<int64_t>(sysconf(_SC_AVPHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  }

  absl::Status FillUniform(const Tensor& t, uint64_t seed, float lo, float hi) override {
    if (!t.is_contiguous() || !t.device().is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("fill: ", t.DebugString()));
    }
    const int64_t n = t.numel();
    if (t.dtype() == DType::kF32) {
      float* p = t.data<float>();
      for (int64_t i = 0; i < n; ++i) p[i] = Uniform(seed, i, lo, hi);
    } else if (t.dtype() == DType::kBF16) {
      uint16_t* p = t.data<uint16_t>();
      for (int64_t i = 0; i < n; ++i) p[i] = FloatToBF16(Uniform(seed, i, lo, hi));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("fill: dtype of ", t.DebugString()));
    }
    return absl::OkStatus();
  }

  absl::Status FillF8(void* dst, int64_t n, uint64_t seed) override {
    uint8_t* p = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t v = static_cast<uint8_t>(Mix(seed, i));
      p[i] = (v & 0x7f) == 0x7f ? static_cast<uint8_t>(v & 0xfe) : v;
    }
    return absl::OkStatus();
  }

  absl::Status Memset2D(void* dst, int64_t pitch, uint8_t value, int64_t width,
                        int64_t height) override {
    for (int64_t r = 0; r < height; ++r) {
      std::memset(static_cast<uint8_t*>(dst) + r * pitch, value, width);
    }
    return absl::OkStatus();
  }

  absl::Status Synchronize() override { return absl::OkStatus(); }

  absl::StatusOr<double> TimeMs(const std::function<absl::Status()>& fn) override {
    const Clock::time_point start = Clock::now();
    RETURN_IF_ERROR(fn());
    return MsSince(start);
  }

 private:
  model::Backend& backend_;
};

}  // namespace

std::unique_ptr<BenchDevice> NewCpuBenchDevice(model::Backend& backend) {
  return std::make_unique<CpuBenchDevice>(backend);
}

#ifndef STRATA_BENCH_WITH_CUDA
absl::StatusOr<std::unique_ptr<BenchDevice>> NewCudaBenchDevice(const model::Backend& backend) {
  return absl::UnimplementedError("this build has no CUDA (configure with nvcc)");
}
#endif

}  // namespace strata::bench

// Token sampling over GLM-5's vocabulary (154880) at 1–64 rows:
//   greedy          argmax + logprob
//   t1 k50 p0.9     the usual chat settings: top-k keeps 50, top-p sorts them
//   t1 p0.9 peaked  top-p alone on logits uniform in [-60, 60): 90% of the mass lies in the
//                   ~3000 largest, within the 4096 the sampler sorts
//   t1 p0.9 flat    top-p alone on logits uniform in [-7, 7): 90% needs ~25000 tokens, the
//                   bisection path
// Work: the logits read once (bytes); the floor is far below what one CTA per row can reach.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "kernels/cuda/sampling.h"

namespace strata::bench {
namespace {

constexpr int64_t kVocab = 154880;

struct Mode {
  const char* name;
  kernels::SamplingOptions options;
  float spread;  // logits uniform in [-spread, spread)
};

class SampleCase : public Case {
 public:
  SampleCase(int64_t rows, Mode mode) : rows_(rows), mode_(mode) {}

  absl::Status Setup(const Env& env) override {
    sets_ = RotationSets(env, rows_ * kVocab * 4, 16);
    RETURN_IF_ERROR(logits_.Allocate(sets_ * rows_ * kVocab * 4));
    CUDA_RETURN_IF_ERROR(FillUniformF32(logits_.as<float>(), sets_ * rows_ * kVocab, 51,
                                        -mode_.spread, mode_.spread, env.stream));
    std::vector<kernels::SamplingOptions> options(rows_, mode_.options);
    std::vector<uint64_t> steps(rows_);
    for (int64_t r = 0; r < rows_; ++r) {
      options[r].seed = 1000 + r;
      steps[r] = 77 + r;
    }
    RETURN_IF_ERROR(options_.Allocate(rows_ * sizeof(kernels::SamplingOptions)));
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(options_.get(), options.data(),
                                         rows_ * sizeof(kernels::SamplingOptions),
                                         cudaMemcpyHostToDevice, env.stream));
    RETURN_IF_ERROR(steps_.Allocate(rows_ * 8));
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(steps_.get(), steps.data(), rows_ * 8, cudaMemcpyHostToDevice, env.stream));
    RETURN_IF_ERROR(tokens_.Allocate(rows_ * 4));
    RETURN_IF_ERROR(logprobs_.Allocate(rows_ * 4));
    return CudaStatus(cudaStreamSynchronize(env.stream), "sampling setup");
  }

  cudaError_t Run(cudaStream_t stream, int iteration) override {
    return kernels::SampleCuda(
        {.rows = rows_,
         .vocab_size = kVocab,
         .logits = logits_.as<float>() + (iteration % sets_) * rows_ * kVocab,
         .options = options_.as<kernels::SamplingOptions>(),
         .steps = steps_.as<uint64_t>(),
         .tokens = tokens_.as<int32_t>(),
         .logprobs = logprobs_.as<float>()},
        stream);
  }

  Work GetWork() const override { return {.bytes = rows_ * kVocab * 4.0 + rows_ * 8.0}; }

 private:
  int64_t rows_;
  Mode mode_;
  int sets_ = 1;
  DeviceBuffer logits_, options_, steps_, tokens_, logprobs_;
};

STRATA_BENCH_CASES(RegisterSamplingCases) {
  const Mode kModes[] = {{"greedy", {0.0f, 0, 1.0f, 0}, 7.0f},
                         {"t1 k50 p0.9", {1.0f, 50, 0.9f, 0}, 7.0f},
                         {"t1 p0.9 peaked", {1.0f, 0, 0.9f, 0}, 60.0f},
                         {"t1 p0.9 flat", {1.0f, 0, 0.9f, 0}, 7.0f}};
  for (const Mode& mode : kModes) {
    for (const int64_t rows : {1, 8, 32, 64}) {
      registry->Add({.kernel = "sampling",
                     .name = absl::StrCat(mode.name, " R", rows, " V154880"),
                     .shape = {{"rows", rows}, {"vocab", kVocab}},
                     .make = [rows, mode] { return std::make_unique<SampleCase>(rows, mode); }});
    }
  }
}

}  // namespace
}  // namespace strata::bench

// SampleCuda against SampleCpu: the same tokens for greedy and seeded temperature / top-k / top-p
// rows over GLM-5's vocabulary and small ones, through every path of the device sampler (small
// and large kept sets, top-p within and beyond the 4096 largest tokens, ties at both thresholds),
// and logprobs within kLogprobTol. Random logits put u · total or top_p · total on a cumulative
// boundary (where the sum order could matter, sampling.h) with probability ~1e-15.
#include <cuda_runtime_api.h>

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/sampling.h"
#include "kernels/cuda/sampling.h"
#include "tests/kernels/cuda_test_util.h"

namespace strata::kernels {
namespace {

using testing::DeviceBuffer;

constexpr int64_t kGlm5Vocab = 154880;
constexpr double kLogprobTol = 2e-5;

struct Batch {
  int64_t vocab = 0;
  std::vector<float> logits;  // [rows, vocab + 5] (padded stride)
  std::vector<SamplingOptions> options;
  std::vector<uint64_t> steps;
  int64_t rows() const { return static_cast<int64_t>(options.size()); }
  int64_t stride() const { return vocab + 5; }
};

void ExpectSameAsCpu(const Batch& b) {
  const int64_t rows = b.rows();
  std::vector<int32_t> want(rows, -1);
  std::vector<float> want_lp(rows);
  ASSERT_TRUE(SampleCpu({.rows = rows,
                         .vocab_size = b.vocab,
                         .logits_stride = b.stride(),
                         .logits = b.logits.data(),
                         .options = b.options.data(),
                         .steps = b.steps.data(),
                         .tokens = want.data(),
                         .logprobs = want_lp.data()})
                  .ok());
  DeviceBuffer<float> d_logits(b.logits);
  DeviceBuffer<SamplingOptions> d_options(b.options);
  DeviceBuffer<uint64_t> d_steps(b.steps);
  DeviceBuffer<int32_t> d_tokens(rows);
  DeviceBuffer<float> d_lp(rows);
  d_tokens.Fill(0xff);
  ASSERT_EQ(SampleCuda({.rows = rows,
                        .vocab_size = b.vocab,
                        .logits_stride = b.stride(),
                        .logits = d_logits.get(),
                        .options = d_options.get(),
                        .steps = d_steps.get(),
                        .tokens = d_tokens.get(),
                        .logprobs = d_lp.get()},
                       nullptr),
            cudaSuccess);
  testing::SyncOrFail();
  const std::vector<int32_t> got = d_tokens.Download();
  const std::vector<float> got_lp = d_lp.Download();
  for (int64_t r = 0; r < rows; ++r) {
    const SamplingOptions& o = b.options[r];
    EXPECT_EQ(got[r], want[r]) << "row " << r << " T=" << o.temperature << " top_k=" << o.top_k
                               << " top_p=" << o.top_p << " seed=" << o.seed
                               << " step=" << b.steps[r] << " V=" << b.vocab;
    if (std::isfinite(want_lp[r])) {
      EXPECT_NEAR(got_lp[r], want_lp[r], kLogprobTol) << "row " << r;
    } else {
      EXPECT_EQ(got_lp[r], want_lp[r]) << "row " << r;
    }
  }
}

// Rows of N(0, sigma) logits, each with its own options.
Batch RandomBatch(int64_t vocab, const std::vector<SamplingOptions>& options, float sigma,
                  uint32_t seed) {
  Batch b;
  b.vocab = vocab;
  b.options = options;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  b.logits.assign(b.rows() * b.stride(), 1e30f);  // padding would win if read
  for (int64_t r = 0; r < b.rows(); ++r) {
    for (int64_t i = 0; i < vocab; ++i) b.logits[r * b.stride() + i] = nd(rng);
    b.steps.push_back(1000 + 37 * r);
  }
  return b;
}

TEST(SampleCudaTest, GreedyMatchesCpuWithTiesNanAndMaskedRows) {
  Batch b = RandomBatch(kGlm5Vocab, std::vector<SamplingOptions>(6), 3.0f, 1);
  const int64_t s = b.stride();
  b.logits[0 * s + 77] = 40.0f;  // a clear winner
  b.logits[1 * s + 5] = 40.0f;   // a tie: the first index wins
  b.logits[1 * s + kGlm5Vocab - 1] = 40.0f;
  for (int64_t i = 0; i < kGlm5Vocab; ++i) b.logits[2 * s + i] = -INFINITY;  // fully masked
  b.logits[3 * s + kGlm5Vocab - 1] = 50.0f;  // winner in the last position
  for (int64_t i = 0; i < kGlm5Vocab; ++i) b.logits[4 * s + i] = 1.25f;  // all equal
  ExpectSameAsCpu(b);
  // NaN logits: the CPU scan never picks one, and keeps index 0 when logits[0] is NaN (logprobs
  // are NaN on the CPU, so only the ids are compared here).
  Batch nan_batch = RandomBatch(1000, std::vector<SamplingOptions>(2), 1.0f, 2);
  nan_batch.logits[3] = NAN;
  nan_batch.logits[nan_batch.stride()] = NAN;
  std::vector<int32_t> want(2);
  ASSERT_TRUE(SampleCpu({.rows = 2,
                         .vocab_size = 1000,
                         .logits_stride = nan_batch.stride(),
                         .logits = nan_batch.logits.data(),
                         .options = nan_batch.options.data(),
                         .steps = nan_batch.steps.data(),
                         .tokens = want.data()})
                  .ok());
  DeviceBuffer<float> d_logits(nan_batch.logits);
  DeviceBuffer<SamplingOptions> d_options(nan_batch.options);
  DeviceBuffer<uint64_t> d_steps(nan_batch.steps);
  DeviceBuffer<int32_t> d_tokens(2);
  ASSERT_EQ(SampleCuda({.rows = 2,
                        .vocab_size = 1000,
                        .logits_stride = nan_batch.stride(),
                        .logits = d_logits.get(),
                        .options = d_options.get(),
                        .steps = d_steps.get(),
                        .tokens = d_tokens.get()},
                       nullptr),
            cudaSuccess);
  EXPECT_EQ(d_tokens.Download(), want);
  EXPECT_EQ(want[1], 0);
}

// Every combination of temperature, top-k (off, 1, small, above the 4096-token candidate cap,
// vocab − 1) and top-p (off, loose, tight), over GLM-5's vocabulary and a small one, with
// distinct seeds and steps per row.
TEST(SampleCudaTest, SeededSamplingMatchesCpu) {
  std::vector<SamplingOptions> options;
  uint64_t seed = 3;
  for (float temperature : {0.6f, 1.0f, 1.7f}) {
    for (int32_t top_k : {0, 1, 40, 5000, static_cast<int32_t>(kGlm5Vocab - 1)}) {
      for (float top_p : {1.0f, 0.95f, 0.5f}) {
        options.push_back({temperature, top_k, top_p, seed++ * 0x9E3779B97F4A7C15ull});
      }
    }
  }
  for (float sigma : {1.0f, 4.0f}) {
    ExpectSameAsCpu(RandomBatch(kGlm5Vocab, options, sigma, static_cast<uint32_t>(10 * sigma)));
  }
  for (auto& o : options) o.top_k = std::min(o.top_k, 999);
  ExpectSameAsCpu(RandomBatch(1000, options, 2.0f, 17));
}

// The same row at many steps: the draws follow the seed and step through the whole distribution.
TEST(SampleCudaTest, ManyStepsOfOneRowMatchCpu) {
  Batch b = RandomBatch(5000, std::vector<SamplingOptions>(64, {1.0f, 0, 1.0f, 42}), 1.0f, 5);
  for (int64_t r = 1; r < b.rows(); ++r) {
    std::copy_n(b.logits.begin(), b.stride(), b.logits.begin() + r * b.stride());
    b.steps[r] = r;
  }
  ExpectSameAsCpu(b);
  for (auto& o : b.options) o = {0.8f, 50, 0.9f, 42};
  ExpectSameAsCpu(b);
}

// Flat rows: top-p mass spread over far more than 4096 tokens (the bisection path), with and
// without a large top-k.
TEST(SampleCudaTest, FlatRowsTakeTheBisectionPath) {
  std::vector<SamplingOptions> options = {{1.0f, 0, 0.9f, 1},
                                          {1.0f, 0, 0.3f, 2},
                                          {2.0f, 20000, 0.95f, 3},
                                          {1.0f, 0, 1.0f, 4},
                                          {1.0f, 10000, 1.0f, 5}};
  Batch b = RandomBatch(30000, options, 0.05f, 6);
  ExpectSameAsCpu(b);
}

// Ties: logits on a coarse grid, so the top-k threshold and the top-p cut fall inside groups of
// equal values (kept sets larger than the 4096 cap, the tie count at the cut).
TEST(SampleCudaTest, TiesAtTheThresholdsMatchCpu) {
  std::vector<SamplingOptions> options;
  for (int32_t top_k : {0, 3, 100, 3000}) {
    for (float top_p : {1.0f, 0.7f, 0.2f}) {
      options.push_back({1.0f, top_k, top_p, static_cast<uint64_t>(top_k * 10 + top_p * 7)});
    }
  }
  Batch b = RandomBatch(20000, options, 1.0f, 8);
  for (float& v : b.logits) {
    if (v < 1e29f) v = std::round(v * 2.0f) / 2.0f;
  }
  ExpectSameAsCpu(b);
}

TEST(SampleCudaTest, EmptyAndBadParams) {
  EXPECT_EQ(SampleCuda({.rows = 0, .vocab_size = 10}, nullptr), cudaSuccess);
  EXPECT_EQ(SampleCuda({.rows = 1, .vocab_size = 10}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(SampleCuda({.rows = 0, .vocab_size = 0}, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(SampleCuda({.rows = 0, .vocab_size = 10, .logits_stride = 5}, nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace strata::kernels

// The CUDA sparse MLA kernel against SparseMlaCpu on fresh random inputs: the CPU reference runs on
// exactly the bf16 q and the cache bytes the GPU sees, so the only differences are the kernel's
// own roundings (see kOutRelTol).
#include <cuda_runtime_api.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu/sparse_mla.h"
#include "kernels/cuda/sparse_mla.h"
#include "kvcache/layout.h"

namespace strata::kernels {
namespace {

using kvcache::LatentCacheDType;

constexpr int kL = 512, kR = 64, kD = kL + kR;

// Tolerances. The kernel rounds each probability to bf16 before P·V (relative error ≤ 2^-9 each,
// unbiased), rounds out to bf16 (≤ 2^-9 relative), dequantises fp8 rows to bf16 (≤ 2^-9), and
// uses ex2.approx (2^-22). Norm-wise the errors add to a few 1e-3; 1e-2 leaves a 3× margin while a
// wrong row, head or mask shows up as O(1).
constexpr double kOutRelTol = 1e-2;
// Per element, relative to the largest |out| of its (token, head): the same sources, one term.
constexpr double kOutElemTol = 2e-2;
// lse = ln Σ p: the sum of bf16-rounded probabilities is off by at most 2^-9 relative, so ln by
// ≤ 1.95e-3; plus fp32 rounding of the max and log.
constexpr double kLseAbsTol = 2.5e-3;

struct Spec {
  int tokens = 2;
  int heads = 16;
  int topk = 2048;
  LatentCacheDType dtype = LatentCacheDType::kBF16;
  bool large_pool = false;  // 70000 blocks; slots from blocks on both sides of 2^16
  // Padding: per token, the number of entries set to −1 (scattered), or all of them.
  double pad_fraction = 0.0;
  std::vector<int> all_padded_tokens = {};
  float scale = 0.0625f;
  float q_range = 1.0f;
  int num_splits = 0, heads_per_cta = 0, stages = 0;  // plan overrides (0 = choose)
  int q_head_pad = 0, out_token_pad = 0;              // extra stride elements
  int64_t block_pad = 0;                              // extra bytes between blocks
  int plan_tokens = 0;                                // plan for this many tokens (0 = tokens)
};

struct HostPool {
  uint8_t* data = nullptr;
  size_t bytes = 0;
  ~HostPool() {
    if (data != nullptr) munmap(data, bytes);
  }
};

class DeviceMem {
 public:
  explicit DeviceMem(size_t bytes) {
    if (bytes > 0 && cudaMalloc(&ptr_, bytes) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceMem() { cudaFree(ptr_); }
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

CudaDeviceLimits Limits() {
  auto limits = QueryCudaDeviceLimits(0);
  EXPECT_TRUE(limits.ok()) << limits.status();
  return limits.ok() ? *limits : CudaDeviceLimits{};
}

// Fills one block of the pool with random rows of `dtype`.
void FillBlock(std::mt19937& rng, LatentCacheDType dtype, uint8_t* block) {
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  const int64_t row_bytes = kvcache::LatentRowBytes(dtype, kL, kR);
  for (int r = 0; r < 64; ++r) {
    uint8_t* row = block + r * row_bytes;
    if (dtype == LatentCacheDType::kBF16) {
      for (int i = 0; i < kD; ++i) {
        const uint16_t h = FloatToBF16(value(rng));
        std::memcpy(row + 2 * i, &h, 2);
      }
      continue;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> scale(0.001f, 0.004f);
    for (int i = 0; i < kL; ++i) {
      int b = byte(rng);
      if ((b & 0x7f) == 0x7f) b &= 0xfe;  // never NaN
      row[i] = static_cast<uint8_t>(b);
    }
    for (int g = 0; g < kL / 128; ++g) {
      const float s = scale(rng);
      std::memcpy(row + kvcache::LatentF8ScalesOffset(kL) + 4 * g, &s, 4);
    }
    for (int i = 0; i < kR; ++i) {
      const uint16_t h = FloatToBF16(value(rng));
      std::memcpy(row + kvcache::LatentF8RopeOffset(kL) + 2 * i, &h, 2);
    }
  }
}

void RunAndCompare(const Spec& spec) {
  std::random_device seed_source;
  const unsigned seed = seed_source();
  SCOPED_TRACE(testing::Message() << "seed " << seed << " T=" << spec.tokens << " nH=" << spec.heads
                                  << " K=" << spec.topk);
  std::mt19937 rng(seed);
  const int T = spec.tokens, nH = spec.heads, K = spec.topk;

  // Pool and the blocks slots are drawn from.
  const int64_t row_bytes = kvcache::LatentRowBytes(spec.dtype, kL, kR);
  const int64_t block_stride = 64 * row_bytes + spec.block_pad;
  std::vector<int64_t> blocks;
  int64_t num_blocks = 0;
  if (spec.large_pool) {
    num_blocks = 70000;  // slot · row bytes passes 2^32 from block ~58000
    blocks = {0, 1, 65535, 65536, 65537, 69998, 69999};
    std::uniform_int_distribution<int64_t> any(2, 69997);
    while (static_cast<int>(blocks.size()) * 64 < std::max(2 * K, 64)) blocks.push_back(any(rng));
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  } else {
    num_blocks = std::max<int64_t>(2, (2 * int64_t{K} + 63) / 64 + 1);
    for (int64_t b = 0; b < num_blocks; ++b) blocks.push_back(b);
  }
  HostPool pool;
  pool.bytes = static_cast<size_t>(num_blocks * block_stride);
  pool.data = static_cast<uint8_t*>(
      mmap(nullptr, pool.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(pool.data, MAP_FAILED);
  for (const int64_t b : blocks) FillBlock(rng, spec.dtype, pool.data + b * block_stride);
  DeviceMem d_pool(pool.bytes);
  ASSERT_NE(d_pool.get(), nullptr);
  for (const int64_t b : blocks) {
    ASSERT_EQ(cudaMemcpy(static_cast<uint8_t*>(d_pool.get()) + b * block_stride,
                         pool.data + b * block_stride, block_stride, cudaMemcpyHostToDevice),
              cudaSuccess);
  }

  // Slots: K distinct per token from the filled blocks, then padding.
  std::vector<int32_t> candidates;
  for (const int64_t b : blocks) {
    for (int r = 0; r < 64; ++r) candidates.push_back(static_cast<int32_t>(b * 64 + r));
  }
  std::vector<int32_t> slots(static_cast<size_t>(T) * K);
  for (int t = 0; t < T; ++t) {
    std::shuffle(candidates.begin(), candidates.end(), rng);
    std::copy(candidates.begin(), candidates.begin() + K, slots.begin() + int64_t{t} * K);
    const bool all = std::count(spec.all_padded_tokens.begin(), spec.all_padded_tokens.end(), t);
    std::bernoulli_distribution pad(spec.pad_fraction);
    for (int i = 0; i < K; ++i) {
      if (all || pad(rng)) slots[int64_t{t} * K + i] = -1 - (i % 3);  // any negative is padding
    }
  }

  // q: bf16 on the device, the same values as fp32 for the reference.
  const int64_t q_head_stride = kD + spec.q_head_pad, q_token_stride = nH * q_head_stride;
  std::vector<uint16_t> q_bf16(static_cast<size_t>(T) * q_token_stride, 0);
  std::vector<float> q_f32(q_bf16.size(), 0.0f);
  std::uniform_real_distribution<float> qv(-spec.q_range, spec.q_range);
  for (size_t i = 0; i < q_bf16.size(); ++i) {
    q_bf16[i] = FloatToBF16(qv(rng));
    q_f32[i] = BF16ToFloat(q_bf16[i]);
  }

  kvcache::LatentCacheView view{.num_blocks = num_blocks,
                                .kv_lora_rank = kL,
                                .rope_dim = kR,
                                .dtype = spec.dtype,
                                .block_stride = block_stride,
                                .data = pool.data};
  std::vector<float> want(static_cast<size_t>(T) * nH * kL), want_lse(static_cast<size_t>(T) * nH);
  ASSERT_TRUE(SparseMlaCpu({.num_tokens = T,
                            .num_heads = nH,
                            .topk = K,
                            .scale = spec.scale,
                            .q = q_f32.data(),
                            .q_token_stride = q_token_stride,
                            .q_head_stride = q_head_stride,
                            .slots = slots.data(),
                            .slots_token_stride = K,
                            .cache = view,
                            .out = want.data(),
                            .out_token_stride = int64_t{nH} * kL,
                            .out_head_stride = kL,
                            .lse = want_lse.data(),
                            .lse_token_stride = nH})
                  .ok());

  auto plan = PlanSparseMla({.max_tokens = std::max(spec.plan_tokens, T),
                             .num_heads = nH,
                             .topk = K,
                             .cache_dtype = spec.dtype,
                             .device = Limits(),
                             .num_splits = spec.num_splits,
                             .heads_per_cta = spec.heads_per_cta,
                             .stages = spec.stages});
  ASSERT_TRUE(plan.ok()) << plan.status();
  SCOPED_TRACE(testing::Message() << "plan: hpc " << plan->heads_per_cta << " splits "
                                  << plan->num_splits << " chunk " << plan->chunk << " stages "
                                  << plan->stages);
  const int64_t out_token_stride = int64_t{nH} * kL + spec.out_token_pad;
  const size_t out_elems = static_cast<size_t>(T) * out_token_stride;
  DeviceMem d_q(q_bf16.size() * 2), d_slots(slots.size() * 4 + 4), d_out(out_elems * 2),
      d_lse(static_cast<size_t>(T) * nH * 4), d_ws(plan->workspace_bytes);
  ASSERT_EQ(cudaMemcpy(d_q.get(), q_bf16.data(), q_bf16.size() * 2, cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d_slots.get(), slots.data(), slots.size() * 4, cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaMemset(d_out.get(), 0xff, out_elems * 2), cudaSuccess);  // bf16 NaN poison
  ASSERT_EQ(cudaMemset(d_lse.get(), 0xff, static_cast<size_t>(T) * nH * 4), cudaSuccess);
  view.data = d_pool.get();
  const SparseMlaCudaParams p{.num_tokens = T,
                              .num_heads = nH,
                              .topk = K,
                              .scale = spec.scale,
                              .q = d_q.get(),
                              .q_token_stride = q_token_stride,
                              .q_head_stride = q_head_stride,
                              .slots = static_cast<const int32_t*>(d_slots.get()),
                              .slots_token_stride = K,
                              .cache = view,
                              .out = d_out.get(),
                              .out_token_stride = out_token_stride,
                              .out_head_stride = kL,
                              .lse = static_cast<float*>(d_lse.get()),
                              .lse_token_stride = nH};
  ASSERT_EQ(SparseMlaCuda(p, *plan, d_ws.get(), nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint16_t> got(out_elems);
  std::vector<float> got_lse(static_cast<size_t>(T) * nH);
  ASSERT_EQ(cudaMemcpy(got.data(), d_out.get(), out_elems * 2, cudaMemcpyDeviceToHost),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpy(got_lse.data(), d_lse.get(), got_lse.size() * 4, cudaMemcpyDeviceToHost),
            cudaSuccess);

  double err2 = 0, ref2 = 0;
  int bad = 0;
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < nH; ++h) {
      const float* ref = &want[(int64_t{t} * nH + h) * kL];
      const uint16_t* out = &got[t * out_token_stride + int64_t{h} * kL];
      double max_ref = 0;
      for (int d = 0; d < kL; ++d) max_ref = std::max(max_ref, std::fabs(double{ref[d]}));
      for (int d = 0; d < kL; ++d) {
        const double g = BF16ToFloat(out[d]), diff = g - ref[d];
        err2 += diff * diff;
        ref2 += double{ref[d]} * ref[d];
        if (!std::isfinite(g) || std::fabs(diff) > kOutElemTol * max_ref) {
          if (++bad <= 5) {
            ADD_FAILURE() << "out[" << t << "," << h << "," << d << "] = " << g << ", want "
                          << ref[d];
          }
        }
      }
      const float wl = want_lse[int64_t{t} * nH + h], gl = got_lse[int64_t{t} * nH + h];
      if (std::isinf(wl)) {
        EXPECT_TRUE(std::isinf(gl) && gl < 0) << "lse[" << t << "," << h << "] = " << gl;
        EXPECT_EQ(max_ref, 0.0);
      } else {
        EXPECT_NEAR(gl, wl, kLseAbsTol) << "lse[" << t << "," << h << "]";
      }
    }
  }
  EXPECT_EQ(bad, 0);
  if (ref2 > 0) {
    EXPECT_LE(std::sqrt(err2 / ref2), kOutRelTol);
  }
}

class HeadCountTest : public testing::TestWithParam<int> {};

TEST_P(HeadCountTest, FullTopk) { RunAndCompare({.tokens = 2, .heads = GetParam(), .topk = 2048}); }

TEST_P(HeadCountTest, SmallTopk) {
  RunAndCompare({.tokens = 3, .heads = GetParam(), .topk = 5});
  RunAndCompare({.tokens = 3, .heads = GetParam(), .topk = 64, .scale = 0.13523f, .q_range = 2});
}

TEST_P(HeadCountTest, Fp8Cache) {
  RunAndCompare({.tokens = 2, .heads = GetParam(), .topk = 2048, .dtype = LatentCacheDType::kF8});
}

INSTANTIATE_TEST_SUITE_P(Heads, HeadCountTest, testing::Values(8, 16, 32, 64, 128));

TEST(SparseMlaCudaTest, PaddedRowsGiveZerosAndNoNaN) {
  // Token 0 and 3 are all padding; the others lose a random half, or nearly everything.
  RunAndCompare(
      {.tokens = 5, .heads = 16, .topk = 2048, .pad_fraction = 0.5, .all_padded_tokens = {0, 3}});
  RunAndCompare(
      {.tokens = 4, .heads = 64, .topk = 2048, .pad_fraction = 0.995, .all_padded_tokens = {1}});
  // Empty splits: more splits than tiles, and padded rows in a split decode.
  RunAndCompare({.tokens = 3,
                 .heads = 32,
                 .topk = 300,
                 .pad_fraction = 0.3,
                 .all_padded_tokens = {2},
                 .num_splits = 16});
}

TEST(SparseMlaCudaTest, LargePoolWithBlockIdsAbove2To16) {
  RunAndCompare({.tokens = 3, .heads = 32, .topk = 2048, .large_pool = true});
  RunAndCompare(
      {.tokens = 2, .heads = 16, .topk = 512, .dtype = LatentCacheDType::kF8, .large_pool = true});
}

TEST(SparseMlaCudaTest, Batches) {
  for (const int tokens : {1, 17, 128}) {
    RunAndCompare({.tokens = tokens, .heads = 16, .topk = 64});
  }
  RunAndCompare({.tokens = 128, .heads = 8, .topk = 512, .pad_fraction = 0.1});
  RunAndCompare({.tokens = 40, .heads = 64, .topk = 256});
}

TEST(SparseMlaCudaTest, ForcedSplitsAgree) {
  for (const int splits : {1, 2, 5, 64}) {
    RunAndCompare({.tokens = 2, .heads = 32, .topk = 2048, .num_splits = splits});
  }
}

TEST(SparseMlaCudaTest, EveryHeadGroupAndStageCount) {
  for (const auto dtype : {LatentCacheDType::kBF16, LatentCacheDType::kF8}) {
    for (const int hpc : {16, 32, 64}) {
      for (const int stages : {2, 3}) {
        RunAndCompare({.tokens = 2,
                       .heads = 64,
                       .topk = 300,
                       .dtype = dtype,
                       .heads_per_cta = hpc,
                       .stages = stages});
      }
    }
  }
}

TEST(SparseMlaCudaTest, StridesAndPlanForMoreTokens) {
  RunAndCompare({.tokens = 3,
                 .heads = 24,
                 .topk = 1000,
                 .q_head_pad = 8,
                 .out_token_pad = 16,
                 .block_pad = 256,
                 .plan_tokens = 64});
}

class MergeSplitsTest : public testing::TestWithParam<int> {};

// Split counts that take each of the merge's layouts (1, 2, 4 and 8 split lanes; 37 is more than
// the unrolling).
TEST_P(MergeSplitsTest, MatchesCpu) {
  std::mt19937 rng(std::random_device{}());
  const int S = GetParam(), T = 3, nH = 4, L = 512;
  std::vector<float> part = [&] {
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> v(static_cast<size_t>(S) * T * nH * L);
    for (float& x : v) x = d(rng);
    return v;
  }();
  std::vector<float> lse(static_cast<size_t>(S) * T * nH);
  std::uniform_real_distribution<float> ld(-3, 3);
  for (size_t i = 0; i < lse.size(); ++i) lse[i] = i % 3 == 0 ? -INFINITY : ld(rng);
  for (int s = 0; s < S; ++s) lse[(int64_t{s} * T + 1) * nH + 2] = -INFINITY;  // all splits empty
  for (size_t i = 0; i < lse.size(); ++i) {  // an empty split's partial must not be read
    if (std::isinf(lse[i])) std::fill_n(part.begin() + i * L, L, std::nanf(""));
  }
  std::vector<float> want(static_cast<size_t>(T) * nH * L), want_lse(static_cast<size_t>(T) * nH);
  ASSERT_TRUE(MergeSplitsCpu({.num_splits = S,
                              .num_tokens = T,
                              .num_heads = nH,
                              .head_dim = L,
                              .partial_out = part.data(),
                              .partial_lse = lse.data(),
                              .out = want.data(),
                              .out_token_stride = nH * L,
                              .out_head_stride = L,
                              .lse = want_lse.data(),
                              .lse_token_stride = nH})
                  .ok());
  DeviceMem d_part(part.size() * 4), d_lse(lse.size() * 4), d_out(want.size() * 2),
      d_out_lse(want_lse.size() * 4);
  ASSERT_EQ(cudaMemcpy(d_part.get(), part.data(), part.size() * 4, cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d_lse.get(), lse.data(), lse.size() * 4, cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(MergeSplitsCuda({.num_splits = S,
                             .num_tokens = T,
                             .num_heads = nH,
                             .head_dim = L,
                             .partial_out = static_cast<const float*>(d_part.get()),
                             .partial_lse = static_cast<const float*>(d_lse.get()),
                             .out = d_out.get(),
                             .out_token_stride = nH * L,
                             .out_head_stride = L,
                             .lse = static_cast<float*>(d_out_lse.get()),
                             .lse_token_stride = nH},
                            nullptr),
            cudaSuccess);
  std::vector<uint16_t> got(want.size());
  std::vector<float> got_lse(want_lse.size());
  ASSERT_EQ(cudaMemcpy(got.data(), d_out.get(), got.size() * 2, cudaMemcpyDeviceToHost),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpy(got_lse.data(), d_out_lse.get(), got_lse.size() * 4, cudaMemcpyDeviceToHost),
            cudaSuccess);
  // Only the bf16 rounding of out (2^-9 relative) separates the two.
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(BF16ToFloat(got[i]), want[i], std::fabs(want[i]) * 4e-3 + 1e-6) << i;
  }
  for (size_t i = 0; i < want_lse.size(); ++i) {
    if (std::isinf(want_lse[i])) {
      EXPECT_TRUE(std::isinf(got_lse[i]) && got_lse[i] < 0);
    } else {
      EXPECT_NEAR(got_lse[i], want_lse[i], 1e-5 + 1e-6 * std::fabs(want_lse[i]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SplitCounts, MergeSplitsTest, testing::Values(1, 2, 5, 37));

TEST(SparseMlaCudaTest, RejectsParamsThatDisagreeWithThePlan) {
  auto plan = PlanSparseMla({.max_tokens = 4, .num_heads = 16, .topk = 64, .device = Limits()});
  ASSERT_TRUE(plan.ok()) << plan.status();
  DeviceMem q(4 * 16 * kD * 2 + 16), slots(4 * 64 * 4), out(4 * 16 * kL * 2), pool(2 * 64 * 1152);
  SparseMlaCudaParams p{.num_tokens = 4,
                        .num_heads = 16,
                        .topk = 64,
                        .scale = 0.1f,
                        .q = q.get(),
                        .q_token_stride = 16 * kD,
                        .q_head_stride = kD,
                        .slots = static_cast<const int32_t*>(slots.get()),
                        .slots_token_stride = 64,
                        .cache = {.num_blocks = 2,
                                  .kv_lora_rank = kL,
                                  .rope_dim = kR,
                                  .dtype = LatentCacheDType::kBF16,
                                  .block_stride = 64 * 1152,
                                  .data = pool.get()},
                        .out = out.get(),
                        .out_token_stride = 16 * kL,
                        .out_head_stride = kL};
  DeviceMem ws(plan->workspace_bytes);
  SparseMlaCudaParams bad = p;
  bad.num_tokens = 5;  // more than planned
  EXPECT_EQ(SparseMlaCuda(bad, *plan, ws.get(), nullptr), cudaErrorInvalidValue);
  bad = p;
  bad.topk = 32;
  EXPECT_EQ(SparseMlaCuda(bad, *plan, ws.get(), nullptr), cudaErrorInvalidValue);
  bad = p;
  bad.q = static_cast<const char*>(q.get()) + 2;  // not 16-byte aligned
  EXPECT_EQ(SparseMlaCuda(bad, *plan, ws.get(), nullptr), cudaErrorInvalidValue);
  bad = p;
  bad.cache.dtype = LatentCacheDType::kF32;
  EXPECT_EQ(SparseMlaCuda(bad, *plan, ws.get(), nullptr), cudaErrorInvalidValue);
  if (plan->workspace_bytes > 0) {
    EXPECT_EQ(SparseMlaCuda(p, *plan, nullptr, nullptr), cudaErrorInvalidValue);
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

}  // namespace
}  // namespace strata::kernels

// The fp8 indexer-key path of the CPU twins end to end (cache write → paged logits → top-k) against
// the bf16 path, on the inputs of indexer_overlap_inputs.h. The device test
// (indexer_fp8_overlap_cuda_test.cc) runs the same inputs through the CUDA kernels.
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cache_write.h"
#include "kernels/cpu/indexer_logits.h"
#include "kvcache/paged_cache.h"
#include "tests/kernels/indexer_overlap_inputs.h"

namespace strata::kernels {
namespace {

using kvcache::IndexerCacheDType;
using strata::testing::MakeOverlapInputs;
using strata::testing::OverlapCpuTopk;
using strata::testing::OverlapInputs;
using strata::testing::OverlapInputShape;
using strata::testing::TopkOverlap;

constexpr int kD = OverlapInputs::kDim, kH = 64, kK = 2048;
constexpr int kRows = 4, kLen = 32768;
constexpr unsigned kSeed = 2024;
// Issue 6's goal for the fp8 keys, on the realistic inputs.
constexpr double kMinOverlap = 0.99;

// What the fp8 cache gave before the rotation: keys quantised as they are (per-token power-of-two
// scale), scored in double through the ragged fp32 path.
std::vector<int32_t> UnrotatedFp8Topk(const OverlapInputs& in) {
  std::vector<float> keys(in.keys.size());
  for (size_t j = 0; j < keys.size() / kD; ++j) {
    float amax = 0.0f;
    for (int d = 0; d < kD; ++d) amax = std::fmax(amax, std::fabs(in.keys[j * kD + d]));
    const float scale = kvcache::IndexerF8Scale(amax);
    for (int d = 0; d < kD; ++d) {
      keys[j * kD + d] = F8E4M3ToFloat(FloatToF8E4M3(in.keys[j * kD + d] / scale)) * scale;
    }
  }
  std::vector<float> logits(static_cast<size_t>(in.rows) * in.len);
  const std::vector<int32_t> cols(in.rows, in.len);
  // One call per row so the logits columns are the row's own positions.
  for (int t = 0; t < in.rows; ++t) {
    const int32_t ks = 0, ke = in.len;
    EXPECT_TRUE(IndexerRaggedLogitsCpu({.num_tokens = 1,
                                        .num_heads = in.heads,
                                        .head_dim = kD,
                                        .num_keys = in.len,
                                        .max_cols = in.len,
                                        .softmax_scale = 1.0f / std::sqrt(static_cast<float>(kD)),
                                        .q = &in.q[static_cast<size_t>(t) * in.heads * kD],
                                        .q_token_stride = int64_t{in.heads} * kD,
                                        .q_head_stride = kD,
                                        .weights = &in.w[static_cast<size_t>(t) * in.heads],
                                        .weights_token_stride = in.heads,
                                        .key_dtype = DType::kF32,
                                        .keys = &keys[static_cast<size_t>(t) * in.len * kD],
                                        .key_stride = kD,
                                        .k_start = &ks,
                                        .k_end = &ke,
                                        .logits = &logits[static_cast<size_t>(t) * in.len],
                                        .logits_stride = in.len})
                    .ok());
  }
  std::vector<int32_t> topk(static_cast<size_t>(in.rows) * kK);
  EXPECT_TRUE(IndexerTopkCpu({.num_tokens = in.rows,
                              .topk = kK,
                              .logits = logits.data(),
                              .logits_stride = in.len,
                              .col_end = cols.data(),
                              .topk_pos = topk.data(),
                              .topk_stride = kK})
                  .ok());
  return topk;
}

TEST(IndexerFp8OverlapTest, RotatedFp8KeysKeep99PercentOfTheBf16TopkOnRealisticInputs) {
  const OverlapInputs in =
      MakeOverlapInputs(OverlapInputShape::kOutlierLanes, kRows, kLen, kH, kSeed);
  const std::vector<int32_t> bf16 = OverlapCpuTopk(in, kK, IndexerCacheDType::kBF16);
  const double rotated =
      TopkOverlap(bf16, OverlapCpuTopk(in, kK, IndexerCacheDType::kF8), kRows, kK);
  const double unrotated = TopkOverlap(bf16, UnrotatedFp8Topk(in), kRows, kK);
  std::printf(
      "outlier-lane inputs, top-%d of %d keys, %d heads: fp8 rotated %.4f, unrotated %.4f\n", kK,
      kLen, kH, rotated, unrotated);
  EXPECT_GE(rotated, kMinOverlap);
  EXPECT_GT(rotated, unrotated + 0.01);  // the rotation is what gets there
}

// The hard case: without shared large lanes no basis helps; E4M3's mantissa is the limit.
TEST(IndexerFp8OverlapTest, IsotropicInputsStayAtTheE4M3Limit) {
  const OverlapInputs in = MakeOverlapInputs(OverlapInputShape::kIsotropic, 2, kLen, kH, kSeed);
  const double rotated = TopkOverlap(OverlapCpuTopk(in, kK, IndexerCacheDType::kBF16),
                                     OverlapCpuTopk(in, kK, IndexerCacheDType::kF8), in.rows, kK);
  std::printf("isotropic inputs: fp8 rotated %.4f\n", rotated);
  EXPECT_GE(rotated, 0.965);
}

}  // namespace
}  // namespace strata::kernels

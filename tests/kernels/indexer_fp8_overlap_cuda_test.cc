// The fp8 indexer-key path end to end on the device (cache write → paged logits → top-k) against
// the bf16 path, on the inputs of indexer_overlap_inputs.h (the CPU twins' test,
// indexer_fp8_overlap_test.cc, uses the same ones). The overlap is printed (docs/kernels.md
// records it); it must reach issue 6's 99% on the realistic (outlier-lane) inputs and match what
// exact (double) arithmetic gives on the same stored keys: any loss beyond that would be the
// kernels' fault.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cache_write.h"
#include "kernels/cpu/indexer_logits.h"
#include "kernels/cuda/cache_write.h"
#include "kernels/cuda/indexer_logits.h"
#include "kernels/cuda/indexer_topk.h"
#include "kvcache/paged_cache.h"
#include "tests/kernels/cuda_test_util.h"
#include "tests/kernels/indexer_overlap_inputs.h"

namespace strata::kernels {
namespace {

using kvcache::IndexerCacheDType;
using strata::testing::DeviceBuffer;
using strata::testing::MakeOverlapInputs;
using strata::testing::NumSms;
using strata::testing::OverlapCpuTopk;
using strata::testing::OverlapInputs;
using strata::testing::OverlapInputShape;
using strata::testing::SyncOrFail;
using strata::testing::TopkOverlap;

constexpr int kD = OverlapInputs::kDim, kH = 64, kK = 2048;
constexpr int kRows = 4, kLen = 32768;
constexpr unsigned kSeed = 2024;
constexpr double kMinOverlap = 0.99;     // issue 6, realistic inputs
constexpr double kMaxExtraLoss = 0.005;  // device against exact arithmetic on the same keys

struct Overlaps {
  double device = 0.0;         // device fp8 against device bf16
  double exact = 0.0;          // CPU twins (double) fp8 against bf16
  double bf16_vs_exact = 0.0;  // device bf16 against CPU bf16
};

Overlaps Measure(const OverlapInputs& in) {
  const int64_t num_blocks = int64_t{in.rows} * in.len / 64, n = int64_t{in.rows} * in.len;
  std::vector<int32_t> slots(n), table(num_blocks), lens(in.rows, in.len), row_seq(in.rows),
      row_lens(in.rows, in.len);
  for (int64_t i = 0; i < n; ++i) slots[i] = static_cast<int32_t>(i);
  for (int64_t b = 0; b < num_blocks; ++b) table[b] = static_cast<int32_t>(b);
  for (int t = 0; t < in.rows; ++t) row_seq[t] = t;
  const kvcache::BlockTableView bt{.num_seqs = in.rows,
                                   .max_blocks_per_seq = in.len / 64,
                                   .row_stride = in.len / 64,
                                   .table = table.data(),
                                   .seq_lens = lens.data()};
  const float scale = 1.0f / std::sqrt(static_cast<float>(kD));

  DeviceBuffer<float> d_keys(in.keys), d_w(in.w), d_logits(static_cast<size_t>(in.rows) * in.len);
  DeviceBuffer<int32_t> d_slots(slots), d_table(table), d_lens(lens), d_row_seq(row_seq),
      d_row_lens(row_lens);
  DeviceBuffer<uint16_t> d_q(in.q_bf16);
  kvcache::BlockTableView dbt = bt;
  dbt.table = d_table.get();
  dbt.seq_lens = d_lens.get();
  std::vector<int32_t> cpu_topk[2], gpu_topk[2];
  for (int f8 = 0; f8 < 2; ++f8) {
    kvcache::PagedCacheOptions opt;
    opt.geometry.indexer_dtype = f8 ? IndexerCacheDType::kF8 : IndexerCacheDType::kBF16;
    opt.num_blocks = num_blocks;
    auto cache = kvcache::IndexerKeyCache::Create(opt);
    EXPECT_TRUE(cache.ok()) << cache.status();
    cpu_topk[f8] = OverlapCpuTopk(in, kK, opt.geometry.indexer_dtype);

    // The device path: write, score, select.
    DeviceBuffer<uint8_t> pool((*cache)->bytes());
    kvcache::IndexerCacheView view = (*cache)->view();
    view.data = pool.get();
    EXPECT_EQ(WriteIndexerCacheCuda({.num_tokens = static_cast<int>(n),
                                     .keys_dtype = DType::kF32,
                                     .keys = d_keys.get(),
                                     .keys_stride = kD,
                                     .slots = d_slots.get(),
                                     .cache = view},
                                    nullptr),
              cudaSuccess);
    EXPECT_EQ(IndexerPagedLogitsCuda({.num_tokens = in.rows,
                                      .num_heads = in.heads,
                                      .max_cols = in.len,
                                      .softmax_scale = scale,
                                      .q = d_q.get(),
                                      .q_token_stride = int64_t{in.heads} * kD,
                                      .q_head_stride = kD,
                                      .weights = d_w.get(),
                                      .weights_token_stride = in.heads,
                                      .row_seq = d_row_seq.get(),
                                      .row_lens = d_row_lens.get(),
                                      .block_table = dbt,
                                      .cache = view,
                                      .logits = d_logits.get(),
                                      .logits_stride = in.len},
                                     nullptr),
              cudaSuccess);
    DeviceBuffer<int32_t> d_topk(static_cast<size_t>(in.rows) * kK);
    const IndexerTopkPlan plan = PlanIndexerTopkCuda(in.rows, kK, in.len, NumSms());
    DeviceBuffer<uint8_t> ws(plan.workspace_bytes);
    EXPECT_EQ(IndexerTopkCuda({.num_tokens = in.rows,
                               .topk = kK,
                               .logits = d_logits.get(),
                               .logits_stride = in.len,
                               .col_end = d_row_lens.get(),
                               .topk_pos = d_topk.get(),
                               .topk_stride = kK},
                              plan, ws.get(), nullptr),
              cudaSuccess);
    SyncOrFail();
    gpu_topk[f8] = d_topk.Download();
  }
  return {.device = TopkOverlap(gpu_topk[0], gpu_topk[1], in.rows, kK),
          .exact = TopkOverlap(cpu_topk[0], cpu_topk[1], in.rows, kK),
          .bf16_vs_exact = TopkOverlap(cpu_topk[0], gpu_topk[0], in.rows, kK)};
}

TEST(IndexerFp8OverlapCudaTest, RotatedFp8KeysKeep99PercentOfTheBf16Topk) {
  const Overlaps o =
      Measure(MakeOverlapInputs(OverlapInputShape::kOutlierLanes, kRows, kLen, kH, kSeed));
  std::printf(
      "outlier-lane inputs: fp8-vs-bf16 top-%d overlap, %d rows of %d keys, %d heads: device "
      "%.4f, exact %.4f; device bf16 vs exact bf16 %.4f\n",
      kK, kRows, kLen, kH, o.device, o.exact, o.bf16_vs_exact);
  RecordProperty("fp8_overlap_device", std::to_string(o.device));
  RecordProperty("fp8_overlap_exact", std::to_string(o.exact));
  EXPECT_GE(o.device, kMinOverlap);
  EXPECT_GE(o.device, o.exact - kMaxExtraLoss);
  EXPECT_GE(o.bf16_vs_exact, 0.995);
}

// The hard case (no shared large lanes): recorded, held only to E4M3's limit.
TEST(IndexerFp8OverlapCudaTest, IsotropicInputsLoseNothingBeyondExactArithmetic) {
  const Overlaps o = Measure(MakeOverlapInputs(OverlapInputShape::kIsotropic, 2, kLen, kH, kSeed));
  std::printf("isotropic inputs: device %.4f, exact %.4f\n", o.device, o.exact);
  EXPECT_GE(o.device, o.exact - kMaxExtraLoss);
  EXPECT_GE(o.device, 0.965);
}

}  // namespace
}  // namespace strata::kernels

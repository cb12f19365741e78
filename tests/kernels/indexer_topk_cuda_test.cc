// The CUDA top-k and positions → slots against IndexerTopkCpu / MapTopkToSlotsCpu. Rows hold
// distinct values (a clear gap at every rank), so the top-k sets are unique and compared as sets.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/indexer_logits.h"
#include "kernels/cuda/indexer_topk.h"
#include "tests/kernels/cuda_test_util.h"

namespace strata::kernels {
namespace {

using strata::testing::DeviceBuffer;
using strata::testing::NumSms;
using strata::testing::SyncOrFail;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

enum class Order { kShuffled, kAscending };

// T rows of `stride` distinct values; rows with more than K columns in range get a few NaN / -inf
// entries (ranked last, never at the k-th place).
std::vector<float> DistinctLogits(std::mt19937& rng, int T, int64_t stride, int K,
                                  const std::vector<int32_t>& begin,
                                  const std::vector<int32_t>& end, Order order) {
  std::vector<float> logits(static_cast<size_t>(T) * stride);
  std::vector<int32_t> perm(stride);
  for (int t = 0; t < T; ++t) {
    std::iota(perm.begin(), perm.end(), 0);
    if (order == Order::kShuffled) std::shuffle(perm.begin(), perm.end(), rng);
    for (int64_t c = 0; c < stride; ++c) {
      logits[t * stride + c] = (static_cast<float>(perm[c]) - stride / 2) * 0.5f;
    }
    if (end[t] - begin[t] > K + 4) {
      for (int i = 0; i < 3; ++i) {
        int64_t lowest = begin[t];
        for (int64_t c = begin[t]; c < end[t]; ++c)
          if (logits[t * stride + c] < logits[t * stride + lowest]) lowest = c;
        logits[t * stride + lowest] = i == 1 ? -kInf : kNaN;
      }
    }
  }
  return logits;
}

std::vector<int32_t> SortedRow(const std::vector<int32_t>& v, int64_t row, int64_t stride, int K) {
  std::vector<int32_t> r(v.begin() + row * stride, v.begin() + row * stride + K);
  std::sort(r.begin(), r.end());
  return r;
}

// Runs the CUDA top-k on the given rows and compares every row with the CPU twin as sets.
void ExpectTopkMatchesCpu(int T, int K, int64_t stride, const std::vector<float>& logits,
                          const std::vector<int32_t>& begin, const std::vector<int32_t>& end,
                          bool pass_begin) {
  std::vector<int32_t> want(static_cast<size_t>(T) * K);
  ASSERT_TRUE(IndexerTopkCpu({.num_tokens = T,
                              .topk = K,
                              .logits = logits.data(),
                              .logits_stride = stride,
                              .col_begin = pass_begin ? begin.data() : nullptr,
                              .col_end = end.data(),
                              .topk_pos = want.data(),
                              .topk_stride = K})
                  .ok());
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<int32_t> d_begin(begin), d_end(end), d_out(static_cast<size_t>(T) * K);
  d_out.Fill(0x7f);
  IndexerTopkCudaParams p{.num_tokens = T,
                          .topk = K,
                          .logits = d_logits.get(),
                          .logits_stride = stride,
                          .col_begin = pass_begin ? d_begin.get() : nullptr,
                          .col_end = d_end.get(),
                          .topk_pos = d_out.get(),
                          .topk_stride = K};
  const IndexerTopkPlan plan = PlanIndexerTopkCuda(T, K, stride, NumSms());
  DeviceBuffer<uint8_t> ws(plan.workspace_bytes);
  // Garbage, as a memory pool hands back: the kernels must zero what they count in.
  if (plan.workspace_bytes > 0) {
    EXPECT_EQ(cudaMemset(ws.get(), 0xA5, plan.workspace_bytes), cudaSuccess);
  }
  ASSERT_EQ(IndexerTopkCuda(p, plan, ws.get(), nullptr), cudaSuccess);
  SyncOrFail();
  const std::vector<int32_t> got = d_out.Download();
  for (int t = 0; t < T; ++t) {
    ASSERT_EQ(SortedRow(got, t, K, K), SortedRow(want, t, K, K))
        << "row " << t << " range [" << begin[t] << ", " << end[t] << ") K=" << K
        << " splits=" << plan.num_splits;
  }
}

TEST(IndexerTopkCudaTest, ManyRowsSmallKWithRangesAndPadding) {
  std::mt19937 rng(1);
  const int T = 200, K = 7;
  const int64_t stride = 1000;
  std::vector<int32_t> begin(T), end(T);
  for (int t = 0; t < T; ++t) {
    begin[t] = static_cast<int32_t>(rng() % 500);
    const int64_t len = t % 5 == 0   ? 0
                        : t % 5 == 1 ? rng() % (K + 1)
                                     : rng() % (stride - begin[t] + 1);
    end[t] = static_cast<int32_t>(begin[t] + len);
  }
  const std::vector<float> logits = DistinctLogits(rng, T, stride, K, begin, end, Order::kShuffled);
  ExpectTopkMatchesCpu(T, K, stride, logits, begin, end, /*pass_begin=*/true);
}

TEST(IndexerTopkCudaTest, K2048AroundTheBoundary) {
  std::mt19937 rng(2);
  const int K = 2048;
  const int64_t stride = 9000;
  const std::vector<int64_t> lens = {0, 1, 100, 2047, 2048, 2049, 2100, 4097, 6000, 8999, 9000};
  const int T = static_cast<int>(lens.size()) * 3;
  std::vector<int32_t> begin(T, 0), end(T);
  for (int t = 0; t < T; ++t) {
    const int64_t len = lens[t % lens.size()];
    begin[t] =
        t < static_cast<int>(lens.size()) ? 0 : static_cast<int32_t>(rng() % (stride - len + 1));
    end[t] = static_cast<int32_t>(begin[t] + len);
  }
  const std::vector<float> logits = DistinctLogits(rng, T, stride, K, begin, end, Order::kShuffled);
  ExpectTopkMatchesCpu(T, K, stride, logits, begin, end, /*pass_begin=*/true);
}

TEST(IndexerTopkCudaTest, FewLongRowsUseTheSplitPath) {
  std::mt19937 rng(3);
  const int K = 2048;
  for (int64_t stride : {int64_t{131075}, int64_t{1} << 20}) {  // unaligned (scalar) and 1M
    const int T = stride > 200000 ? 2 : 1;
    ASSERT_GT(PlanIndexerTopkCuda(T, K, stride, NumSms()).num_splits, 1);
    std::vector<int32_t> begin(T, 0), end(T, static_cast<int32_t>(stride));
    begin[T - 1] = 17;
    end[T - 1] = static_cast<int32_t>(stride - 5);
    const std::vector<float> logits =
        DistinctLogits(rng, T, stride, K, begin, end, Order::kShuffled);
    ExpectTopkMatchesCpu(T, K, stride, logits, begin, end, /*pass_begin=*/true);
  }
}

// The split radix path (few rows of 16K .. 512K columns): aligned and unaligned (scalar) rows,
// begin offsets, rows shorter than K and empty rows, shuffled and ascending values.
TEST(IndexerTopkCudaTest, FewRowsUseTheSplitRadixPath) {
  std::mt19937 rng(9);
  const int K = 2048;
  const struct {
    int rows;
    int64_t stride;
    Order order;
  } kShapes[] = {{1, 131072, Order::kShuffled},
                 {3, 131075, Order::kShuffled},
                 {16, 40000, Order::kAscending},
                 {32, 20000, Order::kShuffled}};
  for (const auto& shape : kShapes) {
    const int T = shape.rows;
    const int64_t stride = shape.stride;
    const IndexerTopkPlan plan = PlanIndexerTopkCuda(T, K, stride, NumSms());
    ASSERT_TRUE(plan.radix) << T << " x " << stride;
    std::vector<int32_t> begin(T, 0), end(T, static_cast<int32_t>(stride));
    for (int t = 0; t < T; ++t) {
      if (t % 4 == 1) begin[t] = static_cast<int32_t>(rng() % 1000);
      if (t % 4 == 2) end[t] = static_cast<int32_t>(begin[t] + rng() % (K + 1));  // <= K columns
      if (t % 8 == 3) end[t] = begin[t];                                          // empty
    }
    const std::vector<float> logits = DistinctLogits(rng, T, stride, K, begin, end, shape.order);
    ExpectTopkMatchesCpu(T, K, stride, logits, begin, end, /*pass_begin=*/true);
  }
}

TEST(IndexerTopkCudaTest, AscendingRowsForceRepeatedCompaction) {
  std::mt19937 rng(4);
  const int T = 140, K = 2048;  // more rows than SMs: one CTA streams each whole row
  const int64_t stride = 100000;
  std::vector<int32_t> begin(T, 0), end(T, static_cast<int32_t>(stride));
  const std::vector<float> logits =
      DistinctLogits(rng, T, stride, K, begin, end, Order::kAscending);
  ExpectTopkMatchesCpu(T, K, stride, logits, begin, end, /*pass_begin=*/false);
}

// Rows full of ties, infinities and NaN: the selected columns must still be min(K, length)
// distinct in-range columns, none smaller than any column left out (NaN counting as −inf).
TEST(IndexerTopkCudaTest, TiesAndInfinitiesKeepTheTopKProperty) {
  std::mt19937 rng(8);
  const int K = 2048;
  const int64_t stride = 50000;
  for (const int T : {6, 270}) {  // split and merged, and one CTA a row
    std::vector<float> logits(static_cast<size_t>(T) * stride);
    std::vector<int32_t> begin(T, 0), end(T, static_cast<int32_t>(stride));
    for (int t = 0; t < T; ++t) {
      float* row = &logits[t * stride];
      for (int64_t c = 0; c < stride; ++c) {
        const float distinct = static_cast<float>(rng() % 1000000) * 1e-3f;
        switch (t % 6) {
          case 0:
            row[c] = 1.0f;
            break;
          case 1:
            row[c] = rng() % 10 < 7 ? 3.0f : distinct - 1000.0f;
            break;
          case 2:
            row[c] = -kInf;
            break;
          case 3:
            row[c] = c % 500 == 0 ? distinct : kNaN;
            break;
          case 4:
            row[c] = static_cast<float>(rng() % 4);
            break;
          default:
            row[c] = c % 5000 == 0 ? kInf : distinct;
            break;
        }
      }
      if (t % 6 == 5) begin[t] = 123;
    }
    DeviceBuffer<float> d_logits(logits);
    DeviceBuffer<int32_t> d_begin(begin), d_end(end), d_out(static_cast<size_t>(T) * K);
    const IndexerTopkPlan plan = PlanIndexerTopkCuda(T, K, stride, NumSms());
    DeviceBuffer<uint8_t> ws(plan.workspace_bytes);
    // Garbage, as a memory pool hands back: the kernels must zero what they count in.
    if (plan.workspace_bytes > 0) {
      EXPECT_EQ(cudaMemset(ws.get(), 0xA5, plan.workspace_bytes), cudaSuccess);
    }
    ASSERT_EQ(IndexerTopkCuda({.num_tokens = T,
                               .topk = K,
                               .logits = d_logits.get(),
                               .logits_stride = stride,
                               .col_begin = d_begin.get(),
                               .col_end = d_end.get(),
                               .topk_pos = d_out.get(),
                               .topk_stride = K},
                              plan, ws.get(), nullptr),
              cudaSuccess);
    SyncOrFail();
    const std::vector<int32_t> got = d_out.Download();
    for (int t = 0; t < T; ++t) {
      const float* row = &logits[t * stride];
      auto value = [&](int64_t c) { return std::isnan(row[c]) ? -kInf : row[c]; };
      std::vector<char> chosen(stride, 0);
      int count = 0;
      float min_chosen = kInf;
      for (int i = 0; i < K; ++i) {
        const int32_t pos = got[t * K + i];
        if (pos < 0) continue;
        const int64_t c = begin[t] + pos;
        ASSERT_LT(c, end[t]) << "row " << t;
        ASSERT_FALSE(chosen[c]) << "row " << t << " repeats column " << c;
        chosen[c] = 1;
        ++count;
        min_chosen = std::min(min_chosen, value(c));
      }
      ASSERT_EQ(count, std::min<int64_t>(K, end[t] - begin[t])) << "row " << t;
      for (int64_t c = begin[t]; c < end[t]; ++c) {
        if (!chosen[c]) {
          ASSERT_LE(value(c), min_chosen) << "row " << t << " col " << c;
        }
      }
    }
  }
}

// Block table of `num_seqs` sequences of `lens`, block ids drawn from the top of a pool of
// `num_blocks` (ids above 2^16).
struct Tables {
  kvcache::BlockTables host{0};
  DeviceBuffer<int32_t> table, seq_lens;
  kvcache::BlockTableView device_view;
};

void MakeTables(std::mt19937& rng, const std::vector<int32_t>& lens, int64_t num_blocks,
                Tables* out) {
  int max_blocks = 1;
  for (int32_t l : lens) max_blocks = std::max(max_blocks, (l + 63) / 64);
  out->host = kvcache::BlockTables(max_blocks);
  std::vector<int32_t> ids(num_blocks - 65536);
  std::iota(ids.begin(), ids.end(), 65536);
  std::shuffle(ids.begin(), ids.end(), rng);
  size_t next = 0;
  for (int32_t l : lens) {
    std::vector<int32_t> blocks((l + 63) / 64);
    for (int32_t& b : blocks) b = ids[next++ % ids.size()];
    ASSERT_TRUE(out->host.AddSequence(blocks, l).ok());
  }
  const kvcache::BlockTableView v = out->host.view();
  out->table =
      DeviceBuffer<int32_t>(std::vector<int32_t>(v.table, v.table + v.num_seqs * v.row_stride));
  out->seq_lens = DeviceBuffer<int32_t>(std::vector<int32_t>(v.seq_lens, v.seq_lens + v.num_seqs));
  out->device_view = v;
  out->device_view.table = out->table.get();
  out->device_view.seq_lens = out->seq_lens.get();
}

class FusedSlotsTest : public ::testing::TestWithParam<int64_t> {};

// Short rows (one CTA a row) and long ones (the split radix path, which maps as it writes).
TEST_P(FusedSlotsTest, MatchMapTopkToSlotsCpu) {
  std::mt19937 rng(5);
  const int64_t stride = GetParam(), num_blocks = 70000;
  const int T = stride >= 16384 ? 32 : 64, K = 2048;
  std::vector<int32_t> lens(T), begin(T, 0), end(T), row_seq(T), row_lens(T);
  for (int t = 0; t < T; ++t) {
    lens[t] = static_cast<int32_t>(1 + rng() % stride);
    end[t] = lens[t];
    row_seq[t] = t;
    row_lens[t] = lens[t] - static_cast<int32_t>(rng() % std::min(lens[t], 50));  // some dropped
  }
  Tables tables;
  MakeTables(rng, lens, num_blocks, &tables);
  const std::vector<float> logits = DistinctLogits(rng, T, stride, K, begin, end, Order::kShuffled);
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<int32_t> d_end(end), d_seq(row_seq), d_lens(row_lens);
  DeviceBuffer<int32_t> d_pos(static_cast<size_t>(T) * K), d_slots(static_cast<size_t>(T) * K);
  d_slots.Fill(0x7f);
  IndexerTopkCudaParams p{.num_tokens = T,
                          .topk = K,
                          .logits = d_logits.get(),
                          .logits_stride = stride,
                          .col_end = d_end.get(),
                          .topk_pos = d_pos.get(),
                          .topk_stride = K,
                          .slots = d_slots.get(),
                          .slots_stride = K,
                          .row_seq = d_seq.get(),
                          .row_lens = d_lens.get(),
                          .block_table = tables.device_view,
                          .num_blocks = num_blocks};
  const IndexerTopkPlan plan = PlanIndexerTopkCuda(T, K, stride, NumSms());
  DeviceBuffer<uint8_t> ws(plan.workspace_bytes);
  // Garbage, as a memory pool hands back: the kernels must zero what they count in.
  if (plan.workspace_bytes > 0) {
    EXPECT_EQ(cudaMemset(ws.get(), 0xA5, plan.workspace_bytes), cudaSuccess);
  }
  ASSERT_EQ(IndexerTopkCuda(p, plan, ws.get(), nullptr), cudaSuccess);
  SyncOrFail();
  const std::vector<int32_t> pos = d_pos.Download(), slots = d_slots.Download();
  std::vector<int32_t> want(static_cast<size_t>(T) * K);
  ASSERT_TRUE(MapTopkToSlotsCpu({.num_tokens = T,
                                 .topk = K,
                                 .topk_pos = pos.data(),
                                 .topk_stride = K,
                                 .row_seq = row_seq.data(),
                                 .row_lens = row_lens.data(),
                                 .block_table = tables.host.view(),
                                 .num_blocks = num_blocks,
                                 .slots = want.data(),
                                 .slots_stride = K})
                  .ok());
  EXPECT_EQ(slots, want);
  int high_ids = 0;
  for (int32_t s : slots) high_ids += s >= (1 << 16) * 64;
  EXPECT_GT(high_ids, 0);
  EXPECT_EQ(plan.radix, stride >= 16384);
}

INSTANTIATE_TEST_SUITE_P(RowLengths, FusedSlotsTest, ::testing::Values(5000, 40000));

TEST(IndexerTopkCudaTest, MapTopkToSlotsMatchesCpuWithPaddedRows) {
  std::mt19937 rng(6);
  const int T = 128, K = 300;
  const int64_t num_blocks = 66000;
  std::vector<int32_t> lens(T), row_seq(T), row_lens(T), pos(static_cast<size_t>(T) * K);
  for (int t = 0; t < T; ++t) {
    lens[t] = static_cast<int32_t>(1 + rng() % 3000);
    row_seq[t] = T - 1 - t;
  }
  for (int t = 0; t < T; ++t) {
    row_lens[t] = std::max(0, lens[row_seq[t]] - static_cast<int32_t>(rng() % 3));
    for (int i = 0; i < K; ++i) {
      // Row 0 all -1, row 1 partly -1, others random positions incl. >= row_lens.
      const int32_t r = static_cast<int32_t>(rng() % (lens[row_seq[t]] + 2));
      pos[t * K + i] = t == 0 || (t == 1 && i % 2 == 0) ? -1 : r;
    }
  }
  Tables tables;
  MakeTables(rng, lens, num_blocks, &tables);
  std::vector<int32_t> want(pos.size());
  ASSERT_TRUE(MapTopkToSlotsCpu({.num_tokens = T,
                                 .topk = K,
                                 .topk_pos = pos.data(),
                                 .topk_stride = K,
                                 .row_seq = row_seq.data(),
                                 .row_lens = row_lens.data(),
                                 .block_table = tables.host.view(),
                                 .num_blocks = num_blocks,
                                 .slots = want.data(),
                                 .slots_stride = K})
                  .ok());
  DeviceBuffer<int32_t> d_pos(pos), d_seq(row_seq), d_lens(row_lens), d_slots(pos.size());
  ASSERT_EQ(MapTopkToSlotsCuda({.num_tokens = T,
                                .topk = K,
                                .topk_pos = d_pos.get(),
                                .topk_stride = K,
                                .row_seq = d_seq.get(),
                                .row_lens = d_lens.get(),
                                .block_table = tables.device_view,
                                .num_blocks = num_blocks,
                                .slots = d_slots.get(),
                                .slots_stride = K},
                               nullptr),
            cudaSuccess);
  SyncOrFail();
  EXPECT_EQ(d_slots.Download(), want);
}

TEST(IndexerTopkCudaTest, RejectsMalformedParams) {
  IndexerTopkCudaParams p{.num_tokens = 1, .topk = kIndexerTopkMaxK + 1, .topk_stride = 4096};
  EXPECT_EQ(IndexerTopkCuda(p, IndexerTopkPlan{}, nullptr, nullptr), cudaErrorInvalidValue);
  p.topk = 4;
  EXPECT_EQ(IndexerTopkCuda(p, IndexerTopkPlan{}, nullptr, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(PlanIndexerTopkCuda(1000, 2048, 8192, 132).num_splits, 1);
  IndexerTopkPlan plan = PlanIndexerTopkCuda(1, 2048, 1 << 20, 132);  // too long for radix
  EXPECT_FALSE(plan.radix);
  EXPECT_EQ(plan.num_splits, 64);
  EXPECT_EQ(plan.workspace_bytes, size_t{64} * 2048 * 8);
  plan = PlanIndexerTopkCuda(1, 2048, 131072, 132);
  EXPECT_TRUE(plan.radix);
  EXPECT_EQ(plan.num_splits, 32);  // 4096 columns a CTA
  EXPECT_GT(plan.workspace_bytes, size_t{0});
  EXPECT_FALSE(PlanIndexerTopkCuda(33, 2048, 131072, 132).radix);  // more rows: other paths
  p.topk_pos = reinterpret_cast<int32_t*>(16);
  p.logits = reinterpret_cast<const float*>(16);
  p.col_end = reinterpret_cast<const int32_t*>(16);
  EXPECT_EQ(IndexerTopkCuda(p, plan, nullptr, nullptr), cudaErrorInvalidValue);  // no workspace
}

}  // namespace
}  // namespace strata::kernels

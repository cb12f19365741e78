// The CUDA indexer logits against IndexerRaggedLogitsCpu / IndexerPagedLogitsCpu on the same bf16
// queries and stored keys, and the fp8 key path's top-k overlap with the bf16 path.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cache_write.h"
#include "kernels/cpu/indexer_logits.h"
#include "kernels/cuda/cache_write.h"
#include "kernels/cuda/indexer_logits.h"
#include "kernels/cuda/indexer_topk.h"
#include "kvcache/paged_cache.h"
#include "tests/kernels/cuda_test_util.h"

namespace strata::kernels {
namespace {

using kvcache::IndexerCacheDType;
using strata::testing::DeviceBuffer;
using strata::testing::NumSms;
using strata::testing::SyncOrFail;

constexpr int kD = 128;
// fp32 MMA accumulation against double: error bound relative to the Cauchy–Schwarz magnitude
// scale · Σ_h |w_h| · |q_h| · max_j |k_j| of a row.
constexpr double kRelTol = 2e-5;
// fp8 keys are Hadamard-rotated and the device rounds H·q to bf16 (at most 2^-9 of each lane, so
// 2^-9 · |q| in norm): added to the bound for fp8 keys. The CPU twin rotates q in double.
constexpr double kRotatedQRelTol = 1.0 / 512;

struct Queries {
  int T = 0, H = 0;
  int64_t token_stride = 0;     // elements (padded past H · 128)
  std::vector<uint16_t> bf16;   // [T, token_stride]
  std::vector<float> f32;       // the same values widened
  std::vector<float> w;         // [T, H]
  std::vector<double> w_qnorm;  // [T] Σ_h |w_h| · |q_h|
};

Queries MakeQueries(std::mt19937& rng, int T, int H) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Queries q;
  q.T = T;
  q.H = H;
  q.token_stride = int64_t{H} * kD + 8;
  q.bf16.assign(T * q.token_stride, 0);
  q.f32.assign(T * q.token_stride, 0.0f);
  q.w.resize(static_cast<size_t>(T) * H);
  q.w_qnorm.assign(T, 0.0);
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < H; ++h) {
      double norm2 = 0.0;
      for (int d = 0; d < kD; ++d) {
        const int64_t i = t * q.token_stride + h * kD + d;
        q.bf16[i] = FloatToBF16(dist(rng));
        q.f32[i] = BF16ToFloat(q.bf16[i]);
        norm2 += double{q.f32[i]} * q.f32[i];
      }
      q.w[t * H + h] = dist(rng) / std::sqrt(static_cast<float>(H));
      q.w_qnorm[t] += std::fabs(q.w[t * H + h]) * std::sqrt(norm2);
    }
  }
  return q;
}

void ExpectRow(const std::vector<float>& got, const std::vector<float>& want, int t, int64_t stride,
               int64_t max_cols, double bound, double rel_tol) {
  for (int64_t c = 0; c < max_cols; ++c) {
    const float g = got[t * stride + c], w = want[t * stride + c];
    if (std::isinf(w)) {
      ASSERT_EQ(g, w) << "row " << t << " col " << c;
    } else {
      ASSERT_LE(std::fabs(double{g} - w), rel_tol * bound) << "row " << t << " col " << c;
    }
  }
}

// Paged: every (heads, key dtype, batch shape).
struct PagedShape {
  int batch, next_n, max_len;
};

class PagedLogitsCudaTest
    : public ::testing::TestWithParam<std::tuple<int, IndexerCacheDType, PagedShape>> {};

TEST_P(PagedLogitsCudaTest, MatchesCpu) {
  const auto [H, dtype, shape] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(H * 31 + shape.batch * 7 + shape.next_n));
  const int64_t num_blocks = 66000;  // ids above 2^16
  std::vector<int32_t> lens(shape.batch);
  int blocks_needed = 0, max_blocks = 1;
  for (int32_t& l : lens) {
    l = shape.next_n + static_cast<int32_t>(rng() % (shape.max_len - shape.next_n + 1));
    if (l % 64 == 0) l -= 1;
    l = std::max(l, shape.next_n);
    blocks_needed += (l + 63) / 64;
    max_blocks = std::max(max_blocks, (l + 63) / 64);
  }
  std::vector<int32_t> ids(num_blocks - 65536);
  std::iota(ids.begin(), ids.end(), 65536);
  std::shuffle(ids.begin(), ids.end(), rng);
  ASSERT_LE(blocks_needed, static_cast<int>(ids.size()));
  kvcache::BlockTables tables(max_blocks);
  size_t next = 0;
  for (int32_t l : lens) {
    std::vector<int32_t> blocks((l + 63) / 64);
    for (int32_t& b : blocks) b = ids[next++];
    ASSERT_TRUE(tables.AddSequence(blocks, l).ok());
  }
  const kvcache::BlockTableView bt = tables.view();

  kvcache::PagedCacheOptions opt;
  opt.geometry.indexer_dtype = dtype;
  opt.num_blocks = num_blocks;
  auto cache = kvcache::IndexerKeyCache::Create(opt);
  ASSERT_TRUE(cache.ok()) << cache.status();
  std::normal_distribution<float> dist(0.0f, 1.0f);
  double max_key_norm = 0.0;
  for (int s = 0; s < shape.batch; ++s) {
    std::vector<float> keys(static_cast<size_t>(lens[s]) * kD);
    for (float& k : keys) k = dist(rng) * ((rng() % 61 == 0) ? 8.0f : 1.0f);
    std::vector<int32_t> slots(lens[s]);
    for (int p = 0; p < lens[s]; ++p) {
      slots[p] = static_cast<int32_t>(kvcache::SlotForPosition(kvcache::BlockTableRow(bt, s), p));
    }
    ASSERT_TRUE(WriteIndexerCacheCpu({.num_tokens = lens[s],
                                      .keys = keys.data(),
                                      .keys_stride = kD,
                                      .slots = slots.data(),
                                      .cache = (*cache)->view()})
                    .ok());
    std::vector<float> k(kD);
    for (int32_t slot : slots) {
      ASSERT_TRUE((*cache)->ReadKey(slot, absl::MakeSpan(k)).ok());
      double n2 = 0.0;
      for (float v : k) n2 += double{v} * v;
      max_key_norm = std::max(max_key_norm, std::sqrt(n2));
    }
  }

  const int T = shape.batch * shape.next_n;
  const Queries q = MakeQueries(rng, T, H);
  std::vector<int32_t> row_seq(T), row_lens(T);
  for (int t = 0; t < T; ++t) {
    row_seq[t] = t / shape.next_n;
    row_lens[t] = lens[row_seq[t]] - shape.next_n + 1 + t % shape.next_n;
  }
  const int64_t max_cols = shape.max_len + 37, stride = max_cols + 3;
  const float scale = 1.0f / std::sqrt(static_cast<float>(kD));
  std::vector<float> want(static_cast<size_t>(T) * stride);
  IndexerPagedLogitsParams cp{.num_tokens = T,
                              .num_heads = H,
                              .max_cols = max_cols,
                              .softmax_scale = scale,
                              .q = q.f32.data(),
                              .q_token_stride = q.token_stride,
                              .q_head_stride = kD,
                              .weights = q.w.data(),
                              .weights_token_stride = H,
                              .row_seq = row_seq.data(),
                              .row_lens = row_lens.data(),
                              .block_table = bt,
                              .cache = (*cache)->view(),
                              .logits = want.data(),
                              .logits_stride = stride};
  ASSERT_TRUE(IndexerPagedLogitsCpu(cp).ok());

  // Device copies: only the blocks in use travel; the rest of the pool stays uninitialised.
  const kvcache::IndexerCacheView hv = (*cache)->view();
  DeviceBuffer<uint8_t> pool((*cache)->bytes());
  for (size_t i = 0; i < next; ++i) {
    const int64_t off = ids[i] * hv.block_stride;
    ASSERT_EQ(cudaMemcpy(pool.get() + off, (*cache)->data() + off, hv.block_stride,
                         cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  DeviceBuffer<int32_t> d_table(
      std::vector<int32_t>(bt.table, bt.table + bt.num_seqs * bt.row_stride));
  DeviceBuffer<int32_t> d_lens(lens), d_row_seq(row_seq), d_row_lens(row_lens);
  DeviceBuffer<uint16_t> d_q(q.bf16);
  DeviceBuffer<float> d_w(q.w), d_logits(static_cast<size_t>(T) * stride);
  d_logits.Fill(0xff);  // NaN: every column < max_cols must be written
  kvcache::BlockTableView dbt = bt;
  dbt.table = d_table.get();
  dbt.seq_lens = d_lens.get();
  kvcache::IndexerCacheView dv = hv;
  dv.data = pool.get();
  IndexerPagedLogitsCudaParams p{.num_tokens = T,
                                 .num_heads = H,
                                 .max_cols = max_cols,
                                 .softmax_scale = scale,
                                 .q = d_q.get(),
                                 .q_token_stride = q.token_stride,
                                 .q_head_stride = kD,
                                 .weights = d_w.get(),
                                 .weights_token_stride = H,
                                 .row_seq = d_row_seq.get(),
                                 .row_lens = d_row_lens.get(),
                                 .next_n = shape.next_n,
                                 .block_table = dbt,
                                 .cache = dv,
                                 .logits = d_logits.get(),
                                 .logits_stride = stride};
  ASSERT_EQ(IndexerPagedLogitsCuda(p, nullptr), cudaSuccess);
  SyncOrFail();
  const std::vector<float> got = d_logits.Download();
  const double tol = kRelTol + (dtype == IndexerCacheDType::kF8 ? kRotatedQRelTol : 0.0);
  for (int t = 0; t < T; ++t) {
    ExpectRow(got, want, t, stride, max_cols, scale * q.w_qnorm[t] * max_key_norm, tol);
  }

  p.num_heads = 48;
  EXPECT_EQ(IndexerPagedLogitsCuda(p, nullptr), cudaErrorInvalidValue);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedLogitsCudaTest,
    ::testing::Combine(::testing::Values(32, 64),
                       ::testing::Values(IndexerCacheDType::kBF16, IndexerCacheDType::kF8),
                       ::testing::Values(PagedShape{1, 1, 5000}, PagedShape{3, 2, 2100},
                                         PagedShape{128, 1, 300}, PagedShape{128, 2, 200})));

class RaggedLogitsCudaTest : public ::testing::TestWithParam<std::tuple<int, DType>> {};

TEST_P(RaggedLogitsCudaTest, MatchesCpu) {
  const auto [H, key_dtype] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(H + static_cast<int>(key_dtype)));
  const int T = 257;
  const int64_t N = 600, max_cols = 643, stride = 650, key_stride = 144;
  const bool f8 = key_dtype == DType::kF8E4M3;
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<uint8_t> keys(N * key_stride * DTypeSize(key_dtype), 0);
  std::vector<float> scales(N);
  double max_key_norm = 0.0;
  for (int64_t j = 0; j < N; ++j) {
    scales[j] = 0.01f * (1.0f + static_cast<float>(j % 7));
    double n2 = 0.0;
    for (int d = 0; d < kD; ++d) {
      float v = dist(rng);
      if (f8) {
        keys[j * key_stride + d] = FloatToF8E4M3(v * 40.0f);
        v = F8E4M3ToFloat(keys[j * key_stride + d]) * scales[j];
      } else {
        const uint16_t h = FloatToBF16(v);
        std::memcpy(&keys[(j * key_stride + d) * 2], &h, 2);
        v = BF16ToFloat(h);
      }
      n2 += double{v} * v;
    }
    max_key_norm = std::max(max_key_norm, std::sqrt(n2));
  }
  std::vector<int32_t> ks(T), ke(T);
  for (int t = 0; t < T; ++t) {  // causal-like ranges, some empty, some full
    ks[t] = t % 11 == 0 ? 0 : static_cast<int32_t>(rng() % 200);
    ke[t] = t % 13 == 0 ? ks[t] : static_cast<int32_t>(std::min<int64_t>(N, ks[t] + 2 * t + 1));
    if (t % 17 == 0) ke[t] = static_cast<int32_t>(N);
  }
  const Queries q = MakeQueries(rng, T, H);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kD));
  std::vector<float> want(static_cast<size_t>(T) * stride);
  ASSERT_TRUE(IndexerRaggedLogitsCpu({.num_tokens = T,
                                      .num_heads = H,
                                      .head_dim = kD,
                                      .num_keys = N,
                                      .max_cols = max_cols,
                                      .softmax_scale = scale,
                                      .q = q.f32.data(),
                                      .q_token_stride = q.token_stride,
                                      .q_head_stride = kD,
                                      .weights = q.w.data(),
                                      .weights_token_stride = H,
                                      .key_dtype = key_dtype,
                                      .keys = keys.data(),
                                      .key_stride = key_stride,
                                      .key_scales = scales.data(),
                                      .k_start = ks.data(),
                                      .k_end = ke.data(),
                                      .logits = want.data(),
                                      .logits_stride = stride})
                  .ok());
  DeviceBuffer<uint8_t> d_keys(keys);
  DeviceBuffer<float> d_scales(scales), d_w(q.w), d_logits(static_cast<size_t>(T) * stride);
  DeviceBuffer<uint16_t> d_q(q.bf16);
  DeviceBuffer<int32_t> d_ks(ks), d_ke(ke);
  d_logits.Fill(0xff);
  IndexerRaggedLogitsCudaParams p{.num_tokens = T,
                                  .num_heads = H,
                                  .head_dim = kD,
                                  .num_keys = N,
                                  .max_cols = max_cols,
                                  .softmax_scale = scale,
                                  .q = d_q.get(),
                                  .q_token_stride = q.token_stride,
                                  .q_head_stride = kD,
                                  .weights = d_w.get(),
                                  .weights_token_stride = H,
                                  .key_dtype = key_dtype,
                                  .keys = d_keys.get(),
                                  .key_stride = key_stride,
                                  .key_scales = f8 ? d_scales.get() : nullptr,
                                  .k_start = d_ks.get(),
                                  .k_end = d_ke.get(),
                                  .logits = d_logits.get(),
                                  .logits_stride = stride};
  ASSERT_EQ(IndexerRaggedLogitsCuda(p, nullptr), cudaSuccess);
  SyncOrFail();
  const std::vector<float> got = d_logits.Download();
  const double tol = kRelTol + (f8 ? kRotatedQRelTol : 0.0);
  for (int t = 0; t < T; ++t) {
    ExpectRow(got, want, t, stride, max_cols, scale * q.w_qnorm[t] * max_key_norm, tol);
  }
  p.head_dim = 64;
  EXPECT_EQ(IndexerRaggedLogitsCuda(p, nullptr), cudaErrorInvalidValue);
}

INSTANTIATE_TEST_SUITE_P(HeadsAndDtypes, RaggedLogitsCudaTest,
                         ::testing::Combine(::testing::Values(32, 64),
                                            ::testing::Values(DType::kBF16, DType::kF8E4M3)));

}  // namespace
}  // namespace strata::kernels

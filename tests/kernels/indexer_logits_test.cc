#include "kernels/cpu/indexer_logits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cache_write.h"
#include "kvcache/paged_cache.h"
#include "tests/kernels/dsa_test_util.h"

namespace strata::kernels {
namespace {

using kvcache::IndexerCacheDType;
using strata::testing::DecodeIndexerKey;
using strata::testing::HadamardReference;
using strata::testing::RandomVector;

constexpr float kInf = std::numeric_limits<float>::infinity();
// Double accumulation on both sides: what is left is the fp32 rounding of the inputs and output.
constexpr double kRelTol = 1e-5;

// Σ_h w[h] · relu((q[h] · k) · scale), straight from dsa.md §2.
double ReferenceScore(const float* q, const float* w, int heads, int dim, double scale,
                      const std::vector<float>& key) {
  double total = 0.0;
  for (int h = 0; h < heads; ++h) {
    double dot = 0.0;
    for (int d = 0; d < dim; ++d) dot += double{q[h * dim + d]} * key[d];
    total += w[h] * std::max(0.0, dot * scale);
  }
  return total;
}

// The same against a stored fp8 key, which is H·k (kvcache/layout.h): (H·q[h]) · stored.
double ReferenceScoreRotated(const float* q, const float* w, int heads, int dim, double scale,
                             const std::vector<float>& stored) {
  double total = 0.0;
  for (int h = 0; h < heads; ++h) {
    const std::vector<double> hq = HadamardReference(q + h * dim, dim);
    double dot = 0.0;
    for (int d = 0; d < dim; ++d) dot += hq[d] * stored[d];
    total += w[h] * std::max(0.0, dot * scale);
  }
  return total;
}

void ExpectLogit(float got, double want, int t, int64_t col) {
  ASSERT_LE(std::fabs(got - want), kRelTol * (1.0 + std::fabs(want)))
      << "row " << t << " col " << col;
}

TEST(IndexerLogitsTest, RaggedMatchesTheFormulaForEveryKeyDtype) {
  std::mt19937 rng(11);
  for (int heads : {1, 16}) {
    for (DType key_dtype : {DType::kF32, DType::kBF16, DType::kF8E4M3}) {
      const int T = 37, D = 32;
      const int64_t N = 150, max_cols = 160;
      const float scale = 1.0f / std::sqrt(static_cast<float>(D));
      const std::vector<float> q = RandomVector(rng, static_cast<size_t>(T) * heads * D);
      const std::vector<float> w = RandomVector(rng, static_cast<size_t>(T) * heads);  // signed
      const std::vector<float> raw = RandomVector(rng, N * D, -3.0f, 3.0f);
      // Encode the keys in key_dtype; `keys` holds what the kernel should see.
      std::vector<uint8_t> storage(N * D * DTypeSize(key_dtype));
      std::vector<float> key_scales(N);
      std::vector<float> keys(N * D);
      for (int64_t j = 0; j < N; ++j) {
        key_scales[j] = std::ldexp(1.0f, static_cast<int>(j % 5) - 7);
        for (int d = 0; d < D; ++d) {
          const int64_t i = j * D + d;
          if (key_dtype == DType::kF32) {
            std::memcpy(&storage[4 * i], &raw[i], 4);
            keys[i] = raw[i];
          } else if (key_dtype == DType::kBF16) {
            const uint16_t h = FloatToBF16(raw[i]);
            std::memcpy(&storage[2 * i], &h, 2);
            keys[i] = BF16ToFloat(h);
          } else {
            storage[i] = FloatToF8E4M3(raw[i]);
            keys[i] = F8E4M3ToFloat(storage[i]) * key_scales[j];
          }
        }
      }
      std::vector<int32_t> ks(T), ke(T);
      for (int t = 0; t < T; ++t) {
        ks[t] = static_cast<int32_t>(rng() % N);
        ke[t] = t % 9 == 0 ? ks[t] : ks[t] + static_cast<int32_t>(rng() % (N - ks[t] + 1));
      }
      std::vector<float> logits(T * max_cols, 7.0f);
      IndexerRaggedLogitsParams p;
      p.num_tokens = T;
      p.num_heads = heads;
      p.head_dim = D;
      p.num_keys = N;
      p.max_cols = max_cols;
      p.softmax_scale = scale;
      p.q = q.data();
      p.q_token_stride = heads * D;
      p.q_head_stride = D;
      p.weights = w.data();
      p.weights_token_stride = heads;
      p.key_dtype = key_dtype;
      p.keys = storage.data();
      p.key_stride = D;
      p.key_scales = key_scales.data();
      p.k_start = ks.data();
      p.k_end = ke.data();
      p.logits = logits.data();
      p.logits_stride = max_cols;
      ASSERT_TRUE(IndexerRaggedLogitsCpu(p).ok());
      for (int t = 0; t < T; ++t) {
        for (int64_t j = 0; j < max_cols; ++j) {
          const float got = logits[t * max_cols + j];
          if (j < ks[t] || j >= ke[t]) {
            ASSERT_EQ(got, -kInf) << "row " << t << " col " << j;
            continue;
          }
          const std::vector<float> key(keys.begin() + j * D, keys.begin() + (j + 1) * D);
          const double want =
              key_dtype == DType::kF8E4M3
                  ? ReferenceScoreRotated(&q[t * heads * D], &w[t * heads], heads, D, scale, key)
                  : ReferenceScore(&q[t * heads * D], &w[t * heads], heads, D, scale, key);
          ExpectLogit(got, want, t, j);
        }
      }
      ke[3] = static_cast<int32_t>(N + 1);  // past the keys
      EXPECT_EQ(IndexerRaggedLogitsCpu(p).code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

// The header's claim: folding softmax_scale into the weights changes only rounding.
TEST(IndexerLogitsTest, SoftmaxScaleMayBeFoldedIntoTheWeights) {
  std::mt19937 rng(12);
  const int T = 4, H = 8, D = 64, N = 20;
  const float scale = 0.125f;
  const std::vector<float> q = RandomVector(rng, T * H * D);
  std::vector<float> w = RandomVector(rng, T * H);
  const std::vector<float> keys = RandomVector(rng, N * D);
  const std::vector<int32_t> ks(T, 0), ke(T, N);
  std::vector<float> a(T * N), b(T * N);
  IndexerRaggedLogitsParams p{
      T, H,           D,           N, N,       scale,     q.data(),  H * D,    D, w.data(),
      H, DType::kF32, keys.data(), D, nullptr, ks.data(), ke.data(), a.data(), N};
  ASSERT_TRUE(IndexerRaggedLogitsCpu(p).ok());
  for (float& x : w) x *= scale;
  p.softmax_scale = 1.0f;
  p.logits = b.data();
  ASSERT_TRUE(IndexerRaggedLogitsCpu(p).ok());
  for (int i = 0; i < T * N; ++i) EXPECT_NEAR(a[i], b[i], 1e-6 * (1 + std::fabs(a[i]))) << i;
}

TEST(IndexerLogitsTest, PagedReadsKeysThroughTheBlockTable) {
  std::mt19937 rng(13);
  for (IndexerCacheDType dtype :
       {IndexerCacheDType::kF32, IndexerCacheDType::kBF16, IndexerCacheDType::kF8}) {
    for (int next_n : {1, 2}) {
      const int D = 32, H = 16;
      const int64_t pool = 65601;  // block 65600 > 2^16
      kvcache::PagedCacheOptions o;
      o.geometry.index_head_dim = D;
      o.geometry.indexer_dtype = dtype;
      o.num_blocks = pool;
      auto cache = kvcache::IndexerKeyCache::Create(o);
      ASSERT_TRUE(cache.ok());
      kvcache::BlockTables tables(4);
      ASSERT_TRUE(tables.AddSequence({7, 2, 65600}, 150).ok());  // not a multiple of 64
      ASSERT_TRUE(tables.AddSequence({3}, 40).ok());
      ASSERT_TRUE(tables.AddSequence({40000, 9}, 64).ok());  // exactly one full block used
      const kvcache::BlockTableView bt = tables.view();
      // Write every cached position's key.
      for (int s = 0; s < bt.num_seqs; ++s) {
        const std::vector<float> keys = RandomVector(rng, bt.seq_lens[s] * D, -2.0f, 2.0f);
        std::vector<int32_t> slots(bt.seq_lens[s]);
        for (int pos = 0; pos < bt.seq_lens[s]; ++pos) {
          slots[pos] =
              static_cast<int32_t>(kvcache::SlotForPosition(kvcache::BlockTableRow(bt, s), pos));
        }
        WriteIndexerCacheParams w{bt.seq_lens[s], keys.data(), D, slots.data(), (*cache)->view()};
        ASSERT_TRUE(WriteIndexerCacheCpu(w).ok());
      }
      // next_n causal query rows per sequence: lengths ctx - next_n + 1 + i.
      std::vector<int32_t> row_seq, row_lens;
      for (int s = 0; s < bt.num_seqs; ++s) {
        for (int i = 0; i < next_n; ++i) {
          row_seq.push_back(s);
          row_lens.push_back(bt.seq_lens[s] - next_n + 1 + i);
        }
      }
      const int T = static_cast<int>(row_seq.size());
      const int64_t max_cols = 192;
      const std::vector<float> q = RandomVector(rng, T * H * D);
      const std::vector<float> wts = RandomVector(rng, T * H);
      std::vector<float> logits(T * max_cols);
      IndexerPagedLogitsParams p;
      p.num_tokens = T;
      p.num_heads = H;
      p.max_cols = max_cols;
      p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(D));
      p.q = q.data();
      p.q_token_stride = H * D;
      p.q_head_stride = D;
      p.weights = wts.data();
      p.weights_token_stride = H;
      p.row_seq = row_seq.data();
      p.row_lens = row_lens.data();
      p.block_table = bt;
      p.cache = (*cache)->view();
      p.logits = logits.data();
      p.logits_stride = max_cols;
      ASSERT_TRUE(IndexerPagedLogitsCpu(p).ok());
      for (int t = 0; t < T; ++t) {
        const int32_t* row = kvcache::BlockTableRow(bt, row_seq[t]);
        for (int64_t pos = 0; pos < max_cols; ++pos) {
          const float got = logits[t * max_cols + pos];
          if (pos >= row_lens[t]) {
            ASSERT_EQ(got, -kInf) << "row " << t << " pos " << pos;
            continue;
          }
          const std::vector<float> key =
              DecodeIndexerKey((*cache)->data(), dtype, D, kvcache::SlotForPosition(row, pos));
          const double want =
              dtype == IndexerCacheDType::kF8
                  ? ReferenceScoreRotated(&q[t * H * D], &wts[t * H], H, D, p.softmax_scale, key)
                  : ReferenceScore(&q[t * H * D], &wts[t * H], H, D, p.softmax_scale, key);
          ExpectLogit(got, want, t, pos);
        }
      }
      // Malformed requests are refused.
      row_lens[0] = bt.seq_lens[0] + 1;
      EXPECT_EQ(IndexerPagedLogitsCpu(p).code(), absl::StatusCode::kInvalidArgument);
      row_lens[0] = 1;
      row_seq[0] = 3;
      EXPECT_EQ(IndexerPagedLogitsCpu(p).code(), absl::StatusCode::kInvalidArgument);
      row_seq[0] = 0;
      p.cache.num_blocks = 65600;  // block 65600 no longer in the pool
      EXPECT_EQ(IndexerPagedLogitsCpu(p).code(), absl::StatusCode::kOutOfRange);
    }
  }
}

// Callers pass q and k unrotated: through an fp8 cache the logits are those of the original keys
// up to one fp8 rounding per stored lane. Bound per head: |(H·q) · e| <= |q| · |e| with
// |e| <= 2^-4 · |k| (H orthonormal), and relu is 1-Lipschitz.
TEST(IndexerLogitsTest, Fp8CacheScoresTheUnrotatedKeys) {
  std::mt19937 rng(15);
  const int D = 64, H = 8, len = 100;
  kvcache::PagedCacheOptions o;
  o.geometry.index_head_dim = D;
  o.geometry.indexer_dtype = IndexerCacheDType::kF8;
  o.num_blocks = 2;
  auto cache = kvcache::IndexerKeyCache::Create(o);
  ASSERT_TRUE(cache.ok());
  kvcache::BlockTables tables(2);
  ASSERT_TRUE(tables.AddSequence({1, 0}, len).ok());
  const kvcache::BlockTableView bt = tables.view();
  std::vector<float> keys = RandomVector(rng, len * D);
  for (int j = 0; j < len; ++j) keys[j * D + 5] *= 40.0f;  // a large lane, as trained keys have
  std::vector<int32_t> slots(len);
  for (int p = 0; p < len; ++p) {
    slots[p] = static_cast<int32_t>(kvcache::SlotForPosition(kvcache::BlockTableRow(bt, 0), p));
  }
  ASSERT_TRUE(WriteIndexerCacheCpu({len, keys.data(), D, slots.data(), (*cache)->view()}).ok());
  const std::vector<float> q = RandomVector(rng, H * D);
  const std::vector<float> w = RandomVector(rng, H);
  const int32_t row_seq = 0, row_len = len;
  std::vector<float> logits(len);
  IndexerPagedLogitsParams p;
  p.num_tokens = 1;
  p.num_heads = H;
  p.max_cols = len;
  p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.q = q.data();
  p.q_token_stride = H * D;
  p.q_head_stride = D;
  p.weights = w.data();
  p.weights_token_stride = H;
  p.row_seq = &row_seq;
  p.row_lens = &row_len;
  p.block_table = bt;
  p.cache = (*cache)->view();
  p.logits = logits.data();
  p.logits_stride = len;
  ASSERT_TRUE(IndexerPagedLogitsCpu(p).ok());
  for (int j = 0; j < len; ++j) {
    const std::vector<float> key(keys.begin() + j * D, keys.begin() + (j + 1) * D);
    double bound = 0.0, knorm = 0.0;
    for (float v : key) knorm += double{v} * v;
    for (int h = 0; h < H; ++h) {
      double qnorm = 0.0;
      for (int d = 0; d < D; ++d) qnorm += double{q[h * D + d]} * q[h * D + d];
      bound += std::fabs(w[h]) * std::sqrt(qnorm * knorm) * 0.0625 * p.softmax_scale;
    }
    EXPECT_NEAR(logits[j], ReferenceScore(q.data(), w.data(), H, D, p.softmax_scale, key), bound)
        << "key " << j;
  }
}

std::set<int32_t> ReferenceTopk(const float* logits, int begin, int end, int k) {
  std::vector<std::pair<float, int32_t>> v;
  for (int c = begin; c < end; ++c) v.emplace_back(logits[c], c - begin);
  std::sort(v.begin(), v.end(), [](auto a, auto b) { return a.first > b.first; });
  std::set<int32_t> out;
  for (int i = 0; i < std::min<int>(k, v.size()); ++i) out.insert(v[i].second);
  return out;
}

TEST(IndexerLogitsTest, TopkSelectsTheLargestAndPadsShortRows) {
  std::mt19937 rng(14);
  for (int K : {4, 2048}) {
    const int T = 6, W = 3000;
    // Distinct values (a shuffled ramp) so the top-k set is unambiguous.
    std::vector<float> logits(T * W);
    for (int t = 0; t < T; ++t) {
      std::vector<int> perm(W);
      for (int i = 0; i < W; ++i) perm[i] = i;
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int i = 0; i < W; ++i) logits[t * W + i] = perm[i] * 0.01f - 5.0f;
    }
    const std::vector<int32_t> begin = {0, 100, 0, 2999, 500, 7};
    const std::vector<int32_t> end = {3000, 2900, 1, 3000, 500, 2100};  // row 4 empty
    std::vector<int32_t> out(T * K, 99);
    IndexerTopkParams p{T, K, logits.data(), W, begin.data(), end.data(), out.data(), K};
    ASSERT_TRUE(IndexerTopkCpu(p).ok());
    for (int t = 0; t < T; ++t) {
      const std::set<int32_t> want = ReferenceTopk(&logits[t * W], begin[t], end[t], K);
      std::set<int32_t> got;
      int pads = 0;
      for (int i = 0; i < K; ++i) {
        const int32_t v = out[t * K + i];
        if (v == -1) {
          ++pads;
        } else {
          EXPECT_TRUE(got.insert(v).second) << "duplicate " << v;
        }
      }
      EXPECT_EQ(got, want) << "row " << t << " K " << K;
      EXPECT_EQ(pads, K - static_cast<int>(want.size()));
    }
  }
}

TEST(IndexerLogitsTest, MapTopkToSlotsDropsPaddingAndFuturePositions) {
  kvcache::BlockTables tables(3);
  ASSERT_TRUE(tables.AddSequence({7, 2, 70000}, 150).ok());
  ASSERT_TRUE(tables.AddSequence({5}, 10).ok());
  const int T = 3, K = 6;
  // Row 0: causal query at position 129 (len 130). Row 1: sequence 1, position 3. Row 2: seq 0
  // full length. HF-style top-k returns masked positions (>= len) when the row is short.
  const std::vector<int32_t> positions = {0,  64, 129, 130, -1, 64,  //
                                          3,  2,  4,   9,   -1, -1,  //
                                          -1, -1, -1,  -1,  -1, -1};
  const std::vector<int32_t> row_seq = {0, 1, 0};
  const std::vector<int32_t> row_lens = {130, 4, 150};
  std::vector<int32_t> slots(T * K, 12345);
  MapTopkToSlotsParams p{T,
                         K,
                         positions.data(),
                         K,
                         row_seq.data(),
                         row_lens.data(),
                         tables.view(),
                         70001,
                         slots.data(),
                         K};
  ASSERT_TRUE(MapTopkToSlotsCpu(p).ok());
  const std::vector<int32_t> want = {7 * 64,     2 * 64,     70000 * 64 + 1,
                                     -1,         -1,         2 * 64,  //
                                     5 * 64 + 3, 5 * 64 + 2, -1,
                                     -1,         -1,         -1,  //
                                     -1,         -1,         -1,
                                     -1,         -1,         -1};
  EXPECT_EQ(slots, want);
  p.num_blocks = 70000;
  EXPECT_EQ(MapTopkToSlotsCpu(p).code(), absl::StatusCode::kOutOfRange);
  p.num_blocks = 70001;
  const std::vector<int32_t> too_long = {130, 11, 150};
  p.row_lens = too_long.data();
  EXPECT_EQ(MapTopkToSlotsCpu(p).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::kernels

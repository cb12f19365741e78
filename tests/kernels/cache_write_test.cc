#include "kernels/cpu/cache_write.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/paged_cache.h"
#include "tests/kernels/dsa_test_util.h"

namespace strata::kernels {
namespace {

using kvcache::IndexerCacheDType;
using kvcache::LatentCacheDType;
using strata::testing::BF16HalfUlp;
using strata::testing::DecodeIndexerKey;
using strata::testing::DecodeLatentRow;
using strata::testing::F8HalfUlp;
using strata::testing::HadamardReference;
using strata::testing::RandomVector;

// Relative slack for the fp32 division before the fp8 rounding and the product after it.
constexpr double kFp32Slack = 1e-6;

kvcache::PagedCacheOptions Options(int L, int R, int D, LatentCacheDType latent,
                                   IndexerCacheDType indexer, int64_t blocks) {
  kvcache::PagedCacheOptions o;
  o.geometry.kv_lora_rank = L;
  o.geometry.qk_rope_head_dim = R;
  o.geometry.index_head_dim = D;
  o.geometry.latent_dtype = latent;
  o.geometry.indexer_dtype = indexer;
  o.num_blocks = blocks;
  return o;
}

// Rows whose 128-groups span several magnitudes, so the per-group scales differ.
std::vector<float> MixedMagnitudeRows(std::mt19937& rng, int T, int width) {
  std::vector<float> rows = RandomVector(rng, static_cast<size_t>(T) * width);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] *= std::ldexp(1.0f, (i / 128) % 7 * 3 - 9);
  return rows;
}

bool AllZero(const uint8_t* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

absl::Status WriteLatent(kvcache::LatentCache& cache, const std::vector<float>& rows,
                         const std::vector<int32_t>& slots) {
  WriteLatentCacheParams p;
  p.num_tokens = static_cast<int>(slots.size());
  p.rows = rows.data();
  p.rows_stride = cache.width();
  p.slots = slots.data();
  p.cache = cache.view();
  return WriteLatentCacheCpu(p);
}

absl::Status WriteIndexer(kvcache::IndexerKeyCache& cache, const std::vector<float>& keys,
                          const std::vector<int32_t>& slots) {
  WriteIndexerCacheParams p;
  p.num_tokens = static_cast<int>(slots.size());
  p.keys = keys.data();
  p.keys_stride = cache.head_dim();
  p.slots = slots.data();
  p.cache = cache.view();
  return WriteIndexerCacheCpu(p);
}

TEST(CacheWriteTest, LatentRoundTripIsWithinHalfAnUlp) {
  std::mt19937 rng(1);
  const int L = 512, R = 64, T = 9;
  for (LatentCacheDType dtype :
       {LatentCacheDType::kF32, LatentCacheDType::kBF16, LatentCacheDType::kF8}) {
    auto cache = kvcache::LatentCache::Create(Options(L, R, 128, dtype, IndexerCacheDType::kF8, 4));
    ASSERT_TRUE(cache.ok());
    const std::vector<float> rows = MixedMagnitudeRows(rng, T, L + R);
    const std::vector<int32_t> slots = {0, 63, 64, 200, 255, 17, 130, 129, 66};
    ASSERT_TRUE(WriteLatent(**cache, rows, slots).ok());
    for (int t = 0; t < T; ++t) {
      const float* x = &rows[t * (L + R)];
      const std::vector<float> got = DecodeLatentRow((*cache)->data(), dtype, L, R, slots[t]);
      for (int i = 0; i < L + R; ++i) {
        double bound = 0.0;
        if (dtype == LatentCacheDType::kBF16 || (dtype == LatentCacheDType::kF8 && i >= L)) {
          bound = BF16HalfUlp(x[i]);
        } else if (dtype == LatentCacheDType::kF8) {
          double amax = 0.0;
          for (int k = i / 128 * 128; k < i / 128 * 128 + 128; ++k) {
            amax = std::max(amax, std::fabs(double{x[k]}));
          }
          const double scale = amax / 448.0;
          bound = scale * F8HalfUlp(x[i] / scale) * (1 + kFp32Slack);
        }
        ASSERT_LE(std::fabs(double{got[i]} - x[i]), bound)
            << "dtype " << static_cast<int>(dtype) << " token " << t << " lane " << i;
      }
    }
  }
}

// Byte offsets of the fp8 latent row (dsa.md §7: 512 fp8, 4 fp32 scales, 64 bf16 = 656 B).
TEST(CacheWriteTest, Fp8LatentBytesSitAtTheSpecifiedOffsets) {
  std::mt19937 rng(2);
  auto cache = kvcache::LatentCache::Create(
      Options(512, 64, 128, LatentCacheDType::kF8, IndexerCacheDType::kF8, 2));
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(kvcache::LatentF8ScalesOffset(512), 512);
  EXPECT_EQ(kvcache::LatentF8RopeOffset(512), 528);
  EXPECT_EQ(kvcache::LatentRowBytes(LatentCacheDType::kF8, 512, 64), 656);
  const std::vector<float> rows = MixedMagnitudeRows(rng, 1, 576);
  const int32_t slot = 64 + 7;
  ASSERT_TRUE(WriteLatent(**cache, rows, {slot}).ok());
  const uint8_t* row = (*cache)->data() + (64 * 656) + 7 * 656;
  for (int g = 0; g < 4; ++g) {
    float amax = 0.0f;
    for (int i = 0; i < 128; ++i) amax = std::max(amax, std::fabs(rows[g * 128 + i]));
    float scale;
    std::memcpy(&scale, row + 512 + 4 * g, 4);
    ASSERT_EQ(scale, std::max(amax / 448.0f, FLT_MIN)) << g;
    for (int i = 0; i < 128; ++i) {
      ASSERT_EQ(row[g * 128 + i], FloatToF8E4M3(rows[g * 128 + i] / scale)) << g << " " << i;
    }
  }
  for (int i = 0; i < 64; ++i) {
    uint16_t h;
    std::memcpy(&h, row + 528 + 2 * i, 2);
    ASSERT_EQ(h, FloatToBF16(rows[512 + i])) << i;
  }
  EXPECT_TRUE(AllZero(row + 656, 656));  // the next row is untouched
}

TEST(CacheWriteTest, ZeroGroupGetsTheMinimumScaleAndDecodesToZero) {
  auto cache = kvcache::LatentCache::Create(
      Options(256, 16, 128, LatentCacheDType::kF8, IndexerCacheDType::kF8, 1));
  ASSERT_TRUE(cache.ok());
  std::vector<float> rows(272, 0.0f);
  rows[200] = 3.0f;  // second group non-zero
  ASSERT_TRUE(WriteLatent(**cache, rows, {5}).ok());
  std::vector<float> out(272);
  ASSERT_TRUE((*cache)->ReadRow(5, absl::MakeSpan(out)).ok());
  float scale0;
  std::memcpy(&scale0, (*cache)->data() + 5 * (256 + 8 + 32) + 256, 4);
  EXPECT_EQ(scale0, FLT_MIN);
  for (int i = 0; i < 272; ++i) ASSERT_EQ(out[i], rows[i]) << i;
}

TEST(CacheWriteTest, IndexerRoundTripUsesPowerOfTwoScales) {
  std::mt19937 rng(3);
  const int D = 128, T = 70;
  for (IndexerCacheDType dtype :
       {IndexerCacheDType::kF32, IndexerCacheDType::kBF16, IndexerCacheDType::kF8}) {
    auto cache =
        kvcache::IndexerKeyCache::Create(Options(512, 64, D, LatentCacheDType::kBF16, dtype, 3));
    ASSERT_TRUE(cache.ok());
    std::vector<float> keys = RandomVector(rng, static_cast<size_t>(T) * D);
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < D; ++i) keys[t * D + i] *= std::ldexp(1.0f, t % 11 - 8);
    }
    for (int i = 0; i < D; ++i) keys[5 * D + i] = 0.0f;  // amax below the 1e-4 floor
    std::vector<int32_t> slots(T);
    for (int t = 0; t < T; ++t) slots[t] = (t * 37 + 11) % 192;  // a permutation of slots
    ASSERT_TRUE(WriteIndexer(**cache, keys, slots).ok());
    for (int t = 0; t < T; ++t) {
      const std::vector<float> got = DecodeIndexerKey((*cache)->data(), dtype, D, slots[t]);
      // fp8 keys are stored rotated: compare with H·key.
      std::vector<double> want(keys.begin() + t * D, keys.begin() + (t + 1) * D);
      if (dtype == IndexerCacheDType::kF8) want = HadamardReference(&keys[t * D], D);
      double scale = 0.0;
      if (dtype == IndexerCacheDType::kF8) {
        double amax = 1e-4;
        for (int i = 0; i < D; ++i) amax = std::max(amax, std::fabs(want[i]));
        scale = std::exp2(std::ceil(std::log2(amax / 448.0)));
        float stored;
        std::memcpy(&stored, (*cache)->data() + (slots[t] / 64) * 8448 + 8192 + 4 * (slots[t] % 64),
                    4);
        ASSERT_EQ(stored, static_cast<float>(scale)) << "token " << t;
      }
      for (int i = 0; i < D; ++i) {
        const double x = want[i];
        // fp8: the rotation's fp32 rounding (7 stages and a multiply) may move a value across an
        // fp8 rounding boundary; kFp32Slack of the scale's range covers it.
        const double bound = dtype == IndexerCacheDType::kF32 ? 0.0
                             : dtype == IndexerCacheDType::kBF16
                                 ? BF16HalfUlp(x)
                                 : scale * F8HalfUlp(x / scale) + kFp32Slack * 448 * scale;
        ASSERT_LE(std::fabs(got[i] - x), bound) << "token " << t << " lane " << i;
      }
    }
  }
}

// An amax of exactly 448 · 2^k needs the scale 2^k, not 2^(k+1) (log2 rounding must not bump it).
TEST(CacheWriteTest, IndexerScaleOfAnExactPowerOfTwoIsNotBumped) {
  for (int k : {-20, -3, 0, 5}) {
    EXPECT_EQ(kvcache::IndexerF8Scale(std::ldexp(448.0f, k)), std::ldexp(1.0f, k)) << k;
    EXPECT_EQ(kvcache::IndexerF8Scale(std::nextafter(std::ldexp(448.0f, k), 1e30f)),
              std::ldexp(1.0f, k + 1))
        << k;
  }
  EXPECT_EQ(kvcache::IndexerF8Scale(0.0f), std::exp2(std::ceil(std::log2(1e-4 / 448.0))));
}

TEST(CacheWriteTest, NegativeSlotsAreSkipped) {
  std::mt19937 rng(4);
  auto latent = kvcache::LatentCache::Create(
      Options(128, 16, 32, LatentCacheDType::kF8, IndexerCacheDType::kF8, 2));
  auto indexer = kvcache::IndexerKeyCache::Create(
      Options(128, 16, 32, LatentCacheDType::kF8, IndexerCacheDType::kF8, 2));
  ASSERT_TRUE(latent.ok() && indexer.ok());
  const std::vector<float> rows = RandomVector(rng, 3 * 144);
  const std::vector<float> keys = RandomVector(rng, 3 * 32);
  ASSERT_TRUE(WriteLatent(**latent, rows, {-1, 70, -1}).ok());
  ASSERT_TRUE(WriteIndexer(**indexer, keys, {-1, -1, 3}).ok());
  const int64_t row_bytes = 128 + 4 + 32;
  EXPECT_TRUE(AllZero((*latent)->data(), 70 * row_bytes));
  EXPECT_FALSE(AllZero((*latent)->data() + 70 * row_bytes, row_bytes));
  EXPECT_TRUE(AllZero((*latent)->data() + 71 * row_bytes, (*latent)->bytes() - 71 * row_bytes));
  const std::vector<float> got =
      DecodeIndexerKey((*indexer)->data(), IndexerCacheDType::kF8, 32, 3);
  const std::vector<double> want = HadamardReference(&keys[2 * 32], 32);  // fp8 keys are rotated
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(got[i], want[i], 1.0 / 16) << i;
  EXPECT_TRUE(AllZero((*indexer)->data(), 3 * 32));
}

TEST(CacheWriteTest, OutOfRangeSlotIsRefusedAndNothingIsWritten) {
  std::mt19937 rng(5);
  auto latent = kvcache::LatentCache::Create(
      Options(128, 16, 32, LatentCacheDType::kBF16, IndexerCacheDType::kBF16, 2));
  auto indexer = kvcache::IndexerKeyCache::Create(
      Options(128, 16, 32, LatentCacheDType::kBF16, IndexerCacheDType::kBF16, 2));
  ASSERT_TRUE(latent.ok() && indexer.ok());
  const std::vector<float> rows = RandomVector(rng, 2 * 144);
  const std::vector<float> keys = RandomVector(rng, 2 * 32);
  EXPECT_EQ(WriteLatent(**latent, rows, {3, 128}).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(WriteIndexer(**indexer, keys, {3, 1 << 30}).code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(AllZero((*latent)->data(), (*latent)->bytes()));
  EXPECT_TRUE(AllZero((*indexer)->data(), (*indexer)->bytes()));
  WriteLatentCacheParams bad;
  bad.num_tokens = 1;
  bad.rows = rows.data();
  bad.rows_stride = 143;  // narrower than a row
  const int32_t slot = 0;
  bad.slots = &slot;
  bad.cache = (*latent)->view();
  EXPECT_EQ(WriteLatentCacheCpu(bad).code(), absl::StatusCode::kInvalidArgument);
}

// Block ids above 2^16 in a large pool: the byte offsets must not wrap.
TEST(CacheWriteTest, WritesBlocksFarIntoALargePool) {
  std::mt19937 rng(6);
  const int64_t blocks = 70000;
  auto latent = kvcache::LatentCache::Create(
      Options(128, 16, 32, LatentCacheDType::kF8, IndexerCacheDType::kF8, blocks));
  auto indexer = kvcache::IndexerKeyCache::Create(
      Options(128, 16, 32, LatentCacheDType::kF8, IndexerCacheDType::kF8, blocks));
  ASSERT_TRUE(latent.ok() && indexer.ok());
  const std::vector<int32_t> slots = {69999 * 64 + 63, 65537 * 64, 7 * 64 + 1};
  const std::vector<float> rows = RandomVector(rng, 3 * 144);
  const std::vector<float> keys = RandomVector(rng, 3 * 32);
  ASSERT_TRUE(WriteLatent(**latent, rows, slots).ok());
  ASSERT_TRUE(WriteIndexer(**indexer, keys, slots).ok());
  for (int t = 0; t < 3; ++t) {
    const std::vector<float> row =
        DecodeLatentRow((*latent)->data(), LatentCacheDType::kF8, 128, 16, slots[t]);
    const std::vector<float> key =
        DecodeIndexerKey((*indexer)->data(), IndexerCacheDType::kF8, 32, slots[t]);
    for (int i = 0; i < 144; ++i) ASSERT_NEAR(row[i], rows[t * 144 + i], 1.0 / 16) << t;
    const std::vector<double> want = HadamardReference(&keys[t * 32], 32);  // stored rotated
    for (int i = 0; i < 32; ++i) ASSERT_NEAR(key[i], want[i], 1.0 / 16) << t;
  }
}

// The rotation helper against the dense definition, for every power of two the caches use, and its
// orthonormality: rotating twice gives the input back.
TEST(CacheWriteTest, HadamardRotationMatchesTheDenseMatrix) {
  std::mt19937 rng(7);
  for (int n : {1, 2, 32, 64, 128, 256}) {
    const std::vector<float> x = RandomVector(rng, n, -4.0f, 4.0f);
    std::vector<float> got = x;
    kvcache::IndexerHadamardRotate(got.data(), n);
    const std::vector<double> want = HadamardReference(x.data(), n);
    double norm = 0.0;
    for (float v : x) norm += double{v} * v;
    for (int i = 0; i < n; ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-6 * std::sqrt(norm)) << "n " << n << " lane " << i;
    }
    std::vector<double> twice(want);
    kvcache::IndexerHadamardRotate(twice.data(), n);
    for (int i = 0; i < n; ++i) ASSERT_NEAR(twice[i], x[i], 1e-12 * std::sqrt(norm)) << i;
  }
}

// A key with one huge lane is stored rotated: every stored lane carries part of the huge one, and
// the dequantised key rotated back is within one fp8 rounding (≤ 2^-4 of each stored lane, so
// ≤ 2^-4 · |k| in norm, H being orthonormal) of the key.
TEST(CacheWriteTest, Fp8IndexerKeysAreStoredRotated) {
  std::mt19937 rng(8);
  const int D = 128;
  auto cache = kvcache::IndexerKeyCache::Create(
      Options(512, 64, D, LatentCacheDType::kBF16, IndexerCacheDType::kF8, 1));
  ASSERT_TRUE(cache.ok());
  std::vector<float> key = RandomVector(rng, D);
  key[77] = 300.0f;
  ASSERT_TRUE(WriteIndexer(**cache, key, {9}).ok());
  std::vector<float> stored(D);
  ASSERT_TRUE((*cache)->ReadKey(9, absl::MakeSpan(stored)).ok());
  const std::vector<double> back = HadamardReference(stored.data(), D);  // H⁻¹ = H
  double err2 = 0.0, norm2 = 0.0;
  for (int i = 0; i < D; ++i) {
    EXPECT_GT(std::fabs(stored[i]), 300.0 / std::sqrt(D) / 2) << "lane " << i << " not mixed";
    err2 += (back[i] - key[i]) * (back[i] - key[i]);
    norm2 += double{key[i]} * key[i];
  }
  EXPECT_LE(std::sqrt(err2), 0.0625 * std::sqrt(norm2));
  EXPECT_GT(std::sqrt(err2), 0.0);  // it was quantised
  kvcache::PagedCacheOptions odd =
      Options(512, 64, 96, LatentCacheDType::kBF16, IndexerCacheDType::kF8, 1);
  EXPECT_EQ(kvcache::IndexerKeyCache::Create(odd).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::kernels

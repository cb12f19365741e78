// The CUDA cache writes against their CPU twins, byte for byte, in pools whose block ids exceed
// 2^16 (byte offsets past 2^31), from bf16 and fp32 activations.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cache_write.h"
#include "kernels/cuda/cache_write.h"
#include "kvcache/paged_cache.h"
#include "tests/kernels/cuda_test_util.h"

namespace strata::kernels {
namespace {

using kvcache::IndexerCacheDType;
using kvcache::LatentCacheDType;
using strata::testing::DeviceBuffer;
using strata::testing::SyncOrFail;

constexpr int64_t kLargePool = 65600;  // ids up to 65599 > 2^16
constexpr int kTokens = 300;

// Distinct slots in the top blocks of the pool, every 10th skipped (-1).
std::vector<int32_t> MakeSlots(std::mt19937& rng, int64_t num_blocks) {
  std::vector<int32_t> slots(kTokens);
  const int64_t first = (num_blocks - 20) * kvcache::kBlockTokens;
  std::vector<int32_t> pool(20 * kvcache::kBlockTokens);
  std::iota(pool.begin(), pool.end(), static_cast<int32_t>(first));
  std::shuffle(pool.begin(), pool.end(), rng);
  for (int t = 0; t < kTokens; ++t) slots[t] = t % 10 == 3 ? -1 : pool[t];
  return slots;
}

// Rows of random values; row 0 all zero (scale floor), row 1 with amax exactly 448 (a power of
// two times 448: the frexp edge of IndexerF8Scale), the rest normal with a few large entries.
std::vector<float> MakeRows(std::mt19937& rng, int width, bool bf16_exact) {
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> rows(static_cast<size_t>(kTokens) * width);
  for (int t = 0; t < kTokens; ++t) {
    for (int i = 0; i < width; ++i) {
      float v = t == 0 ? 0.0f : dist(rng) * (i % 37 == 0 ? 50.0f : 1.0f);
      if (t == 1) v = i == 5 ? -448.0f : std::fmod(v, 100.0f);
      rows[t * width + i] = bf16_exact ? BF16ToFloat(FloatToBF16(v)) : v;
    }
  }
  return rows;
}

std::vector<uint16_t> ToBf16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = FloatToBF16(v[i]);
  return out;
}

std::vector<uint8_t> DeviceBytes(const void* base, int64_t offset, int64_t n) {
  std::vector<uint8_t> out(n);
  EXPECT_EQ(
      cudaMemcpy(out.data(), static_cast<const uint8_t*>(base) + offset, n, cudaMemcpyDeviceToHost),
      cudaSuccess);
  return out;
}

class LatentWriteCudaTest
    : public ::testing::TestWithParam<std::tuple<LatentCacheDType, DType, int64_t>> {};

TEST_P(LatentWriteCudaTest, MatchesCpuByteForByte) {
  const auto [cache_dtype, in_dtype, num_blocks] = GetParam();
  const int L = 512, R = 64, width = L + R;
  std::mt19937 rng(static_cast<unsigned>(7 + num_blocks + static_cast<int>(cache_dtype)));
  const std::vector<int32_t> slots = MakeSlots(rng, num_blocks);
  const std::vector<float> rows = MakeRows(rng, width, in_dtype == DType::kBF16);

  kvcache::PagedCacheOptions opt;
  opt.geometry.latent_dtype = cache_dtype;
  opt.num_blocks = num_blocks;
  auto host = kvcache::LatentCache::Create(opt);
  ASSERT_TRUE(host.ok()) << host.status();
  ASSERT_TRUE(WriteLatentCacheCpu({.num_tokens = kTokens,
                                   .rows = rows.data(),
                                   .rows_stride = width,
                                   .slots = slots.data(),
                                   .cache = (*host)->view()})
                  .ok());

  DeviceBuffer<uint8_t> pool((*host)->bytes());
  pool.Fill(0xab);
  DeviceBuffer<int32_t> d_slots(slots);
  DeviceBuffer<uint16_t> d_bf16(in_dtype == DType::kBF16 ? ToBf16(rows) : std::vector<uint16_t>{});
  DeviceBuffer<float> d_f32(in_dtype == DType::kF32 ? rows : std::vector<float>{});
  kvcache::LatentCacheView view = (*host)->view();
  view.data = pool.get();
  WriteLatentCacheCudaParams p{
      .num_tokens = kTokens,
      .rows_dtype = in_dtype,
      .rows = in_dtype == DType::kBF16 ? static_cast<const void*>(d_bf16.get()) : d_f32.get(),
      .rows_stride = width,
      .slots = d_slots.get(),
      .cache = view};
  ASSERT_EQ(WriteLatentCacheCuda(p, nullptr), cudaSuccess);
  SyncOrFail();

  const int64_t row_bytes = kvcache::LatentRowBytes(cache_dtype, L, R);
  for (int t = 0; t < kTokens; ++t) {
    if (slots[t] < 0) continue;
    const int64_t off = kvcache::LatentRowOffset(view, slots[t]);
    ASSERT_EQ(DeviceBytes(pool.get(), off, row_bytes),
              std::vector<uint8_t>((*host)->data() + off, (*host)->data() + off + row_bytes))
        << "token " << t << " slot " << slots[t];
  }
  // A slot nobody wrote keeps its poison.
  std::vector<bool> used(kvcache::NumSlots(num_blocks) - (num_blocks - 20) * 64, false);
  for (int32_t s : slots)
    if (s >= 0) used[s - (num_blocks - 20) * 64] = true;
  const int64_t free_slot =
      (num_blocks - 20) * 64 + (std::find(used.begin(), used.end(), false) - used.begin());
  EXPECT_EQ(DeviceBytes(pool.get(), kvcache::LatentRowOffset(view, free_slot), row_bytes),
            std::vector<uint8_t>(row_bytes, 0xab));

  p.rows_stride = width - 1;
  EXPECT_EQ(WriteLatentCacheCuda(p, nullptr), cudaErrorInvalidValue);
}

INSTANTIATE_TEST_SUITE_P(
    AllDtypes, LatentWriteCudaTest,
    ::testing::Values(std::make_tuple(LatentCacheDType::kBF16, DType::kBF16, kLargePool),
                      std::make_tuple(LatentCacheDType::kF8, DType::kBF16, kLargePool),
                      std::make_tuple(LatentCacheDType::kF8, DType::kF32, int64_t{40}),
                      std::make_tuple(LatentCacheDType::kBF16, DType::kF32, int64_t{40}),
                      std::make_tuple(LatentCacheDType::kF32, DType::kBF16, int64_t{40})));

class IndexerWriteCudaTest
    : public ::testing::TestWithParam<std::tuple<IndexerCacheDType, DType, int64_t>> {};

TEST_P(IndexerWriteCudaTest, MatchesCpuByteForByte) {
  const auto [cache_dtype, in_dtype, num_blocks] = GetParam();
  const int D = 128;
  std::mt19937 rng(static_cast<unsigned>(3 + num_blocks + static_cast<int>(cache_dtype)));
  const std::vector<int32_t> slots = MakeSlots(rng, num_blocks);
  const std::vector<float> keys = MakeRows(rng, D, in_dtype == DType::kBF16);

  kvcache::PagedCacheOptions opt;
  opt.geometry.indexer_dtype = cache_dtype;
  opt.num_blocks = num_blocks;
  auto host = kvcache::IndexerKeyCache::Create(opt);
  ASSERT_TRUE(host.ok()) << host.status();
  ASSERT_TRUE(WriteIndexerCacheCpu({.num_tokens = kTokens,
                                    .keys = keys.data(),
                                    .keys_stride = D,
                                    .slots = slots.data(),
                                    .cache = (*host)->view()})
                  .ok());

  DeviceBuffer<uint8_t> pool((*host)->bytes());
  pool.Fill(0);  // the CPU pool starts zeroed: whole blocks (keys and scales) must then agree
  DeviceBuffer<int32_t> d_slots(slots);
  DeviceBuffer<uint16_t> d_bf16(in_dtype == DType::kBF16 ? ToBf16(keys) : std::vector<uint16_t>{});
  DeviceBuffer<float> d_f32(in_dtype == DType::kF32 ? keys : std::vector<float>{});
  kvcache::IndexerCacheView view = (*host)->view();
  view.data = pool.get();
  WriteIndexerCacheCudaParams p{
      .num_tokens = kTokens,
      .keys_dtype = in_dtype,
      .keys = in_dtype == DType::kBF16 ? static_cast<const void*>(d_bf16.get()) : d_f32.get(),
      .keys_stride = D,
      .slots = d_slots.get(),
      .cache = view};
  ASSERT_EQ(WriteIndexerCacheCuda(p, nullptr), cudaSuccess);
  SyncOrFail();

  const int64_t first = num_blocks - 20;
  const int64_t off = first * view.block_stride, n = 20 * view.block_stride;
  const std::vector<uint8_t> got = DeviceBytes(pool.get(), off, n);
  const std::vector<uint8_t> want((*host)->data() + off, (*host)->data() + off + n);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << "byte " << i << " of block " << first + i / view.block_stride;
  }
}

// The fp8 write's rotation (shuffle stages below 32 lanes, register stages above) equals the CPU
// twin's butterflies byte for byte at every supported head dim; others are refused.
TEST(IndexerWriteCudaTest, Fp8RotationMatchesCpuAtEveryHeadDim) {
  for (int D : {32, 64, 256, 512}) {
    std::mt19937 rng(static_cast<unsigned>(D));
    const int64_t num_blocks = 24;
    const std::vector<int32_t> slots = MakeSlots(rng, num_blocks);
    const std::vector<float> keys = MakeRows(rng, D, true);
    kvcache::PagedCacheOptions opt;
    opt.geometry.index_head_dim = D;
    opt.geometry.indexer_dtype = IndexerCacheDType::kF8;
    opt.num_blocks = num_blocks;
    auto host = kvcache::IndexerKeyCache::Create(opt);
    ASSERT_TRUE(host.ok()) << host.status();
    ASSERT_TRUE(WriteIndexerCacheCpu({.num_tokens = kTokens,
                                      .keys = keys.data(),
                                      .keys_stride = D,
                                      .slots = slots.data(),
                                      .cache = (*host)->view()})
                    .ok());
    DeviceBuffer<uint8_t> pool((*host)->bytes());
    pool.Fill(0);
    DeviceBuffer<int32_t> d_slots(slots);
    DeviceBuffer<uint16_t> d_keys(ToBf16(keys));
    kvcache::IndexerCacheView view = (*host)->view();
    view.data = pool.get();
    WriteIndexerCacheCudaParams p{.num_tokens = kTokens,
                                  .keys_dtype = DType::kBF16,
                                  .keys = d_keys.get(),
                                  .keys_stride = D,
                                  .slots = d_slots.get(),
                                  .cache = view};
    ASSERT_EQ(WriteIndexerCacheCuda(p, nullptr), cudaSuccess);
    SyncOrFail();
    const std::vector<uint8_t> got = DeviceBytes(pool.get(), 0, (*host)->bytes());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], (*host)->data()[i]) << "D " << D << " byte " << i;
    }
  }
  WriteIndexerCacheCudaParams p{.num_tokens = 0, .keys_dtype = DType::kBF16};
  p.cache = {.num_blocks = 1, .head_dim = 16, .dtype = IndexerCacheDType::kF8};
  DeviceBuffer<uint8_t> pool(kvcache::IndexerBlockBytes(IndexerCacheDType::kF8, 16));
  p.cache.block_stride = kvcache::IndexerBlockBytes(IndexerCacheDType::kF8, 16);
  p.cache.data = pool.get();
  EXPECT_EQ(WriteIndexerCacheCuda(p, nullptr), cudaErrorInvalidValue);  // D < 32
}

INSTANTIATE_TEST_SUITE_P(
    AllDtypes, IndexerWriteCudaTest,
    ::testing::Values(std::make_tuple(IndexerCacheDType::kF8, DType::kBF16, kLargePool),
                      std::make_tuple(IndexerCacheDType::kF8, DType::kF32, kLargePool),
                      std::make_tuple(IndexerCacheDType::kBF16, DType::kBF16, int64_t{40}),
                      std::make_tuple(IndexerCacheDType::kF32, DType::kF32, int64_t{40})));

}  // namespace
}  // namespace strata::kernels

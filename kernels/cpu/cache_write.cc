#include "kernels/cpu/cache_write.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kvcache/paged_cache.h"

namespace strata::kernels {
namespace {

using kvcache::IndexerCacheDType;
using kvcache::LatentCacheDType;

absl::Status CheckSlots(absl::string_view what, int num_tokens, const int32_t* slots,
                        int64_t num_blocks) {
  const int64_t num_slots = kvcache::NumSlots(num_blocks);
  for (int t = 0; t < num_tokens; ++t) {
    if (slots[t] >= num_slots) {
      return absl::OutOfRangeError(
          absl::StrCat(what, ": token ", t, " has slot ", slots[t], ", pool holds ", num_slots));
    }
  }
  return absl::OkStatus();
}

void StoreF32(uint8_t* p, float v) { std::memcpy(p, &v, 4); }
void StoreBF16(uint8_t* p, float v) {
  const uint16_t h = FloatToBF16(v);
  std::memcpy(p, &h, 2);
}

float AbsMax(const float* x, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; ++i) m = std::fmax(m, std::fabs(x[i]));
  return m;
}

void WriteLatentRow(const kvcache::LatentCacheView& v, int64_t slot, const float* x) {
  uint8_t* row = static_cast<uint8_t*>(v.data) + kvcache::LatentRowOffset(v, slot);
  const int width = v.kv_lora_rank + v.rope_dim;
  switch (v.dtype) {
    case LatentCacheDType::kF32:
      std::memcpy(row, x, static_cast<size_t>(width) * 4);
      return;
    case LatentCacheDType::kBF16:
      for (int i = 0; i < width; ++i) StoreBF16(row + 2 * i, x[i]);
      return;
    case LatentCacheDType::kF8: {
      uint8_t* scales = row + kvcache::LatentF8ScalesOffset(v.kv_lora_rank);
      uint8_t* rope = row + kvcache::LatentF8RopeOffset(v.kv_lora_rank);
      for (int g = 0; g < v.kv_lora_rank / kvcache::kLatentF8GroupSize; ++g) {
        const float* group = x + g * kvcache::kLatentF8GroupSize;
        const float scale = kvcache::LatentF8Scale(AbsMax(group, kvcache::kLatentF8GroupSize));
        StoreF32(scales + 4 * g, scale);
        for (int i = 0; i < kvcache::kLatentF8GroupSize; ++i) {
          row[g * kvcache::kLatentF8GroupSize + i] = FloatToF8E4M3(group[i] / scale);
        }
      }
      for (int i = 0; i < v.rope_dim; ++i) StoreBF16(rope + 2 * i, x[v.kv_lora_rank + i]);
      return;
    }
  }
}

// `rotated` is scratch of D floats (kF8 only).
void WriteIndexerKey(const kvcache::IndexerCacheView& v, int64_t slot, const float* x,
                     float* rotated) {
  uint8_t* base = static_cast<uint8_t*>(v.data);
  uint8_t* key = base + kvcache::IndexerKeyOffset(v, slot);
  switch (v.dtype) {
    case IndexerCacheDType::kF32:
      std::memcpy(key, x, static_cast<size_t>(v.head_dim) * 4);
      return;
    case IndexerCacheDType::kBF16:
      for (int i = 0; i < v.head_dim; ++i) StoreBF16(key + 2 * i, x[i]);
      return;
    case IndexerCacheDType::kF8: {
      std::memcpy(rotated, x, static_cast<size_t>(v.head_dim) * 4);
      kvcache::IndexerHadamardRotate(rotated, v.head_dim);
      const float scale = kvcache::IndexerF8Scale(AbsMax(rotated, v.head_dim));
      StoreF32(base + kvcache::IndexerScaleOffset(v, slot), scale);
      for (int i = 0; i < v.head_dim; ++i) key[i] = FloatToF8E4M3(rotated[i] / scale);
      return;
    }
  }
}

}  // namespace

absl::Status WriteLatentCacheCpu(const WriteLatentCacheParams& p) {
  RETURN_IF_ERROR(kvcache::ValidateLatentCacheView(p.cache)) << " (WriteLatentCacheCpu)";
  const int width = p.cache.kv_lora_rank + p.cache.rope_dim;
  if (p.num_tokens < 0 || p.rows_stride < width ||
      (p.num_tokens > 0 && (p.rows == nullptr || p.slots == nullptr))) {
    return absl::InvalidArgumentError(
        absl::StrCat("WriteLatentCacheCpu: bad params T=", p.num_tokens,
                     " rows_stride=", p.rows_stride, " (row width ", width, ")"));
  }
  RETURN_IF_ERROR(CheckSlots("WriteLatentCacheCpu", p.num_tokens, p.slots, p.cache.num_blocks));
  for (int t = 0; t < p.num_tokens; ++t) {
    if (p.slots[t] < 0) continue;
    WriteLatentRow(p.cache, p.slots[t], p.rows + t * p.rows_stride);
  }
  return absl::OkStatus();
}

absl::Status WriteIndexerCacheCpu(const WriteIndexerCacheParams& p) {
  RETURN_IF_ERROR(kvcache::ValidateIndexerCacheView(p.cache)) << " (WriteIndexerCacheCpu)";
  if (p.num_tokens < 0 || p.keys_stride < p.cache.head_dim ||
      (p.num_tokens > 0 && (p.keys == nullptr || p.slots == nullptr))) {
    return absl::InvalidArgumentError(
        absl::StrCat("WriteIndexerCacheCpu: bad params T=", p.num_tokens,
                     " keys_stride=", p.keys_stride, " (D ", p.cache.head_dim, ")"));
  }
  RETURN_IF_ERROR(CheckSlots("WriteIndexerCacheCpu", p.num_tokens, p.slots, p.cache.num_blocks));
  std::vector<float> rotated(p.cache.dtype == IndexerCacheDType::kF8 ? p.cache.head_dim : 0);
  for (int t = 0; t < p.num_tokens; ++t) {
    if (p.slots[t] < 0) continue;
    WriteIndexerKey(p.cache, p.slots[t], p.keys + t * p.keys_stride, rotated.data());
  }
  return absl::OkStatus();
}

}  // namespace strata::kernels

#include "kvcache/paged_cache.h"

#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata::kvcache {
namespace {

using Buffer = std::unique_ptr<uint8_t, internal::FreeDeleter>;

absl::Status CheckPoolSize(int64_t num_blocks) {
  if (num_blocks <= 0 || num_blocks > INT32_MAX / kBlockTokens) {
    return absl::InvalidArgumentError(absl::StrCat("paged cache: num_blocks ", num_blocks,
                                                   " outside [1, ", INT32_MAX / kBlockTokens, "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Buffer> AllocateZeroed(int64_t bytes) {
  // calloc: the kernel hands out zero pages lazily, so a large, sparsely used pool is cheap.
  void* p = std::calloc(static_cast<size_t>(bytes), 1);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("paged cache: cannot allocate ", bytes, " B"));
  }
  return Buffer(static_cast<uint8_t*>(p));
}

absl::Status CheckRead(int64_t slot, int64_t num_slots, size_t out_size, int64_t width) {
  if (slot < 0 || slot >= num_slots) {
    return absl::OutOfRangeError(
        absl::StrCat("paged cache: slot ", slot, " outside [0, ", num_slots, ")"));
  }
  if (static_cast<int64_t>(out_size) != width) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged cache: output holds ", out_size, " values, row has ", width));
  }
  return absl::OkStatus();
}

float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

absl::Status ValidateLatentCacheView(const LatentCacheView& v) {
  if (v.dtype != LatentCacheDType::kF32 && v.dtype != LatentCacheDType::kBF16 &&
      v.dtype != LatentCacheDType::kF8) {
    return absl::InvalidArgumentError("latent cache view: unknown dtype");
  }
  if (v.kv_lora_rank <= 0 || v.rope_dim <= 0 ||
      (v.dtype == LatentCacheDType::kF8 && v.kv_lora_rank % kLatentF8GroupSize != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("latent cache view: bad row L=", v.kv_lora_rank, " R=", v.rope_dim));
  }
  RETURN_IF_ERROR(CheckPoolSize(v.num_blocks)) << " (latent cache view)";
  const int64_t block_bytes = LatentRowBytes(v.dtype, v.kv_lora_rank, v.rope_dim) * kBlockTokens;
  if (v.block_stride < block_bytes || v.data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "latent cache view: block stride ", v.block_stride, " < ", block_bytes, " or null data"));
  }
  return absl::OkStatus();
}

absl::Status ValidateIndexerCacheView(const IndexerCacheView& v) {
  if (v.dtype != IndexerCacheDType::kF32 && v.dtype != IndexerCacheDType::kBF16 &&
      v.dtype != IndexerCacheDType::kF8) {
    return absl::InvalidArgumentError("indexer cache view: unknown dtype");
  }
  if (v.head_dim <= 0 || (v.dtype == IndexerCacheDType::kF8 && !IsPowerOfTwo(v.head_dim))) {
    return absl::InvalidArgumentError(absl::StrCat("indexer cache view: head_dim ", v.head_dim,
                                                   " (fp8 keys need a power of two)"));
  }
  RETURN_IF_ERROR(CheckPoolSize(v.num_blocks)) << " (indexer cache view)";
  const int64_t block_bytes = IndexerBlockBytes(v.dtype, v.head_dim);
  if (v.block_stride < block_bytes || v.data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "indexer cache view: block stride ", v.block_stride, " < ", block_bytes, " or null data"));
  }
  return absl::OkStatus();
}

void DequantizeLatentRow(const LatentCacheView& v, int64_t slot, float* out) {
  const uint8_t* row = static_cast<const uint8_t*>(v.data) + LatentRowOffset(v, slot);
  const int width = v.kv_lora_rank + v.rope_dim;
  switch (v.dtype) {
    case LatentCacheDType::kF32:
      std::memcpy(out, row, static_cast<size_t>(width) * 4);
      return;
    case LatentCacheDType::kBF16:
      for (int i = 0; i < width; ++i) out[i] = BF16ToFloat(LoadU16(row + 2 * i));
      return;
    case LatentCacheDType::kF8: {
      const uint8_t* scales = row + LatentF8ScalesOffset(v.kv_lora_rank);
      const uint8_t* rope = row + LatentF8RopeOffset(v.kv_lora_rank);
      for (int i = 0; i < v.kv_lora_rank; ++i) {
        out[i] = F8E4M3ToFloat(row[i]) * LoadF32(scales + 4 * (i / kLatentF8GroupSize));
      }
      for (int i = 0; i < v.rope_dim; ++i) {
        out[v.kv_lora_rank + i] = BF16ToFloat(LoadU16(rope + 2 * i));
      }
      return;
    }
  }
}

void DequantizeIndexerKey(const IndexerCacheView& v, int64_t slot, float* out) {
  const uint8_t* base = static_cast<const uint8_t*>(v.data);
  const uint8_t* key = base + IndexerKeyOffset(v, slot);
  switch (v.dtype) {
    case IndexerCacheDType::kF32:
      std::memcpy(out, key, static_cast<size_t>(v.head_dim) * 4);
      return;
    case IndexerCacheDType::kBF16:
      for (int i = 0; i < v.head_dim; ++i) out[i] = BF16ToFloat(LoadU16(key + 2 * i));
      return;
    case IndexerCacheDType::kF8: {
      const float scale = LoadF32(base + IndexerScaleOffset(v, slot));
      for (int i = 0; i < v.head_dim; ++i) out[i] = F8E4M3ToFloat(key[i]) * scale;
      return;
    }
  }
}

absl::StatusOr<std::unique_ptr<LatentCache>> LatentCache::Create(const PagedCacheOptions& options) {
  const CacheGeometry& g = options.geometry;
  RETURN_IF_ERROR(ValidateGeometry(g));
  RETURN_IF_ERROR(CheckPoolSize(options.num_blocks));
  LatentCacheView view;
  view.num_blocks = options.num_blocks;
  view.kv_lora_rank = g.kv_lora_rank;
  view.rope_dim = g.qk_rope_head_dim;
  view.dtype = g.latent_dtype;
  view.block_stride = LatentBytesPerToken(g) * kBlockTokens;
  ASSIGN_OR_RETURN(Buffer data, AllocateZeroed(view.num_blocks * view.block_stride));
  view.data = data.get();
  return std::unique_ptr<LatentCache>(new LatentCache(view, std::move(data)));
}

absl::Status LatentCache::ReadRow(int64_t slot, absl::Span<float> out) const {
  RETURN_IF_ERROR(CheckRead(slot, num_slots(), out.size(), width()));
  DequantizeLatentRow(view_, slot, out.data());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<IndexerKeyCache>> IndexerKeyCache::Create(
    const PagedCacheOptions& options) {
  const CacheGeometry& g = options.geometry;
  RETURN_IF_ERROR(ValidateGeometry(g));
  if (!g.has_indexer) {
    return absl::InvalidArgumentError("indexer key cache: the layer has no indexer");
  }
  RETURN_IF_ERROR(CheckPoolSize(options.num_blocks));
  IndexerCacheView view;
  view.num_blocks = options.num_blocks;
  view.head_dim = g.index_head_dim;
  view.dtype = g.indexer_dtype;
  view.block_stride = IndexerBytesPerBlock(g);
  ASSIGN_OR_RETURN(Buffer data, AllocateZeroed(view.num_blocks * view.block_stride));
  view.data = data.get();
  return std::unique_ptr<IndexerKeyCache>(new IndexerKeyCache(view, std::move(data)));
}

absl::Status IndexerKeyCache::ReadKey(int64_t slot, absl::Span<float> out) const {
  RETURN_IF_ERROR(CheckRead(slot, num_slots(), out.size(), head_dim()));
  DequantizeIndexerKey(view_, slot, out.data());
  return absl::OkStatus();
}

}  // namespace strata::kvcache

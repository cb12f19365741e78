#include "kvcache/layout.h"

#include "absl/strings/str_cat.h"

namespace strata::kvcache {

int64_t LatentBytesPerToken(const CacheGeometry& g) {
  return LatentRowBytes(g.latent_dtype, g.kv_lora_rank, g.qk_rope_head_dim);
}

int64_t IndexerBytesPerBlock(const CacheGeometry& g) {
  return g.has_indexer ? IndexerBlockBytes(g.indexer_dtype, g.index_head_dim) : 0;
}

int64_t LayerBytesPerBlock(const CacheGeometry& g) {
  return LatentBytesPerToken(g) * kBlockTokens + IndexerBytesPerBlock(g);
}

absl::Status ValidateGeometry(const CacheGeometry& g) {
  if (g.kv_lora_rank <= 0 || g.qk_rope_head_dim <= 0 || g.index_head_dim <= 0) {
    return absl::InvalidArgumentError("cache geometry: sizes must be positive");
  }
  if (g.latent_dtype == LatentCacheDType::kF8 && g.kv_lora_rank % kLatentF8GroupSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache geometry: fp8 latent cache needs kv_lora_rank % 128 == 0, got ", g.kv_lora_rank));
  }
  if (g.has_indexer && g.indexer_dtype == IndexerCacheDType::kF8 &&
      !IsPowerOfTwo(g.index_head_dim)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache geometry: fp8 indexer keys are Hadamard-rotated and need a power-of-two "
        "index_head_dim, got ",
        g.index_head_dim));
  }
  return absl::OkStatus();
}

}  // namespace strata::kvcache

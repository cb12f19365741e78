#include "worker/model/kv_cache.h"

#include <cstring>

#include "common/status.h"
#include "worker/model/backend.h"

namespace strata::model {

absl::StatusOr<KvCache> KvCache::Create(Backend& backend,
                                        const std::vector<kvcache::CacheGeometry>& layers,
                                        int64_t num_blocks) {
  if (num_blocks <= 0) return absl::InvalidArgumentError("KV cache needs at least one block");
  KvCache cache;
  cache.num_blocks_ = num_blocks;
  for (const kvcache::CacheGeometry& g : layers) {
    RETURN_IF_ERROR(kvcache::ValidateGeometry(g));
    LayerCache layer;
    layer.geometry = g;
    layer.num_blocks = num_blocks;
    ASSIGN_OR_RETURN(layer.latent,
                     backend.NewTensor(
                         DType::kU8, {num_blocks, kvcache::kBlockTokens * LatentBytesPerToken(g)}));
    if (g.has_indexer) {
      ASSIGN_OR_RETURN(layer.indexer,
                       backend.NewTensor(DType::kU8, {num_blocks, IndexerBytesPerBlock(g)}));
    }
    // Deterministic contents: a row read before it is written (a bug) reads zeros, not garbage.
    if (backend.device().is_cpu()) {
      std::memset(layer.latent.data(), 0, layer.latent.nbytes());
      if (layer.indexer.defined()) std::memset(layer.indexer.data(), 0, layer.indexer.nbytes());
    }
    cache.layers_.push_back(std::move(layer));
  }
  return cache;
}

absl::StatusOr<KvCache> KvCache::CreateAliased(Backend& backend,
                                               const std::vector<kvcache::CacheGeometry>& layers,
                                               int64_t num_blocks) {
  if (layers.empty()) return absl::InvalidArgumentError("KV cache for no layers");
  kvcache::CacheGeometry all = layers[0];
  all.has_indexer = false;
  for (const kvcache::CacheGeometry& g : layers) {
    if (g.kv_lora_rank != all.kv_lora_rank || g.qk_rope_head_dim != all.qk_rope_head_dim ||
        g.index_head_dim != all.index_head_dim || g.latent_dtype != all.latent_dtype ||
        g.indexer_dtype != all.indexer_dtype) {
      return absl::InvalidArgumentError("aliased KV cache: the layers' geometries differ");
    }
    all.has_indexer = all.has_indexer || g.has_indexer;
  }
  ASSIGN_OR_RETURN(KvCache one, Create(backend, {all}, num_blocks));
  KvCache cache;
  cache.num_blocks_ = num_blocks;
  for (const kvcache::CacheGeometry& g : layers) {
    LayerCache layer;  // views one's storage
    layer.geometry = g;
    layer.num_blocks = num_blocks;
    layer.latent = one.layers_[0].latent;
    if (g.has_indexer) layer.indexer = one.layers_[0].indexer;
    cache.layers_.push_back(std::move(layer));
  }
  return cache;
}

int64_t KvCache::bytes_per_block() const {
  int64_t total = 0;
  for (const LayerCache& l : layers_) total += kvcache::LayerBytesPerBlock(l.geometry);
  return total;
}

}  // namespace strata::model

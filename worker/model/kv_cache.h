// The paged DSA caches of the layers a model instance owns, as raw bytes laid out by the contract
// in kvcache/layout.h. Block ids are global (the coordinator allocates them); a slot is
// block_id * 64 + offset. Both backends read and write the same layout.
#ifndef STRATA_WORKER_MODEL_KV_CACHE_H_
#define STRATA_WORKER_MODEL_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "kvcache/cache_view.h"
#include "kvcache/layout.h"

namespace strata::model {

struct LayerCache {
  kvcache::CacheGeometry geometry;
  int64_t num_blocks = 0;
  Tensor latent;   // u8 [num_blocks, 64 * LatentBytesPerToken(geometry)]
  Tensor indexer;  // u8 [num_blocks, IndexerBytesPerBlock(geometry)]; undefined without indexer

  // The kernel-facing views of these bytes (kvcache/cache_view.h), on whichever device they are.
  kvcache::LatentCacheView latent_view() const {
    return {.num_blocks = num_blocks,
            .kv_lora_rank = geometry.kv_lora_rank,
            .rope_dim = geometry.qk_rope_head_dim,
            .dtype = geometry.latent_dtype,
            .block_stride = latent.stride(0),
            .data = latent.data()};
  }
  kvcache::IndexerCacheView indexer_view() const {
    return {.num_blocks = num_blocks,
            .head_dim = geometry.index_head_dim,
            .dtype = geometry.indexer_dtype,
            .block_stride = indexer.defined() ? indexer.stride(0) : 0,
            .data = indexer.defined() ? indexer.data() : nullptr};
  }
};

class Backend;

// All layers' caches of one worker (or of strata-run). Non-copyable owner.
class KvCache {
 public:
  // One LayerCache per entry of `layers`, each with `num_blocks` blocks, zero-filled on the CPU.
  static absl::StatusOr<KvCache> Create(Backend& backend,
                                        const std::vector<kvcache::CacheGeometry>& layers,
                                        int64_t num_blocks);
  // Benchmarks: one layer's worth of blocks that every layer views (the same bytes at the same
  // addresses), so a many-layer model runs long contexts in the memory of one layer's cache. The
  // traffic per layer is what separate caches would see; the contents are shared, so only for
  // timing. The geometries must agree except for has_indexer.
  static absl::StatusOr<KvCache> CreateAliased(Backend& backend,
                                               const std::vector<kvcache::CacheGeometry>& layers,
                                               int64_t num_blocks);
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int num_layers() const { return static_cast<int>(layers_.size()); }
  int64_t num_blocks() const { return num_blocks_; }
  LayerCache& layer(int i) { return layers_[i]; }
  const LayerCache& layer(int i) const { return layers_[i]; }
  // Bytes of all layers' caches per block: what one 64-token block costs this worker.
  int64_t bytes_per_block() const;

 private:
  KvCache() = default;
  std::vector<LayerCache> layers_;
  int64_t num_blocks_ = 0;
};

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_KV_CACHE_H_

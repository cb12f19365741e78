// Owners of one layer's paged caches in host memory (the CPU backend's caches and the reference
// the CUDA kernels are tested against), plus helpers that read a slot back as fp32.
//
// Both caches are zero-filled on creation (lazily: untouched pages cost no memory) and handed to
// kernels as views (cache_view.h). Writing is kernels/cpu/cache_write.h's job.
// Thread safety: const methods may run concurrently; writes through a view are not synchronised.
#ifndef STRATA_KVCACHE_PAGED_CACHE_H_
#define STRATA_KVCACHE_PAGED_CACHE_H_

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kvcache/cache_view.h"
#include "kvcache/layout.h"

namespace strata::kvcache {

struct PagedCacheOptions {
  CacheGeometry geometry;  // sizes and dtypes; see layout.h
  int64_t num_blocks = 0;  // 64-token blocks in the pool, 1 .. (2³¹ − 1) / 64
};

namespace internal {
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
}  // namespace internal

// The latent MLA cache: per token [c (L) | k_rope (R)] in geometry.latent_dtype.
class LatentCache {
 public:
  // INVALID_ARGUMENT for a bad geometry or pool size; RESOURCE_EXHAUSTED when memory is short.
  static absl::StatusOr<std::unique_ptr<LatentCache>> Create(const PagedCacheOptions& options);
  LatentCache(const LatentCache&) = delete;
  LatentCache& operator=(const LatentCache&) = delete;

  // Blocks are contiguous (block_stride = 64 · row bytes). The pointer allows writes.
  LatentCacheView view() const { return view_; }
  int64_t num_blocks() const { return view_.num_blocks; }
  int64_t num_slots() const { return NumSlots(view_.num_blocks); }
  int width() const { return view_.kv_lora_rank + view_.rope_dim; }  // L + R
  int64_t bytes() const { return view_.num_blocks * view_.block_stride; }
  const uint8_t* data() const { return data_.get(); }

  // Dequantised row of `slot` into out[0, L + R). OUT_OF_RANGE for a slot outside the pool,
  // INVALID_ARGUMENT when out is not L + R long.
  absl::Status ReadRow(int64_t slot, absl::Span<float> out) const;

 private:
  LatentCache(LatentCacheView view, std::unique_ptr<uint8_t, internal::FreeDeleter> data)
      : view_(view), data_(std::move(data)) {}
  LatentCacheView view_;
  std::unique_ptr<uint8_t, internal::FreeDeleter> data_;
};

// The indexer key cache: one key of D values per token in geometry.indexer_dtype.
class IndexerKeyCache {
 public:
  // As LatentCache::Create; also INVALID_ARGUMENT when !geometry.has_indexer.
  static absl::StatusOr<std::unique_ptr<IndexerKeyCache>> Create(const PagedCacheOptions& options);
  IndexerKeyCache(const IndexerKeyCache&) = delete;
  IndexerKeyCache& operator=(const IndexerKeyCache&) = delete;

  IndexerCacheView view() const { return view_; }
  int64_t num_blocks() const { return view_.num_blocks; }
  int64_t num_slots() const { return NumSlots(view_.num_blocks); }
  int head_dim() const { return view_.head_dim; }
  int64_t bytes() const { return view_.num_blocks * view_.block_stride; }
  const uint8_t* data() const { return data_.get(); }

  // Dequantised key of `slot` into out[0, D); kF8 keys in the rotated basis (H·k, layout.h).
  // Errors as LatentCache::ReadRow.
  absl::Status ReadKey(int64_t slot, absl::Span<float> out) const;

 private:
  IndexerKeyCache(IndexerCacheView view, std::unique_ptr<uint8_t, internal::FreeDeleter> data)
      : view_(view), data_(std::move(data)) {}
  IndexerCacheView view_;
  std::unique_ptr<uint8_t, internal::FreeDeleter> data_;
};

// Checks a view a kernel is handed: known dtype, positive sizes, L % 128 == 0 for kF8, block
// stride at least one block's bytes, non-null data, NumSlots(num_blocks) <= INT32_MAX.
absl::Status ValidateLatentCacheView(const LatentCacheView& v);
absl::Status ValidateIndexerCacheView(const IndexerCacheView& v);

// Unchecked readers for kernels that validated their inputs.
// REQUIRES: a valid view, 0 <= slot < NumSlots(v.num_blocks), out holds L + R (resp. D) floats.
void DequantizeLatentRow(const LatentCacheView& v, int64_t slot, float* out);
// A kF8 key comes back as stored: Hadamard-rotated (H·k, layout.h); kF32 / kBF16 keys as given.
void DequantizeIndexerKey(const IndexerCacheView& v, int64_t slot, float* out);

}  // namespace strata::kvcache

#endif  // STRATA_KVCACHE_PAGED_CACHE_H_

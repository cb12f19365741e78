// Writing new tokens into one layer's paged caches (specs/dsa.md §1 "cache[slot(t)] = [c | k_rope]"
// and the indexer's key), quantising for the fp8 layouts as layout.h specifies:
//   latent kF8: per 128-value group of c, scale = max(amax / 448, FLT_MIN), byte = fp8(x / scale);
//               k_rope stored as bf16.  kBF16: round to nearest even.  kF32: copied.
//   indexer kF8: per token, r = H·x (IndexerHadamardRotate, layout.h), scale =
//               2^ceil(log2(max(amax(r), 1e-4) / 448)), byte = fp8(r / scale).
// Both kernels check every slot before writing anything: on error the cache is unchanged.
#ifndef STRATA_KERNELS_CPU_CACHE_WRITE_H_
#define STRATA_KERNELS_CPU_CACHE_WRITE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kvcache/cache_view.h"

namespace strata::kernels {

struct WriteLatentCacheParams {
  int num_tokens = 0;              // T
  const float* rows = nullptr;     // [T, L + R] fp32: [c (normed latent) | k_rope (roped)]
  int64_t rows_stride = 0;         // elements between token rows, >= L + R
  const int32_t* slots = nullptr;  // [T] destination slot; < 0 skips the token (padding)
  kvcache::LatentCacheView cache;  // L, R, dtype, and the memory written
};

// INVALID_ARGUMENT for a malformed view or params; OUT_OF_RANGE for a slot >= num_blocks · 64.
absl::Status WriteLatentCacheCpu(const WriteLatentCacheParams& p);

struct WriteIndexerCacheParams {
  int num_tokens = 0;              // T
  const float* keys = nullptr;     // [T, D] fp32 (after k_norm and rope)
  int64_t keys_stride = 0;         // elements between token rows, >= D
  const int32_t* slots = nullptr;  // [T] destination slot; < 0 skips the token
  kvcache::IndexerCacheView cache;
};

// Errors as WriteLatentCacheCpu.
absl::Status WriteIndexerCacheCpu(const WriteIndexerCacheParams& p);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CPU_CACHE_WRITE_H_

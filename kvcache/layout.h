// The byte contract of the DSA caches (specs/dsa.md §7), per layer. Both the CPU and CUDA
// backends, and the coordinator's capacity accounting, use these numbers; nothing else may
// hard-code them.
#ifndef STRATA_KVCACHE_LAYOUT_H_
#define STRATA_KVCACHE_LAYOUT_H_

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace strata::kvcache {

// Tokens per cache block: the indexer's natural block, and the unit of KV accounting.
inline constexpr int kBlockTokens = 64;

// Latent MLA cache row: [c (kv_lora_rank) | k_rope (qk_rope_head_dim)] = 512 + 64 for real models.
enum class LatentCacheDType : uint8_t {
  kF32,   // CPU reference: 4 bytes per value.
  kBF16,  // [num_blocks, 64, L + R] bf16.
  kF8,    // L fp8 E4M3, L/128 fp32 scales, R bf16 (656 bytes for L=512, R=64).
};

// Indexer key cache: one key of index_head_dim values per token.
enum class IndexerCacheDType : uint8_t {
  kF32,   // CPU reference.
  kBF16,  // [num_blocks, 64, D] bf16.
  kF8,    // per block: 64×D fp8 key bytes (token-major), then 64 fp32 scales.
};

struct CacheGeometry {
  int kv_lora_rank = 512;     // L
  int qk_rope_head_dim = 64;  // R
  int index_head_dim = 128;   // D
  LatentCacheDType latent_dtype = LatentCacheDType::kBF16;
  IndexerCacheDType indexer_dtype = IndexerCacheDType::kF8;
  bool has_indexer = true;  // false for a layer that shares another's top-k (IndexShare)
};

// Bytes per token of one latent-cache row. kF8 needs L % 128 == 0.
int64_t LatentBytesPerToken(const CacheGeometry& g);
// Bytes of one indexer-cache block (64 tokens); 0 when !has_indexer.
int64_t IndexerBytesPerBlock(const CacheGeometry& g);
// Both caches of one layer, per 64-token block.
int64_t LayerBytesPerBlock(const CacheGeometry& g);

// Row and block layouts ------------------------------------------------------------------------
// Usable from host and device code. Byte offsets are int64: block_id × block bytes exceeds 2³¹
// for real pools.

// fp8 latent row (kF8), byte offsets within one token's row of LatentRowBytes bytes:
//   [0, L)                     c as fp8 E4M3; value i is fp8[i] · scales[i / 128]
//   [L, L + 4·L/128)           L/128 fp32 scales (LatentF8Scale)
//   [L + 4·L/128, .. + 2·R)    k_rope as bf16 (not quantised)
// kF32 / kBF16 rows are the L + R values [c | k_rope] in that dtype.
inline constexpr int kLatentF8GroupSize = 128;

STRATA_HOST_DEVICE int64_t LatentF8ScalesOffset(int kv_lora_rank) { return kv_lora_rank; }
STRATA_HOST_DEVICE int64_t LatentF8RopeOffset(int kv_lora_rank) {
  return kv_lora_rank + int64_t{kv_lora_rank / kLatentF8GroupSize} * 4;
}

STRATA_HOST_DEVICE int64_t LatentRowBytes(LatentCacheDType dtype, int kv_lora_rank, int rope_dim) {
  switch (dtype) {
    case LatentCacheDType::kF32:
      return int64_t{kv_lora_rank + rope_dim} * 4;
    case LatentCacheDType::kBF16:
      return int64_t{kv_lora_rank + rope_dim} * 2;
    case LatentCacheDType::kF8:
      return LatentF8RopeOffset(kv_lora_rank) + int64_t{rope_dim} * 2;
  }
  return 0;
}

// Indexer key block (64 tokens). kF32 / kBF16: [64, D] in that dtype. kF8:
//   [0, 64·D)            key bytes, token-major (token i's key at i·D); value = fp8 · scale[i]
//   [64·D, 64·D + 256)   64 fp32 scales, one per token (IndexerF8Scale)
// kF8 keys are stored Hadamard-rotated: the dequantised vector fp8 · scale is H·k, not k
// (IndexerHadamardRotate; DeepSeek-V3.2's rotate_activation before act_quant). H is orthonormal,
// so (H·q) · (H·k) = q · k: the logits kernels rotate q when they read an fp8 cache, and callers
// see the same logits as with the unrotated key. The rotation spreads a key's few large channels
// over all D lanes, so the per-token scale costs the other lanes less precision. kF8 needs D a
// power of two. kF32 / kBF16 keys are stored as given.
STRATA_HOST_DEVICE int64_t IndexerF8ScalesOffset(int index_head_dim) {
  return int64_t{kBlockTokens} * index_head_dim;
}

STRATA_HOST_DEVICE int64_t IndexerBlockBytes(IndexerCacheDType dtype, int index_head_dim) {
  switch (dtype) {
    case IndexerCacheDType::kF32:
      return int64_t{kBlockTokens} * index_head_dim * 4;
    case IndexerCacheDType::kBF16:
      return int64_t{kBlockTokens} * index_head_dim * 2;
    case IndexerCacheDType::kF8:
      return IndexerF8ScalesOffset(index_head_dim) + kBlockTokens * 4;
  }
  return 0;
}

// The rotation of fp8 indexer keys --------------------------------------------------------------

STRATA_HOST_DEVICE bool IsPowerOfTwo(int n) { return n > 0 && (n & (n - 1)) == 0; }

// In place: x ← H·x, H the orthonormal Sylvester–Hadamard matrix of order n (a power of two),
// H[i][j] = (−1)^popcount(i & j) / √n, so H = Hᵀ = H⁻¹. Computed as butterfly stages
// len = 1, 2, …, n/2 — (x[j], x[j + len]) → (x[j] + x[j + len], x[j] − x[j + len]) for every j
// with bit len clear — then one multiply by 1/√n (T(1) / std::sqrt(T(n))). The CUDA cache write
// does the same operations in the same order, so for T = float both round identically, bit for bit.
template <typename T>
STRATA_HOST_DEVICE void IndexerHadamardRotate(T* x, int n) {
  for (int len = 1; len < n; len <<= 1) {
    for (int j = 0; j < n; ++j) {
      if (j & len) continue;
      const T a = x[j], b = x[j + len];
      x[j] = a + b;
      x[j + len] = a - b;
    }
  }
  const T inv_sqrt_n = T(1) / std::sqrt(T(n));
  for (int j = 0; j < n; ++j) x[j] *= inv_sqrt_n;
}

// Quantisation scales --------------------------------------------------------------------------
// Stored value = fp8(x / scale) (round to nearest even, saturating); dequantised = fp8 · scale.

// Latent c, per group of 128 values: max(amax / 448, FLT_MIN) (FlashMLA's fp8 KV layout).
STRATA_HOST_DEVICE float LatentF8Scale(float amax) {
  const float s = amax / kF8E4M3Max;
  return s > FLT_MIN ? s : FLT_MIN;
}

// Indexer key, per token: 2^ceil(log2(max(amax, 1e-4) / 448)), a power of two (UE8M0), so x / s
// is exact. Computed with frexp rather than log2f so that exact powers of two are not bumped.
inline constexpr float kIndexerF8AmaxFloor = 1e-4f;

STRATA_HOST_DEVICE float IndexerF8Scale(float amax) {
  const float v = (amax > kIndexerF8AmaxFloor ? amax : kIndexerF8AmaxFloor) / kF8E4M3Max;
  int e = 0;
  const float m = frexpf(v, &e);  // v = m · 2^e, m in [0.5, 1)
  return ldexpf(1.0f, m == 0.5f ? e - 1 : e);
}

// INVALID_ARGUMENT when the geometry cannot be laid out (fp8 latent with L not a multiple of 128,
// non-positive sizes).
absl::Status ValidateGeometry(const CacheGeometry& g);

}  // namespace strata::kvcache

#endif  // STRATA_KVCACHE_LAYOUT_H_

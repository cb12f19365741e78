// Lightning-indexer logits and top-k (specs/dsa.md §2), fp32 reference of the production kernels
// (DeepGEMM's mqa_logits / paged_mqa_logits and the sparse top-k).
//
//   logits[t, j] = Σ_h w[t, h] · relu((q[t, h] · k[j]) · softmax_scale)
//
// Scale convention (HF Indexer.forward, deepseek_v32 and glm_moe_dsa alike):
//   scores  = relu((q.float() @ k.float()ᵀ) · softmax_scale),   softmax_scale = index_head_dim^-1/2
//   weights = weights_proj(hidden).float() · index_n_heads^-1/2
//   logits  = weights @ scores
// so the caller passes w = weights_proj(hidden) · iH^-1/2 (fp32, may be negative) and
// softmax_scale = iD^-1/2; the kernel applies softmax_scale to the dot product before the relu.
// Because softmax_scale > 0, relu(x · s) = s · relu(x): a caller may instead fold iD^-1/2 into w
// and pass softmax_scale = 1 (what the fp8 production path does along with the q scale); the
// results differ only by fp32 rounding. q is already roped ([rope (R) | rest], the rope lanes
// first) and k is LayerNorm(wk · hidden) roped the same way, as written to the indexer cache.
//
// Entry points:
//   ragged (prefill): keys contiguous [N, D]; row t scores keys [k_start[t], k_end[t]); the
//     logits column is the key's index in that buffer.
//   paged (decode):   row t scores positions [0, row_lens[t]) of sequence row_seq[t], read from the
//     paged IndexerKeyCache through the block table; the column is the position. Causal rows have
//     row_lens[t] = pos(t) + 1; next_n query rows of one sequence are next_n rows with the same
//     row_seq and row_lens = ctx_len − next_n + 1 + i (i = 0 .. next_n − 1).
// fp8 keys (ragged kF8E4M3, paged kF8 cache) are Hadamard-rotated, H·k, as the cache write stores
// them (kvcache/layout.h); the kernels then score H·q (rotated in double) against them, which in
// exact arithmetic equals q · k. Callers pass q unrotated in every case. fp8 needs iD a power of 2.
// Columns outside a row's range are −inf. Accumulation is in double; outputs fp32.
// As in HF (update_indexer before scoring), the keys of the query tokens themselves must already be
// in the cache. The paged form serves prefill too (one row per token, row_lens = pos + 1).
#ifndef STRATA_KERNELS_CPU_INDEXER_LOGITS_H_
#define STRATA_KERNELS_CPU_INDEXER_LOGITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"
#include "kvcache/block_table.h"
#include "kvcache/cache_view.h"

namespace strata::kernels {

struct IndexerRaggedLogitsParams {
  int num_tokens = 0;              // T query rows
  int num_heads = 0;               // iH
  int head_dim = 0;                // iD
  int64_t num_keys = 0;            // N
  int64_t max_cols = 0;            // logits row width; every k_end[t] <= max_cols
  float softmax_scale = 0.0f;      // applied to q · k inside the relu (see above); > 0
  const float* q = nullptr;        // [T, iH, iD] fp32, roped
  int64_t q_token_stride = 0;      // elements
  int64_t q_head_stride = 0;       // elements, >= iD
  const float* weights = nullptr;  // [T, iH] fp32, iH^-1/2 folded in
  int64_t weights_token_stride = 0;
  DType key_dtype = DType::kF32;      // kF32, kBF16 or kF8E4M3
  const void* keys = nullptr;         // [N, iD] of key_dtype
  int64_t key_stride = 0;             // elements between keys, >= iD
  const float* key_scales = nullptr;  // [N] fp32, kF8E4M3 only: H·key j = fp8 · key_scales[j]
  const int32_t* k_start = nullptr;   // [T] first key of row t
  const int32_t* k_end = nullptr;     // [T] one past its last key; 0 <= k_start <= k_end <= N
  float* logits = nullptr;            // [T, max_cols] fp32
  int64_t logits_stride = 0;          // elements, >= max_cols
};

// INVALID_ARGUMENT for malformed params (sizes, strides, nulls, ranges).
absl::Status IndexerRaggedLogitsCpu(const IndexerRaggedLogitsParams& p);

struct IndexerPagedLogitsParams {
  int num_tokens = 0;          // T query rows
  int num_heads = 0;           // iH
  int64_t max_cols = 0;        // logits row width; every row_lens[t] <= max_cols
  float softmax_scale = 0.0f;  // as above
  const float* q = nullptr;    // [T, iH, iD] fp32, roped; iD = cache.head_dim
  int64_t q_token_stride = 0;
  int64_t q_head_stride = 0;
  const float* weights = nullptr;  // [T, iH] fp32, iH^-1/2 folded in
  int64_t weights_token_stride = 0;
  const int32_t* row_seq = nullptr;   // [T] block-table row (sequence) of query row t
  const int32_t* row_lens = nullptr;  // [T] positions scored; <= block_table.seq_lens[row_seq[t]]
  kvcache::BlockTableView block_table;
  kvcache::IndexerCacheView cache;
  float* logits = nullptr;  // [T, max_cols] fp32; column = position
  int64_t logits_stride = 0;
};

// INVALID_ARGUMENT for malformed params; OUT_OF_RANGE for a block id outside the pool.
absl::Status IndexerPagedLogitsCpu(const IndexerPagedLogitsParams& p);

// Top-k of each logits row, as positions (spec §2): row t considers columns [col_begin[t],
// col_end[t]) and reports column − col_begin[t]. When the range holds <= K columns all are
// selected; unused entries are −1. Entries are ordered by descending logit, ties by lower column
// (the contract is a set: consumers must not depend on the order).
struct IndexerTopkParams {
  int num_tokens = 0;             // T
  int topk = 0;                   // K
  const float* logits = nullptr;  // [T, logits_stride]
  int64_t logits_stride = 0;
  const int32_t* col_begin = nullptr;  // [T]; null means 0 for every row
  const int32_t* col_end = nullptr;    // [T]; col_end[t] <= logits_stride
  int32_t* topk_pos = nullptr;         // [T, K] out, −1 padded
  int64_t topk_stride = 0;             // elements, >= K
};

absl::Status IndexerTopkCpu(const IndexerTopkParams& p);

// Top-k positions → cache slots through the block table (spec §2):
//   slots[t, i] = SlotForPosition(block_table row row_seq[t], pos) for 0 <= pos < row_lens[t],
//   −1 for pos < 0 (padding) and for pos >= row_lens[t]. The HF oracle's top-k over a causally
//   masked row can return masked (future) positions, which its causal attention mask then hides;
//   a sparse kernel has no such mask, so they must be dropped here. Duplicates are kept (the
//   attention reference counts a slot once).
struct MapTopkToSlotsParams {
  int num_tokens = 0;                 // T
  int topk = 0;                       // K
  const int32_t* topk_pos = nullptr;  // [T, K] positions within the sequence, −1 padded
  int64_t topk_stride = 0;
  const int32_t* row_seq = nullptr;   // [T] block-table row of token t
  const int32_t* row_lens = nullptr;  // [T] valid positions [0, row_lens[t]); causal: pos(t)+1;
                                      // <= block_table.seq_lens[row_seq[t]]
  kvcache::BlockTableView block_table;
  int64_t num_blocks = 0;    // pool size; block ids are checked against it
  int32_t* slots = nullptr;  // [T, K] out
  int64_t slots_stride = 0;
};

// INVALID_ARGUMENT for malformed params; OUT_OF_RANGE for a block id outside the pool.
absl::Status MapTopkToSlotsCpu(const MapTopkToSlotsParams& p);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CPU_INDEXER_LOGITS_H_

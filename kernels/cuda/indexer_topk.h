// CUDA twins of IndexerTopkCpu and MapTopkToSlotsCpu (kernels/cpu/indexer_logits.h, specs/dsa.md
// §2): the top-k columns of each logits row as positions, −1 padded, optionally mapped to cache
// slots through the block table in the same pass.
//
// Same contract as the CPU twin except the order inside a row: the result is a set (rows hold the
// selected positions in no particular order, then −1s); ties at the k-th value are broken
// arbitrarily. NaN counts as −inf. Range checks that need the device data (col_end <= stride,
// row_lens <= seq_lens) are the caller's: out-of-range rows are clamped, never read out of bounds.
//
// Algorithm: one CTA streams a row once (four tiles of loads in flight), admitting values at or
// above a running threshold into a shared-memory candidate buffer; when the buffer cannot take
// another tile, one radix pass over the bits below the candidates' common prefix finds a new
// threshold that keeps between k and k + 1024 of them (an exact radix select when ties crowd the
// bin) and compacts. The final top k is an exact radix select over the survivors.
// With few rows (<= 32) of 16K .. 512K columns, a split radix select instead spreads each row over
// many CTAs: a shared histogram of the top 12 key bits finds the bin of the k-th largest, the keys
// above it go straight to the output, and one CTA a row selects the rest among the keys of that
// bin (a memset and three launches). Other few-row shapes split each row across CTAs whose partial
// top-k sets (k candidates each) are merged by a second launch over the workspace.
//
// Plan/run: PlanIndexerTopkCuda picks the split from host-known sizes only; IndexerTopkCuda
// allocates nothing and does not sync, so it can be captured in a CUDA graph.
#ifndef STRATA_KERNELS_CUDA_INDEXER_TOPK_H_
#define STRATA_KERNELS_CUDA_INDEXER_TOPK_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kvcache/block_table.h"

namespace strata::kernels {

inline constexpr int kIndexerTopkMaxK = 2048;

struct IndexerTopkCudaParams {
  int num_tokens = 0;             // T
  int topk = 0;                   // K, 0 .. kIndexerTopkMaxK
  const float* logits = nullptr;  // [T, logits_stride] fp32
  int64_t logits_stride = 0;      // elements; rows are read with 16-byte loads when the pointer is
                                  // 16-byte aligned and the stride a multiple of 4
  const int32_t* col_begin = nullptr;  // [T]; null means 0 for every row
  const int32_t* col_end = nullptr;    // [T]; col_begin <= col_end <= logits_stride
  int32_t* topk_pos = nullptr;         // [T, K] out: column − col_begin, −1 padded
  int64_t topk_stride = 0;             // elements, >= K

  // Optional fused MapTopkToSlots epilogue (set `slots` to enable): slots[t, i] = the cache slot
  // of position topk_pos[t, i] when it is < row_lens[t], else −1 (see MapTopkToSlotsCpu).
  int32_t* slots = nullptr;  // [T, K] out
  int64_t slots_stride = 0;
  const int32_t* row_seq = nullptr;   // [T] block-table row of query row t
  const int32_t* row_lens = nullptr;  // [T] valid positions [0, row_lens[t])
  kvcache::BlockTableView block_table{};
  int64_t num_blocks = 0;  // pool size; a block id outside [0, num_blocks) maps to −1
};

struct IndexerTopkPlan {
  int num_splits = 1;          // CTAs per row; > 1 adds the merge launch (not with radix)
  bool radix = false;          // the split radix path (few rows, 16K .. 512K columns)
  size_t workspace_bytes = 0;  // device workspace IndexerTopkCuda needs (0 when num_splits == 1)
};

// Chooses the split for T rows of up to `max_cols` columns on a device with `num_sms`
// multiprocessors. Pure host arithmetic.
IndexerTopkPlan PlanIndexerTopkCuda(int num_tokens, int topk, int64_t max_cols, int num_sms);

// REQUIRES: plan from PlanIndexerTopkCuda with the same T, K and max_cols >= logits_stride;
// `workspace` holds plan.workspace_bytes (16-byte aligned; may be null when 0).
cudaError_t IndexerTopkCuda(const IndexerTopkCudaParams& p, const IndexerTopkPlan& plan,
                            void* workspace, cudaStream_t stream);

// Standalone positions → slots (MapTopkToSlotsCpu's contract; invalid rows or block ids give −1
// instead of an error).
struct MapTopkToSlotsCudaParams {
  int num_tokens = 0;                 // T
  int topk = 0;                       // K
  const int32_t* topk_pos = nullptr;  // [T, K] positions, −1 padded
  int64_t topk_stride = 0;
  const int32_t* row_seq = nullptr;   // [T]
  const int32_t* row_lens = nullptr;  // [T]
  kvcache::BlockTableView block_table{};
  int64_t num_blocks = 0;
  int32_t* slots = nullptr;  // [T, K] out
  int64_t slots_stride = 0;
};

cudaError_t MapTopkToSlotsCuda(const MapTopkToSlotsCudaParams& p, cudaStream_t stream);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CUDA_INDEXER_TOPK_H_

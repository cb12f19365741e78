// CUDA twins of IndexerRaggedLogitsCpu and IndexerPagedLogitsCpu (kernels/cpu/indexer_logits.h,
// specs/dsa.md §2):
//
//   logits[t, j] = key_scale[j] · softmax_scale · Σ_h w[t, h] · relu(q[t, h] · k[j])
//
// equal to the CPU twin's Σ_h w · relu((q · k · key_scale) · softmax_scale) up to fp32 rounding,
// because both scales are positive. Columns outside a row's range are −inf.
//
// Numerics: q is bf16 (as the model produces it); keys are bf16, or fp8 E4M3 with one fp32 scale
// per key decoded to bf16 exactly in registers (sm80 has no fp8 MMA); q · k runs on bf16
// mma.sync with fp32 accumulation, relu and the head weighting are fused in fp32. fp8 keys are
// Hadamard-rotated (H·k, kvcache/layout.h, as the cache writes store them; the ragged kF8E4M3
// keys too), and the kernels rotate q in fp32 while staging it and round H·q to bf16: callers
// pass q unrotated, as for bf16 keys. Compared with the CPU twin on the same bf16 q and the same
// stored keys, the error is fp32 accumulation only for bf16 keys; for fp8 keys add the bf16
// rounding of H·q (at most 2^-9 of each lane).
//
// Shapes the kernels are built for: head_dim 128; num_heads 32 or 64 (cudaErrorInvalidValue
// otherwise). Alignment: q, keys, key_scales and the cache 16-byte aligned; q strides multiples
// of 8 elements, key_stride · key bytes a multiple of 16.
//
// Work split: each CTA scores 128 keys a step against up to 128 (row, head) pairs held in shared
// memory; rows sharing keys (next_n rows of one sequence in decode, consecutive tokens in
// prefill) are scored together so each key is read from memory once per group. Long rows are
// split into column chunks across CTAs; the chunk size is chosen from host-known sizes only. No
// allocation, no host sync: graph-capturable.
#ifndef STRATA_KERNELS_CUDA_INDEXER_LOGITS_H_
#define STRATA_KERNELS_CUDA_INDEXER_LOGITS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "kvcache/block_table.h"
#include "kvcache/cache_view.h"

namespace strata::kernels {

struct IndexerRaggedLogitsCudaParams {
  int num_tokens = 0;              // T query rows
  int num_heads = 0;               // iH: 32 or 64
  int head_dim = 0;                // iD: 128
  int64_t num_keys = 0;            // N
  int64_t max_cols = 0;            // logits row width; every k_end[t] <= max_cols
  float softmax_scale = 0.0f;      // > 0
  const uint16_t* q = nullptr;     // [T, iH, iD] bf16, roped
  int64_t q_token_stride = 0;      // elements
  int64_t q_head_stride = 0;       // elements, >= iD
  const float* weights = nullptr;  // [T, iH] fp32, iH^-1/2 folded in
  int64_t weights_token_stride = 0;
  DType key_dtype = DType::kBF16;     // kBF16 or kF8E4M3
  const void* keys = nullptr;         // [N, iD] of key_dtype
  int64_t key_stride = 0;             // elements between keys, >= iD
  const float* key_scales = nullptr;  // [N] fp32, kF8E4M3 only
  const int32_t* k_start = nullptr;   // [T]; 0 <= k_start <= k_end <= min(N, max_cols)
  const int32_t* k_end = nullptr;     // [T]; out-of-range values are clamped
  float* logits = nullptr;            // [T, max_cols] fp32
  int64_t logits_stride = 0;          // elements, >= max_cols
};

cudaError_t IndexerRaggedLogitsCuda(const IndexerRaggedLogitsCudaParams& p, cudaStream_t stream);

struct IndexerPagedLogitsCudaParams {
  int num_tokens = 0;           // T query rows
  int num_heads = 0;            // iH: 32 or 64
  int64_t max_cols = 0;         // logits row width; every row_lens[t] <= max_cols
  float softmax_scale = 0.0f;   // > 0
  const uint16_t* q = nullptr;  // [T, iH, iD] bf16, roped; iD = cache.head_dim = 128
  int64_t q_token_stride = 0;
  int64_t q_head_stride = 0;
  const float* weights = nullptr;  // [T, iH] fp32
  int64_t weights_token_stride = 0;
  const int32_t* row_seq = nullptr;   // [T] block-table row of query row t
  const int32_t* row_lens = nullptr;  // [T] positions scored, <= seq_lens[row_seq[t]]
  // Rows come in groups of next_n consecutive rows of one sequence (same row_seq; MTP decode).
  // With an even next_n, rows are scored two at a time, reading the keys once per pair.
  int next_n = 1;
  kvcache::BlockTableView block_table{};  // device arrays
  kvcache::IndexerCacheView cache{};      // kBF16 or kF8, head_dim 128; device memory
  float* logits = nullptr;                // [T, max_cols] fp32; column = position
  int64_t logits_stride = 0;
};

// A block id outside [0, cache.num_blocks) is not read; the logits it would give are unspecified.
cudaError_t IndexerPagedLogitsCuda(const IndexerPagedLogitsCudaParams& p, cudaStream_t stream);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CUDA_INDEXER_LOGITS_H_

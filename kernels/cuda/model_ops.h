// CUDA twins of the small model operations in kernels/cpu (embedding, rms_norm, layer_norm, rope,
// silu_mul, axpy, scale), plus the generic kernels the CUDA model backend
// (worker/model/cuda_backend.cc) falls back to where the tuned kernels cannot serve a shape (paged
// indexer logits and sparse MLA over any head count, head width and cache layout) and greedy
// argmax sampling.
//
// Activations are f32 or bf16 (the `*_dtype` fields; bf16 is uint16_t bits), the math inside is
// fp32 and a bf16 output is rounded once, to nearest even. The Params structs keep the CPU twins'
// field names (an all-f32 call reads the same); the overloads without a dtype argument take the
// CPU Params structs themselves, all f32.
//
// Every launcher checks sizes on the host (cudaErrorInvalidValue, nothing launched), allocates
// nothing and does not sync. Device data (ids, positions, slots) is not validated: an id or slot
// out of range is skipped (the output row is left as documented below), never read out of bounds.
#ifndef STRATA_KERNELS_CUDA_MODEL_OPS_H_
#define STRATA_KERNELS_CUDA_MODEL_OPS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/indexer_logits.h"
#include "kernels/cpu/layer_norm.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/sparse_mla.h"

namespace strata::kernels {

// out[t] = table[ids[t]] (f32 out). An id outside [0, vocab_size) writes a zero row (the CPU twin
// refuses the call instead).
struct EmbeddingCudaParams {
  int64_t num_ids = 0;
  int64_t vocab_size = 0;
  int64_t dim = 0;
  int64_t out_stride = 0;           // 0 → dim
  DType table_dtype = DType::kF32;  // kF32 or kBF16
  const void* table = nullptr;      // [vocab_size, dim], contiguous
  const int32_t* ids = nullptr;     // [num_ids]
  float* out = nullptr;             // [num_ids, out_stride]
};
cudaError_t EmbeddingCuda(const EmbeddingCudaParams& p, cudaStream_t stream);

// out = RmsNorm(x) · weight, or with `residual` set: residual += x; out = RmsNorm(residual) ·
// weight (the fused residual add; the residual stream is f32). Sum of squares in fp32.
struct RmsNormCudaParams {
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t x_stride = 0;         // 0 → dim
  int64_t out_stride = 0;       // 0 → dim
  int64_t residual_stride = 0;  // 0 → dim
  float eps = 1e-6f;
  DType x_dtype = DType::kF32;    // kF32 or kBF16
  DType out_dtype = DType::kF32;  // kF32 or kBF16
  const void* x = nullptr;        // [rows, x_stride]
  const float* weight = nullptr;  // [dim]
  float* residual = nullptr;      // [rows, residual_stride] or null
  void* out = nullptr;  // [rows, out_stride]; may alias x or residual (same dtype and stride)
};
cudaError_t RmsNormCuda(const RmsNormCudaParams& p, cudaStream_t stream);

// x and out share `dtype`; weight and bias are f32.
struct LayerNormCudaParams {
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t x_stride = 0;
  int64_t out_stride = 0;
  float eps = 1e-6f;
  DType dtype = DType::kF32;
  const void* x = nullptr;
  const float* weight = nullptr;
  const float* bias = nullptr;  // may be null
  void* out = nullptr;          // may alias x (same stride)
};
cudaError_t LayerNormCuda(const LayerNormCudaParams& p, cudaStream_t stream);

// ApplyRopeParams on an f32 or bf16 x (rot_dim <= 256). Positions < 0 leave their token untouched.
cudaError_t ApplyRopeCuda(const ApplyRopeParams& p, DType dtype, void* x, cudaStream_t stream);
cudaError_t ApplyRopeCuda(const ApplyRopeParams& p, cudaStream_t stream);

// out = silu(gate) · up; gate, up and out share `dtype`.
struct SiluMulCudaParams {
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t gate_stride = 0;
  int64_t up_stride = 0;
  int64_t out_stride = 0;
  DType dtype = DType::kF32;
  const void* gate = nullptr;
  const void* up = nullptr;
  void* out = nullptr;  // may alias gate or up (same stride)
};
cudaError_t SiluMulCuda(const SiluMulCudaParams& p, cudaStream_t stream);

// AxpyParams with an f32 or bf16 x (y stays f32): y[y_rows[i]] += alpha · row_alpha[i] · x[i].
// y_rows must be distinct within one call (no atomics).
cudaError_t AxpyCuda(const AxpyParams& p, DType x_dtype, const void* x, cudaStream_t stream);
cudaError_t AxpyCuda(const AxpyParams& p, cudaStream_t stream);
cudaError_t ScaleCuda(const ScaleParams& p, cudaStream_t stream);

// dst = convert(src) row by row between f32 and bf16 (any strides).
struct CastRowsCudaParams {
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t src_stride = 0;  // elements
  int64_t dst_stride = 0;  // elements
  DType src_dtype = DType::kF32;
  DType dst_dtype = DType::kBF16;
  const void* src = nullptr;
  void* dst = nullptr;
};
cudaError_t CastRowsCuda(const CastRowsCudaParams& p, cudaStream_t stream);

// out[i] = x[rows[i]]; a row index outside [0, x_rows) gives a zero row.
struct GatherRowsCudaParams {
  int64_t num_rows = 0;           // R
  int64_t dim = 0;                // H
  int64_t x_rows = 0;             // rows of x (bounds for rows)
  int64_t x_stride = 0;           // elements
  int64_t out_stride = 0;         // elements
  const int32_t* rows = nullptr;  // [R]
  const void* x = nullptr;        // [x_rows, x_stride] of dtype
  void* out = nullptr;            // [R, out_stride] of dtype
  DType dtype = DType::kF32;      // kF32 or kBF16
};
cudaError_t GatherRowsCuda(const GatherRowsCudaParams& p, cudaStream_t stream);

// IndexerPagedLogitsCpu's contract on the device for any head count and head_dim and any indexer
// cache layout (f32, bf16, fp8 with per-token scales), with an f32 or bf16 q (`q_dtype`, `q`
// replace p.q); one CTA per (row, 64-position chunk), fp32 dot products. Columns >= row_lens[t]
// are −inf. block_table.table / seq_lens, row_seq, row_lens, q, weights, logits are device
// pointers.
cudaError_t IndexerPagedLogitsGenericCuda(const IndexerPagedLogitsParams& p, DType q_dtype,
                                          const void* q, cudaStream_t stream);
cudaError_t IndexerPagedLogitsGenericCuda(const IndexerPagedLogitsParams& p, cudaStream_t stream);

// SparseMlaCpu's contract on the device for any L and R, K <= 4096 and any latent cache layout
// (f32, bf16, fp8), with q and out f32 or bf16 (`io_dtype`; `q`, `out` replace p.q, p.out); one
// CTA per (token, head), scores in shared memory, fp32 softmax. Slots must be distinct per token
// (what IndexerTopkCuda produces); a slot < 0 or outside the pool is skipped; lse is not written.
cudaError_t SparseMlaGenericCuda(const SparseMlaParams& p, DType io_dtype, const void* q, void* out,
                                 cudaStream_t stream);
cudaError_t SparseMlaGenericCuda(const SparseMlaParams& p, cudaStream_t stream);

// Greedy sampling: ids[r] = argmax(logits[r]) (first index on ties, NaN never wins) and
// logprobs[r] = log_softmax(logits[r])[ids[r]]. One CTA per row.
struct ArgmaxCudaParams {
  int64_t rows = 0;
  int64_t vocab_size = 0;
  int64_t logits_stride = 0;      // elements
  const float* logits = nullptr;  // [rows, logits_stride]
  int32_t* ids = nullptr;         // [rows]
  float* logprobs = nullptr;      // [rows]
};
cudaError_t ArgmaxCuda(const ArgmaxCudaParams& p, cudaStream_t stream);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CUDA_MODEL_OPS_H_

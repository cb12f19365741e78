// CUDA twins of kernels/cpu/cache_write.h: new tokens into one layer's paged caches on the device,
// with the same byte layouts and quantisation (kvcache/layout.h), bit for bit.
//
// Differences from the CPU twins, all forced by running without a host sync:
//   - Activations come as bf16 (what the model produces on the device) or fp32 (`rows_dtype`);
//     the CPU twin's fp32 input equals the bf16 path after widening each value.
//   - Slots are not range-checked against the pool on the host: a slot < 0 or >= NumSlots(pool) is
//     skipped (never written). Validate slots where they are produced.
//   - Duplicate slots in one call race; the CPU twin keeps the last. Callers pass distinct slots.
//   - fp8 indexer keys are Hadamard-rotated before quantising, as the CPU twin does, bit for bit;
//     D must be a power of two in [32, 512] (cudaErrorInvalidValue otherwise).
// The launchers check the params on the host (cudaErrorInvalidValue for malformed ones, nothing
// launched) and return the launch error. No allocation, no sync: graph-capturable.
#ifndef STRATA_KERNELS_CUDA_CACHE_WRITE_H_
#define STRATA_KERNELS_CUDA_CACHE_WRITE_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "kvcache/cache_view.h"

namespace strata::kernels {

struct WriteLatentCacheCudaParams {
  int num_tokens = 0;                // T
  DType rows_dtype = DType::kBF16;   // kBF16 or kF32
  const void* rows = nullptr;        // [T, L + R] rows_dtype: [c (normed latent) | k_rope (roped)]
  int64_t rows_stride = 0;           // elements between token rows, >= L + R
  const int32_t* slots = nullptr;    // [T] destination slot; < 0 (or outside the pool) skips
  kvcache::LatentCacheView cache{};  // device memory; block_stride and data 16-byte aligned
};

cudaError_t WriteLatentCacheCuda(const WriteLatentCacheCudaParams& p, cudaStream_t stream);

struct WriteIndexerCacheCudaParams {
  int num_tokens = 0;                 // T
  DType keys_dtype = DType::kBF16;    // kBF16 or kF32
  const void* keys = nullptr;         // [T, D] keys_dtype (after k_norm and rope)
  int64_t keys_stride = 0;            // elements between token rows, >= D
  const int32_t* slots = nullptr;     // [T] destination slot; < 0 (or outside the pool) skips
  kvcache::IndexerCacheView cache{};  // device memory; block_stride and data 16-byte aligned
};

cudaError_t WriteIndexerCacheCuda(const WriteIndexerCacheCudaParams& p, cudaStream_t stream);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CUDA_CACHE_WRITE_H_

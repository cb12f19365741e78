// A memory-bound GEMV for decode-sized Linear calls: y[m, n] = Σ_k x[m, k] · W[n, k] for M ≤ 8
// tokens, W bf16 [N, K] row-major, x and y bf16 or f32, fp32 accumulation (the backend uses it
// in place of cuBLASLt when M is small: issue 7).
//
// Each CTA owns kGemvRowsPerCta consecutive rows of W; its threads stride along K in 8-element
// (16-byte) vectors, several loads of W in flight per thread, x read through the read-only cache
// as f32, partial sums reduced with warp shuffles and then across the CTA's warps. Deterministic
// (a fixed reduction order), no allocation, no host synchronisation: graph-capturable.
//
// Shapes the kernel takes (GemvSupported): 1 ≤ M ≤ 8, K a multiple of 8, W's row stride and
// x's row stride multiples of 8 elements, W and x 16-byte aligned. Anything else is refused with
// cudaErrorInvalidValue before launch (the caller falls back to a GEMM).
#ifndef STRATA_KERNELS_CUDA_GEMV_H_
#define STRATA_KERNELS_CUDA_GEMV_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"

namespace strata::kernels {

inline constexpr int kGemvMaxRows = 8;     // the most tokens (M) one call takes
inline constexpr int kGemvRowsPerCta = 4;  // output columns n per CTA

struct GemvParams {
  int64_t m = 0;                 // tokens, 0..kGemvMaxRows (0 launches nothing)
  int64_t n = 0;                 // output features (rows of W)
  int64_t k = 0;                 // input features
  int64_t w_stride = 0;          // elements between rows of W (0: k)
  int64_t x_stride = 0;          // elements between rows of x (0: k)
  int64_t y_stride = 0;          // elements between rows of y (0: n)
  DType x_dtype = DType::kBF16;  // kBF16 or kF32
  DType y_dtype = DType::kBF16;  // kBF16 or kF32
  const void* w = nullptr;       // [n, w_stride] bf16
  const void* x = nullptr;       // [m, x_stride]
  void* y = nullptr;             // [m, y_stride]
};

// Whether GemvCuda takes these parameters (sizes, dtypes, strides, alignments); host only.
bool GemvSupported(const GemvParams& p);

// Device pointers. cudaErrorInvalidValue when !GemvSupported(p); otherwise the launch error.
cudaError_t GemvCuda(const GemvParams& p, cudaStream_t stream);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CUDA_GEMV_H_

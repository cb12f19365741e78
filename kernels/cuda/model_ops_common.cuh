// Device helpers shared by model_ops.cu and model_ops_attention.cu: element access for f32 and
// bf16 activations, block reductions, and the dtype dispatch of the launchers.
#ifndef STRATA_KERNELS_CUDA_MODEL_OPS_COMMON_CUH_
#define STRATA_KERNELS_CUDA_MODEL_OPS_COMMON_CUH_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"

namespace strata::kernels::model_ops {

inline constexpr int kThreads = 256;

inline int Blocks(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }
inline int64_t Or(int64_t stride, int64_t dim) { return stride == 0 ? dim : stride; }
inline bool IsAct(DType d) { return d == DType::kF32 || d == DType::kBF16; }

// Element access by storage type: float, or uint16_t holding bf16 bits.
__device__ __forceinline__ float Ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float Ld(const uint16_t* p, int64_t i) { return BF16ToFloat(p[i]); }
__device__ __forceinline__ void St(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void St(uint16_t* p, int64_t i, float v) { p[i] = FloatToBF16(v); }

// Sum of `v` over the CTA (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += scratch[w];
  return total;
}

__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) m = fmaxf(m, scratch[w]);
  return m;
}

// Calls f(T{}) with T = float for kF32 and uint16_t for kBF16.
template <typename F>
cudaError_t WithType(DType d, F&& f) {
  if (d == DType::kF32) return f(float{});
  if (d == DType::kBF16) return f(uint16_t{});
  return cudaErrorInvalidValue;
}

}  // namespace strata::kernels::model_ops

#endif  // STRATA_KERNELS_CUDA_MODEL_OPS_COMMON_CUH_

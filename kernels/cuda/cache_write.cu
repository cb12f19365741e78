#include "kernels/cuda/cache_write.h"
#include "kvcache/paged_cache.h"

namespace strata::kernels {
namespace {

using kvcache::IndexerCacheDType;
using kvcache::LatentCacheDType;

constexpr int kWarpsPerBlock = 4;  // one warp per token

template <bool IN_BF16>
__device__ __forceinline__ float LoadIn(const void* base, int64_t i) {
  if constexpr (IN_BF16) return BF16ToFloat(static_cast<const uint16_t*>(base)[i]);
  return static_cast<const float*>(base)[i];
}

__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The token of this warp and its slot, or -1 when the warp has nothing to write.
__device__ __forceinline__ int64_t WarpSlot(int num_tokens, const int32_t* slots,
                                            int64_t num_blocks, int* token) {
  *token = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (*token >= num_tokens) return -1;
  const int64_t slot = slots[*token];
  return slot < kvcache::NumSlots(num_blocks) ? slot : -1;
}

// Lanes stride the row (lane + 32 i) so every load and store of the warp is one contiguous run.
template <bool IN_BF16, LatentCacheDType OUT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    WriteLatentKernel(int num_tokens, const void* __restrict__ rows, int64_t rows_stride,
                      const int32_t* __restrict__ slots, kvcache::LatentCacheView cache) {
  int token;
  const int64_t slot = WarpSlot(num_tokens, slots, cache.num_blocks, &token);
  if (slot < 0) return;
  const int lane = threadIdx.x % 32;
  const int L = cache.kv_lora_rank, R = cache.rope_dim, width = L + R;
  const int64_t in = token * rows_stride;
  uint8_t* row = static_cast<uint8_t*>(cache.data) + kvcache::LatentRowOffset(cache, slot);
  if constexpr (OUT == LatentCacheDType::kF32) {
    float* out = reinterpret_cast<float*>(row);
    for (int i = lane; i < width; i += 32) out[i] = LoadIn<IN_BF16>(rows, in + i);
  } else if constexpr (OUT == LatentCacheDType::kBF16) {
    uint16_t* out = reinterpret_cast<uint16_t*>(row);
    for (int i = lane; i < width; i += 32) out[i] = FloatToBF16(LoadIn<IN_BF16>(rows, in + i));
  } else {
    constexpr int kGroup = kvcache::kLatentF8GroupSize;  // 128 = 4 values a lane
    float* scales = reinterpret_cast<float*>(row + kvcache::LatentF8ScalesOffset(L));
    for (int g = 0; g < L / kGroup; ++g) {
      float v[kGroup / 32];
      float amax = 0.0f;
#pragma unroll
      for (int i = 0; i < kGroup / 32; ++i) {
        v[i] = LoadIn<IN_BF16>(rows, in + g * kGroup + lane + 32 * i);
        amax = fmaxf(amax, fabsf(v[i]));
      }
      const float scale = kvcache::LatentF8Scale(WarpMax(amax));
      if (lane == 0) scales[g] = scale;
#pragma unroll
      for (int i = 0; i < kGroup / 32; ++i) {
        row[g * kGroup + lane + 32 * i] = FloatToF8E4M3(v[i] / scale);
      }
    }
    uint16_t* rope = reinterpret_cast<uint16_t*>(row + kvcache::LatentF8RopeOffset(L));
    for (int i = lane; i < R; i += 32) rope[i] = FloatToBF16(LoadIn<IN_BF16>(rows, in + L + i));
  }
}

template <bool IN_BF16, IndexerCacheDType OUT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    WriteIndexerKernel(int num_tokens, const void* __restrict__ keys, int64_t keys_stride,
                       const int32_t* __restrict__ slots, kvcache::IndexerCacheView cache) {
  int token;
  const int64_t slot = WarpSlot(num_tokens, slots, cache.num_blocks, &token);
  if (slot < 0) return;
  const int lane = threadIdx.x % 32;
  const int D = cache.head_dim;
  const int64_t in = token * keys_stride;
  uint8_t* base = static_cast<uint8_t*>(cache.data);
  uint8_t* key = base + kvcache::IndexerKeyOffset(cache, slot);
  if constexpr (OUT == IndexerCacheDType::kF32) {
    float* out = reinterpret_cast<float*>(key);
    for (int i = lane; i < D; i += 32) out[i] = LoadIn<IN_BF16>(keys, in + i);
  } else if constexpr (OUT == IndexerCacheDType::kBF16) {
    uint16_t* out = reinterpret_cast<uint16_t*>(key);
    for (int i = lane; i < D; i += 32) out[i] = FloatToBF16(LoadIn<IN_BF16>(keys, in + i));
  }
}

// fp8 keys: r = H·x (kvcache/layout.h), then the per-token scale of amax(r). Lane l holds lanes
// l + 32 i (i < VALS = D / 32) of the key. The butterfly stages run in the CPU twin's order
// (len = 1, 2, …, D/2: shuffles for len < 32, registers above) with the same operands, and the
// same final multiply, so the stored bytes equal IndexerHadamardRotate's, bit for bit.
template <bool IN_BF16, int VALS>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    WriteIndexerF8Kernel(int num_tokens, const void* __restrict__ keys, int64_t keys_stride,
                         const int32_t* __restrict__ slots, kvcache::IndexerCacheView cache) {
  int token;
  const int64_t slot = WarpSlot(num_tokens, slots, cache.num_blocks, &token);
  if (slot < 0) return;
  constexpr int D = 32 * VALS;
  const int lane = threadIdx.x % 32;
  const int64_t in = token * keys_stride;
  float v[VALS];
#pragma unroll
  for (int i = 0; i < VALS; ++i) v[i] = LoadIn<IN_BF16>(keys, in + lane + 32 * i);
#pragma unroll
  for (int len = 1; len < 32; len <<= 1) {
#pragma unroll
    for (int i = 0; i < VALS; ++i) {
      const float other = __shfl_xor_sync(0xffffffffu, v[i], len);
      v[i] = lane & len ? other - v[i] : v[i] + other;
    }
  }
#pragma unroll
  for (int m = 1; m < VALS; m <<= 1) {
#pragma unroll
    for (int i = 0; i < VALS; ++i) {
      if (i & m) continue;
      const float lo = v[i], hi = v[i + m];
      v[i] = lo + hi;
      v[i + m] = lo - hi;
    }
  }
  const float inv_sqrt_d = 1.0f / sqrtf(static_cast<float>(D));
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < VALS; ++i) {
    v[i] *= inv_sqrt_d;
    amax = fmaxf(amax, fabsf(v[i]));
  }
  const float scale = kvcache::IndexerF8Scale(WarpMax(amax));
  uint8_t* base = static_cast<uint8_t*>(cache.data);
  if (lane == 0) *reinterpret_cast<float*>(base + kvcache::IndexerScaleOffset(cache, slot)) = scale;
  uint8_t* key = base + kvcache::IndexerKeyOffset(cache, slot);
#pragma unroll
  for (int i = 0; i < VALS; ++i) key[lane + 32 * i] = FloatToF8E4M3(v[i] / scale);
}

template <typename Kernel, typename... Args>
cudaError_t Launch(Kernel kernel, int num_tokens, cudaStream_t stream, Args... args) {
  const dim3 grid((num_tokens + kWarpsPerBlock - 1) / kWarpsPerBlock);
  kernel<<<grid, kWarpsPerBlock * 32, 0, stream>>>(num_tokens, args...);
  return cudaGetLastError();
}

// fp8 keys of D = 32 · VALS lanes, D a power of two in [32, 512].
template <bool IN_BF16>
cudaError_t LaunchIndexerF8(int num_tokens, cudaStream_t stream, const void* keys,
                            int64_t keys_stride, const int32_t* slots,
                            const kvcache::IndexerCacheView& v) {
  switch (v.head_dim) {
    case 32:
      return Launch(WriteIndexerF8Kernel<IN_BF16, 1>, num_tokens, stream, keys, keys_stride, slots,
                    v);
    case 64:
      return Launch(WriteIndexerF8Kernel<IN_BF16, 2>, num_tokens, stream, keys, keys_stride, slots,
                    v);
    case 128:
      return Launch(WriteIndexerF8Kernel<IN_BF16, 4>, num_tokens, stream, keys, keys_stride, slots,
                    v);
    case 256:
      return Launch(WriteIndexerF8Kernel<IN_BF16, 8>, num_tokens, stream, keys, keys_stride, slots,
                    v);
    case 512:
      return Launch(WriteIndexerF8Kernel<IN_BF16, 16>, num_tokens, stream, keys, keys_stride, slots,
                    v);
  }
  return cudaErrorInvalidValue;
}

bool AlignedView(const void* data, int64_t block_stride) {
  return reinterpret_cast<uintptr_t>(data) % 16 == 0 && block_stride % 16 == 0;
}

}  // namespace

cudaError_t WriteLatentCacheCuda(const WriteLatentCacheCudaParams& p, cudaStream_t stream) {
  const kvcache::LatentCacheView& v = p.cache;
  if (!kvcache::ValidateLatentCacheView(v).ok() || !AlignedView(v.data, v.block_stride) ||
      p.num_tokens < 0 || p.rows_stride < v.kv_lora_rank + v.rope_dim ||
      (p.rows_dtype != DType::kBF16 && p.rows_dtype != DType::kF32) ||
      (p.num_tokens > 0 && (p.rows == nullptr || p.slots == nullptr))) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  const bool bf16 = p.rows_dtype == DType::kBF16;
  switch (v.dtype) {
    case LatentCacheDType::kF32:
      return bf16 ? Launch(WriteLatentKernel<true, LatentCacheDType::kF32>, p.num_tokens, stream,
                           p.rows, p.rows_stride, p.slots, v)
                  : Launch(WriteLatentKernel<false, LatentCacheDType::kF32>, p.num_tokens, stream,
                           p.rows, p.rows_stride, p.slots, v);
    case LatentCacheDType::kBF16:
      return bf16 ? Launch(WriteLatentKernel<true, LatentCacheDType::kBF16>, p.num_tokens, stream,
                           p.rows, p.rows_stride, p.slots, v)
                  : Launch(WriteLatentKernel<false, LatentCacheDType::kBF16>, p.num_tokens, stream,
                           p.rows, p.rows_stride, p.slots, v);
    case LatentCacheDType::kF8:
      return bf16 ? Launch(WriteLatentKernel<true, LatentCacheDType::kF8>, p.num_tokens, stream,
                           p.rows, p.rows_stride, p.slots, v)
                  : Launch(WriteLatentKernel<false, LatentCacheDType::kF8>, p.num_tokens, stream,
                           p.rows, p.rows_stride, p.slots, v);
  }
  return cudaErrorInvalidValue;
}

cudaError_t WriteIndexerCacheCuda(const WriteIndexerCacheCudaParams& p, cudaStream_t stream) {
  const kvcache::IndexerCacheView& v = p.cache;
  if (!kvcache::ValidateIndexerCacheView(v).ok() || !AlignedView(v.data, v.block_stride) ||
      p.num_tokens < 0 || p.keys_stride < v.head_dim ||
      (p.keys_dtype != DType::kBF16 && p.keys_dtype != DType::kF32) ||
      (v.dtype == IndexerCacheDType::kF8 && (v.head_dim < 32 || v.head_dim > 512)) ||
      (p.num_tokens > 0 && (p.keys == nullptr || p.slots == nullptr))) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  const bool bf16 = p.keys_dtype == DType::kBF16;
  switch (v.dtype) {
    case IndexerCacheDType::kF32:
      return bf16 ? Launch(WriteIndexerKernel<true, IndexerCacheDType::kF32>, p.num_tokens, stream,
                           p.keys, p.keys_stride, p.slots, v)
                  : Launch(WriteIndexerKernel<false, IndexerCacheDType::kF32>, p.num_tokens, stream,
                           p.keys, p.keys_stride, p.slots, v);
    case IndexerCacheDType::kBF16:
      return bf16 ? Launch(WriteIndexerKernel<true, IndexerCacheDType::kBF16>, p.num_tokens, stream,
                           p.keys, p.keys_stride, p.slots, v)
                  : Launch(WriteIndexerKernel<false, IndexerCacheDType::kBF16>, p.num_tokens,
                           stream, p.keys, p.keys_stride, p.slots, v);
    case IndexerCacheDType::kF8:
      return bf16 ? LaunchIndexerF8<true>(p.num_tokens, stream, p.keys, p.keys_stride, p.slots, v)
                  : LaunchIndexerF8<false>(p.num_tokens, stream, p.keys, p.keys_stride, p.slots, v);
  }
  return cudaErrorInvalidValue;
}

}  // namespace strata::kernels

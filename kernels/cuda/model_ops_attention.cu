// The generic attention kernels of model_ops.h (paged indexer logits and sparse MLA for any shape
// and cache layout) and greedy argmax sampling.
#include <cfloat>

#include "kernels/cuda/model_ops.h"
#include "kernels/cuda/model_ops_common.cuh"
#include "kvcache/block_table.h"
#include "kvcache/cache_view.h"

namespace strata::kernels {
namespace {

using model_ops::BlockMax;
using model_ops::BlockSum;
using model_ops::IsAct;
using model_ops::kThreads;
using model_ops::Ld;
using model_ops::St;
using model_ops::WithType;

constexpr int kMaxSparseTopk = 4096;

// Value d of an indexer key (f32, bf16, or fp8 times the token's scale).
__device__ __forceinline__ float KeyAt(const kvcache::IndexerCacheView& c, const char* key,
                                       float scale, int d) {
  switch (c.dtype) {
    case kvcache::IndexerCacheDType::kF32:
      return reinterpret_cast<const float*>(key)[d];
    case kvcache::IndexerCacheDType::kBF16:
      return BF16ToFloat(reinterpret_cast<const uint16_t*>(key)[d]);
    default:
      return F8E4M3ToFloat(static_cast<uint8_t>(key[d])) * scale;
  }
}

// Lane d of a latent row [c | k_rope] in any layout (layout.h).
__device__ __forceinline__ float LatentAt(const kvcache::LatentCacheView& c, const char* row,
                                          int d) {
  switch (c.dtype) {
    case kvcache::LatentCacheDType::kF32:
      return reinterpret_cast<const float*>(row)[d];
    case kvcache::LatentCacheDType::kBF16:
      return BF16ToFloat(reinterpret_cast<const uint16_t*>(row)[d]);
    default: {
      const int L = c.kv_lora_rank;
      if (d < L) {
        const float* scales =
            reinterpret_cast<const float*>(row + kvcache::LatentF8ScalesOffset(L));
        return F8E4M3ToFloat(static_cast<uint8_t>(row[d])) *
               scales[d / kvcache::kLatentF8GroupSize];
      }
      return BF16ToFloat(
          reinterpret_cast<const uint16_t*>(row + kvcache::LatentF8RopeOffset(L))[d - L]);
    }
  }
}

// CTA (row t, chunk of 64 positions); warp w scores positions w, w + 8, ...; lanes split iD.
template <typename Q>
__global__ void IndexerLogitsKernel(IndexerPagedLogitsParams p, const Q* q_base) {
  const int t = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int seq = p.row_seq[t];
  const bool seq_ok = seq >= 0 && seq < p.block_table.num_seqs;
  const int64_t len = seq_ok ? min(static_cast<int64_t>(p.row_lens[t]), p.max_cols) : 0;
  const int head_dim = p.cache.head_dim;
  const int64_t chunk_end = min(p.max_cols, static_cast<int64_t>(blockIdx.y + 1) * 64);
  const char* base = static_cast<const char*>(p.cache.data);
  for (int64_t pos = static_cast<int64_t>(blockIdx.y) * 64 + warp; pos < chunk_end;
       pos += blockDim.x / 32) {
    float score = -INFINITY;
    if (pos < len) {
      const int32_t* row = kvcache::BlockTableRow(p.block_table, seq);
      const int32_t block = row[pos / kvcache::kBlockTokens];
      if (block >= 0 && block < p.cache.num_blocks) {
        const int64_t slot = kvcache::SlotForPosition(row, pos);
        const char* key = base + kvcache::IndexerKeyOffset(p.cache, slot);
        const float scale =
            p.cache.dtype == kvcache::IndexerCacheDType::kF8
                ? *reinterpret_cast<const float*>(base + kvcache::IndexerScaleOffset(p.cache, slot))
                : 1.0f;
        float total = 0.0f;
        for (int h = 0; h < p.num_heads; ++h) {
          const Q* q = q_base + t * p.q_token_stride + h * p.q_head_stride;
          float dot = 0.0f;
          for (int d = lane; d < head_dim; d += 32) dot += Ld(q, d) * KeyAt(p.cache, key, scale, d);
          for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
          total += p.weights[t * p.weights_token_stride + h] * fmaxf(dot * p.softmax_scale, 0.0f);
        }
        score = total;
      }
    }
    if (lane == 0) p.logits[t * p.logits_stride + pos] = score;
  }
}

// CTA (token t, head h): scores of the K slots in shared memory, then out = softmax · values.
template <typename T>
__global__ void SparseMlaKernel(SparseMlaParams p, const T* q_base, T* out_base) {
  extern __shared__ float smem[];  // [K] scores, then [L + R] q
  __shared__ float scratch[32];
  const int t = blockIdx.x, h = blockIdx.y;
  const int L = p.cache.kv_lora_rank, width = L + p.cache.rope_dim;
  float* scores = smem;
  float* q = smem + p.topk;
  for (int d = threadIdx.x; d < width; d += blockDim.x) {
    q[d] = Ld(q_base, t * p.q_token_stride + h * p.q_head_stride + d);
  }
  __syncthreads();
  const int32_t* slots = p.slots + t * p.slots_token_stride;
  const int64_t num_slots = kvcache::NumSlots(p.cache.num_blocks);
  const char* base = static_cast<const char*>(p.cache.data);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int j = warp; j < p.topk; j += warps) {
    const int32_t slot = slots[j];
    float s = -INFINITY;
    if (slot >= 0 && slot < num_slots) {
      const char* row = base + kvcache::LatentRowOffset(p.cache, slot);
      float dot = 0.0f;
      for (int d = lane; d < width; d += 32) dot += q[d] * LatentAt(p.cache, row, d);
      for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      s = dot * p.scale;
    }
    if (lane == 0) scores[j] = s;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int j = threadIdx.x; j < p.topk; j += blockDim.x) m = fmaxf(m, scores[j]);
  m = BlockMax(m, scratch);
  T* out = out_base + t * p.out_token_stride + h * p.out_head_stride;
  if (m == -INFINITY) {  // no valid slot
    for (int d = threadIdx.x; d < L; d += blockDim.x) St(out, d, 0.0f);
    return;
  }
  float sum = 0.0f;
  for (int j = threadIdx.x; j < p.topk; j += blockDim.x) {
    const float w = scores[j] == -INFINITY ? 0.0f : expf(scores[j] - m);
    scores[j] = w;
    sum += w;
  }
  sum = BlockSum(sum, scratch);  // also orders the score writes before the reads below
  for (int d = threadIdx.x; d < L; d += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < p.topk; ++j) {
      if (scores[j] == 0.0f) continue;
      acc += scores[j] * LatentAt(p.cache, base + kvcache::LatentRowOffset(p.cache, slots[j]), d);
    }
    St(out, d, acc / sum);
  }
}

__global__ void ArgmaxKernel(ArgmaxCudaParams p) {
  __shared__ float best_v[kThreads];
  __shared__ int32_t best_i[kThreads];
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const float* x = p.logits + r * p.logits_stride;
  float bv = -INFINITY;
  int32_t bi = -1;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < p.vocab_size; i += blockDim.x) {
    const float v = x[i];
    if (!isnan(v) && (bi < 0 || v > bv)) {
      bv = v;
      bi = static_cast<int32_t>(i);
    }
    m = fmaxf(m, v);
  }
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = best_v[threadIdx.x + s];
      const int32_t oi = best_i[threadIdx.x + s];
      const int32_t mi = best_i[threadIdx.x];
      if (oi >= 0 &&
          (mi < 0 || ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < mi))) {
        best_v[threadIdx.x] = ov;
        best_i[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  m = BlockMax(m, scratch);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < p.vocab_size; i += blockDim.x) sum += expf(x[i] - m);
  sum = BlockSum(sum, scratch);
  if (threadIdx.x == 0) {
    const int32_t id = best_i[0] < 0 ? 0 : best_i[0];
    p.ids[r] = id;
    p.logprobs[r] = x[id] - m - logf(sum);
  }
}

}  // namespace

cudaError_t IndexerPagedLogitsGenericCuda(const IndexerPagedLogitsParams& p, DType q_dtype,
                                          const void* q, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.num_heads <= 0 || p.max_cols < 0 || p.logits_stride < p.max_cols ||
      p.cache.head_dim <= 0 || !IsAct(q_dtype)) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0 || p.max_cols == 0) return cudaSuccess;
  if (q == nullptr || p.weights == nullptr || p.row_seq == nullptr || p.row_lens == nullptr ||
      p.block_table.table == nullptr || p.cache.data == nullptr || p.logits == nullptr) {
    return cudaErrorInvalidValue;
  }
  const dim3 grid(static_cast<unsigned>(p.num_tokens),
                  static_cast<unsigned>((p.max_cols + 63) / 64));
  return WithType(q_dtype, [&](auto t) {
    using T = decltype(t);
    IndexerLogitsKernel<T><<<grid, kThreads, 0, stream>>>(p, static_cast<const T*>(q));
    return cudaGetLastError();
  });
}

cudaError_t IndexerPagedLogitsGenericCuda(const IndexerPagedLogitsParams& p, cudaStream_t stream) {
  return IndexerPagedLogitsGenericCuda(p, DType::kF32, p.q, stream);
}

cudaError_t SparseMlaGenericCuda(const SparseMlaParams& p, DType io_dtype, const void* q, void* out,
                                 cudaStream_t stream) {
  const int width = p.cache.kv_lora_rank + p.cache.rope_dim;
  if (p.num_tokens < 0 || p.num_heads < 0 || p.topk < 0 || p.topk > kMaxSparseTopk ||
      p.cache.kv_lora_rank <= 0 || p.q_head_stride < width || !IsAct(io_dtype) ||
      (p.cache.dtype == kvcache::LatentCacheDType::kF8 &&
       p.cache.kv_lora_rank % kvcache::kLatentF8GroupSize != 0)) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0 || p.num_heads == 0) return cudaSuccess;
  if (q == nullptr || out == nullptr || (p.topk > 0 && p.slots == nullptr) ||
      p.cache.data == nullptr) {
    return cudaErrorInvalidValue;
  }
  const size_t smem = (static_cast<size_t>(p.topk) + width) * sizeof(float);
  const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_heads));
  return WithType(io_dtype, [&](auto t) {
    using T = decltype(t);
    SparseMlaKernel<T>
        <<<grid, kThreads, smem, stream>>>(p, static_cast<const T*>(q), static_cast<T*>(out));
    return cudaGetLastError();
  });
}

cudaError_t SparseMlaGenericCuda(const SparseMlaParams& p, cudaStream_t stream) {
  return SparseMlaGenericCuda(p, DType::kF32, p.q, p.out, stream);
}

cudaError_t ArgmaxCuda(const ArgmaxCudaParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.vocab_size <= 0 || p.logits_stride < p.vocab_size) {
    return cudaErrorInvalidValue;
  }
  if (p.rows == 0) return cudaSuccess;
  if (p.logits == nullptr || p.ids == nullptr || p.logprobs == nullptr) {
    return cudaErrorInvalidValue;
  }
  ArgmaxKernel<<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace strata::kernels

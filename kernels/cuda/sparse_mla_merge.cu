// The split merge of the sparse MLA decode (MergeSplitsCuda, sparse_mla.h).
#include <climits>
#include <cstdint>

#include "kernels/cuda/sm80.cuh"
#include "kernels/cuda/sparse_mla.h"

namespace strata::kernels {
namespace {

constexpr int kMergeThreads = 256;
static_assert(kMaxSparseMlaSplits <= kMergeThreads, "one split lse per thread");

// Block (token · nH + head, column block), LANES × (256 / LANES) threads, LANES = splits summed in
// parallel per column (up to 8). The split lse values become weights exp(lse_s − max) in shared
// memory; thread (g, c) sums the weighted partials of splits g, g + LANES, … for its 4 dims with
// every load independent (all in flight at once, not one split after another: decode at small
// batch has many splits and few (token, head) blocks, so the merge is latency-bound), then the
// LANES partial sums meet in shared memory. Empty splits (lse −inf) have weight 0 and their
// partial is not read.
template <int LANES>
__global__ void __launch_bounds__(kMergeThreads) MergeSplitsKernel(const MergeSplitsCudaParams p) {
  constexpr int kSplitLanes = LANES;
  constexpr int kColVecs = kMergeThreads / kSplitLanes;  // float4 columns per block
  constexpr int kColsPerBlock = kColVecs * 4;
  __shared__ float weight[kMaxSparseMlaSplits];
  __shared__ float warp_part[kMergeThreads / 32];
  __shared__ float4 sums[kSplitLanes][kColVecs];
  const int64_t th = blockIdx.x;  // token · nH + head
  const int t = static_cast<int>(th / p.num_heads), h = static_cast<int>(th % p.num_heads);
  const int64_t split_rows = int64_t{p.num_tokens} * p.num_heads;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int S = p.num_splits;  // <= kMergeThreads

  const float ls = tid < S ? p.partial_lse[tid * split_rows + th] : -INFINITY;
  float m = ls;
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (lane == 0) warp_part[warp] = m;
  __syncthreads();
  m = warp_part[0];
  for (int w = 1; w < kMergeThreads / 32; ++w) m = fmaxf(m, warp_part[w]);
  const float wt = ls == -INFINITY ? 0.0f : __expf(ls - m);
  if (tid < S) weight[tid] = wt;
  float sum = wt;
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  __syncthreads();  // every thread has read warp_part's maxima
  if (lane == 0) warp_part[warp] = sum;
  __syncthreads();
  sum = 0.0f;
  for (int w = 0; w < kMergeThreads / 32; ++w) sum += warp_part[w];
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;

  const int g = tid / kColVecs, c = tid % kColVecs;
  const int d = blockIdx.y * kColsPerBlock + c * 4;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (d < p.head_dim) {
    const float* part = p.partial_out + th * p.head_dim + d;
#pragma unroll 8
    for (int s = g; s < S; s += kSplitLanes) {
      const float w = weight[s];  // 0: an empty split, whose partial is not read (predicated)
      const float4 v =
          w != 0.0f ? __ldcs(reinterpret_cast<const float4*>(part + s * split_rows * p.head_dim))
                    : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      acc.x += w * v.x;
      acc.y += w * v.y;
      acc.z += w * v.z;
      acc.w += w * v.w;
    }
  }
  sums[g][c] = acc;
  __syncthreads();
  if (g == 0 && d < p.head_dim) {
    for (int j = 1; j < kSplitLanes; ++j) {
      const float4 v = sums[j][c];
      acc.x += v.x;
      acc.y += v.y;
      acc.z += v.z;
      acc.w += v.w;
    }
    uint16_t* out = static_cast<uint16_t*>(p.out) + t * p.out_token_stride + h * p.out_head_stride;
    uint32_t* dst = reinterpret_cast<uint32_t*>(out + d);
    dst[0] = sm80::PackBf16x2(acc.x * inv, acc.y * inv);
    dst[1] = sm80::PackBf16x2(acc.z * inv, acc.w * inv);
  }
  if (p.lse != nullptr && blockIdx.y == 0 && tid == 0) {
    p.lse[t * p.lse_token_stride + h] = sum > 0.0f ? m + __logf(sum) : -INFINITY;
  }
}

bool Aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

cudaError_t MergeSplitsCuda(const MergeSplitsCudaParams& p, cudaStream_t stream) {
  if (p.num_splits < 1 || p.num_tokens < 0 || p.num_heads <= 0 || p.head_dim <= 0 ||
      p.head_dim % 4 != 0 || p.out_token_stride < 0 || p.out_head_stride < p.head_dim ||
      p.out_token_stride % 2 != 0 || p.out_head_stride % 2 != 0 ||
      (p.lse != nullptr && p.lse_token_stride < p.num_heads)) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.partial_out == nullptr || p.partial_lse == nullptr || p.out == nullptr ||
      !Aligned(p.partial_out, 16) || !Aligned(p.out, 4)) {
    return cudaErrorInvalidValue;
  }
  const int64_t blocks = int64_t{p.num_tokens} * p.num_heads;
  if (blocks > INT_MAX || p.num_splits > kMaxSparseMlaSplits) return cudaErrorInvalidValue;
  const auto launch = [&](auto kernel, int lanes) {
    const int cols_per_block = kMergeThreads / lanes * 4;
    const dim3 grid(static_cast<unsigned>(blocks),
                    static_cast<unsigned>((p.head_dim + cols_per_block - 1) / cols_per_block));
    kernel<<<grid, kMergeThreads, 0, stream>>>(p);
    return cudaGetLastError();
  };
  // Split lanes: up to 8 and no more than the splits, and at most ~2048 (token, head, lane) rows
  // in all: the lanes are for small batches, where few (token, head) blocks must keep many loads
  // in flight; with many heads or tokens each block's lse work repeated over more column blocks
  // only costs (measured: 128 heads at batch 8 went 44 -> 49 us with 8 lanes).
  int lanes = 8;
  while (lanes > 1 && (lanes > p.num_splits || blocks * lanes > 2048)) lanes /= 2;
  if (lanes == 8) return launch(MergeSplitsKernel<8>, 8);
  if (lanes == 4) return launch(MergeSplitsKernel<4>, 4);
  if (lanes == 2) return launch(MergeSplitsKernel<2>, 2);
  return launch(MergeSplitsKernel<1>, 1);
}

}  // namespace strata::kernels

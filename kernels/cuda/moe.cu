#include <algorithm>
#include <cmath>

#include "kernels/cpu/routing_sigmoid.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/moe_gemm.cuh"

namespace strata::kernels {
namespace {

using moe_internal::GemmArgs;
using moe_internal::GemmShape;
using moe_internal::GroupedGemmKernel;

constexpr unsigned kFull = 0xffffffffu;

// ---------------------------------------------------------------------------------------------
// Routing: one warp per token; lane l holds experts l, l + 32, ... (up to 8 of them).

constexpr int kRouteWarps = 4;
constexpr int kRoutePerLane = kMoeRoutingMaxExperts / 32;

__device__ __forceinline__ float OrderKey(float v) { return isnan(v) ? -INFINITY : v; }

// (v, i) ranks above (bv, bi): larger value, or equal value and lower index; i < 0 is "none".
__device__ __forceinline__ bool Better(float v, int i, float bv, int bi) {
  return i >= 0 && (bi < 0 || v > bv || (v == bv && i < bi));
}

__device__ __forceinline__ void WarpBest(float& v, int& i) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, v, o);
    const int oi = __shfl_xor_sync(kFull, i, o);
    if (Better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

__global__ void __launch_bounds__(kRouteWarps * 32)
    MoeRoutingKernel(const MoeRoutingParams p, int64_t stride) {
  __shared__ float choice_s[kRouteWarps][kMoeRoutingMaxExperts];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kRouteWarps + warp;
  if (t >= p.num_tokens) return;  // whole warps leave; nothing below syncs the CTA
  const int num_experts = static_cast<int>(p.num_experts), top_k = static_cast<int>(p.top_k);
  const int n_group = static_cast<int>(p.n_group), group_size = num_experts / n_group;
  const float* logits = p.logits + t * stride;
  float score[kRoutePerLane], choice[kRoutePerLane];
#pragma unroll
  for (int j = 0; j < kRoutePerLane; ++j) {
    const int e = j * 32 + lane;
    score[j] = 0.0f;
    choice[j] = -INFINITY;
    if (e < num_experts) {
      score[j] = routing::Sigmoid(logits[e]);
      const float bias = p.correction_bias == nullptr ? 0.0f : p.correction_bias[e];
      choice[j] = OrderKey(routing::Add(score[j], bias));
      choice_s[warp][e] = choice[j];
    }
  }
  __syncwarp();
  if (p.topk_group < p.n_group) {
    // Group score: the sum of its two largest choice values, scanned in index order as the CPU
    // twin does. Lane g scores group g.
    float gscore = -INFINITY;
    if (lane < n_group) {
      const float* c = choice_s[warp] + lane * group_size;
      float first = -INFINITY, second = -INFINITY;
      for (int i = 0; i < group_size; ++i) {
        if (c[i] > first) {
          second = first;
          first = c[i];
        } else if (c[i] > second) {
          second = c[i];
        }
      }
      gscore = OrderKey(routing::Add(first, second));
    }
    uint32_t kept = 0;
    bool taken = false;
    for (int s = 0; s < p.topk_group; ++s) {
      float v = gscore;
      int i = lane < n_group && !taken ? lane : -1;
      WarpBest(v, i);
      kept |= 1u << i;
      if (lane == i) taken = true;
    }
#pragma unroll
    for (int j = 0; j < kRoutePerLane; ++j) {
      const int e = j * 32 + lane;
      if (e < num_experts && ((kept >> (e / group_size)) & 1u) == 0) choice[j] = -INFINITY;
    }
  }
  uint32_t taken_bits = 0;  // bit j: expert j · 32 + lane is chosen
  int my_id = -1;
  float my_w = 0.0f;
  for (int k = 0; k < top_k; ++k) {
    float v = -INFINITY;
    int i = -1;
#pragma unroll
    for (int j = 0; j < kRoutePerLane; ++j) {
      const int e = j * 32 + lane;
      if (e < num_experts && ((taken_bits >> j) & 1u) == 0 && Better(choice[j], e, v, i)) {
        v = choice[j];
        i = e;
      }
    }
    WarpBest(v, i);
    const int owner = i & 31, slot = i >> 5;
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < kRoutePerLane; ++j) {
      if (j == slot) s = score[j];
    }
    s = __shfl_sync(kFull, s, owner);
    if (lane == owner) taken_bits |= 1u << slot;
    if (lane == k) {
      my_id = i;
      my_w = s;
    }
  }
  float sum = 0.0f;  // in k order, as the CPU twin
  for (int k = 0; k < top_k; ++k) sum = routing::Add(sum, __shfl_sync(kFull, my_w, k));
  if (lane < top_k) {
    float w = my_w;
    if (p.norm_topk_prob) w = routing::Div(w, routing::Add(sum, 1e-20f));
    w = routing::Mul(w, p.routed_scaling_factor);
    p.expert_ids[t * top_k + lane] = my_id;
    p.weights[t * top_k + lane] = w;
  }
}

// ---------------------------------------------------------------------------------------------
// Expert FFN: plan (counting sort by expert), two grouped GEMMs, combine.

constexpr int kPlanThreads = 1024;
static_assert(kMoeExpertsMaxExperts <= kPlanThreads);
constexpr int64_t kOutBudgetBytes = int64_t{128} << 20;  // fp32 pair rows of one hidden chunk
constexpr int kCombineThreads = 256;

__device__ __forceinline__ int WarpInclusiveSum(int v) {
  const int lane = threadIdx.x & 31;
  for (int o = 1; o < 32; o <<= 1) {
    const int x = __shfl_up_sync(kFull, v, o);
    if (lane >= o) v += x;
  }
  return v;
}

// One CTA. Pair p = t · K + k of a valid expert e gets sorted row pos in e's segment:
// row_token[pos] = t, pair_row[p] = pos (−1 for an invalid id). Rows within a segment are in no
// particular order (each row's results do not depend on its neighbours).
__global__ void __launch_bounds__(kPlanThreads)
    MoePlanKernel(const int32_t* ids, int pairs, int top_k, int num_experts, int tile_rows,
                  int32_t* seg_start, int32_t* tile_start, int32_t* row_token, int32_t* pair_row) {
  __shared__ int count[kMoeExpertsMaxExperts], cursor[kMoeExpertsMaxExperts];
  __shared__ int warp_rows[kPlanThreads / 32], warp_tiles[kPlanThreads / 32];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int e = tid; e < num_experts; e += kPlanThreads) count[e] = 0;
  __syncthreads();
  for (int p = tid; p < pairs; p += kPlanThreads) {
    const int e = ids[p];
    if (e >= 0 && e < num_experts) atomicAdd(&count[e], 1);
  }
  __syncthreads();
  const int rows = tid < num_experts ? count[tid] : 0;
  const int tiles = (rows + tile_rows - 1) / tile_rows;
  int rows_incl = WarpInclusiveSum(rows), tiles_incl = WarpInclusiveSum(tiles);
  if (lane == 31) {
    warp_rows[warp] = rows_incl;
    warp_tiles[warp] = tiles_incl;
  }
  __syncthreads();
  for (int w = 0; w < warp; ++w) {
    rows_incl += warp_rows[w];
    tiles_incl += warp_tiles[w];
  }
  if (tid < num_experts) {
    seg_start[tid] = cursor[tid] = rows_incl - rows;
    tile_start[tid] = tiles_incl - tiles;
  }
  if (tid == num_experts - 1) {
    seg_start[num_experts] = rows_incl;
    tile_start[num_experts] = tiles_incl;
  }
  __syncthreads();
  for (int p = tid; p < pairs; p += kPlanThreads) {
    const int e = ids[p];
    int pos = -1;
    if (e >= 0 && e < num_experts) {
      pos = atomicAdd(&cursor[e], 1);
      row_token[pos] = p / top_k;
    }
    pair_row[p] = pos;
  }
}

// y[t, h0 + j] = bf16(Σ_k w[t,k] · pair_rows[pair_row[t,k], j]) for j in [0, cols), 4 per thread
// (or the f32 sum into y_f32 when that is set).
__global__ void __launch_bounds__(kCombineThreads)
    MoeCombineKernel(const float* pair_rows, int64_t rows_stride, const int32_t* pair_row,
                     const float* weights, int top_k, int64_t h0, int64_t cols, uint16_t* y,
                     float* y_f32, int64_t y_stride) {
  const int64_t t = blockIdx.x;
  const int64_t j = (static_cast<int64_t>(blockIdx.y) * kCombineThreads + threadIdx.x) * 4;
  if (j >= cols) return;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int k = 0; k < top_k; ++k) {
    const int32_t r = pair_row[t * top_k + k];
    if (r < 0) continue;
    const float w = weights[t * top_k + k];
    const float4 o = *reinterpret_cast<const float4*>(pair_rows + r * rows_stride + j);
    acc.x = fmaf(w, o.x, acc.x);
    acc.y = fmaf(w, o.y, acc.y);
    acc.z = fmaf(w, o.z, acc.z);
    acc.w = fmaf(w, o.w, acc.w);
  }
  if (y_f32 != nullptr) {
    *reinterpret_cast<float4*>(y_f32 + t * y_stride + h0 + j) = acc;
    return;
  }
  uint32_t lo, hi;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(lo) : "f"(acc.y), "f"(acc.x));
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(hi) : "f"(acc.w), "f"(acc.z));
  *reinterpret_cast<uint2*>(y + t * y_stride + h0 + j) = make_uint2(lo, hi);
}

// Workspace carving, every piece 256-byte aligned.
struct Layout {
  int64_t pairs = 0, chunk = 0;
  size_t seg_start = 0, tile_start = 0, row_token = 0, pair_row = 0, h = 0, pair_rows = 0;
  size_t total = 0;
};

size_t Align(size_t v) { return (v + 255) / 256 * 256; }

// Hidden columns per down/combine pass: all of H unless the fp32 pair rows would exceed the
// budget; then a multiple of 128.
int64_t ChunkCols(int64_t pairs, int64_t hidden) {
  if (pairs == 0 || pairs * hidden * 4 <= kOutBudgetBytes) return hidden;
  const int64_t cols = std::max<int64_t>(128, kOutBudgetBytes / (pairs * 4) / 128 * 128);
  return std::min(cols, hidden);
}

Layout MakeLayout(int64_t tokens, int64_t top_k, int64_t experts, int64_t hidden, int64_t inter) {
  Layout l;
  l.pairs = tokens * top_k;
  l.chunk = ChunkCols(l.pairs, hidden);
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t here = at;
    at += Align(bytes);
    return here;
  };
  l.seg_start = take((experts + 1) * 4);
  l.tile_start = take((experts + 1) * 4);
  l.row_token = take(l.pairs * 4);
  l.pair_row = take(l.pairs * 4);
  l.h = take(l.pairs * inter * 2);
  l.pair_rows = take(l.pairs * l.chunk * 4);
  l.total = at;
  return l;
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool GATE_UP, int MIN_BLOCKS>
cudaError_t LaunchGemm(const GemmArgs& a, int64_t max_tiles, cudaStream_t stream) {
  using S = GemmShape<BM, BN, WARPS_M, WARPS_N, STAGES, GATE_UP>;
  auto kernel = GroupedGemmKernel<BM, BN, WARPS_M, WARPS_N, STAGES, GATE_UP, MIN_BLOCKS>;
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes);
      e != cudaSuccess) {
    return e;
  }
  const dim3 grid(static_cast<unsigned>(max_tiles),
                  static_cast<unsigned>((a.n_cols + BN - 1) / BN));
  kernel<<<grid, S::kThreads, S::kSmemBytes, stream>>>(a);
  return cudaGetLastError();
}

// Tile shapes. Decode (few rows per expert): 16-row tiles, 4 warps side by side over the columns,
// 4-stage pipelines to keep weight bytes in flight, 3 CTAs per SM; the down projection takes 128
// columns so that a batch-1 step (8 experts × 48 tiles) fits in one wave. Prefill: 64-row tiles
// with 4 warps (2 × 2) or 128-row tiles with 8 warps (2 × 4), 3-stage pipelines.
template <int BM>
cudaError_t LaunchGateUp(const GemmArgs& a, int64_t max_tiles, cudaStream_t stream) {
  if constexpr (BM == 16) {
    return LaunchGemm<16, 64, 1, 4, 4, true, 3>(a, max_tiles, stream);
  } else if constexpr (BM == 64) {
    return LaunchGemm<64, 64, 2, 2, 3, true, 3>(a, max_tiles, stream);
  } else {
    return LaunchGemm<128, 64, 2, 4, 3, true, 2>(a, max_tiles, stream);
  }
}

template <int BM>
cudaError_t LaunchDown(const GemmArgs& a, int64_t max_tiles, cudaStream_t stream) {
  if constexpr (BM == 16) {
    return LaunchGemm<16, 128, 1, 4, 4, false, 3>(a, max_tiles, stream);
  } else if constexpr (BM == 64) {
    return LaunchGemm<64, 128, 2, 2, 3, false, 3>(a, max_tiles, stream);
  } else {
    return LaunchGemm<128, 128, 2, 4, 3, false, 2>(a, max_tiles, stream);
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <int BM>
cudaError_t RunExperts(const MoeExpertsParams& p, const Layout& l, uint8_t* ws, int64_t x_stride,
                       int64_t y_stride, cudaStream_t stream) {
  auto* seg_start = reinterpret_cast<int32_t*>(ws + l.seg_start);
  auto* tile_start = reinterpret_cast<int32_t*>(ws + l.tile_start);
  auto* row_token = reinterpret_cast<int32_t*>(ws + l.row_token);
  auto* pair_row = reinterpret_cast<int32_t*>(ws + l.pair_row);
  auto* h = reinterpret_cast<uint16_t*>(ws + l.h);
  auto* pair_rows = reinterpret_cast<float*>(ws + l.pair_rows);
  const int pairs = static_cast<int>(l.pairs), experts = static_cast<int>(p.num_experts);
  MoePlanKernel<<<1, kPlanThreads, 0, stream>>>(p.expert_ids, pairs, static_cast<int>(p.top_k),
                                                experts, BM, seg_start, tile_start, row_token,
                                                pair_row);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  // Upper bound of the row tiles: every non-empty expert wastes at most one partial tile.
  const int64_t max_tiles = (l.pairs + BM - 1) / BM + std::min<int64_t>(p.num_experts, l.pairs);
  GemmArgs gate_up{.num_experts = experts,
                   .seg_start = seg_start,
                   .tile_start = tile_start,
                   .row_token = row_token,
                   .a = p.x,
                   .a_stride = x_stride,
                   .b0 = p.gate,
                   .b1 = p.up,
                   .b_stride = p.hidden,
                   .b_row0 = 0,
                   .n_cols = p.inter,
                   .out = h,
                   .out_stride = p.inter};
  if (cudaError_t e = LaunchGateUp<BM>(gate_up, max_tiles, stream); e != cudaSuccess) return e;
  for (int64_t h0 = 0; h0 < p.hidden; h0 += l.chunk) {
    const int64_t cols = std::min(l.chunk, p.hidden - h0);
    GemmArgs down{.num_experts = experts,
                  .seg_start = seg_start,
                  .tile_start = tile_start,
                  .row_token = row_token,
                  .a = h,
                  .a_stride = p.inter,
                  .b0 = p.down,
                  .b1 = nullptr,
                  .b_stride = p.inter,
                  .b_row0 = h0,
                  .n_cols = cols,
                  .out = pair_rows,
                  .out_stride = l.chunk};
    if (cudaError_t e = LaunchDown<BM>(down, max_tiles, stream); e != cudaSuccess) return e;
    const dim3 grid(static_cast<unsigned>(p.num_tokens),
                    static_cast<unsigned>((cols / 4 + kCombineThreads - 1) / kCombineThreads));
    MoeCombineKernel<<<grid, kCombineThreads, 0, stream>>>(pair_rows, l.chunk, pair_row, p.weights,
                                                           static_cast<int>(p.top_k), h0, cols, p.y,
                                                           p.y_f32, y_stride);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t MoeRoutingCuda(const MoeRoutingParams& p, cudaStream_t stream) {
  const int64_t stride = p.logits_stride == 0 ? p.num_experts : p.logits_stride;
  const bool drop = p.topk_group < p.n_group;
  if (p.num_tokens < 0 || p.num_experts < 1 || p.num_experts > kMoeRoutingMaxExperts ||
      p.n_group < 1 || p.num_experts % p.n_group != 0 || p.topk_group < 1 ||
      p.topk_group > p.n_group || p.top_k < 1 || p.top_k > p.num_experts ||
      p.top_k > kMoeRoutingMaxTopK || stride < p.num_experts ||
      (drop && (p.n_group > kMoeRoutingMaxGroups || p.num_experts / p.n_group < 2))) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.logits == nullptr || p.expert_ids == nullptr || p.weights == nullptr ||
      p.num_tokens > (int64_t{1} << 31)) {
    return cudaErrorInvalidValue;
  }
  const int64_t blocks = (p.num_tokens + kRouteWarps - 1) / kRouteWarps;
  MoeRoutingKernel<<<static_cast<unsigned>(blocks), kRouteWarps * 32, 0, stream>>>(p, stride);
  return cudaGetLastError();
}

size_t MoeExpertsWorkspaceBytes(int64_t num_tokens, int64_t top_k, int64_t num_experts,
                                int64_t hidden, int64_t inter) {
  if (num_tokens < 0 || top_k < 1 || num_experts < 1 || hidden < 1 || inter < 1) return 0;
  return MakeLayout(num_tokens, top_k, num_experts, hidden, inter).total;
}

cudaError_t MoeExpertsCuda(const MoeExpertsParams& p, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream, int tile_rows) {
  const int64_t x_stride = p.x_stride == 0 ? p.hidden : p.x_stride;
  const int64_t y_stride = p.y_stride == 0 ? p.hidden : p.y_stride;
  if (p.num_tokens < 0 || p.hidden < 64 || p.hidden % 64 != 0 || p.inter < 64 ||
      p.inter % 64 != 0 || p.num_experts < 1 || p.num_experts > kMoeExpertsMaxExperts ||
      p.top_k < 1 || x_stride < p.hidden || x_stride % 8 != 0 || y_stride < p.hidden ||
      y_stride % 8 != 0 || p.num_tokens * p.top_k > (int64_t{1} << 30) ||
      (tile_rows != 0 && tile_rows != 16 && tile_rows != 64 && tile_rows != 128)) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0) return cudaSuccess;
  const Layout l = MakeLayout(p.num_tokens, p.top_k, p.num_experts, p.hidden, p.inter);
  const void* y = p.y_f32 != nullptr ? static_cast<const void*>(p.y_f32) : p.y;
  if (p.x == nullptr || y == nullptr || p.expert_ids == nullptr || p.weights == nullptr ||
      p.gate == nullptr || p.up == nullptr || p.down == nullptr || !Aligned16(p.x) ||
      !Aligned16(y) || workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % 256 != 0 ||
      workspace_bytes < l.total) {
    return cudaErrorInvalidValue;
  }
  if (tile_rows == 0) tile_rows = l.pairs <= 32 * p.num_experts ? 16 : 128;
  auto* ws = static_cast<uint8_t*>(workspace);
  switch (tile_rows) {
    case 16:
      return RunExperts<16>(p, l, ws, x_stride, y_stride, stream);
    case 64:
      return RunExperts<64>(p, l, ws, x_stride, y_stride, stream);
    default:
      return RunExperts<128>(p, l, ws, x_stride, y_stride, stream);
  }
}

}  // namespace strata::kernels

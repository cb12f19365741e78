// Sparse MLA kernel, private to sparse_mla.cu (see sparse_mla.h for the contract and the shape of
// the work).
//
// One CTA = (token, head group of HPC heads, split of the top-k), 8 warps. Per tile of 32 gathered
// cache rows (cp.async, `stages` deep; fp8 rows are dequantised to a bf16 tile first):
//   (b) S = Q·Kᵀ, split over the QK warps by head block (16 or 32 heads) and by k (2 or 4 parts
//       of the 576 dims): every Q and K element is read from shared memory once per tile, and
//       each warp has 4 to 8 independent mma chains. Parts > 0 leave their partial S in the
//       exchange.
//   (c) the k part 0 warps add the partials, mask padding rows to −inf and run the online softmax
//       over the tile's 32 rows within the warp (running max and sum in registers): P = exp2(S −
//       m_new) rounded to bf16 into shared memory, alpha = exp2(m_old − m_new) per head. A head
//       with nothing valid yet uses 0 as its reference, so no −inf − −inf.
//   (d) every warp rescales its accumulator by alpha and adds P·V for its 64 of the 512 value
//       dimensions, all heads of the group.
// Three barriers per tile. A tile whose 32 slots are all padding is skipped.
#ifndef STRATA_KERNELS_CUDA_SPARSE_MLA_KERNEL_CUH_
#define STRATA_KERNELS_CUDA_SPARSE_MLA_KERNEL_CUH_

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/cuda/sm80.cuh"
#include "kernels/cuda/sparse_mla_layout.h"

namespace strata::kernels::sparse_mla {

inline constexpr float kLog2E = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;
inline constexpr int kBf16RowBytes = kD * 2;               // 1152
inline constexpr int kBf16RowChunks = kBf16RowBytes / 16;  // 72
inline constexpr int kF8RowChunks = kF8RowBytes / 16;      // 41

struct KernelArgs {
  int num_tokens;
  int num_heads;
  int topk;
  int head_groups;
  int num_splits;
  int chunk;
  int stages;
  float scale_log2;  // softmax scale · log2(e)
  const uint16_t* q;
  int64_t q_token_stride;
  int64_t q_head_stride;
  const int32_t* slots;
  int64_t slots_token_stride;
  const uint8_t* cache;
  int64_t block_stride;
  int64_t num_slots;
  uint16_t* out;  // direct output (num_splits == 1)
  int64_t out_token_stride;
  int64_t out_head_stride;
  float* lse;
  int64_t lse_token_stride;
  float* part_out;  // [S, T, nH, L] (num_splits > 1)
  float* part_lse;  // [S, T, nH]
  SmemLayout smem;
};

__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float QuadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float QuadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Eight fp8 E4M3 bytes (a uint2) times `scale` → eight bf16 (a uint4).
__device__ __forceinline__ uint4 DequantF8x8(uint2 v, float scale) {
  uint32_t words[2] = {v.x, v.y};
  uint32_t packed[4];
#pragma unroll
  for (int w = 0; w < 2; ++w) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const __nv_fp8x2_storage_t pair =
          static_cast<__nv_fp8x2_storage_t>((words[w] >> (16 * half)) & 0xffffu);
      const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3)));
      packed[w * 2 + half] = sm80::PackBf16x2(f.x * scale, f.y * scale);
    }
  }
  return make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

// fp8 rows of a stage ([kTileRows][656] bytes) → bf16 rows [kTileRows][kRowElems]. A warp takes
// one row at a time, lane c dequantising 16 consecutive fp8 values (consecutive 16-byte reads),
// then 8 threads per row copy the 64 bf16 rope values.
template <int THREADS>
__device__ __forceinline__ void DequantTile(const uint8_t* stage, uint16_t* kv, int tid) {
  constexpr int kChunksPerRow = kL / 16;  // 32
#pragma unroll
  for (int i = 0; i < kTileRows * kChunksPerRow / THREADS; ++i) {
    const int task = tid + i * THREADS;
    const int r = task / kChunksPerRow, c = task % kChunksPerRow;
    const uint8_t* row = stage + r * kF8RowBytes;
    const float scale = *reinterpret_cast<const float*>(row + kL + (c * 16 / 128) * 4);
    const uint4 raw = *reinterpret_cast<const uint4*>(row + c * 16);
    uint16_t* dst = kv + r * kRowElems + c * 16;
    *reinterpret_cast<uint4*>(dst) = DequantF8x8(make_uint2(raw.x, raw.y), scale);
    *reinterpret_cast<uint4*>(dst + 8) = DequantF8x8(make_uint2(raw.z, raw.w), scale);
  }
  static_assert(kTileRows * kR * 2 / 16 <= THREADS, "one 16-byte rope chunk per thread");
  if (tid >= kTileRows * kR * 2 / 16) return;
  const int r = tid / 8, part = tid % 8;
  const int rope_at = kL + (kL / 128) * 4;
  *reinterpret_cast<uint4*>(kv + r * kRowElems + kL + part * 8) =
      *reinterpret_cast<const uint4*>(stage + r * kF8RowBytes + rope_at + part * 16);
}

template <int HPC, bool FP8>
__global__ void __launch_bounds__(kThreads, HPC == 16 ? 2 : 1) SparseMlaKernel(const KernelArgs a) {
  constexpr int kSlotWarp = kWarps - 1;           // idle in QK: the slot prefetcher
  constexpr int kHeadBlock = QkHeadBlock(HPC);    // heads per QK warp: 16 or 32
  constexpr int kHeadBlocks = QkHeadBlocks(HPC);  // 1 or 2
  constexpr int kKParts = QkKParts(HPC);          // k split of QK: 2 or 4
  constexpr int kQkWarps = kHeadBlocks * kKParts;
  constexpr int kMW = kHeadBlock / 16;        // m16 tiles per QK warp
  constexpr int kKSteps = kD / 16 / kKParts;  // k16 steps per QK warp
  constexpr int kMT = HPC / 16;               // m16 tiles of the PV product
  constexpr int kDPW = kL / kWarps;           // value dims per PV warp: 64
  constexpr int kNT = kDPW / 8;               // n8 tiles per PV warp: 8
  static_assert(kQkWarps < kWarps && (kD / 16) % kKParts == 0, "QK warp tiling");
  static_assert(kNT % 2 == 0, "V is read two n8 tiles at a time");
  static_assert(kTileRows == 32, "a QK warp covers the 32 rows of a tile as 4 n8 tiles");

  extern __shared__ __align__(16) uint8_t smem[];
  const SmemLayout& lay = a.smem;
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem + lay.q);
  uint8_t* stage_s = smem + lay.stage;
  uint16_t* p_s = reinterpret_cast<uint16_t*>(smem + lay.p);
  int64_t* slot_s = reinterpret_cast<int64_t*>(smem + lay.slots);
  float4* exchange = reinterpret_cast<float4*>(smem + lay.exchange);
  float* alpha = reinterpret_cast<float*>(smem + lay.alpha);
  float* m_final = reinterpret_cast<float*>(smem + lay.m_final);
  float* l_final = reinterpret_cast<float*>(smem + lay.l_final);

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int group = blockIdx.x % a.head_groups;
  const int rest = blockIdx.x / a.head_groups;
  const int split = rest % a.num_splits;
  const int token = rest / a.num_splits;
  const int begin = min(split * a.chunk, a.topk);
  const int end = min(begin + a.chunk, a.topk);
  const int num_tiles = (end - begin + kTileRows - 1) / kTileRows;
  const int head0 = group * HPC;

  // Rows of a tile as byte offsets into the cache (−1: padding, past the chunk's end, or a slot
  // outside the pool), computed by warp kSlotWarp into a ring of stages + 1 tiles: tile j's are
  // written at the end of iteration j − stages (the slot load's latency hidden behind that
  // iteration's work) and read by the loads issued in iteration j − stages + 1 and by the masks
  // of iteration j.
  const int32_t* slots_row = a.slots + token * a.slots_token_stride;
  const int ring = a.stages + 1;
  constexpr int kSrcRowBytes = FP8 ? kF8RowBytes : kBf16RowBytes;
  const auto fetch_row = [&](int tile) -> int64_t {
    const int i = begin + tile * kTileRows + lane;
    if (tile >= num_tiles || i >= end) return -1;
    const int32_t s = slots_row[i];
    if (s < 0 || s >= a.num_slots) return -1;
    return (s / 64) * a.block_stride + (s % 64) * kSrcRowBytes;
  };
  if (warp == kSlotWarp) {
    for (int j = 0; j < a.stages; ++j) slot_s[(j % ring) * kTileRows + lane] = fetch_row(j);
  }
  // q rows of the head group (zeros past num_heads): the first cp.async group.
  const uint16_t* q_tok = a.q + token * a.q_token_stride;
  for (int i = tid; i < HPC * kBf16RowChunks; i += kThreads) {
    const int h = i / kBf16RowChunks, c = i % kBf16RowChunks;
    const bool valid = head0 + h < a.num_heads;
    const uint16_t* src = valid ? q_tok + (head0 + h) * a.q_head_stride + c * 8 : a.q;
    sm80::CpAsync16(q_s + h * kRowElems + c * 8, src, valid);
  }
  __syncthreads();  // the first tiles' slots are read by every loader

  const auto load_tile = [&](int tile) {
    if (tile >= num_tiles) return;
    uint8_t* dst = stage_s + (tile % a.stages) * lay.stage_bytes;
    const int64_t* rows = slot_s + (tile % ring) * kTileRows;
    constexpr int kChunks = FP8 ? kF8RowChunks : kBf16RowChunks;
    constexpr int kDstRowBytes = FP8 ? kF8RowBytes : kRowElems * 2;
#pragma unroll 3
    for (int i = tid; i < kTileRows * kChunks; i += kThreads) {
      const int r = i / kChunks, c = i % kChunks;
      const int64_t off = rows[r];
      sm80::CpAsync16(dst + r * kDstRowBytes + c * 16, a.cache + (off >= 0 ? off + c * 16 : 0),
                      off >= 0);
    }
  };
  for (int i = 0; i < a.stages - 1; ++i) {
    load_tile(i);
    sm80::CpAsyncCommit();
  }

  float acc[kMT][kNT][4];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int n = 0; n < kNT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][n][e] = 0.0f;

  // QK role of this warp, and the softmax state of the head rows it owns when it is a k part 0
  // warp: rows hb·kHeadBlock + mt·16 + lane/4 (+8), replicated over the lane's quad.
  const int qk_hb = warp % kHeadBlocks, qk_part = warp / kHeadBlocks;
  float m_run[kMW][2], l_run[kMW][2];
#pragma unroll
  for (int mt = 0; mt < kMW; ++mt) {
    m_run[mt][0] = m_run[mt][1] = -INFINITY;
    l_run[mt][0] = l_run[mt][1] = 0.0f;
  }

  for (int tile = 0; tile < num_tiles; ++tile) {
    sm80::CpAsyncWait(a.stages - 2);
    __syncthreads();  // B1: this tile has landed; the previous tile's buffers are free
    load_tile(tile + a.stages - 1);
    sm80::CpAsyncCommit();
    const int64_t next_slot = warp == kSlotWarp ? fetch_row(tile + a.stages) : -1;
    const auto store_next_slot = [&] {
      if (warp == kSlotWarp) slot_s[((tile + a.stages) % ring) * kTileRows + lane] = next_slot;
    };
    const uint16_t* kv;
    if constexpr (FP8) {
      uint16_t* kv_b = reinterpret_cast<uint16_t*>(smem + lay.kv_bf16);
      DequantTile<kThreads>(stage_s + (tile % a.stages) * lay.stage_bytes, kv_b, tid);
      __syncthreads();
      kv = kv_b;
    } else {
      kv = reinterpret_cast<const uint16_t*>(stage_s + (tile % a.stages) * lay.stage_bytes);
    }
    const int64_t* ts = slot_s + (tile % ring) * kTileRows;
    if (!__any_sync(0xffffffffu, ts[lane] >= 0)) {  // same answer in every warp
      store_next_slot();
      continue;
    }

    // (b) Partial S = Q·Kᵀ over this warp's k part, for its kHeadBlock heads × 32 rows; parts > 0
    // leave theirs in the exchange.
    float s_acc[kMW][4][4] = {};
    if (warp < kQkWarps) {
      const uint16_t* qa = q_s + (qk_hb * kHeadBlock + lane % 16) * kRowElems + (lane / 16) * 8 +
                           qk_part * kKSteps * 16;
      const uint16_t* kb = kv + (lane % 8 + (lane / 16) * 8) * kRowElems + ((lane / 8) % 2) * 8 +
                           qk_part * kKSteps * 16;
#pragma unroll 3
      for (int ks = 0; ks < kKSteps; ++ks) {
        uint32_t af[kMW][4], bf[2][4];
#pragma unroll
        for (int mt = 0; mt < kMW; ++mt)
          sm80::LdMatrixX4(af[mt], qa + mt * 16 * kRowElems + ks * 16);
#pragma unroll
        for (int j2 = 0; j2 < 2; ++j2) sm80::LdMatrixX4(bf[j2], kb + j2 * 16 * kRowElems + ks * 16);
#pragma unroll
        for (int mt = 0; mt < kMW; ++mt) {
#pragma unroll
          for (int j2 = 0; j2 < 2; ++j2) {
            sm80::MmaBf16(s_acc[mt][2 * j2], af[mt], bf[j2][0], bf[j2][1]);
            sm80::MmaBf16(s_acc[mt][2 * j2 + 1], af[mt], bf[j2][2], bf[j2][3]);
          }
        }
      }
      if (qk_part > 0) {
        float4* part = exchange + ((qk_part - 1) * kHeadBlocks + qk_hb) * (kMW * 4 * 32);
#pragma unroll
        for (int mt = 0; mt < kMW; ++mt)
#pragma unroll
          for (int n = 0; n < 4; ++n) {
            part[(mt * 4 + n) * 32 + lane] =
                make_float4(s_acc[mt][n][0], s_acc[mt][n][1], s_acc[mt][n][2], s_acc[mt][n][3]);
          }
      }
    }
    __syncthreads();  // B2: partial S complete

    // (c) k part 0 warps: full S, mask, online softmax over the tile's 32 rows (all in-warp),
    // P = exp2(S − m_new) rounded to bf16, and alpha = exp2(m_old − m_new) for the PV warps. A
    // head with nothing valid yet uses 0 as its reference, so no −inf − −inf.
    if (warp < kHeadBlocks) {
      for (int part_i = 1; part_i < kKParts; ++part_i) {
        const float4* part = exchange + ((part_i - 1) * kHeadBlocks + qk_hb) * (kMW * 4 * 32);
#pragma unroll
        for (int mt = 0; mt < kMW; ++mt)
#pragma unroll
          for (int n = 0; n < 4; ++n) {
            const float4 v = part[(mt * 4 + n) * 32 + lane];
            s_acc[mt][n][0] += v.x;
            s_acc[mt][n][1] += v.y;
            s_acc[mt][n][2] += v.z;
            s_acc[mt][n][3] += v.w;
          }
      }
      __syncwarp();  // the exchange is read before P, which may share its bytes, is written
#pragma unroll
      for (int mt = 0; mt < kMW; ++mt) {
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < 4; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = n * 8 + 2 * (lane % 4) + (e & 1);
            const float v = ts[col] >= 0 ? s_acc[mt][n][e] * a.scale_log2 : -INFINITY;
            s_acc[mt][n][e] = v;
            mx[e / 2] = fmaxf(mx[e / 2], v);
          }
        float u[2];
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const float m_new = fmaxf(m_run[mt][half], QuadMax(mx[half]));
          u[half] = m_new == -INFINITY ? 0.0f : m_new;
          const float al = Exp2(m_run[mt][half] - u[half]);
          l_run[mt][half] *= al;
          m_run[mt][half] = m_new;
          if (lane % 4 == 0) alpha[qk_hb * kHeadBlock + mt * 16 + lane / 4 + half * 8] = al;
        }
        float sum[2] = {0.0f, 0.0f};
        const int h0 = qk_hb * kHeadBlock + mt * 16 + lane / 4;
#pragma unroll
        for (int n = 0; n < 4; ++n) {
          const int col = n * 8 + 2 * (lane % 4);
          const uint32_t p01 =
              sm80::PackBf16x2(Exp2(s_acc[mt][n][0] - u[0]), Exp2(s_acc[mt][n][1] - u[0]));
          const uint32_t p23 =
              sm80::PackBf16x2(Exp2(s_acc[mt][n][2] - u[1]), Exp2(s_acc[mt][n][3] - u[1]));
          sum[0] += sm80::Bf16Lo(p01) + sm80::Bf16Hi(p01);
          sum[1] += sm80::Bf16Lo(p23) + sm80::Bf16Hi(p23);
          *reinterpret_cast<uint32_t*>(p_s + h0 * kPRowElems + col) = p01;
          *reinterpret_cast<uint32_t*>(p_s + (h0 + 8) * kPRowElems + col) = p23;
        }
        l_run[mt][0] += QuadSum(sum[0]);
        l_run[mt][1] += QuadSum(sum[1]);
      }
    }
    __syncthreads();  // B3: P and alpha complete

    // (d) O = alpha·O + P·V over this warp's value dims, all heads of the group.
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      const float a0 = alpha[mt * 16 + lane / 4], a1 = alpha[mt * 16 + lane / 4 + 8];
      if (a0 != 1.0f || a1 != 1.0f) {  // the running max moved (rarer as the tiles go by)
#pragma unroll
        for (int n = 0; n < kNT; ++n) {
          acc[mt][n][0] *= a0;
          acc[mt][n][1] *= a0;
          acc[mt][n][2] *= a1;
          acc[mt][n][3] *= a1;
        }
      }
    }
#pragma unroll
    for (int ks = 0; ks < kTileRows / 16; ++ks) {
      uint32_t pa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        sm80::LdMatrixX4(pa[mt],
                         p_s + (mt * 16 + lane % 16) * kPRowElems + ks * 16 + (lane / 16) * 8);
      }
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        uint32_t vb[4];
        sm80::LdMatrixX4Trans(vb, kv + (ks * 16 + lane % 8 + ((lane / 8) % 2) * 8) * kRowElems +
                                      warp * kDPW + np * 16 + (lane / 16) * 8);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          sm80::MmaBf16(acc[mt][2 * np], pa[mt], vb[0], vb[1]);
          sm80::MmaBf16(acc[mt][2 * np + 1], pa[mt], vb[2], vb[3]);
        }
      }
    }
    store_next_slot();
  }
  sm80::CpAsyncWait(0);
  if (warp < kHeadBlocks && lane % 4 == 0) {
#pragma unroll
    for (int mt = 0; mt < kMW; ++mt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int h = qk_hb * kHeadBlock + mt * 16 + lane / 4 + half * 8;
        m_final[h] = m_run[mt][half];
        l_final[h] = l_run[mt][half];
      }
  }
  __syncthreads();  // the final running state of every head

  const bool direct = a.num_splits == 1;
  if (tid < HPC && head0 + tid < a.num_heads) {
    const float l = l_final[tid];
    const float lse = l > 0.0f ? (m_final[tid] + __log2f(l)) * kLn2 : -INFINITY;
    if (direct) {
      if (a.lse != nullptr) a.lse[token * a.lse_token_stride + head0 + tid] = lse;
    } else {
      a.part_lse[(int64_t{split} * a.num_tokens + token) * a.num_heads + head0 + tid] = lse;
    }
  }
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int h = mt * 16 + lane / 4 + half * 8;
      if (head0 + h >= a.num_heads) continue;
      const float l = l_final[h];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      const int64_t row = int64_t{head0 + h};
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
        const int d = warp * kDPW + n * 8 + 2 * (lane % 4);
        const float v0 = acc[mt][n][2 * half] * inv, v1 = acc[mt][n][2 * half + 1] * inv;
        if (direct) {
          *reinterpret_cast<uint32_t*>(a.out + token * a.out_token_stride +
                                       row * a.out_head_stride + d) = sm80::PackBf16x2(v0, v1);
        } else {
          *reinterpret_cast<float2*>(
              a.part_out + ((int64_t{split} * a.num_tokens + token) * a.num_heads + row) * kL + d) =
              make_float2(v0, v1);
        }
      }
    }
  }
}

}  // namespace strata::kernels::sparse_mla

#endif  // STRATA_KERNELS_CUDA_SPARSE_MLA_KERNEL_CUH_

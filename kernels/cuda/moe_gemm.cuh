// The grouped GEMM of MoeExpertsCuda (moe.cu): one CTA per (row tile of one expert's segment,
// BN output columns), bf16 mma.sync.m16n8k16 with fp32 accumulators, a STAGES-deep cp.async
// pipeline over k in steps of 64. Device code; include from moe.cu only.
//
// Rows: the plan (moe.cu) sorted the (token, k) pairs by expert; expert e owns sorted rows
// [seg_start[e], seg_start[e+1]) and row tiles [tile_start[e], tile_start[e+1]) of BM rows. The
// grid's x covers an upper bound of the tiles; CTA x finds its expert by binary search and exits
// when x is past the last tile, so the grid is fixed while the work follows the routing.
//
//   GATE_UP: A = x rows gathered by token (row_token), B = gate_e and up_e rows [n0, n0 + BN) of
//            [I, H]; out[row, n] = bf16(silu(A·gateᵀ) · (A·upᵀ)), out = h [T·K, I].
//   down:    A = h rows (sorted order), B = down_e rows [b_row0 + n0, ...) of [H, I];
//            out[row, n] = fp32 (A·downᵀ), out = the chunk's pair rows [T·K, out_stride].
//
// Shared memory per stage: A [BM][64] then B [NB][64] bf16, 128-byte rows whose 16-byte chunks
// are XOR-swizzled with the row's low 3 bits, so that ldmatrix's 8 rows hit 8 distinct banks.
// Rows outside the segment (A) or past the output's end (B) are zeroed once for every stage and
// never loaded.
#ifndef STRATA_KERNELS_CUDA_MOE_GEMM_CUH_
#define STRATA_KERNELS_CUDA_MOE_GEMM_CUH_

#include <cstdint>

#include "kernels/cuda/sm80_primitives.cuh"

namespace strata::kernels::moe_internal {

struct GemmArgs {
  int num_experts;
  const int32_t* seg_start;   // [E + 1]
  const int32_t* tile_start;  // [E + 1]
  const int32_t* row_token;   // [T·K] sorted row → token (GATE_UP)
  const uint16_t* a;          // GATE_UP: x [T, a_stride]; down: h [T·K, a_stride]
  int64_t a_stride;
  const uint16_t* const* b0;  // [E]: gate (GATE_UP) or down
  const uint16_t* const* b1;  // [E]: up (GATE_UP)
  int64_t b_stride;           // elements per B row = the reduction length k
  int64_t b_row0;             // first B row of this launch (down: the hidden chunk's start)
  int64_t n_cols;             // output columns of this launch
  void* out;                  // GATE_UP: bf16 [T·K, out_stride]; down: fp32 [T·K, out_stride]
  int64_t out_stride;
};

__device__ __forceinline__ int SwizzledOffset(int row, int chunk) {
  return row * 128 + ((chunk ^ (row & 7)) << 4);
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool GATE_UP>
struct GemmShape {
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int kBK = 64;
  static constexpr int kNB = GATE_UP ? 2 * BN : BN;  // B rows per stage
  static constexpr int kWM = BM / WARPS_M;           // rows per warp
  static constexpr int kWN = BN / WARPS_N;           // output columns per warp
  static constexpr int kMT = kWM / 16;
  static constexpr int kNT = kWN / 8;
  static constexpr int kStageBytes = (BM + kNB) * 128;
  static constexpr int kSmemBytes = STAGES * kStageBytes;
  static_assert(kWM % 16 == 0 && kWN % 16 == 0 && BM % 8 == 0 && STAGES >= 2);
};

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool GATE_UP, int MIN_BLOCKS>
__global__ void __launch_bounds__(WARPS_M* WARPS_N * 32, MIN_BLOCKS)
    GroupedGemmKernel(const GemmArgs a) {
  using S = GemmShape<BM, BN, WARPS_M, WARPS_N, STAGES, GATE_UP>;
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ const uint16_t* a_rows[BM];

  const int tile = blockIdx.x;
  if (tile >= a.tile_start[a.num_experts]) return;
  // The expert whose tiles contain this one: tile_start[lo] <= tile < tile_start[hi].
  int lo = 0, hi = a.num_experts;
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (a.tile_start[mid] <= tile) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  const int e = lo;
  const int row0 = a.seg_start[e] + (tile - a.tile_start[e]) * BM;
  const int rows = min(BM, a.seg_start[e + 1] - row0);
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int b_valid = static_cast<int>(min(static_cast<int64_t>(BN), a.n_cols - n0));
  const uint16_t* b0 = a.b0[e] + (a.b_row0 + n0) * a.b_stride;
  const uint16_t* b1 = GATE_UP ? a.b1[e] + (a.b_row0 + n0) * a.b_stride : nullptr;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  for (int r = tid; r < BM; r += S::kThreads) {
    const uint16_t* src = nullptr;
    if (r < rows) {
      const int64_t row = row0 + r;
      src = a.a + (GATE_UP ? static_cast<int64_t>(a.row_token[row]) : row) * a.a_stride;
    }
    a_rows[r] = src;
  }
  // Rows never loaded are zero in every stage (the first barrier of the main loop orders this).
  for (int i = tid; i < STAGES * (BM + S::kNB) * 8; i += S::kThreads) {
    const int chunk = i & 7, row = (i >> 3) % (BM + S::kNB), stage = (i >> 3) / (BM + S::kNB);
    const bool zero = row < BM ? row >= rows : (row - BM) % BN >= b_valid;
    if (zero) {
      *reinterpret_cast<uint4*>(smem + stage * S::kStageBytes + SwizzledOffset(row, chunk)) =
          make_uint4(0, 0, 0, 0);
    }
  }
  __syncthreads();

  const int k_tiles = static_cast<int>(a.b_stride / S::kBK);
  auto issue = [&](int kt, int slot) {
    uint8_t* st = smem + slot * S::kStageBytes;
    const int64_t k0 = static_cast<int64_t>(kt) * S::kBK;
#pragma unroll
    for (int j = 0; j < (BM * 8 + S::kThreads - 1) / S::kThreads; ++j) {
      const int i = tid + j * S::kThreads, r = i >> 3, chunk = i & 7;
      if (i < BM * 8 && r < rows) {
        sm80::CpAsync16(st + SwizzledOffset(r, chunk), a_rows[r] + k0 + chunk * 8);
      }
    }
#pragma unroll
    for (int j = 0; j < (S::kNB * 8 + S::kThreads - 1) / S::kThreads; ++j) {
      const int i = tid + j * S::kThreads, r = i >> 3, chunk = i & 7, br = r % BN;
      if (i < S::kNB * 8 && br < b_valid) {
        const uint16_t* base = (GATE_UP && r >= BN) ? b1 : b0;
        sm80::CpAsync16(st + SwizzledOffset(BM + r, chunk),
                        base + br * a.b_stride + k0 + chunk * 8);
      }
    }
  };

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < k_tiles) issue(s, s);
    sm80::CpAsyncCommit();
  }

  constexpr int kAcc1 = GATE_UP ? S::kMT : 1;
  float acc0[S::kMT][S::kNT][4];
  [[maybe_unused]] float acc1[kAcc1][GATE_UP ? S::kNT : 1][4];
#pragma unroll
  for (int mi = 0; mi < S::kMT; ++mi)
#pragma unroll
    for (int nj = 0; nj < S::kNT; ++nj)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc0[mi][nj][q] = 0.0f;
#pragma unroll
  for (int mi = 0; mi < kAcc1; ++mi)
#pragma unroll
    for (int nj = 0; nj < (GATE_UP ? S::kNT : 1); ++nj)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc1[mi][nj][q] = 0.0f;

  const int mrow = lane & 7, mat = lane >> 3;
  for (int kt = 0; kt < k_tiles; ++kt) {
    sm80::CpAsyncWait<STAGES - 2>();
    __syncthreads();
    const int next = kt + STAGES - 1;
    if (next < k_tiles) issue(next, next % STAGES);
    sm80::CpAsyncCommit();

    const uint8_t* st = smem + (kt % STAGES) * S::kStageBytes;
#pragma unroll
    for (int ks = 0; ks < S::kBK / 16; ++ks) {
      // A: matrices (rows +0 / +8) × (k chunk 2 ks / 2 ks + 1) give a0..a3 directly.
      uint32_t af[S::kMT][4];
#pragma unroll
      for (int mi = 0; mi < S::kMT; ++mi) {
        const int row = wm * S::kWM + mi * 16 + 8 * (mat & 1) + mrow;
        sm80::LdMatrixX4(af[mi], st + SwizzledOffset(row, 2 * ks + (mat >> 1)));
      }
      // B: matrices (n-tile nj, k lo), (nj, k hi), (nj + 1, k lo), (nj + 1, k hi).
#pragma unroll
      for (int nj = 0; nj < S::kNT; nj += 2) {
        const int n = wn * S::kWN + (nj + (mat >> 1)) * 8 + mrow;
        uint32_t bf[4];
        sm80::LdMatrixX4(bf, st + SwizzledOffset(BM + n, 2 * ks + (mat & 1)));
#pragma unroll
        for (int mi = 0; mi < S::kMT; ++mi) {
          sm80::MmaBf16(acc0[mi][nj], af[mi][0], af[mi][1], af[mi][2], af[mi][3], bf[0], bf[1]);
          sm80::MmaBf16(acc0[mi][nj + 1], af[mi][0], af[mi][1], af[mi][2], af[mi][3], bf[2], bf[3]);
        }
        if constexpr (GATE_UP) {
          uint32_t uf[4];
          sm80::LdMatrixX4(uf, st + SwizzledOffset(BM + BN + n, 2 * ks + (mat & 1)));
#pragma unroll
          for (int mi = 0; mi < S::kMT; ++mi) {
            sm80::MmaBf16(acc1[mi][nj], af[mi][0], af[mi][1], af[mi][2], af[mi][3], uf[0], uf[1]);
            sm80::MmaBf16(acc1[mi][nj + 1], af[mi][0], af[mi][1], af[mi][2], af[mi][3], uf[2],
                          uf[3]);
          }
        }
      }
    }
  }
  sm80::CpAsyncWait<0>();

  // Epilogue: accumulator q of (mi, nj) is row g (+8 for q >= 2), columns 2c, 2c + 1.
  const int g = lane >> 2, c = lane & 3;
#pragma unroll
  for (int mi = 0; mi < S::kMT; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = wm * S::kWM + mi * 16 + 8 * half + g;
      if (r >= rows) continue;
      const int64_t row = row0 + r;
#pragma unroll
      for (int nj = 0; nj < S::kNT; ++nj) {
        const int col = wn * S::kWN + nj * 8 + 2 * c;
        if (col >= b_valid) continue;
        const float v0 = acc0[mi][nj][2 * half], v1 = acc0[mi][nj][2 * half + 1];
        if constexpr (GATE_UP) {
          const float u0 = acc1[mi][nj][2 * half], u1 = acc1[mi][nj][2 * half + 1];
          const float h0 = v0 / (1.0f + expf(-v0)) * u0, h1 = v1 / (1.0f + expf(-v1)) * u1;
          uint32_t packed;
          asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(h1), "f"(h0));
          *reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(a.out) + row * a.out_stride + n0 +
                                       col) = packed;
        } else {
          *reinterpret_cast<float2*>(static_cast<float*>(a.out) + row * a.out_stride + n0 + col) =
              make_float2(v0, v1);
        }
      }
    }
  }
}

}  // namespace strata::kernels::moe_internal

#endif  // STRATA_KERNELS_CUDA_MOE_GEMM_CUH_

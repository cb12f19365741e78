#include <algorithm>
#include <cmath>

#include "kernels/cuda/indexer_logits.h"
#include "kernels/cuda/sm80_primitives.cuh"
#include "kvcache/paged_cache.h"

// Mapping of the MMA (see sm80::MmaBf16): A = 16 keys × 16 k, B = 16 k × 8 (row, head) columns.
// Each warp owns 32 keys of a 128-key stage (two m-tiles); B spans all NC = ROWS · NH columns.
// bf16 keys keep the natural k order and load fragments with ldmatrix (16-byte chunks swizzled by
// the row's low 3 bits). fp8 keys are decoded in registers, so there the k order is permuted
// identically in A and B to make every shared-memory read one 16-byte vector per thread
// (lane = 4 g + c): in k-step s, thread c holds physical k p .. p + 3 of its key rows and of its
// column's q as the slots (2c, 2c+1, 2c+8, 2c+9), p = 64 (s / 4) + 16 c + 4 (s % 4) (one 16-byte
// read = 4 k-steps of one key). Reads of rows g and g + 1 fall in the same shared-memory phase, so
// there the chunk index is XOR-swizzled with the row's parity.

namespace strata::kernels {
namespace {

constexpr int kHeadDim = 128;
constexpr int kQRowBytes = kHeadDim * 2;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kStageKeys = kWarps * 32;
constexpr int kMaxColsPerCta = 128;  // (row, head) pairs: accumulators stay in registers
constexpr float kNegInf = -INFINITY;

struct Args {
  int num_tokens;
  int64_t max_cols;
  int64_t chunk_cols;  // multiple of kStageKeys
  float softmax_scale;
  const uint16_t* q;
  int64_t q_token_stride, q_head_stride;
  const float* weights;
  int64_t weights_token_stride;
  float* logits;
  int64_t logits_stride;
  // Ragged keys.
  const uint8_t* keys;
  int64_t key_stride_bytes;
  const float* key_scales;
  int64_t num_keys;
  const int32_t* k_start;
  const int32_t* k_end;
  // Paged keys.
  const int32_t* row_seq;
  const int32_t* row_lens;
  kvcache::BlockTableView block_table;
  const uint8_t* cache;
  int64_t block_stride;
  int64_t num_blocks;
};

template <bool F8>
struct KeyTile {
  static constexpr int kRowBytes = F8 ? kHeadDim : 2 * kHeadDim;
  static constexpr int kChunks = kRowBytes / 16;
  static constexpr int kStages = F8 ? 3 : 2;
  static constexpr int kKeyBytes = kStageKeys * kRowBytes;
  static constexpr int kStageBytes = kKeyBytes + (F8 ? kStageKeys * 4 : 0);
  // Swizzled 16-byte chunk of a key row. fp8: rows g, g + 1 read 64 contiguous bytes each;
  // bf16: ldmatrix reads one chunk of 8 consecutive rows.
  __device__ static int KeyChunk(int row, int chunk) {
    return F8 ? chunk ^ ((row & 1) << 2) : chunk ^ (row & 7);
  }
  // Swizzled 16-byte chunk of a q row: fp8 reads chunks 2c (+ const) of rows n, n + 1; bf16 as
  // the keys.
  __device__ static int QChunk(int row, int chunk) {
    return F8 ? chunk ^ (row & 1) : chunk ^ (row & 7);
  }
};

__device__ __forceinline__ uint32_t Word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// fp8 keys are stored Hadamard-rotated (kvcache/layout.h), so the fp8 path scores H·q: each q row
// is rotated while it is staged into shared memory. A row is split over P = 4 adjacent threads
// holding E = 32 consecutive lanes each (32 rows a pass over the CTA, few registers): butterfly
// stages shorter than E run in registers, the two longer ones across the 4 threads by shuffles.
// What is stored is √128 · H·q rounded to bf16
// (at most 2^-9 of a lane, far under fp8's 2^-4): the launchers fold the 1/√128 (kRotatedQScale)
// into the softmax scale the epilogue applies.
constexpr float kRotatedQScale = 0.0883883476483184f;  // 1 / √128

__device__ __forceinline__ uint32_t PackBf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

template <int NC>
__device__ __forceinline__ void StageRotatedQ(const Args& a, int group, int nh, int rows,
                                              uint8_t* q_s) {
  constexpr int P = 4, E = kHeadDim / P, kChunks = E / 8, kRowsPerPass = kThreads / P;
  // Passes whose loads go out together: two for 128 rows (prefill, MTP pairs; latency there is
  // amortised anyway, so this is for the 4 passes' latency). For 64 rows, batching measured 4%
  // slower at long contexts (more registers in the main loop) for 0.5 us less at batch 1.
  constexpr int kPasses = NC / kRowsPerPass, kBatch = kPasses >= 4 ? 2 : 1;
  static_assert(NC % kRowsPerPass == 0 && kPasses % kBatch == 0);
  const int part = threadIdx.x % P;
  const float sign = part & 1 ? -1.0f : 1.0f, sign2 = part & 2 ? -1.0f : 1.0f;
#pragma unroll 1
  for (int pass0 = 0; pass0 < kPasses; pass0 += kBatch) {
    uint4 raw[kBatch][kChunks];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int n = (pass0 + b) * kRowsPerPass + threadIdx.x / P;
      const int t = group * rows + n / nh, h = n % nh;
      const uint4* src = reinterpret_cast<const uint4*>(a.q + t * a.q_token_stride +
                                                        h * a.q_head_stride + part * E);
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        raw[b][c] = t < a.num_tokens ? src[c] : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      float x[E];
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          const uint32_t word = Word(raw[b][c], w);
          x[8 * c + 2 * w] = __uint_as_float(word << 16);
          x[8 * c + 2 * w + 1] = __uint_as_float(word & 0xffff0000u);
        }
      }
#pragma unroll
      for (int len = 1; len < E; len <<= 1) {
#pragma unroll
        for (int j = 0; j < E; ++j) {
          if (j & len) continue;
          const float lo = x[j], hi = x[j + len];
          x[j] = lo + hi;
          x[j + len] = lo - hi;
        }
      }
      // Partner thread part ^ m holds the lanes E · m away: the lower one keeps x + other, the
      // upper one other − x (an fma with ±1, exact).
#pragma unroll
      for (int j = 0; j < E; ++j) x[j] = fmaf(sign, x[j], __shfl_xor_sync(0xffffffffu, x[j], 1));
#pragma unroll
      for (int j = 0; j < E; ++j) x[j] = fmaf(sign2, x[j], __shfl_xor_sync(0xffffffffu, x[j], 2));
      const int n = (pass0 + b) * kRowsPerPass + threadIdx.x / P;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        *reinterpret_cast<uint4*>(q_s + n * kQRowBytes +
                                  KeyTile<true>::QChunk(n, part * kChunks + c) * 16) =
            make_uint4(PackBf16x2(x[8 * c], x[8 * c + 1]), PackBf16x2(x[8 * c + 2], x[8 * c + 3]),
                       PackBf16x2(x[8 * c + 4], x[8 * c + 5]),
                       PackBf16x2(x[8 * c + 6], x[8 * c + 7]));
      }
    }
  }
}

template <bool F8, int NH, int ROWS, bool PAGED>
__global__ void __launch_bounds__(kThreads, 2) IndexerLogitsKernel(const Args a) {
  using Tile = KeyTile<F8>;
  constexpr int NC = NH * ROWS;
  constexpr int kNTiles = NC / 8;
  static_assert(NC <= kMaxColsPerCta && NH % 8 == 0);
  extern __shared__ __align__(16) uint8_t smem[];
  uint8_t* q_s = smem;                                            // [NC][256 B] swizzled
  float* w_s = reinterpret_cast<float*>(smem + NC * kQRowBytes);  // [NC]
  uint8_t* stages = smem + NC * (kQRowBytes + 4);                 // [kStages][kStageBytes]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, c = lane & 3;
  const int num_groups = (a.num_tokens + ROWS - 1) / ROWS;
  // Ragged rows are causal in practice: start the longest (last) groups first.
  const int group = PAGED ? blockIdx.x : num_groups - 1 - blockIdx.x;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * a.chunk_cols;
  const int64_t c1 = min(c0 + a.chunk_cols, a.max_cols);

  // Row ranges [ks, ke) and their union [lo, hi).
  int64_t ks[ROWS], ke[ROWS];
  int64_t lo = INT64_MAX, hi = 0;
  int seq = 0;
  if constexpr (PAGED) {
    seq = a.row_seq[group * ROWS];
    if (seq < 0 || seq >= a.block_table.num_seqs) seq = -1;
  }
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int t = group * ROWS + r;
    ks[r] = ke[r] = 0;
    if (t >= a.num_tokens) continue;
    if constexpr (PAGED) {
      const int64_t cap = min(a.max_cols, int64_t{a.block_table.max_blocks_per_seq} * 64);
      ke[r] = seq < 0 ? 0 : max(int64_t{0}, min(int64_t{a.row_lens[t]}, cap));
    } else {
      const int64_t cap = min(a.max_cols, a.num_keys);
      ks[r] = max(int64_t{0}, min(int64_t{a.k_start[t]}, cap));
      ke[r] = max(ks[r], min(int64_t{a.k_end[t]}, cap));
    }
    if (ke[r] > ks[r]) {
      lo = min(lo, ks[r]);
      hi = max(hi, ke[r]);
    }
  }
  const int stages_in_chunk = static_cast<int>((c1 - c0 + kStageKeys - 1) / kStageKeys);
  int i_lo = 0, i_hi = 0;
  if (hi > lo && hi > c0 && lo < c1) {
    i_lo = lo > c0 ? static_cast<int>((lo - c0) / kStageKeys) : 0;
    i_hi = static_cast<int>(min(int64_t{stages_in_chunk}, (hi - c0 + kStageKeys - 1) / kStageKeys));
  }

  // Columns of this chunk no computed stage covers are −inf.
  const int64_t cov_lo = c0 + int64_t{i_lo} * kStageKeys;
  const int64_t cov_hi = min(c1, c0 + int64_t{i_hi} * kStageKeys);
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int t = group * ROWS + r;
    if (t >= a.num_tokens) continue;
    float* out = a.logits + t * a.logits_stride;
    for (int64_t col = c0 + tid; col < cov_lo; col += kThreads) out[col] = kNegInf;
    for (int64_t col = max(cov_hi, c0) + tid; col < c1; col += kThreads) out[col] = kNegInf;
  }
  if (i_lo >= i_hi) return;

  // q rows (bf16, zero for missing tokens) and weights into shared memory; the fp8 path rotates q
  // after issuing the first key stages (below), so that those loads overlap the rotation.
  for (int idx = tid; !F8 && idx < NC * (kQRowBytes / 16); idx += kThreads) {
    const int n = idx / (kQRowBytes / 16), chunk = idx % (kQRowBytes / 16);
    const int t = group * ROWS + n / NH, h = n % NH;
    uint8_t* dst = q_s + n * kQRowBytes + Tile::QChunk(n, chunk) * 16;
    if (t < a.num_tokens) {
      sm80::CpAsync16(dst, a.q + t * a.q_token_stride + h * a.q_head_stride + chunk * 8);
    } else {
      sm80::CpAsync16(dst, a.q, 0);
    }
  }
  for (int n = tid; n < NC; n += kThreads) {
    const int t = group * ROWS + n / NH;
    w_s[n] = t < a.num_tokens ? a.weights[t * a.weights_token_stride + n % NH] : 0.0f;
  }

  // Producer: stage i (keys c0 + 128 i ..) into buffer `slot`. Keys past hi are not loaded; their
  // results are masked.
  // Block ids of stage i (−1 past hi), read one stage ahead of their use so that the dependent
  // load does not stall the producer.
  constexpr int kBlocksPerStage = kStageKeys / kvcache::kBlockTokens;
  auto block_ids = [&](int i, int32_t(&ids)[kBlocksPerStage]) {
#pragma unroll
    for (int b = 0; b < kBlocksPerStage; ++b) {
      const int64_t pos0 = c0 + int64_t{i} * kStageKeys + b * kvcache::kBlockTokens;
      ids[b] =
          PAGED && i < i_hi && pos0 < hi
              ? a.block_table.table[seq * a.block_table.row_stride + pos0 / kvcache::kBlockTokens]
              : -1;
    }
  };
  auto issue = [&](int i, int slot, const int32_t(&ids)[kBlocksPerStage]) {
    const int64_t k0 = c0 + int64_t{i} * kStageKeys;
    uint8_t* dst = stages + slot * Tile::kStageBytes;
    if constexpr (PAGED) {
#pragma unroll
      for (int b = 0; b < kBlocksPerStage; ++b) {
        const int32_t id = ids[b];
        if (id < 0 || id >= a.num_blocks) continue;
        const uint8_t* src = a.cache + id * a.block_stride;
        constexpr int kBlockChunks = kvcache::kBlockTokens * Tile::kChunks;
        for (int q = tid; q < kBlockChunks; q += kThreads) {
          const int row = b * kvcache::kBlockTokens + q / Tile::kChunks, part = q % Tile::kChunks;
          sm80::CpAsync16(dst + row * Tile::kRowBytes + Tile::KeyChunk(row, part) * 16,
                          src + (q / Tile::kChunks) * Tile::kRowBytes + part * 16);
        }
        if (F8 && tid < kvcache::kBlockTokens * 4 / 16) {
          sm80::CpAsync16(dst + Tile::kKeyBytes + b * kvcache::kBlockTokens * 4 + tid * 16,
                          src + kvcache::IndexerF8ScalesOffset(kHeadDim) + tid * 16);
        }
      }
    } else {
      const int64_t k_lim = min(hi, a.num_keys);
      for (int q = tid; q < kStageKeys * Tile::kChunks; q += kThreads) {
        const int row = q / Tile::kChunks, part = q % Tile::kChunks;
        if (k0 + row >= k_lim) continue;
        sm80::CpAsync16(dst + row * Tile::kRowBytes + Tile::KeyChunk(row, part) * 16,
                        a.keys + (k0 + row) * a.key_stride_bytes + part * 16);
      }
      if (F8 && tid < kStageKeys / 4) {
        const int64_t j0 = k0 + tid * 4;
        const int bytes =
            static_cast<int>(max(int64_t{0}, min(int64_t{16}, (a.num_keys - j0) * 4)));
        sm80::CpAsync16(dst + Tile::kKeyBytes + tid * 16,
                        bytes > 0 ? a.key_scales + j0 : a.key_scales, bytes);
      }
    }
  };

  int32_t ids[kBlocksPerStage];
#pragma unroll
  for (int s = 0; s < Tile::kStages - 1; ++s) {
    if (i_lo + s < i_hi) {
      block_ids(i_lo + s, ids);
      issue(i_lo + s, s, ids);
    }
    sm80::CpAsyncCommit();
  }
  block_ids(i_lo + Tile::kStages - 1, ids);
  if constexpr (F8) StageRotatedQ<NC>(a, group, NH, ROWS, q_s);  // published by the loop's barrier

  for (int i = i_lo; i < i_hi; ++i) {
    sm80::CpAsyncWait<Tile::kStages - 2>();
    __syncthreads();
    const int next = i + Tile::kStages - 1;
    if (next < i_hi) {
      issue(next, (next - i_lo) % Tile::kStages, ids);
      block_ids(next + 1, ids);
    }
    sm80::CpAsyncCommit();

    const uint8_t* tile = stages + ((i - i_lo) % Tile::kStages) * Tile::kStageBytes;
    float acc[2][kNTiles][4];  // written first by the k-step 0 MMAs
    // d (+)= a · b; the first k-step starts the accumulators (compile-time after unrolling).
    auto mma = [](bool first, float(&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                  uint32_t b0, uint32_t b1) {
      if (first) {
        sm80::MmaBf16Zero(d, a0, a1, a2, a3, b0, b1);
      } else {
        sm80::MmaBf16(d, a0, a1, a2, a3, b0, b1);
      }
    };

    // Key rows of this thread: warp · 32 + 16 mt + 8 half + g.
    auto key_vec = [&](int mt, int half, int chunk) {
      const int row = warp * 32 + 16 * mt + 8 * half + g;
      return *reinterpret_cast<const uint4*>(tile + row * Tile::kRowBytes +
                                             Tile::KeyChunk(row, chunk) * 16);
    };
    auto q_vec = [&](int nt, int chunk) {
      const int n = nt * 8 + g;
      return *reinterpret_cast<const uint4*>(q_s + n * kQRowBytes + Tile::QChunk(n, chunk) * 16);
    };
    if constexpr (F8) {
#pragma unroll
      for (int i4 = 0; i4 < 2; ++i4) {  // 16-byte key reads: k-steps 4 i4 .. 4 i4 + 3
        uint4 kv[2][2];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h) kv[mt][h] = key_vec(mt, h, 4 * i4 + c);
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {  // k-step pairs
          uint32_t af[2][2][4];           // [k-step][mt][a0..a3]
#pragma unroll
          for (int kk = 0; kk < 2; ++kk)
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
              uint32_t lo0, hi0, lo1, hi1;
              sm80::F8x4ToBf16(Word(kv[mt][0], 2 * jj + kk), lo0, hi0);
              sm80::F8x4ToBf16(Word(kv[mt][1], 2 * jj + kk), lo1, hi1);
              af[kk][mt][0] = lo0;
              af[kk][mt][1] = lo1;
              af[kk][mt][2] = hi0;
              af[kk][mt][3] = hi1;
            }
#pragma unroll
          for (int nt = 0; nt < kNTiles; ++nt) {
            const uint4 qv = q_vec(nt, 8 * i4 + 2 * c + jj);
#pragma unroll
            for (int kk = 0; kk < 2; ++kk)
#pragma unroll
              for (int mt = 0; mt < 2; ++mt)
                mma(i4 == 0 && jj == 0 && kk == 0, acc[mt][nt], af[kk][mt][0], af[kk][mt][1],
                    af[kk][mt][2], af[kk][mt][3], Word(qv, 2 * kk), Word(qv, 2 * kk + 1));
          }
        }
      }
    } else {
      // bf16: natural k order; ldmatrix.x4 hands each thread its A quad and two B pairs directly
      // (matrix j of the four gets its row address from lanes 8 j .. 8 j + 7).
      const int mrow = lane & 7, mat = lane >> 3;
#pragma unroll
      for (int ks = 0; ks < kHeadDim / 16; ++ks) {
        uint32_t af[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {  // matrices: rows +0 / +8, k chunk 2 ks / 2 ks + 1
          const int row = warp * 32 + 16 * mt + 8 * (mat & 1) + mrow;
          sm80::LdMatrixX4(
              af[mt], tile + row * Tile::kRowBytes + Tile::KeyChunk(row, 2 * ks + (mat >> 1)) * 16);
        }
#pragma unroll
        for (int nt = 0; nt < kNTiles; nt += 2) {  // matrices: (nt, k lo), (nt, k hi), (nt + 1, ..)
          const int n = (nt + (mat >> 1)) * 8 + mrow;
          uint32_t bf[4];
          sm80::LdMatrixX4(bf, q_s + n * kQRowBytes + Tile::QChunk(n, 2 * ks + (mat & 1)) * 16);
#pragma unroll
          for (int mt = 0; mt < 2; ++mt) {
            mma(ks == 0, acc[mt][nt], af[mt][0], af[mt][1], af[mt][2], af[mt][3], bf[0], bf[1]);
            mma(ks == 0, acc[mt][nt + 1], af[mt][0], af[mt][1], af[mt][2], af[mt][3], bf[2], bf[3]);
          }
        }
      }
    }

    // Epilogue: Σ_h w · relu per (row, key); lane c writes key 16 (c / 2) + 8 (c % 2) + g of the
    // warp's 32, so each row's 32 values leave as one 128-byte store.
    const int64_t k0 = c0 + int64_t{i} * kStageKeys;
    const int my_row = warp * 32 + 16 * (c >> 1) + 8 * (c & 1) + g;
    const int64_t col = k0 + my_row;
    const float col_scale =
        a.softmax_scale *
        (F8 ? reinterpret_cast<const float*>(tile + Tile::kKeyBytes)[my_row] : 1.0f);
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      float part[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
#pragma unroll
      for (int j = 0; j < NH / 8; ++j) {
        const int nt = r * (NH / 8) + j;
        const float2 w = *reinterpret_cast<const float2*>(w_s + nt * 8 + 2 * c);
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          part[mt][0] += w.x * fmaxf(acc[mt][nt][0], 0.0f) + w.y * fmaxf(acc[mt][nt][1], 0.0f);
          part[mt][1] += w.x * fmaxf(acc[mt][nt][2], 0.0f) + w.y * fmaxf(acc[mt][nt][3], 0.0f);
        }
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          part[mt][h] += __shfl_xor_sync(0xffffffffu, part[mt][h], 1);
          part[mt][h] += __shfl_xor_sync(0xffffffffu, part[mt][h], 2);
        }
      const float v = c == 0 ? part[0][0] : c == 1 ? part[0][1] : c == 2 ? part[1][0] : part[1][1];
      const int t = group * ROWS + r;
      if (t < a.num_tokens && col < c1) {
        a.logits[t * a.logits_stride + col] = col >= ks[r] && col < ke[r] ? v * col_scale : kNegInf;
      }
    }
  }
  sm80::CpAsyncWait<0>();
}

// Column chunk per CTA. With fewer row groups than resident CTAs, rows are split so that one
// wave fills the device (small decode batches are latency-bound: one stage per CTA is fine, the
// q rows come from L2); chunks of a row are equal in size.
int64_t ChunkCols(int64_t max_cols, int groups, int resident) {
  const int64_t stages = (max_cols + kStageKeys - 1) / kStageKeys;
  int64_t chunks = groups < resident ? resident / groups : 1;
  chunks = std::max<int64_t>(1, std::min(chunks, stages));
  return (stages + chunks - 1) / chunks * kStageKeys;
}

template <bool F8, int NH, int ROWS, bool PAGED>
cudaError_t Launch(Args a, int groups, cudaStream_t stream) {
  using Tile = KeyTile<F8>;
  constexpr int kSmem = NH * ROWS * (kQRowBytes + 4) + Tile::kStages * Tile::kStageBytes;
  auto kernel = IndexerLogitsKernel<F8, NH, ROWS, PAGED>;
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
      e != cudaSuccess) {
    return e;
  }
  int device = 0, sms = 0, per_sm = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  if (cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
      e != cudaSuccess) {
    return e;
  }
  if (cudaError_t e =
          cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, kSmem);
      e != cudaSuccess) {
    return e;
  }
  a.chunk_cols = ChunkCols(a.max_cols, groups, std::max(1, per_sm) * sms);
  const int64_t chunks = (a.max_cols + a.chunk_cols - 1) / a.chunk_cols;
  kernel<<<dim3(groups, static_cast<unsigned>(chunks)), kThreads, kSmem, stream>>>(a);
  return cudaGetLastError();
}

// Paged: rows 1 or 2 (next_n pairs). Ragged: 128 / num_heads consecutive tokens.
template <bool PAGED>
cudaError_t Dispatch(Args a, bool f8, int num_heads, int rows, cudaStream_t stream) {
  const int groups = (a.num_tokens + rows - 1) / rows;
  if (f8) a.softmax_scale *= kRotatedQScale;  // q is staged as √128 · H·q
  if constexpr (PAGED) {
    if (f8) {
      if (num_heads == 32) {
        return rows == 1 ? Launch<true, 32, 1, true>(a, groups, stream)
                         : Launch<true, 32, 2, true>(a, groups, stream);
      }
      return rows == 1 ? Launch<true, 64, 1, true>(a, groups, stream)
                       : Launch<true, 64, 2, true>(a, groups, stream);
    }
    if (num_heads == 32) {
      return rows == 1 ? Launch<false, 32, 1, true>(a, groups, stream)
                       : Launch<false, 32, 2, true>(a, groups, stream);
    }
    return rows == 1 ? Launch<false, 64, 1, true>(a, groups, stream)
                     : Launch<false, 64, 2, true>(a, groups, stream);
  } else {
    if (f8) {
      return num_heads == 32 ? Launch<true, 32, 4, false>(a, groups, stream)
                             : Launch<true, 64, 2, false>(a, groups, stream);
    }
    return num_heads == 32 ? Launch<false, 32, 4, false>(a, groups, stream)
                           : Launch<false, 64, 2, false>(a, groups, stream);
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

bool ValidQuery(int num_tokens, int num_heads, float softmax_scale, const uint16_t* q,
                int64_t q_token_stride, int64_t q_head_stride, const float* weights,
                int64_t weights_token_stride, int64_t max_cols, const float* logits,
                int64_t logits_stride) {
  if (num_tokens < 0 || (num_heads != 32 && num_heads != 64) || max_cols < 0 ||
      max_cols > INT32_MAX || logits_stride < max_cols || !(softmax_scale > 0.0f) ||
      !std::isfinite(softmax_scale) || q_head_stride < kHeadDim || q_head_stride % 8 != 0 ||
      q_token_stride < 0 || q_token_stride % 8 != 0 || weights_token_stride < 0) {
    return false;
  }
  return num_tokens == 0 ||
         (q != nullptr && Aligned16(q) && weights != nullptr && logits != nullptr);
}

}  // namespace

cudaError_t IndexerRaggedLogitsCuda(const IndexerRaggedLogitsCudaParams& p, cudaStream_t stream) {
  const bool f8 = p.key_dtype == DType::kF8E4M3;
  if (!ValidQuery(p.num_tokens, p.num_heads, p.softmax_scale, p.q, p.q_token_stride,
                  p.q_head_stride, p.weights, p.weights_token_stride, p.max_cols, p.logits,
                  p.logits_stride) ||
      p.head_dim != kHeadDim || (!f8 && p.key_dtype != DType::kBF16) || p.num_keys < 0 ||
      p.key_stride < kHeadDim || (p.key_stride * (f8 ? 1 : 2)) % 16 != 0) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0 || p.max_cols == 0) return cudaSuccess;
  if (p.k_start == nullptr || p.k_end == nullptr ||
      (p.num_keys > 0 && (p.keys == nullptr || !Aligned16(p.keys) ||
                          (f8 && (p.key_scales == nullptr || !Aligned16(p.key_scales)))))) {
    return cudaErrorInvalidValue;
  }
  const int rows = kMaxColsPerCta / p.num_heads;
  Args a{};
  a.num_tokens = p.num_tokens;
  a.max_cols = p.max_cols;
  a.softmax_scale = p.softmax_scale;
  a.q = p.q;
  a.q_token_stride = p.q_token_stride;
  a.q_head_stride = p.q_head_stride;
  a.weights = p.weights;
  a.weights_token_stride = p.weights_token_stride;
  a.logits = p.logits;
  a.logits_stride = p.logits_stride;
  a.keys = static_cast<const uint8_t*>(p.keys);
  a.key_stride_bytes = p.key_stride * (f8 ? 1 : 2);
  a.key_scales = p.key_scales;
  a.num_keys = p.num_keys;
  a.k_start = p.k_start;
  a.k_end = p.k_end;
  return Dispatch<false>(a, f8, p.num_heads, rows, stream);
}

cudaError_t IndexerPagedLogitsCuda(const IndexerPagedLogitsCudaParams& p, cudaStream_t stream) {
  const kvcache::IndexerCacheView& v = p.cache;
  const bool f8 = v.dtype == kvcache::IndexerCacheDType::kF8;
  if (!ValidQuery(p.num_tokens, p.num_heads, p.softmax_scale, p.q, p.q_token_stride,
                  p.q_head_stride, p.weights, p.weights_token_stride, p.max_cols, p.logits,
                  p.logits_stride) ||
      !kvcache::ValidateIndexerCacheView(v).ok() || v.head_dim != kHeadDim ||
      (!f8 && v.dtype != kvcache::IndexerCacheDType::kBF16) || !Aligned16(v.data) ||
      v.block_stride % 16 != 0 || p.next_n < 1 || p.num_tokens % p.next_n != 0 ||
      p.block_table.num_seqs < 0 || p.block_table.max_blocks_per_seq < 0 ||
      p.block_table.row_stride < p.block_table.max_blocks_per_seq) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0 || p.max_cols == 0) return cudaSuccess;
  if (p.row_seq == nullptr || p.row_lens == nullptr ||
      (p.block_table.num_seqs > 0 && p.block_table.table == nullptr)) {
    return cudaErrorInvalidValue;
  }
  const int rows = p.next_n % 2 == 0 ? 2 : 1;
  Args a{};
  a.num_tokens = p.num_tokens;
  a.max_cols = p.max_cols;
  a.softmax_scale = p.softmax_scale;
  a.q = p.q;
  a.q_token_stride = p.q_token_stride;
  a.q_head_stride = p.q_head_stride;
  a.weights = p.weights;
  a.weights_token_stride = p.weights_token_stride;
  a.logits = p.logits;
  a.logits_stride = p.logits_stride;
  a.row_seq = p.row_seq;
  a.row_lens = p.row_lens;
  a.block_table = p.block_table;
  a.cache = static_cast<const uint8_t*>(v.data);
  a.block_stride = v.block_stride;
  a.num_blocks = v.num_blocks;
  return Dispatch<true>(a, f8, p.num_heads, rows, stream);
}

}  // namespace strata::kernels

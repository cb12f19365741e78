#include <algorithm>
#include <cstddef>

#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/indexer_topk.h"
#include "kvcache/layout.h"

namespace strata::kernels {
namespace {

constexpr int kThreads = 512;
constexpr int kPer = 4;                 // entries per thread per tile
constexpr int kTile = kThreads * kPer;  // 2048 entries streamed per step
constexpr int kDepth = 4;               // tiles in flight per thread (32 KB of logits a CTA)
// Candidates: k kept after a compaction, up to kTile / 2 more, and room to stream several tiles
// before the next one. With the compaction's staging area the shared memory stays under 99 KB.
constexpr int kCapacity = kIndexerTopkMaxK + 3 * kTile;
constexpr int kStaging = kIndexerTopkMaxK + kTile / 2;
constexpr int64_t kMinSplitCols = 8192;
constexpr int kMaxSplits = 64;
constexpr unsigned kFull = block::kFull;

struct Shared {              // 96 KB: within the 99 KB a block may have on sm_80 .. sm_121
  uint32_t keys[kCapacity];  // candidates (order keys) and their columns
  int32_t cols[kCapacity];
  uint32_t staged_keys[kStaging];  // survivors of a compaction
  int32_t staged_cols[kStaging];
  block::Scratch<kThreads> scratch;
  int32_t n;        // candidates held
  uint32_t tau;     // every candidate has key >= tau; the top k of the row so far too
  float tau_float;  // the float whose key is tau (−inf while tau admits everything)
  int32_t nan_ok;   // NaN (= −inf) is admitted
  int32_t out_count, eq_count;
};

static_assert(sizeof(Shared) <= 99 * 1024);

// Monotone map of floats to unsigned keys (larger float, larger key); NaN sorts as −inf. Real
// keys are >= 0x007fffff, so 0 is free to mean "no entry".
constexpr uint32_t kNegInfKey = 0x007fffffu;
__device__ __forceinline__ uint32_t OrderKey(float v) {
  uint32_t u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) u = 0xff800000u;
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float KeyFloat(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// Calls emit(slot, key, col) for the candidates with key > thresh and need_eq of those equal to
// it (EXACT), or with key >= thresh (!EXACT; every one when `all`), slots [0, count) in no
// particular order; returns count.
template <bool EXACT, class Emit>
__device__ int SelectAbove(Shared& s, int n, bool all, uint32_t thresh, int need_eq, Emit emit) {
  const int lane = threadIdx.x & 31;
  if (threadIdx.x == 0) s.out_count = s.eq_count = 0;
  __syncthreads();
  const unsigned lower = (1u << lane) - 1;
  for (int i0 = 0; i0 < n; i0 += kThreads) {  // uniform trip count for the ballots
    const int i = i0 + threadIdx.x;
    const uint32_t key = i < n ? s.keys[i] : 0u;
    bool take = i < n && (all || key >= thresh);
    if constexpr (EXACT) {  // of the keys equal to thresh, only the first need_eq
      const bool is_eq = take && key == thresh;
      const unsigned eq_mask = __ballot_sync(kFull, is_eq);
      int eq_base = 0;
      if (lane == 0 && eq_mask) eq_base = atomicAdd(&s.eq_count, __popc(eq_mask));
      eq_base = __shfl_sync(kFull, eq_base, 0);
      if (is_eq) take = eq_base + __popc(eq_mask & lower) < need_eq;
    }
    const unsigned take_mask = __ballot_sync(kFull, take);
    int out_base = 0;
    if (lane == 0 && take_mask) out_base = atomicAdd(&s.out_count, __popc(take_mask));
    out_base = __shfl_sync(kFull, out_base, 0);
    if (take) emit(out_base + __popc(take_mask & lower), key, s.cols[i]);
  }
  __syncthreads();
  return s.out_count;
}

// Keeps the candidates SelectAbove picks (through the staging area) and makes thresh the
// admission threshold.
template <bool EXACT>
__device__ void KeepAbove(Shared& s, int n, uint32_t thresh, int need_eq) {
  const int kept =
      SelectAbove<EXACT>(s, n, false, thresh, need_eq, [&](int i, uint32_t key, int32_t col) {
        s.staged_keys[i] = key;
        s.staged_cols[i] = col;
      });
  for (int i = threadIdx.x; i < kept; i += kThreads) {
    s.keys[i] = s.staged_keys[i];
    s.cols[i] = s.staged_cols[i];
  }
  if (threadIdx.x == 0) {
    s.n = kept;
    s.tau = thresh;
    // A threshold at or below −inf (possible for a radix-bin edge) admits every value.
    s.tau_float = thresh <= kNegInfKey ? -INFINITY : KeyFloat(thresh);
    s.nan_ok = thresh <= kNegInfKey;
  }
  __syncthreads();
}

// Makes room: one radix pass finds a threshold keeping k up to k + kTile / 2 candidates; when the
// threshold's bin is more crowded (ties, outliers) an exact select keeps exactly k.
__device__ void Compact(Shared& s, int k) {
  const int n = s.n;
  uint32_t edge;
  int kept;
  block::ApproxKth(s.keys, n, k, s.scratch, &edge, &kept);
  if (kept <= k + kTile / 2) {
    KeepAbove<false>(s, n, edge, 0);
    return;
  }
  uint32_t thresh;
  int need_eq;
  block::SelectKth(s.keys, n, k, s.scratch, &thresh, &need_eq);
  KeepAbove<true>(s, n, thresh, need_eq);
}

// Streams the loader's tiles through the candidate buffer, kDepth tiles of loads in flight. One
// barrier per tile: __syncthreads_or of "no room left for a whole tile", read by each thread after
// its own appends, is true iff it holds for the final count (the last thread to read sees every
// append), so every thread takes the same compaction branch before the next tile.
template <class Loader>
__device__ void StreamCandidates(Shared& s, const Loader& ld, int k) {
  const int lane = threadIdx.x & 31;
  typename Loader::Raw r0, r1, r2, r3;
  if (ld.num_tiles > 0) ld.Fetch(0, r0);
  if (ld.num_tiles > 1) ld.Fetch(1, r1);
  if (ld.num_tiles > 2) ld.Fetch(2, r2);
  if (ld.num_tiles > 3) ld.Fetch(3, r3);
  bool compact = false;
  auto step = [&](typename Loader::Raw& slot, int tile) {
    if (tile >= ld.num_tiles) return;
    const typename Loader::Raw cur = slot;
    if (tile + kDepth < ld.num_tiles) ld.Fetch(tile + kDepth, slot);
    if (compact) Compact(s, k);
    bool take[kPer];
    ld.Admit(tile, cur, s.tau, s.tau_float, s.nan_ok != 0, take);
    int mine = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) mine += take[j];
    if (__any_sync(kFull, mine > 0)) {
      const int incl = block::WarpInclusivePrefix(mine);
      int base = 0;
      if (lane == 31 && incl > 0) base = atomicAdd(&s.n, incl);
      int pos = __shfl_sync(kFull, base, 31) + incl - mine;
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        if (take[j]) {
          s.keys[pos] = ld.Key(cur, j);
          s.cols[pos] = ld.Col(tile, cur, j);
          ++pos;
        }
      }
    }
    compact = __syncthreads_or(*static_cast<volatile int32_t*>(&s.n) > kCapacity - kTile);
  };
  for (int t0 = 0; t0 < ld.num_tiles; t0 += kDepth) {
    step(r0, t0);
    step(r1, t0 + 1);
    step(r2, t0 + 2);
    step(r3, t0 + 3);
  }
}

// Emits the top k of the candidates through emit(slot, key, col) for slots [0, min(n, k)) and
// pad(slot) for [min(n, k), k_out).
template <class Emit, class Pad>
__device__ void EmitTopk(Shared& s, int k, int k_out, Emit emit, Pad pad) {
  const int n = s.n;
  const bool all = n <= k;
  uint32_t thresh = 0;
  int need_eq = 0;
  if (!all) block::SelectKth(s.keys, n, k, s.scratch, &thresh, &need_eq);
  SelectAbove<true>(s, n, all, thresh, need_eq, emit);
  for (int i = min(n, k) + threadIdx.x; i < k_out; i += kThreads) pad(i);
}

// Logits rows: thread-contiguous groups of 4 columns read as float4 (VEC), or 4 columns a
// kThreads apart. Admission compares floats with the threshold's float (keys only for the few
// admitted); −0 may be admitted against +0, which only costs room.
template <bool VEC>
struct LogitsLoader {
  struct Raw {
    float v[kPer];
  };
  const float* row;
  int64_t cb, ce;  // columns [cb, ce)
  int64_t e0;      // first element (VEC: group of 4 columns) of tile 0
  int num_tiles;

  __device__ LogitsLoader(const float* r, int64_t b, int64_t e) : row(r), cb(b), ce(e) {
    e0 = VEC ? b / 4 : b;
    const int64_t e1 = e <= b ? e0 : VEC ? (e + 3) / 4 : e;
    num_tiles =
        static_cast<int>((e1 - e0 + (VEC ? kThreads : kTile) - 1) / (VEC ? kThreads : kTile));
  }
  // Column of entry j of this thread in `tile`.
  __device__ int64_t Column(int tile, int j) const {
    if constexpr (VEC) return (e0 + int64_t{tile} * kThreads + threadIdx.x) * 4 + j;
    return e0 + (int64_t{tile} * kPer + j) * kThreads + threadIdx.x;
  }
  __device__ void Fetch(int tile, Raw& raw) const {
    if constexpr (VEC) {
      const int64_t c = Column(tile, 0);
      float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
      if (c < ce) v = __ldcs(reinterpret_cast<const float4*>(row + c));
      raw.v[0] = v.x;
      raw.v[1] = v.y;
      raw.v[2] = v.z;
      raw.v[3] = v.w;
    } else {
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        const int64_t c = Column(tile, j);
        raw.v[j] = c < ce ? __ldcs(row + c) : 0.0f;
      }
    }
  }
  __device__ void Admit(int tile, const Raw& raw, uint32_t, float tau_float, bool nan_ok,
                        bool* take) const {
    // Tiles inside the range (all but the first and last) skip the column checks.
    const int64_t first = VEC ? Column(tile, 0) : e0 + int64_t{tile} * kTile;
    const bool inside = first >= cb && first + (VEC ? kPer : kTile) <= ce;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const float v = raw.v[j];
      bool in = inside;
      if (!inside) {
        const int64_t c = Column(tile, j);
        in = c >= cb && c < ce;
      }
      take[j] = in && (v >= tau_float || (nan_ok && v != v));
    }
  }
  __device__ uint32_t Key(const Raw& raw, int j) const { return OrderKey(raw.v[j]); }
  __device__ int32_t Col(int tile, const Raw&, int j) const {
    return static_cast<int32_t>(Column(tile, j));
  }
};

// Partial results of the split pass: (key, column) pairs, column −1 for padding; two uint4 (four
// pairs) a thread per tile.
struct PairLoader {
  struct Raw {
    uint4 q[kPer / 2];
  };
  const uint4* pairs;
  int64_t n;  // pairs (even)
  int num_tiles;

  __device__ PairLoader(const uint2* p, int64_t count)
      : pairs(reinterpret_cast<const uint4*>(p)), n(count) {
    num_tiles = static_cast<int>((n + kTile - 1) / kTile);
  }
  __device__ int64_t Quad(int tile, int u) const {
    return (int64_t{tile} * (kPer / 2) + u) * kThreads + threadIdx.x;
  }
  __device__ void Fetch(int tile, Raw& raw) const {
#pragma unroll
    for (int u = 0; u < kPer / 2; ++u) {
      const int64_t q = Quad(tile, u);
      raw.q[u] = 2 * q < n ? pairs[q] : make_uint4(0u, 0xffffffffu, 0u, 0xffffffffu);
    }
  }
  __device__ void Admit(int, const Raw& raw, uint32_t tau, float, bool, bool* take) const {
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const uint4& q = raw.q[j / 2];
      const uint32_t key = j % 2 ? q.z : q.x;
      const int32_t col = static_cast<int32_t>(j % 2 ? q.w : q.y);
      take[j] = col >= 0 && key >= tau;
    }
  }
  __device__ uint32_t Key(const Raw& raw, int j) const {
    return j % 2 ? raw.q[j / 2].z : raw.q[j / 2].x;
  }
  __device__ int32_t Col(int, const Raw& raw, int j) const {
    return static_cast<int32_t>(j % 2 ? raw.q[j / 2].w : raw.q[j / 2].y);
  }
};

__device__ int32_t SlotOf(const kvcache::BlockTableView& bt, int64_t num_blocks, int seq,
                          int32_t row_len, int32_t pos) {
  if (pos < 0 || pos >= row_len || seq < 0 || seq >= bt.num_seqs) return -1;
  const int32_t block_index = pos / kvcache::kBlockTokens;
  if (block_index >= bt.max_blocks_per_seq) return -1;
  const int32_t block = bt.table[seq * bt.row_stride + block_index];
  if (block < 0 || block >= num_blocks) return -1;
  return block * kvcache::kBlockTokens + pos % kvcache::kBlockTokens;
}

struct RowRange {
  int64_t begin, end;
};

__device__ RowRange ClampedRange(const IndexerTopkCudaParams& p, int t) {
  int64_t b = p.col_begin != nullptr ? p.col_begin[t] : 0;
  int64_t e = p.col_end[t];
  b = b < 0 ? 0 : (b > p.logits_stride ? p.logits_stride : b);
  e = e < b ? b : (e > p.logits_stride ? p.logits_stride : e);
  return {b, e};
}

// Writes the final top k of row t (positions relative to the row's begin) and the slots.
__device__ void EmitFinal(Shared& s, const IndexerTopkCudaParams& p, int t, int64_t begin) {
  int32_t* pos_out = p.topk_pos + t * p.topk_stride;
  int32_t* slot_out = p.slots != nullptr ? p.slots + t * p.slots_stride : nullptr;
  const int seq = slot_out != nullptr ? p.row_seq[t] : 0;
  const int32_t row_len = slot_out != nullptr ? p.row_lens[t] : 0;
  EmitTopk(
      s, p.topk, p.topk,
      [&](int i, uint32_t, int32_t col) {
        const int32_t pos = static_cast<int32_t>(col - begin);
        pos_out[i] = pos;
        if (slot_out != nullptr)
          slot_out[i] = SlotOf(p.block_table, p.num_blocks, seq, row_len, pos);
      },
      [&](int i) {
        pos_out[i] = -1;
        if (slot_out != nullptr) slot_out[i] = -1;
      });
}

__device__ void InitShared(Shared& s) {
  if (threadIdx.x == 0) {
    s.n = 0;
    s.tau = 0;
    s.tau_float = -INFINITY;
    s.nan_ok = 1;
  }
  __syncthreads();
}

// grid (T, splits). With one split the result is final; otherwise each CTA writes its segment's
// top k as pairs into ws[t][split][0, k_pad).
template <bool VEC>
__global__ void __launch_bounds__(kThreads, 2)
    TopkSelectKernel(IndexerTopkCudaParams p, int splits, int k_pad, uint2* ws) {
  extern __shared__ __align__(16) unsigned char smem[];
  Shared& s = *reinterpret_cast<Shared*>(smem);
  const int t = blockIdx.x, split = blockIdx.y;
  const RowRange r = ClampedRange(p, t);
  const int64_t seg = ((r.end - r.begin + splits - 1) / splits + 3) / 4 * 4;
  const int64_t cb = r.begin + split * seg < r.end ? r.begin + split * seg : r.end;
  const int64_t ce = cb + seg < r.end ? cb + seg : r.end;
  InitShared(s);
  StreamCandidates(s, LogitsLoader<VEC>(p.logits + t * p.logits_stride, cb, ce), p.topk);
  if (splits == 1) {
    EmitFinal(s, p, t, r.begin);
    return;
  }
  uint2* out = ws + (static_cast<int64_t>(t) * splits + split) * k_pad;
  EmitTopk(
      s, p.topk, k_pad, [&](int i, uint32_t key, int32_t col) { out[i] = make_uint2(key, col); },
      [&](int i) { out[i] = make_uint2(0u, 0xffffffffu); });
}

__global__ void __launch_bounds__(kThreads)
    TopkMergeKernel(IndexerTopkCudaParams p, int splits, int k_pad, const uint2* ws) {
  extern __shared__ __align__(16) unsigned char smem[];
  Shared& s = *reinterpret_cast<Shared*>(smem);
  const int t = blockIdx.x;
  const int64_t n = static_cast<int64_t>(splits) * k_pad;
  InitShared(s);
  StreamCandidates(s, PairLoader(ws + t * n, n), p.topk);
  EmitFinal(s, p, t, ClampedRange(p, t).begin);
}

// Radix path for few rows (plan.radix): every row is split over `splits` CTAs in each of three
// launches, so one row streams from many SMs and no CTA merges k candidates per split.
//   1. RadixHistKernel: a histogram of the top 12 bits of the order keys of the row, shared-memory
//      counts added into the row's global histogram.
//   2. RadixSelectKernel: every CTA of the row finds the bin b holding the k-th largest key from
//      that histogram (the same answer in each), re-reads its segment and writes the keys above b
//      straight to the output (their count is < k), and appends the keys in b to the row's
//      candidate list.
//   3. RadixFinishKernel, one CTA a row: the exact top (k − above) of the candidates (block radix
//      select in shared memory) fills the rest of the output, then −1 padding. A row whose bin b
//      holds more than kCapacity keys (ties, or a very long row) is redone by the streaming
//      one-CTA algorithm instead.
// The histogram and counters are zeroed by a memset node in front of launch 1.
constexpr int kRadixShift = 20;  // digit = key >> 20: sign, exponent, 3 mantissa bits
constexpr int kRadixBins = 1 << (32 - kRadixShift);
constexpr int kRadixCandidates = kCapacity;  // what RadixFinishKernel holds in Shared
constexpr int64_t kRadixMinCols = 16384, kRadixMaxCols = 1 << 19;
constexpr int kRadixMaxRows = 32;  // above, two reads of the rows cost more than one CTA a row

// A row's workspace. alignas(256): the kernels index rows as ws[t] (sizeof(RadixRow) apart) and
// the memset zeroes them kRadixRowBytes apart; the two must agree, or a row's counters past the
// first start from whatever the workspace held (a pool's recycled memory).
struct alignas(256) RadixRow {
  uint32_t hist[kRadixBins];
  int32_t above_n;  // keys written by RadixSelectKernel (those above the k-th's bin)
  int32_t cand_n;   // keys in the k-th's bin (may exceed kRadixCandidates: then not all stored)
  int32_t pad[2];
  uint2 cand[kRadixCandidates];  // (key, column)
};
constexpr size_t kRadixZeroBytes = offsetof(RadixRow, cand);
constexpr size_t kRadixRowBytes = (sizeof(RadixRow) + 255) / 256 * 256;
static_assert(sizeof(RadixRow) == kRadixRowBytes, "row stride of the kernels and of the memset");

// This CTA's columns of row t: [cb, ce), 4-aligned segment starts (as TopkSelectKernel).
__device__ RowRange SplitSegment(const RowRange& r, int splits, int split) {
  const int64_t seg = ((r.end - r.begin + splits - 1) / splits + 3) / 4 * 4;
  const int64_t cb = r.begin + split * seg < r.end ? r.begin + split * seg : r.end;
  return {cb, cb + seg < r.end ? cb + seg : r.end};
}

// Calls f(key, column, in_range) for every element slot of this thread's tiles of [cb, ce), tiles
// in lockstep across the CTA (uniform trip count, so f may use warp collectives), kDepth tiles of
// loads in flight.
template <bool VEC, class F>
__device__ void ForEachKey(const LogitsLoader<VEC>& ld, F f) {
  for (int t0 = 0; t0 < ld.num_tiles; t0 += kDepth) {
    typename LogitsLoader<VEC>::Raw raw[kDepth];
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      if (t0 + d < ld.num_tiles) ld.Fetch(t0 + d, raw[d]);
    }
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      if (t0 + d >= ld.num_tiles) break;
#pragma unroll
      for (int j = 0; j < kPer; ++j) {
        const int64_t c = ld.Column(t0 + d, j);
        f(OrderKey(raw[d].v[j]), c, c >= ld.cb && c < ld.ce);
      }
    }
  }
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads, 2)
    RadixHistKernel(IndexerTopkCudaParams p, int splits, RadixRow* ws) {
  __shared__ uint32_t hist[kRadixBins];
  const int t = blockIdx.x;
  const RowRange r = ClampedRange(p, t);
  if (r.end - r.begin <= p.topk) return;  // every column is selected; no histogram needed
  const RowRange seg = SplitSegment(r, splits, blockIdx.y);
  for (int i = threadIdx.x; i < kRadixBins; i += kThreads) hist[i] = 0;
  __syncthreads();
  ForEachKey(LogitsLoader<VEC>(p.logits + t * p.logits_stride, seg.begin, seg.end),
             [&](uint32_t key, int64_t, bool in) {
               if (in) atomicAdd(&hist[key >> kRadixShift], 1u);
             });
  __syncthreads();
  uint32_t* global = ws[t].hist;
  for (int i = threadIdx.x; i < kRadixBins; i += kThreads) {
    if (hist[i] != 0) atomicAdd(&global[i], hist[i]);
  }
}

// Output entry i of row t: position col − begin, and its slot when the mapping is fused.
struct RowOutput {
  int32_t* pos;
  int32_t* slot;  // null: no mapping
  int64_t begin;
  int seq;
  int32_t row_len;

  __device__ RowOutput(const IndexerTopkCudaParams& p, int t, int64_t b) : begin(b) {
    pos = p.topk_pos + t * p.topk_stride;
    slot = p.slots != nullptr ? p.slots + t * p.slots_stride : nullptr;
    seq = slot != nullptr ? p.row_seq[t] : 0;
    row_len = slot != nullptr ? p.row_lens[t] : 0;
  }
  __device__ void Put(const IndexerTopkCudaParams& p, int i, int64_t col) const {
    const int32_t q = static_cast<int32_t>(col - begin);
    pos[i] = q;
    if (slot != nullptr) slot[i] = SlotOf(p.block_table, p.num_blocks, seq, row_len, q);
  }
  __device__ void Pad(int i) const {
    pos[i] = -1;
    if (slot != nullptr) slot[i] = -1;
  }
};

// Index of this lane's entry among `pred` lanes of the warp, after adding the warp's count to
// *counter (one atomic a warp).
__device__ __forceinline__ int WarpAppend(bool pred, int32_t* counter) {
  const unsigned mask = __ballot_sync(kFull, pred);
  const int lane = threadIdx.x & 31;
  int base = 0;
  if (lane == 0 && mask != 0) base = atomicAdd(counter, __popc(mask));
  base = __shfl_sync(kFull, base, 0);
  return base + __popc(mask & ((1u << lane) - 1));
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads, 2)
    RadixSelectKernel(IndexerTopkCudaParams p, int splits, RadixRow* ws) {
  __shared__ block::Scratch<kThreads> scratch;
  __shared__ int sel_bin;
  const int t = blockIdx.x;
  const RowRange r = ClampedRange(p, t);
  const int k = p.topk;
  int bin = -1;  // every column is above the k-th's bin when the row has no more than k
  if (r.end - r.begin > k) {
    constexpr int kPerThread = kRadixBins / kThreads;
    int h[kPerThread], sum = 0;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      sum += h[j] = static_cast<int>(ws[t].hist[threadIdx.x * kPerThread + j]);
    }
    int a = block::SuffixExclusive(sum, scratch);
#pragma unroll
    for (int j = kPerThread - 1; j >= 0; --j) {
      if (a < k && k <= a + h[j]) sel_bin = threadIdx.x * kPerThread + j;
      a += h[j];
    }
    __syncthreads();
    bin = sel_bin;
  }
  const RowRange seg = SplitSegment(r, splits, blockIdx.y);
  const RowOutput out(p, t, r.begin);
  RadixRow& row = ws[t];
  ForEachKey(LogitsLoader<VEC>(p.logits + t * p.logits_stride, seg.begin, seg.end),
             [&](uint32_t key, int64_t col, bool in) {
               const int digit = static_cast<int>(key >> kRadixShift);
               const bool above = in && digit > bin, cand = in && digit == bin;
               if (!__any_sync(kFull, above || cand)) return;  // most of a long row
               const int i = WarpAppend(above, &row.above_n);
               if (above) out.Put(p, i, col);
               const int c = WarpAppend(cand, &row.cand_n);
               if (cand && c < kRadixCandidates) {
                 row.cand[c] = make_uint2(key, static_cast<uint32_t>(col));
               }
             });
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads)
    RadixFinishKernel(IndexerTopkCudaParams p, const RadixRow* ws) {
  extern __shared__ __align__(16) unsigned char smem[];
  Shared& s = *reinterpret_cast<Shared*>(smem);
  const int t = blockIdx.x;
  const RowRange r = ClampedRange(p, t);
  const int64_t len = r.end - r.begin;
  const int k = p.topk;
  const RadixRow& row = ws[t];
  const int cand_n = row.cand_n;
  if (len > k && cand_n > kRadixCandidates) {  // the bin did not fit: redo the row in one CTA
    InitShared(s);
    StreamCandidates(s, LogitsLoader<VEC>(p.logits + t * p.logits_stride, r.begin, r.end), k);
    EmitFinal(s, p, t, r.begin);
    return;
  }
  const RowOutput out(p, t, r.begin);
  if (len > k) {
    const int above = row.above_n, need = k - above;  // 1 <= need <= cand_n
    for (int i = threadIdx.x; i < cand_n; i += kThreads) {
      const uint2 c = row.cand[i];
      s.keys[i] = c.x;
      s.cols[i] = static_cast<int32_t>(c.y);
    }
    __syncthreads();
    uint32_t thresh;
    int need_eq;
    block::SelectKth(s.keys, cand_n, need, s.scratch, &thresh, &need_eq);
    SelectAbove<true>(s, cand_n, false, thresh, need_eq,
                      [&](int i, uint32_t, int32_t col) { out.Put(p, above + i, col); });
  }
  for (int64_t i = min(len, int64_t{k}) + threadIdx.x; i < k; i += kThreads) {
    out.Pad(static_cast<int>(i));
  }
}

__global__ void MapTopkToSlotsKernel(MapTopkToSlotsCudaParams p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(p.num_tokens) * p.topk) return;
  const int t = static_cast<int>(i / p.topk), j = static_cast<int>(i % p.topk);
  p.slots[t * p.slots_stride + j] = SlotOf(p.block_table, p.num_blocks, p.row_seq[t], p.row_lens[t],
                                           p.topk_pos[t * p.topk_stride + j]);
}

template <typename Kernel>
cudaError_t LaunchWithSmem(Kernel kernel, dim3 grid, cudaStream_t stream,
                           const IndexerTopkCudaParams& p, int splits, int k_pad, uint2* ws) {
  constexpr int kSmem = sizeof(Shared);
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
      e != cudaSuccess) {
    return e;
  }
  kernel<<<grid, kThreads, kSmem, stream>>>(p, splits, k_pad, ws);
  return cudaGetLastError();
}

template <bool VEC>
cudaError_t LaunchRadix(const IndexerTopkCudaParams& p, int splits, RadixRow* ws,
                        cudaStream_t stream) {
  if (cudaError_t e =
          cudaMemset2DAsync(ws, kRadixRowBytes, 0, kRadixZeroBytes, p.num_tokens, stream);
      e != cudaSuccess) {
    return e;
  }
  const dim3 grid(p.num_tokens, splits);
  RadixHistKernel<VEC><<<grid, kThreads, 0, stream>>>(p, splits, ws);
  RadixSelectKernel<VEC><<<grid, kThreads, 0, stream>>>(p, splits, ws);
  constexpr int kSmem = sizeof(Shared);
  if (cudaError_t e = cudaFuncSetAttribute(RadixFinishKernel<VEC>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
      e != cudaSuccess) {
    return e;
  }
  RadixFinishKernel<VEC><<<p.num_tokens, kThreads, kSmem, stream>>>(p, ws);
  return cudaGetLastError();
}

bool ValidTable(const kvcache::BlockTableView& bt) {
  return bt.num_seqs >= 0 && bt.max_blocks_per_seq >= 0 && bt.row_stride >= bt.max_blocks_per_seq &&
         (bt.num_seqs == 0 || bt.table != nullptr);
}

}  // namespace

IndexerTopkPlan PlanIndexerTopkCuda(int num_tokens, int topk, int64_t max_cols, int num_sms) {
  IndexerTopkPlan plan;
  if (num_tokens <= 0 || topk <= 0) return plan;
  if (num_tokens <= kRadixMaxRows && max_cols >= kRadixMinCols && max_cols <= kRadixMaxCols) {
    // Radix path: fill two waves' worth of CTAs (two resident per SM), >= 4096 columns each.
    const int64_t by_sms = std::max(1, 2 * num_sms / num_tokens);
    plan.num_splits =
        static_cast<int>(std::min<int64_t>({by_sms, max_cols / 4096, int64_t{kMaxSplits}}));
    plan.radix = true;
    plan.workspace_bytes = static_cast<size_t>(num_tokens) * kRadixRowBytes;
    return plan;
  }
  if (num_tokens < 2 * num_sms) {  // two CTAs fit a multiprocessor: fill one wave
    const int64_t by_sms = 2 * num_sms / num_tokens;
    const int64_t by_cols = (max_cols + kMinSplitCols - 1) / kMinSplitCols;
    plan.num_splits = static_cast<int>(
        std::max<int64_t>(1, std::min<int64_t>({by_sms, by_cols, int64_t{kMaxSplits}})));
  }
  if (plan.num_splits > 1) {
    const int64_t k_pad = (topk + 1) / 2 * 2;
    plan.workspace_bytes = static_cast<size_t>(num_tokens) * plan.num_splits * k_pad * 8;
  }
  return plan;
}

cudaError_t IndexerTopkCuda(const IndexerTopkCudaParams& p, const IndexerTopkPlan& plan,
                            void* workspace, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.topk < 0 || p.topk > kIndexerTopkMaxK || p.logits_stride < 0 ||
      p.logits_stride > INT32_MAX || p.topk_stride < p.topk || plan.num_splits < 1 ||
      plan.num_splits > kMaxSplits) {
    return cudaErrorInvalidValue;
  }
  if (p.num_tokens == 0 || p.topk == 0) return cudaSuccess;
  if (p.logits == nullptr || p.col_end == nullptr || p.topk_pos == nullptr ||
      (plan.num_splits > 1 &&
       (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % 16 != 0))) {
    return cudaErrorInvalidValue;
  }
  if (p.slots != nullptr &&
      (p.slots_stride < p.topk || p.row_seq == nullptr || p.row_lens == nullptr ||
       !ValidTable(p.block_table) || p.num_blocks > INT32_MAX / kvcache::kBlockTokens)) {
    return cudaErrorInvalidValue;
  }
  const int k_pad = (p.topk + 1) / 2 * 2;
  const bool vec = reinterpret_cast<uintptr_t>(p.logits) % 16 == 0 && p.logits_stride % 4 == 0;
  if (plan.radix) {
    if (p.num_tokens > kRadixMaxRows || workspace == nullptr ||
        reinterpret_cast<uintptr_t>(workspace) % 16 != 0) {
      return cudaErrorInvalidValue;
    }
    return vec ? LaunchRadix<true>(p, plan.num_splits, static_cast<RadixRow*>(workspace), stream)
               : LaunchRadix<false>(p, plan.num_splits, static_cast<RadixRow*>(workspace), stream);
  }
  uint2* ws = static_cast<uint2*>(workspace);
  const dim3 grid(p.num_tokens, plan.num_splits);
  const cudaError_t e =
      vec ? LaunchWithSmem(TopkSelectKernel<true>, grid, stream, p, plan.num_splits, k_pad, ws)
          : LaunchWithSmem(TopkSelectKernel<false>, grid, stream, p, plan.num_splits, k_pad, ws);
  if (e != cudaSuccess || plan.num_splits == 1) return e;
  return LaunchWithSmem(TopkMergeKernel, dim3(p.num_tokens), stream, p, plan.num_splits, k_pad, ws);
}

cudaError_t MapTopkToSlotsCuda(const MapTopkToSlotsCudaParams& p, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.topk < 0 || p.topk_stride < p.topk || p.slots_stride < p.topk ||
      !ValidTable(p.block_table) || p.num_blocks > INT32_MAX / kvcache::kBlockTokens) {
    return cudaErrorInvalidValue;
  }
  const int64_t n = static_cast<int64_t>(p.num_tokens) * p.topk;
  if (n == 0) return cudaSuccess;
  if (p.topk_pos == nullptr || p.slots == nullptr || p.row_seq == nullptr ||
      p.row_lens == nullptr) {
    return cudaErrorInvalidValue;
  }
  MapTopkToSlotsKernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace strata::kernels

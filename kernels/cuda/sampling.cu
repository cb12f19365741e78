// SampleCuda (sampling.h): one 512-thread CTA per row. Phases (each a CTA collective):
//   stats     raw max / log-sum-exp / argmax, max z
//   top-k     the k-th largest z key by three radix passes over the row (11, 11, 10 bits)
//   top-p     gather the 4096 largest kept tokens, sort them by (key desc, index asc), scan their
//             weights: the prefix reaching top_p · total is CPU's kept set (else: bisection)
//   draw      small kept sets: sort by index and scan; large ones: per-thread contiguous chunks,
//             a scan over the chunks, and one warp walks the chunk holding the crossing
// Keys order z: the float's bits with the sign flipped (negatives inverted), −0 folded into +0
// (the CPU twin compares values, for which ±0 are equal).
#include <climits>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/philox.h"
#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/sampling.h"

namespace strata::kernels {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kCap = 4096;  // tokens a top-p row sorts in shared memory
constexpr unsigned kFull = 0xffffffffu;

struct Smem {
  uint64_t cand[kCap];
  double w[kCap];
  block::Scratch<kThreads> sel;
  double red_d[kWarps];
  float red_f[kWarps];
  int red_i[kWarps];
  int count;
  int found;
  int walk_chunk;
  int token;
  double walk_base;
  int walk_theta_base;
};

struct Row {
  const float* x;
  int64_t n;
  float temperature;
};

__device__ __forceinline__ float Z(const Row& r, float v) { return __fdiv_rn(v, r.temperature); }

// Calls f(i, x[i]) for the indices i ≡ threadIdx.x (mod kThreads) in ascending order, with kUnroll
// loads in flight before their values are used (a row pass is latency-bound otherwise: one CTA
// per row, each thread walking ~300 values).
constexpr int kUnroll = 8;
template <typename F>
__device__ __forceinline__ void ForEach(const float* x, int64_t n, F&& f) {
  for (int64_t i0 = threadIdx.x; i0 < n; i0 += int64_t{kThreads} * kUnroll) {
    float v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + int64_t{u} * kThreads;
      v[u] = i < n ? x[i] : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + int64_t{u} * kThreads;
      if (i < n) f(i, v[u]);
    }
  }
}

// The same over a contiguous range [lo, hi) of one thread.
template <typename F>
__device__ __forceinline__ void ForRange(const float* x, int64_t lo, int64_t hi, F&& f) {
  for (int64_t i0 = lo; i0 < hi; i0 += kUnroll) {
    float v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = i0 + u < hi ? x[i0 + u] : 0.0f;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (i0 + u < hi) f(i0 + u, v[u]);
    }
  }
}

__device__ __forceinline__ uint32_t Key(float z) {
  const uint32_t u = __float_as_uint(z == 0.0f ? 0.0f : z);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float KeyValue(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

__device__ __forceinline__ double Weight(float z, float max_z) {
  return exp(static_cast<double>(z) - static_cast<double>(max_z));
}

// ----- Block reductions (every thread gets the result; each ends synchronised) -----------------

__device__ double BlockSum(double v, Smem& s) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  if ((threadIdx.x & 31) == 0) s.red_d[threadIdx.x >> 5] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kWarps; ++w) total += s.red_d[w];
  __syncthreads();
  return total;
}

__device__ int BlockSumInt(int v, Smem& s) {
  v = __reduce_add_sync(kFull, v);
  if ((threadIdx.x & 31) == 0) s.red_i[threadIdx.x >> 5] = v;
  __syncthreads();
  int total = 0;
  for (int w = 0; w < kWarps; ++w) total += s.red_i[w];
  __syncthreads();
  return total;
}

__device__ float BlockMax(float v, Smem& s) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  if ((threadIdx.x & 31) == 0) s.red_f[threadIdx.x >> 5] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m = fmaxf(m, s.red_f[w]);
  __syncthreads();
  return m;
}

// Exclusive prefix over threads of a double (thread order), and the total.
__device__ double BlockExclusiveSum(double v, Smem& s, double* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  double incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    const double y = __shfl_up_sync(kFull, incl, o);
    if (lane >= o) incl += y;
  }
  if (lane == 31) s.red_d[warp] = incl;
  __syncthreads();
  double below = 0.0, all = 0.0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) below += s.red_d[w];
    all += s.red_d[w];
  }
  __syncthreads();
  *total = all;
  return below + incl - v;
}

// ----- Selection -------------------------------------------------------------------------------

// The key of the k-th largest non-NaN z of the row (1 <= k); *ok = false when fewer exist.
__device__ uint32_t SelectKthKey(const Row& r, int k, Smem& s, bool* ok) {
  constexpr int kShift[3] = {21, 10, 0}, kWidth[3] = {11, 11, 10};
  constexpr int kPer = block::kBins / kThreads;
  uint32_t prefix = 0, mask = 0;
  int krem = k;
  *ok = true;
#pragma unroll
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = kShift[pass];
    const uint32_t digit_mask = (1u << kWidth[pass]) - 1;
    for (int b = threadIdx.x; b < block::kBins; b += kThreads) s.sel.hist[b] = 0;
    if (threadIdx.x == 0) s.sel.sel_bin = -1;
    __syncthreads();
    ForEach(r.x, r.n, [&](int64_t, float v) {
      const float z = Z(r, v);
      if (isnan(z)) return;
      const uint32_t key = Key(z);
      if ((key & mask) == prefix) atomicAdd(&s.sel.hist[(key >> shift) & digit_mask], 1);
    });
    __syncthreads();
    const int b0 = threadIdx.x * kPer;
    int h[kPer], sum = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) sum += h[j] = s.sel.hist[b0 + j];
    int above = block::SuffixExclusive(sum, s.sel);
#pragma unroll
    for (int j = kPer - 1; j >= 0; --j) {
      if (above < krem && krem <= above + h[j]) {
        s.sel.sel_bin = b0 + j;
        s.sel.sel_above = above;
      }
      above += h[j];
    }
    __syncthreads();
    const int bin = s.sel.sel_bin, bin_above = s.sel.sel_above;
    __syncthreads();
    if (bin < 0) {
      *ok = false;
      return 0;
    }
    krem -= bin_above;
    prefix |= static_cast<uint32_t>(bin) << shift;
    mask |= digit_mask << shift;
  }
  return prefix;
}

// Tokens with key >= lo (> lo when strict) into s.cand as (~key << 32 | index), in no order.
// Returns how many there are (entries past kCap are not stored).
__device__ int Gather(const Row& r, uint32_t lo, bool strict, Smem& s) {
  if (threadIdx.x == 0) s.count = 0;
  __syncthreads();
  ForEach(r.x, r.n, [&](int64_t i, float v) {
    const float z = Z(r, v);
    if (isnan(z)) return;
    const uint32_t key = Key(z);
    if (strict ? key > lo : key >= lo) {
      const int pos = atomicAdd(&s.count, 1);
      if (pos < kCap) s.cand[pos] = (static_cast<uint64_t>(~key) << 32) | static_cast<uint64_t>(i);
    }
  });
  __syncthreads();
  const int n = s.count;
  __syncthreads();
  return n;
}

// Ascending bitonic sort of s.cand[0, n), n <= kCap.
__device__ void Sort(int n, Smem& s) {
  int np = 1;
  while (np < n) np <<= 1;
  for (int i = n + threadIdx.x; i < np; i += kThreads) s.cand[i] = ~0ull;
  __syncthreads();
  for (int k = 2; k <= np; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < np; i += kThreads) {
        const int o = i ^ j;
        if (o > i) {
          const uint64_t a = s.cand[i], b = s.cand[o];
          if ((a > b) == ((i & k) == 0)) {
            s.cand[i] = b;
            s.cand[o] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

// In-place inclusive scan of s.w[0, n): contiguous runs per thread, then a scan over threads.
__device__ void ScanWeights(int n, Smem& s) {
  const int per = (n + kThreads - 1) / kThreads, lo = threadIdx.x * per, hi = min(n, lo + per);
  double run = 0.0;
  for (int i = lo; i < hi; ++i) run = s.w[i] += run;
  double total;
  const double below = BlockExclusiveSum(run, s, &total);
  for (int i = lo; i < hi; ++i) s.w[i] += below;
  __syncthreads();
}

// The first j < n with s.w[j] (inclusive) `>= target` (or `> target` when strict) and, for the
// strict form, a positive own weight; −1 if none. s.w must be a non-decreasing scan.
__device__ int FirstReaching(int n, double target, bool strict, Smem& s) {
  if (threadIdx.x == 0) s.found = -1;
  __syncthreads();
  for (int j = threadIdx.x; j < n; j += kThreads) {
    const double prev = j == 0 ? 0.0 : s.w[j - 1];
    const bool here = strict ? (s.w[j] > target && s.w[j] > prev) : s.w[j] >= target;
    const bool before = j > 0 && (strict ? prev > target : prev >= target);
    if (here && !before) s.found = j;
  }
  __syncthreads();
  const int j = s.found;
  __syncthreads();
  return j;
}

// Draw among s.cand[0, n) (any order, n <= kCap): sort by index, scan the weights in vocabulary
// order, first token whose cumulative mass exceeds u · total; the last positive-weight token if
// rounding leaves none. Returns the token.
__device__ int DrawSmall(int n, float max_z, double u, const double* total_in, Smem& s) {
  for (int j = threadIdx.x; j < n; j += kThreads) {
    const uint64_t c = s.cand[j];
    s.cand[j] = (c << 32) | (~(c >> 32) & 0xffffffffull);  // (index << 32 | key)
  }
  __syncthreads();
  Sort(n, s);
  for (int j = threadIdx.x; j < n; j += kThreads) {
    s.w[j] = Weight(KeyValue(static_cast<uint32_t>(s.cand[j])), max_z);
  }
  __syncthreads();
  ScanWeights(n, s);
  const double total = total_in != nullptr ? *total_in : s.w[n - 1];
  int j = FirstReaching(n, u * total, /*strict=*/true, s);
  if (j < 0) {  // the last positive-weight token
    if (threadIdx.x == 0) {
      j = n - 1;
      while (j > 0 && s.w[j] == s.w[j - 1]) --j;
      s.found = j;
    }
    __syncthreads();
    j = s.found;
  }
  const int token = static_cast<int>(s.cand[j] >> 32);
  __syncthreads();
  return token;
}

// Kept-set membership beyond the top-k threshold: with a top-p cut at key theta, tokens above it
// and the first c_theta tokens at it (by index).
struct Cut {
  bool active = false;
  uint32_t theta = 0;
  int c_theta = 0;
};

// Draw over the whole row: thread t owns tokens [t·L, t·L + L). Returns the token.
__device__ int DrawChunked(const Row& r, uint32_t thr_key, float max_z, const Cut& cut, double u,
                           Smem& s) {
  const int64_t per = (r.n + kThreads - 1) / kThreads;
  const int64_t lo = threadIdx.x * per, hi = min(r.n, lo + per);
  const double w_theta = cut.active ? Weight(KeyValue(cut.theta), max_z) : 0.0;
  double mass = 0.0;
  int n_theta = 0;
  ForRange(r.x, lo, hi, [&](int64_t, float v) {
    const float z = Z(r, v);
    if (isnan(z)) return;
    const uint32_t key = Key(z);
    if (key < thr_key || (cut.active && key < cut.theta)) return;
    const double w = Weight(z, max_z);
    if (w == 0.0) return;
    if (cut.active && key == cut.theta) {
      ++n_theta;
    } else {
      mass += w;
    }
  });
  const int theta_before = block::PrefixExclusive(n_theta, s.sel);
  if (cut.active) mass += max(0, min(n_theta, cut.c_theta - theta_before)) * w_theta;
  double total;
  const double excl = BlockExclusiveSum(mass, s, &total);
  const double target = u * total;
  // The first chunk whose inclusive mass exceeds the target; the last chunk with mass if rounding
  // leaves none.
  if (threadIdx.x == 0) s.walk_chunk = INT_MAX;
  __syncthreads();
  if (mass > 0.0 && excl + mass > target) atomicMin(&s.walk_chunk, static_cast<int>(threadIdx.x));
  __syncthreads();
  const bool none = s.walk_chunk == INT_MAX;
  __syncthreads();
  if (none) {
    if (threadIdx.x == 0) s.walk_chunk = 0;
    __syncthreads();
    if (mass > 0.0) atomicMax(&s.walk_chunk, static_cast<int>(threadIdx.x));
    __syncthreads();
  }
  if (threadIdx.x == s.walk_chunk) {
    s.walk_base = excl;
    s.walk_theta_base = theta_before;
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x, chunk = s.walk_chunk;
    const int64_t c_lo = chunk * per, c_hi = min(r.n, c_lo + per);
    double base = s.walk_base;
    int theta_seen = s.walk_theta_base, token = -1, last = -1;
    for (int64_t off = c_lo; off < c_hi; off += 32) {
      const int64_t i = off + lane;
      double w = 0.0;
      bool at_theta = false;
      if (i < c_hi) {
        const float z = Z(r, r.x[i]);
        if (!isnan(z)) {
          const uint32_t key = Key(z);
          if (key >= thr_key && !(cut.active && key < cut.theta)) {
            w = Weight(z, max_z);
            at_theta = cut.active && key == cut.theta && w > 0.0;
          }
        }
      }
      const uint32_t theta_lanes = __ballot_sync(kFull, at_theta);
      if (at_theta && theta_seen + __popc(theta_lanes & ((1u << lane) - 1)) >= cut.c_theta) {
        w = 0.0;
      }
      theta_seen += __popc(theta_lanes);
      double incl = w;
      for (int o = 1; o < 32; o <<= 1) {
        const double y = __shfl_up_sync(kFull, incl, o);
        if (lane >= o) incl += y;
      }
      const uint32_t kept = __ballot_sync(kFull, w > 0.0);
      const uint32_t hit = __ballot_sync(kFull, w > 0.0 && base + incl > target);
      if (kept != 0) last = static_cast<int>(off) + 31 - __clz(kept);
      if (hit != 0) {
        token = static_cast<int>(off) + __ffs(hit) - 1;
        break;
      }
      base += __shfl_sync(kFull, incl, 31);
    }
    if (lane == 0) s.token = token >= 0 ? token : max(last, 0);
  }
  __syncthreads();
  const int token = s.token;
  __syncthreads();
  return token;
}

// Σ weights of kept tokens with key >= kappa (kappa may be 2^32: none).
__device__ double MassAtLeast(const Row& r, uint32_t thr_key, float max_z, uint64_t kappa,
                              Smem& s) {
  double mass = 0.0;
  ForEach(r.x, r.n, [&](int64_t, float v) {
    const float z = Z(r, v);
    if (isnan(z)) return;
    const uint32_t key = Key(z);
    if (key >= thr_key && key >= kappa) mass += Weight(z, max_z);
  });
  return BlockSum(mass, s);
}

__global__ void __launch_bounds__(kThreads, 1) SampleKernel(const SampleParams p, int64_t stride) {
  extern __shared__ __align__(16) uint8_t smem_raw[];
  Smem& s = *reinterpret_cast<Smem*>(smem_raw);
  const int64_t row = blockIdx.x;
  const SamplingOptions o = p.options[row];
  const uint64_t step = p.steps[row];
  const float* x = p.logits + row * stride;
  const int64_t n = p.vocab_size;
  const bool greedy = !(o.temperature > 0.0f) || isinf(o.temperature);

  // Stats: online log-sum-exp (fp32 exp, double sum), argmax, max z.
  float m = -INFINITY, best_v = -INFINITY, zmax = -INFINITY;
  double sum = 0.0;
  int best_i = -1;
  ForEach(x, n, [&](int64_t i, float v) {
    if (isnan(v)) return;
    if (best_i < 0 || v > best_v) {
      best_v = v;
      best_i = static_cast<int>(i);
    }
    if (v > m) {
      sum = sum * expf(m - v) + 1.0;
      m = v;
    } else if (v != -INFINITY) {
      sum += expf(v - m);
    }
    if (!greedy) zmax = fmaxf(zmax, __fdiv_rn(v, o.temperature));
  });
  const float row_max = BlockMax(m, s);
  const double row_sum = BlockSum(m == -INFINITY ? 0.0 : sum * expf(m - row_max), s);
  zmax = BlockMax(zmax, s);
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(kFull, best_v, off);
    const int oi = __shfl_xor_sync(kFull, best_i, off);
    if (oi >= 0 && (best_i < 0 || ov > best_v || (ov == best_v && oi < best_i))) {
      best_v = ov;
      best_i = oi;
    }
  }
  if ((threadIdx.x & 31) == 0) {
    s.red_f[threadIdx.x >> 5] = best_v;
    s.red_i[threadIdx.x >> 5] = best_i;
  }
  __syncthreads();
  int argmax = -1;
  float argmax_v = -INFINITY;
  for (int w = 0; w < kWarps; ++w) {
    const int oi = s.red_i[w];
    if (oi >= 0 &&
        (argmax < 0 || s.red_f[w] > argmax_v || (s.red_f[w] == argmax_v && oi < argmax))) {
      argmax = oi;
      argmax_v = s.red_f[w];
    }
  }
  __syncthreads();
  if (argmax < 0 || isnan(x[0])) argmax = 0;

  int token = argmax;
  if (!greedy && isfinite(zmax)) {
    const Row r{x, n, o.temperature};
    const double u = PhiloxUniform(o.seed, step, 0);
    const bool top_k_on = o.top_k > 0 && o.top_k < n;
    const bool top_p_on = o.top_p > 0.0f && o.top_p < 1.0f;
    uint32_t thr_key = 0;
    if (top_k_on) {
      bool ok;
      const uint32_t k = SelectKthKey(r, o.top_k, s, &ok);
      if (ok) thr_key = k;
    }
    if (top_p_on) {
      // Candidates: the kept set itself when top-k bounds it by kCap (then the candidates' sum is
      // the total), else the kCap largest kept tokens and a pass for the total.
      const bool bounded = top_k_on && o.top_k <= kCap;
      double total = 0.0;
      int kept = 0;
      uint32_t cand_key = thr_key;
      if (!bounded) {
        double mass = 0.0;
        ForEach(x, n, [&](int64_t, float v) {
          const float z = Z(r, v);
          if (isnan(z) || Key(z) < thr_key) return;
          ++kept;
          mass += Weight(z, zmax);
        });
        total = BlockSum(mass, s);
        kept = BlockSumInt(kept, s);
        if (kept > kCap) {
          bool ok;
          const uint32_t k = SelectKthKey(r, kCap, s, &ok);
          if (ok && k > cand_key) cand_key = k;
        }
      }
      int count = Gather(r, cand_key, /*strict=*/false, s);
      const bool complete = bounded ? count <= kCap : count == kept;
      if (count > kCap) count = Gather(r, cand_key, /*strict=*/true, s);
      Sort(count, s);
      for (int j = threadIdx.x; j < count; j += kThreads) {
        s.w[j] = Weight(KeyValue(~static_cast<uint32_t>(s.cand[j] >> 32)), zmax);
      }
      __syncthreads();
      ScanWeights(count, s);
      if (bounded) {
        if (complete) {
          total = s.w[count - 1];
        } else {  // ties at the top-k threshold overflowed the candidates: a pass for the total
          double mass = 0.0;
          ForEach(x, n, [&](int64_t, float v) {
            const float z = Z(r, v);
            if (!isnan(z) && Key(z) >= thr_key) mass += Weight(z, zmax);
          });
          total = BlockSum(mass, s);
        }
      }
      const double target = static_cast<double>(o.top_p) * total;
      int last = FirstReaching(count, target, /*strict=*/false, s);
      if (last < 0 && complete) last = count - 1;
      if (last >= 0) {
        const double kept_total = s.w[last];
        __syncthreads();
        token = DrawSmall(last + 1, zmax, u, &kept_total, s);
      } else {
        // Bisection: theta = the largest key whose kept mass at or above it reaches the target.
        uint64_t lo = 0, hi = uint64_t{1} << 32;
        double mass_hi = 0.0;
        while (hi - lo > 1) {
          const uint64_t mid = (lo + hi) >> 1;
          const double m_mid = MassAtLeast(r, thr_key, zmax, mid, s);
          if (m_mid >= target) {
            lo = mid;
          } else {
            hi = mid;
            mass_hi = m_mid;
          }
        }
        Cut cut{.active = true, .theta = static_cast<uint32_t>(lo), .c_theta = 0};
        int n_theta = 0;
        ForEach(x, n, [&](int64_t, float v) {
          const float z = Z(r, v);
          if (!isnan(z) && Key(z) == cut.theta && Key(z) >= thr_key && Weight(z, zmax) > 0.0) {
            ++n_theta;
          }
        });
        n_theta = BlockSumInt(n_theta, s);
        const double w_theta = Weight(KeyValue(cut.theta), zmax);
        double cumulative = mass_hi;
        while (cut.c_theta < n_theta && cumulative < target) {
          cumulative += w_theta;
          ++cut.c_theta;
        }
        token = DrawChunked(r, thr_key, zmax, cut, u, s);
      }
    } else if (top_k_on && o.top_k <= kCap) {
      const int count = Gather(r, thr_key, /*strict=*/false, s);
      token = count <= kCap ? DrawSmall(count, zmax, u, nullptr, s)
                            : DrawChunked(r, thr_key, zmax, Cut{}, u, s);
    } else {
      token = DrawChunked(r, thr_key, zmax, Cut{}, u, s);
    }
  }
  if (threadIdx.x == 0) {
    p.tokens[row] = token;
    if (p.logprobs != nullptr) {
      p.logprobs[row] =
          row_max == -INFINITY
              ? -INFINITY
              : static_cast<float>(static_cast<double>(x[token]) - row_max - log(row_sum));
    }
  }
}

}  // namespace

cudaError_t SampleCuda(const SampleParams& p, cudaStream_t stream) {
  const int64_t stride = p.logits_stride == 0 ? p.vocab_size : p.logits_stride;
  if (p.rows < 0 || p.vocab_size < 1 || p.vocab_size > INT32_MAX || stride < p.vocab_size) {
    return cudaErrorInvalidValue;
  }
  if (p.rows == 0) return cudaSuccess;
  if (p.logits == nullptr || p.options == nullptr || p.steps == nullptr || p.tokens == nullptr ||
      p.rows > INT32_MAX) {
    return cudaErrorInvalidValue;
  }
  constexpr int kSmem = sizeof(Smem);
  if (cudaError_t e =
          cudaFuncSetAttribute(SampleKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
      e != cudaSuccess) {
    return e;
  }
  SampleKernel<<<static_cast<unsigned>(p.rows), kThreads, kSmem, stream>>>(p, stride);
  return cudaGetLastError();
}

}  // namespace strata::kernels

// Inputs for the fp8-vs-bf16 indexer top-k overlap tests (CPU twins and device): keys shaped like
// the model's — LayerNorm (weight and bias), then RoPE on the first 64 lanes — and queries at the
// sequence's last position, for one or more rows of `len` keys each.
//
// Two shapes of keys and queries:
//  - kOutlierLanes (the realistic one): trained LayerNorms have a few lanes with much larger
//    weight (massive activations, Sun et al. 2024), and attention queries and keys carry their
//    massive values in the same few lanes, low-frequency RoPE lanes among them (Jin et al. 2025,
//    "Massive Values in Self-Attention Modules are the Key to Contextual Knowledge
//    Understanding"). So the keys' LayerNorm weight is 12× on 4 lanes (one low-frequency RoPE
//    pair, two non-RoPE lanes) with a bias of ±2 there, and each query head adds 8× noise on the
//    same lanes. q · k is then dominated by those lanes, which is where an unrotated per-token fp8
//    scale hurts: the quantisation error of the large lane lines up with q's large lane. The
//    Hadamard rotation spreads both over 128 lanes, and the error no longer lines up.
//  - kIsotropic (the hard case, last session's generator): unit-variance lanes, no shared large
//    lanes, random queries. Here the rotation cannot help (E4M3's rounding error is relative per
//    lane, so its norm is the same in any basis) and the overlap stays at E4M3's limit, ~97.5%.
// Weights are signed, N(0, 1) / √heads, as weights_proj · iH^-1/2 gives.
#ifndef STRATA_TESTS_KERNELS_INDEXER_OVERLAP_INPUTS_H_
#define STRATA_TESTS_KERNELS_INDEXER_OVERLAP_INPUTS_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cache_write.h"
#include "kernels/cpu/indexer_logits.h"
#include "kvcache/paged_cache.h"

namespace strata::testing {

enum class OverlapInputShape { kOutlierLanes, kIsotropic };

struct OverlapInputs {
  static constexpr int kDim = 128, kRope = 64;
  int rows = 0, len = 0, heads = 0;
  std::vector<float> keys;       // [rows · len, 128] fp32; row r's keys are r · len .. + len
  std::vector<uint16_t> q_bf16;  // [rows, heads, 128]
  std::vector<float> q;          // the same values widened
  std::vector<float> w;          // [rows, heads]
};

// Interleaved RoPE on the first 64 lanes, base 10000.
inline void OverlapRope(float* x, int64_t pos) {
  constexpr int kRope = OverlapInputs::kRope;
  for (int i = 0; i < kRope / 2; ++i) {
    const double th = pos * std::pow(10000.0, -2.0 * i / kRope);
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = static_cast<float>(a * std::cos(th) - b * std::sin(th));
    x[2 * i + 1] = static_cast<float>(a * std::sin(th) + b * std::cos(th));
  }
}

inline OverlapInputs MakeOverlapInputs(OverlapInputShape shape, int rows, int len, int heads,
                                       unsigned seed) {
  constexpr int kD = OverlapInputs::kDim;
  // Lanes 62, 63: the lowest-frequency RoPE pair; 80, 101: non-RoPE lanes.
  const int kLargeLanes[] = {62, 63, 80, 101};
  const bool outliers = shape == OverlapInputShape::kOutlierLanes;
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  OverlapInputs in;
  in.rows = rows;
  in.len = len;
  in.heads = heads;
  std::vector<float> weight(kD), bias(kD);
  for (int d = 0; d < kD; ++d) {
    weight[d] = 1.0f + 0.1f * dist(rng);
    bias[d] = 0.1f * dist(rng);
  }
  if (outliers) {
    for (int d : kLargeLanes) {
      weight[d] *= 12.0f;
      bias[d] += dist(rng) > 0.0f ? 2.0f : -2.0f;
    }
  }
  in.keys.resize(static_cast<size_t>(rows) * len * kD);
  for (int64_t j = 0; j < int64_t{rows} * len; ++j) {
    float* x = &in.keys[j * kD];
    double mean = 0.0, var = 0.0;
    for (int d = 0; d < kD; ++d) mean += x[d] = dist(rng) * (1.0f + d % 7);
    mean /= kD;
    for (int d = 0; d < kD; ++d) var += (x[d] - mean) * (x[d] - mean);
    var /= kD;
    for (int d = 0; d < kD; ++d) {
      x[d] = static_cast<float>((x[d] - mean) / std::sqrt(var + 1e-6)) * weight[d] + bias[d];
    }
    OverlapRope(x, j % len);
  }
  in.q_bf16.resize(static_cast<size_t>(rows) * heads * kD);
  in.q.resize(in.q_bf16.size());
  in.w.resize(static_cast<size_t>(rows) * heads);
  for (int t = 0; t < rows; ++t) {
    for (int h = 0; h < heads; ++h) {
      float* x = &in.q[(static_cast<size_t>(t) * heads + h) * kD];
      for (int d = 0; d < kD; ++d) x[d] = dist(rng);
      if (outliers) {
        for (int d : kLargeLanes) x[d] += 8.0f * dist(rng);
      }
      OverlapRope(x, len - 1);
      for (int d = 0; d < kD; ++d) {
        uint16_t& b = in.q_bf16[(static_cast<size_t>(t) * heads + h) * kD + d];
        b = FloatToBF16(x[d]);
        x[d] = BF16ToFloat(b);
      }
      in.w[t * heads + h] = dist(rng) / std::sqrt(static_cast<float>(heads));
    }
  }
  return in;
}

// Mean over rows of |a ∩ b| / k; entries < 0 (padding) never count.
inline double TopkOverlap(const std::vector<int32_t>& a, const std::vector<int32_t>& b, int rows,
                          int k) {
  double total = 0.0;
  for (int t = 0; t < rows; ++t) {
    std::set<int32_t> sa(a.begin() + int64_t{t} * k, a.begin() + int64_t{t + 1} * k);
    int common = 0;
    for (int i = 0; i < k; ++i) {
      const int32_t v = b[int64_t{t} * k + i];
      common += v >= 0 && sa.count(v);
    }
    total += static_cast<double>(common) / k;
  }
  return total / rows;
}

// The CPU twins' top-k positions (k per row) after writing the keys into a paged cache of `dtype`
// and scoring every row: the exact-arithmetic reference of both overlap tests.
inline std::vector<int32_t> OverlapCpuTopk(const OverlapInputs& in, int k,
                                           kvcache::IndexerCacheDType dtype) {
  const int64_t n = int64_t{in.rows} * in.len, num_blocks = n / 64;
  std::vector<int32_t> slots(n), table(num_blocks), lens(in.rows, in.len), row_seq(in.rows),
      row_lens(in.rows, in.len);
  for (int64_t i = 0; i < n; ++i) slots[i] = static_cast<int32_t>(i);
  for (int64_t b = 0; b < num_blocks; ++b) table[b] = static_cast<int32_t>(b);
  for (int t = 0; t < in.rows; ++t) row_seq[t] = t;
  kvcache::PagedCacheOptions opt;
  opt.geometry.indexer_dtype = dtype;
  opt.num_blocks = num_blocks;
  auto cache = kvcache::IndexerKeyCache::Create(opt);
  EXPECT_TRUE(cache.ok()) << cache.status();
  EXPECT_TRUE(kernels::WriteIndexerCacheCpu({.num_tokens = static_cast<int>(n),
                                             .keys = in.keys.data(),
                                             .keys_stride = OverlapInputs::kDim,
                                             .slots = slots.data(),
                                             .cache = (*cache)->view()})
                  .ok());
  std::vector<float> logits(static_cast<size_t>(in.rows) * in.len);
  EXPECT_TRUE(kernels::IndexerPagedLogitsCpu(
                  {.num_tokens = in.rows,
                   .num_heads = in.heads,
                   .max_cols = in.len,
                   .softmax_scale = 1.0f / std::sqrt(static_cast<float>(OverlapInputs::kDim)),
                   .q = in.q.data(),
                   .q_token_stride = int64_t{in.heads} * OverlapInputs::kDim,
                   .q_head_stride = OverlapInputs::kDim,
                   .weights = in.w.data(),
                   .weights_token_stride = in.heads,
                   .row_seq = row_seq.data(),
                   .row_lens = row_lens.data(),
                   .block_table = {.num_seqs = in.rows,
                                   .max_blocks_per_seq = in.len / 64,
                                   .row_stride = in.len / 64,
                                   .table = table.data(),
                                   .seq_lens = lens.data()},
                   .cache = (*cache)->view(),
                   .logits = logits.data(),
                   .logits_stride = in.len})
                  .ok());
  std::vector<int32_t> topk(static_cast<size_t>(in.rows) * k);
  EXPECT_TRUE(kernels::IndexerTopkCpu({.num_tokens = in.rows,
                                       .topk = k,
                                       .logits = logits.data(),
                                       .logits_stride = in.len,
                                       .col_end = row_lens.data(),
                                       .topk_pos = topk.data(),
                                       .topk_stride = k})
                  .ok());
  return topk;
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_KERNELS_INDEXER_OVERLAP_INPUTS_H_

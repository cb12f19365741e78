#include "kernels/cpu/indexer_logits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu/cast.h"
#include "kvcache/paged_cache.h"

namespace strata::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Σ_h w[h] · relu((q[h] · key) · softmax_scale), accumulated in double.
template <typename Q>
float ScoreKey(const Q* q, int64_t q_head_stride, const float* w, int num_heads, int head_dim,
               float softmax_scale, const float* key) {
  double total = 0.0;
  for (int h = 0; h < num_heads; ++h) {
    const Q* qh = q + h * q_head_stride;
    double dot = 0.0;
    for (int d = 0; d < head_dim; ++d) dot += double{qh[d]} * key[d];
    total += double{w[h]} * std::max(dot * softmax_scale, 0.0);
  }
  return static_cast<float>(total);
}

// The query rows of token t for scoring: fp8 keys are stored Hadamard-rotated (kvcache/layout.h),
// so there q is rotated too (in double, into `rotated`, [iH, iD]); otherwise q as given.
class QueryRows {
 public:
  QueryRows(bool rotate, int num_heads, int head_dim)
      : rotate_(rotate),
        head_dim_(head_dim),
        rotated_(rotate ? size_t{1} * num_heads * head_dim : 0) {}

  // Scores key (D floats) against token t's rows.
  float Score(const float* q_t, int64_t q_head_stride, const float* w, int num_heads,
              float softmax_scale, const float* key) const {
    return rotate_
               ? ScoreKey(rotated_.data(), head_dim_, w, num_heads, head_dim_, softmax_scale, key)
               : ScoreKey(q_t, q_head_stride, w, num_heads, head_dim_, softmax_scale, key);
  }

  // Call before scoring token t's keys.
  void Prepare(const float* q_t, int64_t q_head_stride, int num_heads) {
    if (!rotate_) return;
    for (int h = 0; h < num_heads; ++h) {
      double* r = &rotated_[static_cast<size_t>(h) * head_dim_];
      for (int d = 0; d < head_dim_; ++d) r[d] = q_t[h * q_head_stride + d];
      kvcache::IndexerHadamardRotate(r, head_dim_);
    }
  }

 private:
  bool rotate_;
  int head_dim_;
  std::vector<double> rotated_;
};

absl::Status CheckQueryParams(absl::string_view what, int num_tokens, int num_heads, int head_dim,
                              float softmax_scale, const float* q, int64_t q_token_stride,
                              int64_t q_head_stride, const float* weights,
                              int64_t weights_token_stride, int64_t max_cols, const float* logits,
                              int64_t logits_stride) {
  if (num_tokens < 0 || num_heads <= 0 || head_dim <= 0 || max_cols < 0 ||
      q_head_stride < head_dim || q_token_stride < 0 || weights_token_stride < 0 ||
      logits_stride < max_cols || !(softmax_scale > 0.0f) || !std::isfinite(softmax_scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": bad sizes, strides or softmax_scale (T=", num_tokens,
                     " iH=", num_heads, " iD=", head_dim, " max_cols=", max_cols, ")"));
  }
  if (num_tokens > 0 && (q == nullptr || weights == nullptr || logits == nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": null q, weights or logits"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status IndexerRaggedLogitsCpu(const IndexerRaggedLogitsParams& p) {
  RETURN_IF_ERROR(CheckQueryParams("IndexerRaggedLogitsCpu", p.num_tokens, p.num_heads, p.head_dim,
                                   p.softmax_scale, p.q, p.q_token_stride, p.q_head_stride,
                                   p.weights, p.weights_token_stride, p.max_cols, p.logits,
                                   p.logits_stride));
  if (p.key_dtype != DType::kF32 && p.key_dtype != DType::kBF16 && p.key_dtype != DType::kF8E4M3) {
    return absl::InvalidArgumentError(
        absl::StrCat("IndexerRaggedLogitsCpu: key dtype ", DTypeName(p.key_dtype)));
  }
  if (p.num_keys < 0 || p.key_stride < p.head_dim ||
      (p.num_keys > 0 &&
       (p.keys == nullptr || (p.key_dtype == DType::kF8E4M3 && p.key_scales == nullptr))) ||
      (p.key_dtype == DType::kF8E4M3 && !kvcache::IsPowerOfTwo(p.head_dim)) ||
      (p.num_tokens > 0 && (p.k_start == nullptr || p.k_end == nullptr))) {
    return absl::InvalidArgumentError("IndexerRaggedLogitsCpu: bad keys, key_stride or ranges");
  }
  for (int t = 0; t < p.num_tokens; ++t) {
    if (p.k_start[t] < 0 || p.k_start[t] > p.k_end[t] || p.k_end[t] > p.num_keys ||
        p.k_end[t] > p.max_cols) {
      return absl::InvalidArgumentError(
          absl::StrCat("IndexerRaggedLogitsCpu: row ", t, " range [", p.k_start[t], ", ",
                       p.k_end[t], ") outside N=", p.num_keys, ", max_cols=", p.max_cols));
    }
  }
  // Dequantise the keys any row uses, once.
  int64_t lo = p.num_keys, hi = 0;
  for (int t = 0; t < p.num_tokens; ++t) {
    if (p.k_start[t] == p.k_end[t]) continue;
    lo = std::min<int64_t>(lo, p.k_start[t]);
    hi = std::max<int64_t>(hi, p.k_end[t]);
  }
  std::vector<float> keys(static_cast<size_t>(std::max<int64_t>(hi - lo, 0) * p.head_dim));
  for (int64_t j = lo; j < hi; ++j) {
    const float scale = p.key_dtype == DType::kF8E4M3 ? p.key_scales[j] : 1.0f;
    for (int d = 0; d < p.head_dim; ++d) {
      keys[(j - lo) * p.head_dim + d] =
          LoadAsFloat(p.key_dtype, p.keys, j * p.key_stride + d) * scale;
    }
  }
  QueryRows rows(p.key_dtype == DType::kF8E4M3, p.num_heads, p.head_dim);
  for (int t = 0; t < p.num_tokens; ++t) {
    float* out = p.logits + t * p.logits_stride;
    std::fill(out, out + p.max_cols, kNegInf);
    const float* q_t = p.q + t * p.q_token_stride;
    rows.Prepare(q_t, p.q_head_stride, p.num_heads);
    for (int64_t j = p.k_start[t]; j < p.k_end[t]; ++j) {
      out[j] = rows.Score(q_t, p.q_head_stride, p.weights + t * p.weights_token_stride, p.num_heads,
                          p.softmax_scale, &keys[(j - lo) * p.head_dim]);
    }
  }
  return absl::OkStatus();
}

absl::Status IndexerPagedLogitsCpu(const IndexerPagedLogitsParams& p) {
  RETURN_IF_ERROR(kvcache::ValidateIndexerCacheView(p.cache)) << " (IndexerPagedLogitsCpu)";
  const int head_dim = p.cache.head_dim;
  RETURN_IF_ERROR(CheckQueryParams("IndexerPagedLogitsCpu", p.num_tokens, p.num_heads, head_dim,
                                   p.softmax_scale, p.q, p.q_token_stride, p.q_head_stride,
                                   p.weights, p.weights_token_stride, p.max_cols, p.logits,
                                   p.logits_stride));
  RETURN_IF_ERROR(kvcache::ValidateBlockTable(p.block_table, p.cache.num_blocks))
      << " (IndexerPagedLogitsCpu)";
  if (p.num_tokens > 0 && (p.row_seq == nullptr || p.row_lens == nullptr)) {
    return absl::InvalidArgumentError("IndexerPagedLogitsCpu: null row_seq or row_lens");
  }
  for (int t = 0; t < p.num_tokens; ++t) {
    const int seq = p.row_seq[t];
    if (seq < 0 || seq >= p.block_table.num_seqs || p.row_lens[t] < 0 ||
        p.row_lens[t] > p.block_table.seq_lens[seq] || p.row_lens[t] > p.max_cols) {
      return absl::InvalidArgumentError(
          absl::StrCat("IndexerPagedLogitsCpu: row ", t, " (sequence ", seq, ", length ",
                       p.row_lens[t], ") outside the block table or max_cols ", p.max_cols));
    }
  }
  std::vector<float> key(head_dim);
  QueryRows rows(p.cache.dtype == kvcache::IndexerCacheDType::kF8, p.num_heads, head_dim);
  for (int t = 0; t < p.num_tokens; ++t) {
    const int32_t* row = kvcache::BlockTableRow(p.block_table, p.row_seq[t]);
    float* out = p.logits + t * p.logits_stride;
    std::fill(out, out + p.max_cols, kNegInf);
    const float* q_t = p.q + t * p.q_token_stride;
    rows.Prepare(q_t, p.q_head_stride, p.num_heads);
    for (int64_t pos = 0; pos < p.row_lens[t]; ++pos) {
      kvcache::DequantizeIndexerKey(p.cache, kvcache::SlotForPosition(row, pos), key.data());
      out[pos] = rows.Score(q_t, p.q_head_stride, p.weights + t * p.weights_token_stride,
                            p.num_heads, p.softmax_scale, key.data());
    }
  }
  return absl::OkStatus();
}

absl::Status IndexerTopkCpu(const IndexerTopkParams& p) {
  if (p.num_tokens < 0 || p.topk < 0 || p.logits_stride < 0 || p.topk_stride < p.topk ||
      (p.num_tokens > 0 &&
       (p.logits == nullptr || p.col_end == nullptr || (p.topk > 0 && p.topk_pos == nullptr)))) {
    return absl::InvalidArgumentError("IndexerTopkCpu: bad sizes, strides or null pointers");
  }
  std::vector<std::pair<float, int32_t>> row;
  for (int t = 0; t < p.num_tokens; ++t) {
    const int32_t begin = p.col_begin ? p.col_begin[t] : 0;
    const int32_t end = p.col_end[t];
    if (begin < 0 || begin > end || end > p.logits_stride) {
      return absl::InvalidArgumentError(absl::StrCat("IndexerTopkCpu: row ", t, " columns [", begin,
                                                     ", ", end, ") outside [0, ", p.logits_stride,
                                                     "]"));
    }
    const float* logits = p.logits + t * p.logits_stride;
    row.clear();
    for (int32_t c = begin; c < end; ++c) {
      row.emplace_back(std::isnan(logits[c]) ? kNegInf : logits[c], c);
    }
    const size_t k = std::min<size_t>(row.size(), static_cast<size_t>(p.topk));
    std::partial_sort(row.begin(), row.begin() + k, row.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    int32_t* out = p.topk_pos + t * p.topk_stride;
    for (int i = 0; i < p.topk; ++i) {
      out[i] = static_cast<size_t>(i) < k ? row[i].second - begin : -1;
    }
  }
  return absl::OkStatus();
}

absl::Status MapTopkToSlotsCpu(const MapTopkToSlotsParams& p) {
  if (p.num_tokens < 0 || p.topk < 0 || p.topk_stride < p.topk || p.slots_stride < p.topk ||
      (p.num_tokens > 0 && p.topk > 0 &&
       (p.topk_pos == nullptr || p.slots == nullptr || p.row_seq == nullptr ||
        p.row_lens == nullptr))) {
    return absl::InvalidArgumentError("MapTopkToSlotsCpu: bad sizes, strides or null pointers");
  }
  if (p.num_blocks <= 0 || p.num_blocks > INT32_MAX / kvcache::kBlockTokens) {
    return absl::InvalidArgumentError(absl::StrCat("MapTopkToSlotsCpu: num_blocks ", p.num_blocks));
  }
  RETURN_IF_ERROR(kvcache::ValidateBlockTable(p.block_table, p.num_blocks))
      << " (MapTopkToSlotsCpu)";
  if (p.topk == 0) return absl::OkStatus();
  for (int t = 0; t < p.num_tokens; ++t) {
    const int seq = p.row_seq[t];
    if (seq < 0 || seq >= p.block_table.num_seqs || p.row_lens[t] < 0 ||
        p.row_lens[t] > p.block_table.seq_lens[seq]) {
      return absl::InvalidArgumentError(absl::StrCat("MapTopkToSlotsCpu: row ", t, " (sequence ",
                                                     seq, ", length ", p.row_lens[t],
                                                     ") outside the block table"));
    }
  }
  for (int t = 0; t < p.num_tokens; ++t) {
    const int32_t* row = kvcache::BlockTableRow(p.block_table, p.row_seq[t]);
    const int32_t* pos = p.topk_pos + t * p.topk_stride;
    int32_t* out = p.slots + t * p.slots_stride;
    for (int i = 0; i < p.topk; ++i) {
      out[i] = pos[i] < 0 || pos[i] >= p.row_lens[t]
                   ? -1
                   : static_cast<int32_t>(kvcache::SlotForPosition(row, pos[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace strata::kernels

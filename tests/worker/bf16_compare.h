// Comparing the bf16 CUDA path's logits and greedy tokens with an fp32 reference (the CPU backend
// or transformers' fp32 fixtures). The tolerance is derived in docs/model.md ("The bf16 CUDA
// path").
#ifndef STRATA_TESTS_WORKER_BF16_COMPARE_H_
#define STRATA_TESTS_WORKER_BF16_COMPARE_H_

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "common/tensor.h"
#include "gtest/gtest.h"
#include "worker/local_runner.h"

namespace strata::testing_util {

// Logits of the bf16 path agree with fp32 within this fraction of the largest |logit| of the
// rows compared, wherever both make the same discrete choices — the same attended positions and
// the same experts (docs/model.md, "The bf16 CUDA path").
inline constexpr double kBf16LogitRelTol = 0.05;
// The same with fp8 caches (3 mantissa bits: each cached latent value is off by up to 2^-4).
inline constexpr double kFp8CacheLogitRelTol = 0.1;

// Rows [row_begin, row_end) of two [*, vocab] f32 logit tensors: the largest |difference|, the
// largest |reference|, and top-1 agreement among rows whose reference margin (top-1 minus
// top-2) exceeds `margin_floor`.
struct LogitStats {
  double max_abs = 0;
  double max_ref = 0;
  int decisive_rows = 0;  // rows with a margin over the floor
  int decisive_agree = 0;
  int rows = 0;
  int agree = 0;
  std::vector<double> row_dev;  // per row: max |difference|

  // Rows whose deviation is within `rel` of max_ref.
  int RowsWithin(double rel) const {
    int n = 0;
    for (double d : row_dev) n += d <= rel * max_ref;
    return n;
  }
  // "row r: dev" for the `n` worst rows (offset by `first`).
  std::string Worst(int n, int64_t first) const {
    std::vector<std::pair<double, int64_t>> v;
    for (size_t r = 0; r < row_dev.size(); ++r) v.push_back({row_dev[r], first + r});
    std::sort(v.rbegin(), v.rend());
    std::string out;
    for (int i = 0; i < n && i < static_cast<int>(v.size()); ++i) {
      out += (i ? ", " : "") + std::string("row ") + std::to_string(v[i].second) + ": " +
             std::to_string(v[i].first);
    }
    return out;
  }
};

inline LogitStats CompareLogits(const Tensor& got, const Tensor& want, int64_t row_begin,
                                int64_t row_end, double margin_floor) {
  LogitStats s;
  const int64_t vocab = want.dim(1);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* g = got.data<float>() + r * got.dim(1);
    const float* w = want.data<float>() + r * vocab;
    int64_t gi = 0, wi = 0;
    float second = -INFINITY;
    double dev = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      dev = std::max(dev, std::fabs(static_cast<double>(g[v]) - w[v]));
      s.max_ref = std::max(s.max_ref, std::fabs(static_cast<double>(w[v])));
      if (g[v] > g[gi]) gi = v;
      if (w[v] > w[wi]) wi = v;
    }
    s.row_dev.push_back(dev);
    s.max_abs = std::max(s.max_abs, dev);
    for (int64_t v = 0; v < vocab; ++v) {
      if (v != wi) second = std::max(second, w[v]);
    }
    ++s.rows;
    s.agree += gi == wi;
    if (w[wi] - second > margin_floor) {
      ++s.decisive_rows;
      s.decisive_agree += gi == wi;
    }
  }
  return s;
}

// The logits of the last position of `prompt` (a [vocab] row), from `runner`.
inline std::vector<float> LastLogits(LocalRunner& runner, const std::vector<int32_t>& prompt) {
  GenerateRequest req;
  req.prompt = prompt;
  req.max_new_tokens = 0;
  req.want_prompt_logits = true;
  auto out = runner.Generate({req});
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return {};
  const Tensor& l = (*out)[0].prompt_logits;
  const float* row = l.data<float>() + (l.dim(0) - 1) * l.dim(1);
  return std::vector<float>(row, row + l.dim(1));
}

// Greedy tokens of the bf16 path (`got`) against the reference's (`want`) for one prompt: equal,
// or the first divergence is a near-tie — there the reference's margin between its token and the
// bf16 path's is within kBf16LogitRelTol of the row's largest |logit| (both rows recomputed from
// the common prefix). Asserted only when the deciding position is below `assert_below` (the
// random-weight fixtures past index_topk: docs/model.md); printed always. Returns the number of
// equal leading tokens.
inline size_t CheckGreedy(const std::string& name, LocalRunner& ref, LocalRunner& bf16,
                          const std::vector<int32_t>& prompt, const std::vector<int32_t>& want,
                          const std::vector<int32_t>& got, int64_t assert_below = INT64_MAX) {
  size_t same = 0;
  while (same < want.size() && same < got.size() && want[same] == got[same]) ++same;
  if (same == want.size() && got.size() == want.size()) {
    std::printf("%s: all %zu greedy tokens equal\n", name.c_str(), want.size());
    return same;
  }
  EXPECT_LT(same, want.size()) << name;
  EXPECT_LT(same, got.size()) << name;
  if (same >= want.size() || same >= got.size()) return same;
  std::vector<int32_t> prefix = prompt;
  prefix.insert(prefix.end(), want.begin(), want.begin() + static_cast<int64_t>(same));
  const std::vector<float> r = LastLogits(ref, prefix), b = LastLogits(bf16, prefix);
  if (r.empty() || b.empty()) return same;
  double max_ref = 0, max_dev = 0;
  for (size_t v = 0; v < r.size(); ++v) {
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(r[v])));
    max_dev = std::max(max_dev, std::fabs(static_cast<double>(r[v]) - b[v]));
  }
  const double margin = r[want[same]] - r[got[same]];
  std::printf(
      "%s: %zu of %zu greedy tokens equal; at the first divergence the reference prefers %d over "
      "%d by %.4g (%.3g of max |logit| %.3g; bf16 deviation on that row %.4g)\n",
      name.c_str(), same, want.size(), want[same], got[same], margin, margin / max_ref, max_ref,
      max_dev);
  const int64_t position = static_cast<int64_t>(prefix.size()) - 1;
  if (position < assert_below) {
    EXPECT_LE(margin, kBf16LogitRelTol * max_ref) << name << ": not a near-tie";
  } else {
    std::printf("%s: decided at position %lld, past index_topk: reported only\n", name.c_str(),
                static_cast<long long>(position));
  }
  return same;
}

}  // namespace strata::testing_util

#endif  // STRATA_TESTS_WORKER_BF16_COMPARE_H_

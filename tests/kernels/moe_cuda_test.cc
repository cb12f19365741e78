// The device MoE (kernels/cuda/moe.h) against its CPU twins: routing bit for bit (ties, both
// group configurations, NaN), and the grouped expert FFN against MoeExpertsCpu at decode and
// prefill token counts with both tile shapes, a real-width GLM-5 layer, and the edge cases.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cuda/moe.h"
#include "tests/kernels/cuda_test_util.h"

namespace strata::kernels {
namespace {

using testing::DeviceBuffer;

// bf16 outputs: one bf16 rounding of the value (2^-8 relative) can flip when the fp32 sums differ
// in order, plus a small absolute term against the token's largest output.
constexpr double kRelTol = 1.0 / 128;
constexpr double kAbsTol = 2e-3;

// ---- Routing -----------------------------------------------------------------------------------

struct RouteCase {
  int64_t tokens = 0, experts = 0, n_group = 1, topk_group = 1, top_k = 0;
  bool ties = false;  // logits and bias on a coarse grid, so equal choice values are common
};

void ExpectRoutingMatches(const RouteCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  const int64_t stride = c.experts + 3;
  std::vector<float> logits(c.tokens * stride, 1e30f), bias(c.experts);
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int64_t e = 0; e < c.experts; ++e) {
      float v = nd(rng);
      if (c.ties) v = std::round(v * 2.0f) / 2.0f;
      logits[t * stride + e] = v;
    }
  }
  for (auto& b : bias) b = c.ties ? std::round(nd(rng)) * 0.25f : nd(rng) * 0.05f;
  if (c.tokens > 3) {
    std::fill_n(logits.begin() + stride, c.experts, 0.5f);  // token 1: every expert tied
    logits[2 * stride + 1] = NAN;                           // token 2: a NaN logit
    logits[3 * stride] = -INFINITY;
  }
  std::vector<int32_t> want_ids(c.tokens * c.top_k);
  std::vector<float> want_w(c.tokens * c.top_k);
  MoeRoutingParams p{.num_tokens = c.tokens,
                     .num_experts = c.experts,
                     .n_group = c.n_group,
                     .topk_group = c.topk_group,
                     .top_k = c.top_k,
                     .logits_stride = stride,
                     .norm_topk_prob = true,
                     .routed_scaling_factor = 2.5f,
                     .logits = logits.data(),
                     .correction_bias = bias.data(),
                     .expert_ids = want_ids.data(),
                     .weights = want_w.data()};
  for (bool norm : {true, false}) {
    p.norm_topk_prob = norm;
    p.logits = logits.data();
    p.correction_bias = bias.data();
    p.expert_ids = want_ids.data();
    p.weights = want_w.data();
    ASSERT_TRUE(MoeRoutingCpu(p).ok());
    DeviceBuffer<float> d_logits(logits), d_bias(bias);
    DeviceBuffer<int32_t> d_ids(want_ids.size());
    DeviceBuffer<float> d_w(want_w.size());
    d_ids.Fill(0xff);
    d_w.Fill(0xff);
    p.logits = d_logits.get();
    p.correction_bias = d_bias.get();
    p.expert_ids = d_ids.get();
    p.weights = d_w.get();
    ASSERT_EQ(MoeRoutingCuda(p, nullptr), cudaSuccess);
    testing::SyncOrFail();
    const std::vector<int32_t> got_ids = d_ids.Download();
    const std::vector<float> got_w = d_w.Download();
    int mismatches = 0;
    for (size_t i = 0; i < got_ids.size() && mismatches < 10; ++i) {
      const bool both_nan = std::isnan(got_w[i]) && std::isnan(want_w[i]);  // any NaN bits
      if (got_ids[i] != want_ids[i] || (got_w[i] != want_w[i] && !both_nan)) {
        ++mismatches;
        ADD_FAILURE() << "token " << i / c.top_k << " slot " << i % c.top_k << ": id " << got_ids[i]
                      << " vs " << want_ids[i] << ", weight " << got_w[i] << " vs " << want_w[i]
                      << " (E=" << c.experts << " groups " << c.n_group << "/" << c.topk_group
                      << " norm " << norm << ")";
      }
    }
  }
}

TEST(MoeRoutingCudaTest, Glm5SingleGroupMatchesCpuBitForBit) {
  ExpectRoutingMatches({.tokens = 517, .experts = 256, .n_group = 1, .topk_group = 1, .top_k = 8},
                       1);
  ExpectRoutingMatches(
      {.tokens = 517, .experts = 256, .n_group = 1, .topk_group = 1, .top_k = 8, .ties = true}, 2);
}

TEST(MoeRoutingCudaTest, DeepseekGroupsMatchCpuBitForBit) {
  ExpectRoutingMatches({.tokens = 301, .experts = 256, .n_group = 8, .topk_group = 4, .top_k = 8},
                       3);
  ExpectRoutingMatches(
      {.tokens = 301, .experts = 256, .n_group = 8, .topk_group = 4, .top_k = 8, .ties = true}, 4);
}

TEST(MoeRoutingCudaTest, SmallAndOddShapesMatchCpu) {
  // The oracle models (8 experts in 2 groups, keep 1, top-2), more experts than the kept groups
  // hold (filled from dropped groups in index order), a partial last lane row, top-32.
  ExpectRoutingMatches(
      {.tokens = 9, .experts = 8, .n_group = 2, .topk_group = 1, .top_k = 2, .ties = true}, 5);
  ExpectRoutingMatches({.tokens = 33, .experts = 16, .n_group = 4, .topk_group = 1, .top_k = 6}, 6);
  ExpectRoutingMatches({.tokens = 7, .experts = 200, .n_group = 1, .topk_group = 1, .top_k = 32},
                       7);
  ExpectRoutingMatches(
      {.tokens = 64, .experts = 96, .n_group = 32, .topk_group = 5, .top_k = 8, .ties = true}, 8);
}

TEST(MoeRoutingCudaTest, EmptyAndBadParams) {
  MoeRoutingParams p{.num_tokens = 0, .num_experts = 256, .top_k = 8};
  EXPECT_EQ(MoeRoutingCuda(p, nullptr), cudaSuccess);  // nothing to do, null buffers are fine
  p.num_tokens = 1;
  EXPECT_EQ(MoeRoutingCuda(p, nullptr), cudaErrorInvalidValue);  // null buffers
  p.num_tokens = 0;
  p.num_experts = 512;
  EXPECT_EQ(MoeRoutingCuda(p, nullptr), cudaErrorInvalidValue);
  p.num_experts = 256;
  p.top_k = 33;
  EXPECT_EQ(MoeRoutingCuda(p, nullptr), cudaErrorInvalidValue);
  p.top_k = 8;
  p.n_group = 64;
  p.topk_group = 4;
  EXPECT_EQ(MoeRoutingCuda(p, nullptr), cudaErrorInvalidValue);
}

// ---- Expert FFN --------------------------------------------------------------------------------

// Uniform bf16 in [-scale, scale) from a counter hash: fast for the real-width weights.
void FillBf16(std::vector<uint16_t>& v, float scale, uint64_t seed) {
  for (size_t i = 0; i < v.size(); ++i) {
    uint64_t z = (seed + i) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * 0x1.0p-24f;  // [0, 1)
    v[i] = FloatToBF16((2.0f * u - 1.0f) * scale);
  }
}

// E experts whose weights live on the host and, for the experts in `used`, on the device; the
// device pointer arrays hold null for the others (the kernel must never touch them).
class ExpertSet {
 public:
  ExpertSet(int64_t experts, int64_t hidden, int64_t inter, const std::set<int32_t>& used,
            uint64_t seed)
      : h_(hidden), i_(inter), host_(experts), dev_(experts) {
    std::vector<const uint16_t*> dg(experts, nullptr), du(experts, nullptr), dd(experts, nullptr);
    for (int32_t e : used) {
      auto& w = host_[e];
      for (int m = 0; m < 3; ++m) {
        w[m].resize(hidden * inter);
        FillBf16(w[m], 1.7f / std::sqrt(static_cast<float>(m == 2 ? inter : hidden)),
                 seed + 1000003 * (3 * e + m));
        dev_[e][m] = DeviceBuffer<uint16_t>(w[m]);
      }
      dg[e] = dev_[e][0].get();
      du[e] = dev_[e][1].get();
      dd[e] = dev_[e][2].get();
    }
    d_gate_ = DeviceBuffer<const uint16_t*>(dg);
    d_up_ = DeviceBuffer<const uint16_t*>(du);
    d_down_ = DeviceBuffer<const uint16_t*>(dd);
    for (int64_t e = 0; e < experts; ++e) {
      hg_.push_back(host_[e][0].empty() ? nullptr : host_[e][0].data());
      hu_.push_back(host_[e][1].empty() ? nullptr : host_[e][1].data());
      hd_.push_back(host_[e][2].empty() ? nullptr : host_[e][2].data());
    }
  }
  const uint16_t* const* host_gate() const { return hg_.data(); }
  const uint16_t* const* host_up() const { return hu_.data(); }
  const uint16_t* const* host_down() const { return hd_.data(); }
  const uint16_t* const* dev_gate() const { return d_gate_.get(); }
  const uint16_t* const* dev_up() const { return d_up_.get(); }
  const uint16_t* const* dev_down() const { return d_down_.get(); }

 private:
  int64_t h_, i_;
  std::vector<std::array<std::vector<uint16_t>, 3>> host_;
  std::vector<std::array<DeviceBuffer<uint16_t>, 3>> dev_;
  DeviceBuffer<const uint16_t*> d_gate_, d_up_, d_down_;
  std::vector<const uint16_t*> hg_, hu_, hd_;
};

struct FfnCase {
  int64_t tokens = 0, hidden = 0, inter = 0, experts = 0, top_k = 0;
  int tile_rows = 0;
  int64_t check_tokens = 0;  // CPU reference on this many tokens spread over T; 0 = all
};

// Random routing: K distinct experts per token (as the router gives) and positive weights.
void RandomRouting(int64_t t, int64_t k, int64_t e_count, std::mt19937& rng,
                   std::vector<int32_t>& ids, std::vector<float>& w) {
  ids.resize(t * k);
  w.resize(t * k);
  std::vector<int32_t> perm(e_count);
  std::uniform_real_distribution<float> wd(0.05f, 0.5f);
  for (int64_t i = 0; i < t; ++i) {
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t j = 0; j < k; ++j) {
      std::swap(perm[j], perm[j + rng() % (e_count - j)]);
      ids[i * k + j] = perm[j];
      w[i * k + j] = wd(rng);
    }
  }
}

// Runs the device FFN and compares the checked tokens with MoeExpertsCpu. Returns the output.
std::vector<uint16_t> RunAndCompare(const FfnCase& c, const std::vector<int32_t>& ids,
                                    const std::vector<float>& w, uint64_t seed,
                                    bool poison_padding = true) {
  const int64_t xs = c.hidden + 8, ys = c.hidden + 16;
  std::vector<uint16_t> x(c.tokens * xs);
  FillBf16(x, 1.0f, seed);
  std::set<int32_t> used;
  for (int32_t e : ids) {
    if (e >= 0 && e < c.experts) used.insert(e);
  }
  const ExpertSet ex(c.experts, c.hidden, c.inter, used, seed + 17);
  DeviceBuffer<uint16_t> d_x(x), d_y(std::max<int64_t>(1, c.tokens * ys));
  DeviceBuffer<int32_t> d_ids(ids);
  DeviceBuffer<float> d_w(w);
  d_y.Fill(0xee);
  const size_t ws_bytes = MoeExpertsWorkspaceBytes(c.tokens, c.top_k, c.experts, c.hidden, c.inter);
  DeviceBuffer<uint8_t> ws(std::max<size_t>(ws_bytes, 256));
  MoeExpertsParams p{.num_tokens = c.tokens,
                     .hidden = c.hidden,
                     .inter = c.inter,
                     .num_experts = c.experts,
                     .top_k = c.top_k,
                     .x_stride = xs,
                     .y_stride = ys,
                     .x = d_x.get(),
                     .expert_ids = d_ids.get(),
                     .weights = d_w.get(),
                     .gate = ex.dev_gate(),
                     .up = ex.dev_up(),
                     .down = ex.dev_down(),
                     .y = d_y.get()};
  EXPECT_EQ(MoeExpertsCuda(p, ws.get(), ws_bytes, nullptr, c.tile_rows), cudaSuccess);
  testing::SyncOrFail();
  const std::vector<uint16_t> got = d_y.Download();

  // The CPU reference on the checked tokens (gathered into a compact batch).
  std::vector<int64_t> rows;
  const int64_t n_check = c.check_tokens == 0 ? c.tokens : std::min(c.check_tokens, c.tokens);
  for (int64_t i = 0; i < n_check; ++i) rows.push_back(i * c.tokens / n_check);
  std::vector<uint16_t> cx(rows.size() * c.hidden), want(rows.size() * c.hidden);
  std::vector<int32_t> cids(rows.size() * c.top_k);
  std::vector<float> cw(rows.size() * c.top_k);
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy_n(x.begin() + rows[r] * xs, c.hidden, cx.begin() + r * c.hidden);
    std::copy_n(ids.begin() + rows[r] * c.top_k, c.top_k, cids.begin() + r * c.top_k);
    std::copy_n(w.begin() + rows[r] * c.top_k, c.top_k, cw.begin() + r * c.top_k);
  }
  EXPECT_TRUE(MoeExpertsCpu({.num_tokens = static_cast<int64_t>(rows.size()),
                             .hidden = c.hidden,
                             .inter = c.inter,
                             .num_experts = c.experts,
                             .top_k = c.top_k,
                             .x = cx.data(),
                             .expert_ids = cids.data(),
                             .weights = cw.data(),
                             .gate = ex.host_gate(),
                             .up = ex.host_up(),
                             .down = ex.host_down(),
                             .y = want.data()})
                  .ok());
  int failures = 0;
  double err2 = 0, ref2 = 0;
  for (size_t r = 0; r < rows.size() && failures < 10; ++r) {
    double scale = 0;
    for (int64_t j = 0; j < c.hidden; ++j) {
      scale = std::max(scale, std::abs(double{BF16ToFloat(want[r * c.hidden + j])}));
    }
    for (int64_t j = 0; j < c.hidden && failures < 10; ++j) {
      const double a = BF16ToFloat(got[rows[r] * ys + j]), b = BF16ToFloat(want[r * c.hidden + j]);
      err2 += (a - b) * (a - b);
      ref2 += b * b;
      if (!(std::abs(a - b) <= kRelTol * std::abs(b) + kAbsTol * scale)) {
        ++failures;
        ADD_FAILURE() << "T=" << c.tokens << " tile " << c.tile_rows << " token " << rows[r]
                      << " col " << j << ": " << a << " vs " << b;
      }
    }
    if (poison_padding) {
      for (int64_t j = c.hidden; j < ys; ++j) {
        if (got[rows[r] * ys + j] != 0xeeee) {
          ++failures;
          ADD_FAILURE() << "padding written at token " << rows[r] << " col " << j;
        }
      }
    }
  }
  EXPECT_LE(std::sqrt(err2 / std::max(ref2, 1e-30)), 3e-3) << "relative RMS error, T=" << c.tokens;
  return got;
}

class MoeExpertsCudaTest : public ::testing::TestWithParam<std::tuple<int64_t, int>> {};

// GLM-5's shape scaled down (H : I = 3 : 1, 64 experts, top-8) at decode and prefill sizes, with
// the automatic tile and both forced tiles.
TEST_P(MoeExpertsCudaTest, MatchesCpuReference) {
  const auto [tokens, tile_rows] = GetParam();
  const FfnCase c{.tokens = tokens,
                  .hidden = 384,
                  .inter = 128,
                  .experts = 64,
                  .top_k = 8,
                  .tile_rows = tile_rows,
                  .check_tokens = tokens > 512 ? 96 : 0};
  std::mt19937 rng(static_cast<uint32_t>(tokens * 7 + tile_rows));
  std::vector<int32_t> ids;
  std::vector<float> w;
  RandomRouting(c.tokens, c.top_k, c.experts, rng, ids, w);
  RunAndCompare(c, ids, w, 100 + tokens);
}

INSTANTIATE_TEST_SUITE_P(DecodeAndPrefill, MoeExpertsCudaTest,
                         ::testing::Combine(::testing::Values(1, 8, 64, 512, 4096),
                                            ::testing::Values(0, 16, 64, 128)));

// One real GLM-5 MoE layer shape (H 6144, I 2048, 256 experts, top-8) at decode batch 3; only
// the 24 touched experts get weights (the others are null and must not be read).
TEST(MoeExpertsCudaRealWidthTest, Glm5LayerAtDecode) {
  const FfnCase c{.tokens = 3, .hidden = 6144, .inter = 2048, .experts = 256, .top_k = 8};
  std::mt19937 rng(9);
  std::vector<int32_t> ids;
  std::vector<float> w;
  RandomRouting(c.tokens, c.top_k, c.experts, rng, ids, w);
  RunAndCompare(c, ids, w, 5);
}

// T·K·H large enough that the down projection and the combine run over hidden chunks (1024 + a
// last chunk of 64 columns, half a 128-column tile), with both tile shapes.
TEST(MoeExpertsCudaChunkTest, HiddenChunksWithPartialLastTile) {
  for (int tile : {0, 16, 64}) {
    const FfnCase c{.tokens = 4096,
                    .hidden = 1088,
                    .inter = 192,
                    .experts = 32,
                    .top_k = 8,
                    .tile_rows = tile,
                    .check_tokens = 48};
    std::mt19937 rng(12 + tile);
    std::vector<int32_t> ids;
    std::vector<float> w;
    RandomRouting(c.tokens, c.top_k, c.experts, rng, ids, w);
    RunAndCompare(c, ids, w, 77);
  }
}

// Every pair on one expert (one long segment, many row tiles), ids out of range (skipped; a token
// without a valid pair is a zero row), a chunked hidden dimension, and repeatable bits.
TEST(MoeExpertsCudaEdgeTest, OneExpertBadIdsAndDeterminism) {
  {
    const FfnCase c{.tokens = 300, .hidden = 128, .inter = 64, .experts = 8, .top_k = 2};
    std::vector<int32_t> ids(c.tokens * c.top_k, 5);
    std::vector<float> w(ids.size(), 0.5f);
    for (int tile : {16, 64, 128}) {
      FfnCase ct = c;
      ct.tile_rows = tile;
      RunAndCompare(ct, ids, w, 21);
    }
  }
  {
    const FfnCase c{.tokens = 40, .hidden = 192, .inter = 64, .experts = 8, .top_k = 3};
    std::mt19937 rng(4);
    std::vector<int32_t> ids;
    std::vector<float> w;
    RandomRouting(c.tokens, c.top_k, c.experts, rng, ids, w);
    ids[0] = -1;
    ids[4] = 8;
    ids[9] = ids[10] = ids[11] = -7;  // token 3: no valid pair
    const std::vector<uint16_t> a = RunAndCompare(c, ids, w, 31);
    const std::vector<uint16_t> b = RunAndCompare(c, ids, w, 31);
    EXPECT_EQ(a, b) << "two runs differ";
    for (int64_t j = 0; j < c.hidden; ++j) EXPECT_EQ(a[3 * (c.hidden + 16) + j], 0) << j;
  }
}

TEST(MoeExpertsCudaEdgeTest, EmptyAndBadParams) {
  MoeExpertsParams p{.num_tokens = 0, .hidden = 128, .inter = 64, .num_experts = 8, .top_k = 2};
  EXPECT_EQ(MoeExpertsCuda(p, nullptr, 0, nullptr), cudaSuccess);
  EXPECT_GT(MoeExpertsWorkspaceBytes(1, 2, 8, 128, 64), 0u);
  p.num_tokens = 1;
  EXPECT_EQ(MoeExpertsCuda(p, nullptr, 0, nullptr), cudaErrorInvalidValue);  // no buffers
  p.num_tokens = 0;
  p.hidden = 100;  // not a multiple of 64
  EXPECT_EQ(MoeExpertsCuda(p, nullptr, 0, nullptr), cudaErrorInvalidValue);
  p.hidden = 128;
  p.num_experts = 2000;
  EXPECT_EQ(MoeExpertsCuda(p, nullptr, 0, nullptr), cudaErrorInvalidValue);
  p.num_experts = 8;
  EXPECT_EQ(MoeExpertsCuda(p, nullptr, 0, nullptr, 32), cudaErrorInvalidValue);  // tile 32
}

}  // namespace
}  // namespace strata::kernels

#include "kernels/cpu/moe_experts.h"

#include <cmath>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "gtest/gtest.h"

namespace strata::kernels {
namespace {

// |got − want| <= kRelTol · max|want| + one bf16 rounding of the value itself.
constexpr double kRelTol = 2e-3;

std::vector<uint16_t> RandomBf16(size_t n, float scale, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = FloatToBF16(d(rng));
  return v;
}

struct Experts {
  std::vector<std::vector<uint16_t>> gate, up, down;
  std::vector<const uint16_t*> gate_ptr, up_ptr, down_ptr;
};

Experts MakeExperts(int64_t e_count, int64_t h, int64_t inter, std::mt19937& rng) {
  Experts ex;
  for (int64_t e = 0; e < e_count; ++e) {
    ex.gate.push_back(RandomBf16(inter * h, 0.2f, rng));
    ex.up.push_back(RandomBf16(inter * h, 0.2f, rng));
    ex.down.push_back(RandomBf16(h * inter, 0.2f, rng));
  }
  for (int64_t e = 0; e < e_count; ++e) {
    ex.gate_ptr.push_back(ex.gate[e].data());
    ex.up_ptr.push_back(ex.up[e].data());
    ex.down_ptr.push_back(ex.down[e].data());
  }
  return ex;
}

// Double-precision reference of one token (h rounded to bf16 as the contract says).
std::vector<double> Reference(const uint16_t* x, int64_t h, int64_t inter, const Experts& ex,
                              const int32_t* ids, const float* w, int64_t k, int64_t e_count) {
  std::vector<double> y(h, 0.0), hid(inter);
  for (int64_t j = 0; j < k; ++j) {
    if (ids[j] < 0 || ids[j] >= e_count) continue;
    const int32_t e = ids[j];
    for (int64_t i = 0; i < inter; ++i) {
      double g = 0, u = 0;
      for (int64_t c = 0; c < h; ++c) {
        g += double{BF16ToFloat(x[c])} * BF16ToFloat(ex.gate[e][i * h + c]);
        u += double{BF16ToFloat(x[c])} * BF16ToFloat(ex.up[e][i * h + c]);
      }
      hid[i] = BF16ToFloat(FloatToBF16(static_cast<float>(g / (1.0 + std::exp(-g)) * u)));
    }
    for (int64_t c = 0; c < h; ++c) {
      double o = 0;
      for (int64_t i = 0; i < inter; ++i) o += hid[i] * BF16ToFloat(ex.down[e][c * inter + i]);
      y[c] += w[j] * o;
    }
  }
  return y;
}

TEST(MoeExpertsCpuTest, MatchesDoubleReferenceWithStridesAndBadIds) {
  std::mt19937 rng(11);
  const int64_t t = 5, h = 48, inter = 40, e_count = 6, k = 3, xs = 56, ys = 50;
  const Experts ex = MakeExperts(e_count, h, inter, rng);
  const std::vector<uint16_t> x = RandomBf16(t * xs, 1.0f, rng);
  // Token 1 has an id out of range, token 2 meets expert 3 twice, token 3 has no valid pair.
  const std::vector<int32_t> ids = {0, 5, 2, 1, -1, 4, 3, 3, 0, 7, -2, 99, 5, 4, 1};
  std::vector<float> w(t * k);
  std::uniform_real_distribution<float> wd(0.1f, 1.0f);
  for (auto& v : w) v = wd(rng);
  std::vector<uint16_t> y(t * ys, 0xffff);
  const MoeExpertsParams params{.num_tokens = t,
                                .hidden = h,
                                .inter = inter,
                                .num_experts = e_count,
                                .top_k = k,
                                .x_stride = xs,
                                .y_stride = ys,
                                .x = x.data(),
                                .expert_ids = ids.data(),
                                .weights = w.data(),
                                .gate = ex.gate_ptr.data(),
                                .up = ex.up_ptr.data(),
                                .down = ex.down_ptr.data(),
                                .y = y.data()};
  ASSERT_TRUE(MoeExpertsCpu(params).ok());
  for (int64_t i = 0; i < t; ++i) {
    const std::vector<double> want = Reference(x.data() + i * xs, h, inter, ex, ids.data() + i * k,
                                               w.data() + i * k, k, e_count);
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::abs(v));
    for (int64_t c = 0; c < h; ++c) {
      const double got = BF16ToFloat(y[i * ys + c]);
      EXPECT_LE(std::abs(got - want[c]), kRelTol * scale + std::abs(want[c]) / 256)
          << "token " << i << " col " << c;
    }
    if (i == 3) {
      for (int64_t c = 0; c < h; ++c) EXPECT_EQ(y[i * ys + c], 0) << c;
    }
    for (int64_t c = h; c < ys; ++c) EXPECT_EQ(y[i * ys + c], 0xffff) << "padding written";
  }
  // The f32 output: the same sums before the bf16 rounding.
  std::vector<float> y32(t * ys, -7.0f);
  MoeExpertsParams params32 = params;
  params32.y = nullptr;
  params32.y_f32 = y32.data();
  ASSERT_TRUE(MoeExpertsCpu(params32).ok());
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t c = 0; c < h; ++c) {
      EXPECT_EQ(FloatToBF16(y32[i * ys + c]), y[i * ys + c]) << "token " << i << " col " << c;
    }
    for (int64_t c = h; c < ys; ++c) EXPECT_EQ(y32[i * ys + c], -7.0f) << "padding written";
  }
}

TEST(MoeExpertsCpuTest, RejectsBadParams) {
  std::vector<uint16_t> x(8), y(8);
  std::vector<int32_t> ids(2);
  std::vector<float> w(2);
  std::vector<const uint16_t*> ptrs(2, x.data());
  MoeExpertsParams p{.num_tokens = 1,
                     .hidden = 2,
                     .inter = 2,
                     .num_experts = 2,
                     .top_k = 2,
                     .x = x.data(),
                     .expert_ids = ids.data(),
                     .weights = w.data(),
                     .gate = ptrs.data(),
                     .up = ptrs.data(),
                     .down = ptrs.data(),
                     .y = y.data()};
  EXPECT_TRUE(MoeExpertsCpu(p).ok());
  MoeExpertsParams bad = p;
  bad.x_stride = 1;
  EXPECT_FALSE(MoeExpertsCpu(bad).ok());
  bad = p;
  bad.top_k = 0;
  EXPECT_FALSE(MoeExpertsCpu(bad).ok());
  bad = p;
  bad.weights = nullptr;
  EXPECT_FALSE(MoeExpertsCpu(bad).ok());
  bad = p;
  bad.num_tokens = 0;
  bad.x = nullptr;
  EXPECT_TRUE(MoeExpertsCpu(bad).ok());
}

}  // namespace
}  // namespace strata::kernels

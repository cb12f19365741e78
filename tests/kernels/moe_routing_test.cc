#include "kernels/cpu/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/routing_sigmoid.h"

namespace strata::kernels {
namespace {

constexpr double kWeightTol = 1e-6;

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// 8 experts in 4 groups of 2, keep 2 groups, 3 experts. Scores s = sigmoid(logits):
//   expert   0     1     2     3     4     5     6     7
//   s      .881  .269  .622  .500  .731  .731  .119  .953
//   bias     0     0    .5    .5     0     0    -1     0
//   choice .881  .269 1.122 1.000  .731  .731 -.881  .953
// Group sums of choice: g0 1.150, g1 2.122, g2 1.462, g3 .072 → keep g1, g2 (unbiased sums would
// keep g2, g0). Experts: 2, 3, then 4 and 5 tie at .731 → 4. Unbiased top-3 would be 7, 0, 4.
// Weights come from the unbiased s of 2, 3, 4.
TEST(MoeRoutingCpuTest, HandWorkedGroupsWhereBiasChangesTheChoice) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 0.0f, 1.0f, 1.0f, -2.0f, 3.0f};
  const std::vector<float> bias = {0, 0, 0.5f, 0.5f, 0, 0, -1.0f, 0};
  std::vector<int32_t> ids(3);
  std::vector<float> weights(3);
  ASSERT_TRUE(MoeRoutingCpu({.num_tokens = 1,
                             .num_experts = 8,
                             .n_group = 4,
                             .topk_group = 2,
                             .top_k = 3,
                             .norm_topk_prob = true,
                             .routed_scaling_factor = 2.5f,
                             .logits = logits.data(),
                             .correction_bias = bias.data(),
                             .expert_ids = ids.data(),
                             .weights = weights.data()})
                  .ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 3, 4}));
  const double s2 = Sigmoid(0.5), s3 = 0.5, s4 = Sigmoid(1.0), sum = s2 + s3 + s4;
  EXPECT_NEAR(weights[0], 2.5 * s2 / sum, kWeightTol);
  EXPECT_NEAR(weights[1], 2.5 * s3 / sum, kWeightTol);
  EXPECT_NEAR(weights[2], 2.5 * s4 / sum, kWeightTol);
  EXPECT_NEAR(weights[0], 0.839568, 1e-5);  // worked by hand
}

TEST(MoeRoutingCpuTest, SingleGroupWithoutNormalisation) {
  const std::vector<float> logits = {0.0f, 4.0f, -3.0f, 1.0f, 99.0f};
  std::vector<int32_t> ids(2);
  std::vector<float> weights(2);
  // Stride 5 with 4 experts: the fifth logit is not an expert.
  ASSERT_TRUE(MoeRoutingCpu({.num_tokens = 1,
                             .num_experts = 4,
                             .top_k = 2,
                             .logits_stride = 5,
                             .norm_topk_prob = false,
                             .routed_scaling_factor = 2.5f,
                             .logits = logits.data(),
                             .expert_ids = ids.data(),
                             .weights = weights.data()})
                  .ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3}));
  EXPECT_NEAR(weights[0], 2.5 * Sigmoid(4.0), kWeightTol);
  EXPECT_NEAR(weights[1], 2.5 * Sigmoid(1.0), kWeightTol);
}

TEST(MoeRoutingCpuTest, TopKBeyondKeptGroupsFillsFromDroppedGroupsByIndex) {
  const std::vector<float> logits = {0.0f, 0.0f, 5.0f, 5.0f, 1.0f, 1.0f, 2.0f, 2.0f};
  std::vector<int32_t> ids(3);
  std::vector<float> weights(3);
  ASSERT_TRUE(MoeRoutingCpu({.num_tokens = 1,
                             .num_experts = 8,
                             .n_group = 4,
                             .topk_group = 1,
                             .top_k = 3,
                             .logits = logits.data(),
                             .expert_ids = ids.data(),
                             .weights = weights.data()})
                  .ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 3, 0}));
}

// A plain second implementation: score every group, sort groups, then sort eligible experts.
void ReferenceRoute(const float* logits, const float* bias, int E, int G, int TG, int K,
                    double scale, std::vector<int32_t>* ids, std::vector<double>* weights) {
  std::vector<float> s(E), choice(E);
  for (int e = 0; e < E; ++e) {
    s[e] = static_cast<float>(Sigmoid(logits[e]));
    choice[e] = s[e] + bias[e];
  }
  const int per = E / G;
  std::vector<std::pair<float, int>> groups;
  for (int g = 0; g < G; ++g) {
    std::vector<float> v(choice.begin() + g * per, choice.begin() + (g + 1) * per);
    std::sort(v.rbegin(), v.rend());
    groups.push_back({v[0] + v[1], g});
  }
  std::stable_sort(groups.begin(), groups.end(),
                   [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<int> experts;
  for (int i = 0; i < TG; ++i) {
    for (int e = groups[i].second * per; e < (groups[i].second + 1) * per; ++e) {
      experts.push_back(e);
    }
  }
  std::sort(experts.begin(), experts.end());
  std::stable_sort(experts.begin(), experts.end(),
                   [&](int a, int b) { return choice[a] > choice[b]; });
  ids->assign(experts.begin(), experts.begin() + K);
  double sum = 0.0;
  for (int k = 0; k < K; ++k) sum += s[(*ids)[k]];
  weights->clear();
  for (int k = 0; k < K; ++k) weights->push_back(scale * s[(*ids)[k]] / sum);
}

TEST(MoeRoutingCpuTest, MatchesReferenceAtDeepseekV32Sizes) {
  const int T = 40, E = 256, G = 8, TG = 4, K = 8;
  std::mt19937 rng(12);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::uniform_real_distribution<float> bias_dist(-0.3f, 0.3f);
  std::vector<float> logits(T * E), bias(E);
  for (float& v : logits) v = dist(rng);
  for (float& v : bias) v = bias_dist(rng);
  std::vector<int32_t> ids(T * K);
  std::vector<float> weights(T * K);
  ASSERT_TRUE(MoeRoutingCpu({.num_tokens = T,
                             .num_experts = E,
                             .n_group = G,
                             .topk_group = TG,
                             .top_k = K,
                             .norm_topk_prob = true,
                             .routed_scaling_factor = 2.5f,
                             .logits = logits.data(),
                             .correction_bias = bias.data(),
                             .expert_ids = ids.data(),
                             .weights = weights.data()})
                  .ok());
  for (int t = 0; t < T; ++t) {
    std::vector<int32_t> ref_ids;
    std::vector<double> ref_w;
    ReferenceRoute(&logits[t * E], bias.data(), E, G, TG, K, 2.5, &ref_ids, &ref_w);
    for (int k = 0; k < K; ++k) {
      EXPECT_EQ(ids[t * K + k], ref_ids[k]) << "token " << t;
      EXPECT_NEAR(weights[t * K + k], ref_w[k], kWeightTol);
    }
  }
}

TEST(MoeRoutingCpuTest, RejectsBadParams) {
  std::vector<float> logits(8);
  std::vector<int32_t> ids(8);
  std::vector<float> w(8);
  auto run = [&](int64_t experts, int64_t groups, int64_t keep, int64_t k) {
    return MoeRoutingCpu({.num_tokens = 1,
                          .num_experts = experts,
                          .n_group = groups,
                          .topk_group = keep,
                          .top_k = k,
                          .logits = logits.data(),
                          .expert_ids = ids.data(),
                          .weights = w.data()});
  };
  EXPECT_TRUE(run(8, 4, 2, 2).ok());
  EXPECT_FALSE(run(8, 3, 1, 2).ok());  // 8 experts do not split into 3 groups
  EXPECT_FALSE(run(8, 4, 5, 2).ok());  // keep more groups than exist
  EXPECT_FALSE(run(8, 4, 2, 9).ok());  // more experts than exist
  EXPECT_FALSE(run(8, 8, 2, 2).ok());  // 1 expert per group cannot give a top-2 group score
  EXPECT_FALSE(MoeRoutingCpu({.num_tokens = 1,
                              .num_experts = 8,
                              .top_k = 2,
                              .logits = nullptr,
                              .expert_ids = ids.data(),
                              .weights = w.data()})
                   .ok());
}

// The portable sigmoid shared with the CUDA router is within a few fp32 ulp of the exact value
// (double precision) over the whole range, including the tails and the special values. Below
// x = −88.7 exp(−x) overflows, so the score is 0 instead of a subnormal (as 1 / (1 + expf(−x))).
TEST(RoutingSigmoidTest, MatchesDoublePrecisionSigmoid) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> wide(-120.0f, 120.0f), narrow(-8.0f, 8.0f);
  for (int i = 0; i < 200000; ++i) {
    const float x = i % 2 == 0 ? wide(rng) : narrow(rng);
    const double want = Sigmoid(static_cast<double>(x));
    const float got = routing::Sigmoid(x);
    EXPECT_LE(std::abs(got - want),
              4 * std::numeric_limits<float>::epsilon() * want + (x < -88.0f ? 1e-38 : 0.0))
        << x;
    const float e = routing::PortableExp(x * 0.7f);
    const double e_want = std::exp(static_cast<double>(x * 0.7f));
    if (e_want < 3e38 && e_want > 1e-37) {
      EXPECT_LE(std::abs(e - e_want), 2 * std::numeric_limits<float>::epsilon() * e_want) << x;
    }
  }
  EXPECT_EQ(routing::Sigmoid(0.0f), 0.5f);
  EXPECT_EQ(routing::Sigmoid(200.0f), 1.0f);
  EXPECT_EQ(routing::Sigmoid(-200.0f), 0.0f);
  EXPECT_EQ(routing::Sigmoid(INFINITY), 1.0f);
  EXPECT_EQ(routing::Sigmoid(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(routing::Sigmoid(NAN)));
}

}  // namespace
}  // namespace strata::kernels

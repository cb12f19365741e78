#include "kernels/cpu/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/routing_sigmoid.h"

namespace strata::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

float OrderKey(float v) { return std::isnan(v) ? kNegInf : v; }

// Indices [0, n) by key descending, lower index on ties; only the first `count` are ordered.
void TopIndices(const std::vector<float>& key, int64_t count, std::vector<int32_t>* order) {
  order->resize(key.size());
  std::iota(order->begin(), order->end(), 0);
  std::partial_sort(
      order->begin(), order->begin() + count, order->end(),
      [&key](int32_t a, int32_t b) { return key[a] > key[b] || (key[a] == key[b] && a < b); });
}

}  // namespace

absl::Status MoeRoutingCpu(const MoeRoutingParams& p) {
  const int64_t logits_stride = p.logits_stride == 0 ? p.num_experts : p.logits_stride;
  if (p.num_tokens < 0 || p.num_experts < 1 || p.n_group < 1 || p.num_experts % p.n_group != 0 ||
      p.topk_group < 1 || p.topk_group > p.n_group || p.top_k < 1 || p.top_k > p.num_experts ||
      logits_stride < p.num_experts || p.num_experts > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "moe_routing: bad sizes experts=", p.num_experts, " n_group=", p.n_group,
        " topk_group=", p.topk_group, " top_k=", p.top_k, " logits_stride=", logits_stride));
  }
  const int64_t group_size = p.num_experts / p.n_group;
  const bool drop_groups = p.topk_group < p.n_group;
  if (drop_groups && group_size < 2) {
    return absl::InvalidArgumentError("moe_routing: group scores need >= 2 experts per group");
  }
  if (p.num_tokens == 0) return absl::OkStatus();
  if (p.logits == nullptr || p.expert_ids == nullptr || p.weights == nullptr) {
    return absl::InvalidArgumentError("moe_routing: null buffer");
  }
  std::vector<float> scores(p.num_experts), choice(p.num_experts), group_score(p.n_group);
  std::vector<int32_t> order, group_order;
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* logits = p.logits + t * logits_stride;
    for (int64_t e = 0; e < p.num_experts; ++e) {
      scores[e] = routing::Sigmoid(logits[e]);
      const float bias = p.correction_bias == nullptr ? 0.0f : p.correction_bias[e];
      choice[e] = OrderKey(scores[e] + bias);
    }
    if (drop_groups) {
      for (int64_t g = 0; g < p.n_group; ++g) {
        const float* c = choice.data() + g * group_size;
        float first = kNegInf, second = kNegInf;
        for (int64_t i = 0; i < group_size; ++i) {
          if (c[i] > first) {
            second = first;
            first = c[i];
          } else if (c[i] > second) {
            second = c[i];
          }
        }
        group_score[g] = OrderKey(first + second);
      }
      TopIndices(group_score, p.topk_group, &group_order);
      for (int64_t i = p.topk_group; i < p.n_group; ++i) {
        std::fill_n(choice.begin() + group_order[i] * group_size, group_size, kNegInf);
      }
    }
    TopIndices(choice, p.top_k, &order);
    int32_t* ids = p.expert_ids + t * p.top_k;
    float* weights = p.weights + t * p.top_k;
    float sum = 0.0f;
    for (int64_t k = 0; k < p.top_k; ++k) {
      ids[k] = order[k];
      weights[k] = scores[order[k]];
      sum += weights[k];
    }
    if (p.norm_topk_prob) {
      const float denominator = sum + 1e-20f;
      for (int64_t k = 0; k < p.top_k; ++k) weights[k] /= denominator;
    }
    for (int64_t k = 0; k < p.top_k; ++k) weights[k] *= p.routed_scaling_factor;
  }
  return absl::OkStatus();
}

}  // namespace strata::kernels

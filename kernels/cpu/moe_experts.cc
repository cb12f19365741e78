#include "kernels/cpu/moe_experts.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dtype.h"

namespace strata::kernels {
namespace {

float Dot(const float* a, const uint16_t* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * BF16ToFloat(b[i]);
  return s;
}

}  // namespace

absl::Status MoeExpertsCpu(const MoeExpertsParams& p) {
  const int64_t x_stride = p.x_stride == 0 ? p.hidden : p.x_stride;
  const int64_t y_stride = p.y_stride == 0 ? p.hidden : p.y_stride;
  if (p.num_tokens < 0 || p.hidden < 1 || p.inter < 1 || p.num_experts < 1 || p.top_k < 1 ||
      x_stride < p.hidden || y_stride < p.hidden) {
    return absl::InvalidArgumentError(absl::StrCat("moe_experts: bad sizes T=", p.num_tokens,
                                                   " H=", p.hidden, " I=", p.inter,
                                                   " E=", p.num_experts, " K=", p.top_k));
  }
  if (p.num_tokens == 0) return absl::OkStatus();
  if (p.x == nullptr || p.expert_ids == nullptr || p.weights == nullptr || p.gate == nullptr ||
      p.up == nullptr || p.down == nullptr || (p.y == nullptr && p.y_f32 == nullptr)) {
    return absl::InvalidArgumentError("moe_experts: null buffer");
  }
  std::vector<float> x(p.hidden), h(p.inter), acc(p.hidden);
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    for (int64_t j = 0; j < p.hidden; ++j) x[j] = BF16ToFloat(p.x[t * x_stride + j]);
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t k = 0; k < p.top_k; ++k) {
      const int32_t e = p.expert_ids[t * p.top_k + k];
      if (e < 0 || e >= p.num_experts) continue;
      const uint16_t *gate = p.gate[e], *up = p.up[e], *down = p.down[e];
      if (gate == nullptr || up == nullptr || down == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("moe_experts: expert ", e, " has no weights"));
      }
      for (int64_t i = 0; i < p.inter; ++i) {
        const float g = Dot(x.data(), gate + i * p.hidden, p.hidden);
        const float u = Dot(x.data(), up + i * p.hidden, p.hidden);
        h[i] = BF16ToFloat(FloatToBF16(g / (1.0f + std::exp(-g)) * u));
      }
      const float w = p.weights[t * p.top_k + k];
      for (int64_t j = 0; j < p.hidden; ++j)
        acc[j] += w * Dot(h.data(), down + j * p.inter, p.inter);
    }
    if (p.y_f32 != nullptr) {
      for (int64_t j = 0; j < p.hidden; ++j) p.y_f32[t * y_stride + j] = acc[j];
    } else {
      for (int64_t j = 0; j < p.hidden; ++j) p.y[t * y_stride + j] = FloatToBF16(acc[j]);
    }
  }
  return absl::OkStatus();
}

}  // namespace strata::kernels

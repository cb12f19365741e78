// No-aux sigmoid MoE routing (dsa.md §5), in the order of HF DeepseekV32TopkRouter.forward:
//   s       = sigmoid(logits)                         (fp32, routing_sigmoid.h: the same bits on
//                                                      the host and the device)
//   choice  = s + correction_bias                     (bias only for choosing)
//   group   = Σ of the 2 largest choice values per group; keep the topk_group best groups
//   experts = the top_k largest choice values among the kept groups' experts
//   w_k     = s[expert_k];  norm_topk_prob: w /= (Σ w + 1e-20);  w *= routed_scaling_factor
// Ties (groups or experts) go to the lower index. Each token's experts are written by choice value
// descending. As in HF, experts of dropped groups compete at −inf, so when top_k exceeds the kept
// experts the rest are filled from dropped groups in index order. NaN choice values rank as −inf.
// The router logits (x · gateᵀ in fp32) are computed by the caller, e.g. with LinearCpu.
// The CUDA twin is MoeRoutingCuda (kernels/cuda/moe.h): the same experts, bit for bit.
#ifndef STRATA_KERNELS_CPU_MOE_ROUTING_H_
#define STRATA_KERNELS_CPU_MOE_ROUTING_H_

#include <cstdint>

#include "absl/status/status.h"

namespace strata::kernels {

struct MoeRoutingParams {
  int64_t num_tokens = 0;
  int64_t num_experts = 0;  // n_routed_experts; a multiple of n_group
  int64_t n_group = 1;
  int64_t topk_group = 1;     // 1..n_group
  int64_t top_k = 0;          // num_experts_per_tok; 1..num_experts
  int64_t logits_stride = 0;  // row stride of logits; 0 → num_experts
  bool norm_topk_prob = true;
  float routed_scaling_factor = 1.0f;
  const float* logits = nullptr;           // [num_tokens, logits_stride] router logits
  const float* correction_bias = nullptr;  // [num_experts] e_score_correction_bias; may be null (0)
  int32_t* expert_ids = nullptr;           // [num_tokens, top_k]
  float* weights = nullptr;                // [num_tokens, top_k]
};

// INVALID_ARGUMENT for inconsistent sizes (see the field comments; groups of fewer than 2 experts
// when groups are dropped) or null buffers.
absl::Status MoeRoutingCpu(const MoeRoutingParams& p);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CPU_MOE_ROUTING_H_

// The routed experts of one MoE layer over bf16 activations and weights (the layout the CUDA
// backend runs; the CUDA twin is MoeExpertsCuda in kernels/cuda/moe.h):
//
//   y[t] = bf16( Σ_k w[t,k] · down_e · h ),   h = bf16( silu(gate_e · x[t]) ⊙ (up_e · x[t]) ),
//   e = expert_ids[t,k]
//
// Dot products in fp32 from bf16 inputs; the intermediate h is rounded to bf16 (it is the input of
// the down projection, as on the device where it feeds the matrix unit); the sum over k runs in
// fp32 in k order and is rounded to bf16 once. A pair whose expert id lies outside
// [0, num_experts) adds nothing (the device cannot report it); a token without a valid pair gets a
// zero row. Every expert has the same intermediate size.
#ifndef STRATA_KERNELS_CPU_MOE_EXPERTS_H_
#define STRATA_KERNELS_CPU_MOE_EXPERTS_H_

#include <cstdint>

#include "absl/status/status.h"

namespace strata::kernels {

struct MoeExpertsParams {
  int64_t num_tokens = 0;                 // T
  int64_t hidden = 0;                     // H
  int64_t inter = 0;                      // I (moe_intermediate_size)
  int64_t num_experts = 0;                // E
  int64_t top_k = 0;                      // K
  int64_t x_stride = 0;                   // row stride of x in elements; 0 → hidden
  int64_t y_stride = 0;                   // row stride of y in elements; 0 → hidden
  const uint16_t* x = nullptr;            // [T, x_stride] bf16
  const int32_t* expert_ids = nullptr;    // [T, K]
  const float* weights = nullptr;         // [T, K]
  const uint16_t* const* gate = nullptr;  // [E] pointers, each [I, H] bf16
  const uint16_t* const* up = nullptr;    // [E] pointers, each [I, H] bf16
  const uint16_t* const* down = nullptr;  // [E] pointers, each [H, I] bf16
  uint16_t* y = nullptr;                  // [T, y_stride] bf16; must not overlap x
  // When set, the output goes here in f32 instead ([T, y_stride] f32; y is then ignored): the
  // model adds the MoE output to its f32 residual stream.
  float* y_f32 = nullptr;
};

// INVALID_ARGUMENT for bad sizes or null buffers (an expert's weights may be null only if no pair
// selects it).
absl::Status MoeExpertsCpu(const MoeExpertsParams& p);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CPU_MOE_EXPERTS_H_

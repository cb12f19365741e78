// MoE on the device: router top-k and the routed experts' FFN, with no host synchronisation, no
// allocation and launch grids fixed by upper bounds (T·K, E), so a whole MoE step can be captured
// in a CUDA graph. The CPU twins are MoeRoutingCpu (kernels/cpu/moe_routing.h) and MoeExpertsCpu
// (kernels/cpu/moe_experts.h); both take the same Params structs with device pointers here.
//
// Every launcher checks sizes on the host (cudaErrorInvalidValue, nothing launched) and returns
// the launch error. Device data (expert ids) is not validated: an id outside [0, E) adds nothing.
#ifndef STRATA_KERNELS_CUDA_MOE_H_
#define STRATA_KERNELS_CUDA_MOE_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/moe_experts.h"
#include "kernels/cpu/moe_routing.h"

namespace strata::kernels {

inline constexpr int64_t kMoeRoutingMaxExperts = 256;
inline constexpr int64_t kMoeRoutingMaxTopK = 32;
inline constexpr int64_t kMoeRoutingMaxGroups = 32;  // when groups are dropped
inline constexpr int64_t kMoeExpertsMaxExperts = 1024;

// MoeRoutingCpu on the device, one warp per token: the same expert ids in the same order, bit for
// bit (the sigmoid is routing_sigmoid.h, ties go to the lower index at every step, the weights
// are summed in k order), hence the same weights bit for bit too. num_experts <= 256,
// top_k <= 32, n_group <= 32 when topk_group < n_group. logits, correction_bias (may be null),
// expert_ids, weights are device pointers.
cudaError_t MoeRoutingCuda(const MoeRoutingParams& p, cudaStream_t stream);

// The routed experts of one layer (MoeExpertsCpu's contract; x, y, expert_ids, weights and the
// three pointer arrays are device memory, and so are the weights they point to). Steps, all on
// the stream: (1) one CTA counts the (token, k) pairs per expert and sorts them into per-expert
// segments (a counting sort); (2) a grouped GEMM computes h = silu(gate x) ⊙ (up x) for every
// pair, one CTA per (expert row tile, 64 columns of I), with the CTAs beyond the step's tiles
// exiting at once (so an expert no token chose costs nothing and its weights are never read);
// (3) a grouped GEMM computes down · h in fp32 per pair; (4) each token's K rows are summed in k
// order with their weights and written as bf16. For large T·K, steps 3–4 run over column chunks of
// H so that the fp32 pair rows stay within a bounded workspace.
//
// Requirements: hidden and inter multiples of 64; x, y and every weight pointer 16-byte aligned;
// x_stride and y_stride multiples of 8; num_experts <= 1024; gate/up are [I, H] and down [H, I]
// row-major (checkpoint layout). bf16 tensor-core products (mma.sync), fp32 accumulation.
// `workspace` holds at least MoeExpertsWorkspaceBytes(T, K, E, H, I) bytes, 256-byte aligned.
//
// tile_rows selects the grouped GEMM's row tile: 0 picks it from T·K / E (16-row tiles for decode,
// where each expert sees few rows, 128-row tiles for prefill); 16, 64 or 128 forces one (tests,
// bench).
size_t MoeExpertsWorkspaceBytes(int64_t num_tokens, int64_t top_k, int64_t num_experts,
                                int64_t hidden, int64_t inter);
cudaError_t MoeExpertsCuda(const MoeExpertsParams& p, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream, int tile_rows = 0);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CUDA_MOE_H_

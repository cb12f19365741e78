// Token sampling on the device: SampleCpu's contract (kernels/cpu/sampling.h) with device
// pointers, one CTA per row, no allocation and no host synchronisation (graph-capturable).
//
// Greedy rows (temperature 0) take the argmax of the raw logits (the first index on ties; when
// logits[0] is NaN, index 0, as the CPU twin's scan does). Other rows follow the CPU twin's math:
// z = logits / temperature (IEEE division), the top-k threshold is the exact k-th largest z
// (counting ties), weights exp((double) z − max z) in double, top-p keeps the shortest prefix of
// the kept tokens by (weight desc, index asc) whose mass reaches top_p · total, and the draw
// u = PhiloxUniform(seed, step, 0) walks the kept tokens in vocabulary order to the first whose
// cumulative mass exceeds u · total. logprobs are log_softmax of the raw logits at the token.
//
// Where the device can differ from the CPU: the sums (the total mass, the top-p prefix mass and
// the cumulative mass of the draw) run in another association order, and CUDA's double exp may
// differ from glibc's by an ulp, so a token can differ only when u · total or top_p · total lies
// within ~1e-15 (relative) of a cumulative boundary. logprobs agree within 2e-5 (fp32 exp, double
// sum; the test's bound). NaN logits are outside the contract for temperature > 0 (the CPU twin's
// nth_element has no order for them; here a NaN token is never kept). Options out of range are not
// checked on the device: temperature <= 0 or non-finite is greedy, top_k <= 0 is off, top_p outside
// (0, 1) is off (the backend validates them on the host).
//
// Speed (H100, 154880 tokens, docs/performance.md): one CTA per row reads its logits a few times
// from L2 (statistics, 3 radix passes per top-k threshold, the draw): greedy ~45 µs, top-k 50 +
// top-p ~0.22 ms. A top-p row whose mass is reached within its 4096 largest tokens sorts just
// those (~0.4 ms); a flatter row falls back to a 32-step bisection over the weight threshold (each
// a pass with double exps), ~2.7 ms.
#ifndef STRATA_KERNELS_CUDA_SAMPLING_H_
#define STRATA_KERNELS_CUDA_SAMPLING_H_

#include <cuda_runtime_api.h>

#include "kernels/cpu/sampling.h"

namespace strata::kernels {

// p.logits, p.options, p.steps, p.tokens and p.logprobs (may be null) are device pointers.
// cudaErrorInvalidValue for bad sizes or null buffers.
cudaError_t SampleCuda(const SampleParams& p, cudaStream_t stream);

}  // namespace strata::kernels

#endif  // STRATA_KERNELS_CUDA_SAMPLING_H_

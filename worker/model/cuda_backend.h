// The CUDA backend (issue 7): the model's operations on one GPU in bf16 with fp32 accumulation.
//
// Storage: weight matrices (projections, per-head W_UK/W_UV views, experts, embedding, head) and
// activations are bf16; norm weights, biases, the MoE router (weight and bias), the residual
// stream, the sublayer outputs added to it and the logits are f32 (backend.h). Caches default to
// bf16 latent and bf16 indexer layouts (fp8 on request); f32 caches work too.
//
// What runs where:
// - GEMMs: cuBLASLt (cuda_gemm.h), bf16 × bf16 with CUBLAS_COMPUTE_32F, bf16 or f32 out (f32 for
//   the sublayer outputs, the indexer head weights and the logits); per-head products are
//   strided-batched; the MoE router is an fp32 GEMM on the upcast activations. The workspace is
//   allocated once; a problem's algorithm is chosen once and cached. A Linear of at most 8 tokens
//   with a bf16 weight runs the memory-bound GEMV instead (kernels/cuda/gemv.h; bf16 or f32 x read
//   as is) when it takes the shapes (K a multiple of 8, 16-byte aligned rows).
// - Sparse MLA: the tuned kernel (kernels/cuda/sparse_mla.h) when q is bf16, L = 512, R = 64 and
//   the latent cache is bf16 or fp8; the indexer logits: the tuned kernel
//   (kernels/cuda/indexer_logits.h) when q is bf16 with 32 or 64 heads of 128 and the indexer
//   cache is bf16 or fp8. Otherwise (the tiny test models, f32 caches) the generic kernels of
//   kernels/cuda/model_ops.h, which read every cache layout. The indexer top-k and the cache
//   writes are always the tuned kernels.
// - Small operations: kernels/cuda/model_ops.h (f32 or bf16 in and out, fp32 math), including the
//   fused residual add + RMSNorm.
// - MoE routing, the routed experts and sampling run on the device (kernels/cuda/moe.h,
//   sampling.h: the CPU twins' choices, bit for bit): routing, a device-side grouping of the
//   (token, expert) pairs and grouped bf16 GEMMs with fixed grids (MoeExpertsCuda), the sampler
//   with the CPU's Philox draw. f32 expert weights (never loaded by this backend, but accepted)
//   group on the host and run cuBLAS per expert.
//
// Graphs (issue 7): BeginCapture/EndCapture record the backend's work on its stream into a CUDA
// graph (thread-local capture mode). While capturing, Upload and Download fail (a replay would
// read whatever a pinned slot holds then; a download synchronises), scratch is a graph allocation
// freed inside the graph (scratch_ keeps its address for eager steps and older graphs), and the
// MoE expert pointer tables are the ones built on the layer's first (eager) call. The model's
// decode graphs: worker/model/model_graphs.cc, docs/model.md.
//
// Memory and synchronisation: one stream per backend; temporaries come from the stream-ordered
// allocator (cudaMallocAsync with a retained pool), so freeing them never synchronises. Small
// uploads (per-step index vectors) go through pinned slots asynchronously. An ordinary operation
// never waits for the stream; Download does (Sample returns host ids, so it ends with one), and
// so does Upload of large tensors. Weights stream in through NewUploader: two halves of
// a pinned staging buffer, converted on the host while the other half is in flight.
#ifndef STRATA_WORKER_MODEL_CUDA_BACKEND_H_
#define STRATA_WORKER_MODEL_CUDA_BACKEND_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "worker/model/backend.h"

namespace strata::model {

// FAILED_PRECONDITION when device `index` does not exist or cuBLASLt cannot start.
absl::StatusOr<std::unique_ptr<Backend>> NewCudaBackend(int index);

// How many calls of a CUDA backend ran the tuned attention kernels and how many the generic
// fallbacks (tests check both paths are exercised).
struct CudaKernelCounts {
  int64_t tuned_sparse_mla = 0;
  int64_t generic_sparse_mla = 0;
  int64_t tuned_indexer = 0;
  int64_t generic_indexer = 0;
  // Linear calls by path: the small-M GEMV (kernels/cuda/gemv.h) or cuBLASLt.
  int64_t gemv_linear = 0;
  int64_t gemm_linear = 0;
};
// Zeros for a backend that is not a CUDA backend.
CudaKernelCounts GetCudaKernelCounts(const Backend& backend);

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_CUDA_BACKEND_H_

// The CUDA backend (issue 7, first cut): the model's operations on one GPU, correctness first.
//
// Storage: activations and weights are fp32 on the device (bf16 storage is still to come); caches
// use the model's cache dtypes (fp32 by default). GEMMs go through cuBLAS in fp32 with TF32 off
// (CUBLAS_DEFAULT_MATH, CUBLAS_COMPUTE_32F). Small operations are kernels/cuda/model_ops.h; cache
// writes and the indexer top-k are the tuned kernels of kernels/cuda. Where those cannot serve the
// shape or dtype (the indexer logits want bf16 q with 32/64 heads of 128; sparse MLA wants bf16 q,
// L = 512, R = 64 and a bf16/fp8 cache), the generic fp32 kernels of model_ops.h run instead.
// MoE routing and sampling run on the device (kernels/cuda/moe.h, sampling.h: the CPU twins'
// choices, bit for bit); the routed experts take the grouped expert FFN (MoeExpertsCuda) when the
// activations are bf16 and otherwise group the pairs on the host and run cuBLAS per expert.
// Everything runs on one stream per backend; index data the host needs (positions, fp32 expert
// ids) is read back with a stream sync.
#ifndef STRATA_WORKER_MODEL_CUDA_BACKEND_H_
#define STRATA_WORKER_MODEL_CUDA_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "worker/model/backend.h"

namespace strata::model {

// FAILED_PRECONDITION when device `index` does not exist or cuBLAS cannot start.
absl::StatusOr<std::unique_ptr<Backend>> NewCudaBackend(int index);

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_CUDA_BACKEND_H_

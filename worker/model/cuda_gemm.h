// GEMMs of the CUDA backend through cuBLASLt: bf16 or f32 operands, fp32 accumulation
// (CUBLAS_COMPUTE_32F: no TF32 for f32 operands), bf16 or f32 output, optionally strided-batched.
// Private to worker/model.
//
// Each distinct problem (shapes, leading dimensions, batch strides, dtypes, pointer alignments)
// gets its descriptors and heuristic algorithm once, cached for the life of the object; a call
// after that only launches. The workspace is allocated once at creation.
#ifndef STRATA_WORKER_MODEL_CUDA_GEMM_H_
#define STRATA_WORKER_MODEL_CUDA_GEMM_H_

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace strata::model::cuda_internal {

// Column-major D[m, n] = op(A)[m, k] · op(B)[k, n] per batch, with A stored [m, k] (trans_a
// false) or [k, m] (trans_a true), B stored [k, n] (trans_b false) or [n, k]. Leading dimensions
// and batch strides are in elements; A and B share a dtype (kBF16 or kF32); D is kBF16 or kF32.
struct GemmArgs {
  DType ab_dtype = DType::kBF16;
  DType d_dtype = DType::kBF16;
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldd = 0;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;
  const void* a = nullptr;
  const void* b = nullptr;
  void* d = nullptr;
};

class CudaGemm {
 public:
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;

  // `device` must be current. FAILED_PRECONDITION when cuBLASLt cannot start.
  static absl::StatusOr<std::unique_ptr<CudaGemm>> Create();
  ~CudaGemm();

  absl::Status Run(const GemmArgs& args, cudaStream_t stream);

 private:
  struct Plan;
  using Key = std::tuple<int, int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int64_t, int64_t, int64_t, int, int, int>;
  CudaGemm(cublasLtHandle_t handle, void* workspace);
  absl::StatusOr<Plan*> GetPlan(const GemmArgs& a);

  cublasLtHandle_t handle_;
  void* workspace_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace strata::model::cuda_internal

#endif  // STRATA_WORKER_MODEL_CUDA_GEMM_H_

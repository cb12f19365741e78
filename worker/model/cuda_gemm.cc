#include "worker/model/cuda_gemm.h"

#include "absl/strings/str_cat.h"
#include "common/cuda_status.h"
#include "common/status.h"

namespace strata::model::cuda_internal {
namespace {

absl::Status LtStatus(cublasStatus_t s, absl::string_view what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": cuBLASLt status ", static_cast<int>(s)));
}

cudaDataType_t CudaType(DType d) { return d == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F; }

// The largest power of two (<= 256) dividing the address and every batch offset.
int Alignment(const void* p, int64_t batch, int64_t stride_bytes) {
  uint64_t v = reinterpret_cast<uintptr_t>(p) | 256;
  if (batch > 1) v |= static_cast<uint64_t>(stride_bytes);
  return static_cast<int>(v & (~v + 1));
}

}  // namespace

struct CudaGemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (desc != nullptr) cublasLtMatmulDescDestroy(desc);
  }
};

CudaGemm::CudaGemm(cublasLtHandle_t handle, void* workspace)
    : handle_(handle), workspace_(workspace) {}

absl::StatusOr<std::unique_ptr<CudaGemm>> CudaGemm::Create() {
  cublasLtHandle_t handle = nullptr;
  if (cublasLtCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
    return absl::FailedPreconditionError("cublasLtCreate failed");
  }
  void* workspace = nullptr;
  if (cudaError_t e = cudaMalloc(&workspace, kWorkspaceBytes); e != cudaSuccess) {
    cublasLtDestroy(handle);
    return CudaStatus(e, "cuBLASLt workspace");
  }
  return std::unique_ptr<CudaGemm>(new CudaGemm(handle, workspace));
}

CudaGemm::~CudaGemm() {
  plans_.clear();
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

absl::StatusOr<CudaGemm::Plan*> CudaGemm::GetPlan(const GemmArgs& g) {
  const int64_t ab = DTypeSize(g.ab_dtype), ds = DTypeSize(g.d_dtype);
  const int align_a = Alignment(g.a, g.batch, g.stride_a * ab);
  const int align_b = Alignment(g.b, g.batch, g.stride_b * ab);
  const int align_d = Alignment(g.d, g.batch, g.stride_d * ds);
  const Key key{static_cast<int>(g.ab_dtype),
                static_cast<int>(g.d_dtype),
                g.trans_a,
                g.trans_b,
                g.m,
                g.n,
                g.k,
                g.lda,
                g.ldb,
                g.ldd,
                g.batch,
                g.stride_a,
                g.stride_b,
                g.stride_d,
                align_a,
                align_b,
                align_d};
  if (auto it = plans_.find(key); it != plans_.end()) return it->second.get();

  auto plan = std::make_unique<Plan>();
  const cudaDataType_t ab_type = CudaType(g.ab_dtype), d_type = CudaType(g.d_dtype);
  RETURN_IF_ERROR(
      LtStatus(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc"));
  const cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  RETURN_IF_ERROR(LtStatus(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)),
      "transa"));
  RETURN_IF_ERROR(LtStatus(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)),
      "transb"));
  // Stored shapes: A [m, k] or [k, m], B [k, n] or [n, k], D [m, n] (column-major).
  const uint64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const uint64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  RETURN_IF_ERROR(
      LtStatus(cublasLtMatrixLayoutCreate(&plan->a, ab_type, a_rows, a_cols, g.lda), "layout a"));
  RETURN_IF_ERROR(
      LtStatus(cublasLtMatrixLayoutCreate(&plan->b, ab_type, b_rows, b_cols, g.ldb), "layout b"));
  RETURN_IF_ERROR(
      LtStatus(cublasLtMatrixLayoutCreate(&plan->d, d_type, g.m, g.n, g.ldd), "layout d"));
  if (g.batch > 1) {
    const int32_t count = static_cast<int32_t>(g.batch);
    const std::pair<cublasLtMatrixLayout_t, int64_t> layouts[] = {
        {plan->a, g.stride_a}, {plan->b, g.stride_b}, {plan->d, g.stride_d}};
    for (const auto& [layout, stride] : layouts) {
      RETURN_IF_ERROR(
          LtStatus(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                    &count, sizeof(count)),
                   "batch count"));
      RETURN_IF_ERROR(LtStatus(
          cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                           &stride, sizeof(stride)),
          "batch stride"));
    }
  }
  cublasLtMatmulPreference_t pref = nullptr;
  RETURN_IF_ERROR(LtStatus(cublasLtMatmulPreferenceCreate(&pref), "preference"));
  const uint64_t ws = kWorkspaceBytes;
  const uint32_t aa = align_a, ba = align_b, da = align_d;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                       sizeof(ws));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa,
                                       sizeof(aa));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ba,
                                       sizeof(ba));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &da,
                                       sizeof(da));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &da,
                                       sizeof(da));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(
      handle_, plan->desc, plan->a, plan->b, plan->d, plan->d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
    return absl::UnimplementedError(absl::StrCat(
        "cuBLASLt has no algorithm for ", DTypeName(g.ab_dtype), " -> ", DTypeName(g.d_dtype),
        " m=", g.m, " n=", g.n, " k=", g.k, " lda=", g.lda, " ldb=", g.ldb, " ldd=", g.ldd,
        " batch=", g.batch, " (status ", static_cast<int>(hs), ")"));
  }
  plan->algo = result.algo;
  Plan* out = plan.get();
  plans_.emplace(key, std::move(plan));
  return out;
}

absl::Status CudaGemm::Run(const GemmArgs& g, cudaStream_t stream) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return absl::OkStatus();
  if (g.k == 0) return absl::UnimplementedError("cuBLASLt GEMM with k = 0");
  ASSIGN_OR_RETURN(Plan * plan, GetPlan(g));
  const float one = 1.0f, zero = 0.0f;
  return LtStatus(
      cublasLtMatmul(handle_, plan->desc, &one, g.a, plan->a, g.b, plan->b, &zero, g.d, plan->d,
                     g.d, plan->d, &plan->algo, workspace_, kWorkspaceBytes, stream),
      "cublasLtMatmul");
}

}  // namespace strata::model::cuda_internal

// The decode GEMV (kernels/cuda/gemv.h) at GLM-5's projection shapes, M = 1 and 8 tokens, bf16 x
// and y: q_a 6144→2048, q_b 2048→16384, o_proj 16384→6144, kv_a 6144→576. The same products
// through cuBLAS (bf16, fp32 compute; what the backend ran before issue 7's GEMV) as
// gemv_cublas rows, for comparison. Memory-bound: bytes = W + x + y (bf16), flops = 2·M·N·K.
// The weights rotate among enough copies that back-to-back runs read them from memory, not L2.
#include <cublas_v2.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "kernels/cuda/gemv.h"

namespace strata::bench {
namespace {

struct GemvShape {
  const char* name;
  int64_t k, n;
};
constexpr GemvShape kShapes[] = {
    {"q_a", 6144, 2048}, {"q_b", 2048, 16384}, {"o_proj", 16384, 6144}, {"kv_a", 6144, 576}};

class GemvCase : public Case {
 public:
  GemvCase(int64_t m, int64_t k, int64_t n, bool cublas) : m_(m), k_(k), n_(n), cublas_(cublas) {}
  ~GemvCase() override {
    if (handle_ != nullptr) cublasDestroy(handle_);
  }

  absl::Status Setup(const Env& env) override {
    const int64_t w_elems = n_ * k_;
    sets_ = RotationSets(env, w_elems * 2);
    RETURN_IF_ERROR(w_.Allocate(sets_ * w_elems * 2));
    RETURN_IF_ERROR(x_.Allocate(m_ * k_ * 2));
    RETURN_IF_ERROR(y_.Allocate(m_ * n_ * 2));
    RETURN_IF_ERROR(CudaStatus(
        FillUniformBF16(w_.get(), sets_ * w_elems, 17, -0.05f, 0.05f, env.stream), "fill w"));
    RETURN_IF_ERROR(
        CudaStatus(FillUniformBF16(x_.get(), m_ * k_, 18, -1.0f, 1.0f, env.stream), "fill x"));
    if (cublas_) {
      if (cublasCreate(&handle_) != CUBLAS_STATUS_SUCCESS) {
        return absl::FailedPreconditionError("cublasCreate");
      }
      // A fixed workspace: capture into a graph must not allocate.
      RETURN_IF_ERROR(workspace_.Allocate(int64_t{32} << 20));
      if (cublasSetWorkspace(handle_, workspace_.get(), workspace_.bytes()) !=
              CUBLAS_STATUS_SUCCESS ||
          cublasSetStream(handle_, env.stream) != CUBLAS_STATUS_SUCCESS) {
        return absl::FailedPreconditionError("cublas workspace / stream");
      }
    }
    return absl::OkStatus();
  }

  cudaError_t Run(cudaStream_t stream, int iteration) override {
    const auto* w = w_.as<uint16_t>() + (iteration % sets_) * n_ * k_;
    if (!cublas_) {
      return kernels::GemvCuda({.m = m_,
                                .n = n_,
                                .k = k_,
                                .x_dtype = DType::kBF16,
                                .y_dtype = DType::kBF16,
                                .w = w,
                                .x = x_.get(),
                                .y = y_.get()},
                               stream);
    }
    // Column-major yᵀ[N, M] = W[N, K]·xᵀ: A = W stored [K, N] transposed, as the backend does.
    cublasSetStream(handle_, stream);
    const float alpha = 1.0f, beta = 0.0f;
    const cublasStatus_t st =
        cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n_), static_cast<int>(m_),
                     static_cast<int>(k_), &alpha, w, CUDA_R_16BF, static_cast<int>(k_), x_.get(),
                     CUDA_R_16BF, static_cast<int>(k_), &beta, y_.get(), CUDA_R_16BF,
                     static_cast<int>(n_), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? cudaGetLastError() : cudaErrorUnknown;
  }

  Work GetWork() const override {
    return {.bytes = 2.0 * (n_ * k_ + m_ * k_ + m_ * n_), .flops = 2.0 * m_ * n_ * k_};
  }

 private:
  int64_t m_, k_, n_;
  bool cublas_;
  int sets_ = 1;
  cublasHandle_t handle_ = nullptr;
  DeviceBuffer w_, x_, y_, workspace_;
};

STRATA_BENCH_CASES(RegisterGemvCases) {
  for (const bool cublas : {false, true}) {
    for (const GemvShape& s : kShapes) {
      for (const int64_t m : {1, 8}) {
        registry->Add(
            {.kernel = cublas ? "gemv_cublas" : "gemv",
             .name = absl::StrCat(s.name, " ", s.k, "->", s.n, " m=", m),
             .shape = {{"m", m}, {"k", s.k}, {"n", s.n}},
             .make = [m, s, cublas] { return std::make_unique<GemvCase>(m, s.k, s.n, cublas); }});
      }
    }
  }
}

}  // namespace
}  // namespace strata::bench

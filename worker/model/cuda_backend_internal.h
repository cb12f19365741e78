// The CUDA backend's class, shared by cuda_backend.cc (memory, dense operations) and
// cuda_backend_ops.cc (paged DSA operations, MoE, sampling). Private to worker/model.
#ifndef STRATA_WORKER_MODEL_CUDA_BACKEND_INTERNAL_H_
#define STRATA_WORKER_MODEL_CUDA_BACKEND_INTERNAL_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <vector>

#include "worker/model/backend.h"

namespace strata::model::cuda_internal {

class CudaBackend final : public Backend {
 public:
  CudaBackend(int index, cudaStream_t stream, cublasHandle_t cublas, int num_sms)
      : index_(index), stream_(stream), cublas_(cublas), num_sms_(num_sms) {}
  ~CudaBackend() override;

  Device device() const override { return Device::Cuda(index_); }
  void* stream() const override { return stream_; }
  absl::StatusOr<Tensor> NewTensor(DType dtype, Shape shape) override;
  absl::StatusOr<Tensor> Upload(const Tensor& host) override;
  absl::StatusOr<Tensor> Download(const Tensor& device) override;

  absl::Status Embedding(const Tensor& ids, const Tensor& table, Tensor& out) override;
  absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  absl::Status LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                         Tensor& out) override;
  absl::Status Linear(const Tensor& x, const Tensor& w, Tensor& y) override;
  absl::Status HeadMatmul(const Tensor& x, const Tensor& w, bool transpose_w, Tensor& y) override;
  absl::Status Add(Tensor& x, const Tensor& y) override;
  absl::Status Copy(const Tensor& src, Tensor& dst) override;
  absl::StatusOr<Tensor> GatherRows(const Tensor& x, const std::vector<int32_t>& rows) override;
  absl::Status Rope(Tensor& x, const Tensor& positions, const RopeArgs& rope) override;
  absl::Status SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) override;

  absl::Status WriteLatentCache(const Tensor& rows, const PagedView& view,
                                LayerCache& cache) override;
  absl::Status WriteIndexerCache(const Tensor& keys, const PagedView& view,
                                 LayerCache& cache) override;
  absl::StatusOr<Tensor> IndexerTopk(const Tensor& q, const Tensor& w, float weight_scale,
                                     float softmax_scale, int top_k, const PagedView& view,
                                     const LayerCache& cache) override;
  absl::Status SparseMla(const Tensor& q_abs, const Tensor& slots, float scale,
                         const LayerCache& cache, Tensor& out) override;
  absl::Status MoeExperts(const Tensor& x, const Tensor& expert_ids, const Tensor& weights,
                          const std::vector<ExpertWeights>& experts, Tensor& y) override;
  absl::Status MoeRoute(const Tensor& router_logits, const Tensor& bias, const RouteArgs& args,
                        Tensor& expert_ids, Tensor& weights) override;
  absl::Status Sample(const Tensor& logits, const std::vector<SamplingArgs>& args,
                      std::vector<int32_t>& ids, std::vector<float>& logprobs) override;

 private:
  // A host vector as a new device tensor (synchronous).
  template <typename T>
  absl::StatusOr<Tensor> UploadVector(const std::vector<T>& v, DType dtype);
  absl::Status CheckDeviceRows(const Tensor& t, absl::string_view what) const;

  int index_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  int num_sms_;
};

template <typename T>
absl::StatusOr<Tensor> CudaBackend::UploadVector(const std::vector<T>& v, DType dtype) {
  Tensor host = Tensor::Borrow(const_cast<T*>(v.data()), dtype, {static_cast<int64_t>(v.size())});
  return Upload(host);
}

}  // namespace strata::model::cuda_internal

#endif  // STRATA_WORKER_MODEL_CUDA_BACKEND_INTERNAL_H_

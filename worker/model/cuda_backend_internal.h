// The CUDA backend's class, shared by cuda_backend.cc (memory, uploads), cuda_backend_dense.cc
// (dense operations, GEMMs) and cuda_backend_ops.cc (paged DSA operations, MoE, sampling).
// Private to worker/model.
#ifndef STRATA_WORKER_MODEL_CUDA_BACKEND_INTERNAL_H_
#define STRATA_WORKER_MODEL_CUDA_BACKEND_INTERNAL_H_

#include <cuda_runtime_api.h>

#include <array>
#include <memory>
#include <vector>

#include "kernels/cuda/sparse_mla.h"
#include "worker/model/backend.h"
#include "worker/model/cuda_backend.h"
#include "worker/model/cuda_gemm.h"

namespace strata::model::cuda_internal {

class StreamAllocator;

// Pinned host slots for small asynchronous uploads (per-step index vectors): a slot is reused
// once the copy recorded on it has finished (an event wait that, with this many slots, finds the
// copy long done).
struct PinnedRing {
  static constexpr int kSlots = 16;
  static constexpr int64_t kSlotBytes = int64_t{1} << 20;
  void* host = nullptr;  // kSlots × kSlotBytes
  std::array<cudaEvent_t, kSlots> done{};
  int next = 0;
};

class CudaBackend final : public Backend {
 public:
  // Takes ownership of `allocator` (which owns the stream) and `gemm`.
  CudaBackend(int index, StreamAllocator* allocator, std::unique_ptr<CudaGemm> gemm,
              kernels::CudaDeviceLimits limits, PinnedRing ring);
  ~CudaBackend() override;

  Device device() const override { return Device::Cuda(index_); }
  void* stream() const override { return stream_; }
  DType activation_dtype() const override { return DType::kBF16; }
  DType weight_dtype() const override { return DType::kBF16; }
  kvcache::LatentCacheDType default_latent_cache() const override {
    return kvcache::LatentCacheDType::kBF16;
  }
  kvcache::IndexerCacheDType default_indexer_cache() const override {
    return kvcache::IndexerCacheDType::kBF16;
  }
  absl::StatusOr<Tensor> NewTensor(DType dtype, Shape shape) override;
  absl::StatusOr<Tensor> Upload(const Tensor& host) override;
  absl::StatusOr<Tensor> Download(const Tensor& device) override;
  absl::StatusOr<std::unique_ptr<Uploader>> NewUploader(int64_t staging_bytes) override;

  absl::Status Embedding(const Tensor& ids, const Tensor& table, Tensor& out) override;
  absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  absl::Status AddRmsNorm(Tensor& h, const Tensor& delta, const Tensor& weight, float eps,
                          Tensor& out) override;
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

  const CudaKernelCounts& kernel_counts() const { return counts_; }

 private:
  // A host vector as a new device tensor (asynchronous when small).
  template <typename T>
  absl::StatusOr<Tensor> UploadVector(const std::vector<T>& v, DType dtype);
  // An f32 or bf16 device tensor with unit inner stride.
  absl::Status CheckAct(const Tensor& t, absl::string_view what) const;
  // `bytes` of device scratch, valid until the next call (stream order keeps users apart).
  absl::StatusOr<void*> Scratch(int64_t bytes);
  // x converted to `dtype` as a new contiguous tensor (x itself when it already is).
  absl::StatusOr<Tensor> Converted(const Tensor& x, DType dtype);
  // The step's row and sequence lengths (from the view, or computed with a device→host copy).
  struct StepLens {
    Tensor row_lens_holder, seq_lens_holder;
    const int32_t* row_lens = nullptr;
    const int32_t* seq_lens = nullptr;
    int64_t max_row_len = 0;
  };
  absl::StatusOr<StepLens> Lens(const PagedView& view);

  int index_;
  StreamAllocator* allocator_;
  cudaStream_t stream_;
  std::unique_ptr<CudaGemm> gemm_;
  kernels::CudaDeviceLimits limits_;
  PinnedRing ring_;
  Tensor scratch_;
  CudaKernelCounts counts_;
};

template <typename T>
absl::StatusOr<Tensor> CudaBackend::UploadVector(const std::vector<T>& v, DType dtype) {
  Tensor host = Tensor::Borrow(const_cast<T*>(v.data()), dtype, {static_cast<int64_t>(v.size())});
  return Upload(host);
}

}  // namespace strata::model::cuda_internal

#endif  // STRATA_WORKER_MODEL_CUDA_BACKEND_INTERNAL_H_

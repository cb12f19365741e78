// The CUDA backend: creation, memory, uploads and downloads (cuda_backend.h says what runs where).
#include "worker/model/cuda_backend.h"

#include <atomic>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/model_ops.h"
#include "worker/model/cuda_backend_internal.h"

namespace strata::model {
namespace cuda_internal {

// Stream-ordered device memory (cudaMallocAsync / cudaFreeAsync on the backend's stream, from the
// device's default pool with its release threshold raised so that freed memory is kept for
// reuse): freeing a temporary never synchronises. The allocator owns the stream and lives until
// the backend and every tensor it handed out are gone.
class StreamAllocator final : public Allocator {
 public:
  StreamAllocator(int index, cudaStream_t stream) : index_(index), stream_(stream) {}
  Device device() const override { return Device::Cuda(index_); }
  cudaStream_t stream() const { return stream_; }

  absl::StatusOr<void*> Allocate(size_t bytes) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(index_));
    void* p = nullptr;
    if (cudaError_t e = cudaMallocAsync(&p, (bytes + 255) / 256 * 256, stream_); e != cudaSuccess) {
      cudaGetLastError();
      return CudaStatus(e, absl::StrCat("cudaMallocAsync(", bytes, ") on cuda:", index_));
    }
    if (reinterpret_cast<uintptr_t>(p) % 256 != 0) {  // the Allocator contract
      cudaFreeAsync(p, stream_);
      return absl::InternalError("cudaMallocAsync returned memory not aligned to 256 bytes");
    }
    refs_.fetch_add(1, std::memory_order_relaxed);
    return p;
  }

  void Free(void* ptr) override {
    cudaSetDevice(index_);
    cudaFreeAsync(ptr, stream_);
    Unref();
  }

  // Drops one reference (the backend's, or an allocation's); the last one destroys the stream.
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    cudaSetDevice(index_);
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
    delete this;
  }

 private:
  ~StreamAllocator() override = default;
  int index_;
  cudaStream_t stream_;
  std::atomic<int64_t> refs_{1};  // the backend's
};

namespace {

// Two halves of a pinned buffer: the host fills one while the other is copied.
class CudaUploader final : public Uploader {
 public:
  CudaUploader(Device device, cudaStream_t stream, void* pinned, int64_t half,
               std::array<cudaEvent_t, 2> done)
      : device_(device), stream_(stream), pinned_(pinned), half_(half), done_(done) {}
  ~CudaUploader() override {
    cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : done_) cudaEventDestroy(e);
    cudaFreeHost(pinned_);
  }

  int64_t max_chunk_bytes() const override { return half_; }

  absl::StatusOr<void*> Begin(const Tensor& dst, int64_t offset, int64_t bytes) override {
    if (dst.device() != device_ || !dst.is_contiguous() || offset < 0 || bytes < 0 ||
        bytes > half_ || offset + bytes > static_cast<int64_t>(dst.nbytes())) {
      return absl::InvalidArgumentError(absl::StrCat("upload of bytes [", offset, ", ",
                                                     offset + bytes, ") into ", dst.DebugString()));
    }
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(done_[current_]));  // this half's last copy
    dst_ = static_cast<char*>(dst.data()) + offset;
    bytes_ = bytes;
    return static_cast<char*>(pinned_) + current_ * half_;
  }

  absl::Status Commit() override {
    if (dst_ == nullptr) return absl::FailedPreconditionError("Commit without Begin");
    if (bytes_ > 0) {
      CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst_, static_cast<char*>(pinned_) + current_ * half_,
                                           bytes_, cudaMemcpyHostToDevice, stream_));
      CUDA_RETURN_IF_ERROR(cudaEventRecord(done_[current_], stream_));
    }
    dst_ = nullptr;
    current_ ^= 1;
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }

 private:
  Device device_;
  cudaStream_t stream_;
  void* pinned_;
  int64_t half_;
  std::array<cudaEvent_t, 2> done_;
  int current_ = 0;
  void* dst_ = nullptr;
  int64_t bytes_ = 0;
};

// Shape [rows, cols] with unit inner stride and a row pitch, viewing a tensor whose dimensions
// before the last collapse into rows with one stride (a column slice of a wider buffer, or heads
// of equal pitch).
struct Rows2d {
  int64_t rows = 0, cols = 0, pitch = 0;
};
bool AsRows(const Tensor& t, Rows2d& out) {
  if (t.ndim() == 0 || t.stride(-1) != 1) return false;
  out.cols = t.dim(-1);
  out.rows = 1;
  out.pitch = out.cols;
  int64_t inner = 0;  // rows spanned by the leading dimensions inside the current one
  for (int d = t.ndim() - 2; d >= 0; --d) {
    if (t.dim(d) == 1) continue;
    if (inner == 0) {
      out.pitch = t.stride(d);
      inner = t.dim(d);
    } else if (t.stride(d) != inner * out.pitch) {
      return false;
    } else {
      inner *= t.dim(d);
    }
    out.rows *= t.dim(d);
  }
  return out.pitch >= out.cols || out.rows == 1;
}

}  // namespace

CudaBackend::CudaBackend(int index, StreamAllocator* allocator, std::unique_ptr<CudaGemm> gemm,
                         kernels::CudaDeviceLimits limits, PinnedRing ring)
    : index_(index),
      allocator_(allocator),
      stream_(allocator->stream()),
      gemm_(std::move(gemm)),
      limits_(limits),
      ring_(ring) {}

CudaBackend::~CudaBackend() {
  cudaSetDevice(index_);
  cudaStreamSynchronize(stream_);
  gemm_.reset();
  for (cudaEvent_t e : ring_.done) cudaEventDestroy(e);
  cudaFreeHost(ring_.host);
  allocator_->Unref();  // the stream lives on while tensors of this backend do
}

absl::Status CudaBackend::CheckAct(const Tensor& t, absl::string_view what) const {
  if (!t.defined() || (t.dtype() != DType::kF32 && t.dtype() != DType::kBF16) ||
      t.device() != device() || t.stride(t.ndim() - 1) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": expected an f32 or bf16 tensor on ", device().ToString(),
                     " with contiguous rows, got ", t.defined() ? t.DebugString() : "undefined"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> CudaBackend::NewTensor(DType dtype, Shape shape) {
  ASSIGN_OR_RETURN(Tensor t, Tensor::Empty(dtype, std::move(shape), allocator_));
  // Byte tensors are the KV caches: zero them so a row read before it is written reads zeros, as
  // on the CPU backend.
  if (dtype == DType::kU8 && t.nbytes() > 0) {
    CUDA_RETURN_IF_ERROR(cudaMemsetAsync(t.data(), 0, t.nbytes(), stream_));
  }
  return t;
}

absl::StatusOr<void*> CudaBackend::Scratch(int64_t bytes) {
  if (bytes <= 0) return nullptr;
  if (!scratch_.defined() || static_cast<int64_t>(scratch_.nbytes()) < bytes) {
    // The old buffer is freed in stream order, after the kernels that used it.
    ASSIGN_OR_RETURN(scratch_, Tensor::Empty(DType::kU8, {bytes + bytes / 2}, allocator_));
  }
  return scratch_.data();
}

absl::StatusOr<Tensor> CudaBackend::Upload(const Tensor& host) {
  if (host.device() == device()) return host;
  if (!host.device().is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("upload from ", host.device().ToString()));
  }
  Tensor src = host;
  if (!host.is_contiguous()) {
    ASSIGN_OR_RETURN(src, Tensor::Empty(host.dtype(), host.shape()));
    RETURN_IF_ERROR(CopyCpu(host, src));
  }
  ASSIGN_OR_RETURN(Tensor out, NewTensor(src.dtype(), src.shape()));
  const int64_t bytes = static_cast<int64_t>(src.nbytes());
  if (bytes == 0) return out;
  if (bytes <= PinnedRing::kSlotBytes) {
    // Small: through a pinned slot, no wait for the copy.
    const int slot = ring_.next;
    ring_.next = (ring_.next + 1) % PinnedRing::kSlots;
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(ring_.done[slot]));
    char* staged = static_cast<char*>(ring_.host) + slot * PinnedRing::kSlotBytes;
    std::memcpy(staged, src.data(), bytes);
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(out.data(), staged, bytes, cudaMemcpyHostToDevice, stream_));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(ring_.done[slot], stream_));
    return out;
  }
  CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(out.data(), src.data(), bytes, cudaMemcpyHostToDevice, stream_));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return out;
}

absl::StatusOr<Tensor> CudaBackend::Download(const Tensor& t) {
  if (t.device().is_cpu()) {
    if (t.is_contiguous()) return t;
    ASSIGN_OR_RETURN(Tensor out, Tensor::Empty(t.dtype(), t.shape()));
    RETURN_IF_ERROR(CopyCpu(t, out));
    return out;
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Empty(t.dtype(), t.shape()));
  if (out.nbytes() == 0) return out;
  const size_t elem = DTypeSize(t.dtype());
  Rows2d r;
  if (t.is_contiguous()) {
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(out.data(), t.data(), t.nbytes(), cudaMemcpyDeviceToHost, stream_));
  } else if (AsRows(t, r)) {
    CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(out.data(), r.cols * elem, t.data(), r.pitch * elem,
                                           r.cols * elem, r.rows, cudaMemcpyDeviceToHost, stream_));
  } else {
    return absl::UnimplementedError(absl::StrCat("download of ", t.DebugString()));
  }
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return out;
}

absl::StatusOr<std::unique_ptr<Uploader>> CudaBackend::NewUploader(int64_t staging_bytes) {
  const int64_t half = std::max<int64_t>(staging_bytes / 2, 4096);
  CUDA_RETURN_IF_ERROR(cudaSetDevice(index_));
  void* pinned = nullptr;
  CUDA_RETURN_IF_ERROR(cudaHostAlloc(&pinned, 2 * half, cudaHostAllocDefault));
  std::array<cudaEvent_t, 2> done{};
  for (cudaEvent_t& e : done) {
    if (cudaError_t err = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
        err != cudaSuccess) {
      cudaFreeHost(pinned);
      return CudaStatus(err, "uploader event");
    }
  }
  return std::unique_ptr<Uploader>(
      std::make_unique<CudaUploader>(device(), stream_, pinned, half, done));
}

absl::Status CudaBackend::Copy(const Tensor& src, Tensor& dst) {
  if (src.dtype() != dst.dtype() || src.shape() != dst.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy from ", src.DebugString(), " to ", dst.DebugString()));
  }
  if (src.numel() == 0) return absl::OkStatus();
  const size_t elem = DTypeSize(src.dtype());
  Rows2d a, b;
  if (src.is_contiguous() && dst.is_contiguous()) {
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(dst.data(), src.data(), src.nbytes(), cudaMemcpyDefault, stream_));
  } else if (AsRows(src, a) && AsRows(dst, b)) {
    CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(dst.data(), b.pitch * elem, src.data(), a.pitch * elem,
                                           a.cols * elem, a.rows, cudaMemcpyDefault, stream_));
  } else {
    return absl::UnimplementedError(
        absl::StrCat("copy from ", src.DebugString(), " to ", dst.DebugString()));
  }
  if (src.device().is_cpu() || dst.device().is_cpu()) {
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> CudaBackend::Converted(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Rows2d r;
  if (!AsRows(x, r)) {
    return absl::UnimplementedError(absl::StrCat("dtype conversion of ", x.DebugString()));
  }
  ASSIGN_OR_RETURN(Tensor out, NewTensor(dtype, x.shape()));
  RETURN_IF_ERROR(CudaStatus(kernels::CastRowsCuda({.rows = r.rows,
                                                    .dim = r.cols,
                                                    .src_stride = r.pitch,
                                                    .dst_stride = r.cols,
                                                    .src_dtype = x.dtype(),
                                                    .dst_dtype = dtype,
                                                    .src = x.data(),
                                                    .dst = out.data()},
                                                   stream_),
                             "cast"));
  return out;
}

absl::StatusOr<CudaBackend::StepLens> CudaBackend::Lens(const PagedView& view) {
  StepLens l;
  if (view.row_lens != nullptr && view.seq_lens != nullptr) {
    l.row_lens = view.row_lens->data<int32_t>();
    l.seq_lens = view.seq_lens->data<int32_t>();
    l.max_row_len = view.max_row_len;
    return l;
  }
  // Without the model's host copies: read positions back (a sync) and derive them.
  ASSIGN_OR_RETURN(Tensor pos, Download(*view.positions));
  ASSIGN_OR_RETURN(Tensor seq, Download(*view.token_seq));
  const int64_t t = pos.numel(), num_seqs = view.block_tables->dim(0);
  std::vector<int32_t> row_lens(t), seq_lens(num_seqs, 0);
  for (int64_t i = 0; i < t; ++i) {
    const int32_t s = seq.data<int32_t>()[i];
    if (s < 0 || s >= num_seqs) return absl::InvalidArgumentError("step: token sequence");
    row_lens[i] = static_cast<int32_t>(pos.data<int64_t>()[i] + 1);
    seq_lens[s] = std::max(seq_lens[s], row_lens[i]);
    l.max_row_len = std::max<int64_t>(l.max_row_len, row_lens[i]);
  }
  ASSIGN_OR_RETURN(l.row_lens_holder, UploadVector(row_lens, DType::kI32));
  ASSIGN_OR_RETURN(l.seq_lens_holder, UploadVector(seq_lens, DType::kI32));
  l.row_lens = l.row_lens_holder.data<int32_t>();
  l.seq_lens = l.seq_lens_holder.data<int32_t>();
  return l;
}

}  // namespace cuda_internal

CudaKernelCounts GetCudaKernelCounts(const Backend& backend) {
  const auto* cuda = dynamic_cast<const cuda_internal::CudaBackend*>(&backend);
  return cuda == nullptr ? CudaKernelCounts{} : cuda->kernel_counts();
}

absl::StatusOr<std::unique_ptr<Backend>> NewCudaBackend(int index) {
  const int count = CudaDeviceCount();
  if (index < 0 || index >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device ", index, " (this machine has ", count, ")"));
  }
  CUDA_RETURN_IF_ERROR(cudaSetDevice(index));
  ASSIGN_OR_RETURN(const kernels::CudaDeviceLimits limits, kernels::QueryCudaDeviceLimits(index));
  // Keep freed stream-ordered memory in the pool (the default threshold returns it at every sync).
  cudaMemPool_t pool = nullptr;
  CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, index));
  uint64_t threshold = UINT64_MAX;
  CUDA_RETURN_IF_ERROR(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  ASSIGN_OR_RETURN(std::unique_ptr<cuda_internal::CudaGemm> gemm,
                   cuda_internal::CudaGemm::Create());
  cuda_internal::PinnedRing ring;
  cudaStream_t stream = nullptr;
  const auto release = [&ring, &stream] {
    for (cudaEvent_t e : ring.done) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (ring.host != nullptr) cudaFreeHost(ring.host);
    if (stream != nullptr) cudaStreamDestroy(stream);
  };
  cudaError_t err = cudaHostAlloc(
      &ring.host, cuda_internal::PinnedRing::kSlots * cuda_internal::PinnedRing::kSlotBytes,
      cudaHostAllocDefault);
  for (cudaEvent_t& e : ring.done) {
    if (err == cudaSuccess) err = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  }
  if (err == cudaSuccess) err = cudaStreamCreate(&stream);
  if (err != cudaSuccess) {
    release();
    return CudaStatus(err, "CUDA backend set-up");
  }
  auto* allocator = new cuda_internal::StreamAllocator(index, stream);
  return std::unique_ptr<Backend>(std::make_unique<cuda_internal::CudaBackend>(
      index, allocator, std::move(gemm), limits, ring));
}

}  // namespace strata::model

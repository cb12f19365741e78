// Streams checkpoint tensors onto a backend, converted to the dtype the backend stores them in,
// with bounded host memory: values are read from the memory-mapped checkpoint and converted chunk
// by chunk (f32 / f16 / bf16 / fp8 E4M3 with `<name>_scale_inv` 128×128 block scales → f32 or
// bf16) straight into the backend's staging buffer (pinned memory on CUDA, the destination itself
// on the CPU), so no whole-tensor host copy is ever made; a large chunk that needs converting is
// split over a few threads, and on CUDA one staging half converts while the other is copied to
// the device. Converted values equal
// Checkpoint::GetF32's (then rounded to nearest even for bf16).
//
// Progress: with LoadStreamOptions::expected_bytes known, a log line every 10% or every few
// seconds (GB on the device, GB/s), and a summary at Finish. Loads under 256 MiB log only at
// VLOG(1).
#ifndef STRATA_WORKER_MODEL_WEIGHT_STREAM_H_
#define STRATA_WORKER_MODEL_WEIGHT_STREAM_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "worker/model/backend.h"

namespace strata::model {

// The part of a tensor to load, on its 2-D view [rows, cols] = [product of all dimensions but the
// last, last dimension] (a 1-D tensor is one row). -1 ends at the last row / column.
struct TensorPart {
  int64_t row_begin = 0;
  int64_t row_end = -1;
  int64_t col_begin = 0;
  int64_t col_end = -1;
  bool whole() const { return row_begin == 0 && row_end < 0 && col_begin == 0 && col_end < 0; }
};

struct LoadStreamOptions {
  int64_t staging_bytes = int64_t{64} << 20;  // host staging memory (two halves on CUDA)
  int64_t expected_bytes = 0;  // device bytes the whole load writes (progress); 0 = unknown
  absl::Duration progress_interval = absl::Seconds(5);
  int threads = 0;  // host threads converting a chunk; 0 = min(8, hardware threads)
};

class WeightStreamer {
 public:
  static absl::StatusOr<std::unique_ptr<WeightStreamer>> Create(const Checkpoint& checkpoint,
                                                                Backend& backend,
                                                                const LoadStreamOptions& options);

  // Tensor `name` (stored shape must be `shape`) converted to `dtype` (kF32 or kBF16) as a new
  // contiguous tensor on the backend: the whole tensor in its own shape, or `part` as
  // [part rows, part cols]. NOT_FOUND for a missing tensor, INVALID_ARGUMENT for another shape, a
  // part outside it, or a block scale of the wrong shape. The tensor may still be in flight until
  // Finish.
  absl::StatusOr<Tensor> Load(const std::string& name, const Shape& shape, DType dtype,
                              const TensorPart& part = {});
  // Waits for every upload and logs the total.
  absl::Status Finish();

  int64_t bytes_written() const { return bytes_written_; }

 private:
  WeightStreamer(const Checkpoint& checkpoint, Backend& backend, LoadStreamOptions options,
                 std::unique_ptr<Uploader> uploader);
  void Progress();

  const Checkpoint& ckpt_;
  Backend& backend_;
  LoadStreamOptions options_;
  std::unique_ptr<Uploader> uploader_;
  absl::Time start_;
  absl::Time last_log_;
  int64_t bytes_written_ = 0;
  int last_decile_ = 0;
  int threads_ = 1;
};

// Checks `name`'s stored shape (and its block scale's, when present) without reading data, and
// returns the shape `part` selects. The same errors as WeightStreamer::Load.
absl::StatusOr<Shape> CheckTensor(const Checkpoint& checkpoint, const std::string& name,
                                  const Shape& shape, const TensorPart& part = {});

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_WEIGHT_STREAM_H_

#include "worker/model/weight_stream.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status.h"

namespace strata::model {
namespace {

constexpr int64_t kScaleBlock = 128;                 // FP8 block-scale tile, rows and columns
constexpr int64_t kQuietBytes = int64_t{256} << 20;  // smaller loads log at VLOG(1) only

std::string ShapeString(const Shape& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

// The 2-D view [rows, cols] of a shape (a scalar or 1-D tensor is one row).
void Rows2d(const Shape& s, int64_t& rows, int64_t& cols) {
  cols = s.empty() ? 1 : s.back();
  rows = 1;
  for (size_t d = 0; d + 1 < s.size(); ++d) rows *= s[d];
}

struct Resolved {
  int64_t rows = 0, cols = 0;  // of the whole tensor's 2-D view
  int64_t r0 = 0, r1 = 0, c0 = 0, c1 = 0;
  Shape out_shape;
  bool scaled = false;
};

absl::StatusOr<Resolved> Resolve(const Checkpoint& ckpt, const std::string& name,
                                 const Shape& shape, const TensorPart& part) {
  if (!ckpt.Has(name)) return absl::NotFoundError(absl::StrCat("missing tensor ", name));
  ASSIGN_OR_RETURN(const TensorInfo info, ckpt.Info(name));
  if (info.shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " has shape ",
                                                   ShapeString(info.shape), ", expected ",
                                                   ShapeString(shape)));
  }
  Resolved r;
  Rows2d(shape, r.rows, r.cols);
  r.r0 = part.row_begin;
  r.r1 = part.row_end < 0 ? r.rows : part.row_end;
  r.c0 = part.col_begin;
  r.c1 = part.col_end < 0 ? r.cols : part.col_end;
  if (r.r0 < 0 || r.r0 > r.r1 || r.r1 > r.rows || r.c0 < 0 || r.c0 > r.c1 || r.c1 > r.cols) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", name, ": part rows [", r.r0, ", ",
                                                   r.r1, ") cols [", r.c0, ", ", r.c1, ") outside ",
                                                   ShapeString(shape)));
  }
  r.out_shape = part.whole() ? shape : Shape{r.r1 - r.r0, r.c1 - r.c0};
  const std::string scale_name = name + "_scale_inv";
  if (ckpt.Has(scale_name)) {
    if (shape.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, " has a block scale but is not 2-D: ", ShapeString(shape)));
    }
    ASSIGN_OR_RETURN(const TensorInfo s, ckpt.Info(scale_name));
    const Shape want = {(r.rows + kScaleBlock - 1) / kScaleBlock,
                        (r.cols + kScaleBlock - 1) / kScaleBlock};
    if (s.shape != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, ": ", scale_name, " is ", ShapeString(s.shape),
                       ", expected ", ShapeString(want), " (one scale per 128x128 block)"));
    }
    r.scaled = true;
  }
  return r;
}

const std::array<float, 256>& F8Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = F8E4M3ToFloat(static_cast<uint8_t>(i));
    return t;
  }();
  return table;
}

template <typename Load, typename Store>
void ConvertLoop(int64_t n, const float* scales, int64_t col0, Load load, Store store) {
  if (scales == nullptr) {
    for (int64_t i = 0; i < n; ++i) store(i, load(i));
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(i, load(i) * scales[(col0 + i) / kScaleBlock]);
}

template <typename Store>
void ConvertFrom(DType sd, const uint8_t* src, int64_t n, const float* scales, int64_t col0,
                 Store store) {
  switch (sd) {
    case DType::kF32:
      ConvertLoop(
          n, scales, col0,
          [src](int64_t i) {
            float v;
            std::memcpy(&v, src + 4 * i, 4);
            return v;
          },
          store);
      return;
    case DType::kBF16:
    case DType::kF16: {
      const bool bf16 = sd == DType::kBF16;
      ConvertLoop(
          n, scales, col0,
          [src, bf16](int64_t i) {
            uint16_t h;
            std::memcpy(&h, src + 2 * i, 2);
            return bf16 ? BF16ToFloat(h) : F16ToFloat(h);
          },
          store);
      return;
    }
    default: {  // kF8E4M3 (checked by the caller)
      const float* table = F8Table().data();
      ConvertLoop(
          n, scales, col0, [src, table](int64_t i) { return table[src[i]]; }, store);
      return;
    }
  }
}

// n values of dtype `sd` at `src` → `dd` at `dst`, scaled by scales[(col0 + i) / 128] when
// `scales` is set (the row's block scales).
void ConvertRow(DType sd, const uint8_t* src, int64_t n, const float* scales, int64_t col0,
                DType dd, void* dst) {
  if (sd == dd && scales == nullptr) {
    std::memcpy(dst, src, static_cast<size_t>(n * DTypeSize(sd)));
    return;
  }
  if (dd == DType::kF32) {
    float* out = static_cast<float*>(dst);
    ConvertFrom(sd, src, n, scales, col0, [out](int64_t i, float v) { out[i] = v; });
  } else {
    uint16_t* out = static_cast<uint16_t*>(dst);
    ConvertFrom(sd, src, n, scales, col0, [out](int64_t i, float v) { out[i] = FloatToBF16(v); });
  }
}

}  // namespace

absl::StatusOr<Shape> CheckTensor(const Checkpoint& checkpoint, const std::string& name,
                                  const Shape& shape, const TensorPart& part) {
  ASSIGN_OR_RETURN(Resolved r, Resolve(checkpoint, name, shape, part));
  return r.out_shape;
}

WeightStreamer::WeightStreamer(const Checkpoint& checkpoint, Backend& backend,
                               LoadStreamOptions options, std::unique_ptr<Uploader> uploader)
    : ckpt_(checkpoint),
      backend_(backend),
      options_(options),
      uploader_(std::move(uploader)),
      start_(absl::Now()),
      last_log_(start_) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  threads_ = options_.threads > 0 ? options_.threads : std::clamp(hw, 1, 8);
}

absl::StatusOr<std::unique_ptr<WeightStreamer>> WeightStreamer::Create(
    const Checkpoint& checkpoint, Backend& backend, const LoadStreamOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Uploader> uploader, backend.NewUploader(options.staging_bytes));
  return std::unique_ptr<WeightStreamer>(
      new WeightStreamer(checkpoint, backend, options, std::move(uploader)));
}

absl::StatusOr<Tensor> WeightStreamer::Load(const std::string& name, const Shape& shape,
                                            DType dtype, const TensorPart& part) {
  ASSIGN_OR_RETURN(const Resolved r, Resolve(ckpt_, name, shape, part));
  if (dtype != DType::kF32 && dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", name, ": weights load as f32 or bf16, not ", DTypeName(dtype)));
  }
  ASSIGN_OR_RETURN(const Tensor src, ckpt_.Get(name));
  const DType sd = src.dtype();
  if (sd != DType::kF32 && sd != DType::kF16 && sd != DType::kBF16 && sd != DType::kF8E4M3) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " has dtype ", DTypeName(sd),
                                                   ", which does not convert to ",
                                                   DTypeName(dtype)));
  }
  Tensor scale;
  if (r.scaled) {
    ASSIGN_OR_RETURN(scale, ckpt_.GetF32(name + "_scale_inv"));
  }
  ASSIGN_OR_RETURN(Tensor dst, backend_.NewTensor(dtype, r.out_shape));

  const int64_t rows = r.r1 - r.r0, cols = r.c1 - r.c0;
  if (rows == 0 || cols == 0) return dst;
  const int64_t esize = DTypeSize(dtype), ssize = DTypeSize(sd);
  const int64_t row_bytes = cols * esize, max_chunk = uploader_->max_chunk_bytes();
  // Whole rows per chunk when a row fits, else one row in segments.
  const int64_t seg_cols = row_bytes <= max_chunk ? cols : std::max<int64_t>(1, max_chunk / esize);
  const int64_t chunk_rows =
      row_bytes <= max_chunk ? std::max<int64_t>(1, max_chunk / row_bytes) : 1;
  const auto* base = static_cast<const uint8_t*>(src.data());
  const int64_t scale_cols = r.scaled ? scale.dim(1) : 0;
  for (int64_t i = 0; i < rows; i += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - i);
    for (int64_t j = 0; j < cols; j += seg_cols) {
      const int64_t nc = std::min(seg_cols, cols - j);
      ASSIGN_OR_RETURN(void* chunk, uploader_->Begin(dst, (i * cols + j) * esize, nr * nc * esize));
      const auto convert = [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t row = r.r0 + i + k, col = r.c0 + j;
          const float* scales =
              r.scaled ? scale.data<float>() + (row / kScaleBlock) * scale_cols : nullptr;
          ConvertRow(sd, base + (row * r.cols + col) * ssize, nc, scales, col, dtype,
                     static_cast<char*>(chunk) + k * nc * esize);
        }
      };
      // Large chunks that need converting are split over threads by rows (a plain copy is
      // memory-bound already).
      const bool copy = sd == dtype && !r.scaled;
      if (copy || threads_ <= 1 || nr < 2 * threads_ || nr * nc * esize < (int64_t{1} << 20)) {
        convert(0, nr);
      } else {
        std::vector<std::thread> pool;
        const int64_t per = (nr + threads_ - 1) / threads_;
        for (int64_t k = 0; k < nr; k += per) pool.emplace_back(convert, k, std::min(nr, k + per));
        for (std::thread& t : pool) t.join();
      }
      RETURN_IF_ERROR(uploader_->Commit());
      bytes_written_ += nr * nc * esize;
      Progress();
    }
  }
  return dst;
}

void WeightStreamer::Progress() {
  if (options_.expected_bytes < kQuietBytes) return;
  const absl::Time now = absl::Now();
  const int decile = static_cast<int>(10 * bytes_written_ / options_.expected_bytes);
  if (decile <= last_decile_ && now - last_log_ < options_.progress_interval) return;
  last_decile_ = std::max(last_decile_, decile);
  last_log_ = now;
  const double seconds = std::max(absl::ToDoubleSeconds(now - start_), 1e-9);
  LOG(INFO) << absl::StrFormat("loading weights onto %s: %.2f of %.2f GB (%d%%), %.2f GB/s",
                               backend_.device().ToString(), bytes_written_ / 1e9,
                               options_.expected_bytes / 1e9,
                               static_cast<int>(100 * bytes_written_ / options_.expected_bytes),
                               bytes_written_ / 1e9 / seconds);
}

absl::Status WeightStreamer::Finish() {
  RETURN_IF_ERROR(uploader_->Finish());
  const double seconds = std::max(absl::ToDoubleSeconds(absl::Now() - start_), 1e-9);
  const std::string line = absl::StrFormat(
      "loaded %.3f GB of weights onto %s in %.2f s (%.2f GB/s)", bytes_written_ / 1e9,
      backend_.device().ToString(), seconds, bytes_written_ / 1e9 / seconds);
  if (bytes_written_ >= kQuietBytes) {
    LOG(INFO) << line;
  } else {
    VLOG(1) << line;
  }
  return absl::OkStatus();
}

}  // namespace strata::model

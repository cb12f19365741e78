// The small model operations on the device (model_ops.h): embedding, norms, rope, silu·mul,
// axpy, scale, casts and row gathers, each templated on f32 / bf16 storage.
#include <algorithm>

#include "kernels/cuda/model_ops.h"
#include "kernels/cuda/model_ops_common.cuh"

namespace strata::kernels {
namespace {

using model_ops::Blocks;
using model_ops::BlockSum;
using model_ops::IsAct;
using model_ops::kThreads;
using model_ops::Ld;
using model_ops::Or;
using model_ops::St;
using model_ops::WithType;

template <typename T>
__global__ void EmbeddingKernel(EmbeddingCudaParams p, int64_t out_stride) {
  const int64_t t = blockIdx.x;
  const int32_t id = p.ids[t];
  float* out = p.out + t * out_stride;
  const bool ok = id >= 0 && id < p.vocab_size;
  const T* row = static_cast<const T*>(p.table) + (ok ? id * p.dim : 0);
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) out[i] = ok ? Ld(row, i) : 0.0f;
}

// One CTA per row. With a residual: residual += x first (in fp32), then the norm of the sum.
template <typename X, typename O>
__global__ void RmsNormKernel(RmsNormCudaParams p, int64_t xs, int64_t os, int64_t rs) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const X* x = static_cast<const X*>(p.x) + r * xs;
  float* res = p.residual == nullptr ? nullptr : p.residual + r * rs;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    float v = Ld(x, i);
    if (res != nullptr) {
      v += res[i];
      res[i] = v;
    }
    ss += v * v;
  }
  const float inv_rms = rsqrtf(BlockSum(ss, scratch) / static_cast<float>(p.dim) + p.eps);
  O* out = static_cast<O*>(p.out) + r * os;
  // Each thread reads back only the elements it wrote above (same index order), so aliasing of
  // out with x or the residual is safe without another barrier.
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    const float v = res != nullptr ? res[i] : Ld(x, i);
    St(out, i, p.weight[i] * (v * inv_rms));
  }
}

template <typename T>
__global__ void LayerNormKernel(LayerNormCudaParams p, int64_t xs, int64_t os) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const T* x = static_cast<const T*>(p.x) + r * xs;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) s += Ld(x, i);
  const float mean = BlockSum(s, scratch) / static_cast<float>(p.dim);
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    const float d = Ld(x, i) - mean;
    ss += d * d;
  }
  const float inv_std = rsqrtf(BlockSum(ss, scratch) / static_cast<float>(p.dim) + p.eps);
  T* out = static_cast<T*>(p.out) + r * os;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    const float y = (Ld(x, i) - mean) * inv_std * p.weight[i];
    St(out, i, p.bias == nullptr ? y : y + p.bias[i]);
  }
}

// One thread per (token, head): the head's rot_dim lanes are read before any is written.
// One warp per (token, head): lane l holds pairs j = l, l + 32, ... (rot_dim <= 256: at most 4
// a lane) in registers, the warp synchronises, then writes them back rotated, so the in-place
// interleaved → half-split reordering needs no local array and every pair runs in parallel.
template <typename T>
__global__ void RopeKernel(ApplyRopeParams p, T* base) {
  constexpr int kMaxPairsPerLane = 4;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= p.num_tokens * p.num_heads) return;  // whole warps leave together
  const int64_t t = warp / p.num_heads, h = warp % p.num_heads;
  const int64_t pos = p.positions[t];
  if (pos < 0) return;
  T* x = base + t * p.token_stride + h * p.head_stride;
  const int half = static_cast<int>(p.rot_dim / 2);
  const bool neox = p.style == RopeStyle::kNeox;
  const int first_step = neox ? 1 : 2, second_offset = neox ? half : 1;
  float a[kMaxPairsPerLane], b[kMaxPairsPerLane];
#pragma unroll
  for (int i = 0; i < kMaxPairsPerLane; ++i) {
    const int j = lane + 32 * i;
    if (j < half) {
      a[i] = Ld(x, j * first_step);
      b[i] = Ld(x, j * first_step + second_offset);
    }
  }
  __syncwarp();
#pragma unroll
  for (int i = 0; i < kMaxPairsPerLane; ++i) {
    const int j = lane + 32 * i;
    if (j >= half) continue;
    const float angle = p.inv_freq[j] * static_cast<float>(pos);
    const float c = cosf(angle) * p.attention_factor, s = sinf(angle) * p.attention_factor;
    const float ra = a[i] * c - b[i] * s, rb = b[i] * c + a[i] * s;
    if (p.style == RopeStyle::kInterleaved) {
      St(x, 2 * j, ra);
      St(x, 2 * j + 1, rb);
    } else {
      St(x, j, ra);
      St(x, j + half, rb);
    }
  }
}

template <typename T>
__global__ void SiluMulKernel(SiluMulCudaParams p, int64_t gs, int64_t us, int64_t os) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= p.rows * p.dim) return;
  const int64_t r = idx / p.dim, i = idx % p.dim;
  const float g = Ld(static_cast<const T*>(p.gate), r * gs + i);
  const float u = Ld(static_cast<const T*>(p.up), r * us + i);
  St(static_cast<T*>(p.out), r * os + i, g / (1.0f + expf(-g)) * u);
}

template <typename T>
__global__ void AxpyKernel(AxpyParams p, const T* x, int64_t xs, int64_t ys, int64_t y_total) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= p.rows * p.dim) return;
  const int64_t r = idx / p.dim, i = idx % p.dim;
  const int64_t yr = p.y_rows == nullptr ? r : p.y_rows[r];
  if (yr < 0 || yr >= y_total) return;
  const float a = p.alpha * (p.row_alpha == nullptr ? 1.0f : p.row_alpha[r]);
  p.y[yr * ys + i] += a * Ld(x, r * xs + i);
}

__global__ void ScaleKernel(ScaleParams p, int64_t stride) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= p.rows * p.dim) return;
  p.x[(idx / p.dim) * stride + idx % p.dim] *= p.alpha;
}

template <typename S, typename D>
__global__ void CastRowsKernel(CastRowsCudaParams p) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= p.rows * p.dim) return;
  const int64_t r = idx / p.dim, i = idx % p.dim;
  St(static_cast<D*>(p.dst), r * p.dst_stride + i,
     Ld(static_cast<const S*>(p.src), r * p.src_stride + i));
}

template <typename T>
__global__ void GatherRowsKernel(GatherRowsCudaParams p) {
  const int64_t i = blockIdx.x;
  const int32_t r = p.rows[i];
  const bool ok = r >= 0 && r < p.x_rows;
  const T* x = static_cast<const T*>(p.x);
  T* out = static_cast<T*>(p.out);
  for (int64_t d = threadIdx.x; d < p.dim; d += blockDim.x) {
    out[i * p.out_stride + d] = ok ? x[r * p.x_stride + d] : T{};
  }
}

bool RowsOk(int64_t rows, int64_t dim) { return rows >= 0 && dim >= 0; }

}  // namespace

cudaError_t EmbeddingCuda(const EmbeddingCudaParams& p, cudaStream_t stream) {
  if (!RowsOk(p.num_ids, p.dim) || p.vocab_size < 0 || !IsAct(p.table_dtype)) {
    return cudaErrorInvalidValue;
  }
  if (p.num_ids == 0 || p.dim == 0) return cudaSuccess;
  if (p.table == nullptr || p.ids == nullptr || p.out == nullptr) return cudaErrorInvalidValue;
  return WithType(p.table_dtype, [&](auto t) {
    EmbeddingKernel<decltype(t)>
        <<<static_cast<unsigned>(p.num_ids), kThreads, 0, stream>>>(p, Or(p.out_stride, p.dim));
    return cudaGetLastError();
  });
}

// Threads for one row of `dim` values: about four values a thread, 32 to 1024 threads. A row is
// one CTA, so a decode step's few rows are latency-bound: the wider the CTA, the fewer dependent
// load rounds (a 6144-wide row at 256 threads took 24 rounds and ~20 µs).
static int RowThreads(int64_t dim) {
  const int64_t warps = std::clamp<int64_t>((dim / 4 + 31) / 32, 1, 32);
  return static_cast<int>(warps * 32);
}

cudaError_t RmsNormCuda(const RmsNormCudaParams& p, cudaStream_t stream) {
  if (!RowsOk(p.rows, p.dim) || !(p.eps >= 0.0f) || !IsAct(p.x_dtype) || !IsAct(p.out_dtype)) {
    return cudaErrorInvalidValue;
  }
  if (p.rows == 0 || p.dim == 0) return cudaSuccess;
  if (p.x == nullptr || p.weight == nullptr || p.out == nullptr) return cudaErrorInvalidValue;
  const int64_t xs = Or(p.x_stride, p.dim), os = Or(p.out_stride, p.dim),
                rs = Or(p.residual_stride, p.dim);
  return WithType(p.x_dtype, [&](auto x) {
    return WithType(p.out_dtype, [&](auto o) {
      RmsNormKernel<decltype(x), decltype(o)>
          <<<static_cast<unsigned>(p.rows), RowThreads(p.dim), 0, stream>>>(p, xs, os, rs);
      return cudaGetLastError();
    });
  });
}

cudaError_t LayerNormCuda(const LayerNormCudaParams& p, cudaStream_t stream) {
  if (!RowsOk(p.rows, p.dim) || !(p.eps >= 0.0f) || !IsAct(p.dtype)) return cudaErrorInvalidValue;
  if (p.rows == 0 || p.dim == 0) return cudaSuccess;
  if (p.x == nullptr || p.weight == nullptr || p.out == nullptr) return cudaErrorInvalidValue;
  return WithType(p.dtype, [&](auto t) {
    LayerNormKernel<decltype(t)><<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(
        p, Or(p.x_stride, p.dim), Or(p.out_stride, p.dim));
    return cudaGetLastError();
  });
}

cudaError_t ApplyRopeCuda(const ApplyRopeParams& p, DType dtype, void* x, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.num_heads < 0 || p.rot_dim < 0 || p.rot_dim % 2 != 0 ||
      p.rot_dim > 256 || !IsAct(dtype)) {
    return cudaErrorInvalidValue;
  }
  const int64_t n = p.num_tokens * p.num_heads;
  if (n == 0 || p.rot_dim == 0) return cudaSuccess;
  if (p.positions == nullptr || p.inv_freq == nullptr || x == nullptr) {
    return cudaErrorInvalidValue;
  }
  return WithType(dtype, [&](auto t) {
    using T = decltype(t);
    RopeKernel<T><<<Blocks(n * 32), kThreads, 0, stream>>>(p, static_cast<T*>(x));
    return cudaGetLastError();
  });
}

cudaError_t ApplyRopeCuda(const ApplyRopeParams& p, cudaStream_t stream) {
  return ApplyRopeCuda(p, DType::kF32, p.x, stream);
}

cudaError_t SiluMulCuda(const SiluMulCudaParams& p, cudaStream_t stream) {
  if (!RowsOk(p.rows, p.dim) || !IsAct(p.dtype)) return cudaErrorInvalidValue;
  if (p.rows * p.dim == 0) return cudaSuccess;
  if (p.gate == nullptr || p.up == nullptr || p.out == nullptr) return cudaErrorInvalidValue;
  return WithType(p.dtype, [&](auto t) {
    SiluMulKernel<decltype(t)><<<Blocks(p.rows * p.dim), kThreads, 0, stream>>>(
        p, Or(p.gate_stride, p.dim), Or(p.up_stride, p.dim), Or(p.out_stride, p.dim));
    return cudaGetLastError();
  });
}

cudaError_t AxpyCuda(const AxpyParams& p, DType x_dtype, const void* x, cudaStream_t stream) {
  if (!RowsOk(p.rows, p.dim) || !IsAct(x_dtype)) return cudaErrorInvalidValue;
  if (p.rows * p.dim == 0) return cudaSuccess;
  if (x == nullptr || p.y == nullptr) return cudaErrorInvalidValue;
  return WithType(x_dtype, [&](auto t) {
    using T = decltype(t);
    AxpyKernel<T><<<Blocks(p.rows * p.dim), kThreads, 0, stream>>>(
        p, static_cast<const T*>(x), Or(p.x_stride, p.dim), Or(p.y_stride, p.dim),
        Or(p.y_rows_total, p.rows));
    return cudaGetLastError();
  });
}

cudaError_t AxpyCuda(const AxpyParams& p, cudaStream_t stream) {
  return AxpyCuda(p, DType::kF32, p.x, stream);
}

cudaError_t ScaleCuda(const ScaleParams& p, cudaStream_t stream) {
  if (!RowsOk(p.rows, p.dim)) return cudaErrorInvalidValue;
  if (p.rows * p.dim == 0) return cudaSuccess;
  if (p.x == nullptr) return cudaErrorInvalidValue;
  ScaleKernel<<<Blocks(p.rows * p.dim), kThreads, 0, stream>>>(p, Or(p.stride, p.dim));
  return cudaGetLastError();
}

cudaError_t CastRowsCuda(const CastRowsCudaParams& p, cudaStream_t stream) {
  if (!RowsOk(p.rows, p.dim) || !IsAct(p.src_dtype) || !IsAct(p.dst_dtype) ||
      p.src_stride < p.dim || p.dst_stride < p.dim) {
    return cudaErrorInvalidValue;
  }
  if (p.rows * p.dim == 0) return cudaSuccess;
  if (p.src == nullptr || p.dst == nullptr) return cudaErrorInvalidValue;
  return WithType(p.src_dtype, [&](auto s) {
    return WithType(p.dst_dtype, [&](auto d) {
      CastRowsKernel<decltype(s), decltype(d)><<<Blocks(p.rows * p.dim), kThreads, 0, stream>>>(p);
      return cudaGetLastError();
    });
  });
}

cudaError_t GatherRowsCuda(const GatherRowsCudaParams& p, cudaStream_t stream) {
  if (!RowsOk(p.num_rows, p.dim) || !IsAct(p.dtype)) return cudaErrorInvalidValue;
  if (p.num_rows == 0 || p.dim == 0) return cudaSuccess;
  if (p.rows == nullptr || p.x == nullptr || p.out == nullptr) return cudaErrorInvalidValue;
  return WithType(p.dtype, [&](auto t) {
    GatherRowsKernel<decltype(t)><<<static_cast<unsigned>(p.num_rows), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}

}  // namespace strata::kernels

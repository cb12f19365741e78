// The decode-sized GEMV (gemv.h): one CTA per kGemvRowsPerCta rows of W, threads along K.
#include <algorithm>

#include "kernels/cuda/gemv.h"

namespace strata::kernels {
namespace {

constexpr int kVec = 8;     // bf16 elements per 16-byte load
constexpr int kUnroll = 2;  // vectors per thread per row in flight
constexpr int kMaxThreads = 256;
constexpr int kRows = kGemvRowsPerCta;

__device__ __forceinline__ void Unpack(const uint4& v, float (&f)[kVec]) {
  const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(u[i] << 16);
    f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ void LoadX(const uint16_t* p, float (&f)[kVec]) {
  Unpack(__ldg(reinterpret_cast<const uint4*>(p)), f);
}
__device__ __forceinline__ void LoadX(const float* p, float (&f)[kVec]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(p));
  const float4 b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w;
  f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

// W rows are streamed once: no allocation in L1, evict-first in L2.
__device__ __forceinline__ uint4 LoadW(const uint4* p) { return __ldcs(p); }

__device__ __forceinline__ void Store(float* p, float v) { *p = v; }
__device__ __forceinline__ void Store(uint16_t* p, float v) { *p = FloatToBF16(v); }

template <int M, typename XT, typename YT>
__global__ void __launch_bounds__(kMaxThreads)
    GemvKernel(int64_t n, int64_t k, int64_t w_stride, int64_t x_stride, int64_t y_stride,
               const uint16_t* __restrict__ w, const XT* __restrict__ x, YT* __restrict__ y) {
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const uint16_t* wr[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    // Rows past n re-read the last row (never written back): no branch in the loop.
    wr[r] = w + (row0 + r < n ? row0 + r : n - 1) * w_stride;
  }
  float acc[M][kRows] = {};
  const int64_t vecs = k / kVec;
  const int64_t step = static_cast<int64_t>(blockDim.x) * kUnroll;
  int64_t v = threadIdx.x;
  for (; v + (kUnroll - 1) * blockDim.x < vecs; v += step) {
    uint4 wv[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        wv[u][r] = LoadW(reinterpret_cast<const uint4*>(wr[r]) + v + u * blockDim.x);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float wf[kRows][kVec];
#pragma unroll
      for (int r = 0; r < kRows; ++r) Unpack(wv[u][r], wf[r]);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float xf[kVec];
        LoadX(x + m * x_stride + (v + u * blockDim.x) * kVec, xf);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
#pragma unroll
          for (int j = 0; j < kVec; ++j) acc[m][r] = fmaf(xf[j], wf[r][j], acc[m][r]);
        }
      }
    }
  }
  for (; v < vecs; v += blockDim.x) {  // the tail, one vector at a time
    float wf[kRows][kVec];
#pragma unroll
    for (int r = 0; r < kRows; ++r) Unpack(LoadW(reinterpret_cast<const uint4*>(wr[r]) + v), wf[r]);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float xf[kVec];
      LoadX(x + m * x_stride + v * kVec, xf);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
#pragma unroll
        for (int j = 0; j < kVec; ++j) acc[m][r] = fmaf(xf[j], wf[r][j], acc[m][r]);
      }
    }
  }

  // Warp sums, then the warps' partials in shared memory, summed in warp order.
  __shared__ float partial[kMaxThreads / 32][M * kRows];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float s = acc[m][r];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (lane == 0) partial[warp][m * kRows + r] = s;
    }
  }
  __syncthreads();
  const int warps = blockDim.x / 32;
  for (int i = threadIdx.x; i < M * kRows; i += blockDim.x) {
    const int m = i / kRows, r = i % kRows;
    if (row0 + r >= n) continue;
    float s = 0.0f;
    for (int wi = 0; wi < warps; ++wi) s += partial[wi][i];
    Store(y + m * y_stride + row0 + r, s);
  }
}

template <int M, typename XT, typename YT>
cudaError_t Launch(const GemvParams& p, int64_t w_stride, int64_t x_stride, int64_t y_stride,
                   cudaStream_t stream) {
  // Enough threads for one vector of each row per thread, a whole number of warps.
  const int64_t vecs = p.k / kVec;
  const int threads = static_cast<int>(std::clamp<int64_t>((vecs + 31) / 32 * 32, 32, kMaxThreads));
  const int64_t blocks = (p.n + kRows - 1) / kRows;
  GemvKernel<M, XT, YT><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
      p.n, p.k, w_stride, x_stride, y_stride, static_cast<const uint16_t*>(p.w),
      static_cast<const XT*>(p.x), static_cast<YT*>(p.y));
  return cudaGetLastError();
}

template <int M>
cudaError_t DispatchTypes(const GemvParams& p, int64_t ws, int64_t xs, int64_t ys,
                          cudaStream_t stream) {
  const bool xb = p.x_dtype == DType::kBF16, yb = p.y_dtype == DType::kBF16;
  if (xb && yb) return Launch<M, uint16_t, uint16_t>(p, ws, xs, ys, stream);
  if (xb) return Launch<M, uint16_t, float>(p, ws, xs, ys, stream);
  if (yb) return Launch<M, float, uint16_t>(p, ws, xs, ys, stream);
  return Launch<M, float, float>(p, ws, xs, ys, stream);
}

bool Aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }
bool IsAct(DType d) { return d == DType::kF32 || d == DType::kBF16; }

}  // namespace

bool GemvSupported(const GemvParams& p) {
  const int64_t ws = p.w_stride == 0 ? p.k : p.w_stride;
  const int64_t xs = p.x_stride == 0 ? p.k : p.x_stride;
  const int64_t ys = p.y_stride == 0 ? p.n : p.y_stride;
  if (p.m < 0 || p.m > kGemvMaxRows || p.n < 0 || p.k < 0 || p.k % kVec != 0) return false;
  if (!IsAct(p.x_dtype) || !IsAct(p.y_dtype)) return false;
  if (ws < p.k || xs < p.k || ys < p.n || ws % kVec != 0 || xs % kVec != 0) return false;
  if ((p.n + kRows - 1) / kRows > 0x7fffffff) return false;
  if (p.m == 0 || p.n == 0) return true;
  if (p.y == nullptr || p.w == nullptr || (p.k > 0 && p.x == nullptr)) return false;
  return Aligned16(p.w) && Aligned16(p.x);
}

cudaError_t GemvCuda(const GemvParams& p, cudaStream_t stream) {
  if (!GemvSupported(p)) return cudaErrorInvalidValue;
  if (p.m == 0 || p.n == 0) return cudaSuccess;
  const int64_t ws = p.w_stride == 0 ? p.k : p.w_stride;
  const int64_t xs = p.x_stride == 0 ? p.k : p.x_stride;
  const int64_t ys = p.y_stride == 0 ? p.n : p.y_stride;
  switch (p.m) {
    case 1:
      return DispatchTypes<1>(p, ws, xs, ys, stream);
    case 2:
      return DispatchTypes<2>(p, ws, xs, ys, stream);
    case 3:
      return DispatchTypes<3>(p, ws, xs, ys, stream);
    case 4:
      return DispatchTypes<4>(p, ws, xs, ys, stream);
    case 5:
      return DispatchTypes<5>(p, ws, xs, ys, stream);
    case 6:
      return DispatchTypes<6>(p, ws, xs, ys, stream);
    case 7:
      return DispatchTypes<7>(p, ws, xs, ys, stream);
    default:
      return DispatchTypes<8>(p, ws, xs, ys, stream);
  }
}

}  // namespace strata::kernels

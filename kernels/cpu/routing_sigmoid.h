// The MoE router's sigmoid, bit-identical on the host and on CUDA devices, so that
// MoeRoutingCpu and MoeRoutingCuda choose the same experts even at near-ties (expf differs between
// glibc and CUDA by an ulp now and then, which can swap two experts whose scores are one ulp
// apart). Every operation is a single correctly rounded IEEE operation that neither compiler may
// contract or reorder: fmaf, rintf, and on the device the _rn intrinsics for + × /. Accuracy: a
// few ulp of sigmoid in fp32 (the exp polynomial is Taylor to degree 7 after Cody–Waite reduction,
// relative error < 1e-7).
//
// Header-only and free of host-only calls; nvcc sees __host__ __device__.
#ifndef STRATA_KERNELS_CPU_ROUTING_SIGMOID_H_
#define STRATA_KERNELS_CPU_ROUTING_SIGMOID_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define STRATA_ROUTING_FN __host__ __device__ inline
#else
#define STRATA_ROUTING_FN inline
#endif

namespace strata::kernels::routing {

STRATA_ROUTING_FN float Mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

STRATA_ROUTING_FN float Add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

STRATA_ROUTING_FN float Div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// 2^n for n in [-126, 127] (a normal float).
STRATA_ROUTING_FN float Pow2(int n) {
  const uint32_t bits = static_cast<uint32_t>(n + 127) << 23;
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

// exp(x) in fp32, the same bits everywhere. +inf above ln(FLT_MAX), 0 below the smallest
// subnormal, NaN for NaN.
STRATA_ROUTING_FN float PortableExp(float x) {
  if (x != x) return x;
  if (x > 0x1.62e43p+6f) return INFINITY;
  if (x < -0x1.9fe36ap+6f) return 0.0f;
  const float n = rintf(Mul(x, 0x1.715476p+0f));  // x / ln 2, to the nearest integer
  // r = x − n·ln2 in two steps (ln2 = hi + lo, hi with 16 significant bits): |r| <= ln2 / 2.
  float r = fmaf(-n, 0x1.62e4p-1f, x);
  r = fmaf(-n, 0x1.7f7d1cp-20f, r);
  // 1/7!, 1/6!, ..., 1/3! rounded to fp32, as exact literals.
  float p = 0x1.a01a02p-13f;
  p = fmaf(p, r, 0x1.6c16c2p-10f);
  p = fmaf(p, r, 0x1.111112p-7f);
  p = fmaf(p, r, 0x1.555556p-5f);
  p = fmaf(p, r, 0x1.555556p-3f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  // 2^n in two normal factors (n in [-150, 128]), each multiplication rounded once.
  const int ni = static_cast<int>(n);
  const int n1 = ni / 2, n2 = ni - n1;
  return Mul(Mul(p, Pow2(n1)), Pow2(n2));
}

// 1 / (1 + exp(−x)): 1 for large x, 0 for x < −103.97, NaN for NaN.
STRATA_ROUTING_FN float Sigmoid(float x) { return Div(1.0f, Add(1.0f, PortableExp(-x))); }

}  // namespace strata::kernels::routing

#endif  // STRATA_KERNELS_CPU_ROUTING_SIGMOID_H_

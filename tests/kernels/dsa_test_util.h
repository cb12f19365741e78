// Helpers shared by the DSA kernel tests: random inputs and decoders of the cache byte layouts
// written from specs/dsa.md §7 directly (not through kvcache/), so the tests check the library's
// offsets instead of reusing them.
#ifndef STRATA_TESTS_KERNELS_DSA_TEST_UTIL_H_
#define STRATA_TESTS_KERNELS_DSA_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "kvcache/layout.h"

namespace strata::testing {

inline std::vector<float> RandomVector(std::mt19937& rng, size_t n, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// One latent row decoded from the pool's bytes. Spec: bf16 rows are [L+R] bf16; fp8 rows are
// L fp8 bytes, L/128 fp32 scales, R bf16, packed; 64 rows a block, blocks packed.
inline std::vector<float> DecodeLatentRow(const uint8_t* pool, kvcache::LatentCacheDType dtype,
                                          int L, int R, int64_t slot) {
  std::vector<float> out(L + R);
  if (dtype == kvcache::LatentCacheDType::kF32) {
    std::memcpy(out.data(), pool + slot * (L + R) * 4, (L + R) * 4);
  } else if (dtype == kvcache::LatentCacheDType::kBF16) {
    const uint8_t* row = pool + slot * (L + R) * 2;
    for (int i = 0; i < L + R; ++i) {
      uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      out[i] = BF16ToFloat(h);
    }
  } else {
    const int64_t row_bytes = L + (L / 128) * 4 + 2 * R;
    const uint8_t* row = pool + slot * row_bytes;
    for (int i = 0; i < L; ++i) {
      float scale;
      std::memcpy(&scale, row + L + 4 * (i / 128), 4);
      out[i] = F8E4M3ToFloat(row[i]) * scale;
    }
    for (int i = 0; i < R; ++i) {
      uint16_t h;
      std::memcpy(&h, row + L + (L / 128) * 4 + 2 * i, 2);
      out[L + i] = BF16ToFloat(h);
    }
  }
  return out;
}

// One indexer key decoded from the pool's bytes. Spec: fp8 blocks are 64·D key bytes
// (token-major) followed by 64 fp32 scales; f32/bf16 blocks are [64, D].
inline std::vector<float> DecodeIndexerKey(const uint8_t* pool, kvcache::IndexerCacheDType dtype,
                                           int D, int64_t slot) {
  std::vector<float> out(D);
  const int64_t block = slot / 64, in_block = slot % 64;
  if (dtype == kvcache::IndexerCacheDType::kF32) {
    std::memcpy(out.data(), pool + slot * D * 4, D * 4);
  } else if (dtype == kvcache::IndexerCacheDType::kBF16) {
    for (int i = 0; i < D; ++i) {
      uint16_t h;
      std::memcpy(&h, pool + (slot * D + i) * 2, 2);
      out[i] = BF16ToFloat(h);
    }
  } else {
    const uint8_t* base = pool + block * (64 * D + 64 * 4);
    float scale;
    std::memcpy(&scale, base + 64 * D + 4 * in_block, 4);
    for (int i = 0; i < D; ++i) out[i] = F8E4M3ToFloat(base[in_block * D + i]) * scale;
  }
  return out;
}

// H·x for the orthonormal Sylvester–Hadamard matrix of order n = x.size() (a power of two),
// H[i][j] = (−1)^popcount(i & j) / √n, as a dense product in double: the reference the fp8
// indexer keys are rotated by (kvcache/layout.h), written without the library's butterflies.
template <typename T>
std::vector<double> HadamardReference(const T* x, int n) {
  std::vector<double> out(n, 0.0);
  for (int i = 0; i < n; ++i) {
    double sum = 0.0;
    for (int j = 0; j < n; ++j) sum += (__builtin_popcount(i & j) % 2 ? -1.0 : 1.0) * x[j];
    out[i] = sum / std::sqrt(static_cast<double>(n));
  }
  return out;
}

// Half the spacing of fp8 E4M3 values around |v| (v already divided by its scale, <= 448).
inline double F8HalfUlp(double v) {
  const double a = std::fabs(v);
  if (a < 1.0 / 64) return std::ldexp(1.0, -10);  // subnormals: steps of 2^-9
  return std::ldexp(1.0, static_cast<int>(std::floor(std::log2(a))) - 4);
}

// Half the spacing of bf16 values around |v|.
inline double BF16HalfUlp(double v) {
  const double a = std::fabs(v);
  if (a == 0.0) return 0.0;
  return std::ldexp(1.0, static_cast<int>(std::floor(std::log2(a))) - 8);
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_KERNELS_DSA_TEST_UTIL_H_

// The decode GEMV (kernels/cuda/gemv.h) against a double-precision CPU reference on random inputs:
// M = 1..8, GLM-5-like K and N, x and y in bf16 and f32, padded strides; and its refusals.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cuda/gemv.h"
#include "tests/kernels/cuda_test_util.h"

namespace strata::kernels {
namespace {

using strata::testing::DeviceBuffer;
using strata::testing::SyncOrFail;

// fp32 accumulation over K products, relative to Σ|x·w| (the sum's condition).
constexpr double kAccumTol = 2e-5;
// bf16 output rounding (half an ulp: 2^-9 relative), with margin.
constexpr double kBF16OutTol = 1.0 / 256;
constexpr int kM = kGemvMaxRows;

struct Shape {
  int64_t k, n;
};

// Row-major [rows, stride] with the first `cols` columns set from `values` ([rows, cols]).
std::vector<uint16_t> PadBF16(const std::vector<float>& values, int64_t rows, int64_t cols,
                              int64_t stride) {
  std::vector<uint16_t> out(rows * stride, FloatToBF16(1e30f));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[r * stride + c] = FloatToBF16(values[r * cols + c]);
  }
  return out;
}
std::vector<float> PadF32(const std::vector<float>& values, int64_t rows, int64_t cols,
                          int64_t stride) {
  std::vector<float> out(rows * stride, 1e30f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[r * stride + c] = values[r * cols + c];
  }
  return out;
}

class GemvCudaTest : public ::testing::TestWithParam<Shape> {};

TEST_P(GemvCudaTest, MatchesDoubleReference) {
  const auto [k, n] = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(k * 1000003 + n));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  // W and the bf16 x hold bf16 values; the f32 x holds values with full mantissas.
  std::vector<float> w(n * k), xb(kM * k), xf(kM * k);
  for (float& v : w) v = BF16ToFloat(FloatToBF16(dist(rng)));
  for (float& v : xb) v = BF16ToFloat(FloatToBF16(dist(rng)));
  for (float& v : xf) v = dist(rng);

  const int64_t ws = k + 8, xs = k + 16, ys = n + 3;
  DeviceBuffer<uint16_t> d_w(PadBF16(w, n, k, ws));
  DeviceBuffer<uint16_t> d_xb(PadBF16(xb, kM, k, xs));
  DeviceBuffer<float> d_xf(PadF32(xf, kM, k, xs));
  DeviceBuffer<float> d_yf(kM * ys);
  DeviceBuffer<uint16_t> d_yb(kM * ys);

  for (const DType x_dtype : {DType::kBF16, DType::kF32}) {
    const std::vector<float>& x = x_dtype == DType::kBF16 ? xb : xf;
    std::vector<double> ref(kM * n), mag(kM * n);
    for (int64_t m = 0; m < kM; ++m) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0, a = 0;
        for (int64_t i = 0; i < k; ++i) {
          const double p = double{x[m * k + i]} * double{w[j * k + i]};
          s += p;
          a += std::fabs(p);
        }
        ref[m * n + j] = s;
        mag[m * n + j] = a;
      }
    }
    for (const DType y_dtype : {DType::kBF16, DType::kF32}) {
      for (int64_t m = 1; m <= kM; ++m) {
        SCOPED_TRACE(::testing::Message() << "k=" << k << " n=" << n << " m=" << m << " x="
                                          << DTypeName(x_dtype) << " y=" << DTypeName(y_dtype));
        const bool yb = y_dtype == DType::kBF16;
        if (yb) {
          d_yb.Fill(0xff);
        } else {
          d_yf.Fill(0xff);
        }
        const GemvParams p{.m = m,
                           .n = n,
                           .k = k,
                           .w_stride = ws,
                           .x_stride = xs,
                           .y_stride = ys,
                           .x_dtype = x_dtype,
                           .y_dtype = y_dtype,
                           .w = d_w.get(),
                           .x = x_dtype == DType::kBF16 ? static_cast<const void*>(d_xb.get())
                                                        : static_cast<const void*>(d_xf.get()),
                           .y = yb ? static_cast<void*>(d_yb.get()) : d_yf.get()};
        ASSERT_TRUE(GemvSupported(p));
        ASSERT_EQ(GemvCuda(p, nullptr), cudaSuccess);
        SyncOrFail();
        const std::vector<uint16_t> got_b = yb ? d_yb.Download() : std::vector<uint16_t>();
        const std::vector<float> got_f = yb ? std::vector<float>() : d_yf.Download();
        int bad = 0;
        for (int64_t r = 0; r < kM; ++r) {
          for (int64_t j = 0; j < ys; ++j) {
            const int64_t at = r * ys + j;
            const bool written = r < m && j < n;
            if (!written) {  // padding and rows past m keep the poison
              const bool poison = yb ? got_b[at] == 0xffff : std::isnan(got_f[at]);
              if (!poison && bad++ < 5) ADD_FAILURE() << "wrote outside y at " << r << "," << j;
              continue;
            }
            const double got = yb ? double{BF16ToFloat(got_b[at])} : double{got_f[at]};
            const double want = ref[r * n + j];
            const double tol =
                kAccumTol * mag[r * n + j] + 1e-6 + (yb ? kBF16OutTol * std::fabs(want) : 0.0);
            if (!(std::fabs(got - want) <= tol) && bad++ < 5) {
              ADD_FAILURE() << "y[" << r << "," << j << "] = " << got << ", want " << want
                            << " (tol " << tol << ")";
            }
          }
        }
        ASSERT_EQ(bad, 0);
      }
    }
  }
}

std::vector<Shape> Shapes() {
  std::vector<Shape> shapes;
  for (const int64_t k : {64, 576, 2048, 6144, 16384}) {
    for (const int64_t n : {1, 33, 2048, 24576}) {
      if (n * k <= (int64_t{1} << 26)) shapes.push_back({k, n});  // keeps the reference quick
    }
  }
  return shapes;
}

INSTANTIATE_TEST_SUITE_P(Glm5Like, GemvCudaTest, ::testing::ValuesIn(Shapes()),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return absl::StrCat("k", info.param.k, "_n", info.param.n);
                         });

TEST(GemvCudaRefusal, RefusesShapesItDoesNotTake) {
  DeviceBuffer<uint16_t> w(64 * 64), x(8 * 64), y(9 * 64);
  const GemvParams ok{.m = 2, .n = 64, .k = 64, .w = w.get(), .x = x.get(), .y = y.get()};
  ASSERT_TRUE(GemvSupported(ok));
  ASSERT_EQ(GemvCuda(ok, nullptr), cudaSuccess);
  SyncOrFail();

  auto refused = [](const GemvParams& p) {
    return !GemvSupported(p) && GemvCuda(p, nullptr) == cudaErrorInvalidValue;
  };
  GemvParams p = ok;
  p.k = 7;  // odd K: the caller falls back to a GEMM
  p.w_stride = p.x_stride = 8;
  EXPECT_TRUE(refused(p));
  p = ok;
  p.m = 9;
  EXPECT_TRUE(refused(p));
  p = ok;
  p.w = w.get() + 1;  // not 16-byte aligned
  EXPECT_TRUE(refused(p));
  p = ok;
  p.x = x.get() + 4;
  EXPECT_TRUE(refused(p));
  p = ok;
  p.k = 56;
  p.x_stride = 60;  // rows of x not 16-byte aligned
  EXPECT_TRUE(refused(p));
  p = ok;
  p.w_stride = 32;  // shorter than k
  EXPECT_TRUE(refused(p));
  p = ok;
  p.x_dtype = DType::kF16;
  EXPECT_TRUE(refused(p));
  p = ok;
  p.y_dtype = DType::kF8E4M3;
  EXPECT_TRUE(refused(p));

  p = ok;
  p.m = 0;  // nothing to do
  EXPECT_TRUE(GemvSupported(p));
  EXPECT_EQ(GemvCuda(p, nullptr), cudaSuccess);
  // An unaligned y is fine: it is written element by element.
  p = ok;
  p.y = y.get() + 1;
  p.y_stride = 65;
  EXPECT_TRUE(GemvSupported(p));
  EXPECT_EQ(GemvCuda(p, nullptr), cudaSuccess);
  SyncOrFail();
}

}  // namespace
}  // namespace strata::kernels

// The fixture of the CUDA backend's op tests: a CUDA and a CPU backend, random host tensors, and
// bf16 copies whose values the f32 CPU reference sees exactly.
#ifndef STRATA_TESTS_WORKER_CUDA_OPS_FIXTURE_H_
#define STRATA_TESTS_WORKER_CUDA_OPS_FIXTURE_H_

#include <algorithm>
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "worker/model/backend_factory.h"

namespace strata::model {

class CudaOpsTest : public testing::Test {
 protected:
  void SetUp() override {
    auto c = CreateBackend(Device::Cuda(0));
    ASSERT_TRUE(c.ok()) << c.status();
    cuda_ = *std::move(c);
    cpu_ = *CreateBackend(Device::Cpu());
  }

  Tensor Random(Shape shape, float scale = 1.0f) {
    Tensor t = Tensor::Zeros(DType::kF32, std::move(shape));
    std::normal_distribution<float> n(0.0f, scale);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(rng_);
    return t;
  }
  // Random values representable in bf16: the same numbers in f32 (for the CPU) and bf16.
  Tensor RandomBf16Values(Shape shape, float scale = 1.0f) {
    Tensor t = Random(std::move(shape), scale);
    for (int64_t i = 0; i < t.numel(); ++i) {
      t.data<float>()[i] = BF16ToFloat(FloatToBF16(t.data<float>()[i]));
    }
    return t;
  }
  static Tensor ToBf16(const Tensor& f32) {
    Tensor t = Tensor::Zeros(DType::kBF16, f32.shape());
    for (int64_t i = 0; i < t.numel(); ++i)
      t.data<uint16_t>()[i] = FloatToBF16(f32.data<float>()[i]);
    return t;
  }
  static Tensor ToF32(const Tensor& t) {
    if (t.dtype() == DType::kF32) return t;
    Tensor f = Tensor::Zeros(DType::kF32, t.shape());
    for (int64_t i = 0; i < t.numel(); ++i) f.data<float>()[i] = BF16ToFloat(t.data<uint16_t>()[i]);
    return f;
  }
  Tensor Up(const Tensor& host) {
    auto t = cuda_->Upload(host);
    EXPECT_TRUE(t.ok()) << t.status();
    return *t;
  }
  // Downloads and widens to f32.
  Tensor Down(const Tensor& dev) {
    auto t = cuda_->Download(dev);
    EXPECT_TRUE(t.ok()) << t.status();
    return ToF32(*t);
  }
  Tensor New(DType dtype, Shape shape) { return *cuda_->NewTensor(dtype, std::move(shape)); }
  // max |a - b| / max(1, max |b|) over two host f32 tensors of one shape.
  static float RelDiff(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.shape(), b.shape());
    float d = 0, m = 1;
    for (int64_t i = 0; i < b.numel(); ++i) {
      d = std::max(d, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
      m = std::max(m, std::fabs(b.data<float>()[i]));
    }
    return d / m;
  }
  static Tensor Clone(const Tensor& t) {
    Tensor c = Tensor::Zeros(t.dtype(), t.shape());
    EXPECT_TRUE(CopyCpu(t, c).ok());
    return c;
  }

  std::mt19937 rng_{1234};
  std::unique_ptr<Backend> cuda_, cpu_;
};

}  // namespace strata::model

#endif  // STRATA_TESTS_WORKER_CUDA_OPS_FIXTURE_H_

// Weight streaming (worker/model/weight_stream.h) on the CPU backend: fp8 block-scaled, bf16 and
// f32 checkpoint tensors converted to bf16 and f32 chunk by chunk (staging far smaller than a
// tensor, so rows are split), parts of tensors as tensor parallelism reads them, and the errors a
// truncated or mismatched checkpoint gives.
#include "worker/model/weight_stream.h"

#include <filesystem>
#include <random>

#include "gtest/gtest.h"
#include "tests/common/test_files.h"
#include "worker/model/backend_factory.h"
#include "worker/model/weights.h"

namespace strata::model {
namespace {

using testing::ScratchDir;
using testing::SourcePath;

constexpr int64_t kRows = 300, kCols = 260;  // not multiples of the 128 block: partial blocks

class WeightStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = *CreateBackend(Device::Cpu());
    std::mt19937 rng(11);
    std::normal_distribution<float> n(0.0f, 100.0f);
    fp8_ = Tensor::Zeros(DType::kF8E4M3, {kRows, kCols});
    for (int64_t i = 0; i < fp8_.numel(); ++i) fp8_.data<uint8_t>()[i] = FloatToF8E4M3(n(rng));
    scale_ = Tensor::Zeros(DType::kF32, {3, 3});
    for (int64_t i = 0; i < 9; ++i) scale_.data<float>()[i] = 0.001f * static_cast<float>(i + 1);
    f32_ = Tensor::Zeros(DType::kF32, {kRows, kCols});
    for (int64_t i = 0; i < f32_.numel(); ++i) f32_.data<float>()[i] = n(rng) / 100.0f;
    bf16_ = Tensor::Zeros(DType::kBF16, {4, kRows, kCols});
    for (int64_t i = 0; i < bf16_.numel(); ++i) bf16_.data<uint16_t>()[i] = FloatToBF16(n(rng));
    path_ = dir_.File("w.safetensors");
    ASSERT_TRUE(WriteSafetensors(path_, {{"q.weight", fp8_},
                                         {"q.weight_scale_inv", scale_},
                                         {"f.weight", f32_},
                                         {"b.weight", bf16_}})
                    .ok());
    ckpt_ = *Checkpoint::Open(path_);
  }

  // The dequantised value the loader must produce (what Checkpoint::GetF32 computes).
  float Fp8Value(int64_t r, int64_t c) const {
    return F8E4M3ToFloat(fp8_.data<uint8_t>()[r * kCols + c]) *
           scale_.data<float>()[(r / 128) * 3 + c / 128];
  }

  absl::StatusOr<Tensor> Load(const std::string& name, const Shape& shape, DType dtype,
                              const TensorPart& part = {}, int64_t staging = 1000) {
    auto s = WeightStreamer::Create(*ckpt_, *backend_, {.staging_bytes = staging});
    if (!s.ok()) return s.status();
    auto t = (*s)->Load(name, shape, dtype, part);
    if (!t.ok()) return t.status();
    if (absl::Status f = (*s)->Finish(); !f.ok()) return f;
    return t;
  }

  ScratchDir dir_;
  std::string path_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Checkpoint> ckpt_;
  Tensor fp8_, scale_, f32_, bf16_;
};

TEST_F(WeightStreamTest, Fp8BlockScaledToBf16AndF32) {
  const Tensor ref = *ckpt_->GetF32("q.weight");
  auto bf = Load("q.weight", {kRows, kCols}, DType::kBF16);
  ASSERT_TRUE(bf.ok()) << bf.status();
  ASSERT_EQ(bf->shape(), (Shape{kRows, kCols}));
  auto f = Load("q.weight", {kRows, kCols}, DType::kF32, {}, 256);  // chunks of under a row
  ASSERT_TRUE(f.ok()) << f.status();
  int64_t nonzero = 0;
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t c = 0; c < kCols; ++c) {
      const float want = Fp8Value(r, c);
      nonzero += want != 0.0f;
      ASSERT_EQ(bf->data<uint16_t>()[r * kCols + c], FloatToBF16(want)) << r << "," << c;
      ASSERT_EQ(f->data<float>()[r * kCols + c], want) << r << "," << c;
      ASSERT_EQ(ref.data<float>()[r * kCols + c], want) << r << "," << c;
    }
  }
  EXPECT_GT(nonzero, kRows * kCols / 2);
}

TEST_F(WeightStreamTest, F32AndBf16SourcesAndParts) {
  auto bf = Load("f.weight", {kRows, kCols}, DType::kBF16);
  ASSERT_TRUE(bf.ok()) << bf.status();
  for (int64_t i = 0; i < f32_.numel(); ++i) {
    ASSERT_EQ(bf->data<uint16_t>()[i], FloatToBF16(f32_.data<float>()[i])) << i;
  }
  // A tensor-parallel column cut of the fp8 tensor: its scales follow the source columns.
  auto cols = Load("q.weight", {kRows, kCols}, DType::kBF16,
                   {.row_begin = 10, .row_end = 200, .col_begin = 100, .col_end = 230});
  ASSERT_TRUE(cols.ok()) << cols.status();
  ASSERT_EQ(cols->shape(), (Shape{190, 130}));
  for (int64_t r = 0; r < 190; ++r) {
    for (int64_t c = 0; c < 130; ++c) {
      ASSERT_EQ(cols->data<uint16_t>()[r * 130 + c], FloatToBF16(Fp8Value(r + 10, c + 100)));
    }
  }
  // Rows of a 3-D tensor's 2-D view (one fused expert's slice), bf16 stays bit-exact.
  auto rows = Load("b.weight", {4, kRows, kCols}, DType::kBF16,
                   {.row_begin = 2 * kRows + 5, .row_end = 2 * kRows + 50});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->shape(), (Shape{45, kCols}));
  for (int64_t i = 0; i < 45 * kCols; ++i) {
    ASSERT_EQ(rows->data<uint16_t>()[i], bf16_.data<uint16_t>()[(2 * kRows + 5) * kCols + i]);
  }
  auto f = Load("b.weight", {4, kRows, kCols}, DType::kF32, {}, int64_t{1} << 20);
  ASSERT_TRUE(f.ok()) << f.status();
  for (int64_t i = 0; i < bf16_.numel(); ++i) {
    ASSERT_EQ(f->data<float>()[i], BF16ToFloat(bf16_.data<uint16_t>()[i]));
  }
}

// Chunks of a megabyte and more convert on several threads: the same values.
TEST_F(WeightStreamTest, ThreadedConversion) {
  Tensor big = Tensor::Zeros(DType::kF8E4M3, {1024, 1024});
  for (int64_t i = 0; i < big.numel(); ++i) big.data<uint8_t>()[i] = static_cast<uint8_t>(i * 13);
  Tensor scale = Tensor::Zeros(DType::kF32, {8, 8});
  for (int64_t i = 0; i < 64; ++i) scale.data<float>()[i] = 0.5f + static_cast<float>(i);
  const std::string path = dir_.File("big.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"w", big}, {"w_scale_inv", scale}}).ok());
  auto ckpt = Checkpoint::Open(path);
  ASSERT_TRUE(ckpt.ok());
  const Tensor ref = *(*ckpt)->GetF32("w");
  auto s =
      WeightStreamer::Create(**ckpt, *backend_, {.staging_bytes = int64_t{8} << 20, .threads = 4});
  ASSERT_TRUE(s.ok());
  auto t = (*s)->Load("w", {1024, 1024}, DType::kBF16);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*s)->Finish().ok());
  for (int64_t i = 0; i < big.numel(); ++i) {
    ASSERT_EQ(t->data<uint16_t>()[i], FloatToBF16(ref.data<float>()[i])) << i;
  }
}

TEST_F(WeightStreamTest, BadRequestsNameTheTensor) {
  auto missing = Load("nope.weight", {1}, DType::kBF16);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.weight"), std::string::npos);
  auto shape = Load("f.weight", {kRows, kCols + 1}, DType::kBF16);
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(shape.status().message().find("f.weight has shape [300, 260], expected [300, 261]"),
            std::string::npos)
      << shape.status();
  auto part = Load("f.weight", {kRows, kCols}, DType::kBF16, {.row_begin = 0, .row_end = 301});
  EXPECT_EQ(part.status().code(), absl::StatusCode::kInvalidArgument);
  auto dtype = Load("f.weight", {kRows, kCols}, DType::kF8E4M3);
  EXPECT_EQ(dtype.status().code(), absl::StatusCode::kInvalidArgument);

  // A block scale of the wrong shape.
  const std::string bad = dir_.File("bad.safetensors");
  ASSERT_TRUE(WriteSafetensors(bad, {{"q.weight", fp8_},
                                     {"q.weight_scale_inv", Tensor::Zeros(DType::kF32, {2, 3})}})
                  .ok());
  auto ckpt = Checkpoint::Open(bad);
  ASSERT_TRUE(ckpt.ok());
  auto s = CheckTensor(**ckpt, "q.weight", {kRows, kCols});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("q.weight_scale_inv is [2, 3], expected [3, 3]"),
            std::string::npos)
      << s.status();
}

// Whole checkpoints: a truncated file is refused when opened; a checkpoint that lacks a tensor or
// holds one of another shape is refused by LoadWeights before anything is loaded, naming it.
TEST(LoadWeightsTest, TruncatedOrMismatchedCheckpoints) {
  ScratchDir dir;
  const std::string src = SourcePath("tests/fixtures/oracle/glm");
  auto config = LoadModelConfig(src);
  ASSERT_TRUE(config.ok()) << config.status();
  auto ckpt = Checkpoint::Open(src);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto backend = *CreateBackend(Device::Cpu());

  const std::string truncated = dir.File("truncated.safetensors");
  std::filesystem::copy_file(src + "/model.safetensors", truncated);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) - 4096);
  auto t = Checkpoint::Open(truncated);
  EXPECT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("truncated.safetensors"), std::string::npos) << t.status();

  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : (*ckpt)->Names()) {
    if (name == "model.layers.2.self_attn.o_proj.weight") continue;
    Tensor v = *(*ckpt)->Get(name);
    if (name == "model.layers.3.mlp.gate.weight") v = *v.Slice(0, 0, v.dim(0) - 1);
    tensors.emplace_back(name, v);
  }
  const std::string partial = dir.File("partial.safetensors");
  ASSERT_TRUE(WriteSafetensors(partial, tensors).ok());
  auto p = Checkpoint::Open(partial);
  ASSERT_TRUE(p.ok()) << p.status();
  auto w = LoadWeights(*config, **p, *backend, {});
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(w.status().message().find("missing tensor model.layers.2.self_attn.o_proj.weight"),
            std::string::npos)
      << w.status();
  auto upper = LoadWeights(*config, **p, *backend, {.tp = {}, .layer_begin = 3, .layer_end = 4});
  EXPECT_EQ(upper.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(upper.status().message().find("model.layers.3.mlp.gate.weight has shape [7, 128]"),
            std::string::npos)
      << upper.status();
  // The intact layers load.
  EXPECT_TRUE(
      LoadWeights(*config, **p, *backend, {.tp = {}, .layer_begin = 0, .layer_end = 2}).ok());
}

}  // namespace
}  // namespace strata::model

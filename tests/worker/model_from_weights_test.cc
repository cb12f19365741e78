// Model::CreateFromWeights (a model over weights the caller made, as strata-model-bench does)
// against Model::Create on the GLM oracle checkpoint, and KvCache::CreateAliased.
#include <cstring>

#include "common/model_config.h"
#include "common/safetensors.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "tests/worker/oracle_fixture.h"
#include "worker/model/backend_factory.h"
#include "worker/model/model.h"

namespace strata {
namespace {

constexpr int64_t kBlocks = 4;

model::StepInput Prompt(const std::vector<int32_t>& ids) {
  model::StepInput in;
  in.token_ids = ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    in.positions.push_back(static_cast<int64_t>(i));
    in.token_seq.push_back(0);
    in.logit_rows.push_back(static_cast<int32_t>(i));
  }
  in.num_seqs = 1;
  in.max_blocks = static_cast<int>(kBlocks);
  for (int b = 0; b < kBlocks; ++b) in.block_tables.push_back(b);
  return in;
}

absl::StatusOr<Tensor> PromptLogits(model::Model& m, model::Backend& backend,
                                    const std::vector<int32_t>& ids) {
  ASSIGN_OR_RETURN(model::KvCache cache,
                   model::KvCache::Create(backend, m.CacheGeometries(), kBlocks));
  return m.Forward(Prompt(ids), cache);
}

class ModelFromWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture_ = testing_util::OracleFixture::Load("glm");
    auto config = LoadModelConfig(fixture_.dir);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    auto ckpt = Checkpoint::Open(fixture_.dir);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ckpt_ = *std::move(ckpt);
    auto backend = model::CreateBackend(Device::Cpu());
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = *std::move(backend);
  }

  testing_util::OracleFixture fixture_;
  ModelConfig config_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<model::Backend> backend_;
};

TEST_F(ModelFromWeightsTest, GivesTheLogitsOfTheLoadedModel) {
  const model::ModelOptions options;
  auto loaded = model::Model::Create(config_, *ckpt_, *backend_, options);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto weights = model::LoadWeights(config_, *ckpt_, *backend_, options.load);
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto made = model::Model::CreateFromWeights(config_, *weights, *backend_, options);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE((*made)->is_first_stage());
  EXPECT_TRUE((*made)->is_last_stage());

  const std::vector<int32_t>& prompt = fixture_.cases[1].prompt;
  auto want = PromptLogits(**loaded, *backend_, prompt);
  auto got = PromptLogits(**made, *backend_, prompt);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->shape(), want->shape());
  EXPECT_EQ(std::memcmp(got->data(), want->data(), want->nbytes()), 0);
}

TEST_F(ModelFromWeightsTest, RefusesWeightsThatDoNotMatchTheOptionsOrConfig) {
  model::ModelOptions options;
  options.load.layer_begin = 1;
  options.load.layer_end = 3;
  options.load.load_embedding = false;
  options.load.load_head = false;
  auto weights = model::LoadWeights(config_, *ckpt_, *backend_, options.load);
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_TRUE(model::Model::CreateFromWeights(config_, *weights, *backend_, options).ok());

  model::ModelOptions two_to_four = options;  // the same two layers, numbered as the wrong ones
  two_to_four.load.layer_begin = 2;
  two_to_four.load.layer_end = 4;
  EXPECT_EQ(
      model::Model::CreateFromWeights(config_, *weights, *backend_, two_to_four).status().code(),
      absl::StatusCode::kInvalidArgument);

  model::ModelWeights short_weights = *weights;
  short_weights.layers.pop_back();
  EXPECT_EQ(
      model::Model::CreateFromWeights(config_, short_weights, *backend_, options).status().code(),
      absl::StatusCode::kInvalidArgument);

  model::ModelOptions past_end = options;
  past_end.load.layer_end = config_.num_hidden_layers + 1;
  EXPECT_EQ(model::Model::CreateFromWeights(config_, *weights, *backend_, past_end).status().code(),
            absl::StatusCode::kInvalidArgument);

  model::ModelWeights dense_as_moe = *weights;  // layer 1 is MoE in the fixture
  dense_as_moe.layers[0].is_moe = false;
  EXPECT_EQ(
      model::Model::CreateFromWeights(config_, dense_as_moe, *backend_, options).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(KvCacheAliasedTest, EveryLayerViewsTheSameBytes) {
  auto backend = model::CreateBackend(Device::Cpu());
  ASSERT_TRUE(backend.ok());
  kvcache::CacheGeometry full;
  full.kv_lora_rank = 128;
  full.qk_rope_head_dim = 16;
  full.index_head_dim = 32;
  kvcache::CacheGeometry shared = full;
  shared.has_indexer = false;
  auto cache = model::KvCache::CreateAliased(**backend, {full, shared, full}, 5);
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_EQ(cache->num_layers(), 3);
  EXPECT_EQ(cache->num_blocks(), 5);
  for (int i = 0; i < 3; ++i) {
    const model::LayerCache& l = cache->layer(i);
    EXPECT_EQ(l.num_blocks, 5);
    EXPECT_EQ(l.latent.data(), cache->layer(0).latent.data());
    EXPECT_EQ(l.latent.nbytes(), 5u * 64 * kvcache::LatentBytesPerToken(full));
    EXPECT_EQ(l.geometry.has_indexer, i != 1);
    EXPECT_EQ(l.indexer.defined(), i != 1);
    if (i != 1) {
      EXPECT_EQ(l.indexer.data(), cache->layer(0).indexer.data());
    }
  }
  // A write through one layer is seen by all.
  static_cast<uint8_t*>(cache->layer(2).latent.data())[7] = 42;
  EXPECT_EQ(static_cast<uint8_t*>(cache->layer(0).latent.data())[7], 42);
}

TEST(KvCacheAliasedTest, RefusesLayersOfDifferentGeometry) {
  auto backend = model::CreateBackend(Device::Cpu());
  ASSERT_TRUE(backend.ok());
  kvcache::CacheGeometry a, b;
  b.latent_dtype = kvcache::LatentCacheDType::kF32;
  EXPECT_EQ(model::KvCache::CreateAliased(**backend, {a, b}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model::KvCache::CreateAliased(**backend, {}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model::KvCache::CreateAliased(**backend, {a}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata

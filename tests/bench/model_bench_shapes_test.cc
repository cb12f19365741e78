// strata-model-bench's accounting of one layer's least work, against numbers written out from the
// GLM-5 widths (specs/dsa.md §0, §8) rather than from the code under test.
#include "bench/model_bench_shapes.h"

#include <cmath>

#include "gtest/gtest.h"

namespace strata::bench {
namespace {

// GLM-5, element counts per layer.
constexpr double kAttention = 2048.0 * 6144         // q_a_proj
                              + 64.0 * 256 * 2048   // q_b_proj
                              + 576.0 * 6144        // kv_a_proj_with_mqa
                              + 64.0 * 448 * 512    // kv_b_proj
                              + 6144.0 * 64 * 256;  // o_proj
constexpr double kIndexer = 32.0 * 128 * 2048 + 128.0 * 6144 + 32.0 * 6144;
constexpr double kExpert = 3.0 * 2048 * 6144;
constexpr double kF32Small = 2.0 * 6144 + 2048 + 512  // layer, q_a and kv_a norms
                             + 256.0 * 6144 + 256;    // router and its bias (always f32)
constexpr double kIndexerNorm = 2.0 * 128;

ModelConfig Glm5(int layers, bool indexshare) {
  auto c = BenchModelConfig({.layers = layers, .tiny = false, .indexshare = indexshare});
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

LayerShape Bf16(bool has_indexer) {
  return {.has_indexer = has_indexer, .weight_dtype = DType::kBF16, .cache = {}};
}

TEST(ModelBenchShapesTest, ConfigHasTheGlm5Widths) {
  const ModelConfig c = Glm5(4, /*indexshare=*/true);
  EXPECT_EQ(c.hidden_size, 6144);
  EXPECT_EQ(c.num_attention_heads, 64);
  EXPECT_EQ(c.qk_head_dim(), 256);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.index_topk, 2048);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  ASSERT_EQ(c.indexer_types.size(), 4u);
  EXPECT_EQ(c.indexer_types[0], IndexerType::kFull);
  EXPECT_EQ(c.indexer_types[1], IndexerType::kShared);
  EXPECT_EQ(c.indexer_types[2], IndexerType::kFull);
  for (MlpType t : c.mlp_layer_types) EXPECT_EQ(t, MlpType::kSparse);
  EXPECT_EQ(Glm5(3, false).indexer_types[1], IndexerType::kFull);
}

TEST(ModelBenchShapesTest, LayerWeightBytesCountEveryExpert) {
  const ModelConfig c = Glm5(1, false);
  EXPECT_DOUBLE_EQ(LayerWeightBytes(c, Bf16(true)),
                   2 * (kAttention + kIndexer + 257 * kExpert) + 4 * (kF32Small + kIndexerNorm));
  EXPECT_DOUBLE_EQ(LayerWeightBytes(c, Bf16(false)),
                   2 * (kAttention + 257 * kExpert) + 4 * kF32Small);
  LayerShape f32 = Bf16(true);
  f32.weight_dtype = DType::kF32;
  EXPECT_DOUBLE_EQ(LayerWeightBytes(c, f32),
                   4 * (kAttention + kIndexer + 257 * kExpert + kF32Small + kIndexerNorm));
}

TEST(ModelBenchShapesTest, DecodeReadsTopkLatentRowsAndEveryIndexerKey) {
  const ModelConfig c = Glm5(1, false);
  // Batch 1 at 128K: 2048 bf16 latent rows of 1152 B, 131073 fp8 keys of 132 B (dsa.md §8).
  const LayerWork w = DecodeLayerWork(c, Bf16(true), 1, 131072, 8);
  EXPECT_DOUBLE_EQ(w.cache_bytes, 2048.0 * 1152 + 131073.0 * 132);
  EXPECT_DOUBLE_EQ(w.weight_bytes,
                   2 * (kAttention + kIndexer + 9 * kExpert) + 4 * (kF32Small + kIndexerNorm));
  EXPECT_DOUBLE_EQ(w.write_bytes, 1152.0 + 132 + 2 * 4 * 6144);
  // A short context reads every row it has; 64 sequences read 64 times as much cache.
  const LayerWork short_ctx = DecodeLayerWork(c, Bf16(true), 64, 100, 200);
  EXPECT_DOUBLE_EQ(short_ctx.cache_bytes, 64 * 101.0 * (1152 + 132));
  // Flops: 2 per weight of the active path, plus attention and indexer over the context.
  const double active = kAttention + kIndexer + 256.0 * 6144 + 9 * kExpert;
  EXPECT_DOUBLE_EQ(w.flops, 2 * active + 2.0 * 64 * 2048 * (512 + 576) + 2.0 * 32 * 128 * 131073);
  // A shared layer reads no indexer weights or keys.
  const LayerWork s = DecodeLayerWork(c, Bf16(false), 1, 131072, 8);
  EXPECT_DOUBLE_EQ(s.cache_bytes, 2048.0 * 1152);
  EXPECT_DOUBLE_EQ(w.weight_bytes - s.weight_bytes, 2 * kIndexer + 4 * kIndexerNorm);
}

TEST(ModelBenchShapesTest, PrefillIndexerWorkIsQuadratic) {
  const ModelConfig c = Glm5(1, false);
  constexpr int64_t kN = 4096;
  const LayerWork full = PrefillLayerWork(c, Bf16(true), 0, kN, 256);
  const LayerWork shared = PrefillLayerWork(c, Bf16(false), 0, kN, 256);
  EXPECT_DOUBLE_EQ(full.flops - shared.flops,
                   kN * 2 * kIndexer + 2.0 * 32 * 128 * (kN * (kN + 1) / 2));
  // The second chunk of 8192 attends to the first: positions 4096..8191.
  const LayerWork second = PrefillLayerWork(c, Bf16(true), kN, kN, 256);
  const LayerWork second_shared = PrefillLayerWork(c, Bf16(false), kN, kN, 256);
  EXPECT_DOUBLE_EQ(
      second.flops - second_shared.flops,
      kN * 2 * kIndexer + 2.0 * 32 * 128 * (2.0 * kN * (2 * kN + 1) / 2 - kN * (kN + 1) / 2.0));
  // The cache is read once: every row up to the chunk's end.
  EXPECT_DOUBLE_EQ(second.cache_bytes, 2.0 * kN * (1152 + 132));
}

TEST(ModelBenchShapesTest, ExpectedDistinctExperts) {
  const ModelConfig c = Glm5(1, false);
  EXPECT_DOUBLE_EQ(ExpectedDistinctExperts(c, 1), 8.0);
  EXPECT_NEAR(ExpectedDistinctExperts(c, 8), 256 * (1 - std::pow(248.0 / 256, 8)), 1e-9);
  EXPECT_GT(ExpectedDistinctExperts(c, 4096), 255.999);
}

}  // namespace
}  // namespace strata::bench

#include "kvcache/layout.h"

#include "gtest/gtest.h"

namespace strata::kvcache {
namespace {

// The numbers of specs/dsa.md §7 for real models (L = 512, R = 64, D = 128).
TEST(LayoutTest, MatchesTheSpecifiedByteContract) {
  CacheGeometry g;
  g.latent_dtype = LatentCacheDType::kBF16;
  EXPECT_EQ(LatentBytesPerToken(g), 576 * 2);
  g.latent_dtype = LatentCacheDType::kF8;
  EXPECT_EQ(LatentBytesPerToken(g), 656);
  g.indexer_dtype = IndexerCacheDType::kF8;
  EXPECT_EQ(IndexerBytesPerBlock(g), 8448);
  g.indexer_dtype = IndexerCacheDType::kBF16;
  EXPECT_EQ(IndexerBytesPerBlock(g), 64 * 128 * 2);
  g.has_indexer = false;
  EXPECT_EQ(IndexerBytesPerBlock(g), 0);
  EXPECT_EQ(LayerBytesPerBlock(g), 656 * 64);
}

TEST(LayoutTest, RefusesGeometryThatCannotBeLaidOut) {
  CacheGeometry g;
  EXPECT_TRUE(ValidateGeometry(g).ok());
  g.latent_dtype = LatentCacheDType::kF8;
  g.kv_lora_rank = 32;
  EXPECT_EQ(ValidateGeometry(g).code(), absl::StatusCode::kInvalidArgument);
  g.latent_dtype = LatentCacheDType::kF32;
  EXPECT_TRUE(ValidateGeometry(g).ok());
  g.index_head_dim = 0;
  EXPECT_FALSE(ValidateGeometry(g).ok());
  // fp8 indexer keys are Hadamard-rotated: the head dim must be a power of two.
  g.index_head_dim = 96;
  g.indexer_dtype = IndexerCacheDType::kF8;
  EXPECT_EQ(ValidateGeometry(g).code(), absl::StatusCode::kInvalidArgument);
  g.indexer_dtype = IndexerCacheDType::kBF16;
  EXPECT_TRUE(ValidateGeometry(g).ok());
  g.indexer_dtype = IndexerCacheDType::kF8;
  g.has_indexer = false;
  EXPECT_TRUE(ValidateGeometry(g).ok());
}

}  // namespace
}  // namespace strata::kvcache

#include "coordinator/cluster_config.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace strata::coordinator {
namespace {

constexpr char kMinimal[] = R"(
model_dir: /models/tiny
pipeline:
  num_stages: 2
  workers: [a:1, b:2]
)";

// The error message of parsing `yaml` (empty when it parses).
std::string ErrorOf(const std::string& yaml) {
  auto config = ParseClusterConfig(yaml);
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

#define EXPECT_ERROR_MENTIONS(yaml, text) \
  EXPECT_NE(ErrorOf(yaml).find(text), std::string::npos) << "error: '" << ErrorOf(yaml) << "'"

TEST(ClusterConfigTest, MinimalFileTakesDefaults) {
  auto c = ParseClusterConfig(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_dir, "/models/tiny");
  EXPECT_EQ(c->tensor_parallel_size, 1);
  ASSERT_EQ(c->num_stages(), 2);
  EXPECT_EQ(c->stages[0].workers, (std::vector<std::string>{"a:1"}));
  EXPECT_EQ(c->stages[1].workers, (std::vector<std::string>{"b:2"}));
  EXPECT_FALSE(c->has_explicit_layers());
  EXPECT_EQ(c->kv_cache.block_size, 64);
  EXPECT_EQ(c->kv_cache.latent_dtype, kvcache::LatentCacheDType::kBF16);
  EXPECT_TRUE(c->kv_cache.enable_prefix_caching);
  EXPECT_EQ(c->scheduler.max_num_seqs, 256);
  EXPECT_EQ(c->scheduler.max_model_len, 0);
  EXPECT_EQ(c->listen.client, "0.0.0.0:50051");
  EXPECT_DOUBLE_EQ(c->timeouts.step_s, 60);
}

TEST(ClusterConfigTest, WorkersAreStageMajorUnderTensorParallelism) {
  auto c = ParseClusterConfig(R"(
model_dir: m
tensor_parallel_size: 2
pipeline: {num_stages: 2, workers: [a:1, a:2, b:1, b:2]}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->stages[0].workers, (std::vector<std::string>{"a:1", "a:2"}));
  EXPECT_EQ(c->stages[1].workers, (std::vector<std::string>{"b:1", "b:2"}));
}

TEST(ClusterConfigTest, ExplicitStagesCarryLayerRanges) {
  auto c = ParseClusterConfig(R"(
model_dir: m
pipeline:
  stages:
    - {layers: [0, 40], workers: ["[::1]:50061"]}
    - {layers: [40, 78], workers: [host-b:50061]}
kv_cache: {latent_dtype: fp8, indexer_dtype: bf16, enable_prefix_caching: false}
scheduler: {max_num_seqs: 8, max_num_batched_tokens: 512, max_prefill_chunk: 128, max_model_len: 4096}
listen: {client: "127.0.0.1:9000"}
timeouts: {step_s: 2.5}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_explicit_layers());
  EXPECT_EQ(*c->stages[1].layers, (LayerRange{40, 78}));
  EXPECT_EQ(c->kv_cache.latent_dtype, kvcache::LatentCacheDType::kF8);
  EXPECT_EQ(c->kv_cache.indexer_dtype, kvcache::IndexerCacheDType::kBF16);
  EXPECT_FALSE(c->kv_cache.enable_prefix_caching);
  EXPECT_EQ(c->scheduler.max_prefill_chunk, 128);
  EXPECT_EQ(c->scheduler.max_model_len, 4096);
  EXPECT_EQ(c->listen.client, "127.0.0.1:9000");
  EXPECT_DOUBLE_EQ(c->timeouts.step_s, 2.5);
}

TEST(ClusterConfigTest, ErrorsNameTheField) {
  const std::string base = kMinimal;
  EXPECT_ERROR_MENTIONS(base + "scheduler: {max_num_seqs: 0}\n",
                        "scheduler.max_num_seqs (line 6): must be >= 1, got 0");
  EXPECT_ERROR_MENTIONS(base + "scheduler: {max_num_seqs: lots}\n",
                        "scheduler.max_num_seqs (line 6): expected an integer, got 'lots'");
  EXPECT_ERROR_MENTIONS(base + "scheduler: {max_num_batched_tokens: 2.5}\n",
                        "scheduler.max_num_batched_tokens");
  EXPECT_ERROR_MENTIONS(base + "kv_cache: {block_size: 16}\n", "kv_cache.block_size");
  EXPECT_ERROR_MENTIONS(base + "kv_cache: {latent_dtype: int4}\n", "kv_cache.latent_dtype");
  EXPECT_ERROR_MENTIONS(base + "kv_cache: {enable_prefix_caching: maybe}\n",
                        "kv_cache.enable_prefix_caching");
  EXPECT_ERROR_MENTIONS(base + "timeouts: {step_s: -1}\n", "timeouts.step_s");
  EXPECT_ERROR_MENTIONS(base + "listen: {client: nowhere}\n", "listen.client");
  EXPECT_ERROR_MENTIONS(base + "tensor_parallel_size: 2\n",
                        "pipeline.workers (line 5): has 2 workers; num_stages × "
                        "tensor_parallel_size = 4");
  EXPECT_ERROR_MENTIONS(base + "scheduler: [1, 2]\n", "scheduler (line 6): expected a mapping");
}

TEST(ClusterConfigTest, UnknownKeysAreRefusedAtEveryLevel) {
  const std::string base = kMinimal;
  EXPECT_ERROR_MENTIONS(base + "modle_dir: x\n", "modle_dir (line 6): unknown key");
  EXPECT_ERROR_MENTIONS(base + "scheduler: {max_num_seq: 4}\n", "scheduler.max_num_seq");
  EXPECT_ERROR_MENTIONS(absl::StrReplaceAll(base, {{"num_stages: 2", "num_stages: 2\n  tp: 1"}}),
                        "pipeline.tp");
  EXPECT_ERROR_MENTIONS(R"(
model_dir: m
pipeline:
  stages:
    - {layers: [0, 4], workers: [a:1], gpu: 0}
)",
                        "pipeline.stages[0].gpu");
}

TEST(ClusterConfigTest, PipelineShapesAreChecked) {
  EXPECT_ERROR_MENTIONS("model_dir: m\n", "pipeline");
  EXPECT_ERROR_MENTIONS("pipeline: {num_stages: 1, workers: [a:1]}\n", "model_dir");
  EXPECT_ERROR_MENTIONS("model_dir: m\npipeline: {num_stages: 0, workers: []}\n",
                        "pipeline.num_stages");
  EXPECT_ERROR_MENTIONS("model_dir: m\npipeline: {num_stages: 1}\n", "pipeline.workers");
  EXPECT_ERROR_MENTIONS("model_dir: m\npipeline: {num_stages: 2, workers: [a:1, a:1]}\n",
                        "worker a:1 appears twice");
  EXPECT_ERROR_MENTIONS("model_dir: m\npipeline: {num_stages: 1, workers: [a:70000]}\n",
                        "pipeline.workers[0]");
  EXPECT_ERROR_MENTIONS(R"(
model_dir: m
pipeline:
  num_stages: 1
  workers: [a:1]
  stages: [{workers: [a:1]}]
)",
                        "not both");
  EXPECT_ERROR_MENTIONS(R"(
model_dir: m
pipeline:
  stages:
    - {layers: [0, 4], workers: [a:1]}
    - {workers: [b:1]}
)",
                        "pipeline.stages[1] (line 6): give layers for every stage or for none");
  EXPECT_ERROR_MENTIONS(R"(
model_dir: m
pipeline:
  stages:
    - {layers: [4, 4], workers: [a:1]}
)",
                        "pipeline.stages[0].layers");
  EXPECT_ERROR_MENTIONS("model_dir: m\npipeline: {stages: []}\n", "pipeline.stages");
}

TEST(ClusterConfigTest, DataPlaneTransportsDefaultToAutoAndAreChecked) {
  auto c = ParseClusterConfig(kMinimal);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data_plane.pipeline, TransportChoice::kAuto);
  EXPECT_EQ(c->data_plane.tensor_parallel, TransportChoice::kAuto);
  c = ParseClusterConfig(std::string(kMinimal) +
                         "data_plane: {pipeline: host, tensor_parallel: gloo}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data_plane.pipeline, TransportChoice::kHost);
  EXPECT_EQ(c->data_plane.tensor_parallel, TransportChoice::kHost);
  c = ParseClusterConfig(std::string(kMinimal) + "data_plane: {pipeline: nccl}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data_plane.pipeline, TransportChoice::kNccl);
  EXPECT_EQ(c->data_plane.tensor_parallel, TransportChoice::kAuto);
  EXPECT_ERROR_MENTIONS(std::string(kMinimal) + "data_plane: {pipeline: gloo}\n",
                        "data_plane.pipeline (line 6): expected auto, nccl or host, got 'gloo'");
  EXPECT_ERROR_MENTIONS(std::string(kMinimal) + "data_plane: {tensor_parallel: ucx}\n",
                        "expected auto, nccl or gloo");
  EXPECT_ERROR_MENTIONS(std::string(kMinimal) + "data_plane: {transport: nccl}\n",
                        "data_plane.transport");
}

TEST(ClusterConfigTest, MalformedYamlIsAnErrorNotACrash) {
  EXPECT_ERROR_MENTIONS("model_dir: [unclosed\n", "not valid YAML");
  EXPECT_ERROR_MENTIONS("", "empty");
  EXPECT_ERROR_MENTIONS("- just\n- a list\n", "expected a mapping");
  EXPECT_ERROR_MENTIONS("model_dir: {a: 1}\npipeline: {num_stages: 1, workers: [a:1]}\n",
                        "model_dir");
}

TEST(ClusterConfigTest, AddressesAreHostColonPort) {
  EXPECT_TRUE(CheckAddress("localhost:50051").ok());
  EXPECT_TRUE(CheckAddress("10.0.0.1:1").ok());
  EXPECT_TRUE(CheckAddress("[fe80::1]:65535").ok());
  for (const char* bad : {"", "localhost", ":50051", "host:", "host:0", "host:65536", "::1:80",
                          "[::1]", "[::1]80", "host:12ab"}) {
    EXPECT_FALSE(CheckAddress(bad).ok()) << bad;
  }
}

TEST(ClusterConfigTest, ShippedExampleParses) {
  const char* env = std::getenv("STRATA_SOURCE_DIR");  // set by ctest; else run from the root
  const std::string root = env != nullptr ? env : ".";
  auto c = LoadClusterConfig(root + "/deploy/examples/cluster-local.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_stages(), 2);
  EXPECT_EQ(LoadClusterConfig("/nonexistent.yaml").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata::coordinator

// The cluster file: the one YAML document that describes a Strata deployment.
//
//   model_dir: /models/glm-5              # checkpoint directory (same path on every worker)
//   tensor_parallel_size: 2               # TP ranks per pipeline stage
//   pipeline:                             # either a stage count ...
//     num_stages: 2
//     workers: [a:50061, b:50061, c:50061, d:50061]   # stage-major: stage s, rank r = s·tp + r
//   # ... or explicit stages, each with its TP workers and (all or none) a layer range [begin, end)
//   #   stages:
//   #     - {layers: [0, 40], workers: [a:50061, b:50061]}
//   #     - {layers: [40, 78], workers: [c:50061, d:50061]}
//   kv_cache: {block_size: 64, latent_dtype: bf16, indexer_dtype: fp8, enable_prefix_caching: true}
//   scheduler: {max_num_seqs: 256, max_num_batched_tokens: 8192, max_prefill_chunk: 2048,
//               max_model_len: 32768}    # max_model_len omitted: the model's maximum
//   listen: {client: 0.0.0.0:50051}
//   timeouts: {connect_s: 30, load_s: 1800, warmup_s: 600, step_s: 60, data_plane_s: 30,
//              health_interval_s: 2}
//   data_plane: {pipeline: auto, tensor_parallel: auto}   # auto | nccl | host (TP: gloo = host)
//
// Every key is optional except model_dir and pipeline; unknown keys are refused (a typo must not
// silently fall back to a default). Errors are INVALID_ARGUMENT naming the field, e.g.
// "scheduler.max_num_seqs (line 9): must be >= 1, got 0". Relative paths are used as given
// (relative to the working directory of each process).
#ifndef STRATA_COORDINATOR_CLUSTER_CONFIG_H_
#define STRATA_COORDINATOR_CLUSTER_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/partitioner.h"
#include "kvcache/layout.h"

namespace strata::coordinator {

struct StageConfig {
  std::vector<std::string> workers;  // host:port of TP ranks 0 .. tp-1
  std::optional<LayerRange> layers;  // explicit form only; checked against the model later
};

struct KvCacheConfig {
  int block_size = kvcache::kBlockTokens;  // must be 64
  kvcache::LatentCacheDType latent_dtype = kvcache::LatentCacheDType::kBF16;
  kvcache::IndexerCacheDType indexer_dtype = kvcache::IndexerCacheDType::kF8;
  bool enable_prefix_caching = true;
};

struct SchedulerConfig {
  int max_num_seqs = 256;
  int max_num_batched_tokens = 8192;
  int max_prefill_chunk = 2048;
  int max_model_len = 0;  // 0: the model's max_position_embeddings
};

struct ListenConfig {
  std::string client = "0.0.0.0:50051";  // strata.v1.Inference and grpc.health.v1
};

struct TimeoutConfig {       // seconds
  double connect_s = 30;     // reaching a worker and the handshake
  double load_s = 1800;      // LoadShard (weights from disk)
  double warmup_s = 600;     // Warmup
  double step_s = 60;        // one step, plan sent → result received, before the worker is failed
  double data_plane_s = 30;  // any one data-plane operation on a worker
  double health_interval_s = 2;  // between worker health polls
};

// How activations move between workers. kAuto: NCCL when the cluster has several workers and
// every one of them reports NCCL (GPU workers), else host memory. kHost: the pipeline over the
// workers' UCX/TCP links and TP collectives over Gloo, GPU workers staging through the host (as on
// one GPU shared by several workers, where NCCL refuses to run). kNccl: NCCL, even for one worker;
// a worker without NCCL fails the bring-up.
enum class TransportChoice { kAuto, kNccl, kHost };

struct DataPlaneChoice {
  TransportChoice pipeline = TransportChoice::kAuto;         // "auto" | "nccl" | "host"
  TransportChoice tensor_parallel = TransportChoice::kAuto;  // "auto" | "nccl" | "gloo"
};

struct ClusterConfig {
  std::string model_dir;
  int tensor_parallel_size = 1;
  std::vector<StageConfig> stages;  // one per pipeline stage, in order
  KvCacheConfig kv_cache;
  SchedulerConfig scheduler;
  ListenConfig listen;
  TimeoutConfig timeouts;
  DataPlaneChoice data_plane;

  int num_stages() const { return static_cast<int>(stages.size()); }
  // Whether the file gave layer ranges (then every stage has them) or only a stage count.
  bool has_explicit_layers() const { return !stages.empty() && stages[0].layers.has_value(); }
};

// Parses and validates the text of a cluster file. Never throws.
absl::StatusOr<ClusterConfig> ParseClusterConfig(absl::string_view yaml);
// Reads and parses `path`; NOT_FOUND when it cannot be read.
absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path);

// INVALID_ARGUMENT unless `address` is host:port (or [ipv6]:port) with a port in 1..65535.
absl::Status CheckAddress(absl::string_view address);

}  // namespace strata::coordinator

#endif  // STRATA_COORDINATOR_CLUSTER_CONFIG_H_

// One worker's pipeline stage, without any gRPC: loads its layers (LoadShard), sizes its KV cache
// (Warmup), and executes StepPlans (Execute) exactly as LocalRunner drives the model — block
// tables to StepInput, Model::Forward, then either sampling (last stage) or hidden states to the
// next stage over the data plane. It keeps only what the coordinator told it: per-sequence block
// tables from the plans' deltas. It decides nothing: an invalid plan is an error result and leaves
// the tables as they were.
//
// Not thread-safe: the worker's owner thread makes every call.
#ifndef STRATA_WORKER_SERVICE_STAGE_ENGINE_H_
#define STRATA_WORKER_SERVICE_STAGE_ENGINE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model_config.h"
#include "common/safetensors.h"
#include "strata/v1/worker.pb.h"
#include "worker/dataplane/link.h"
#include "worker/dataplane/nccl.h"
#include "worker/dataplane/rendezvous_store.h"
#include "worker/model/backend.h"
#include "worker/model/model.h"

namespace strata::worker {

struct StageEngineOptions {
  Device device = Device::Cpu();
  int64_t kv_cache_bytes = int64_t{512} << 20;  // --kv-cache-mb
  // Tensor parallelism over Gloo: the ranks of a stage meet in the strata.v1.Rendezvous store of
  // their TP rank 0 (at its DataPlanePeer.worker_address), or, when tp_store_dir is set
  // (--tp-store-dir), in that directory. tp_host is the address this worker's Gloo device binds.
  std::string tp_store_dir;
  std::string tp_host = "127.0.0.1";
  // This worker's own rendezvous store (served on its gRPC server); as TP rank 0 it drops the keys
  // of earlier incarnations of its group. May be null (then nothing is dropped).
  dataplane::RendezvousStore* rendezvous_store = nullptr;
};

class TpGroup;

class StageEngine {
 public:
  // `link` (may be null for a single-stage worker) must outlive the engine.
  StageEngine(StageEngineOptions options, dataplane::Link* link);
  ~StageEngine();

  // A repeated LoadShard for the same shard (model, layers, stage, TP rank and size, dtypes,
  // transports) keeps the weights and the KV cache and renews the data plane: it reconnects to the
  // next stage, and forms its collectives again (a new Gloo rendezvous, a new NCCL world) when
  // the request's rendezvous_id or nccl_unique_id differs from the ones they were formed under (a
  // rank of the group restarted). A different shard is FAILED_PRECONDITION.
  absl::StatusOr<v1::LoadShardResponse> LoadShard(const v1::LoadShardRequest& request);
  // Allocates the KV cache (as many blocks as the byte budget holds, at most request.max_blocks)
  // and runs a one-token step on block 0, which the coordinator reserves for probes.
  absl::StatusOr<v1::WarmupResponse> Warmup(const v1::WarmupRequest& request);
  // A one-token step on block 0, local only (later stages use zero hidden states). Under tensor
  // parallelism a rank cannot step alone (its peers would have to join the all-reduce): Probe then
  // only checks that the cache exists; Warmup's step runs on every rank together.
  absl::Status Probe();
  // Never fails as a call: errors are the result's `error`. Timings queue_us and total_us are
  // measured from `received`.
  v1::StepResult Execute(const v1::StepPlan& plan, absl::Time received);

  bool loaded() const { return model_ != nullptr; }
  bool warmed() const { return cache_.has_value(); }
  uint64_t last_step_id() const { return last_step_id_; }

 private:
  absl::Status ProbeStep();
  absl::Status ExecuteOrError(const v1::StepPlan& plan, v1::StepTimings& timings,
                              v1::SampledTokens& sampled);
  absl::StatusOr<v1::LoadShardResponse> ReloadShard(const v1::LoadShardRequest& request);
  // Forms the data plane the request names: the NCCL world, the TP collective, the pipeline link.
  absl::Status FormDataPlane(const v1::LoadShardRequest& request);
  absl::Status ConnectNextStage(const v1::LoadShardRequest& request);
  absl::Status ConnectTp(const v1::LoadShardRequest& request);
  absl::Status JoinNccl(const v1::LoadShardRequest& request);
  absl::Status RecvHidden(dataplane::LinkKey key, int64_t tokens, Tensor& hidden,
                          v1::StepTimings& timings);
  absl::Status SendHidden(dataplane::LinkKey key, const Tensor& hidden, v1::StepTimings& timings);

  StageEngineOptions options_;
  dataplane::Link* link_;
  ModelConfig config_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<model::Backend> backend_;
  // The data plane, formed again when a rank of the group restarts. The model holds tp_, which
  // forwards to the Gloo collective or to the NCCL world's group (and fails while neither is).
  std::unique_ptr<dataplane::NcclWorld> nccl_;
  std::unique_ptr<model::Collective> gloo_;
  std::unique_ptr<TpGroup> tp_;  // tp_size > 1; outlives model_
  std::string formed_under_;     // rendezvous_id + nccl_unique_id of the current data plane
  bool nccl_pipeline_ = false;
  bool data_plane_ready_ = false;  // false after a failed FormDataPlane: steps fail until reloaded
  int prev_world_rank_ = -1, next_world_rank_ = -1;
  std::unique_ptr<model::Model> model_;
  std::optional<model::KvCache> cache_;
  v1::LoadShardRequest shard_;
  absl::Duration data_plane_timeout_ = absl::Seconds(30);
  bool has_next_stage_ = false;
  uint64_t weight_bytes_ = 0;
  std::unordered_map<uint64_t, std::vector<int32_t>> tables_;  // seq_id -> block ids
  uint64_t last_step_id_ = 0;
};

}  // namespace strata::worker

#endif  // STRATA_WORKER_SERVICE_STAGE_ENGINE_H_

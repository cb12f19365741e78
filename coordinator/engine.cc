#include "coordinator/engine.h"

#include <algorithm>
#include <filesystem>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "coordinator/data_plane.h"
#include "coordinator/engine_actor.h"
#include "coordinator/model_layers.h"

namespace strata::coordinator {

namespace v1 = strata::v1;

// ---- ResponseSink ---------------------------------------------------------------------------

void ResponseSink::Push(v1::GenerateResponse response) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  queue_.push_back(std::move(response));
  cv_.notify_all();
}

void ResponseSink::Close(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  status_ = status;
  cv_.notify_all();
}

ResponseSink::PopResult ResponseSink::Pop(double timeout_s, v1::GenerateResponse* response,
                                          absl::Status* status) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)),
               [&] { return closed_ || !queue_.empty(); });
  if (!queue_.empty()) {
    *response = std::move(queue_.front());
    queue_.pop_front();
    return PopResult::kMessage;
  }
  if (closed_) {
    *status = status_;
    return PopResult::kClosed;
  }
  return PopResult::kTimeout;
}

// ---- Engine lifecycle -----------------------------------------------------------------------

Engine::Engine(const EngineOptions& options)
    : options_(options), snapshot_(std::make_unique<Snapshot>()) {}

Engine::~Engine() { Stop(); }

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  std::unique_ptr<Engine> e(new Engine(options));
  const ClusterConfig& c = options.cluster;
  ASSIGN_OR_RETURN(e->model_, LoadModelConfig(c.model_dir));
  const ModelLayers layers = LayersOf(e->model_);
  if (c.has_explicit_layers()) {
    std::vector<LayerRange> ranges;
    for (const StageConfig& s : c.stages) ranges.push_back(*s.layers);
    ASSIGN_OR_RETURN(e->stage_plans_, CheckStageRanges(layers.layers, ranges));
  } else {
    ASSIGN_OR_RETURN(e->stage_plans_, BalanceStages(layers.layers, c.num_stages()));
  }
  e->max_model_len_ =
      c.scheduler.max_model_len > 0 ? c.scheduler.max_model_len : e->model_.max_position_embeddings;
  if (e->max_model_len_ > e->model_.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("scheduler.max_model_len ", e->max_model_len_,
                                                   " exceeds the model's ",
                                                   e->model_.max_position_embeddings));
  }
  const std::string tokenizer_path = c.model_dir + "/tokenizer.json";
  if (std::filesystem::exists(tokenizer_path)) {
    ASSIGN_OR_RETURN(e->tokenizer_, Tokenizer::FromFile(tokenizer_path));
  }
  e->model_name_ = std::filesystem::path(c.model_dir).lexically_normal().filename().string();
  if (e->model_name_.empty()) {
    e->model_name_ =
        std::filesystem::path(c.model_dir).lexically_normal().parent_path().filename().string();
  }
  e->actor_ = std::make_unique<Actor>(e.get());
  return e;
}

void Engine::Start() {
  actor_thread_ = std::thread(&Engine::ActorLoop, this);
  bring_up_thread_ = std::thread(&Engine::BringUpLoop, this);
}

void Engine::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  bring_up_cv_.notify_all();
  if (bring_up_thread_.joinable()) bring_up_thread_.join();
  if (actor_thread_.joinable()) actor_thread_.join();
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped.swap(tasks_);
  }
}

void Engine::Post(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  tasks_.push_back(std::move(task));
  cv_.notify_all();
}

void Engine::Call(const std::function<void()>& task) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> ready = done->get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    tasks_.push_back([task, done] {
      task();
      done->set_value();
    });
    cv_.notify_all();
  }
  // The actor answers between steps; Stop drops queued tasks, which breaks the promise.
  ready.wait();
}

void Engine::ActorLoop() {
  for (;;) {
    std::deque<std::function<void()>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const Clock::time_point wake =
          std::min(actor_->NextDeadline(), Clock::now() + std::chrono::milliseconds(200));
      cv_.wait_until(lock, wake, [&] { return stopping_ || !tasks_.empty(); });
      if (stopping_) break;
      batch.swap(tasks_);
    }
    for (auto& task : batch) task();
    actor_->Tick();
    auto snapshot = std::make_unique<Snapshot>();
    actor_->FillSnapshot(*snapshot);
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    snapshot_ = std::move(snapshot);
  }
  // Queued Calls are answered before the end, so no handler waits forever.
  std::deque<std::function<void()>> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rest.swap(tasks_);
  }
  for (auto& task : rest) task();
  actor_->Shutdown();
}

// ---- Worker bring-up ------------------------------------------------------------------------

namespace {

v1::CacheDType ToProto(kvcache::LatentCacheDType d) {
  switch (d) {
    case kvcache::LatentCacheDType::kF32:
      return v1::CACHE_DTYPE_F32;
    case kvcache::LatentCacheDType::kBF16:
      return v1::CACHE_DTYPE_BF16;
    case kvcache::LatentCacheDType::kF8:
      return v1::CACHE_DTYPE_FP8;
  }
  return v1::CACHE_DTYPE_UNSPECIFIED;
}

v1::CacheDType ToProto(kvcache::IndexerCacheDType d) {
  switch (d) {
    case kvcache::IndexerCacheDType::kF32:
      return v1::CACHE_DTYPE_F32;
    case kvcache::IndexerCacheDType::kBF16:
      return v1::CACHE_DTYPE_BF16;
    case kvcache::IndexerCacheDType::kF8:
      return v1::CACHE_DTYPE_FP8;
  }
  return v1::CACHE_DTYPE_UNSPECIFIED;
}

// Runs fn(i) for i in [0, n) on n threads and returns the first error.
absl::Status ForAll(int n, const std::function<absl::Status(int)>& fn) {
  std::vector<absl::Status> status(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back([&, i] { status[i] = fn(i); });
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : status) RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

}  // namespace

void Engine::BringUpLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      bring_up_cv_.wait(lock, [&] { return stopping_ || need_bring_up_; });
      if (stopping_) return;
      need_bring_up_ = false;
    }
    const absl::Status status = BringUpOnce();
    if (status.ok()) continue;
    LOG(WARNING) << "bringing the workers up: " << status.message();
    Post([this, status] { actor_->WorkerFailed(status); });
    std::unique_lock<std::mutex> lock(mu_);
    bring_up_cv_.wait_for(
        lock, std::chrono::milliseconds(static_cast<int64_t>(options_.reconnect_interval_s * 1e3)),
        [&] { return stopping_; });
    if (stopping_) return;
    need_bring_up_ = true;
  }
}

absl::Status Engine::BringUpOnce() {
  static std::atomic<uint64_t> next_generation{1};
  const uint64_t generation = next_generation++;
  const ClusterConfig& c = options_.cluster;
  const TimeoutConfig& t = c.timeouts;
  const int tp = c.tensor_parallel_size;
  const int num_stages = c.num_stages();
  std::vector<std::unique_ptr<WorkerLink>> links;
  for (const StageConfig& stage : c.stages) {
    for (const std::string& address : stage.workers) {
      links.push_back(std::make_unique<WorkerLink>(address));
    }
  }
  const int n = static_cast<int>(links.size());
  std::vector<v1::HandshakeResponse> hello(n);
  std::vector<bool> loaded(n, false);
  RETURN_IF_ERROR(ForAll(n, [&](int i) -> absl::Status {
    RETURN_IF_ERROR(links[i]->Connect(t.connect_s, [this] {
      std::lock_guard<std::mutex> lock(mu_);
      return stopping_;
    }));
    v1::HandshakeRequest req;
    req.mutable_protocol_version()->set_major(1);
    req.set_coordinator_id(options_.coordinator_id);
    ASSIGN_OR_RETURN(hello[i], links[i]->Handshake(req, t.connect_s));
    if (hello[i].protocol_version().major() != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", links[i]->address(), " speaks protocol ",
                       hello[i].protocol_version().major(), ", the coordinator 1"));
    }
    ASSIGN_OR_RETURN(const v1::WorkerHealthResponse health, links[i]->Health(t.connect_s));
    loaded[i] =
        health.state() == v1::SERVING_STATE_READY || health.state() == v1::SERVING_STATE_DEGRADED;
    return absl::OkStatus();
  }));
  std::vector<std::string> addresses;
  for (const auto& link : links) addresses.push_back(link->address());
  ASSIGN_OR_RETURN(const Transports transports, ChooseTransports(c.data_plane, addresses, hello));
  DataPlaneInputs plane;
  plane.transports = transports;
  plane.tensor_parallel_size = tp;
  plane.addresses = addresses;
  plane.rendezvous_id = NewRendezvousId(options_.coordinator_id, generation);
  plane.operation_timeout_s = t.data_plane_s;
  if (transports.nccl()) {
    // World rank 0 creates a new NCCL id for every bring-up: the world is formed again each time.
    v1::HandshakeRequest req;
    req.mutable_protocol_version()->set_major(1);
    req.set_coordinator_id(options_.coordinator_id);
    req.set_create_nccl_unique_id(true);
    ASSIGN_OR_RETURN(const v1::HandshakeResponse h0, links[0]->Handshake(req, t.connect_s));
    if (h0.nccl_unique_id().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", links[0]->address(), " returned no NCCL unique id"));
    }
    plane.nccl_unique_id = h0.nccl_unique_id();
  }
  plane.hello = hello;
  const v1::DataPlaneConfig data_plane = MakeDataPlaneConfig(plane);
  // Every worker gets LoadShard, with this bring-up's rendezvous id (and NCCL id): a restarted one
  // loads its shard; a surviving one (strata-worker keeps the weights of the same shard) renews
  // its data plane — it reconnects to the next stage, which may have restarted on new addresses,
  // and its TP group meets again, since a collective does not survive the loss of a rank. A worker
  // that cannot renew answers FAILED_PRECONDITION, which is then taken as "keep what you have".
  // Every worker is then warmed up again, which clears its block tables: the requests of the
  // failed generation are gone.
  std::vector<int> capacity(n, 0);
  RETURN_IF_ERROR(ForAll(n, [&](int i) -> absl::Status {
    const int stage = i / tp;
    {
      v1::LoadShardRequest req;
      req.set_model_dir(c.model_dir);
      req.mutable_layers()->set_begin(stage_plans_[stage].layers.begin);
      req.mutable_layers()->set_end(stage_plans_[stage].layers.end);
      req.set_stage(stage);
      req.set_num_stages(num_stages);
      req.set_tp_rank(i % tp);
      req.set_tp_size(tp);
      req.set_latent_cache_dtype(ToProto(c.kv_cache.latent_dtype));
      req.set_indexer_cache_dtype(ToProto(c.kv_cache.indexer_dtype));
      req.set_kv_block_tokens(c.kv_cache.block_size);
      *req.mutable_data_plane() = data_plane;
      const absl::Status status = links[i]->LoadShard(req, t.load_s).status();
      if (!status.ok() && !(loaded[i] && absl::IsFailedPrecondition(status))) return status;
    }
    v1::WarmupRequest warm;
    warm.set_max_num_batched_tokens(c.scheduler.max_num_batched_tokens);
    warm.set_max_num_seqs(c.scheduler.max_num_seqs);
    warm.set_max_model_len(max_model_len_);
    warm.set_memory_fraction(options_.memory_fraction);
    warm.set_max_blocks(options_.max_blocks);
    ASSIGN_OR_RETURN(const v1::WarmupResponse warmed, links[i]->Warmup(warm, t.warmup_s));
    capacity[i] = static_cast<int>(std::min<uint32_t>(warmed.kv_capacity_blocks(), 1u << 30));
    return absl::OkStatus();
  }));
  for (int i = 0; i < n; ++i) {
    RETURN_IF_ERROR(links[i]->OpenStream(
        [this, i, generation](const v1::StepResult& r) {
          Post([this, i, generation, r] { actor_->OnResult(i, generation, r); });
        },
        [this, generation](const absl::Status& s) {
          Post([this, generation, s] { actor_->OnBroken(generation, s); });
        }));
  }
  const int min_capacity = *std::min_element(capacity.begin(), capacity.end());
  LOG(INFO) << n << " worker(s) up; KV capacity " << min_capacity << " blocks";
  auto shared = std::make_shared<std::vector<std::unique_ptr<WorkerLink>>>(std::move(links));
  Post([this, shared, min_capacity, generation] {
    actor_->Install(std::move(*shared), min_capacity, generation);
  });
  return absl::OkStatus();
}

// ---- Queries --------------------------------------------------------------------------------

bool Engine::Ready() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return snapshot_->state == EngineState::kReady;
}

v1::HealthResponse Engine::Health() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  const Snapshot& s = *snapshot_;
  v1::HealthResponse r;
  const bool live = Clock::now() - s.heartbeat < std::chrono::seconds(10);
  r.set_live(live);
  switch (s.state) {
    case EngineState::kStarting:
      r.set_state(v1::SERVING_STATE_STARTING);
      break;
    case EngineState::kReady:
      r.set_state(live ? v1::SERVING_STATE_READY : v1::SERVING_STATE_NOT_READY);
      break;
    case EngineState::kNotReady:
      r.set_state(v1::SERVING_STATE_NOT_READY);
      break;
  }
  auto add = [&](const std::string& name, bool pass, const std::string& detail) {
    v1::HealthCheck* c = r.add_checks();
    c->set_name(name);
    c->set_result(pass ? v1::HealthCheck::RESULT_PASS : v1::HealthCheck::RESULT_FAIL);
    if (!pass) c->set_detail(detail);
  };
  add("scheduler", live, "the control loop has not run for 10 s");
  add("kv_capacity", s.kv_capacity_blocks > 0, "no KV capacity reported yet");
  const int tp = options_.cluster.tensor_parallel_size;
  for (size_t i = 0; i < s.workers.size(); ++i) {
    add(absl::StrCat("worker/stage", i / tp, "/rank", i % tp), s.worker_up[i],
        absl::StrCat(s.workers[i], ": ", s.detail));
  }
  r.set_running_requests(s.running);
  r.set_waiting_requests(s.waiting);
  r.set_kv_free_blocks(s.kv_free_blocks);
  r.set_kv_capacity_blocks(s.kv_capacity_blocks);
  return r;
}

v1::ModelInfo Engine::ModelInfo() const {
  v1::ModelInfo info;
  info.set_model_type(std::string(ModelTypeName(model_.model_type)));
  info.set_model_name(model_name_);
  info.set_vocab_size(model_.vocab_size);
  info.set_max_model_len(max_model_len_);
  for (int id : model_.eos_token_ids) info.add_eos_token_ids(id);
  info.set_num_hidden_layers(model_.num_hidden_layers);
  info.set_pipeline_stages(options_.cluster.num_stages());
  info.set_tensor_parallel_size(options_.cluster.tensor_parallel_size);
  info.set_kv_block_tokens(kvcache::kBlockTokens);
  {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    info.set_kv_capacity_blocks(snapshot_->kv_capacity_blocks);
  }
  info.set_has_prompt_format(tokenizer_ != nullptr);
  info.mutable_protocol_version()->set_major(1);
  return info;
}

EngineStats Engine::Stats() {
  EngineStats stats;
  Call([&] { stats = actor_->Stats(); });
  return stats;
}

v1::AbortResponse::Result Engine::Abort(const std::string& request_id) {
  v1::AbortResponse::Result result = v1::AbortResponse::RESULT_NOT_FOUND;
  Call([&] { result = actor_->Abort(request_id); });
  return result;
}

}  // namespace strata::coordinator

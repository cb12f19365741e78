#include "worker/service/worker_service.h"

#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "worker/dataplane/nccl.h"
#include "worker/model/backend_factory.h"

namespace strata::worker {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// Bytes from /proc/meminfo ("MemTotal", "MemAvailable"); 0 when unreadable.
uint64_t MemInfo(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    uint64_t kb = 0;
    fields >> kb;
    return kb * 1024;
  }
  return 0;
}

std::string CpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      return line.substr(line.find(':') + 2);
    }
  }
  return "cpu";
}

uint64_t NowUs() { return static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())); }

// Results of one Step stream, handed from the owner thread to the stream's writer thread.
class ResultQueue {
 public:
  void Push(v1::StepResult r) {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(std::move(r));
    cv_.notify_one();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_one();
  }
  std::optional<v1::StepResult> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    v1::StepResult r = std::move(items_.front());
    items_.pop_front();
    return r;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::StepResult> items_;
  bool closed_ = false;
};

v1::StepResult ErrorResult(const v1::StepPlan& plan, v1::StatusCode code, const std::string& msg) {
  v1::StepResult r;
  r.set_step_id(plan.step_id());
  r.set_micro_batch_id(plan.micro_batch_id());
  r.mutable_error()->set_code(code);
  r.mutable_error()->set_message(msg);
  return r;
}

}  // namespace

WorkerService::WorkerService(WorkerServiceOptions options, std::unique_ptr<StageEngine> engine)
    : options_(std::move(options)), engine_(std::move(engine)) {}

WorkerService::~WorkerService() { owner_.Stop(); }

void WorkerService::SetHealthService(grpc::HealthCheckServiceInterface* health) {
  health_ = health;
  if (health_ == nullptr) return;
  health_->SetServingStatus("", true);
  health_->SetServingStatus(kWorkerServiceName, false);
}

v1::DeviceInfo WorkerService::Device() const {
  v1::DeviceInfo d;
  d.set_kind(options_.device.is_cpu() ? "cpu" : "cuda");
  d.set_index(options_.device.is_cpu() ? 0 : options_.device.index);
  d.set_name(options_.device.is_cpu() ? CpuName() : options_.device.ToString());
  if (options_.device.is_cuda()) {
    absl::StatusOr<model::GpuDescription> gpu = model::DescribeGpu(options_.device.index);
    if (gpu.ok()) {
      d.set_name(gpu->name);
      d.set_uuid(gpu->uuid);
      d.set_sm_version(gpu->sm_version);
      d.set_memory_total(gpu->memory_total);
      d.set_memory_free(gpu->memory_free);
      return d;
    }
    LOG(WARNING) << "cannot describe " << options_.device.ToString() << ": " << gpu.status();
  }
  d.set_memory_total(MemInfo("MemTotal"));
  d.set_memory_free(MemInfo("MemAvailable"));
  return d;
}

grpc::Status WorkerService::Handshake(grpc::ServerContext*, const v1::HandshakeRequest* req,
                                      v1::HandshakeResponse* resp) {
  resp->mutable_protocol_version()->set_major(kProtocolMajor);
  resp->mutable_protocol_version()->set_minor(kProtocolMinor);
  if (req->protocol_version().major() != kProtocolMajor) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("protocol major ", req->protocol_version().major(),
                                     " is not this worker's ", kProtocolMajor));
  }
  const bool nccl = dataplane::NcclAvailable() && options_.device.is_cuda();
  if (req->create_nccl_unique_id()) {
    if (!nccl) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          options_.device.is_cuda() ? "this build has no NCCL"
                                                    : "NCCL needs a GPU worker (--device cuda:N)");
    }
    absl::StatusOr<std::string> id = dataplane::NewNcclUniqueId();
    if (!id.ok()) return ToGrpc(id.status());
    resp->set_nccl_unique_id(*std::move(id));
  }
  LOG(INFO) << "handshake from coordinator '" << req->coordinator_id() << "'"
            << (req->create_nccl_unique_id() ? " (NCCL unique id created)" : "");
  resp->set_worker_version("strata-worker 0.1");
  *resp->mutable_device() = Device();
  v1::WorkerCapabilities* caps = resp->mutable_capabilities();
  for (auto d : {v1::CACHE_DTYPE_F32, v1::CACHE_DTYPE_BF16, v1::CACHE_DTYPE_FP8}) {
    caps->add_latent_cache_dtypes(d);
    caps->add_indexer_cache_dtypes(d);
  }
  caps->set_ucx(options_.ucx);
  caps->set_gloo(true);
  caps->set_nccl(nccl);
  caps->set_fp8_weights(true);  // FP8 block-scaled checkpoints are dequantised at load
  resp->set_host_memory_total(MemInfo("MemTotal"));
  resp->set_host_memory_available(MemInfo("MemAvailable"));
  resp->set_data_plane_address(options_.data_plane_address);
  return grpc::Status::OK;
}

grpc::Status WorkerService::LoadShard(grpc::ServerContext*, const v1::LoadShardRequest* req,
                                      v1::LoadShardResponse* resp) {
  absl::StatusOr<v1::LoadShardResponse> r = owner_.Run(
      [this, req] { return engine_->LoadShard(*req); },
      absl::StatusOr<v1::LoadShardResponse>(absl::UnavailableError("worker is shutting down")));
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  loaded_ = true;
  return grpc::Status::OK;
}

grpc::Status WorkerService::Warmup(grpc::ServerContext*, const v1::WarmupRequest* req,
                                   v1::WarmupResponse* resp) {
  absl::StatusOr<v1::WarmupResponse> r = owner_.Run(
      [this, req] { return engine_->Warmup(*req); },
      absl::StatusOr<v1::WarmupResponse>(absl::UnavailableError("worker is shutting down")));
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  warmed_ = true;
  if (health_ != nullptr) health_->SetServingStatus(kWorkerServiceName, true);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Step(grpc::ServerContext* ctx,
                                 grpc::ServerReaderWriter<v1::StepResult, v1::StepPlan>* stream) {
  if (stream_active_.exchange(true)) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "a Step stream is already open");
  }
  LOG(INFO) << "Step stream opened by " << ctx->peer();
  ResultQueue results;
  std::thread writer([&results, stream] {
    bool open = true;
    while (std::optional<v1::StepResult> r = results.Pop()) {
      if (open) open = stream->Write(*r);  // keep draining after a broken stream
    }
  });
  v1::StepPlan plan;
  while (stream->Read(&plan)) {
    const absl::Time received = absl::Now();
    if (shutting_down_) {
      results.Push(ErrorResult(plan, v1::STATUS_CODE_UNAVAILABLE, "worker is shutting down"));
      continue;
    }
    auto task = [this, plan, received, &results] {
      if (shutting_down_ && !drain_) {  // Shutdown(drain = false): queued plans are not run
        results.Push(ErrorResult(plan, v1::STATUS_CODE_CANCELLED, "worker is shutting down"));
        return;
      }
      v1::StepResult r = engine_->Execute(plan, received);
      {
        std::lock_guard<std::mutex> lock(error_mu_);
        last_step_error_ = r.has_error() ? r.error().message() : "";
      }
      if (!r.has_error()) last_step_id_ = r.step_id();
      results.Push(std::move(r));
    };
    if (!owner_.Post(std::move(task))) {
      results.Push(ErrorResult(plan, v1::STATUS_CODE_UNAVAILABLE, "worker is shutting down"));
    }
  }
  // The coordinator closed or dropped the stream: finish what was received, then close.
  if (!owner_.Post([&results] { results.Close(); })) results.Close();
  writer.join();
  LOG(INFO) << "Step stream closed";
  stream_active_ = false;
  return grpc::Status::OK;
}

grpc::Status WorkerService::Health(grpc::ServerContext*, const v1::WorkerHealthRequest* req,
                                   v1::WorkerHealthResponse* resp) {
  auto check = [resp](const std::string& name, bool pass, const std::string& detail,
                      v1::HealthCheck::Result bad) {
    v1::HealthCheck* c = resp->add_checks();
    c->set_name(name);
    c->set_result(pass ? v1::HealthCheck::RESULT_PASS : bad);
    if (!pass) c->set_detail(detail);
    c->set_last_change_us(NowUs());
  };
  check("loaded", loaded_, "LoadShard has not run", v1::HealthCheck::RESULT_FAIL);
  check("warmed_up", warmed_, "Warmup has not run", v1::HealthCheck::RESULT_FAIL);
  std::string step_error;
  {
    std::lock_guard<std::mutex> lock(error_mu_);
    step_error = last_step_error_;
  }
  check("last_step", step_error.empty(), step_error, v1::HealthCheck::RESULT_WARN);
  bool probe_ok = true;
  if (req->run_probe_step() && warmed_) {
    const absl::Status s = owner_.Run([this] { return engine_->Probe(); },
                                      absl::UnavailableError("worker is shutting down"));
    probe_ok = s.ok();
    check("probe_step", probe_ok, std::string(s.message()), v1::HealthCheck::RESULT_FAIL);
  }
  v1::ServingState state = v1::SERVING_STATE_READY;
  if (!warmed_) {
    state = v1::SERVING_STATE_STARTING;
  } else if (!probe_ok || shutting_down_) {
    state = v1::SERVING_STATE_NOT_READY;
  } else if (!step_error.empty()) {
    state = v1::SERVING_STATE_DEGRADED;
  }
  resp->set_state(state);
  resp->set_last_step_id(last_step_id_);
  *resp->mutable_device() = Device();
  return grpc::Status::OK;
}

grpc::Status WorkerService::Shutdown(grpc::ServerContext*, const v1::ShutdownRequest* req,
                                     v1::ShutdownResponse*) {
  RequestShutdown(req->drain(), req->reason());
  return grpc::Status::OK;
}

void WorkerService::RequestShutdown(bool drain, const std::string& reason) {
  if (shutting_down_.exchange(true)) return;
  LOG(INFO) << "shutdown requested (" << (drain ? "drain" : "now") << "): " << reason;
  drain_ = drain;
  if (health_ != nullptr) health_->SetServingStatus(kWorkerServiceName, false);
  shutdown_requested_.Notify();
}

bool WorkerService::WaitForShutdownRequest(absl::Duration timeout) {
  return shutdown_requested_.WaitForNotificationWithTimeout(timeout);
}

void WorkerService::FinishSteps() { owner_.Stop(); }

}  // namespace strata::worker

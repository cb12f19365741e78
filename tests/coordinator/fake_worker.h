// An in-process fake of strata-worker for the coordinator's tests: the real strata.v1.Worker
// service over gRPC on 127.0.0.1, with deterministic "sampling" instead of a model.
//
// The sampling stage answers every plan's sampled sequences with FakeNextToken(last token, its
// position); the others acknowledge. A `gpu` fake reports a cuda device with NCCL and hands out
// distinct NCCL ids. SetAnswerLimit makes it stop answering after that many more
// plans (the step stays in flight until Stop), to test aborts and failures mid-step.
#ifndef STRATA_TESTS_COORDINATOR_FAKE_WORKER_H_
#define STRATA_TESTS_COORDINATOR_FAKE_WORKER_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "strata/v1/worker.grpc.pb.h"

namespace strata::testing {

// Never 1 (the oracle model's EOS), so generations end by length.
inline int32_t FakeNextToken(int32_t last, uint32_t position, int32_t vocab) {
  const int32_t t = static_cast<int32_t>((static_cast<int64_t>(last) * 7 + position + 3) % vocab);
  return t == 1 ? 2 : t;
}

class FakeWorker final : public strata::v1::Worker::Service {
 public:
  struct Options {
    bool sampler = true;  // the last stage's TP rank 0
    uint32_t capacity_blocks = 256;
    int32_t vocab = 512;
    bool gpu = false;  // reports a cuda device with NCCL, and creates NCCL ids when asked
  };
  explicit FakeWorker(Options options) : options_(options) {}
  ~FakeWorker() override { Stop(); }

  // Listens on 127.0.0.1:port (0 picks one). false when it cannot.
  bool Start(int port = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    return server_ != nullptr && port_ != 0;
  }
  // Kills the server: open Step streams break.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now());
      server_->Wait();
      server_.reset();
    }
  }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void SetAnswerLimit(int plans) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_limit_ = plans;
    cv_.notify_all();
  }
  strata::v1::LoadShardRequest load_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return load_request_;
  }
  int plans_received() const { return plans_received_.load(); }
  // Every LoadShard received, refused ones included, in order.
  std::vector<strata::v1::LoadShardRequest> load_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return load_requests_;
  }
  // The NCCL ids this worker created, in order.
  std::vector<std::string> nccl_ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return nccl_ids_;
  }

  grpc::Status Handshake(grpc::ServerContext*, const strata::v1::HandshakeRequest* req,
                         strata::v1::HandshakeResponse* r) override {
    r->mutable_protocol_version()->set_major(1);
    r->mutable_device()->set_kind(options_.gpu ? "cuda" : "cpu");
    if (options_.gpu) r->mutable_device()->set_uuid("GPU-fake-" + std::to_string(port_));
    r->mutable_capabilities()->set_nccl(options_.gpu);
    r->mutable_capabilities()->set_gloo(true);
    r->set_data_plane_address("127.0.0.1:" + std::to_string(port_ + 1000));
    if (req->create_nccl_unique_id()) {
      if (!options_.gpu) return {grpc::StatusCode::UNIMPLEMENTED, "no NCCL"};
      std::lock_guard<std::mutex> lock(mu_);
      // 128 bytes, distinct per worker and per call.
      std::string id = std::to_string(port_) + "/" + std::to_string(nccl_ids_.size()) + "/";
      id.resize(128, '.');
      nccl_ids_.push_back(id);
      r->set_nccl_unique_id(id);
    }
    return grpc::Status::OK;
  }
  grpc::Status Health(grpc::ServerContext*, const strata::v1::WorkerHealthRequest*,
                      strata::v1::WorkerHealthResponse* r) override {
    std::lock_guard<std::mutex> lock(mu_);
    r->set_state(warm_ ? strata::v1::SERVING_STATE_READY : strata::v1::SERVING_STATE_STARTING);
    return grpc::Status::OK;
  }
  grpc::Status LoadShard(grpc::ServerContext*, const strata::v1::LoadShardRequest* req,
                         strata::v1::LoadShardResponse*) override {
    std::lock_guard<std::mutex> lock(mu_);
    load_requests_.push_back(*req);
    if (loaded_) return {grpc::StatusCode::FAILED_PRECONDITION, "already loaded"};
    loaded_ = true;
    load_request_ = *req;
    return grpc::Status::OK;
  }
  grpc::Status Warmup(grpc::ServerContext*, const strata::v1::WarmupRequest*,
                      strata::v1::WarmupResponse* r) override {
    std::lock_guard<std::mutex> lock(mu_);
    warm_ = true;
    r->set_kv_capacity_blocks(options_.capacity_blocks);
    return grpc::Status::OK;
  }
  grpc::Status Step(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<strata::v1::StepResult, strata::v1::StepPlan>* stream) override {
    strata::v1::StepPlan plan;
    while (stream->Read(&plan)) {
      ++plans_received_;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || answer_limit_ != 0; });
        if (stopping_) break;
        if (answer_limit_ > 0) --answer_limit_;
      }
      strata::v1::StepResult result;
      result.set_step_id(plan.step_id());
      result.set_micro_batch_id(plan.micro_batch_id());
      strata::v1::SampledTokens* sampled = result.mutable_sampled();
      if (options_.sampler) {
        for (const strata::v1::SequencePlan& s : plan.sequences()) {
          if (!s.sample()) continue;
          strata::v1::SampledToken* t = sampled->add_tokens();
          t->set_seq_id(s.seq_id());
          const uint32_t last_position = s.start_position() + s.token_ids_size() - 1;
          t->set_token_id(
              FakeNextToken(s.token_ids(s.token_ids_size() - 1), last_position, options_.vocab));
        }
      }
      if (!stream->Write(result)) break;
    }
    return grpc::Status::OK;
  }

 private:
  const Options options_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool loaded_ = false;
  bool warm_ = false;
  int answer_limit_ = -1;  // -1: unlimited
  strata::v1::LoadShardRequest load_request_;
  std::vector<strata::v1::LoadShardRequest> load_requests_;
  std::vector<std::string> nccl_ids_;
  std::atomic<int> plans_received_{0};
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_COORDINATOR_FAKE_WORKER_H_

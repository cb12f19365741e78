// strata-model-bench: a Backend that forwards every operation to another and, when asked, watches
// them. Two probes, each armed only for an untimed step:
// - routing: counts the distinct routed experts each MoE layer's step selects (the experts whose
//   weights the step must read, for the bandwidth floor); reads the ids back.
// - op times: times every operation by name with the given timer (which synchronises around each
//   call), for a breakdown of a step; the synchronisations make the sum somewhat larger than an
//   unprobed step.
#ifndef STRATA_BENCH_PROBE_BACKEND_H_
#define STRATA_BENCH_PROBE_BACKEND_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/model/backend.h"

namespace strata::bench {

class ProbeBackend final : public model::Backend {
 public:
  // Milliseconds of one call of fn, including the device work it enqueued.
  using Timer = std::function<absl::StatusOr<double>(const std::function<absl::Status()>&)>;

  explicit ProbeBackend(model::Backend& inner) : inner_(inner) {}

  // Starts counting experts (clearing earlier counts) or stops.
  void ArmRouting(bool on) {
    count_experts_ = on;
    if (on) distinct_.clear();
  }
  // Distinct experts of each MoeRoute call since ArmRouting(true), in call order (one per MoE
  // layer).
  const std::vector<int>& distinct() const { return distinct_; }

  // Starts timing every operation with `timer` (clearing earlier times); a null timer stops.
  void ArmTiming(Timer timer) {
    timer_ = std::move(timer);
    if (timer_) op_ms_.clear();
  }
  // Milliseconds per operation name since ArmTiming.
  const std::map<std::string, double>& op_ms() const { return op_ms_; }

  Device device() const override { return inner_.device(); }
  DType activation_dtype() const override { return inner_.activation_dtype(); }
  DType weight_dtype() const override { return inner_.weight_dtype(); }
  void* stream() const override { return inner_.stream(); }
  kvcache::LatentCacheDType default_latent_cache() const override {
    return inner_.default_latent_cache();
  }
  kvcache::IndexerCacheDType default_indexer_cache() const override {
    return inner_.default_indexer_cache();
  }
  absl::StatusOr<std::unique_ptr<model::Uploader>> NewUploader(int64_t staging_bytes) override {
    return inner_.NewUploader(staging_bytes);
  }
  absl::Status AddRmsNorm(Tensor& h, const Tensor& delta, const Tensor& weight, float eps,
                          Tensor& out) override {
    return Op("AddRmsNorm", [&] { return inner_.AddRmsNorm(h, delta, weight, eps, out); });
  }
  absl::StatusOr<Tensor> NewTensor(DType dtype, Shape shape) override {
    return Op("NewTensor", [&] { return inner_.NewTensor(dtype, std::move(shape)); });
  }
  absl::StatusOr<Tensor> Upload(const Tensor& host) override {
    return Op("Upload", [&] { return inner_.Upload(host); });
  }
  absl::StatusOr<Tensor> Download(const Tensor& t) override {
    return Op("Download", [&] { return inner_.Download(t); });
  }
  absl::Status Embedding(const Tensor& ids, const Tensor& table, Tensor& out) override {
    return Op("Embedding", [&] { return inner_.Embedding(ids, table, out); });
  }
  absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    return Op("RmsNorm", [&] { return inner_.RmsNorm(x, weight, eps, out); });
  }
  absl::Status LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                         Tensor& out) override {
    return Op("LayerNorm", [&] { return inner_.LayerNorm(x, weight, bias, eps, out); });
  }
  absl::Status Linear(const Tensor& x, const Tensor& w, Tensor& y) override {
    return Op("Linear", [&] { return inner_.Linear(x, w, y); });
  }
  absl::Status HeadMatmul(const Tensor& x, const Tensor& w, bool transpose_w, Tensor& y) override {
    return Op("HeadMatmul", [&] { return inner_.HeadMatmul(x, w, transpose_w, y); });
  }
  absl::Status Add(Tensor& x, const Tensor& y) override {
    return Op("Add", [&] { return inner_.Add(x, y); });
  }
  absl::Status Copy(const Tensor& src, Tensor& dst) override {
    return Op("Copy", [&] { return inner_.Copy(src, dst); });
  }
  absl::StatusOr<Tensor> GatherRows(const Tensor& x, const std::vector<int32_t>& rows) override {
    return Op("GatherRows", [&] { return inner_.GatherRows(x, rows); });
  }
  absl::Status Rope(Tensor& x, const Tensor& positions, const model::RopeArgs& rope) override {
    return Op("Rope", [&] { return inner_.Rope(x, positions, rope); });
  }
  absl::Status SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    return Op("SiluMul", [&] { return inner_.SiluMul(gate, up, out); });
  }
  absl::Status WriteLatentCache(const Tensor& rows, const model::PagedView& view,
                                model::LayerCache& cache) override {
    return Op("WriteLatentCache", [&] { return inner_.WriteLatentCache(rows, view, cache); });
  }
  absl::Status WriteIndexerCache(const Tensor& keys, const model::PagedView& view,
                                 model::LayerCache& cache) override {
    return Op("WriteIndexerCache", [&] { return inner_.WriteIndexerCache(keys, view, cache); });
  }
  absl::StatusOr<Tensor> IndexerTopk(const Tensor& q, const Tensor& w, float weight_scale,
                                     float softmax_scale, int top_k, const model::PagedView& view,
                                     const model::LayerCache& cache) override {
    return Op("IndexerTopk", [&] {
      return inner_.IndexerTopk(q, w, weight_scale, softmax_scale, top_k, view, cache);
    });
  }
  absl::Status SparseMla(const Tensor& q_abs, const Tensor& slots, float scale,
                         const model::LayerCache& cache, Tensor& out) override {
    return Op("SparseMla", [&] { return inner_.SparseMla(q_abs, slots, scale, cache, out); });
  }
  absl::Status MoeExperts(const Tensor& x, const Tensor& expert_ids, const Tensor& weights,
                          const std::vector<ExpertWeights>& experts, Tensor& y) override {
    return Op("MoeExperts", [&] { return inner_.MoeExperts(x, expert_ids, weights, experts, y); });
  }
  absl::Status MoeRoute(const Tensor& router_logits, const Tensor& bias, const RouteArgs& args,
                        Tensor& expert_ids, Tensor& weights) override {
    RETURN_IF_ERROR(Op("MoeRoute", [&] {
      return inner_.MoeRoute(router_logits, bias, args, expert_ids, weights);
    }));
    if (!count_experts_ || capturing_) return absl::OkStatus();
    ASSIGN_OR_RETURN(Tensor ids, inner_.Download(expert_ids));
    const int32_t* p = ids.data<int32_t>();
    distinct_.push_back(static_cast<int>(std::set<int32_t>(p, p + ids.numel()).size()));
    return absl::OkStatus();
  }
  absl::Status Sample(const Tensor& logits, const std::vector<model::SamplingArgs>& args,
                      std::vector<int32_t>& ids, std::vector<float>& logprobs) override {
    return Op("Sample", [&] { return inner_.Sample(logits, args, ids, logprobs); });
  }
  // Graph capture passes straight through, and both probes stand aside while it records: the
  // model captures a bucket's graph right after running its first step eagerly, in the same
  // Forward (the eager run is what they see), and neither a read-back nor a timing sync may
  // happen inside a capture. A replayed step runs none of the operations above.
  absl::Status BeginCapture() override {
    RETURN_IF_ERROR(inner_.BeginCapture());
    capturing_ = true;
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<model::StepGraph>> EndCapture() override {
    capturing_ = false;
    return inner_.EndCapture();
  }

 private:
  static absl::Status StatusOf(const absl::Status& s) { return s; }
  template <typename T>
  static absl::Status StatusOf(const absl::StatusOr<T>& s) {
    return s.status();
  }

  // Calls f, timing it under `name` while the timing probe is armed.
  template <typename F>
  auto Op(const char* name, F&& f) -> decltype(f()) {
    if (!timer_ || capturing_) return f();
    std::optional<decltype(f())> result;
    const absl::StatusOr<double> ms = timer_([&] {
      result.emplace(f());
      return StatusOf(*result);
    });
    if (!result.has_value()) return ms.status();
    if (ms.ok()) op_ms_[name] += *ms;
    return *std::move(result);
  }

  model::Backend& inner_;
  bool count_experts_ = false;
  bool capturing_ = false;
  std::vector<int> distinct_;
  Timer timer_;
  std::map<std::string, double> op_ms_;
};

}  // namespace strata::bench

#endif  // STRATA_BENCH_PROBE_BACKEND_H_

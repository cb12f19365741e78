// Runs the whole model in one process: the engine behind strata-run and the reference the
// distributed runtime is held against. It plays the coordinator's part in miniature: it owns a
// block pool, batches every live sequence into each step (prefill chunks and decode tokens mixed)
// and samples. Blocks are handed out in a scattered order so that every run exercises
// non-contiguous block tables.
#ifndef STRATA_WORKER_LOCAL_RUNNER_H_
#define STRATA_WORKER_LOCAL_RUNNER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/safetensors.h"
#include "worker/model/backend.h"
#include "worker/model/model.h"

namespace strata {

struct RunnerOptions {
  std::string model_dir;
  Device device = Device::Cpu();
  model::ModelOptions model;
};

struct GenerateRequest {
  std::vector<int32_t> prompt;
  int max_new_tokens = 16;
  int prefill_chunk = 0;  // tokens of the prompt per step; 0 = the whole prompt at once
  bool stop_at_eos = true;
  bool want_prompt_logits = false;  // return the logits of every prompt position
  model::SamplingArgs sampling;     // `step` is set by the runner
};

enum class FinishReason { kLength, kStop };

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (the eos that stopped it included)
  std::vector<float> logprobs;  // of each generated id
  Tensor prompt_logits;         // [prompt_len, vocab] f32 on the host, when asked for
  FinishReason finish_reason = FinishReason::kLength;
};

// Called after every generated token: (request index, token id). Must not block for long.
using TokenCallback = std::function<void(size_t, int32_t)>;

class LocalRunner {
 public:
  static absl::StatusOr<std::unique_ptr<LocalRunner>> Create(const RunnerOptions& options);
  ~LocalRunner();

  // Generates for all requests together. INVALID_ARGUMENT for an empty prompt, an id outside the
  // vocabulary, or a length over max_position_embeddings.
  absl::StatusOr<std::vector<GenerateResult>> Generate(const std::vector<GenerateRequest>& requests,
                                                       const TokenCallback& on_token = {});

  const ModelConfig& config() const { return config_; }
  model::Backend& backend() { return *backend_; }
  const model::Model& model() const { return *model_; }

 private:
  LocalRunner() = default;
  absl::Status Validate(const GenerateRequest& r) const;

  ModelConfig config_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<model::Backend> backend_;
  std::unique_ptr<model::Model> model_;
};

}  // namespace strata

#endif  // STRATA_WORKER_LOCAL_RUNNER_H_

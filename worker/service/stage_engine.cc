#include "worker/service/stage_engine.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/status.h"
#include "kvcache/layout.h"
#include "worker/model/backend_factory.h"
#include "worker/service/tp_group.h"

namespace strata::worker {
namespace {

constexpr int64_t kBlockTokens = kvcache::kBlockTokens;

uint64_t Micros(absl::Duration d) { return static_cast<uint64_t>(absl::ToInt64Microseconds(d)); }

absl::StatusOr<kvcache::LatentCacheDType> LatentDType(v1::CacheDType d) {
  switch (d) {
    case v1::CACHE_DTYPE_F32:
      return kvcache::LatentCacheDType::kF32;
    case v1::CACHE_DTYPE_BF16:
      return kvcache::LatentCacheDType::kBF16;
    case v1::CACHE_DTYPE_FP8:
      return kvcache::LatentCacheDType::kF8;
    default:
      return absl::InvalidArgumentError("latent_cache_dtype is unspecified");
  }
}

absl::StatusOr<kvcache::IndexerCacheDType> IndexerDType(v1::CacheDType d) {
  switch (d) {
    case v1::CACHE_DTYPE_F32:
      return kvcache::IndexerCacheDType::kF32;
    case v1::CACHE_DTYPE_BF16:
      return kvcache::IndexerCacheDType::kBF16;
    case v1::CACHE_DTYPE_FP8:
      return kvcache::IndexerCacheDType::kF8;
    default:
      return absl::InvalidArgumentError("indexer_cache_dtype is unspecified");
  }
}

}  // namespace

StageEngine::StageEngine(StageEngineOptions options, dataplane::Link* link)
    : options_(options), link_(link) {}

StageEngine::~StageEngine() = default;

absl::StatusOr<v1::LoadShardResponse> StageEngine::LoadShard(const v1::LoadShardRequest& r) {
  if (model_ != nullptr) return ReloadShard(r);
  const absl::Time start = absl::Now();
  if (r.tp_size() == 0 || r.tp_rank() >= r.tp_size()) {
    return absl::InvalidArgumentError("tp_rank must be in [0, tp_size) and tp_size >= 1");
  }
  if (r.num_stages() == 0 || r.stage() >= r.num_stages()) {
    return absl::InvalidArgumentError("stage must be in [0, num_stages)");
  }
  if (r.kv_block_tokens() != kBlockTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_block_tokens must be ", kBlockTokens, ", got ", r.kv_block_tokens()));
  }
  ASSIGN_OR_RETURN(config_, LoadModelConfig(r.model_dir()));
  const uint32_t begin = r.layers().begin(), end = r.layers().end();
  if (begin >= end || end > static_cast<uint32_t>(config_.num_hidden_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("layer range [", begin, ", ", end,
                                                   ") is empty or outside the checkpoint's ",
                                                   config_.num_hidden_layers, " layers"));
  }
  if (begin < config_.indexer_types.size() &&
      config_.indexer_types[begin] == IndexerType::kShared) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer range [", begin, ", ", end, ") starts at shared-indexer layer ", begin,
                     ": it needs the top-k of the full layer before it, in the same stage"));
  }
  model::ModelOptions mo;
  mo.load.layer_begin = static_cast<int>(begin);
  mo.load.layer_end = static_cast<int>(end);
  mo.load.load_embedding = r.stage() == 0;
  mo.load.load_head = r.stage() + 1 == r.num_stages();
  ASSIGN_OR_RETURN(mo.latent_cache, LatentDType(r.latent_cache_dtype()));
  ASSIGN_OR_RETURN(mo.indexer_cache, IndexerDType(r.indexer_cache_dtype()));

  const v1::DataPlaneConfig& dp = r.data_plane();
  if (dp.operation_timeout_ms() > 0) {
    data_plane_timeout_ = absl::Milliseconds(dp.operation_timeout_ms());
  }
  has_next_stage_ = r.stage() + 1 < r.num_stages();
  if (r.tp_size() > 1) {
    tp_ = std::make_unique<TpGroup>(static_cast<int>(r.tp_rank()), static_cast<int>(r.tp_size()));
    mo.load.tp = {tp_->rank(), tp_->size()};
    mo.collective = tp_.get();
  }
  // The backend first: NCCL runs on its stream. The data plane before the weights, so that a
  // group that cannot meet fails before minutes of loading.
  if (backend_ == nullptr) {
    ASSIGN_OR_RETURN(backend_, model::CreateBackend(options_.device));
  }
  RETURN_IF_ERROR(FormDataPlane(r));
  ASSIGN_OR_RETURN(checkpoint_, Checkpoint::Open(r.model_dir()));
  ASSIGN_OR_RETURN(model_, model::Model::Create(config_, *checkpoint_, *backend_, mo));
  shard_ = r;
  v1::LoadShardResponse out;
  // Weights are converted to the backend's storage; the checkpoint bytes of this shard's tensors
  // are a close figure (layer tensors in range; the rest by stage: embedding first, head last).
  uint64_t bytes = 0;
  for (const std::string& name : checkpoint_->Names()) {
    int layer = -1;
    if (absl::string_view rest = name; absl::ConsumePrefix(&rest, "model.layers.")) {
      if (!absl::SimpleAtoi(rest.substr(0, rest.find('.')), &layer)) continue;
      if (layer < static_cast<int>(begin) || layer >= static_cast<int>(end)) continue;
    } else if (!(mo.load.load_embedding && absl::StrContains(name, "embed")) &&
               !(mo.load.load_head && !absl::StrContains(name, "embed"))) {
      continue;
    }
    auto t = checkpoint_->Get(name);
    if (t.ok()) bytes += t->nbytes();
  }
  weight_bytes_ = bytes;
  out.set_weight_bytes(bytes);
  out.set_load_us(Micros(absl::Now() - start));
  LOG(INFO) << "loaded layers [" << begin << ", " << end << ") as stage " << r.stage() << " of "
            << r.num_stages() << ", tensor-parallel rank " << r.tp_rank() << " of " << r.tp_size()
            << ", from " << r.model_dir();
  return out;
}

// The coordinator sends LoadShard again after a peer restarted: the same shard keeps its weights
// and KV cache and renews its data plane (the previous connection is dropped by Connect; the
// collectives are formed again under a new rendezvous id or NCCL id). Any other shard is refused.
absl::StatusOr<v1::LoadShardResponse> StageEngine::ReloadShard(const v1::LoadShardRequest& r) {
  const absl::Time start = absl::Now();
  const v1::LoadShardRequest& s = shard_;
  const bool same = r.model_dir() == s.model_dir() && r.layers().begin() == s.layers().begin() &&
                    r.layers().end() == s.layers().end() && r.stage() == s.stage() &&
                    r.num_stages() == s.num_stages() && r.tp_rank() == s.tp_rank() &&
                    r.tp_size() == s.tp_size() &&
                    r.latent_cache_dtype() == s.latent_cache_dtype() &&
                    r.indexer_cache_dtype() == s.indexer_cache_dtype() &&
                    r.kv_block_tokens() == s.kv_block_tokens() &&
                    r.data_plane().pipeline_transport() == s.data_plane().pipeline_transport() &&
                    r.data_plane().tp_transport() == s.data_plane().tp_transport();
  if (!same) {
    return absl::FailedPreconditionError(
        absl::StrCat("a different shard is loaded (layers [", s.layers().begin(), ", ",
                     s.layers().end(), ") as stage ", s.stage(), " of ", s.num_stages(), " from ",
                     s.model_dir(), "): restart the worker to load another"));
  }
  if (r.data_plane().operation_timeout_ms() > 0) {
    data_plane_timeout_ = absl::Milliseconds(r.data_plane().operation_timeout_ms());
  }
  const bool reform =
      !data_plane_ready_ || formed_under_ != absl::StrCat(r.data_plane().rendezvous_id(), "|",
                                                          r.data_plane().nccl_unique_id());
  if (reform) {
    // A collective does not survive the loss of a rank: the group meets again, all of its ranks
    // under the new id (the restarted one in its first LoadShard).
    RETURN_IF_ERROR(FormDataPlane(r));
  } else if (has_next_stage_ && !nccl_pipeline_) {
    RETURN_IF_ERROR(ConnectNextStage(r));
  }
  *shard_.mutable_data_plane() = r.data_plane();
  v1::LoadShardResponse out;
  out.set_weight_bytes(weight_bytes_);
  out.set_load_us(Micros(absl::Now() - start));
  LOG(INFO) << "LoadShard again for stage " << r.stage() << " tensor-parallel rank " << r.tp_rank()
            << ": weights kept, data plane " << (reform ? "formed again" : "reconnected");
  return out;
}

absl::StatusOr<v1::WarmupResponse> StageEngine::Warmup(const v1::WarmupRequest& r) {
  if (model_ == nullptr) return absl::FailedPreconditionError("Warmup before LoadShard");
  const absl::Time start = absl::Now();
  cache_.reset();
  tables_.clear();
  ASSIGN_OR_RETURN(model::KvCache probe,
                   model::KvCache::Create(*backend_, model_->CacheGeometries(), 1));
  const int64_t per_block = probe.bytes_per_block();
  int64_t blocks = per_block > 0 ? options_.kv_cache_bytes / per_block : 0;
  if (r.max_blocks() > 0) blocks = std::min<int64_t>(blocks, r.max_blocks());
  blocks = std::min<int64_t>(blocks, int64_t{1} << 31);
  if (blocks < 2) {
    return absl::ResourceExhaustedError(absl::StrCat("the KV budget of ", options_.kv_cache_bytes,
                                                     " bytes holds ", blocks, " blocks of ",
                                                     per_block, " bytes; at least 2 are needed"));
  }
  ASSIGN_OR_RETURN(model::KvCache cache,
                   model::KvCache::Create(*backend_, model_->CacheGeometries(), blocks));
  cache_.emplace(std::move(cache));
  RETURN_IF_ERROR(ProbeStep()) << "warm-up step";
  v1::WarmupResponse out;
  out.set_kv_capacity_blocks(static_cast<uint32_t>(blocks));
  out.set_kv_bytes_per_block(static_cast<uint64_t>(per_block));
  out.set_warmup_us(Micros(absl::Now() - start));
  LOG(INFO) << "KV cache: " << blocks << " blocks of " << per_block << " bytes";
  return out;
}

absl::Status StageEngine::Probe() {
  if (!cache_.has_value()) return absl::FailedPreconditionError("not warmed up");
  if (shard_.tp_size() > 1) return absl::OkStatus();
  return ProbeStep();
}

absl::Status StageEngine::ProbeStep() {
  if (!cache_.has_value()) return absl::FailedPreconditionError("not warmed up");
  model::StepInput in;
  in.token_ids = {0};
  in.positions = {0};
  in.token_seq = {0};
  in.block_tables = {0};
  in.num_seqs = 1;
  in.max_blocks = 1;
  in.logit_rows = {0};
  if (!model_->is_first_stage()) {
    ASSIGN_OR_RETURN(in.hidden,
                     backend_->Upload(Tensor::Zeros(DType::kF32, {1, config_.hidden_size})));
  }
  ASSIGN_OR_RETURN(Tensor out, model_->Forward(in, *cache_));
  if (model_->is_last_stage()) {
    std::vector<int32_t> ids;
    std::vector<float> logprobs;
    RETURN_IF_ERROR(backend_->Sample(out, {model::SamplingArgs{}}, ids, logprobs));
  }
  return absl::OkStatus();
}

v1::StepResult StageEngine::Execute(const v1::StepPlan& plan, absl::Time received) {
  v1::StepResult result;
  result.set_step_id(plan.step_id());
  result.set_micro_batch_id(plan.micro_batch_id());
  v1::StepTimings& timings = *result.mutable_timings();
  timings.set_queue_us(Micros(absl::Now() - received));
  v1::SampledTokens sampled;
  if (absl::Status s = ExecuteOrError(plan, timings, sampled); !s.ok()) {
    result.mutable_error()->set_code(static_cast<v1::StatusCode>(s.code()));
    result.mutable_error()->set_message(absl::StrCat("step ", plan.step_id(), " micro-batch ",
                                                     plan.micro_batch_id(), " stage ",
                                                     shard_.stage(), ": ", s.message()));
    LOG(WARNING) << result.error().message();
  } else {
    *result.mutable_sampled() = std::move(sampled);
    last_step_id_ = plan.step_id();
  }
  timings.set_total_us(Micros(absl::Now() - received));
  return result;
}

absl::Status StageEngine::ExecuteOrError(const v1::StepPlan& plan, v1::StepTimings& timings,
                                         v1::SampledTokens& sampled) {
  if (!cache_.has_value()) return absl::FailedPreconditionError("step before Warmup");
  if (!data_plane_ready_ && !plan.sequences().empty()) {
    return absl::FailedPreconditionError(
        "the data plane is not formed (the last LoadShard failed to form it); LoadShard again");
  }
  if (plan.micro_batch_id() > 0xffff) return absl::InvalidArgumentError("micro_batch_id too large");
  for (uint64_t id : plan.released_seq_ids()) tables_.erase(id);  // idempotent
  if (plan.sequences().empty()) return absl::OkStatus();

  // The tables after this plan's deltas, checked in full before any is committed.
  const int64_t capacity = cache_->num_blocks();
  std::vector<std::vector<int32_t>> tables;
  std::unordered_set<uint64_t> seen;
  model::StepInput in;
  for (int i = 0; i < plan.sequences_size(); ++i) {
    const v1::SequencePlan& s = plan.sequences(i);
    if (!seen.insert(s.seq_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id(), " appears twice"));
    }
    std::vector<int32_t> table;
    if (!s.reset_block_table()) {
      auto it = tables_.find(s.seq_id());
      if (it == tables_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown sequence ", s.seq_id(), " (no reset_block_table since it was admitted)"));
      }
      table = it->second;
    }
    for (uint32_t b : s.block_ids()) {
      if (b >= capacity) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id(), ": block id ", b,
                                                       " outside [0, ", capacity, ")"));
      }
      table.push_back(static_cast<int32_t>(b));
    }
    const int64_t n = s.token_ids_size();
    const int64_t end = int64_t{s.start_position()} + n;
    if (n == 0)
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id(), ": no tokens"));
    if (end > static_cast<int64_t>(table.size()) * kBlockTokens) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id(), ": positions up to ",
                                                     end, " but its block table ", "covers ",
                                                     table.size() * kBlockTokens, " tokens"));
    }
    if (end > config_.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id(), ": position ", end,
                                                     " beyond max_position_embeddings"));
    }
    for (int64_t k = 0; k < n; ++k) {
      const int32_t id = s.token_ids(static_cast<int>(k));
      if (model_->is_first_stage() && (id < 0 || id >= config_.vocab_size)) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", s.seq_id(), ": token id ", id, " outside the vocabulary"));
      }
      in.token_ids.push_back(id);
      in.positions.push_back(s.start_position() + k);
      in.token_seq.push_back(i);
    }
    if (s.sample()) {
      if (s.sampling().temperature() < 0 || s.sampling().top_p() < 0 || s.sampling().top_p() > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", s.seq_id(), ": bad sampling parameters"));
      }
      in.logit_rows.push_back(static_cast<int32_t>(in.positions.size() - 1));
    }
    tables.push_back(std::move(table));
  }
  in.num_seqs = static_cast<int>(tables.size());
  for (const auto& t : tables) in.max_blocks = std::max(in.max_blocks, static_cast<int>(t.size()));
  in.block_tables.assign(static_cast<size_t>(in.num_seqs) * in.max_blocks, -1);
  for (size_t i = 0; i < tables.size(); ++i) {
    std::copy(tables[i].begin(), tables[i].end(), in.block_tables.begin() + i * in.max_blocks);
  }
  // The plan is valid here: commit the tables (the step's cache writes follow).
  for (int i = 0; i < plan.sequences_size(); ++i) {
    tables_[plan.sequences(i).seq_id()] = tables[i];
  }
  if (!model_->is_last_stage()) in.logit_rows.clear();

  const dataplane::LinkKey key{plan.step_id(), plan.micro_batch_id()};
  const int64_t t = static_cast<int64_t>(in.positions.size());
  if (!model_->is_first_stage()) RETURN_IF_ERROR(RecvHidden(key, t, in.hidden, timings));
  const absl::Time compute = absl::Now();
  ASSIGN_OR_RETURN(Tensor out, model_->Forward(in, *cache_));
  if (!model_->is_last_stage()) {
    timings.set_compute_us(Micros(absl::Now() - compute));
    return SendHidden(key, out, timings);
  }
  ASSIGN_OR_RETURN(Tensor host, backend_->Download(out));
  if (in.logit_rows.empty()) {
    timings.set_compute_us(Micros(absl::Now() - compute));
    return absl::OkStatus();
  }
  std::vector<model::SamplingArgs> args;
  std::vector<const v1::SequencePlan*> sampling;
  for (const v1::SequencePlan& s : plan.sequences()) {
    if (!s.sample()) continue;
    model::SamplingArgs a;
    a.temperature = s.sampling().temperature();
    a.top_k = static_cast<int>(s.sampling().top_k());
    a.top_p = s.sampling().top_p() == 0 ? 1.0f : s.sampling().top_p();
    a.seed = s.sampling().seed();
    // Keyed by the sampled token's position (common.proto), so a replay draws the same token.
    a.step = int64_t{s.start_position()} + s.token_ids_size();
    args.push_back(a);
    sampling.push_back(&s);
  }
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  RETURN_IF_ERROR(backend_->Sample(host, args, ids, logprobs));
  for (size_t j = 0; j < sampling.size(); ++j) {
    v1::SampledToken* tok = sampled.add_tokens();
    tok->set_seq_id(sampling[j]->seq_id());
    tok->set_token_id(ids[j]);
    if (sampling[j]->want_logprobs()) tok->set_logprob(logprobs[j]);
  }
  timings.set_compute_us(Micros(absl::Now() - compute));
  return absl::OkStatus();
}

}  // namespace strata::worker

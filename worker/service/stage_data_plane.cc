// StageEngine's data plane (stage_engine.h), formed from LoadShard's DataPlaneConfig: hidden
// states to the next stage over the pipeline link (UCX or TCP, host memory) or NCCL (GPU to GPU),
// and the tensor-parallel all-reduce over Gloo (host memory) or NCCL.
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "worker/dataplane/gloo_collective.h"
#include "worker/service/stage_engine.h"
#include "worker/service/tp_group.h"

namespace strata::worker {
namespace {

uint64_t Micros(absl::Duration d) { return static_cast<uint64_t>(absl::ToInt64Microseconds(d)); }

std::string Sanitized(absl::string_view s) {
  std::string out;
  for (char ch : s) out.push_back(absl::ascii_isalnum(ch) ? ch : '_');
  return out;
}

const v1::DataPlanePeer* FindPeer(const v1::LoadShardRequest& r, uint32_t stage, uint32_t tp_rank) {
  for (const v1::DataPlanePeer& p : r.data_plane().peers()) {
    if (p.stage() == stage && p.tp_rank() == tp_rank) return &p;
  }
  return nullptr;
}

// The Gloo group's store prefix, new for each incarnation of the group: the coordinator's
// rendezvous_id and the stage; without an id (an older coordinator), the stage and its ranks'
// data-plane addresses (a restarted worker has a new one unless it kept its port).
absl::StatusOr<std::string> GlooPrefix(const v1::LoadShardRequest& r) {
  if (!r.data_plane().rendezvous_id().empty()) {
    return absl::StrCat(Sanitized(r.data_plane().rendezvous_id()), "-stage", r.stage());
  }
  std::string prefix = absl::StrCat("stage", r.stage());
  for (uint32_t rank = 0; rank < r.tp_size(); ++rank) {
    const v1::DataPlanePeer* p = FindPeer(r, r.stage(), rank);
    if (p == nullptr || p->data_plane_address().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("data_plane.peers lacks tensor-parallel rank ",
                                                     rank, " of stage ", r.stage()));
    }
    absl::StrAppend(&prefix, "-", Sanitized(p->data_plane_address()));
  }
  return prefix;
}

// Every peer's world_rank is distinct and in [0, peers).
absl::Status CheckWorldRanks(const v1::DataPlaneConfig& dp) {
  std::vector<bool> seen(static_cast<size_t>(dp.peers_size()), false);
  for (const v1::DataPlanePeer& p : dp.peers()) {
    if (p.world_rank() >= seen.size() || seen[p.world_rank()]) {
      return absl::InvalidArgumentError(absl::StrCat("data_plane.peers: world rank ",
                                                     p.world_rank(), " is repeated or not in [0, ",
                                                     dp.peers_size(), ")"));
    }
    seen[p.world_rank()] = true;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status StageEngine::FormDataPlane(const v1::LoadShardRequest& r) {
  const v1::DataPlaneConfig& dp = r.data_plane();
  if (tp_ != nullptr) tp_->Set(nullptr);
  gloo_.reset();
  nccl_.reset();
  formed_under_.clear();
  data_plane_ready_ = false;
  const bool pipeline = r.num_stages() > 1, tp = r.tp_size() > 1;
  if (pipeline && dp.pipeline_transport() != v1::TRANSPORT_UCX &&
      dp.pipeline_transport() != v1::TRANSPORT_NCCL) {
    return absl::UnimplementedError(
        "data_plane.pipeline_transport must be TRANSPORT_UCX (host memory) or TRANSPORT_NCCL");
  }
  if (tp && dp.tp_transport() != v1::TRANSPORT_GLOO && dp.tp_transport() != v1::TRANSPORT_NCCL) {
    return absl::UnimplementedError(
        "data_plane.tp_transport must be TRANSPORT_GLOO (host memory) or TRANSPORT_NCCL");
  }
  nccl_pipeline_ = pipeline && dp.pipeline_transport() == v1::TRANSPORT_NCCL;
  if (dp.pipeline_transport() == v1::TRANSPORT_NCCL || dp.tp_transport() == v1::TRANSPORT_NCCL) {
    RETURN_IF_ERROR(JoinNccl(r));
  }
  if (nccl_pipeline_) {
    const v1::DataPlanePeer* prev = FindPeer(r, r.stage() - 1, r.tp_rank());
    const v1::DataPlanePeer* next = FindPeer(r, r.stage() + 1, r.tp_rank());
    if ((r.stage() > 0 && prev == nullptr) || (has_next_stage_ && next == nullptr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("data_plane.peers lacks a neighbouring stage's tp_rank ", r.tp_rank()));
    }
    prev_world_rank_ = r.stage() > 0 ? static_cast<int>(prev->world_rank()) : -1;
    next_world_rank_ = has_next_stage_ ? static_cast<int>(next->world_rank()) : -1;
  } else if (pipeline) {
    if (link_ == nullptr) return absl::FailedPreconditionError("this worker has no data plane");
    if (has_next_stage_) RETURN_IF_ERROR(ConnectNextStage(r));
  }
  if (tp) {
    if (dp.tp_transport() == v1::TRANSPORT_NCCL) {
      tp_->Set(&nccl_->group());
    } else {
      RETURN_IF_ERROR(ConnectTp(r));
      tp_->Set(gloo_.get());
    }
  }
  formed_under_ = absl::StrCat(dp.rendezvous_id(), "|", dp.nccl_unique_id());
  data_plane_ready_ = true;
  return absl::OkStatus();
}

absl::Status StageEngine::JoinNccl(const v1::LoadShardRequest& r) {
  if (!options_.device.is_cuda()) {
    return absl::FailedPreconditionError("NCCL needs a GPU worker (strata-worker --device cuda:N)");
  }
  if (!dataplane::NcclAvailable()) return absl::UnimplementedError("this build has no NCCL");
  RETURN_IF_ERROR(CheckWorldRanks(r.data_plane()));
  const v1::DataPlanePeer* self = FindPeer(r, r.stage(), r.tp_rank());
  if (self == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("data_plane.peers lacks this worker (stage ",
                                                   r.stage(), ", tp_rank ", r.tp_rank(), ")"));
  }
  dataplane::NcclWorldOptions o;
  o.unique_id = r.data_plane().nccl_unique_id();
  o.world_rank = static_cast<int>(self->world_rank());
  o.world_size = r.data_plane().peers_size();
  o.device = options_.device.index;
  o.stream = backend_->stream();
  o.group = static_cast<int>(r.stage());
  o.group_rank = static_cast<int>(r.tp_rank());
  o.timeout = data_plane_timeout_;
  ASSIGN_OR_RETURN(nccl_, dataplane::CreateNcclWorld(o));
  if (nccl_->group().size() != static_cast<int>(r.tp_size()) ||
      nccl_->group().rank() != static_cast<int>(r.tp_rank())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the NCCL group of stage ", r.stage(), " has ", nccl_->group().size(), " ranks (this one ",
        nccl_->group().rank(), "), expected tp_size ", r.tp_size()));
  }
  LOG(INFO) << "NCCL world rank " << o.world_rank << " of " << o.world_size << " joined";
  return absl::OkStatus();
}

absl::Status StageEngine::ConnectNextStage(const v1::LoadShardRequest& r) {
  const v1::DataPlanePeer* next = FindPeer(r, r.stage() + 1, r.tp_rank());
  if (next == nullptr || next->data_plane_address().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("data_plane.peers has no address for stage ",
                                                   r.stage() + 1, " tp_rank ", r.tp_rank()));
  }
  RETURN_IF_ERROR(link_->Connect(next->data_plane_address()))
      << "next stage " << next->data_plane_address();
  return absl::OkStatus();
}

// The Gloo group of this worker's stage, meeting in TP rank 0's rendezvous store (or the
// --tp-store-dir directory).
absl::Status StageEngine::ConnectTp(const v1::LoadShardRequest& r) {
  dataplane::GlooCollectiveOptions o;
  o.rank = static_cast<int>(r.tp_rank());
  o.size = static_cast<int>(r.tp_size());
  ASSIGN_OR_RETURN(o.prefix, GlooPrefix(r));
  o.host = options_.tp_host;
  o.timeout = data_plane_timeout_;
  if (!options_.tp_store_dir.empty()) {
    o.store_dir = options_.tp_store_dir;
  } else {
    const v1::DataPlanePeer* root = FindPeer(r, r.stage(), 0);
    if (root == nullptr || root->worker_address().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data_plane.peers gives no worker_address for tensor-parallel rank 0 of stage ",
          r.stage(), " (its rendezvous store), and this worker has no --tp-store-dir"));
    }
    o.store_address = root->worker_address();
    // Rank 0 serves the store: the keys of the group's earlier incarnations go.
    if (r.tp_rank() == 0 && options_.rendezvous_store != nullptr) {
      options_.rendezvous_store->DropAllExcept(o.prefix + "/");
    }
  }
  ASSIGN_OR_RETURN(gloo_, dataplane::CreateGlooCollective(o));
  LOG(INFO) << "tensor-parallel group of stage " << r.stage() << " formed over Gloo ("
            << (o.store_address.empty() ? o.store_dir : o.store_address) << ", " << o.prefix << ")";
  return absl::OkStatus();
}

absl::Status StageEngine::RecvHidden(dataplane::LinkKey key, int64_t tokens, Tensor& hidden,
                                     v1::StepTimings& timings) {
  const absl::Time wait = absl::Now();
  if (nccl_pipeline_) {
    ASSIGN_OR_RETURN(hidden, backend_->NewTensor(DType::kF32, {tokens, config_.hidden_size}));
    RETURN_IF_ERROR(nccl_->Recv(prev_world_rank_, key, hidden));
    timings.set_recv_wait_us(Micros(absl::Now() - wait));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(Tensor host, link_->Recv(key, data_plane_timeout_));
  timings.set_recv_wait_us(Micros(absl::Now() - wait));
  if (host.dtype() != DType::kF32 || host.shape() != Shape{tokens, config_.hidden_size}) {
    return absl::DataLossError(absl::StrCat("hidden states from the previous stage are ",
                                            host.DebugString(), ", expected f32 [", tokens, ", ",
                                            config_.hidden_size, "]"));
  }
  ASSIGN_OR_RETURN(hidden, backend_->Upload(host));
  return absl::OkStatus();
}

absl::Status StageEngine::SendHidden(dataplane::LinkKey key, const Tensor& hidden,
                                     v1::StepTimings& timings) {
  const absl::Time send = absl::Now();
  if (nccl_pipeline_) {
    RETURN_IF_ERROR(nccl_->Send(next_world_rank_, key, hidden));
  } else {
    ASSIGN_OR_RETURN(Tensor host, backend_->Download(hidden));
    RETURN_IF_ERROR(link_->Send(key, host));
  }
  timings.set_send_us(Micros(absl::Now() - send));
  return absl::OkStatus();
}

}  // namespace strata::worker

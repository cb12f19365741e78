// NcclWorld over NCCL's nonblocking communicators (nccl.h). Built only with CUDA and NCCL.
#include "worker/dataplane/nccl.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <array>
#include <cstring>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "worker/dataplane/nccl_wait.h"

namespace strata::dataplane {
namespace {

static_assert(sizeof(ncclUniqueId) == kNcclUniqueIdBytes);

// The header sent before every pipeline tensor: magic, step, micro-batch, dtype, ndim, 6 dims,
// element count.
constexpr int kHeaderWords = 12;
constexpr int kMaxDims = 6;
constexpr int64_t kHeaderMagic = 0x314C43434E525453;  // "STRNCCL1"
using Header = std::array<int64_t, kHeaderWords>;

std::string NcclError(ncclResult_t r, ncclComm_t comm) {
  std::string s = ncclGetErrorString(r);
  if (comm != nullptr) {
    const char* last = ncclGetLastError(comm);
    if (last != nullptr && *last != '\0') absl::StrAppend(&s, " (", last, ")");
  }
  return s;
}

absl::StatusOr<ncclDataType_t> NcclType(DType d) {
  switch (d) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kBF16:
      return ncclBfloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("nccl: ", DTypeName(d), " tensors are not reduced or sent (f32, bf16)"));
  }
}

Header MakeHeader(LinkKey key, const Tensor& x) {
  Header h{};
  h[0] = kHeaderMagic;
  h[1] = static_cast<int64_t>(key.step_id);
  h[2] = key.micro_batch_id;
  h[3] = static_cast<int64_t>(x.dtype());
  h[4] = x.ndim();
  for (int i = 0; i < x.ndim() && i < kMaxDims; ++i) h[5 + i] = x.shape()[i];
  h[11] = x.numel();
  return h;
}

class NcclWorldImpl;

class NcclGroupCollective : public model::Collective {
 public:
  NcclGroupCollective(NcclWorldImpl* world, int device) : world_(world), device_(device) {}
  void Set(int rank, int size) {
    rank_ = rank;
    size_ = size;
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool Accepts(const Device& d) const override { return d.is_cuda() && d.index == device_; }
  absl::Status AllReduceSum(Tensor& x) override;

 private:
  NcclWorldImpl* world_;
  int device_;
  int rank_ = 0;
  int size_ = 1;
};

class NcclWorldImpl : public NcclWorld {
 public:
  explicit NcclWorldImpl(const NcclWorldOptions& o)
      : options_(o), stream_(static_cast<cudaStream_t>(o.stream)), collective_(this, o.device) {}

  ~NcclWorldImpl() override {
    cudaSetDevice(options_.device);
    // Abort rather than destroy: ncclCommDestroy may wait for peers, which may be gone.
    AbortComms();
    if (event_ != nullptr) cudaEventDestroy(event_);
    if (device_header_ != nullptr) cudaFree(device_header_);
    if (host_header_ != nullptr) cudaFreeHost(host_header_);
  }

  absl::Status Init() {
    const NcclWorldOptions& o = options_;
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    CUDA_RETURN_IF_ERROR(cudaMalloc(&device_header_, 2 * sizeof(Header)));
    CUDA_RETURN_IF_ERROR(cudaMallocHost(&host_header_, 2 * sizeof(Header)));
    ncclUniqueId id;
    std::memcpy(&id, o.unique_id.data(), sizeof(id));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const std::string joining =
        absl::StrCat("join of world rank ", o.world_rank, " of ", o.world_size);
    RETURN_IF_ERROR(Started(
        ncclCommInitRankConfig(&world_, o.world_size, id, o.world_rank, &config), world_, joining));
    RETURN_IF_ERROR(Wait(joining, {world_}, /*stream_work=*/false));
    ncclConfig_t split_config = NCCL_CONFIG_INITIALIZER;
    split_config.blocking = 0;
    const std::string splitting =
        absl::StrCat("split of tensor-parallel group ", o.group, " (rank ", o.group_rank, ")");
    RETURN_IF_ERROR(Started(ncclCommSplit(world_, o.group, o.group_rank, &group_, &split_config),
                            world_, splitting));
    RETURN_IF_ERROR(Wait(splitting, {world_, group_}, /*stream_work=*/false));
    int rank = 0, size = 0;
    if (group_ == nullptr || ncclCommUserRank(group_, &rank) != ncclSuccess ||
        ncclCommCount(group_, &size) != ncclSuccess) {
      AbortComms();
      return absl::InternalError(absl::StrCat("nccl ", splitting, ": no usable communicator"));
    }
    collective_.Set(rank, size);
    return absl::OkStatus();
  }

  int world_rank() const override { return options_.world_rank; }
  int world_size() const override { return options_.world_size; }
  model::Collective& group() override { return collective_; }

  absl::Status AllReduce(Tensor& x) {
    RETURN_IF_ERROR(Usable());
    ASSIGN_OR_RETURN(const ncclDataType_t type, NcclType(x.dtype()));
    RETURN_IF_ERROR(CheckOnDevice(x, "all-reduce"));
    if (x.numel() == 0) return absl::OkStatus();
    CUDA_RETURN_IF_ERROR(cudaSetDevice(options_.device));
    const std::string what =
        absl::StrCat("all-reduce of ", x.DebugString(), " in group ", options_.group,
                     " (world rank ", options_.world_rank, ")");
    RETURN_IF_ERROR(Started(ncclAllReduce(x.data(), x.data(), static_cast<size_t>(x.numel()), type,
                                          ncclSum, group_, stream_),
                            group_, what));
    return Wait(what, {group_}, /*stream_work=*/true);
  }

  absl::Status Send(int peer, LinkKey key, const Tensor& x) override {
    RETURN_IF_ERROR(Usable());
    ASSIGN_OR_RETURN(const ncclDataType_t type, NcclType(x.dtype()));
    RETURN_IF_ERROR(CheckPeer(peer));
    RETURN_IF_ERROR(CheckOnDevice(x, "send"));
    CUDA_RETURN_IF_ERROR(cudaSetDevice(options_.device));
    const Header h = MakeHeader(key, x);
    std::memcpy(host_header_, h.data(), sizeof(Header));
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device_header_, host_header_, sizeof(Header),
                                         cudaMemcpyHostToDevice, stream_));
    const std::string what = absl::StrCat("send of step ", key.step_id, " micro-batch ",
                                          key.micro_batch_id, " to world rank ", peer);
    ncclGroupStart();
    ncclResult_t r = ncclSend(device_header_, kHeaderWords, ncclInt64, peer, world_, stream_);
    if (r == ncclSuccess && x.numel() > 0) {
      r = ncclSend(x.data(), static_cast<size_t>(x.numel()), type, peer, world_, stream_);
    }
    const ncclResult_t end = ncclGroupEnd();
    RETURN_IF_ERROR(Started(r != ncclSuccess ? r : end, world_, what));
    return Wait(what, {world_}, /*stream_work=*/true);
  }

  absl::Status Recv(int peer, LinkKey key, Tensor& x) override {
    RETURN_IF_ERROR(Usable());
    ASSIGN_OR_RETURN(const ncclDataType_t type, NcclType(x.dtype()));
    RETURN_IF_ERROR(CheckPeer(peer));
    RETURN_IF_ERROR(CheckOnDevice(x, "receive"));
    CUDA_RETURN_IF_ERROR(cudaSetDevice(options_.device));
    int64_t* header = device_header_ + kHeaderWords;
    int64_t* host = host_header_ + kHeaderWords;
    const std::string what = absl::StrCat("receive of step ", key.step_id, " micro-batch ",
                                          key.micro_batch_id, " from world rank ", peer);
    ncclGroupStart();
    ncclResult_t r = ncclRecv(header, kHeaderWords, ncclInt64, peer, world_, stream_);
    if (r == ncclSuccess && x.numel() > 0) {
      r = ncclRecv(x.data(), static_cast<size_t>(x.numel()), type, peer, world_, stream_);
    }
    const ncclResult_t end = ncclGroupEnd();
    RETURN_IF_ERROR(Started(r != ncclSuccess ? r : end, world_, what));
    // The header comes back to the host behind the receive, once NCCL has enqueued it.
    RETURN_IF_ERROR(Wait(what, {world_}, /*stream_work=*/true, [&] {
      return cudaMemcpyAsync(host, header, sizeof(Header), cudaMemcpyDeviceToHost, stream_);
    }));
    const Header want = MakeHeader(key, x);
    if (std::memcmp(host, want.data(), sizeof(Header)) != 0) {
      return absl::DataLossError(absl::StrCat(
          "nccl ", what, ": the sender's header [", absl::StrJoin(host, host + kHeaderWords, ","),
          "] is not the expected [", absl::StrJoin(want, ","), "] (magic, step, micro-batch, ",
          "dtype, ndim, dims, numel)"));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Usable() const {
    if (broken_) {
      return absl::FailedPreconditionError(
          "nccl communicators were aborted after an earlier failure; load the shard again");
    }
    return absl::OkStatus();
  }

  absl::Status CheckPeer(int peer) const {
    if (peer < 0 || peer >= options_.world_size || peer == options_.world_rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("nccl peer ", peer, " is not another rank of ", options_.world_size));
    }
    return absl::OkStatus();
  }

  absl::Status CheckOnDevice(const Tensor& x, absl::string_view what) const {
    if (!x.device().is_cuda() || x.device().index != options_.device || !x.is_contiguous() ||
        x.ndim() > kMaxDims) {
      return absl::InvalidArgumentError(absl::StrCat(
          "nccl ", what, " needs a contiguous tensor ",
          "of at most 6 dimensions on cuda:", options_.device, ", got ", x.DebugString()));
    }
    return absl::OkStatus();
  }

  // The result of starting an NCCL call on a nonblocking communicator: success or in progress go
  // on to Wait; anything else aborts.
  absl::Status Started(ncclResult_t r, ncclComm_t comm, absl::string_view what) {
    if (r == ncclSuccess || r == ncclInProgress) return absl::OkStatus();
    const std::string error = NcclError(r, comm);
    AbortComms();
    return absl::UnavailableError(absl::StrCat("nccl ", what, ": ", error));
  }

  // Waits until every communicator in `comms` has finished its asynchronous work (joining,
  // splitting, or enqueuing an operation) and then, with `stream_work`, until the stream reached
  // an event recorded behind the operation. `after_enqueue` runs once, before that event.
  absl::Status Wait(absl::string_view what, std::vector<ncclComm_t> comms, bool stream_work,
                    std::function<cudaError_t()> after_enqueue = nullptr) {
    bool recorded = false;
    NcclWaitHooks hooks;
    hooks.poll = [&](std::string* error) {
      bool pending = false;
      for (ncclComm_t c : comms) {
        if (c == nullptr) continue;
        ncclResult_t state = ncclSuccess;
        const ncclResult_t r = ncclCommGetAsyncError(c, &state);
        if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
          *error = NcclError(r != ncclSuccess ? r : state, c);
          return PollResult::kFailed;
        }
        pending |= state == ncclInProgress;
      }
      if (pending) return PollResult::kPending;
      if (!stream_work) return PollResult::kDone;
      if (!recorded) {
        cudaError_t e = after_enqueue ? after_enqueue() : cudaSuccess;
        if (e == cudaSuccess) e = cudaEventRecord(event_, stream_);
        if (e != cudaSuccess) {
          *error = cudaGetErrorString(e);
          return PollResult::kFailed;
        }
        recorded = true;
      }
      const cudaError_t e = cudaEventQuery(event_);
      if (e == cudaSuccess) return PollResult::kDone;
      if (e == cudaErrorNotReady) return PollResult::kPending;
      *error = cudaGetErrorString(e);
      return PollResult::kFailed;
    };
    hooks.abort = [this] { AbortComms(); };
    return WaitOrAbort(what, absl::Now() + options_.timeout, hooks);
  }

  void AbortComms() {
    if (group_ == nullptr && world_ == nullptr) return;
    broken_ = true;
    if (group_ != nullptr) ncclCommAbort(group_);
    if (world_ != nullptr) ncclCommAbort(world_);
    group_ = nullptr;
    world_ = nullptr;
  }

  NcclWorldOptions options_;
  cudaStream_t stream_;
  NcclGroupCollective collective_;
  ncclComm_t world_ = nullptr;
  ncclComm_t group_ = nullptr;
  bool broken_ = false;
  cudaEvent_t event_ = nullptr;
  int64_t* device_header_ = nullptr;  // [2][kHeaderWords]: send, receive
  int64_t* host_header_ = nullptr;    // pinned, the same
};

absl::Status NcclGroupCollective::AllReduceSum(Tensor& x) { return world_->AllReduce(x); }

}  // namespace

bool NcclAvailable() { return true; }

absl::StatusOr<std::string> NewNcclUniqueId() {
  ncclUniqueId id;
  if (const ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) {
    return absl::UnavailableError(absl::StrCat("ncclGetUniqueId: ", NcclError(r, nullptr)));
  }
  return std::string(reinterpret_cast<const char*>(&id), sizeof(id));
}

absl::StatusOr<std::unique_ptr<NcclWorld>> CreateNcclWorld(const NcclWorldOptions& o) {
  if (o.unique_id.size() != kNcclUniqueIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("nccl unique id of ", o.unique_id.size(),
                                                   " bytes, expected ", kNcclUniqueIdBytes));
  }
  if (o.world_size < 1 || o.world_rank < 0 || o.world_rank >= o.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("nccl world rank ", o.world_rank, " of ",
                                                   o.world_size, " is not in [0, size)"));
  }
  if (o.group < 0 || o.group_rank < 0) {
    return absl::InvalidArgumentError("nccl group and group rank must be >= 0");
  }
  if (o.stream == nullptr) return absl::InvalidArgumentError("nccl needs the backend's stream");
  if (o.timeout <= absl::ZeroDuration()) return absl::InvalidArgumentError("nccl timeout <= 0");
  CUDA_RETURN_IF_ERROR(cudaSetDevice(o.device));
  auto world = std::make_unique<NcclWorldImpl>(o);
  RETURN_IF_ERROR(world->Init());
  return world;
}

}  // namespace strata::dataplane

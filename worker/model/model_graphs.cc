// Decode steps as graphs (issue 7). A decode step (one row per sequence, at most kMaxGraphTokens
// rows) is padded to a bucket whose launch shapes are fixed:
//   rows        → the next power of two (1, 2, 4, …, 128),
//   num_seqs    → the next power of two (the block table's rows),
//   max_row_len → the next power of two ≥ 64 (the indexer logits' width and top-k plan),
//   max_blocks  → the next power of two, at least max_row_len / 64 (the block table's width).
// Each bucket owns device buffers at fixed addresses for the step's index vectors and for the
// hidden states; a step copies its vectors into them (outside the graph) and replays. Padding
// rows are harmless: token 0 at position 0 of sequence 0 with no cache slot (nothing written)
// and an empty causal prefix (row_len 0: no indexer columns, no top-k slots, zero attention).
// Their hidden states are never read.
//
// A bucket's first step runs eagerly through its buffers (priming the GEMM plans, the MoE
// pointer tables and the scratch sizes), then the same work is captured; later steps replay.
// A capture that fails (an operation that uploads, synchronises or reads back inside) marks the
// bucket ineligible, logged once; its steps run eagerly. Graphs hold the KV cache's addresses:
// a step on another cache drops them all.
#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "worker/model/model.h"

namespace strata::model {
namespace {

int64_t NextPow2(int64_t v) {
  return static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(v)));
}

}  // namespace

struct Model::GraphBucket {
  GraphKey key;
  // Fixed device buffers (the graph's inputs): key.tokens rows, key.num_seqs sequences.
  Tensor ids;           // [T] i32 (first stage)
  Tensor positions;     // [T] i64
  Tensor token_seq;     // [T] i32
  Tensor block_tables;  // [S, B] i32
  Tensor slot_mapping;  // [T] i32
  Tensor row_lens;      // [T] i32
  Tensor seq_lens;      // [S] i32
  Tensor h;             // [T, H] f32: the stage's input (later stages) and its output
  std::unique_ptr<StepGraph> graph;
  bool warmed = false;
  bool ineligible = false;
};

// Here, where GraphBucket is complete.
Model::Model(const ModelConfig& config, Backend& backend, ModelOptions options)
    : config_(config), backend_(backend), options_(std::move(options)) {}
Model::~Model() = default;

absl::Status Model::RunBucket(GraphBucket& b, KvCache& cache) {
  Step step;
  step.tokens = b.key.tokens;
  step.view = {.block_tables = &b.block_tables,
               .token_seq = &b.token_seq,
               .positions = &b.positions,
               .slot_mapping = &b.slot_mapping,
               .row_lens = &b.row_lens,
               .seq_lens = &b.seq_lens,
               .max_row_len = b.key.max_row_len};
  if (is_first_stage()) RETURN_IF_ERROR(backend_.Embedding(b.ids, weights_.embed_tokens, b.h));
  return RunLayers(step, cache, b.h);
}

absl::StatusOr<std::optional<Tensor>> Model::ForwardGraph(const StepInput& in,
                                                          const std::vector<int32_t>& slots,
                                                          KvCache& cache) {
  const int64_t t = static_cast<int64_t>(in.positions.size());
  // No stream: a backend without graphs. Tensor parallelism: the collectives wait on the host
  // (NCCL's group calls, Gloo's host round trip), so TP steps stay eager for now.
  if (backend_.stream() == nullptr || options_.load.tp.size > 1 || t > kMaxGraphTokens) {
    return std::nullopt;
  }
  // One row per sequence (a decode step); prefill chunks and mixed steps run eagerly.
  std::vector<bool> seen(in.num_seqs, false);
  int64_t max_row_len = 0;
  for (int64_t i = 0; i < t; ++i) {
    if (seen[in.token_seq[i]]) return std::nullopt;
    seen[in.token_seq[i]] = true;
    max_row_len = std::max<int64_t>(max_row_len, in.positions[i] + 1);
  }
  GraphKey key{.tokens = NextPow2(t),
               .num_seqs = NextPow2(in.num_seqs),
               .max_row_len = NextPow2(std::max<int64_t>(max_row_len, kvcache::kBlockTokens))};
  key.max_blocks = std::max(NextPow2(in.max_blocks), key.max_row_len / kvcache::kBlockTokens);
  const int64_t hidden = config_.hidden_size;

  // Validate what the eager path validates after the slot mapping.
  if (is_first_stage()) {
    if (static_cast<int64_t>(in.token_ids.size()) != t) {
      return absl::InvalidArgumentError("step: token_ids and positions differ in length");
    }
    for (size_t i = 0; i < in.token_ids.size(); ++i) {
      if (in.token_ids[i] < 0 || in.token_ids[i] >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("step: token ", i, " has id ",
                                                       in.token_ids[i], " outside [0, ",
                                                       config_.vocab_size, ")"));
      }
    }
  } else if (!in.hidden.defined() || in.hidden.shape() != Shape{t, hidden}) {
    return absl::InvalidArgumentError("step: hidden states are not [T, hidden_size]");
  }
  for (int32_t r : in.logit_rows) {
    if (r < 0 || r >= t) return absl::InvalidArgumentError("step: logit row out of range");
  }

  const void* cache_id = cache.num_layers() > 0 ? cache.layer(0).latent.data() : nullptr;
  if (cache_id != graph_cache_) {
    graphs_.clear();  // captured on another cache's addresses
    graph_cache_ = cache_id;
  }
  std::unique_ptr<GraphBucket>& slot = graphs_[key];
  if (slot == nullptr) {
    auto b = std::make_unique<GraphBucket>();
    b->key = key;
    const int64_t bt = key.tokens, bs = key.num_seqs;
    ASSIGN_OR_RETURN(b->ids, backend_.NewTensor(DType::kI32, {bt}));
    ASSIGN_OR_RETURN(b->positions, backend_.NewTensor(DType::kI64, {bt}));
    ASSIGN_OR_RETURN(b->token_seq, backend_.NewTensor(DType::kI32, {bt}));
    ASSIGN_OR_RETURN(b->block_tables, backend_.NewTensor(DType::kI32, {bs, key.max_blocks}));
    ASSIGN_OR_RETURN(b->slot_mapping, backend_.NewTensor(DType::kI32, {bt}));
    ASSIGN_OR_RETURN(b->row_lens, backend_.NewTensor(DType::kI32, {bt}));
    ASSIGN_OR_RETURN(b->seq_lens, backend_.NewTensor(DType::kI32, {bs}));
    // Zeros, so that the padding rows of a later stage's input are finite.
    ASSIGN_OR_RETURN(b->h, backend_.Upload(Tensor::Zeros(DType::kF32, {bt, hidden})));
    slot = std::move(b);
  }
  GraphBucket& b = *slot;
  if (b.ineligible) return std::nullopt;

  // The step's vectors, padded, into the bucket's buffers (uploads through pinned slots, then
  // device copies: nothing here waits for the stream).
  const int64_t bt = key.tokens, bs = key.num_seqs, bb = key.max_blocks;
  std::vector<int32_t> ids(bt, 0), token_seq(bt, 0), slot_mapping(bt, -1), row_lens(bt, 0);
  std::vector<int64_t> positions(bt, 0);
  std::vector<int32_t> seq_lens(bs, 0), tables(bs * bb, -1);
  for (int64_t i = 0; i < t; ++i) {
    if (is_first_stage()) ids[i] = in.token_ids[i];
    positions[i] = in.positions[i];
    token_seq[i] = in.token_seq[i];
    slot_mapping[i] = slots[i];
    row_lens[i] = static_cast<int32_t>(in.positions[i] + 1);
    seq_lens[token_seq[i]] = std::max(seq_lens[token_seq[i]], row_lens[i]);
  }
  for (int s = 0; s < in.num_seqs; ++s) {
    std::memcpy(&tables[s * bb], &in.block_tables[static_cast<size_t>(s) * in.max_blocks],
                in.max_blocks * sizeof(int32_t));
  }
  const auto put = [this](auto& v, DType dtype, Tensor& dst) -> absl::Status {
    ASSIGN_OR_RETURN(Tensor up, backend_.Upload(Tensor::Borrow(v.data(), dtype, dst.shape())));
    return backend_.Copy(up, dst);
  };
  if (is_first_stage()) RETURN_IF_ERROR(put(ids, DType::kI32, b.ids));
  RETURN_IF_ERROR(put(positions, DType::kI64, b.positions));
  RETURN_IF_ERROR(put(token_seq, DType::kI32, b.token_seq));
  RETURN_IF_ERROR(put(tables, DType::kI32, b.block_tables));
  RETURN_IF_ERROR(put(slot_mapping, DType::kI32, b.slot_mapping));
  RETURN_IF_ERROR(put(row_lens, DType::kI32, b.row_lens));
  RETURN_IF_ERROR(put(seq_lens, DType::kI32, b.seq_lens));
  ASSIGN_OR_RETURN(Tensor h_rows, b.h.Slice(0, 0, t));
  if (!is_first_stage()) RETURN_IF_ERROR(backend_.Copy(in.hidden, h_rows));

  if (b.graph != nullptr) {
    RETURN_IF_ERROR(b.graph->Replay());
    ++graph_stats_.replays;
  } else {
    // The first step of the bucket: eagerly through the buffers, then capture the same work.
    RETURN_IF_ERROR(RunBucket(b, cache));
    ++graph_stats_.warmup_steps;
    // The capture must not see this step's h as its input on a later stage: it reads b.h as
    // it is at replay, which the next step refills. Snapshot the output first.
    Tensor out;
    if (!is_last_stage()) {
      ASSIGN_OR_RETURN(out, backend_.NewTensor(DType::kF32, {t, hidden}));
      RETURN_IF_ERROR(backend_.Copy(h_rows, out));
    } else {
      ASSIGN_OR_RETURN(out, Head(h_rows, in.logit_rows));
    }
    absl::Status captured = backend_.BeginCapture();
    if (captured.ok()) {
      const absl::Status run = RunBucket(b, cache);
      absl::StatusOr<std::unique_ptr<StepGraph>> graph = backend_.EndCapture();
      captured = !run.ok() ? run : graph.status();
      if (captured.ok()) b.graph = *std::move(graph);
    }
    if (captured.ok()) {
      ++graph_stats_.captures;
    } else {
      b.ineligible = true;
      ++graph_stats_.failed_captures;
      if (!graph_failure_logged_) {
        graph_failure_logged_ = true;
        LOG(WARNING) << "decode graph capture failed for " << key.tokens << " rows, "
                     << key.num_seqs << " sequences, " << key.max_blocks << " blocks, row length "
                     << key.max_row_len << "; such steps run eagerly: " << captured;
      }
    }
    return std::optional<Tensor>(std::move(out));
  }
  if (!is_last_stage()) {
    // A copy: the next step refills the bucket's buffer.
    ASSIGN_OR_RETURN(Tensor out, backend_.NewTensor(DType::kF32, {t, hidden}));
    RETURN_IF_ERROR(backend_.Copy(h_rows, out));
    return std::optional<Tensor>(std::move(out));
  }
  ASSIGN_OR_RETURN(Tensor logits, Head(h_rows, in.logit_rows));
  return std::optional<Tensor>(std::move(logits));
}

}  // namespace strata::model

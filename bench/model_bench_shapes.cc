#include "bench/model_bench_shapes.h"

#include <algorithm>
#include <cmath>

#include "nlohmann/json.hpp"

namespace strata::bench {

LayerWork& LayerWork::operator+=(const LayerWork& o) {
  weight_bytes += o.weight_bytes;
  cache_bytes += o.cache_bytes;
  write_bytes += o.write_bytes;
  flops += o.flops;
  return *this;
}

absl::StatusOr<ModelConfig> BenchModelConfig(const BenchModelOptions& o) {
  nlohmann::json j = {
      {"model_type", "glm_moe_dsa"},
      {"vocab_size", 154880},  // unused: the bench runs a middle stage (no embedding, no head)
      {"hidden_size", 6144},
      {"intermediate_size", 12288},  // unused: every layer is MoE
      {"moe_intermediate_size", 2048},
      {"num_hidden_layers", o.layers},
      {"num_attention_heads", 64},
      {"num_key_value_heads", 64},
      {"q_lora_rank", 2048},
      {"kv_lora_rank", 512},
      {"qk_nope_head_dim", 192},
      {"qk_rope_head_dim", 64},
      {"v_head_dim", 256},
      {"index_n_heads", 32},
      {"index_head_dim", 128},
      {"index_topk", 2048},
      {"n_routed_experts", 256},
      {"n_shared_experts", 1},
      {"num_experts_per_tok", 8},
      {"n_group", 1},
      {"topk_group", 1},
      {"first_k_dense_replace", 0},
      {"max_position_embeddings", 202752},
      {"rms_norm_eps", 1e-5},
      {"routed_scaling_factor", 2.5},
      {"norm_topk_prob", true},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
      {"tie_word_embeddings", false},
  };
  if (o.tiny) {
    j.update({{"vocab_size", 512},
              {"hidden_size", 128},
              {"intermediate_size", 256},
              {"moe_intermediate_size", 64},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 4},
              {"q_lora_rank", 64},
              {"kv_lora_rank", 128},  // fp8 latent caches need a multiple of 128
              {"qk_nope_head_dim", 32},
              {"qk_rope_head_dim", 16},
              {"v_head_dim", 32},
              {"index_n_heads", 4},
              {"index_head_dim", 32},
              {"index_topk", 64},
              {"n_routed_experts", 16},
              {"num_experts_per_tok", 4},
              {"max_position_embeddings", 65536}});
  }
  nlohmann::json indexer = nlohmann::json::array(), mlp = nlohmann::json::array();
  for (int i = 0; i < o.layers; ++i) {
    indexer.push_back(o.indexshare && i % 2 == 1 ? "shared" : "full");
    mlp.push_back("sparse");
  }
  j["indexer_types"] = indexer;
  j["mlp_layer_types"] = mlp;
  return ParseModelConfig(j.dump());
}

namespace {

struct Params {  // element counts of one layer's matrices, by part
  double attention = 0, indexer = 0, router = 0, expert = 0, shared = 0;
  double attention_norms = 0, indexer_norms = 0, router_bias = 0;
};

Params CountParams(const ModelConfig& c) {
  const double h = c.hidden_size, nh = c.num_attention_heads, ql = c.q_lora_rank,
               p = c.qk_nope_head_dim, r = c.qk_rope_head_dim, v = c.v_head_dim, l = c.kv_lora_rank,
               ih = c.index_n_heads, id = c.index_head_dim, e = c.n_routed_experts,
               inter = c.moe_intermediate_size;
  Params n;
  n.attention = ql * h + nh * (p + r) * ql + (l + r) * h + nh * (p + v) * l + h * nh * v;
  n.attention_norms = 2 * h + ql + l;
  n.indexer = ih * id * ql + id * h + ih * h;
  n.indexer_norms = 2 * id;
  n.router = e * h;
  n.router_bias = e;
  n.expert = 3 * inter * h;
  n.shared = 3 * inter * c.n_shared_experts * h;
  return n;
}

// The weights a step reads: everything but the routed experts it does not touch.
double StepWeightBytes(const ModelConfig& c, const LayerShape& s, double distinct_experts) {
  const Params n = CountParams(c);
  const double wb = static_cast<double>(DTypeSize(s.weight_dtype));
  double bytes = wb * (n.attention + distinct_experts * n.expert + n.shared) +
                 4 * (n.attention_norms + n.router + n.router_bias);
  if (s.has_indexer) bytes += wb * n.indexer + 4 * n.indexer_norms;
  return bytes;
}

double LatentRow(const LayerShape& s) {
  return static_cast<double>(kvcache::LatentRowBytes(s.cache.latent_dtype, s.cache.kv_lora_rank,
                                                     s.cache.qk_rope_head_dim));
}

double IndexerRow(const LayerShape& s) {
  if (!s.has_indexer) return 0;
  return static_cast<double>(
             kvcache::IndexerBlockBytes(s.cache.indexer_dtype, s.cache.index_head_dim)) /
         kvcache::kBlockTokens;
}

// Matrix flops per token that do not depend on the context: every projection, the router, the
// shared expert and top_k routed experts (the absorbed W_UK / W_UV products are kv_b_proj's).
double DenseFlopsPerToken(const ModelConfig& c, const LayerShape& s) {
  const Params n = CountParams(c);
  double params = n.attention + n.router + n.shared + c.num_experts_per_tok * n.expert;
  if (s.has_indexer) params += n.indexer;
  return 2 * params;
}

// Attention flops of one token at position pos: sparse MLA over min(pos + 1, top-k) rows
// (q·k over L + R, p·v over L, per head), and the indexer over pos + 1 keys.
double AttentionFlops(const ModelConfig& c, const LayerShape& s, double pos) {
  const double rows = std::min(pos + 1, static_cast<double>(c.index_topk));
  double f = 2.0 * c.num_attention_heads * rows * (2 * c.kv_lora_rank + c.qk_rope_head_dim);
  if (s.has_indexer) f += 2.0 * c.index_n_heads * c.index_head_dim * (pos + 1);
  return f;
}

}  // namespace

double LayerWeightBytes(const ModelConfig& c, const LayerShape& shape) {
  return StepWeightBytes(c, shape, c.n_routed_experts);
}

double ExpectedDistinctExperts(const ModelConfig& c, int64_t tokens) {
  const double n = c.n_routed_experts, k = c.num_experts_per_tok;
  return n * (1 - std::pow(1 - k / n, static_cast<double>(tokens)));
}

LayerWork DecodeLayerWork(const ModelConfig& c, const LayerShape& s, int64_t batch, int64_t context,
                          double distinct_experts) {
  const double b = static_cast<double>(batch), rows = static_cast<double>(context + 1);
  LayerWork w;
  w.weight_bytes = StepWeightBytes(c, s, distinct_experts);
  w.cache_bytes =
      b * (std::min(rows, static_cast<double>(c.index_topk)) * LatentRow(s) + rows * IndexerRow(s));
  w.write_bytes = b * (LatentRow(s) + IndexerRow(s) + 2.0 * 4 * c.hidden_size);
  w.flops = b * (DenseFlopsPerToken(c, s) + AttentionFlops(c, s, static_cast<double>(context)));
  return w;
}

LayerWork PrefillLayerWork(const ModelConfig& c, const LayerShape& s, int64_t begin, int64_t tokens,
                           double distinct_experts) {
  const double t = static_cast<double>(tokens), end = static_cast<double>(begin + tokens);
  LayerWork w;
  w.weight_bytes = StepWeightBytes(c, s, distinct_experts);
  w.cache_bytes = end * (LatentRow(s) + IndexerRow(s));  // the sequence's rows, once each
  w.write_bytes = t * (LatentRow(s) + IndexerRow(s) + 2.0 * 4 * c.hidden_size);
  w.flops = t * DenseFlopsPerToken(c, s);
  for (int64_t pos = begin; pos < begin + tokens; ++pos) {
    w.flops += AttentionFlops(c, s, static_cast<double>(pos));
  }
  return w;
}

}  // namespace strata::bench

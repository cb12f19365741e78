// A small model with the attention shapes of the real ones (kv_lora_rank 512, rope 64, an indexer
// of 32 heads × 128: the CUDA backend's tuned kernels) and random weights, for the GPU tests.
#ifndef STRATA_TESTS_WORKER_RANDOM_MODEL_H_
#define STRATA_TESTS_WORKER_RANDOM_MODEL_H_

#include <cmath>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/model_config.h"
#include "common/safetensors.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/test_files.h"
#include "tests/worker/oracle_fixture.h"

namespace strata::testing_util {

// The glm oracle config with real attention widths (2 dense layers, full + shared indexer).
inline nlohmann::json TunedConfig() {
  std::ifstream in(SourceDir() + "/tests/fixtures/oracle/glm/config.json");
  nlohmann::json c = nlohmann::json::parse(in);
  c["num_hidden_layers"] = 2;
  c["indexer_types"] = {"full", "shared"};
  c["mlp_layer_types"] = {"dense", "dense"};
  c["first_k_dense_replace"] = 2;
  c["layer_types"] = {"deepseek_sparse_attention", "deepseek_sparse_attention"};
  c["kv_lora_rank"] = 512;
  c["qk_rope_head_dim"] = 64;
  c["head_dim"] = 64;
  c["qk_nope_head_dim"] = 64;
  c["qk_head_dim"] = 128;
  c["v_head_dim"] = 64;
  c["num_attention_heads"] = 16;
  c["num_key_value_heads"] = 16;
  c["index_n_heads"] = 32;
  c["index_head_dim"] = 128;
  c["index_topk"] = 96;
  c["n_routed_experts"] = 4;
  c["n_group"] = 1;
  return c;
}

// Random weights with unit-variance activations: matrices N(0, 1/fan_in), norm weights near 1.
inline void WriteRandomCheckpoint(const ModelConfig& c, const std::string& dir) {
  std::mt19937 rng(2024);
  std::vector<std::pair<std::string, Tensor>> tensors;
  auto add = [&](const std::string& name, Shape shape, float stddev, float mean = 0.0f) {
    Tensor t = Tensor::Zeros(DType::kF32, shape);
    std::normal_distribution<float> n(mean, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(rng);
    tensors.emplace_back(name, t);
  };
  auto matrix = [&](const std::string& name, int64_t out, int64_t in) {
    add(name, {out, in}, 1.0f / std::sqrt(static_cast<float>(in)));
  };
  auto norm = [&](const std::string& name, int64_t n) { add(name, {n}, 0.1f, 1.0f); };
  const int64_t h = c.hidden_size, nh = c.num_attention_heads, p = c.qk_nope_head_dim,
                r = c.qk_rope_head_dim, v = c.v_head_dim, l = c.kv_lora_rank, ql = c.q_lora_rank,
                ih = c.index_n_heads, id = c.index_head_dim;
  add("model.embed_tokens.weight", {c.vocab_size, h}, 1.0f);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string pre = "model.layers." + std::to_string(i) + ".", at = pre + "self_attn.";
    norm(pre + "input_layernorm.weight", h);
    norm(pre + "post_attention_layernorm.weight", h);
    matrix(at + "q_a_proj.weight", ql, h);
    norm(at + "q_a_layernorm.weight", ql);
    matrix(at + "q_b_proj.weight", nh * (p + r), ql);
    matrix(at + "kv_a_proj_with_mqa.weight", l + r, h);
    norm(at + "kv_a_layernorm.weight", l);
    matrix(at + "kv_b_proj.weight", nh * (p + v), l);
    matrix(at + "o_proj.weight", h, nh * v);
    if (c.indexer_types[i] == IndexerType::kFull) {
      matrix(at + "indexer.wq_b.weight", ih * id, ql);
      matrix(at + "indexer.wk.weight", id, h);
      norm(at + "indexer.k_norm.weight", id);
      add(at + "indexer.k_norm.bias", {id}, 0.1f);
      matrix(at + "indexer.weights_proj.weight", ih, h);
    }
    const std::string mlp = pre + "mlp.";
    auto ffn = [&](const std::string& prefix, int64_t inter) {
      matrix(prefix + "gate_proj.weight", inter, h);
      matrix(prefix + "up_proj.weight", inter, h);
      matrix(prefix + "down_proj.weight", h, inter);
    };
    if (c.mlp_layer_types[i] == MlpType::kDense) {
      ffn(mlp, c.intermediate_size);
      continue;
    }
    matrix(mlp + "gate.weight", c.n_routed_experts, h);
    add(mlp + "gate.e_score_correction_bias", {c.n_routed_experts}, 0.1f);
    for (int e = 0; e < c.n_routed_experts; ++e) {
      ffn(mlp + "experts." + std::to_string(e) + ".", c.moe_intermediate_size);
    }
    ffn(mlp + "shared_experts.", int64_t{c.moe_intermediate_size} * c.n_shared_experts);
  }
  norm("model.norm.weight", h);
  matrix("lm_head.weight", c.vocab_size, h);
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors).ok());
}

}  // namespace strata::testing_util

#endif  // STRATA_TESTS_WORKER_RANDOM_MODEL_H_

// Each operation of the CUDA backend (kernels/cuda/model_ops.h behind it) against the CPU
// backend (kernels/cpu) on fresh random inputs, through the Backend interface both implement.
#include <algorithm>
#include <cmath>
#include <random>

#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu/moe_experts.h"
#include "worker/model/backend_factory.h"

namespace strata::model {
namespace {

// Both sides are fp32; only the summation order differs (block reductions, cuBLAS tiling).
constexpr float kOpTol = 2e-5f;

class CudaOpsTest : public testing::Test {
 protected:
  void SetUp() override {
    auto c = CreateBackend(Device::Cuda(0));
    ASSERT_TRUE(c.ok()) << c.status();
    cuda_ = *std::move(c);
    cpu_ = *CreateBackend(Device::Cpu());
  }

  Tensor Random(Shape shape, float scale = 1.0f) {
    Tensor t = Tensor::Zeros(DType::kF32, std::move(shape));
    std::normal_distribution<float> n(0.0f, scale);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(rng_);
    return t;
  }
  Tensor Up(const Tensor& host) {
    auto t = cuda_->Upload(host);
    EXPECT_TRUE(t.ok()) << t.status();
    return *t;
  }
  Tensor Down(const Tensor& dev) {
    auto t = cuda_->Download(dev);
    EXPECT_TRUE(t.ok()) << t.status();
    return *t;
  }
  // max |a - b| / max(1, max |b|) over two host tensors of one shape.
  static float RelDiff(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.shape(), b.shape());
    float d = 0, m = 1;
    for (int64_t i = 0; i < b.numel(); ++i) {
      d = std::max(d, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
      m = std::max(m, std::fabs(b.data<float>()[i]));
    }
    return d / m;
  }
  Tensor Clone(const Tensor& t) {
    Tensor c = Tensor::Zeros(t.dtype(), t.shape());
    EXPECT_TRUE(CopyCpu(t, c).ok());
    return c;
  }

  std::mt19937 rng_{1234};
  std::unique_ptr<Backend> cuda_, cpu_;
};

TEST_F(CudaOpsTest, NormsMatchCpu) {
  for (int64_t dim : {16, 96, 1000}) {
    const Tensor x = Random({7, dim}, 2.0f), w = Random({dim}), b = Random({dim});
    Tensor want = Tensor::Zeros(DType::kF32, {7, dim});
    ASSERT_TRUE(cpu_->RmsNorm(x, w, 1e-6f, want).ok());
    Tensor dx = Up(x), dw = Up(w), db = Up(b);
    ASSERT_TRUE(cuda_->RmsNorm(dx, dw, 1e-6f, dx).ok());  // in place, as the model does
    EXPECT_LE(RelDiff(Down(dx), want), kOpTol) << "rms_norm " << dim;
    ASSERT_TRUE(cpu_->LayerNorm(x, w, b, 1e-6f, want).ok());
    Tensor got = *cuda_->NewTensor(DType::kF32, {7, dim});
    dx = Up(x);
    ASSERT_TRUE(cuda_->LayerNorm(dx, dw, db, 1e-6f, got).ok());
    EXPECT_LE(RelDiff(Down(got), want), kOpTol) << "layer_norm " << dim;
  }
}

TEST_F(CudaOpsTest, RopeOnStridedSlicesMatchesCpu) {
  const int64_t t = 5, heads = 3, width = 24, r = 16;
  std::vector<int64_t> pos_v = {0, 3, 17, 200, 511};
  const Tensor pos = Tensor::Borrow(pos_v.data(), DType::kI64, {t});
  Tensor freq = Tensor::Zeros(DType::kF32, {r / 2});
  for (int64_t j = 0; j < r / 2; ++j) freq.data<float>()[j] = std::pow(1e4f, -2.0f * j / r);
  const Tensor dpos = Up(pos), dfreq = Up(freq);
  for (auto style : {kernels::RopeStyle::kInterleavedToHalfSplit, kernels::RopeStyle::kNeox,
                     kernels::RopeStyle::kInterleaved}) {
    const Tensor x = Random({t, heads, width});
    Tensor want = Clone(x);
    Tensor want_slice = *want.Slice(2, width - r, width);
    ASSERT_TRUE(cpu_->Rope(want_slice, pos, {&freq, 0.9f, style}).ok());
    Tensor dx = Up(x);
    Tensor slice = *dx.Slice(2, width - r, width);
    ASSERT_TRUE(cuda_->Rope(slice, dpos, {&dfreq, 0.9f, style}).ok());
    EXPECT_LE(RelDiff(Down(dx), want), kOpTol) << static_cast<int>(style);
  }
}

TEST_F(CudaOpsTest, ElementwiseOpsMatchCpu) {
  const Tensor g = Random({9, 70}), u = Random({9, 70});
  Tensor want = Tensor::Zeros(DType::kF32, {9, 70});
  ASSERT_TRUE(cpu_->SiluMul(g, u, want).ok());
  Tensor dg = Up(g), du = Up(u);
  ASSERT_TRUE(cuda_->SiluMul(dg, du, dg).ok());
  EXPECT_LE(RelDiff(Down(dg), want), kOpTol);

  Tensor x = Random({9, 70});
  const Tensor y = Random({9, 70});
  Tensor dx = Up(x);
  ASSERT_TRUE(cpu_->Add(x, y).ok());
  ASSERT_TRUE(cuda_->Add(dx, Up(y)).ok());
  EXPECT_LE(RelDiff(Down(dx), x), kOpTol);

  const std::vector<int32_t> rows = {8, 0, 3, 3};
  const Tensor want_rows = *cpu_->GatherRows(x, rows);
  EXPECT_EQ(RelDiff(Down(*cuda_->GatherRows(dx, rows)), want_rows), 0.0f);
  EXPECT_FALSE(cuda_->GatherRows(dx, {9}).ok());

  const Tensor table = Random({50, 12});
  std::vector<int32_t> ids_v = {4, 49, 0, 4};
  const Tensor ids = Tensor::Borrow(ids_v.data(), DType::kI32, {4});
  Tensor emb = Tensor::Zeros(DType::kF32, {4, 12});
  ASSERT_TRUE(cpu_->Embedding(ids, table, emb).ok());
  Tensor demb = *cuda_->NewTensor(DType::kF32, {4, 12});
  const Tensor dtable = Up(table);
  ASSERT_TRUE(cuda_->Embedding(Up(ids), dtable, demb).ok());
  EXPECT_EQ(RelDiff(Down(demb), emb), 0.0f);
  ids_v[1] = 50;
  EXPECT_EQ(cuda_->Embedding(Up(ids), dtable, demb).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaOpsTest, GemmsMatchCpu) {
  const Tensor x = Random({6, 40}), w = Random({33, 40});
  Tensor want = Tensor::Zeros(DType::kF32, {6, 33});
  ASSERT_TRUE(cpu_->Linear(x, w, want).ok());
  Tensor got = *cuda_->NewTensor(DType::kF32, {6, 33});
  ASSERT_TRUE(cuda_->Linear(Up(x), Up(w), got).ok());
  EXPECT_LE(RelDiff(Down(got), want), kOpTol);

  // Per-head products on a column slice of a wider buffer, both weight orientations.
  const int64_t t = 5, nh = 4, wide = 20, in = 12, out = 9;
  const Tensor xw = Random({t, nh, wide});
  const Tensor xs = *xw.Slice(2, 3, 3 + in);
  const Tensor dxw = Up(xw);
  const Tensor dxs = *dxw.Slice(2, 3, 3 + in);
  for (bool transpose : {false, true}) {
    const Tensor hw = transpose ? Random({nh, out, in}) : Random({nh, in, out});
    Tensor hwant = Tensor::Zeros(DType::kF32, {t, nh, out});
    ASSERT_TRUE(cpu_->HeadMatmul(xs, hw, transpose, hwant).ok());
    Tensor hgot = *cuda_->NewTensor(DType::kF32, {t, nh, out});
    ASSERT_TRUE(cuda_->HeadMatmul(dxs, Up(hw), transpose, hgot).ok());
    EXPECT_LE(RelDiff(Down(hgot), hwant), kOpTol) << transpose;
  }
}

TEST_F(CudaOpsTest, MoeRoutingAndExpertsMatchCpu) {
  const int64_t t = 6, h = 32, inter = 16, e_count = 8, k = 2;
  const Tensor logits = Random({t, e_count}), bias = Random({e_count}, 0.1f);
  const Backend::RouteArgs route{.top_k = 2,
                                 .n_group = 2,
                                 .topk_group = 1,
                                 .norm_topk_prob = true,
                                 .routed_scaling_factor = 2.5f};
  Tensor ids = Tensor::Zeros(DType::kI32, {t, k}), wts = Tensor::Zeros(DType::kF32, {t, k});
  ASSERT_TRUE(cpu_->MoeRoute(logits, bias, route, ids, wts).ok());
  Tensor dids = *cuda_->NewTensor(DType::kI32, {t, k}),
         dwts = *cuda_->NewTensor(DType::kF32, {t, k});
  ASSERT_TRUE(cuda_->MoeRoute(Up(logits), Up(bias), route, dids, dwts).ok());
  const Tensor got_ids = Down(dids);
  for (int64_t i = 0; i < t * k; ++i) EXPECT_EQ(got_ids.data<int32_t>()[i], ids.data<int32_t>()[i]);

  std::vector<Tensor> host_w, dev_w;
  for (int64_t e = 0; e < e_count; ++e) {
    for (Shape s : {Shape{inter, h}, Shape{inter, h}, Shape{h, inter}}) {
      host_w.push_back(Random(s, 0.3f));
      dev_w.push_back(Up(host_w.back()));
    }
  }
  std::vector<Backend::ExpertWeights> he, de;
  for (int64_t e = 0; e < e_count; ++e) {
    he.push_back({&host_w[3 * e], &host_w[3 * e + 1], &host_w[3 * e + 2]});
    de.push_back({&dev_w[3 * e], &dev_w[3 * e + 1], &dev_w[3 * e + 2]});
  }
  const Tensor x = Random({t, h});
  Tensor want = Tensor::Zeros(DType::kF32, {t, h});
  ASSERT_TRUE(cpu_->MoeExperts(x, ids, wts, he, want).ok());
  Tensor got = *cuda_->NewTensor(DType::kF32, {t, h});
  ASSERT_TRUE(cuda_->MoeExperts(Up(x), dids, dwts, de, got).ok());
  EXPECT_LE(RelDiff(Down(got), want), kOpTol);
}

// bf16 activations and weights (the bf16 backend's layout) take the device's grouped expert FFN;
// it matches the bf16 CPU reference (kernels/cpu/moe_experts.h) to a bf16 rounding.
TEST_F(CudaOpsTest, MoeExpertsBf16MatchesCpuReference) {
  const int64_t t = 9, h = 128, inter = 64, e_count = 8, k = 2;
  auto bf16 = [this](Shape s, float scale) {
    const Tensor f = Random(s, scale);
    Tensor b = Tensor::Zeros(DType::kBF16, s);
    for (int64_t i = 0; i < f.numel(); ++i) b.data<uint16_t>()[i] = FloatToBF16(f.data<float>()[i]);
    return b;
  };
  const Tensor logits = Random({t, e_count}), bias = Random({e_count}, 0.1f);
  Tensor ids = Tensor::Zeros(DType::kI32, {t, k}), wts = Tensor::Zeros(DType::kF32, {t, k});
  ASSERT_TRUE(cpu_->MoeRoute(logits, bias, {.top_k = 2}, ids, wts).ok());
  std::vector<Tensor> host_w, dev_w;
  std::vector<const uint16_t*> gate, up, down;
  std::vector<Backend::ExpertWeights> de;
  for (int64_t e = 0; e < e_count; ++e) {
    for (Shape s : {Shape{inter, h}, Shape{inter, h}, Shape{h, inter}}) {
      host_w.push_back(bf16(s, 0.15f));
      dev_w.push_back(Up(host_w.back()));
    }
  }
  for (int64_t e = 0; e < e_count; ++e) {
    gate.push_back(host_w[3 * e].data<uint16_t>());
    up.push_back(host_w[3 * e + 1].data<uint16_t>());
    down.push_back(host_w[3 * e + 2].data<uint16_t>());
    de.push_back({&dev_w[3 * e], &dev_w[3 * e + 1], &dev_w[3 * e + 2]});
  }
  const Tensor x = bf16({t, h}, 1.0f);
  Tensor want = Tensor::Zeros(DType::kBF16, {t, h});
  ASSERT_TRUE(kernels::MoeExpertsCpu({.num_tokens = t,
                                      .hidden = h,
                                      .inter = inter,
                                      .num_experts = e_count,
                                      .top_k = k,
                                      .x = x.data<uint16_t>(),
                                      .expert_ids = ids.data<int32_t>(),
                                      .weights = wts.data<float>(),
                                      .gate = gate.data(),
                                      .up = up.data(),
                                      .down = down.data(),
                                      .y = want.data<uint16_t>()})
                  .ok());
  Tensor got = *cuda_->NewTensor(DType::kBF16, {t, h});
  ASSERT_TRUE(cuda_->MoeExperts(Up(x), Up(ids), Up(wts), de, got).ok());
  const Tensor host_got = Down(got);
  float scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    scale = std::max(scale, std::fabs(BF16ToFloat(want.data<uint16_t>()[i])));
  }
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float a = BF16ToFloat(host_got.data<uint16_t>()[i]);
    const float b = BF16ToFloat(want.data<uint16_t>()[i]);
    EXPECT_LE(std::fabs(a - b), std::fabs(b) / 128 + 2e-3f * scale) << i;
  }
}

TEST_F(CudaOpsTest, GreedySamplingMatchesCpu) {
  Tensor logits = Random({5, 3000}, 3.0f);
  logits.data<float>()[2 * 3000 + 7] = 100.0f;  // a clear winner
  logits.data<float>()[3 * 3000 + 11] = 50.0f;  // a tie: the first index wins
  logits.data<float>()[3 * 3000 + 2999] = 50.0f;
  std::vector<SamplingArgs> args(5);
  std::vector<int32_t> want_ids, got_ids;
  std::vector<float> want_lp, got_lp;
  ASSERT_TRUE(cpu_->Sample(logits, args, want_ids, want_lp).ok());
  ASSERT_TRUE(cuda_->Sample(Up(logits), args, got_ids, got_lp).ok());
  EXPECT_EQ(got_ids, want_ids);
  EXPECT_EQ(got_ids[3], 11);
  for (int r = 0; r < 5; ++r) EXPECT_NEAR(got_lp[r], want_lp[r], 1e-4f) << r;
  // Temperature sampling on the device: the same draw as the CPU sampler for the same seed and
  // step.
  for (auto& a : args) a = {.temperature = 0.8f, .top_k = 50, .top_p = 0.9f, .seed = 7, .step = 3};
  ASSERT_TRUE(cpu_->Sample(logits, args, want_ids, want_lp).ok());
  ASSERT_TRUE(cuda_->Sample(Up(logits), args, got_ids, got_lp).ok());
  EXPECT_EQ(got_ids, want_ids);
}

// The paged DSA operations on a scattered two-sequence cache: writes, indexer top-k (a set: the
// CUDA top-k returns its slots in no particular order) and sparse MLA over the selected slots.
TEST_F(CudaOpsTest, PagedIndexerAndSparseMlaMatchCpu) {
  const kvcache::CacheGeometry g{.kv_lora_rank = 32,
                                 .qk_rope_head_dim = 16,
                                 .index_head_dim = 32,
                                 .latent_dtype = kvcache::LatentCacheDType::kF32,
                                 .indexer_dtype = kvcache::IndexerCacheDType::kF32};
  const int64_t num_blocks = 6, max_blocks = 3, ih = 4, nh = 3, top_k = 16;
  std::vector<int32_t> tables = {4, 1, 5, 0, 3, -1};  // sequence 0: 70 tokens, sequence 1: 10
  std::vector<int64_t> positions;
  std::vector<int32_t> token_seq, slot_mapping;
  for (int32_t s : {0, 1}) {
    for (int64_t p = 0; p < (s == 0 ? 70 : 10); ++p) {
      positions.push_back(p);
      token_seq.push_back(s);
      slot_mapping.push_back(tables[s * max_blocks + p / 64] * 64 + static_cast<int32_t>(p % 64));
    }
  }
  const int64_t t = static_cast<int64_t>(positions.size());
  const Tensor h_tables = Tensor::Borrow(tables.data(), DType::kI32, {2, max_blocks});
  const Tensor h_seq = Tensor::Borrow(token_seq.data(), DType::kI32, {t});
  const Tensor h_pos = Tensor::Borrow(positions.data(), DType::kI64, {t});
  const Tensor h_slots = Tensor::Borrow(slot_mapping.data(), DType::kI32, {t});
  const Tensor d_tables = Up(h_tables), d_seq = Up(h_seq), d_pos = Up(h_pos), d_slots = Up(h_slots);
  const PagedView hv{&h_tables, &h_seq, &h_pos, &h_slots}, dv{&d_tables, &d_seq, &d_pos, &d_slots};
  auto hc = KvCache::Create(*cpu_, {g}, num_blocks);
  auto dc = KvCache::Create(*cuda_, {g}, num_blocks);
  ASSERT_TRUE(hc.ok() && dc.ok());

  const Tensor rows = Random({t, 48}), keys = Random({t, 32});
  ASSERT_TRUE(cpu_->WriteLatentCache(rows, hv, hc->layer(0)).ok());
  ASSERT_TRUE(cpu_->WriteIndexerCache(keys, hv, hc->layer(0)).ok());
  ASSERT_TRUE(cuda_->WriteLatentCache(Up(rows), dv, dc->layer(0)).ok());
  ASSERT_TRUE(cuda_->WriteIndexerCache(Up(keys), dv, dc->layer(0)).ok());

  const Tensor q = Random({t, ih, 32}), w = Random({t, ih});
  Tensor hw = Clone(w);  // both backends scale the weights in place
  auto want = cpu_->IndexerTopk(q, hw, 0.5f, 0.17f, top_k, hv, hc->layer(0));
  auto got = cuda_->IndexerTopk(Up(q), Up(w), 0.5f, 0.17f, top_k, dv, dc->layer(0));
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  const Tensor got_slots = Down(*got);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<int32_t> a(got_slots.data<int32_t>() + i * top_k,
                           got_slots.data<int32_t>() + (i + 1) * top_k);
    std::vector<int32_t> b(want->data<int32_t>() + i * top_k,
                           want->data<int32_t>() + (i + 1) * top_k);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << "token " << i;
  }

  const Tensor q_abs = Random({t, nh, 48}, 0.5f);
  Tensor o_want = Tensor::Zeros(DType::kF32, {t, nh, 32});
  ASSERT_TRUE(cpu_->SparseMla(q_abs, *want, 0.2f, hc->layer(0), o_want).ok());
  Tensor o_got = *cuda_->NewTensor(DType::kF32, {t, nh, 32});
  ASSERT_TRUE(cuda_->SparseMla(Up(q_abs), Up(*want), 0.2f, dc->layer(0), o_got).ok());
  EXPECT_LE(RelDiff(Down(o_got), o_want), kOpTol);
}

}  // namespace
}  // namespace strata::model

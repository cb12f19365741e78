// Each dense operation of the CUDA backend against the CPU backend on fresh random inputs, through
// the Backend interface both implement: in f32 (only the summation order differs) and with the
// bf16 activations and weights the model uses (the CPU computes on the same bf16 values in f32).
#include <algorithm>
#include <cmath>
#include <random>

#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu/moe_experts.h"
#include "tests/worker/cuda_ops_fixture.h"
#include "worker/model/backend_factory.h"
#include "worker/model/cuda_backend.h"

namespace strata::model {
namespace {

// Both sides f32; only the summation order differs (block reductions, GEMM tiling).
constexpr float kOpTol = 2e-5f;
// A bf16 output is the f32 result rounded once: |error| <= 2^-9 of the value, 2^-8 with margin
// for the fp32 summation-order noise before the rounding.
constexpr float kBf16OutTol = 1.0f / 256;

TEST_F(CudaOpsTest, NormsMatchCpu) {
  for (int64_t dim : {16, 96, 1000}) {
    const Tensor x = RandomBf16Values({7, dim}, 2.0f), w = Random({dim}), b = Random({dim});
    Tensor want = Tensor::Zeros(DType::kF32, {7, dim});
    ASSERT_TRUE(cpu_->RmsNorm(x, w, 1e-6f, want).ok());
    Tensor dx = Up(x), dw = Up(w), db = Up(b);
    ASSERT_TRUE(cuda_->RmsNorm(dx, dw, 1e-6f, dx).ok());  // in place, as the model does
    EXPECT_LE(RelDiff(Down(dx), want), kOpTol) << "rms_norm " << dim;
    Tensor bx = Up(ToBf16(x));  // bf16 in, bf16 out, in place
    ASSERT_TRUE(cuda_->RmsNorm(bx, dw, 1e-6f, bx).ok());
    EXPECT_LE(RelDiff(Down(bx), want), kBf16OutTol) << "bf16 rms_norm " << dim;

    ASSERT_TRUE(cpu_->LayerNorm(x, w, b, 1e-6f, want).ok());
    Tensor got = New(DType::kF32, {7, dim});
    dx = Up(x);
    ASSERT_TRUE(cuda_->LayerNorm(dx, dw, db, 1e-6f, got).ok());
    EXPECT_LE(RelDiff(Down(got), want), kOpTol) << "layer_norm " << dim;
    bx = Up(ToBf16(x));
    ASSERT_TRUE(cuda_->LayerNorm(bx, dw, db, 1e-6f, bx).ok());
    EXPECT_LE(RelDiff(Down(bx), want), kBf16OutTol) << "bf16 layer_norm " << dim;
  }
}

// h += delta; out = RMSNorm(h): the residual stays f32 (exact sums), out in either dtype.
TEST_F(CudaOpsTest, AddRmsNormMatchesCpu) {
  const Tensor h = Random({9, 300}, 3.0f), delta = RandomBf16Values({9, 300}), w = Random({300});
  Tensor want_h = Clone(h), want = Tensor::Zeros(DType::kF32, {9, 300});
  ASSERT_TRUE(cpu_->AddRmsNorm(want_h, delta, w, 1e-5f, want).ok());
  const Tensor dw = Up(w);
  for (DType dt : {DType::kF32, DType::kBF16}) {
    Tensor dh = Up(h), out = New(dt, {9, 300});
    const Tensor dd = Up(dt == DType::kF32 ? delta : ToBf16(delta));
    ASSERT_TRUE(cuda_->AddRmsNorm(dh, dd, dw, 1e-5f, out).ok());
    EXPECT_EQ(RelDiff(Down(dh), want_h), 0.0f) << DTypeName(dt);
    EXPECT_LE(RelDiff(Down(out), want), dt == DType::kF32 ? kOpTol : kBf16OutTol) << DTypeName(dt);
  }
  Tensor bad = New(DType::kBF16, {9, 300}), out = New(DType::kBF16, {9, 300});
  EXPECT_FALSE(cuda_->AddRmsNorm(bad, Up(ToBf16(delta)), dw, 1e-5f, out).ok());  // h must be f32
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
    const Tensor x = RandomBf16Values({t, heads, width});
    Tensor want = Clone(x);
    Tensor want_slice = *want.Slice(2, width - r, width);
    ASSERT_TRUE(cpu_->Rope(want_slice, pos, {&freq, 0.9f, style}).ok());
    for (bool bf16 : {false, true}) {
      Tensor dx = Up(bf16 ? ToBf16(x) : x);
      Tensor slice = *dx.Slice(2, width - r, width);
      ASSERT_TRUE(cuda_->Rope(slice, dpos, {&dfreq, 0.9f, style}).ok());
      EXPECT_LE(RelDiff(Down(dx), want), bf16 ? kBf16OutTol : kOpTol)
          << static_cast<int>(style) << " bf16 " << bf16;
    }
  }
}

TEST_F(CudaOpsTest, ElementwiseOpsMatchCpu) {
  const Tensor g = RandomBf16Values({9, 70}), u = RandomBf16Values({9, 70});
  Tensor want = Tensor::Zeros(DType::kF32, {9, 70});
  ASSERT_TRUE(cpu_->SiluMul(g, u, want).ok());
  Tensor dg = Up(g), du = Up(u);
  ASSERT_TRUE(cuda_->SiluMul(dg, du, dg).ok());
  EXPECT_LE(RelDiff(Down(dg), want), kOpTol);
  Tensor bg = Up(ToBf16(g)), bu = Up(ToBf16(u));
  ASSERT_TRUE(cuda_->SiluMul(bg, bu, bg).ok());
  EXPECT_LE(RelDiff(Down(bg), want), kBf16OutTol);

  Tensor x = Random({9, 70});
  const Tensor y = RandomBf16Values({9, 70});
  Tensor dx = Up(x), dx2 = Up(x);
  ASSERT_TRUE(cpu_->Add(x, y).ok());
  ASSERT_TRUE(cuda_->Add(dx, Up(y)).ok());
  ASSERT_TRUE(cuda_->Add(dx2, Up(ToBf16(y))).ok());  // a bf16 delta into the f32 stream
  EXPECT_EQ(RelDiff(Down(dx), x), 0.0f);
  EXPECT_EQ(RelDiff(Down(dx2), x), 0.0f);

  const std::vector<int32_t> rows = {8, 0, 3, 3};
  const Tensor want_rows = *cpu_->GatherRows(x, rows);
  EXPECT_EQ(RelDiff(Down(*cuda_->GatherRows(dx, rows)), want_rows), 0.0f);
  const Tensor by = ToBf16(y);
  const Tensor want_brows = *cpu_->GatherRows(ToF32(by), rows);
  EXPECT_EQ(RelDiff(Down(*cuda_->GatherRows(Up(by), rows)), want_brows), 0.0f);
  EXPECT_FALSE(cuda_->GatherRows(dx, {9}).ok());

  // Embedding from an f32 and a bf16 table into the f32 residual stream; an id outside the
  // table gives a zero row on the device (the model refuses such ids on the host first).
  const Tensor table = RandomBf16Values({50, 12});
  std::vector<int32_t> ids_v = {4, 49, 0, 4};
  const Tensor ids = Tensor::Borrow(ids_v.data(), DType::kI32, {4});
  Tensor emb = Tensor::Zeros(DType::kF32, {4, 12});
  ASSERT_TRUE(cpu_->Embedding(ids, table, emb).ok());
  for (const Tensor& t : {table, ToBf16(table)}) {
    Tensor demb = New(DType::kF32, {4, 12});
    ASSERT_TRUE(cuda_->Embedding(Up(ids), Up(t), demb).ok());
    EXPECT_EQ(RelDiff(Down(demb), emb), 0.0f) << DTypeName(t.dtype());
  }
  ids_v[1] = 50;
  Tensor demb = New(DType::kF32, {4, 12});
  ASSERT_TRUE(cuda_->Embedding(Up(ids), Up(table), demb).ok());
  const Tensor got = Down(demb);
  for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(got.data<float>()[12 + i], 0.0f);
}

TEST_F(CudaOpsTest, GemmsMatchCpu) {
  // f32 × f32 (no TF32), and bf16 × bf16 with f32 (exact products, fp32 sums) and bf16 outputs.
  const Tensor x = RandomBf16Values({37, 320}), w = RandomBf16Values({200, 320}, 0.1f);
  Tensor want = Tensor::Zeros(DType::kF32, {37, 200});
  ASSERT_TRUE(cpu_->Linear(x, w, want).ok());
  Tensor got = New(DType::kF32, {37, 200});
  ASSERT_TRUE(cuda_->Linear(Up(x), Up(w), got).ok());
  EXPECT_LE(RelDiff(Down(got), want), kOpTol);
  const Tensor bx = Up(ToBf16(x)), bw = Up(ToBf16(w));
  ASSERT_TRUE(cuda_->Linear(bx, bw, got).ok());
  EXPECT_LE(RelDiff(Down(got), want), kOpTol) << "bf16 -> f32";
  Tensor got16 = New(DType::kBF16, {37, 200});
  ASSERT_TRUE(cuda_->Linear(bx, bw, got16).ok());
  EXPECT_LE(RelDiff(Down(got16), want), kBf16OutTol) << "bf16 -> bf16";
  // The router: bf16 activations, an f32 weight, fp32 GEMM.
  ASSERT_TRUE(cuda_->Linear(bx, Up(w), got).ok());
  EXPECT_LE(RelDiff(Down(got), want), kOpTol) << "router";
  // A column slice of a wider buffer as x, and rows of a wider buffer as y.
  const Tensor wide = RandomBf16Values({37, 400});
  Tensor wide_want = Tensor::Zeros(DType::kF32, {37, 200});
  ASSERT_TRUE(cpu_->Linear(*wide.Slice(1, 40, 360), w, wide_want).ok());
  const Tensor dwide = Up(ToBf16(wide));
  Tensor ywide = New(DType::kBF16, {37, 256});
  Tensor y = *ywide.Slice(1, 8, 208);
  ASSERT_TRUE(cuda_->Linear(*dwide.Slice(1, 40, 360), bw, y).ok());
  auto host = cuda_->Download(y);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_LE(RelDiff(ToF32(*host), wide_want), kBf16OutTol) << "strided";

  // Per-head products on a column slice of a wider buffer, both weight orientations.
  const int64_t t = 5, nh = 4, wd = 40, in = 24, out = 16;
  const Tensor xw = RandomBf16Values({t, nh, wd});
  const Tensor xs = *xw.Slice(2, 8, 8 + in);
  for (bool bf16 : {false, true}) {
    const Tensor dxw = Up(bf16 ? ToBf16(xw) : xw);
    const Tensor dxs = *dxw.Slice(2, 8, 8 + in);
    for (bool transpose : {false, true}) {
      const Tensor hw =
          transpose ? RandomBf16Values({nh, out, in}) : RandomBf16Values({nh, in, out});
      Tensor hwant = Tensor::Zeros(DType::kF32, {t, nh, out});
      ASSERT_TRUE(cpu_->HeadMatmul(xs, hw, transpose, hwant).ok());
      Tensor hgot = New(bf16 ? DType::kBF16 : DType::kF32, {t, nh, out});
      ASSERT_TRUE(cuda_->HeadMatmul(dxs, Up(bf16 ? ToBf16(hw) : hw), transpose, hgot).ok());
      EXPECT_LE(RelDiff(Down(hgot), hwant), bf16 ? kBf16OutTol : kOpTol)
          << transpose << " bf16 " << bf16;
    }
  }
}

TEST_F(CudaOpsTest, DecodeSizedLinearRunsTheGemv) {
  // M ≤ 2 with a bf16 weight takes the GEMV (kernels/cuda/gemv.h), bf16 or f32 x as is; more
  // rows, or K not a multiple of 8, take cuBLASLt; either way the CPU's answer.
  for (const int64_t k : {320, 100}) {
    const Tensor w = RandomBf16Values({200, k}, 0.1f);
    const Tensor bw = Up(ToBf16(w));
    for (const int64_t m : {1, 2, 3, 8}) {
      const Tensor x = RandomBf16Values({m, k});
      Tensor want = Tensor::Zeros(DType::kF32, {m, 200});
      ASSERT_TRUE(cpu_->Linear(x, w, want).ok());
      const CudaKernelCounts before = GetCudaKernelCounts(*cuda_);
      Tensor got = New(DType::kF32, {m, 200});
      ASSERT_TRUE(cuda_->Linear(Up(ToBf16(x)), bw, got).ok());
      EXPECT_LE(RelDiff(Down(got), want), kOpTol) << "bf16 -> f32, k " << k << " m " << m;
      ASSERT_TRUE(cuda_->Linear(Up(x), bw, got).ok());  // f32 x (bf16 values)
      EXPECT_LE(RelDiff(Down(got), want), kOpTol) << "f32 x, k " << k << " m " << m;
      Tensor got16 = New(DType::kBF16, {m, 200});
      ASSERT_TRUE(cuda_->Linear(Up(ToBf16(x)), bw, got16).ok());
      EXPECT_LE(RelDiff(Down(got16), want), kBf16OutTol) << "bf16 -> bf16, k " << k << " m " << m;
      const CudaKernelCounts after = GetCudaKernelCounts(*cuda_);
      const int64_t gemv = k % 8 == 0 && m <= 2 ? 3 : 0;
      EXPECT_EQ(after.gemv_linear - before.gemv_linear, gemv) << "k " << k;
      EXPECT_EQ(after.gemm_linear - before.gemm_linear, 3 - gemv) << "k " << k;
    }
  }
  // Strided x (a column slice) and y (rows of a wider buffer) through the GEMV.
  const Tensor w = RandomBf16Values({200, 320}, 0.1f);
  const Tensor wide = RandomBf16Values({2, 400});
  Tensor want = Tensor::Zeros(DType::kF32, {2, 200});
  ASSERT_TRUE(cpu_->Linear(*wide.Slice(1, 40, 360), w, want).ok());
  const Tensor dwide = Up(ToBf16(wide));
  Tensor ywide = New(DType::kBF16, {2, 256});
  Tensor y = *ywide.Slice(1, 8, 208);
  const int64_t gemv_before = GetCudaKernelCounts(*cuda_).gemv_linear;
  ASSERT_TRUE(cuda_->Linear(*dwide.Slice(1, 40, 360), Up(ToBf16(w)), y).ok());
  EXPECT_EQ(GetCudaKernelCounts(*cuda_).gemv_linear, gemv_before + 1);
  auto host = cuda_->Download(y);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_LE(RelDiff(ToF32(*host), want), kBf16OutTol) << "strided";
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
  Tensor dids = New(DType::kI32, {t, k}), dwts = New(DType::kF32, {t, k});
  ASSERT_TRUE(cuda_->MoeRoute(Up(logits), Up(bias), route, dids, dwts).ok());
  const Tensor got_ids = *cuda_->Download(dids);
  for (int64_t i = 0; i < t * k; ++i) EXPECT_EQ(got_ids.data<int32_t>()[i], ids.data<int32_t>()[i]);

  std::vector<Tensor> host_w, dev_w, dev_w16;
  for (int64_t e = 0; e < e_count; ++e) {
    for (Shape s : {Shape{inter, h}, Shape{inter, h}, Shape{h, inter}}) {
      host_w.push_back(RandomBf16Values(s, 0.3f));
      dev_w.push_back(Up(host_w.back()));
      dev_w16.push_back(Up(ToBf16(host_w.back())));
    }
  }
  std::vector<Backend::ExpertWeights> he, de, de16;
  for (int64_t e = 0; e < e_count; ++e) {
    he.push_back({&host_w[3 * e], &host_w[3 * e + 1], &host_w[3 * e + 2]});
    de.push_back({&dev_w[3 * e], &dev_w[3 * e + 1], &dev_w[3 * e + 2]});
    de16.push_back({&dev_w16[3 * e], &dev_w16[3 * e + 1], &dev_w16[3 * e + 2]});
  }
  const Tensor x = RandomBf16Values({t, h});
  Tensor want = Tensor::Zeros(DType::kF32, {t, h});
  ASSERT_TRUE(cpu_->MoeExperts(x, ids, wts, he, want).ok());
  Tensor got = New(DType::kF32, {t, h});
  ASSERT_TRUE(cuda_->MoeExperts(Up(x), dids, dwts, de, got).ok());
  EXPECT_LE(RelDiff(Down(got), want), kOpTol);
  // bf16 activations and experts (gate/up outputs rounded to bf16 inside): a few roundings.
  ASSERT_TRUE(cuda_->MoeExperts(Up(ToBf16(x)), dids, dwts, de16, got).ok());
  EXPECT_LE(RelDiff(Down(got), want), 4 * kBf16OutTol);
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
    const float a = host_got.data<float>()[i];  // Down widens to f32
    const float b = BF16ToFloat(want.data<uint16_t>()[i]);
    EXPECT_LE(std::fabs(a - b), std::fabs(b) / 128 + 2e-3f * scale) << i;
  }
  // An f32 y (what the bf16 model passes: the MoE output joins the f32 residual stream) takes the
  // same grouped path and skips the final bf16 rounding.
  Tensor got32 = New(DType::kF32, {t, h});
  ASSERT_TRUE(cuda_->MoeExperts(Up(x), Up(ids), Up(wts), de, got32).ok());
  const Tensor host32 = Down(got32);
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float a = host32.data<float>()[i];
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

// Small uploads go through pinned slots without waiting: many in a row (more than there are
// slots) all arrive intact; a large one takes the synchronous path.
TEST_F(CudaOpsTest, UploadsAndDownloadsKeepBytes) {
  std::vector<Tensor> hosts, devs;
  for (int i = 0; i < 40; ++i) {
    hosts.push_back(ToBf16(Random({3 + i, 17})));
    devs.push_back(Up(hosts.back()));
    hosts.back().data<uint16_t>()[0] ^= 1;  // the host copy may change once Upload returned
  }
  for (int i = 0; i < 40; ++i) {
    const Tensor back = *cuda_->Download(devs[i]);
    ASSERT_EQ(back.dtype(), DType::kBF16);
    EXPECT_EQ(back.data<uint16_t>()[0], hosts[i].data<uint16_t>()[0] ^ 1) << i;
    EXPECT_EQ(
        std::memcmp(back.data<uint16_t>() + 1, hosts[i].data<uint16_t>() + 1, back.nbytes() - 2), 0)
        << i;
  }
  const Tensor big = Random({600, 1000});  // 2.4 MB
  const Tensor back = *cuda_->Download(Up(big));
  EXPECT_EQ(std::memcmp(back.data(), big.data(), big.nbytes()), 0);
}

}  // namespace
}  // namespace strata::model

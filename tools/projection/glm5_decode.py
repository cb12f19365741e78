#!/usr/bin/env python3
"""Projects GLM-5 decode speed on 8x A100 and 8x DGX Spark from Strata's per-layer figures.

Every number is an input with its source named; nothing is fitted. The model: a decode step of B
sequences reads, per layer and per GPU, its share of the weights the step touches plus the KV it
attends to, at the fraction `eff` of the device's bandwidth that strata-model-bench measured for a
GLM-5 layer on the H100 (bench/model_bench_main.cc; the same kernels, sm80-class, run on A100 and
GB10); tensor parallelism adds two all-reduces of [B, 6144] per layer, pipeline parallelism one
hop of [B, 6144] per stage boundary:

  t_token = L * (bytes_layer(B, b, C) / TP / (BW * eff) + 2 * t_allreduce(TP)) + (PP - 1) * t_hop
  (TP: attention heads and expert columns split, latent and indexer caches read whole per rank)

Usage: tools/projection/glm5_decode.py --eff-b1 0.55 --eff-b32 0.8 [--context 4096]
"""
import argparse

# GLM-5 per layer (specs/dsa.md section 0), parameters.
H, NH, QL, KVL, P, R, V = 6144, 64, 2048, 512, 192, 64, 256
IH, ID, TOPK = 32, 128, 2048
E, K, INTER = 256, 8, 2048
LAYERS, DENSE_LAYERS = 78, 3  # the first 3 are dense (MLP intermediate 12288)
DENSE_INTER = 12288
ATTN = H * QL + QL * NH * (P + R) + H * (KVL + R) + KVL * NH * (P + V) + NH * V * H
INDEXER = QL * IH * ID + H * ID + H * IH
EXPERT = 3 * H * INTER


def layer_bytes(batch, bytes_per_weight, context, tp, dense=False):
    """Bytes one GPU reads for one layer of one decode step (full indexer)."""
    touched = E * (1 - (1 - K / E) ** batch)  # distinct experts chosen by B random tokens
    mlp = 3 * H * DENSE_INTER if dense else EXPERT * (1 + touched)
    weights = (ATTN + INDEXER + mlp) * bytes_per_weight / tp
    router = 0 if dense else E * H * 4  # f32 router, replicated
    latent = batch * min(context + 1, TOPK) * (KVL + R) * 2  # bf16 latent rows, read by every rank
    indexer = batch * (context + 1) * 132  # fp8 keys + scale, replicated indexer
    return weights + router + latent + indexer


def step_ms(batch, bpw, context, eff, bw, tp, pp, allreduce_us, hop_us):
    """Time for every one of `batch` sequences to gain a token. Under PP the batch runs as PP
    micro-batches of batch / PP in flight (one per stage), so a step costs the layers of one
    micro-batch end to end on every stage in turn."""
    micro = max(1, batch // pp)
    def layer_s(dense):
        return layer_bytes(micro, bpw, context, tp, dense) / (bw * eff)
    comm_s = (2 * allreduce_us * 1e-6) if tp > 1 else 0.0
    layers_s = DENSE_LAYERS * layer_s(True) + (LAYERS - DENSE_LAYERS) * layer_s(False)
    return 1e3 * (layers_s + LAYERS * comm_s + (pp - 1) * hop_us * 1e-6) * (batch // micro) / pp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eff-b1", type=float, required=True,
                    help="fraction of the bandwidth floor per layer at batch 1 (model bench)")
    ap.add_argument("--eff-b32", type=float, required=True,
                    help="fraction of the bandwidth floor per layer at batch 32 (model bench)")
    ap.add_argument("--context", type=int, default=4096)
    a = ap.parse_args()
    # name, bandwidth B/s (vendor figure), GPUs, TP, PP, all-reduce us, hop us, memory GB per GPU
    systems = [
        ("8x A100-80GB, TP 8 (NVLink)", 2.039e12, 8, 8, 1, 12.0, 0.0, 80),
        ("8x A100-80GB, PP 8", 2.039e12, 8, 1, 8, 0.0, 15.0, 80),
        ("8x DGX Spark, TP 8 (200 Gb/s RoCE)", 273e9, 8, 8, 1, 30.0, 0.0, 128),
        ("8x DGX Spark, PP 8", 273e9, 8, 1, 8, 0.0, 40.0, 128),
        ("32x A100-80GB, TP 8 x PP 4", 2.039e12, 32, 8, 4, 12.0, 20.0, 80),
    ]
    total_params = (LAYERS * (ATTN + INDEXER) + DENSE_LAYERS * 3 * H * DENSE_INTER +
                    (LAYERS - DENSE_LAYERS) * EXPERT * (E + 1) + 2 * 154880 * H)
    print(f"GLM-5: {total_params / 1e9:.0f}B parameters, context {a.context}; eff b1 {a.eff_b1}, "
          f"b32 {a.eff_b32}")
    print(f"{'system':38} {'weights':>7} {'fits':>5} {'b1 ms/tok':>9} {'b1 tok/s':>8} "
          f"{'b32 tok/s':>9}")
    for name, bw, gpus, tp, pp, ar, hop, mem in systems:
        for label, bpw in (("bf16", 2.0), ("fp8", 1.0), ("int4", 0.5)):
            fits = total_params * bpw / gpus < mem * 1e9 * 0.9
            t1 = step_ms(1, bpw, a.context, a.eff_b1, bw, tp, pp, ar, hop) * pp
            t32 = step_ms(32, bpw, a.context, a.eff_b32, bw, tp, pp, ar, hop)
            print(f"{name:38} {label:>7} {'yes' if fits else 'no':>5} {t1:9.1f} {1e3 / t1:8.1f} "
                  f"{32e3 / t32:9.0f}")


if __name__ == "__main__":
    main()

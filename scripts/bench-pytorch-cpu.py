#!/usr/bin/env python3
"""PyTorch eager on the CPU for the same model-level benchmark as `cargo run --release --example step_time`:
diffusers' WanTransformer3DModel with dim 128 (4 heads × 32), 4 layers, ffn 512, text_dim 128, freq_dim 256,
patch (1,2,2), latent 4×8×16×16 (512 tokens), text length 16, PEFT LoRA rank 8 on to_q/to_k/to_v/to_out.0 of
attn1 and attn2; forward without gradients, and a LoRA step (forward, MSE loss, backward to the LoRA factors).

With --kernels it instead times torch.matmul and scaled_dot_product_attention at the shapes of `fym bench`
(spatial/temporal as SDPA over frames / positions as the batch, the dense equivalent of fym's masks).

usage: bench-pytorch-cpu.py [THREADS] [--kernels]   (needs torch; the model benchmark also diffusers and peft)"""
import json
import statistics
import sys
import time

import torch
from diffusers import WanTransformer3DModel
from peft import LoraConfig

args = [a for a in sys.argv[1:] if not a.startswith("--")]
threads = int(args[0]) if args else 2
torch.set_num_threads(threads)


def median_ms(fn, reps=20, budget=5.0):
    fn()
    times, start = [], time.perf_counter()
    for _ in range(reps):
        s = time.perf_counter()
        fn()
        times.append((time.perf_counter() - s) * 1e3)
        if len(times) >= 3 and time.perf_counter() - start > budget:
            break
    return statistics.median(times)


def row(op, shape, mode, ms, flops):
    """One JSON line in `fym bench --json`'s schema (device "cpu-torch", no peak fraction)."""
    print(json.dumps({"op": op, "shape": shape, "mode": mode, "device": "cpu-torch", "threads": threads,
                      "ms": ms, "gflops": flops / ms / 1e6, "peak_frac": None}))


if "--kernels" in sys.argv:
    import torch.nn.functional as F
    for m, k, n in [(512, 512, 512), (2048, 512, 128), (4096, 128, 512)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        ms = median_ms(lambda: torch.matmul(a, b))
        row("gemm", [m, k, n], None, ms, 2 * m * n * k)
    for s_len in [512, 2048]:
        tpf, heads, d = 64, 4, 32
        frames = s_len // tpf
        shapes = {"full": (1, s_len), "spatial": (frames, tpf), "temporal": (tpf, frames)}
        for mode, (batch, seq) in shapes.items():
            q, k_, v = (torch.randn(batch, heads, seq, d, requires_grad=True) for _ in range(3))
            flops = 4 * batch * heads * seq * seq * d
            fwd = median_ms(lambda: F.scaled_dot_product_attention(q, k_, v))

            def fwd_bwd():
                F.scaled_dot_product_attention(q, k_, v).sum().backward()

            both = median_ms(fwd_bwd)
            row("attention_fwd", [1, heads, s_len, d], mode, fwd, flops)
            row("attention_fwd_bwd", [1, heads, s_len, d], mode, both, 3.5 * flops)
    sys.exit(0)
torch.manual_seed(7)
model = WanTransformer3DModel(
    patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=32, in_channels=4, out_channels=4,
    text_dim=128, freq_dim=256, ffn_dim=512, num_layers=4, cross_attn_norm=True, eps=1e-6, rope_max_seq_len=1024,
).eval()
model.requires_grad_(False)
model.add_adapter(LoraConfig(r=8, lora_alpha=8, init_lora_weights="gaussian",
                             target_modules=["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                                             "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0"]))
lora = [p for n, p in model.named_parameters() if "lora_" in n]
assert len(lora) == 64 and all(p.requires_grad for p in lora)
x = torch.randn(1, 4, 8, 16, 16)
target = torch.randn(1, 4, 8, 16, 16)
text = torch.randn(1, 16, 128)
t = torch.tensor([500.0])


def forward():
    with torch.no_grad():
        model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)


def step():
    out = model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
    torch.nn.functional.mse_loss(out, target).backward()
    for p in lora:
        p.grad = None


print(f"pytorch {torch.__version__} threads {threads}: forward {median_ms(forward):.2f} ms, lora step {median_ms(step):.2f} ms")

#!/usr/bin/env python3
"""PyTorch eager on the CPU for the same model-level benchmark as `cargo run --release --example step_time`:
diffusers' WanTransformer3DModel with dim 128 (4 heads × 32), 4 layers, ffn 512, text_dim 128, freq_dim 256,
patch (1,2,2), latent 4×8×16×16 (512 tokens), text length 16, PEFT LoRA rank 8 on to_q/to_k/to_v/to_out.0 of
attn1 and attn2; forward without gradients, and a LoRA step (forward, MSE loss, backward to the LoRA factors).

usage: bench-pytorch-cpu.py [THREADS]   (needs torch, diffusers, peft)"""
import statistics
import sys
import time

import torch
from diffusers import WanTransformer3DModel
from peft import LoraConfig

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
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


def forward():
    with torch.no_grad():
        model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)


def step():
    out = model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
    torch.nn.functional.mse_loss(out, target).backward()
    for p in lora:
        p.grad = None


print(f"pytorch {torch.__version__} threads {threads}: forward {median_ms(forward):.2f} ms, lora step {median_ms(step):.2f} ms")

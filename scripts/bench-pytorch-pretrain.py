#!/usr/bin/env python3
"""PyTorch eager on the CPU for one full pretraining step of the config `fym pretrain` is compared on
(docs/base_model.md): diffusers' WanTransformer3DModel, 16 frames × 32 × 32 RGB, patch (2,4,4) → 512 tokens,
dim 128 (4 heads × 32), 4 layers, ffn 512, text_dim 64, freq_dim 64, plus a word-embedding text encoder
(50 words + padding, 27 positions, 64-d), batch 12, captions of 12 words.

One step = flow-matching forward (x_t = (1−σ)x0 + σε, target ε − x0), MSE, backward to every weight,
gradient-norm clipping to 1, AdamW (weight decay 0.01), EMA 0.999 over all weights — what fym's step does,
minus fym's on-the-fly clip rendering (PyTorch gets random clips for free).

usage: bench-pytorch-pretrain.py [THREADS] [STEPS]   (needs torch and diffusers)"""
import statistics
import sys
import time

import torch
from diffusers import WanTransformer3DModel

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
torch.set_num_threads(threads)
torch.manual_seed(0)

model = WanTransformer3DModel(
    patch_size=(2, 4, 4), num_attention_heads=4, attention_head_dim=32, in_channels=3, out_channels=3,
    text_dim=64, freq_dim=64, ffn_dim=512, num_layers=4, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
words = torch.nn.Embedding(51, 64)
positions = torch.nn.Parameter(torch.zeros(27, 64))
params = list(model.parameters()) + list(words.parameters()) + [positions]
ema = [p.detach().clone() for p in params]
opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
batch, text_len = 12, 12


def step():
    x0 = torch.rand(batch, 3, 16, 32, 32) * 2 - 1
    noise = torch.randn_like(x0)
    sigma = torch.rand(batch)
    s = sigma.view(batch, 1, 1, 1, 1)
    x_t = (1 - s) * x0 + s * noise
    ids = torch.randint(1, 51, (batch, text_len))
    text = words(ids) + positions[:text_len]
    out = model(hidden_states=x_t, timestep=sigma * 1000, encoder_hidden_states=text, return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(out, noise - x0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    with torch.no_grad():
        torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - 0.999)


n_params = sum(p.numel() for p in params)
step()
times = []
for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
print(f"pytorch {torch.__version__} threads {threads}: {n_params} parameters, "
      f"pretrain step median {statistics.median(times):.3f} s over {steps} steps")

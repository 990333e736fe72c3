#!/usr/bin/env python3
"""Checks that diffusers applies a LoRA file written by fym exactly as fym does.

usage: check-diffusers-lora.py MODEL_DIR LORA.safetensors INPUTS.safetensors FYM_OUTPUT.safetensors
Needs torch, diffusers and peft. Loads the model with diffusers, loads the LoRA with
`load_lora_adapter`, runs the forward on the inputs and compares with fym's `output`."""
import sys

import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import load_file

model_dir, lora, inputs, fym_out = sys.argv[1:5]
model = WanTransformer3DModel.from_pretrained(model_dir).eval()
# use_safetensors=True is what WanPipeline.load_lora_weights passes; it makes diffusers read the
# PEFT config (rank, alpha) from the file header.
model.load_lora_adapter(lora, prefix="transformer", adapter_name="fym", use_safetensors=True)
x = load_file(inputs)
with torch.no_grad():
    out = model(hidden_states=x["hidden_states"], timestep=x["timestep"],
                encoder_hidden_states=x["encoder_hidden_states"], return_dict=False)[0]
ref = load_file(fym_out)["output"]
base = WanTransformer3DModel.from_pretrained(model_dir).eval()
with torch.no_grad():
    out_base = base(hidden_states=x["hidden_states"], timestep=x["timestep"],
                    encoder_hidden_states=x["encoder_hidden_states"], return_dict=False)[0]
rel = ((out - ref).abs().max() / ref.abs().max()).item()
moved = ((out - out_base).abs().max() / out_base.abs().max()).item()
print(f"diffusers vs fym with the fym LoRA: max rel err {rel:.2e} (the LoRA moves the output by {moved:.2e})")
sys.exit(0 if rel < 1e-4 and moved > 1e-3 else 1)

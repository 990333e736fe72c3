#!/usr/bin/env python3
"""The PyTorch baseline for `fym bench --device cuda`: the same cases, timed the same way, printed
as the same JSON lines with device "cuda-torch"; with --fym FILE, a side-by-side Markdown table.

usage: bench-pytorch-cuda.py [--quick] [--only OP] [--fym FYM_JSONL]
Needs torch with CUDA. `fym bench --device cuda --json > fym.jsonl` then
`bench-pytorch-cuda.py --fym fym.jsonl` prints torch's rows, then the table.

What runs (bf16):
- gemm: torch.matmul(x, W.t()) with x [M, K], W [N, K] (cuBLAS, like an nn.Linear).
- attention: F.scaled_dot_product_attention restricted to the flash backend. SDPA has no
  block-sparse masks, so each fym mask mode is compared with its dense equivalent:
    full     = SDPA over [1, H, S, D];
    spatial  = SDPA with the frames as the batch: [F, H, T, D] (T tokens per frame);
    temporal = SDPA with the positions as the batch: [T, H, F, D].
  These compute exactly what fym's Spatial/Temporal masks compute. The reshapes to those layouts
  are done once, outside the timing (fym reads [B, S, H, D] directly, with no reshape).
  fwd_bwd is the forward then torch.autograd.grad of q, k, v, timed together.
FLOPs, shapes, frames and the dense bf16 peak table are those of src/perf_cuda.rs, so rows with
the same (op, shape, mode) compare directly. Timing: CUDA events around a batch of launches
sized to ~5 ms, median over repetitions, after a warm-up.
"""
import argparse
import json
import math
import sys
import time

# Keep in step with src/perf_cuda.rs.
PEAK_TABLE = [  # (substrings of the device name, dense bf16 TFLOP/s, part)
    (("H100", "PCIe"), 756.0, "H100 PCIe"),
    (("H100", "NVL"), 835.0, "H100 NVL"),
    (("H200", "NVL"), 835.0, "H200 NVL"),
    (("H100",), 989.0, "H100 SXM"),
    (("H200",), 989.0, "H200 SXM"),
    (("A100",), 312.0, "A100"),
    (("L40S",), 362.0, "L40S"),
]
ARCH_RATES = {(9, 0): (4096.0, 1830.0), (8, 0): (2048.0, 1410.0),
              (8, 6): (1024.0, 1740.0), (8, 9): (1024.0, 2520.0)}
TARGET_BATCH_MS = 5.0
MAX_BATCH = 200


def gpu_peak(name, cc, sms):
    """(TFLOP/s, source) as gpu_peak in src/perf_cuda.rs, or (nan, 'unknown')."""
    for keys, tflops, part in PEAK_TABLE:
        if all(k in name for k in keys):
            return tflops, f"NVIDIA spec for {part}"
    if cc in ARCH_RATES:
        per_clock, mhz = ARCH_RATES[cc]
        return sms * mhz * 1e6 * per_clock / 1e12, f"{sms} SMs x {mhz:.0f} MHz x {per_clock:.0f} flops/clock"
    return float("nan"), "unknown"


def gemm_cases(quick):
    return [(4096, 1536, 1536)] if quick else [(32760, 1536, 1536), (32760, 1536, 8960), (32760, 8960, 1536)]


def attention_cases(quick):
    """(seq, tokens per frame), batch 1, 12 heads x 128."""
    return [(4096, 256)] if quick else [(4096, 256), (16384, 1024), (32760, 1560)]


def attention_flops(heads, seq, keys, dim, backward):
    forward = 4.0 * heads * seq * keys * dim
    return 2.5 * forward if backward else forward


def time_ms(torch, fn, reps, budget_s):
    """Median ms per call of fn over batches of launches timed with CUDA events."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def batch(count):
        start.record()
        for _ in range(count):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    single = batch(1)
    count = max(1, min(MAX_BATCH, int(-(-TARGET_BATCH_MS // single)))) if single > 0 else MAX_BATCH
    times, t0 = [], time.monotonic()
    for _ in range(reps):
        times.append(batch(count) / count)
        if len(times) >= 3 and time.monotonic() - t0 > budget_s:
            break
    times.sort()
    return times[len(times) // 2]


def run(args, emit):
    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError as e:
        sys.exit(f"error: this script needs torch ≥ 2.3 with CUDA ({e}); try /opt/torch/.venv/bin/python")

    if not torch.cuda.is_available():
        sys.exit("error: torch sees no CUDA GPU; run on a machine with an NVIDIA GPU")
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    sms = props.multi_processor_count
    peak_tflops, source = gpu_peak(props.name, (props.major, props.minor), sms)
    print(f"torch {torch.__version__}: {props.name} (sm_{props.major}{props.minor}, {sms} SMs), "
          f"dense bf16 peak {peak_tflops:.0f} TFLOP/s ({source})", file=sys.stderr)
    peak_gflops = peak_tflops * 1e3
    known = math.isfinite(peak_gflops)
    reps, budget = (5, 0.3) if args.quick else (20, 2.0)
    wanted = lambda op: args.only is None or args.only in op
    gen = torch.Generator(device=dev).manual_seed(0)
    rand = lambda *shape: torch.rand(*shape, generator=gen, device=dev, dtype=torch.bfloat16) - 0.5

    def row(op, shape, mode, ms, flops):
        gflops = flops / (ms * 1e6)
        frac = gflops / peak_gflops if known else None
        emit({"op": op, "shape": shape, "mode": mode, "device": "cuda-torch", "threads": sms,
              "ms": ms, "gflops": gflops, "peak_frac": frac})

    emit({"op": "peak", "shape": [], "mode": None, "device": "cuda-torch", "threads": sms,
          "ms": 0.0, "gflops": peak_gflops if known else None, "peak_frac": 1.0})

    if wanted("gemm"):
        for m, k, n in gemm_cases(args.quick):
            x, w = rand(m, k), rand(n, k)
            out = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
            ms = time_ms(torch, lambda: torch.matmul(x, w.t(), out=out), reps, budget)
            row("gemm", [m, k, n], None, ms, 2.0 * m * n * k)
            del x, w, out

    want_fwd, want_bwd = wanted("attention_fwd"), wanted("attention_fwd_bwd")
    if not (want_fwd or want_bwd):
        return
    heads, dim = 12, 128
    for seq, tpf in attention_cases(args.quick):
        frames = seq // tpf
        # fym's layout [1, S, H, D], tokens frame-major.
        q, k, v, d_out = (rand(1, seq, heads, dim) for _ in range(4))
        layouts = {
            "full": (lambda t: t.transpose(1, 2), seq),
            "spatial": (lambda t: t.view(frames, tpf, heads, dim).transpose(1, 2), tpf),
            "temporal": (lambda t: t.view(frames, tpf, heads, dim).permute(1, 2, 0, 3), frames),
        }
        shape = [1, heads, seq, dim]
        for mode, (to_layout, keys) in layouts.items():
            qm, km, vm, dom = (to_layout(t).contiguous() for t in (q, k, v, d_out))
            fwd_flops = attention_flops(heads, seq, keys, dim, False)
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.no_grad():
                if want_fwd:
                    ms = time_ms(torch, lambda: F.scaled_dot_product_attention(qm, km, vm), reps, budget)
                    row("attention_fwd", shape, mode, ms, fwd_flops)
            if want_bwd:
                qg, kg, vg = (t.detach().requires_grad_() for t in (qm, km, vm))

                def fwd_bwd():
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        out = F.scaled_dot_product_attention(qg, kg, vg)
                    torch.autograd.grad(out, (qg, kg, vg), dom)

                ms = time_ms(torch, fwd_bwd, reps, budget)
                row("attention_fwd_bwd", shape, mode, ms,
                    fwd_flops + attention_flops(heads, seq, keys, dim, True))
                del qg, kg, vg
            del qm, km, vm, dom
        del q, k, v, d_out
        torch.cuda.empty_cache()


def key(r):
    return (r["op"], tuple(r["shape"]), r["mode"])


def read_jsonl(path):
    """JSON rows of a file, skipping other lines (a log may mix in stderr)."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def side_by_side(fym_rows, torch_rows):
    """A Markdown table of fym vs PyTorch per case."""
    torch_by_key = {key(r): r for r in torch_rows}
    pct = lambda r: "-" if r is None or r["peak_frac"] is None else f"{100 * r['peak_frac']:.1f}%"
    tf = lambda r: "-" if r is None else f"{r['gflops'] / 1e3:.1f}"
    ms = lambda r: "-" if r is None else f"{r['ms']:.3f}"
    lines = ["| op | shape | mode | fym ms | fym TFLOP/s | fym % peak | torch ms | torch TFLOP/s "
             "| torch % peak | fym speed vs torch |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in fym_rows:
        if r["op"] == "peak":
            continue
        t = torch_by_key.get(key(r))
        ratio = "-" if t is None else f"{t['ms'] / r['ms']:.2f}x"
        shape = "x".join(str(s) for s in r["shape"])
        lines.append(f"| {r['op']} | {shape} | {r['mode'] or '-'} | {ms(r)} | {tf(r)} | {pct(r)} "
                     f"| {ms(t)} | {tf(t)} | {pct(t)} | {ratio} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="PyTorch (cuBLAS, SDPA flash) baseline for `fym bench --device cuda`")
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer repetitions")
    parser.add_argument("--only", help="only ops whose name contains this")
    parser.add_argument("--fym", help="fym's `bench --device cuda --json` output, for the table")
    args = parser.parse_args()
    torch_rows = []

    def emit(r):
        torch_rows.append(r)
        print(json.dumps(r), flush=True)

    run(args, emit)
    if args.fym:
        print()
        print(side_by_side(read_jsonl(args.fym), torch_rows))


if __name__ == "__main__":
    main()

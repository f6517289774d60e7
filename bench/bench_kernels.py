"""The kernels under the engine's prefill and decode step, at Mistral-7B shapes: where the time can go.

    python bench/bench_kernels.py                 # on the GPU machine (one H200)
    python bench/bench_kernels.py --tokens 512 --batch 8 --width 256    # CPU smoke run

1. Prefill linear layers (`--tokens` rows, the decoder's prefill chunk): bf16 `F.linear` against fp8 e4m3
   `torch._scaled_mm` with row-wise scales (per-token activations, per-channel weights), timed on
   pre-quantized inputs and with the activation quantization included (eager, and compiled into one
   kernel on CUDA): TFLOP/s per shape.
2. The decode step's attention (`--batch` rows, a `--width` KV cache, grouped query heads stacked as in
   pipeline/inference/decoder.py): each SDPA backend that accepts the length mask, GB/s of keys/values read.
Not a test: it prints figures (and writes them as JSON with --json).
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

HIDDEN, INTER, HEADS, KV_HEADS, HEAD_DIM = 4096, 14336, 32, 8, 128
SHAPES = {  # name: (in features, out features) of one Mistral-7B layer's projections
    "q_proj": (HIDDEN, HIDDEN), "k_proj": (HIDDEN, KV_HEADS * HEAD_DIM), "o_proj": (HIDDEN, HIDDEN),
    "gate_proj": (HIDDEN, INTER), "down_proj": (INTER, HIDDEN),
}


def timed(fn, repeat: int) -> float:
    """Seconds per call of `fn` (after two warm-up calls)."""
    for _ in range(2):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - t) / repeat


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def linears(tokens: int, repeat: int, device: str) -> dict:
    from pipeline.inference.fp8 import quantize_rows, scaled_linear

    quant = torch.compile(quantize_rows) if device == "cuda" else quantize_rows
    out = {}
    for name, (k, n) in SHAPES.items():
        x = torch.randn(tokens, k, device=device, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=device, dtype=torch.bfloat16) / k ** 0.5
        wq, ws = quantize_rows(w)
        ws = ws.reshape(1, -1).contiguous()
        xq, xs = quantize_rows(x)
        flop = 2 * tokens * k * n
        row = {"bf16": timed(lambda: F.linear(x, w), repeat),
               "fp8_gemm_only": timed(lambda: torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws,
                                                              out_dtype=torch.bfloat16), repeat),
               "fp8_with_eager_quant": timed(lambda: scaled_linear(x, wq, ws), repeat),
               "fp8_with_compiled_quant": timed(lambda: scaled_linear(x, wq, ws, quant), repeat)}
        ref = F.linear(x, w).float()
        err = (scaled_linear(x, wq, ws).float() - ref).norm() / ref.norm()
        out[name] = {key: round(flop / s / 1e12, 1) for key, s in row.items()} | {"fp8_rel_error": round(err.item(), 4)}
        print(f"{name:<10} [{tokens} x {k}] -> {n}: " + ", ".join(f"{key} {v} TFLOP/s" for key, v in out[name].items()
                                                                   if key != "fp8_rel_error")
              + f"; fp8 relative error {err.item():.4f}", flush=True)
    return out


def decode_attention(batch: int, width: int, repeat: int, device: str) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    groups = HEADS // KV_HEADS
    q = torch.randn(batch, KV_HEADS, groups, HEAD_DIM, device=device, dtype=torch.bfloat16)
    keys = torch.randn(batch, KV_HEADS, width, HEAD_DIM, device=device, dtype=torch.bfloat16)
    values = torch.randn_like(keys)
    lengths = torch.randint(width // 2, width, (batch,), device=device)
    visible = (torch.arange(width, device=device)[None] <= lengths[:, None])[:, None, None]
    kv_bytes = 2 * keys.numel() * keys.element_size()
    out = {}
    backends = {"default": None, "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH,
                "cudnn": SDPBackend.CUDNN_ATTENTION}
    for name, backend in backends.items():
        def run():
            if backend is None:
                return F.scaled_dot_product_attention(q, keys, values, attn_mask=visible)
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, keys, values, attn_mask=visible)
        try:
            s = timed(run, repeat)
        except RuntimeError as e:
            print(f"decode attention {name:<10}: unavailable ({str(e).splitlines()[0][:80]})", flush=True)
            continue
        out[name] = {"ms": round(s * 1e3, 3), "gb_per_s": round(kv_bytes / s / 1e9, 1)}
        print(f"decode attention {name:<10}: {s * 1e3:7.3f} ms per layer, {kv_bytes / s / 1e9:7.1f} GB/s of "
              f"keys/values ({batch} rows x {width} cache)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=16_384, help="rows of a prefill chunk")
    ap.add_argument("--batch", type=int, default=256, help="decode rows")
    ap.add_argument("--width", type=int, default=1408, help="decode KV-cache width")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    figures = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
               "linear_tflops": linears(args.tokens, args.repeat, device),
               "decode_attention": decode_attention(args.batch, args.width, args.repeat, device)}
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()

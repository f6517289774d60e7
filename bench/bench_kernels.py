"""The kernels under the engine's prefill and decode step, at Mistral-7B shapes: where the time can go.

    python bench/bench_kernels.py                 # on the GPU machine (one H200)
    python bench/bench_kernels.py --tokens 512 --batch 8 --width 256    # CPU smoke run

1. Prefill linear layers (`--tokens` rows, the decoder's prefill chunk): bf16 `F.linear` against fp8 e4m3
   `torch._scaled_mm` with row-wise scales (per-token activations, per-channel weights), timed on
   pre-quantized inputs and with the activation quantization included (eager, and compiled into one
   kernel on CUDA): TFLOP/s per shape.
2. The prefill's compiled elementwise pieces (pipeline/inference/fused.py): every dimension symbolic
   against a constant last dimension, GB/s.
3. The decode step's attention (`--batch` rows, a `--width` KV cache, grouped query heads stacked as in
   pipeline/inference/decoder.py): each SDPA backend that accepts the length mask, and the Triton kernel
   (pipeline/inference/decode_attention.py) per `--triton-configs`; GB/s of the keys/values the rows see.
Not a test: it prints figures (and writes them as JSON with --json).
"""

import argparse
import contextlib
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


def graph_timed(fn, repeat: int, per_graph: int = 10) -> float:
    """Seconds per call of `fn` replayed from a CUDA graph of `per_graph` calls, as the decode step runs: the GPU's
    time without the host's launch overhead (which at small batches is most of an eager call)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(per_graph):
            fn()
    return timed(graph.replay, repeat) / per_graph


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


def elementwise(tokens: int, repeat: int) -> dict:
    """The prefill's compiled elementwise pieces (fp8 activation quantization, RMSNorm, SiLU x up) at `tokens` rows,
    compiled fully dynamic (every dimension symbolic) against `fused.compiled` (constant last dimension): GB/s of
    their inputs and outputs."""
    from pipeline.inference import fused
    from pipeline.inference.fp8 import quantize_rows

    out = {}
    for width in (HIDDEN, INTER):
        x = torch.randn(2, tokens // 2, width, device="cuda", dtype=torch.bfloat16)
        weight = torch.randn(width, device="cuda", dtype=torch.bfloat16)
        pieces = {"quant": (quantize_rows, (x,), 3), "rms_norm": (fused.rms_norm, (x, weight, 1e-5), 4),
                  "silu_mul": (fused.silu_mul, (x, x), 6)}  # bytes moved per element
        for name, (fn, args, per_element) in pieces.items():
            row = {}
            for mode, static in (("dynamic", False), ("static_width", True)):
                torch._dynamo.reset()
                fused.STATIC_WIDTHS = static
                run = fused.compiled(fn, "cuda", name)
                run(*[a[:1, :7] if isinstance(a, torch.Tensor) and a.dim() > 1 else a for a in args])  # another shape first: the dynamic compile
                s = timed(lambda: run(*args), repeat)
                row[mode] = round(x.numel() * per_element / s / 1e9, 1)
            fused.STATIC_WIDTHS = True
            out[f"{name}_{width}"] = row
            print(f"{name:<9} [{tokens} x {width}]: GB/s " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return out


def decode_attention(batch: int, width: int, new_tokens: int, repeat: int, device: str, configs: list[str]) -> dict:
    """One layer's decode attention, rows at lengths spread over the last `new_tokens` slots of a `width` cache (as
    in generation): each SDPA backend that takes the length mask, and the Triton kernel under `configs`
    ("block:warps:stages"), each replayed from a CUDA graph as in the decoder. GB/s counts the keys/values the rows
    can see (what must be read)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from pipeline.inference import decode_attention as kernel
    from pipeline.inference.attention import length_mask, length_masked_attention

    groups = HEADS // KV_HEADS
    q = torch.randn(batch, KV_HEADS, groups, HEAD_DIM, device=device, dtype=torch.bfloat16)
    keys = torch.randn(batch, KV_HEADS, width, HEAD_DIM, device=device, dtype=torch.bfloat16)
    values = torch.randn_like(keys)
    positions = torch.randint(max(0, width - new_tokens), width, (batch,), device=device)
    visible = length_mask(positions, width)
    seen_bytes = 2 * int((positions + 1).sum()) * KV_HEADS * HEAD_DIM * keys.element_size()
    expected = length_masked_attention(q.float(), keys.float(), values.float(), positions, HEAD_DIM ** -0.5)
    out = {}
    runs = {f"sdpa_{name}": backend for name, backend in [
        ("default", None), ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]}
    runs |= {f"triton_{config}": config for config in configs} if device == "cuda" else {}
    for name, how in runs.items():
        if name.startswith("triton"):
            kernel.BLOCK, kernel.WARPS, kernel.STAGES = map(int, how.split(":"))

            def run():
                return kernel.attend(q, keys, values, positions, HEAD_DIM ** -0.5)
        else:
            def run(backend=how):
                with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
                    return length_masked_attention(q, keys, values, positions, HEAD_DIM ** -0.5, visible)
        try:
            s = graph_timed(run, repeat) if device == "cuda" else timed(run, repeat)
        except RuntimeError as e:
            print(f"decode attention {name:<16}: unavailable ({str(e).splitlines()[0][:80]})", flush=True)
            continue
        error = (run().float() - expected).abs().max().item()
        out[name] = {"ms": round(s * 1e3, 3), "gb_per_s": round(seen_bytes / s / 1e9, 1), "max_abs_error": round(error, 5)}
        print(f"decode attention {name:<16}: {s * 1e3:7.3f} ms per layer, {seen_bytes / s / 1e9:7.1f} GB/s of the "
              f"visible keys/values ({batch} rows, {width} cache), max error vs float32 {error:.5f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=16_384, help="rows of a prefill chunk")
    ap.add_argument("--batch", type=int, default=256, help="decode rows")
    ap.add_argument("--width", type=int, default=1408, help="decode KV-cache width")
    ap.add_argument("--new-tokens", type=int, default=128, help="decode rows' lengths spread over the cache's last N slots")
    ap.add_argument("--decode-batches", default=None, help="comma list of decode batch sizes (default: --batch)")
    ap.add_argument("--triton-configs", default="64:4:3", help="Triton decode kernel configs, block:warps:stages,...")
    ap.add_argument("--skip-linears", action="store_true")
    ap.add_argument("--skip-elementwise", action="store_true")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    figures = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    if not args.skip_linears:
        figures["linear_tflops"] = linears(args.tokens, args.repeat, device)
    if device == "cuda" and not args.skip_elementwise:
        figures["elementwise_gb_per_s"] = elementwise(args.tokens, args.repeat)
    for batch in map(int, (args.decode_batches or str(args.batch)).split(",")):
        figures[f"decode_attention_batch_{batch}"] = decode_attention(
            batch, args.width, args.new_tokens, args.repeat, device, args.triton_configs.split(","))
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()

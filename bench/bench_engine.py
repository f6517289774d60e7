"""Inference engine throughput on the Mistral-7B-v0.3 architecture (random weights, real v3 tokenizer).

    python bench/bench_engine.py --prompts 256 --new-tokens 128            # on the GPU machine

Side by side in one process, same model object, ~1,000-token prompts:
  1. the original plan's loop: one example at a time through `pipeline("text-generation")`;
  2. the engine's batched greedy `generate` (batches by prompt length, left padding) at several
     batch sizes and KV-cache kinds: output tokens/s;
  3. the engine's verdict-only triage (`verdict_probability`, one forward pass): conversations/s.
Random weights rarely emit EOS, so every sequence runs the full budget: tokens/s is the decode rate.
"""

import argparse
import json
import time

import torch


def build_model(preset: str):
    from transformers import MistralConfig, MistralForCausalLM

    from pipeline.models import MISTRAL_7B, TINY_MISTRAL, mistral_v3_tokenizer

    tok = mistral_v3_tokenizer()
    shape = {"7b": MISTRAL_7B, "tiny": TINY_MISTRAL}[preset]
    cfg = MistralConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = MistralForCausalLM(cfg).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model.eval(), tok


def communications(tok, n: int, target_tokens: int) -> list[str]:
    """Synthetic communications padded with more turns until the prompt is about `target_tokens`."""
    from pipeline.synth import generate_items

    out = []
    items = generate_items(n + 50, seed=3)
    pool = [it[k]["scenario"] for it in items for k in ("compliant_version", "non_compliant_version")]
    for i in range(n):
        text, j = pool[i], i + 1
        while len(tok(text, add_special_tokens=False)["input_ids"]) < target_tokens - 200:
            text += "\n" + pool[j % len(pool)]
            j += 1
        out.append(text)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="7b", choices=["7b", "tiny"])
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--baseline-examples", type=int, default=4)
    ap.add_argument("--batch-sizes", default="64,128,256")
    ap.add_argument("--caches", default="dynamic,static")
    ap.add_argument("--attn", default="sdpa,sdpa_gqa", help="attention kernels to compare")
    ap.add_argument("--variants", default=None,
                    help="explicit attn:cache:batch list (e.g. sdpa_gqa:dynamic:128,sdpa_gqa:static:256); "
                    "overrides --attn/--caches/--batch-sizes")
    ap.add_argument("--prefill-chunk", type=int, default=None, help="chunked prefill size (tokens)")
    ap.add_argument("--compile", action="store_true", help="also torch.compile the decode step (static cache)")
    ap.add_argument("--triage", type=int, default=512)
    ap.add_argument("--triage-batch", default="16,32,64")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    from transformers import pipeline as hf_pipeline

    from pipeline.config import EngineConfig
    from pipeline.engine import Detector

    t0 = time.time()
    model, tok = build_model(args.preset)
    texts = communications(tok, max(args.prompts, args.triage), args.prompt_tokens)
    figures = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "build_s": round(time.time() - t0, 1)}
    from pipeline.attention import register

    register()
    engine = Detector(EngineConfig(model="unused", max_new_tokens=args.new_tokens), model=model, tokenizer=tok)
    lengths = [len(p) for p in engine.encode_prompts(texts)]
    figures["prompt_tokens_mean"] = round(sum(lengths) / len(lengths))
    print(json.dumps(figures), flush=True)

    # 1. The plan's loop: one example at a time through a text-generation pipeline (greedy here).
    pipe = hf_pipeline("text-generation", model=model, tokenizer=tok)
    pipe(engine.formatter.prompt(texts[0]), max_new_tokens=8, do_sample=False)  # warm-up
    sync()
    t = time.time()
    produced = 0
    for text in texts[: args.baseline_examples]:
        out = pipe(engine.formatter.prompt(text), max_new_tokens=args.new_tokens, do_sample=False,
                   return_full_text=False)
        produced += len(tok(out[0]["generated_text"], add_special_tokens=False)["input_ids"])
    sync()
    figures["plan_loop_tokens_per_s"] = round(produced / (time.time() - t), 1)
    print(f"plan loop (pipeline, batch 1): {figures['plan_loop_tokens_per_s']} output tokens/s", flush=True)

    # 2. Engine generation.
    variants = [(a, c, bs) for a in args.attn.split(",") for c in args.caches.split(",")
                for bs in map(int, args.batch_sizes.split(","))]
    if args.variants:
        variants = [(a, c, int(bs)) for a, c, bs in (v.split(":") for v in args.variants.split(","))]
    for attn, cache, bs in variants:
        torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
        model.set_attn_implementation(attn)
        engine.cfg = EngineConfig(model="unused", max_new_tokens=args.new_tokens, batch_size=bs,
                                  attn_implementation=attn, compile=args.compile,
                                  prefill_chunk_size=args.prefill_chunk,
                                  cache_implementation=None if cache == "dynamic" else cache)
        try:
            # Warm-up. A static cache compiles (and records CUDA graphs) once per batch shape, so it
            # warms up on the whole set: the timed pass is the steady state of a long scoring job.
            t = time.time()
            engine.generate(texts[: args.prompts] if cache == "static" else texts[:8])
            sync()
            warm_s = time.time() - t
            t = time.time()
            gens = engine.generate(texts[: args.prompts])
            sync()
            seconds = time.time() - t
        except torch.OutOfMemoryError:
            print(f"engine generate {attn} batch {bs} cache {cache}: out of memory", flush=True)
            torch.cuda.empty_cache()
            continue
        rate = sum(g.new_tokens for g in gens) / seconds
        figures[f"engine_{attn}_{cache}_b{bs}_tokens_per_s"] = round(rate, 1)
        print(f"engine generate {attn:<8} batch {bs:>3} cache {cache:<7}: {rate:8.1f} output tokens/s  "
              f"({args.prompts} prompts in {seconds:.1f}s, warm-up {warm_s:.1f}s, peak {peak_gib():.1f} GiB)", flush=True)

    # 3. Triage: verdict probability only.
    for bs in map(int, args.triage_batch.split(",")):
        engine.cfg = EngineConfig(model="unused", batch_size=bs)
        engine.verdict_probability(texts[:bs])
        sync()
        t = time.time()
        engine.verdict_probability(texts[: args.triage])
        sync()
        rate = args.triage / (time.time() - t)
        figures[f"triage_b{bs}_conversations_per_s"] = round(rate, 1)
        print(f"engine triage batch {bs:>3}: {rate:8.1f} conversations/s (peak {peak_gib():.1f} GiB)", flush=True)
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


if __name__ == "__main__":
    main()

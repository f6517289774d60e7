"""Inference engine throughput on the Mistral-7B-v0.3 architecture (random weights, real v3 tokenizer).

    python bench/bench_engine.py --prompts 512 --new-tokens 128            # on the GPU machine
    # issue 15, one GPU call: generate vs today's decoder vs the grammar vs grammar + drafts, triage with and
    # without the shared prefix, short-message triage
    python bench/bench_engine.py --prompts 512 --new-tokens 128 --variants generate:sdpa_gqa:dynamic:128,static:256,static_grammar:256,static_grammar:auto,static_draft:256
    # CPU smoke run with the tiny model
    python bench/bench_engine.py --preset tiny --prompts 8 --new-tokens 32 --baseline-examples 1 --triage 16 --triage-batch 8 \
        --short-triage 16 --variants static:8,static:auto,static_grammar:8,static_draft:8,generate_grammar:sdpa_gqa:dynamic:8
    python bench/bench_engine.py --embedded --prompts 8 --new-tokens 96    # CPU: the embedded model

Side by side in one process, same model object, ~1,000-token prompts:
  1. the original plan's loop: one example at a time through `pipeline("text-generation")`;
  2. the engine's batched greedy generation (batches by prompt length), with each decoder:
     `static:BATCH` is complyray's loop (pipeline/inference/decoder.py: preallocated KV cache, CUDA-graph
     decode step), `generate:ATTN:CACHE:BATCH` is transformers' generate (left padding); BATCH `auto`
     sizes every batch from free GPU memory (engine.memory_batching), a trailing `:noprefix` prefills
     every prompt in full (engine.shared_prefix=false), a trailing `:fp8` prefills the prompts with float8
     linear layers (engine.fp8_prefill; answers compared with the same variant's bf16 ones), a trailing `:sdpa`
     decodes with SDPA's length-masked attention instead of the Triton kernel (pipeline/inference/decode_attention.py),
     a trailing `:serial` runs the grammar loop unpipelined (each step waits for the host's matchers);
     output tokens/s, timed over the whole set twice:
     cold (graph captures / compilation included) and warm.
     Under the verdict grammar (pipeline/inference/grammar.py): `static_grammar:BATCH` masks each step's
     logits (after the CUDA graph's replay), `static_draft:BATCH` adds jump-forward and prompt-lookup
     drafts verified in one pass each (an eager loop, pipeline/inference/drafting.py),
     `generate_grammar:ATTN:CACHE:BATCH` is transformers' generate with the grammar as a logits processor;
     `static` and `generate` decode freely (the pre-grammar figures);
  3. the engine's verdict-only triage (`Detector.score`, one forward pass), through the static
     decoder's prefill and through transformers' forward pass, with and without the shared prefix
     (the template's start and the instruction computed once): conversations/s;
  4. the same triage of short messages (median `--short-tokens` tokens of communication text plus the
     instruction, like chat lines of an archive): messages/s, with and without the shared prefix.
Random weights rarely emit EOS, so every sequence runs the full budget: tokens/s is the decode rate (under
the grammar a random model's strings never close: answers are verdict-shaped but truncated; --max-field-chars
bounds the text fields so they end).

`--embedded` instead measures the embedded model (SmolLM2-135M, `model: embedded`) on this machine's CPU:
free, constrained step by step, and constrained with drafts, output tokens/s on --prompts communications.
"""

import argparse
import json
import time

import torch


def build_model(preset: str):
    from transformers import MistralConfig, MistralForCausalLM

    from pipeline.testing import MISTRAL_7B, TINY_MISTRAL, mistral_v3_tokenizer

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


def short_messages(tok, n: int, median: int, seed: int = 5) -> list[str]:
    """`n` communications of about `median` tokens (log-normal spread, 20 to 4x median): cut from synthetic ones."""
    import random

    from pipeline.synth import generate_items

    rng = random.Random(seed)
    items = generate_items(max(8, n // 2 + 8), seed=seed)
    pool = [it[k]["scenario"] for it in items for k in ("compliant_version", "non_compliant_version")]
    out = []
    for i in range(n):
        target = min(4 * median, max(20, round(median * rng.lognormvariate(0, 0.5))))
        ids, j = [], i
        while len(ids) < target:
            ids += tok(pool[j % len(pool)] + "\n", add_special_tokens=False)["input_ids"]
            j += 1
        out.append(tok.decode(ids[:target]))
    return out


def triage(engine, texts: list[str], batches: list[str], label: str, figures: dict, decoders: dict,
           json_path: str | None = None) -> None:
    """Verdict-probability rate over `texts` for each decoder (name: StaticDecoder or None for transformers'
    forward), batch size and shared-prefix setting. A `static_fp8` decoder's probabilities are compared with
    the bf16 static decoder's (same batch, shared prefix)."""
    from pipeline.inference.config import EngineConfig

    prompts = engine.encode_prompts(texts)
    reference = {}
    for name, decoder in decoders.items():
        release(*decoders.values())
        engine.decoder = decoder
        for bs in batches:
            for shared in (True, False):
                auto = bs == "auto"
                engine.cfg = EngineConfig(batch_size=64 if auto else int(bs), memory_batching=auto,
                                          shared_prefix=shared)
                key = f"{label}_{name}_b{bs}_{'prefix' if shared else 'noprefix'}"
                try:
                    engine.score(prompts[:64])  # warm-up (and the prefix, computed once)
                    sync()
                    t = time.time()
                    scores = engine.score(prompts)
                    sync()
                except torch.OutOfMemoryError:
                    print(f"engine {label} {name} batch {bs}: out of memory", flush=True)
                    figures[f"{key}_per_s"] = "out of memory"
                    torch.cuda.empty_cache()
                    continue
                rate = len(prompts) / (time.time() - t)
                figures[f"{key}_per_s"] = round(rate, 1)
                save(figures, json_path)  # a call cut short keeps what it measured
                print(f"engine {label} {name:<10} batch {bs:>4} {'shared prefix' if shared else 'full prefill '}: "
                      f"{rate:8.1f} /s (peak {peak_gib():.1f} GiB)", flush=True)
                if shared and name in ("static", "static_fp8"):
                    reference.setdefault(name, scores.probability)
    if {"static", "static_fp8"} <= reference.keys():
        import numpy as np

        a, b = np.asarray(reference["static"]), np.asarray(reference["static_fp8"])
        figures[f"{label}_fp8_vs_bf16"] = diff = {
            "max_abs_probability_diff": round(float(np.abs(a - b).max()), 4),
            "mean_abs_probability_diff": round(float(np.abs(a - b).mean()), 4),
            "verdicts_agree_at_0.5": round(float(((a >= 0.5) == (b >= 0.5)).mean()), 4),
            "probability_range_bf16": [round(float(a.min()), 4), round(float(a.max()), 4)]}
        print(f"engine {label} fp8 vs bf16 prefill: {diff}", flush=True)


def profile_triage(engine, prompts: list[list[int]], decoder, label: str, figures: dict) -> None:
    """Kernel time of one warm triage (`Detector.score`, shared prefix, memory-sized batches) of `prompts` through
    `decoder`'s prefill: the top CUDA kernels, to see what besides the matmuls takes the time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from pipeline.inference.config import EngineConfig

    engine.decoder = decoder
    engine.cfg = EngineConfig(batch_size=64, memory_batching=True, shared_prefix=True)
    engine.score(prompts)
    sync()
    t = time.time()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        engine.score(prompts)
        sync()
    seconds = time.time() - t
    events = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)
    kernels = [e for e in events if e.device_type.name == "CUDA"]  # device kernels only, not the aten ops above them
    total = sum(e.device_time_total for e in kernels) / 1e3
    print(f"profile {label}: {len(prompts)} prompts in {seconds:.2f} s under the profiler, {total:.0f} ms of kernels",
          flush=True)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=90), flush=True)
    figures[f"profile_{label}"] = {"seconds": round(seconds, 2), "kernel_ms": round(total, 1), "top_kernels": [
        {"name": e.key[:90], "cuda_ms": round(e.device_time_total / 1e3, 1), "calls": e.count} for e in kernels[:25]]}


def profile(engine, prompts: list[list[int]], decoder, figures: dict) -> None:
    """Kernel time of one warm generation of `prompts` with `decoder`'s decode steps run eagerly (a captured
    graph hides its kernels from the profiler): the top CUDA kernels."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    graphs, decoder.graphs = decoder.graphs, False
    engine.decoder = decoder
    engine.generate(prompts)
    sync()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        engine.generate(prompts)
        sync()
    decoder.graphs = graphs
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70)
    print(table, flush=True)
    figures["profile_top_kernels"] = [
        {"name": e.key[:90], "cuda_ms": round(e.device_time_total / 1e3, 1), "calls": e.count}
        for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:25]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="7b", choices=["7b", "tiny"])
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--baseline-examples", type=int, default=4)
    ap.add_argument("--variants", default="generate:sdpa_gqa:dynamic:128,static:128,static:256",
                    help="comma list of KIND:BATCH[:PREFILL_TOKENS] for KIND static|static_grammar|static_draft and "
                    "KIND:ATTN:CACHE:BATCH for KIND generate|generate_grammar (ATTN sdpa|sdpa_gqa, CACHE "
                    "dynamic|static); *_grammar / static_draft decode under the verdict grammar")
    ap.add_argument("--max-field-chars", type=int, default=None,
                    help="grammar variants: bound text fields (engine.max_field_chars) so answers end")
    ap.add_argument("--embedded", action="store_true",
                    help="only the embedded model on the CPU: free vs constrained vs constrained + drafts")
    ap.add_argument("--prefill-chunk", type=int, default=None, help="generate only: chunked prefill (tokens)")
    ap.add_argument("--compile", action="store_true", help="generate only: torch.compile the decode step (static cache)")
    ap.add_argument("--triage", type=int, default=512)
    ap.add_argument("--triage-batch", default="16,32,64,auto", help="comma list of batch sizes or auto (memory)")
    ap.add_argument("--short-triage", type=int, default=2048, help="short messages to triage (0: skip)")
    ap.add_argument("--short-tokens", type=int, default=150, help="median communication tokens of a short message")
    ap.add_argument("--fp8", nargs="?", const="with", choices=["with", "only"],
                    help="triage also through the static decoder with fp8 prefill (engine.fp8_prefill), its probabilities "
                    "compared with bf16's; `only`: leave out transformers' forward")
    ap.add_argument("--profile", type=int, default=0,
                    help="profile one warm generation of this many prompts (eager decode steps): top CUDA kernels")
    ap.add_argument("--profile-triage", type=int, default=0,
                    help="profile one warm triage of this many conversations and of as many short messages "
                    "(bf16, and fp8 with --fp8): top CUDA kernels")
    ap.add_argument("--dynamic-widths", action="store_true",
                    help="compile the prefill's elementwise pieces with every dimension symbolic (the previous way)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.embedded:
        return embedded_cpu(args)
    from transformers import pipeline as hf_pipeline

    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector

    if args.dynamic_widths:
        from pipeline.inference import fused

        fused.STATIC_WIDTHS = False
    t0 = time.time()
    model, tok = build_model(args.preset)
    texts = communications(tok, max(args.prompts, args.triage), args.prompt_tokens)
    figures = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "build_s": round(time.time() - t0, 1)}
    from pipeline.inference.attention import register

    register()
    engine = Detector(DetectorModelConfig(name_or_path="unused"),
                      EngineConfig(max_new_tokens=args.new_tokens, max_field_chars=args.max_field_chars),
                      model=model, tokenizer=tok)
    grammar = engine.grammar
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
    from pipeline.inference.decoder import PREFILL_TOKENS, StaticDecoder

    static = static_fp8 = None
    outputs: dict[str, list[str]] = {}
    for variant in filter(None, args.variants.split(",")):
        kind, *spec = variant.split(":")
        flags = {f for f in ("fp8", "noprefix", "sdpa", "serial") if f in spec}  # static kinds: trailing options
        spec = [p for p in spec if p not in flags]
        fp8, shared = "fp8" in flags, "noprefix" not in flags
        bs_spec = spec[0] if kind.startswith("static") else spec[-1]
        auto = bs_spec == "auto"
        bs = 64 if auto else int(bs_spec)
        torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
        engine.grammar = grammar if kind.endswith(("_grammar", "_draft")) else None
        bounds = dict(constrained=engine.grammar is not None, max_field_chars=args.max_field_chars)
        release(static, static_fp8)  # one KV cache at a time; none while generate runs
        if kind.startswith("static"):
            if fp8:
                static_fp8 = static_fp8 or StaticDecoder(model, graphs=True, fp8=True)
            else:
                static = static or StaticDecoder(model, graphs=True)
            current = static_fp8 if fp8 else static
            # The decode step's attention: the decoder's own choice (Triton on CUDA) unless `:sdpa` says otherwise.
            current.decode_kernel = "sdpa" if "sdpa" in flags or not torch.cuda.is_available() else "triton"
            # `:serial`: the grammar loop before pipelining (an instance attribute shadows the method).
            current.__dict__.pop("_decode_constrained", None)
            if "serial" in flags:
                current._decode_constrained = serial_constrained_loop.__get__(current)
            current.prefill_tokens = int(spec[1]) if len(spec) > 1 else PREFILL_TOKENS
            engine.cfg = EngineConfig(max_new_tokens=args.new_tokens, batch_size=bs, decoder="static", **bounds,
                                      memory_batching=auto, shared_prefix=shared,
                                      draft="always" if kind == "static_draft" else "never")
            engine.decoder = current
            current.draft_stats = dict.fromkeys(current.draft_stats, 0)
        else:
            attn, cache = spec[0], spec[1]
            model.set_attn_implementation(attn)
            engine.cfg = EngineConfig(max_new_tokens=args.new_tokens, batch_size=bs, **bounds,
                                      attn_implementation=attn, compile=args.compile, decoder="generate",
                                      prefill_chunk_size=args.prefill_chunk, memory_batching=auto,
                                      shared_prefix=shared, cache_implementation=None if cache == "dynamic" else cache)
            engine.decoder = None
        try:
            passes = []
            for _ in range(2):  # cold (captures, compilation), then warm: a long scoring job's steady state
                t = time.time()
                gens = engine.generate(engine.encode_prompts(texts[: args.prompts]))
                sync()
                passes.append(sum(g.new_tokens for g in gens) / (time.time() - t))
        except torch.OutOfMemoryError:
            print(f"engine {variant}: out of memory", flush=True)
            torch.cuda.empty_cache()
            continue
        figures[f"engine_{variant}_answers"] = answer_counts(gens, texts)
        outputs[variant] = [g.text for g in gens]
        if kind.startswith("static"):
            figures[f"engine_{variant}_seconds"] = {k: round(v, 1) for k, v in current.seconds.items()}
            current.seconds = dict.fromkeys(current.seconds, 0.0)
            if kind == "static_draft":
                figures[f"engine_{variant}_drafts"] = dict(current.draft_stats)
            # The same variant without fp8 prefill / with the Triton decode attention / pipelined, when it ran before.
            for flag, label in (("fp8", "bf16 prefill"), ("sdpa", "Triton decode attention"),
                                ("serial", "pipelined grammar loop")):
                other = ":".join(p for p in variant.split(":") if p != flag)
                if flag in flags and other in outputs:
                    same = sum(a == b for a, b in zip(outputs[variant], outputs[other]))
                    figures[f"engine_{variant}_same_answers_as_{other}"] = f"{same}/{len(gens)}"
                    print(f"engine {variant}: {same} of {len(gens)} answers identical to the {label}'s ({other})",
                          flush=True)
        figures[f"engine_{variant}_tokens_per_s"] = round(passes[1], 1)
        figures[f"engine_{variant}_cold_tokens_per_s"] = round(passes[0], 1)
        print(f"engine {variant:<28}: {passes[1]:8.1f} output tokens/s warm, {passes[0]:8.1f} cold "
              f"({args.prompts} prompts x {args.new_tokens} new, peak {peak_gib():.1f} GiB)", flush=True)
        save(figures, args.json)

    # 3. Triage: verdict probability only, through the static decoder's right-padded prefill and
    #    through transformers' left-padded forward pass, with and without the shared prefix.
    static = static or StaticDecoder(model, graphs=True)
    if args.profile:
        engine.cfg = EngineConfig(max_new_tokens=args.new_tokens, batch_size=args.profile, decoder="static",
                                  memory_batching=False, constrained=False)
        engine.grammar = None
        release(static, static_fp8)
        profile(engine, engine.encode_prompts(texts[: args.profile]), static, figures)
        save(figures, args.json)
    decoders = {"static": static, "hf_forward": None}
    if args.fp8:
        static_fp8 = static_fp8 or StaticDecoder(model, graphs=True, fp8=True)
        decoders = {"static": static, "static_fp8": static_fp8} | ({} if args.fp8 == "only" else {"hf_forward": None})
    batches = args.triage_batch.split(",")
    if args.profile_triage:
        n = args.profile_triage
        short = engine.encode_prompts(short_messages(tok, n, args.short_tokens))
        for name in [k for k in decoders if k.startswith("static")]:
            release(*decoders.values())
            profile_triage(engine, engine.encode_prompts(texts[:n]), decoders[name], f"triage_{name}", figures)
            profile_triage(engine, short, decoders[name], f"short_triage_{name}", figures)
        save(figures, args.json)
    if args.triage:
        triage(engine, texts[: args.triage], batches, "triage", figures, decoders, args.json)
        save(figures, args.json)
    # 4. Short messages: the instruction is most of each prompt, so sharing it matters most.
    if args.short_triage:
        short = short_messages(tok, args.short_triage, args.short_tokens)
        own = sorted(len(tok(t, add_special_tokens=False)["input_ids"]) for t in short)
        figures["short_communication_tokens_median"] = own[len(own) // 2]
        figures["short_prompt_tokens_mean"] = round(sum(map(len, engine.encode_prompts(short))) / len(short))
        figures["shared_prefix_tokens"] = len(engine.prefix.ids)
        print(f"short messages: median {own[len(own) // 2]} communication tokens, "
              f"{figures['short_prompt_tokens_mean']} prompt tokens on average, "
              f"{len(engine.prefix.ids)} of them the shared prefix", flush=True)
        triage(engine, short, batches, "short_triage", figures, decoders, args.json)

    print(json.dumps(figures, indent=1))
    save(figures, args.json)


def serial_constrained_loop(decoder, step, constraint, out, done, tokens, positions, eos, pad_id) -> None:
    """The static decoder's grammar loop as it was before it was pipelined (the `:serial` baseline): launch step i,
    mask, choose, then wait for the whole step and advance the matchers before launching step i+1."""
    for i in range(1, out.shape[1]):
        logits = step()
        constraint.mask(logits)
        nxt = logits.argmax(-1)
        out[:, i] = torch.where(done, pad_id, nxt)
        done |= torch.isin(nxt, eos)
        tokens.copy_(nxt)
        positions.add_(1)
        for row, token in enumerate(nxt.tolist()):
            constraint.accept(row, token)
        if bool(done.all()):
            break


def release(*decoders) -> None:
    """Free the KV caches and graphs of the static decoders given (None: transformers' path, nothing to free)."""
    for decoder in decoders:
        if decoder is not None:
            decoder.release()


def save(figures: dict, path: str | None) -> None:
    """Write the figures so far (a later section that fails leaves the earlier ones)."""
    if path:
        with open(path, "w") as f:
            json.dump(figures, f, indent=1)


def answer_counts(gens, texts) -> dict:
    """How the answers of one pass read: {parse status: count} (read_verdict, as evaluation reads them)."""
    from collections import Counter

    from pipeline.inference.verdicts import read_verdict

    return dict(Counter(read_verdict(g, t).parsed.status for g, t in zip(gens, texts)))


def embedded_cpu(args) -> None:
    """The embedded model on the CPU: output tokens/s free, under the grammar, and with drafts (warm pass)."""
    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector

    figures = {"device": "cpu", "threads": torch.get_num_threads(), "prompts": args.prompts,
               "new_tokens": args.new_tokens}
    base = Detector(DetectorModelConfig(name_or_path="embedded"),
                    EngineConfig(device="cpu", max_new_tokens=args.new_tokens, batch_size=args.prompts,
                                 max_field_chars=args.max_field_chars))
    from pipeline.synth import generate_items

    items = generate_items(args.prompts, seed=5)
    pool = [it[k]["scenario"] for it in items for k in ("non_compliant_version", "compliant_version")]
    texts = pool[: args.prompts]
    prompts = base.encode_prompts(texts)
    figures["dtype"] = str(base.dtype)
    figures["prompt_tokens_mean"] = round(sum(map(len, prompts)) / len(prompts))
    grammar = base.grammar
    base.generate(prompts[:1])  # warm-up: thread pools, first allocations
    for name, constrained, draft in (("free", False, "never"), ("constrained", True, "never"),
                                     ("constrained_draft", True, "always")):
        base.cfg = base.cfg.model_copy(update={"constrained": constrained, "draft": draft})
        base.grammar = grammar if constrained else None
        base.decoder.draft_stats = dict.fromkeys(base.decoder.draft_stats, 0)
        t = time.time()
        gens = base.generate(prompts)
        seconds = time.time() - t
        tokens = sum(g.new_tokens for g in gens)
        figures[name] = {"tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 1),
                         "new_tokens": tokens, "answers": answer_counts(gens, texts)}
        if draft == "always":
            figures[name]["drafts"] = dict(base.decoder.draft_stats)
        print(f"embedded {name:<18}: {tokens / seconds:7.1f} output tokens/s ({tokens} tokens in {seconds:.1f} s) "
              f"{figures[name]['answers']}", flush=True)
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

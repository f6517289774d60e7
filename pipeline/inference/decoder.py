"""Greedy decoding over a preallocated KV cache, with the decode step replayed as a CUDA graph.

HF ``generate`` spends most of a batched decode step on the host (cache bookkeeping, mask building,
hundreds of small kernel launches): on an H100 a 7B step at batch 128 took ~56 ms against a ~23 ms
memory bound. This loop runs the same modules of a Llama-family model (Llama, Mistral; LoRA merged
or not) through a fixed-shape step:

* **prefill** right-pads each group of prompts, so causal attention needs no mask (flash kernel),
  and writes every layer's keys/values into the cache rows; the first token comes from each row's
  last real position;
* **decode** feeds one token per row at its own position, writes its key/value there, and attends
  over the cache up to the row's length, grouped-query heads stacked so each cached key/value is
  read once (on CUDA a Triton flash-decoding kernel, `decode_attention.py`; elsewhere SDPA with a
  length mask). On CUDA that step is captured once per (batch, cache width) and replayed: one launch.

Positions count from each prompt's first token, as HF does with left padding, so answers match
``generate`` (greedy, same weights) up to floating-point ties. With a shared prefix (the template's
start and the instruction, `pipeline/inference/prefix.py`) its keys/values, computed once, fill
positions 0..P-1 of every row and prefill runs each row's own tokens only, from position P.
Finished rows keep computing (their tokens are ignored) so shapes never change; the host checks for
the end every few steps only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

log = logging.getLogger(__name__)

SUPPORTED = ("llama", "mistral")
WIDTH_STEP = 128  # cache widths rounded up to this: one captured graph serves many batches
PREFILL_TOKENS = 16_384  # default padded prompt tokens per prefill call: bounds activation memory (MLP ~0.5 GB on 7B)
SYNC_EVERY = 16  # decode steps between host checks for "all rows finished"


def _causal_lm(model):
    """The transformers causal LM inside `model` (a PEFT wrapper or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unsupported_reason(model) -> str | None:
    """Why `model` cannot use this loop (None when it can): architecture, sliding window, extras."""
    base = _causal_lm(model)
    cfg = base.config
    if cfg.model_type not in SUPPORTED:
        return f"model_type {cfg.model_type!r} is not one of {SUPPORTED}"
    if getattr(cfg, "sliding_window", None):
        return f"sliding_window={cfg.sliding_window} attention is not implemented here"
    if not hasattr(base, "model") or not hasattr(base.model, "rotary_emb"):
        return "the model has no decoder stack with rotary embeddings"
    return None


def _norm(module) -> tuple:
    """An RMSNorm module's (weight, epsilon), as `fused.rms_norm` takes them."""
    return module.weight, getattr(module, "variance_epsilon", None) or module.eps


class StaticDecoder:
    """Batched greedy decoding for one loaded Llama-family model (build once, reuse for every batch).

    `graphs=True` (CUDA only) captures the decode step per (batch size, cache width); on CPU the same
    step runs eagerly, which is how the tests check it against ``generate``. `prefill_tokens` bounds the
    padded prompt tokens of one prefill call. `fp8=True` runs the prompts' prefill (not the shared prefix's,
    not the decode step) with float8 linear layers (`pipeline/inference/fp8.py`). `decode_kernel` is the decode
    step's attention: "triton" (`pipeline/inference/decode_attention.py`: each row reads only its own length of
    the cache), "sdpa" (a length mask over the whole cache width), "auto": triton on CUDA, sdpa elsewhere.
    """

    def __init__(self, model, graphs: bool, prefill_tokens: int = PREFILL_TOKENS, fp8: bool = False,
                 decode_kernel: str = "auto"):
        import torch

        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"the static decoder cannot run this model: {reason}; use engine.decoder=generate")
        base = _causal_lm(model)
        cfg = base.config
        self.prefill_tokens = prefill_tokens
        self.stack, self.lm_head = base.model, base.lm_head
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scaling = getattr(self.stack.layers[0].self_attn, "scaling", self.head_dim ** -0.5)
        weight = self.lm_head.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.graphs = graphs and self.device.type == "cuda"
        positions = torch.arange(cfg.max_position_embeddings, device=self.device)[None]
        probe = torch.zeros(1, dtype=self.dtype, device=self.device)
        with torch.inference_mode():
            cos, sin = self.stack.rotary_emb(probe, positions)
        self.cos, self.sin = cos[0], sin[0]  # [positions, head_dim]
        self._storage: list[torch.Tensor] = []  # per layer: keys and values of every row, flat
        self._captured: dict[tuple[int, int], tuple] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.graphs else None
        from pipeline.inference.fused import FusedPrefill

        self.fused = FusedPrefill(self.device.type)
        # SwiGLU MLP (Llama, Mistral): the prefill runs its activation fused; another activation runs the module.
        mlp = self.stack.layers[0].mlp
        self.swiglu = getattr(cfg, "hidden_act", None) == "silu" and all(
            hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj"))
        if decode_kernel not in ("auto", "triton", "sdpa"):
            raise ValueError(f"decode_kernel must be auto, triton or sdpa, not {decode_kernel!r}")
        # The kernel's tiles need a power-of-two head size of 16 or more; off CUDA it runs only in Triton's
        # interpreter (the CPU tests).
        fits = self.head_dim >= 16 and self.head_dim & (self.head_dim - 1) == 0
        runs = self.device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"
        if decode_kernel == "triton" and not (fits and runs):
            raise ValueError(f"engine.decode_attention=triton needs CUDA and a power-of-two head size >= 16 (here "
                             f"{self.device.type}, head size {self.head_dim}); use auto or sdpa")
        if decode_kernel == "auto":
            decode_kernel = "triton" if self.device.type == "cuda" and fits else "sdpa"
        self.decode_kernel = decode_kernel
        self.fp8 = None
        if fp8:
            from pipeline.inference.fp8 import Fp8Prefill

            self.fp8 = Fp8Prefill(self.stack.layers)
        self.seconds = {"prefill": 0.0, "decode": 0.0}  # where the time went (benchmarks, logs)
        self.draft_stats = {"rounds": 0, "drafted": 0, "accepted": 0}  # drafted decoding (drafting.py)

    def _prompt_precision(self):
        """The context prompts are prefilled in: float8 linear layers when built with fp8=True."""
        return self.fp8.active() if self.fp8 is not None else contextlib.nullcontext()

    def release(self) -> None:
        """Free the KV cache and the captured graphs (the next call allocates and captures again)."""
        import torch

        self._storage, self._captured = [], {}
        if self.graphs:
            self._pool = torch.cuda.graph_pool_handle()
            torch.cuda.empty_cache()

    # -- cache --------------------------------------------------------------------------------------
    @property
    def cache_bytes(self) -> int:
        """Bytes the KV cache storage holds now (the next batch reuses it, or frees it to grow)."""
        return sum(s.numel() * s.element_size() for s in self._storage)

    def _cache(self, rows: int, width: int) -> list[tuple]:
        """Per layer (keys, values) views of shape [rows, kv_heads, width, head_dim] over one storage.

        Storage only grows; growing drops the captured graphs (they hold the old addresses).
        """
        import torch

        need = rows * self.kv_heads * width * self.head_dim
        if not self._storage or self._storage[0].numel() < 2 * need:
            self.release()  # dropped graphs free their memory pool: later captures get a fresh one
            # Zeros, not empty: masked-out slots still meet the value matmul with weight 0, and
            # 0 x NaN from uninitialised memory would poison the row.
            self._storage = [torch.zeros(2 * need, dtype=self.dtype, device=self.device)
                             for _ in self.stack.layers]
        shape = (rows, self.kv_heads, width, self.head_dim)
        return [(s[:need].view(shape), s[need:2 * need].view(shape)) for s in self._storage]

    # -- forward passes -----------------------------------------------------------------------------
    def _prefill(self, ids, lengths, cache=None, rows: slice | None = None, prefix=None, keep: list | None = None):
        """Run right-padded prompts `ids` [b, w] (into cache `rows` when a cache is given).

        With `prefix` (per layer keys/values [1, kv_heads, P, head_dim]) the ids continue it: they sit at
        positions P.., attend to the prefix and to each other causally, and land in the cache from P on.
        `keep` collects each layer's (keys, values) of `ids` (how the prefix itself is computed).
        Returns the next-token logits at each prompt's last real position (`lengths` count `ids`), [b, vocab].
        """
        import torch
        import torch.nn.functional as F
        from torch.nn.attention.bias import causal_lower_right

        b, w = ids.shape
        start = prefix[0][0].shape[2] if prefix is not None else 0
        fused = self.fused  # transformers' elementwise arithmetic, one kernel per piece on CUDA (fused.py)
        x = self.stack.embed_tokens(ids)
        cos, sin = self.cos[start:start + w][None], self.sin[start:start + w][None]
        # Query i (position start+i) sees the prefix and ids 0..i: causal, aligned to the bottom right.
        mask = causal_lower_right(w, start + w) if start else None
        for i, layer in enumerate(self.stack.layers):
            attn = layer.self_attn
            h = fused.rms_norm(x, *_norm(layer.input_layernorm))
            q = attn.q_proj(h).view(b, w, self.heads, self.head_dim)
            k = attn.k_proj(h).view(b, w, self.kv_heads, self.head_dim)
            v = attn.v_proj(h).view(b, w, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = fused.rotary(q, k, cos, sin)  # before heads move to dim 1: contiguous reads and writes
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            if cache is not None:
                cache[i][0][rows, :, start:start + w] = k
                cache[i][1][rows, :, start:start + w] = v
            if keep is not None:
                keep.append((k, v))
            if start:
                k = torch.cat([prefix[i][0].expand(b, -1, -1, -1), k], dim=2)
                v = torch.cat([prefix[i][1].expand(b, -1, -1, -1), v], dim=2)
            # Right padding: real tokens only ever see earlier real tokens, so plain causal attention
            # (flash on CUDA) is exact for them; the pad positions' outputs are never used. Each key/value head
            # serves its group of query heads in the kernel (enable_gqa), not as copies.
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, scale=self.scaling,
                                               enable_gqa=self.heads != self.kv_heads)
            x = x + attn.o_proj(o.transpose(1, 2).reshape(b, w, -1))
            h = fused.rms_norm(x, *_norm(layer.post_attention_layernorm))
            mlp = layer.mlp
            x = x + (mlp.down_proj(fused.silu_mul(mlp.gate_proj(h), mlp.up_proj(h))) if self.swiglu else mlp(h))
        last = x[torch.arange(b, device=x.device), lengths - 1]
        return self.lm_head(self.stack.norm(last))

    def _step(self, tokens, positions, cache):
        """One decode step: `tokens` [B] at `positions` [B] -> next-token logits [B, vocab]. Shape-static.

        Logits, not tokens: the grammar's bitmask is applied to them after the step (and after the
        captured graph's replay), then the caller takes the greedy argmax.
        """
        import torch
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        from pipeline.inference.attention import length_mask

        batch = tokens.shape[0]
        rows = torch.arange(batch, device=tokens.device)
        x = self.stack.embed_tokens(tokens)[:, None]  # [B, 1, hidden]
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]  # [B, 1, head_dim]
        visible = length_mask(positions, cache[0][0].shape[2]) if self.decode_kernel == "sdpa" else None
        groups = self.heads // self.kv_heads
        for layer, (keys, values) in zip(self.stack.layers, cache):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(batch, 1, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(batch, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(batch, 1, self.kv_heads, self.head_dim)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            keys[rows, :, positions] = k[:, :, 0]
            values[rows, :, positions] = v[:, 0]
            # The query heads of one KV head become that head's "query positions": each cached
            # key/value is read once per step, not once per query head.
            q = q.reshape(batch, self.kv_heads, groups, self.head_dim)
            o = self._decode_attention(q, keys, values, positions, visible)
            x = x + attn.o_proj(o.reshape(batch, 1, self.heads * self.head_dim))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.lm_head(self.stack.norm(x[:, 0]))

    def _decode_attention(self, q, keys, values, positions, visible=None):
        """Attention of the step's queries `q` [B, kv_heads, groups, head_dim] over the cache, row b seeing keys
        0..positions[b]: the Triton kernel (`decode_attention.attend`) where `self.decode_kernel` says so, else SDPA
        with the step's length mask `visible` (built here when None). If the kernel fails to compile it warns once
        and SDPA takes over (same attention)."""
        import torch

        from pipeline.inference.attention import length_masked_attention

        if self.decode_kernel == "triton":
            from pipeline.inference.decode_attention import attend

            try:
                return attend(q, keys, values, positions, self.scaling)
            except Exception as e:  # noqa: BLE001 - SDPA computes the same attention
                if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
                    raise
                log.warning("Triton decode attention failed (%s); using SDPA", str(e).splitlines()[0][:200])
                self.decode_kernel = "sdpa"
        return length_masked_attention(q, keys, values, positions, self.scaling, visible)

    def _graph_step(self, cache, first, lengths):
        """The decode step captured for this batch size and cache width: (step, tokens_in, positions_in),
        `step()` replaying it and returning its output logits (a buffer the next replay overwrites).

        Capturing warms the step up on the batch's real first step (`first` tokens at `lengths`): the
        warm-up writes the same keys/values that step will, so the cache stays intact.
        """
        import torch

        key = (first.shape[0], cache[0][0].shape[2])
        if key not in self._captured:
            tokens, positions = first.clone(), lengths.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):  # warm-up outside the graph: kernel selection, workspaces
                for _ in range(2):
                    self._step(tokens, positions, cache)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                out = self._step(tokens, positions, cache)

            def step():
                graph.replay()
                return out
            self._captured[key] = (step, tokens, positions)
            log.info("captured the decode step for batch %d, cache width %d", *key)
        return self._captured[key]

    def _right_padded(self, prompts: list[list[int]], pad_id: int):
        """Yield (row slice, right-padded ids on the device) in groups of about `prefill_tokens` tokens."""
        import torch

        per_call = max(1, self.prefill_tokens // max(len(p) for p in prompts))
        for start in range(0, len(prompts), per_call):
            chunk = prompts[start:start + per_call]
            ids = torch.full((len(chunk), max(len(p) for p in chunk)), pad_id, dtype=torch.long)
            for row, p in enumerate(chunk):
                ids[row, :len(p)] = torch.tensor(p)
            yield slice(start, start + len(chunk)), ids.to(self.device)

    # -- public -------------------------------------------------------------------------------------
    def prefix_kv(self, ids: list[int]) -> list[tuple]:
        """Per layer (keys, values) [1, kv_heads, P, head_dim] of the token ids `ids` at positions 0..P-1:
        the shared prefix that `generate` and `last_logits` take as `prefix`."""
        import torch

        keep: list[tuple] = []
        with torch.inference_mode():
            self._prefill(torch.tensor([ids], device=self.device), torch.tensor([len(ids)], device=self.device),
                          keep=keep)
        return keep

    def last_logits(self, prompts: list[list[int]], pad_id: int, prefix=None):
        """Next-token logits after each prompt (float32, [n, vocab]): one prefill, no cache, no decoding.

        With `prefix` (from `prefix_kv`; every prompt starts with its P tokens) only the tokens after it run.
        """
        import torch

        start = prefix[0][0].shape[2] if prefix is not None else 0
        own = [p[start:] for p in prompts]
        out = []
        with torch.inference_mode(), self._prompt_precision():
            for rows, ids in self._right_padded(own, pad_id):
                lengths = torch.tensor([len(p) for p in own[rows]], device=self.device)
                out.append(self._prefill(ids, lengths, prefix=prefix).float())
        return torch.cat(out)

    def _prefill_first(self, prompts: list[list[int]], extra: int, pad_id: int, constraint=None, prefix=None):
        """Prefill `prompts` into a cache wide enough for `extra` more tokens per row.

        With `prefix` (from `prefix_kv`; every prompt starts with its P tokens) its keys/values fill
        positions 0..P-1 of every row and only the tokens after it are prefilled.
        Returns (cache, lengths [B], first tokens [B]): the greedy first tokens, under the grammar of
        `constraint` (a `grammar.RowConstraint`, which then has accepted them) when one is given.
        Raises ValueError when a prompt plus `extra` exceeds the model's positions.
        """
        import torch

        lengths = torch.tensor([len(p) for p in prompts], device=self.device)
        longest = max(len(p) for p in prompts)
        width = -(-(longest + extra) // WIDTH_STEP) * WIDTH_STEP
        if width > self.cos.shape[0]:
            raise ValueError(f"prompt of {longest} tokens + {extra} new exceeds the model's "
                             f"{self.cos.shape[0]} positions; lower engine.max_new_tokens or shorten the input")
        cache = self._cache(len(prompts), width)
        start = prefix[0][0].shape[2] if prefix is not None else 0
        for (keys, values), (k, v) in zip(cache, prefix or []):
            keys[:, :, :start] = k
            values[:, :, :start] = v
        first = torch.empty(len(prompts), dtype=torch.long, device=self.device)
        for rows, ids in self._right_padded([p[start:] for p in prompts], pad_id):
            with self._prompt_precision():
                logits = self._prefill(ids, lengths[rows] - start, cache, rows, prefix)
            if constraint is not None:
                constraint.mask(logits, list(range(rows.start, rows.stop)))
            first[rows] = logits.argmax(-1)
        if constraint is not None:
            for row, token in enumerate(first.tolist()):
                constraint.accept(row, token)
        return cache, lengths, first

    def _decode_constrained(self, step, constraint, out, done, tokens, positions, eos, pad_id) -> None:
        """Decode steps 1.. of `out` [B, max_new_tokens] (column 0 holds the first tokens, already accepted) under
        the grammar of `constraint`, in place. Pipelined on CUDA: step i+1 is launched as soon as step i's tokens
        are chosen on the device (they are its input), and while the GPU runs it the host advances the matchers
        by step i's tokens and fills step i+1's bitmask. So the GPU does not wait for the matchers, only for
        the bitmask, and the host waits for the chosen tokens alone (an event), not for the running step. On
        CPU the same loop runs in order. Same tokens either way: step i+1's logits are masked by the state
        after step i's tokens."""
        import torch

        if out.shape[1] < 2:
            return
        cuda = self.device.type == "cuda"
        eos_ids = set(eos.tolist())
        finished = [t in eos_ids for t in out[:, 0].tolist()]
        chosen = torch.empty(out.shape[0], dtype=torch.long, pin_memory=cuda)  # step i's tokens, for the host
        logits = step()
        for i in range(1, out.shape[1]):
            constraint.mask(logits)  # filled from the matchers' state after step i-1's tokens
            nxt = logits.argmax(-1)
            out[:, i] = torch.where(done, pad_id, nxt)
            done |= torch.isin(nxt, eos)
            tokens.copy_(nxt)
            positions.add_(1)
            chosen.copy_(nxt, non_blocking=cuda)
            ready = torch.cuda.Event() if cuda else None
            if ready is not None:
                ready.record()
            if i + 1 < out.shape[1]:
                logits = step()  # queued behind the tokens it reads; a graph replay overwrites its output buffer
            if ready is not None:
                ready.synchronize()  # the chosen tokens are on the host; step i+1 may still be running
            for row, token in enumerate(chosen.tolist()):
                constraint.accept(row, token)  # finished rows' matchers refuse: ignored
                finished[row] = finished[row] or token in eos_ids
            if all(finished):
                break  # a step launched past the end only writes cache slots no row reads

    def generate(self, prompts: list[list[int]], max_new_tokens: int, eos_ids: list[int], pad_id: int,
                 grammar=None, draft: bool = False, prefix=None) -> list[list[int]]:
        """Greedy continuations of `prompts` (token ids, unpadded); each stops after its first EOS.

        With `prefix` (from `prefix_kv`; every prompt starts with its P tokens) its keys/values fill
        positions 0..P-1 of every row and only the tokens after it are prefilled. `grammar` (a
        `grammar.VerdictGrammar`) masks every step's logits to the tokens the grammar allows, in the eager
        step and after the CUDA graph's replay alike. `draft=True` decodes with jump-forward and
        prompt-lookup drafts verified in one forward pass each (`drafting.generate_drafted`, an eager loop on
        every device; step by step when a prompt leaves no room for a draft): the same tokens, fewer
        sequential steps.
        Returns per prompt the new tokens, the EOS included when one was produced.
        """
        import torch

        if draft:
            from pipeline.inference.drafting import DRAFT_TOKENS, generate_drafted

            # Drafts run up to DRAFT_TOKENS past the budget; a prompt too near the context decodes step by step.
            if max(len(p) for p in prompts) + max_new_tokens + DRAFT_TOKENS <= self.cos.shape[0]:
                return generate_drafted(self, prompts, max_new_tokens, eos_ids, pad_id, grammar, prefix)
        batch = len(prompts)
        started = time.perf_counter()
        with torch.inference_mode():
            constraint = None
            if grammar is not None:
                from pipeline.inference.grammar import RowConstraint

                constraint = RowConstraint(grammar, batch)
            cache, lengths, first = self._prefill_first(prompts, max_new_tokens, pad_id, constraint, prefix)
            eos = torch.tensor(eos_ids, device=self.device)
            if self.device.type == "cuda":
                torch.cuda.synchronize()  # once per batch: attributes the time to prefill and decode
            self.seconds["prefill"] += time.perf_counter() - started
            started = time.perf_counter()
            out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=self.device)
            out[:, 0] = first
            done = torch.isin(first, eos)
            if self.graphs:
                step, tokens, positions = self._graph_step(cache, first, lengths)
            else:
                tokens, positions = torch.empty_like(first), torch.empty_like(first)

                def step():
                    return self._step(tokens, positions, cache)
            tokens.copy_(first)
            positions.copy_(lengths)
            if constraint is not None:
                self._decode_constrained(step, constraint, out, done, tokens, positions, eos, pad_id)
            else:
                for i in range(1, max_new_tokens):
                    if i % SYNC_EVERY == 0 and bool(done.all()):  # the host looks every few steps only
                        break
                    nxt = step().argmax(-1)
                    out[:, i] = torch.where(done, pad_id, nxt)
                    done |= torch.isin(nxt, eos)
                    tokens.copy_(nxt)
                    positions.add_(1)
            rows = out.tolist()
        self.seconds["decode"] += time.perf_counter() - started
        results = []
        for tokens_row in rows:
            stop = next((j for j, t in enumerate(tokens_row) if t in eos_ids), None)
            results.append(tokens_row if stop is None else tokens_row[:stop + 1])
        return results

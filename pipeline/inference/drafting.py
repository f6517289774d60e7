"""Draft-and-verify greedy decoding: tokens the grammar forces, and quotes copied from the prompt, in one
forward pass per draft instead of one per token.

Each round, every unfinished row proposes a draft of up to `DRAFT_TOKENS` tokens:

* **jump-forward**: the tokens the verdict grammar forces from the row's state (key names, quotes,
  separators, a COMPLIANT verdict's fixed labels), `xgrammar`'s `find_jump_forward_tokens`;
* **prompt lookup**: after those, the tokens that followed the latest occurrence in the prompt of the
  answer's last `NGRAM` (down to 2) tokens: evidence quotes are copied from the communication.

The draft is cut where the grammar would refuse it. One forward pass runs the row's last token and the
draft at their positions (writing their keys/values into the cache), every position's logits are masked
by the grammar state after the draft tokens before it, and the row keeps the longest prefix of the draft
that equals the masked greedy choice, plus the model's own choice after it. That is speculative decoding
with the model as its own verifier, so the tokens are exactly those of step-by-step greedy decoding under
the same grammar (up to floating-point ties between the one-token and the multi-token forward): a
tokenisation of a forced string the model would not choose is simply not accepted. Rejected draft
positions leave stale cache entries past the row's length; they are masked out and overwritten.

This loop runs eagerly (no CUDA graph: draft lengths change every round); on GPU the captured
step-by-step loop of `decoder.StaticDecoder.generate` is the alternative, and bench/bench_engine.py
measures both.
"""

from __future__ import annotations

import time

DRAFT_TOKENS = 16  # most draft tokens per row and round (jump-forward first, then prompt lookup)
NGRAM = 3  # longest answer suffix looked up in the prompt; down to 2 tokens (one token matches too often)


class PromptIndex:
    """Where each 2..NGRAM-token sequence of a prompt last occurs, to propose what followed it."""

    def __init__(self, prompt: list[int]):
        self.prompt = prompt
        self.last: dict[tuple[int, ...], int] = {}
        for n in range(2, NGRAM + 1):
            for i in range(len(prompt) - n):  # only n-grams with at least one token after them
                self.last[tuple(prompt[i:i + n])] = i + n

    def propose(self, context: list[int], limit: int) -> list[int]:
        """Up to `limit` prompt tokens that followed the longest (3, then 2 token) suffix of `context`."""
        for n in range(NGRAM, 1, -1):
            if len(context) >= n and (after := self.last.get(tuple(context[-n:]))) is not None:
                return self.prompt[after:after + limit]
        return []


def extend(decoder, tokens, starts, cache):
    """Run `tokens` [B, L] at positions starts[b] .. starts[b]+L-1 of each row through `decoder`'s model,
    writing their keys/values into `cache`. Returns the logits at every position, [B, L, vocab]."""
    import torch
    import torch.nn.functional as F
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    b, w = tokens.shape
    width = cache[0][0].shape[2]
    positions = starts[:, None] + torch.arange(w, device=tokens.device)[None]  # [B, L]
    rows = torch.arange(b, device=tokens.device)[:, None]
    x = decoder.stack.embed_tokens(tokens)
    cos, sin = decoder.cos[positions], decoder.sin[positions]  # [B, L, head_dim]
    visible = torch.arange(width, device=tokens.device)[None, None] <= positions[:, :, None]  # [B, L, width]
    visible = visible[:, None].repeat(1, 1, decoder.heads // decoder.kv_heads, 1)  # [B, 1, groups*L, width]
    heads, kv_heads, dim = decoder.heads, decoder.kv_heads, decoder.head_dim
    groups = heads // kv_heads
    for layer, (keys, values) in zip(decoder.stack.layers, cache):
        attn = layer.self_attn
        h = layer.input_layernorm(x)
        q = attn.q_proj(h).view(b, w, heads, dim).transpose(1, 2)
        k = attn.k_proj(h).view(b, w, kv_heads, dim).transpose(1, 2)
        v = attn.v_proj(h).view(b, w, kv_heads, dim)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        keys[rows, :, positions] = k.transpose(1, 2)  # [B, L, kv_heads, dim] at (row, position)
        values[rows, :, positions] = v
        # As in the decode step: a KV head's query heads (x draft positions) become its query rows, so
        # the cache is read as it is, never copied per query head.
        o = F.scaled_dot_product_attention(q.reshape(b, kv_heads, groups * w, dim), keys, values,
                                           attn_mask=visible, scale=decoder.scaling)
        x = x + attn.o_proj(o.reshape(b, heads, w, dim).transpose(1, 2).reshape(b, w, -1))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return decoder.lm_head(decoder.stack.norm(x))


def _draft(index: PromptIndex, answer: list[int], constraint, row: int, limit: int, eos: set[int]) -> list[int]:
    """The row's draft: forced tokens, then a prompt lookup, cut where the grammar or an EOS stops it."""
    if limit <= 0:
        return []
    draft = constraint.forced(row)[:limit] if constraint is not None else []
    if len(draft) < limit:
        draft += index.propose(answer + draft, limit - len(draft))
    stop = next((i for i, t in enumerate(draft) if t in eos), len(draft))
    draft = draft[:stop]  # an EOS ends the answer: the model must choose it itself
    if constraint is not None and draft:
        draft = draft[:constraint.valid_prefix(row, draft)]
    return draft


def generate_drafted(decoder, prompts: list[list[int]], max_new_tokens: int, eos_ids: list[int], pad_id: int,
                     grammar=None, prefix=None) -> list[list[int]]:
    """Greedy continuations of `prompts` through `decoder` (a `StaticDecoder`) with drafts verified in one
    pass per round, under `grammar` when given; `prefix` as in `decoder.generate`. Returns per prompt the
    new tokens, EOS included when produced: the same as `decoder.generate(..., grammar=grammar)` step by step.
    """
    import torch

    from pipeline.inference.grammar import RowConstraint

    batch, eos = len(prompts), set(eos_ids)
    started = time.perf_counter()
    with torch.inference_mode():
        constraint = RowConstraint(grammar, batch) if grammar is not None else None
        cache, _, first = decoder._prefill_first(prompts, max_new_tokens + DRAFT_TOKENS, pad_id, constraint, prefix)
        decoder.seconds["prefill"] += time.perf_counter() - started
        started = time.perf_counter()
        answers = [[t] for t in first.tolist()]
        done = [a[0] in eos or max_new_tokens <= 1 for a in answers]
        indexes = [PromptIndex(p) for p in prompts]
        stats = decoder.draft_stats
        while not all(done):
            drafts = {r: _draft(indexes[r], answers[r], constraint, r, min(DRAFT_TOKENS, max_new_tokens - len(answers[r]) - 1), eos)
                      for r in range(batch) if not done[r]}
            span = 1 + max(len(d) for d in drafts.values())
            feed = torch.full((batch, span), pad_id, dtype=torch.long)
            starts = torch.empty(batch, dtype=torch.long)
            for r in range(batch):
                # Finished rows run pads at their last position: shapes stay whole, their output is ignored.
                starts[r] = len(prompts[r]) + len(answers[r]) - 1
                feed[r, 0] = answers[r][-1] if not done[r] else pad_id
                if r in drafts:
                    feed[r, 1:1 + len(drafts[r])] = torch.tensor(drafts[r], dtype=torch.long)
            logits = extend(decoder, feed.to(decoder.device), starts.to(decoder.device), cache)
            if constraint is not None:
                constraint.mask_drafts(logits, drafts)
            greedy = logits.argmax(-1).tolist()
            for r, draft in drafts.items():
                kept = 0
                while kept < len(draft) and greedy[r][kept] == draft[kept]:
                    kept += 1
                token = greedy[r][kept]
                if constraint is not None:
                    constraint.settle(r, len(draft), kept, token)
                answers[r] += draft[:kept] + [token]
                stats["drafted"] += len(draft)
                stats["accepted"] += kept
                stats["rounds"] += 1
                done[r] = token in eos or len(answers[r]) >= max_new_tokens
    decoder.seconds["decode"] += time.perf_counter() - started
    return answers

"""Shared-prefix prefill: the prompt tokens every communication shares are run once per model and adapter.

Every prompt starts with the same tokens: the chat template's start and the instruction, up to where the
communication goes (187 tokens with the default instruction and Mistral v3's template). `template_prefix`
finds them as the longest common token prefix of the prompts of a few probe communications whose first
characters differ, so a token that the template's last characters could merge with a communication's
first ones is left out of it. `PrefixCache` keeps their keys/values (RoPE applied, positions 0..P-1) per
adapter; the engine starts every row of a batch from them, in the static decoder's prefill and in
transformers' generate and forward pass, and runs only each row's own tokens from position P on.

A batch in which some prompt does not start with the prefix (a tokenizer that merges across the
boundary in a way no probe showed) runs unshared; `shares_prefix` decides that per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence

log = logging.getLogger(__name__)

# First characters of a communication that tokenizers treat differently after the template's last
# characters: nothing, whitespace, letters, digits, punctuation, non-ASCII. No control-token text.
PROBES = ("", " ", "  ", "\n", "\n\n", "\t", "a", "A", "Z", "1", "{", "-", ":", ".", "é", "x y")

PrefixKV = list  # per layer (keys, values), each [1, kv_heads, P, head_dim], positions 0..P-1


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix that all `seqs` share (0 for no sequences)."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


def template_prefix(formatter) -> list[int]:
    """The token ids every prompt of `formatter` (a `ChatFormatter`) starts with: the template's start and
    the instruction, found from the prompts of `PROBES`."""
    ids = formatter.prompt_ids(list(PROBES))
    return list(ids[0][:common_prefix_length(ids)])


def shares_prefix(prompts: Sequence[Sequence[int]], prefix: Sequence[int]) -> bool:
    """True when every prompt starts with `prefix` and has at least one token of its own after it."""
    n = len(prefix)
    return n > 0 and all(len(p) > n and list(p[:n]) == list(prefix) for p in prompts)


class PrefixCache:
    """The shared prefix's token ids and its keys/values per adapter state, computed on first use.

    The key is whatever identifies the weights in use (the engine passes the active adapter's name, None
    for the bare model, and the decode path); `drop` forgets an adapter's entries when it is attached
    anew or detached.
    """

    def __init__(self, ids: list[int]):
        self.ids = ids
        self._kv: dict[Hashable, PrefixKV] = {}

    def get(self, key: Hashable, compute: Callable[[list[int]], PrefixKV]) -> PrefixKV:
        """The prefix's keys/values under `key`, from `compute(ids)` the first time."""
        if key not in self._kv:
            self._kv[key] = compute(self.ids)
            log.info("shared prefix of %d tokens computed for %s", len(self.ids), key)
        return self._kv[key]

    def drop(self, adapter: str | None) -> None:
        """Forget every entry computed with adapter `adapter` (keys are (adapter, path) tuples)."""
        for key in [k for k in self._kv if k[0] == adapter]:
            del self._kv[key]

    def clear(self) -> None:
        """Forget every entry (the weights changed)."""
        self._kv.clear()

    def __len__(self) -> int:
        return len(self._kv)


# -- transformers' own forward pass and generate (engine.decoder=generate, or a model the loop refuses) ----
def hf_prefix_kv(model, ids: list[int], device) -> PrefixKV:
    """Keys/values of `ids` at positions 0..P-1 from one forward pass of `model` (batch 1)."""
    import torch

    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
    return [(layer.keys, layer.values) for layer in out.past_key_values.layers]


def hf_cache(kv: PrefixKV, rows: int):
    """A transformers `DynamicCache` holding the prefix for `rows` rows (a copy: generate extends it)."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1).contiguous(),
                                         v.expand(rows, -1, -1, -1).contiguous()) for k, v in kv])

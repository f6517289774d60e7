"""A decode-friendly attention kernel for grouped-query models (Mistral: 32 query, 8 key/value heads).

transformers' SDPA path repeats every key/value head for each query group whenever an attention
mask is present, and batched generation always has one (left padding). During decoding that
copies the whole KV cache 4x per layer per step: the step becomes memory-bound on the copies, not
on the weights. Here a decode step (one query token) computes attention per KV head with the
query groups stacked, reading each cached key/value exactly once. Prefill and everything else go
to the stock SDPA function unchanged. `length_masked_attention` is the same stacking for the static
decoder's step (pipeline/inference/decoder.py) where its Triton kernel does not run.
"""

from __future__ import annotations

NAME = "sdpa_gqa"


def gqa_decode_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Attention with the signature transformers expects; returns (output [B, q, H, D], None)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1 or module.training:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    scale = scaling if scaling is not None else dim ** -0.5
    q = query.reshape(batch, kv_heads, groups, dim)
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # [B, KVH, G, L]
    if attention_mask is not None:
        mask = attention_mask[:, :, -1:, -length:]  # [B, 1, 1, L]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.float()
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [B, KVH, G, D]
    return out.reshape(batch, heads, 1, dim).transpose(1, 2), None


def length_mask(positions, width: int):
    """[B, 1, 1, width] bool: row b sees keys 0..positions[b] (the decode step builds it once for all layers)."""
    import torch

    return (torch.arange(width, device=positions.device)[None] <= positions[:, None])[:, None, None]


def length_masked_attention(q, keys, values, positions, scale: float, visible=None):
    """The static decoder's decode-step attention through SDPA: `q` [B, kv_heads, groups, dim] (each key/value head's
    query heads stacked, so each cached key/value is read once), `keys`/`values` [B, kv_heads, width, dim], row b
    seeing keys 0..positions[b] (`visible`: that `length_mask`, when the caller has built it). On CUDA the decoder
    uses the Triton kernel of `decode_attention.py` instead; this is also the tests' yardstick for it."""
    import torch.nn.functional as F

    if visible is None:
        visible = length_mask(positions, keys.shape[2])
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=visible, scale=scale)


def register() -> str:
    """Make ``attn_implementation="sdpa_gqa"`` available to transformers (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, gqa_decode_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME

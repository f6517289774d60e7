"""The prefill's fused elementwise pieces (pipeline/inference/fused.py) compute exactly what transformers'
Mistral modules compute: on CPU they run eagerly, so equality here is bitwise, in float32 and bfloat16."""

import pytest
import torch
from transformers import MistralConfig
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
from transformers.models.mistral.modeling_mistral import MistralMLP, MistralRMSNorm, MistralRotaryEmbedding

from pipeline.inference.fused import FusedPrefill, compiled, rms_norm, rotary, silu_mul


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_pieces_equal_transformers_modules(dtype):
    torch.manual_seed(0)
    cfg = MistralConfig(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2,
                        head_dim=16, rms_norm_eps=1e-5)
    x = torch.randn(3, 7, 64, dtype=dtype) * 3
    norm = MistralRMSNorm(64, eps=cfg.rms_norm_eps).to(dtype)
    norm.weight.data = torch.randn(64, dtype=dtype)
    assert torch.equal(rms_norm(x, norm.weight, norm.variance_epsilon), norm(x))

    q, k = torch.randn(3, 4, 7, 16, dtype=dtype), torch.randn(3, 2, 7, 16, dtype=dtype)
    cos, sin = MistralRotaryEmbedding(cfg)(x, torch.arange(5, 12)[None])  # positions 5.. (after a prefix)
    cos, sin = cos.to(dtype), sin.to(dtype)
    ours = rotary(q.transpose(1, 2), k.transpose(1, 2), cos, sin)  # [b, w, heads, d], as the projections give them
    for a, b in zip(ours, apply_rotary_pos_emb(q, k, cos, sin)):
        assert torch.equal(a.transpose(1, 2), b)

    mlp = MistralMLP(cfg).to(dtype)
    gate_up = silu_mul(mlp.gate_proj(x), mlp.up_proj(x))
    assert torch.equal(mlp.down_proj(gate_up), mlp(x))


def test_compiled_runs_the_function_itself_off_cuda():
    assert compiled(rms_norm, "cpu", "RMSNorm") is rms_norm
    fused = FusedPrefill("cpu")
    assert (fused.rms_norm, fused.rotary, fused.silu_mul) == (rms_norm, rotary, silu_mul)

"""FP8 prefill (pipeline/inference/fp8.py): float8 linear layers only while prompts are prefilled, close to the
model's own dtype, LoRA adapters' deltas kept, nothing changed outside the prefill (CPU; CUDA in test_gpu)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.decoder import StaticDecoder
from pipeline.inference.engine import Detector
from pipeline.inference.fp8 import Fp8Prefill, quantize_rows, scaled_linear
from test_prefix import MORE_TEXTS


def test_scaled_linear_is_within_float8_precision_per_row():
    """Per-token and per-channel scales: a row 1000x larger than the rest (an outlier token) costs the other
    rows nothing, and every row stays within float8's ~4% of the exact product."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 128, generator=g)
    x[3] *= 1000
    w = torch.randn(96, 128, generator=g) / 128 ** 0.5
    wq, ws = quantize_rows(w)
    assert wq.dtype == torch.float8_e4m3fn and ws.shape == (96, 1)
    out = scaled_linear(x.view(8, 8, 128), wq, ws.reshape(1, -1).contiguous())
    assert out.shape == (8, 8, 96) and out.dtype == x.dtype
    exact = F.linear(x, w)
    row_error = (out.view(64, 96) - exact).norm(dim=1) / exact.norm(dim=1)
    assert float(row_error.max()) < 0.08 and float(row_error.mean()) > 1e-3  # float8, not a copy of the exact path
    bias = torch.randn(96, generator=g)
    torch.testing.assert_close(scaled_linear(x, wq, ws.reshape(1, -1).contiguous(), bias=bias),
                               scaled_linear(x, wq, ws.reshape(1, -1).contiguous()) + bias)


def test_fp8_prefill_runs_float8_only_inside_the_prefill(tiny_mistral):
    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                   EngineConfig(dtype="float32", fp8_prefill=True))
    fp8 = det.decoder.fp8
    assert isinstance(fp8, Fp8Prefill) and len(fp8.modules) == 7 * len(det.model.model.layers)
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    q_proj = det.model.model.layers[0].self_attn.q_proj
    x = torch.randn(2, 5, q_proj.in_features)
    with fp8.active(), torch.no_grad():
        inside = q_proj(x)
    assert "forward" not in vars(q_proj)  # restored: the decode step and everything else run the weights as loaded
    with torch.no_grad():
        exact = q_proj(x)
    assert not torch.equal(inside, exact)
    quantized, quant = [], fp8.quant
    fp8.quant = lambda t: quantized.append(t.shape) or quant(t)
    attn = det.model.model.layers[0].self_attn
    with fp8.active(), torch.no_grad():
        torch.testing.assert_close(attn.q_proj(x), inside)
        attn.k_proj(x), attn.v_proj(x), attn.o_proj(x[..., :attn.o_proj.in_features])
    assert len(quantized) == 2  # q/k/v share their input's quantization; o_proj's input is another tensor
    assert float((inside - exact).norm() / exact.norm()) < 0.08
    det.score(det.encode_prompts(MORE_TEXTS))
    det.generate(det.encode_prompts(MORE_TEXTS[:2]))
    assert all("forward" not in vars(m) for m, _, _ in fp8.modules)
    after = det.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_fp8_prefill_probabilities_stay_close_to_the_models_dtype(tiny_mistral):
    """Same model object, fp8 prefill on and off: verdict probabilities within 0.01, the shared prefix (computed
    in the model's dtype) identical, and every constrained answer still verdict-shaped."""
    on = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                  EngineConfig(dtype="float32", fp8_prefill=True, max_new_tokens=48, max_field_chars=8, max_quotes=1))
    off = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                   EngineConfig(dtype="float32", max_new_tokens=48, max_field_chars=8, max_quotes=1),
                   model=on.model, tokenizer=on.tokenizer)
    prompts = on.encode_prompts(MORE_TEXTS)
    p_on, p_off = on.score(prompts).probability, off.score(prompts).probability
    assert not np.array_equal(p_on, p_off)
    np.testing.assert_allclose(p_on, p_off, atol=0.01, rtol=0)
    (k_on, v_on), (k_off, v_off) = on.prefix.get((None, "static"), None)[0], off.prefix.get((None, "static"), None)[0]
    assert torch.equal(k_on, k_off) and torch.equal(v_on, v_off)
    gens = on.generate(prompts)
    assert all(g.finished or g.truncated for g in gens)


def test_fp8_prefill_keeps_each_lora_adapters_delta(tiny_mistral, adapters):
    """A PEFT LoRA layer over a float8 base: its output is the float8 base's plus the adapter's own delta."""
    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)),
                   EngineConfig(dtype="float32", fp8_prefill=True))
    for name, folder in adapters.items():
        det.attach_adapter(name, folder)
    layer = det.model.base_model.model.model.layers[1].self_attn.v_proj
    x = torch.randn(3, 4, layer.in_features)
    with det.use_adapter("risk-b"), det.decoder.fp8.active(), torch.no_grad():
        lora, base = layer(x), layer.base_layer(x)
        delta = layer.lora_B["risk-b"](layer.lora_A["risk-b"](x)) * layer.scaling["risk-b"]
    assert float(delta.abs().max()) > 1e-3
    torch.testing.assert_close(lora, base + delta)
    with det.use_adapter("risk-a"):
        p_a = det.score(det.encode_prompts(MORE_TEXTS)).probability
    with det.use_adapter("risk-b"):
        p_b = det.score(det.encode_prompts(MORE_TEXTS)).probability
    assert not np.allclose(p_a, p_b, atol=1e-3)


@pytest.mark.parametrize("name", ["q_proj", "down_proj"])
def test_modules_fp8_cannot_run_are_left_alone(tiny_mistral, name):
    """A projection that is not a plain floating-point nn.Linear (here: replaced by a Sequential) keeps its own path."""
    det = Detector(DetectorModelConfig(name_or_path=str(tiny_mistral)), EngineConfig(dtype="float32"))
    layer = det.model.model.layers[0]
    part = layer.self_attn if name == "q_proj" else layer.mlp
    setattr(part, name, torch.nn.Sequential(getattr(part, name)))
    fp8 = StaticDecoder(det.model, graphs=False, fp8=True).fp8
    assert len(fp8.modules) == 7 * len(det.model.model.layers) - 1

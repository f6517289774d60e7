"""The decode step's Triton attention (pipeline/inference/decode_attention.py) equals SDPA with a length mask.

The kernel is plain Triton, so on CPU it runs in Triton's interpreter (TRITON_INTERPRET=1, which must be set before
triton is imported: hence a fresh process). In float32 the interpreter computes what the GPU would, without the GPU's
reduced-precision dots, so the comparison is tight; tests/test_gpu.py compares it in bfloat16 on CUDA.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def interpret(script: str, *args: str) -> str:
    """Run `script` in a fresh Python with Triton's interpreter on; returns its stdout (fails the test on error)."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_splits_cover_the_cache_in_whole_blocks():
    from pipeline.inference.decode_attention import BLOCK, PROGRAMS_PER_SM, plan_splits

    assert plan_splits(256, 8, 1408, 132) == (1, 1408 // BLOCK * BLOCK + BLOCK * (1408 % BLOCK > 0))  # full grid
    splits, width = plan_splits(4, 8, 1408, 132)  # 32 programs: split until ~4 per multiprocessor
    assert width % BLOCK == 0 and (splits - 1) * width < 1408 <= splits * width
    assert 4 * 8 * splits >= PROGRAMS_PER_SM * 132 * 0.5
    assert plan_splits(1, 1, 64, 132) == (1, 64)  # never more splits than blocks of keys


def test_triton_kernel_equals_sdpa_for_every_split_and_row_length():
    out = interpret("""
        import torch
        from pipeline.inference.attention import length_masked_attention as reference
        from pipeline.inference.decode_attention import attend
        torch.manual_seed(0)
        for rows, heads, groups, width, dim in [(3, 2, 4, 200, 32), (2, 3, 3, 70, 16)]:
            q = torch.randn(rows, heads, groups, dim)
            keys, values = torch.randn(2, rows, heads, width, dim).unbind(0)  # views: strided like the cache
            positions = torch.tensor([0, width - 1, width // 3][:rows])  # one key, all keys, a third
            expected = reference(q, keys, values, positions, 0.3)
            for splits in (None, 1, 2, 3, 7):
                got = attend(q, keys, values, positions, 0.3, splits=splits)
                assert got.shape == expected.shape and got.dtype == expected.dtype
                print(rows, splits, (got - expected).abs().max().item())
    """)
    diffs = [float(line.split()[-1]) for line in out.splitlines()]
    assert len(diffs) == 10 and max(diffs) < 1e-5, out


def test_static_decoder_with_the_triton_kernel_gives_the_sdpa_tokens(tiny_mistral):
    out = interpret("""
        import sys
        from pipeline.inference.config import DetectorModelConfig, EngineConfig
        from pipeline.inference.decoder import StaticDecoder
        from pipeline.inference.engine import Detector
        det = Detector(DetectorModelConfig(name_or_path=sys.argv[1]), EngineConfig(dtype="float32"))
        texts = ["Client: can I lose money? Advisor: this fund is guaranteed, you cannot lose.",
                 "Advisor: past returns do not promise future ones; here is the prospectus.",
                 "Advisor: wire it to my personal account and I will place the trade."]
        prompts = det.encode_prompts(texts)
        pad = det.tokenizer.pad_token_id
        decoders = {kernel: StaticDecoder(det.model, graphs=False, decode_kernel=kernel) for kernel in ("sdpa", "triton")}
        runs = {kernel: d.generate(prompts, 12, det.eos_ids, pad, grammar=det.grammar) for kernel, d in decoders.items()}
        assert decoders["triton"].decode_kernel == "triton"  # it ran: no fallback to SDPA
        assert runs["triton"] == runs["sdpa"], runs
        print("same", sum(map(len, runs["sdpa"])))
    """, str(tiny_mistral))
    assert out.startswith("same") and int(out.split()[1]) > 0, out


def test_off_cuda_the_engine_decodes_with_sdpa_and_refuses_triton_clearly(tiny_mistral):
    import pytest
    import torch

    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    model = DetectorModelConfig(name_or_path=str(tiny_mistral))
    det = Detector(model, EngineConfig(dtype="float32"))
    assert det.decoder.decode_kernel == "sdpa"  # auto
    with pytest.raises(ValueError, match="engine.decode_attention=triton needs CUDA"):
        Detector(model, EngineConfig(dtype="float32", decode_attention="triton"), model=det.model,
                 tokenizer=det.tokenizer)
    with pytest.raises(ValueError, match="decode_attention"):
        EngineConfig(decode_attention="flash")

"""Test and benchmark fixtures: the real Mistral v3 tokenizer built offline, and tiny (or 7B-shaped) random
Mistral models written to a folder like a hub checkpoint. Not used by the pipeline itself."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pipeline.models import ensure_pad_token

TEMPLATES = Path(__file__).parent / "templates"


def mistral_v3_tokenizer():
    """Mistral-7B-Instruct-v0.3's tokenizer rebuilt offline from the v3 model file in ``mistral-common``.

    Token ids match mistral-common's own encoding; the chat template is the one the hub ships.
    Pad is ``<unk>`` (id 0), never EOS.
    """
    import mistral_common
    from transformers import LlamaTokenizer

    source = Path(mistral_common.__file__).parent / "data" / "mistral_instruct_tokenizer_240323.model.v3"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(source, Path(tmp) / "tokenizer.model")
        tokenizer = LlamaTokenizer.from_pretrained(tmp, legacy=False)
    tokenizer.chat_template = (TEMPLATES / "mistral_v3.jinja").read_text()
    tokenizer.model_max_length = 32768
    ensure_pad_token(tokenizer)
    return tokenizer


MISTRAL_7B = dict(
    vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-5, sliding_window=None,
)
TINY_MISTRAL = dict(
    vocab_size=32768, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=4096, rope_theta=1e6, rms_norm_eps=1e-5, sliding_window=None,
)


def save_random_mistral(out_dir: str | Path, preset: str = "tiny", dtype: str = "float32", seed: int = 0) -> Path:
    """Write a randomly initialised MistralForCausalLM (``tiny`` or the real ``7b`` shape) with the
    real v3 tokenizer to `out_dir`, loadable like a hub checkpoint. For tests and speed benchmarks:
    speed does not depend on the weights' values, and no hub is reachable there.
    """
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    shapes = {"tiny": TINY_MISTRAL, "7b": MISTRAL_7B}[preset]
    tokenizer = mistral_v3_tokenizer()
    config = MistralConfig(**shapes, bos_token_id=1, eos_token_id=2, pad_token_id=tokenizer.pad_token_id,
                           tie_word_embeddings=False)
    torch.manual_seed(seed)
    with torch.device("cuda" if preset == "7b" and torch.cuda.is_available() else "cpu"):
        model = MistralForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def save_random_adapters(base: str | Path, out_dir: str | Path, names=("risk-a", "risk-b"),
                         target_modules=("q_proj", "k_proj", "v_proj", "down_proj")) -> dict[str, str]:
    """One LoRA adapter of `base` per name, each with its own random B weights (so each changes the
    outputs differently; k/v targets change the KV of a shared prefix too). Returns {name: folder}."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for seed, name in enumerate(names):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                               LoraConfig(r=4, target_modules=list(target_modules)))
        torch.manual_seed(seed)
        for param_name, p in model.named_parameters():
            if "lora_B" in param_name:
                p.data.normal_(0, 0.5)
        folder = Path(out_dir) / name
        model.save_pretrained(folder)
        out[name] = str(folder)
    return out


def ray_cli() -> list[str]:
    """The `ray` console script beside this Python, or the same CLI as a module where only the package
    travelled (the GPU machine's kit has no console scripts)."""
    import sys

    script = Path(sys.executable).parent / "ray"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


def stop_ray_head(temp_dir: str) -> None:
    """Stop only the processes of the head started with ``--temp-dir=temp_dir``, never another Ray on
    the machine: `ray stop` would kill every cluster of the user (another job's, a running bench's)."""
    import psutil

    mine = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if temp_dir in " ".join(proc.info["cmdline"] or []):
                mine.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in mine:
        proc.terminate()
    _, alive = psutil.wait_procs(mine, timeout=15)
    for proc in alive:
        proc.kill()

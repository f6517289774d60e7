"""The inference engine shared by evaluation, archive scoring and serving.

One `Detector` holds a causal LM (base + LoRA adapter, merged for speed, or a merged model) and its
tokenizer, and builds prompts with the same `ChatFormatter` as training, so train and inference
cannot drift. Communications are tokenised once (`encode_prompts`); every other method takes those
ids, so a caller (a Serve ingress, an evaluation batch) encodes a text once and reuses the ids:

* `generate`: batched greedy decoding (deterministic), batches formed by prompt length, a
  max-new-tokens budget, stop at EOS; through complyray's static-cache loop (`pipeline/inference/decoder.py`,
  a CUDA-graph decode step on GPU) for Llama/Mistral models, else transformers' `generate`; under the
  verdict grammar (`pipeline/inference/grammar.py`, engine.constrained) every finished answer is a valid
  verdict, and an answer cut by the budget says so (`Generation.truncated`);
* `score`: P(NON_COMPLIANT) and the format mass from a single forward pass: the prompt plus the fixed
  answer prefix ``{"final_verdict": "`` is run once and the next-token logits of the two verdicts'
  first distinct tokens are compared; no generation, so it doubles as a fast triage mode;
* `attach_adapter` / `use_adapter` / `detach_adapter`: LoRA adapters on the one base model (serving).

Both start every row from the shared prefix's keys/values (the template's start and the instruction, run
once per model and adapter: `pipeline/inference/prefix.py`; engine.shared_prefix), and on GPU size each
batch from free memory (`pipeline/inference/memory.py`; engine.memory_batching).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.prefix import PrefixCache, hf_cache, hf_prefix_kv, shares_prefix, template_prefix
from pipeline.formatting import ChatFormatter

log = logging.getLogger(__name__)

# Most prompt tokens per batch through transformers' forward/generate under engine.memory_batching: they run a
# batch at once, and past this its GEMMs are saturated while the allocator fragments (memory.plan_batch).
HF_BATCH_TOKENS = 65_536


@dataclass(frozen=True)
class Generation:
    """One decoded answer: text (special tokens removed), tokens generated, whether EOS was reached, and
    whether it was decoded under the verdict grammar (then a finished answer is a schema-valid verdict)."""

    text: str
    prompt_tokens: int
    new_tokens: int
    finished: bool
    seconds: float
    constrained: bool = False

    @property
    def truncated(self) -> bool:
        """Cut by the max-new-tokens budget before the answer ended."""
        return not self.finished


@dataclass(frozen=True)
class Scores:
    """One forward pass per prompt: P(NON_COMPLIANT) (calibrated when the model has a calibration.json and
    engine.calibrate is on), the raw P(NON_COMPLIANT) of the two verdict tokens, and the format mass (the
    probability on either verdict token at all; low values mean the model would not answer in the trained
    format). All shape (n,)."""

    probability: np.ndarray
    format_mass: np.ndarray
    raw_probability: np.ndarray


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from, resolved from a training artifact, a merged folder or a hub id."""

    base: str
    adapter: str | None
    tokenizer: str
    system_prompt: str | None
    system_role: str
    version: str


def resolve_source(model: str, adapter: str | None = None) -> ModelSource:
    """Read a training artifact folder (adapter + training_config.json) or take `model` as a model path.

    A folder with ``adapter_config.json`` is a PEFT adapter: its base comes from the training config
    (or the adapter's own ``base_model_name_or_path``), the prompt settings from the training config.
    """
    from pipeline.models import resolve_model_path

    folder = Path(model)
    provenance = {}
    if (folder / "training_config.json").is_file():
        provenance = json.loads((folder / "training_config.json").read_text())
    train_cfg = provenance.get("config", {})  # the resolved TrainConfig the artifact was trained with
    fmt = provenance.get("data", {}).get("format") or {}  # the prepared data's prompt format
    system_prompt, system_role = fmt.get("system_prompt"), fmt.get("system_role", "auto")
    if (folder / "adapter_config.json").is_file() and adapter is None:
        adapter_cfg = json.loads((folder / "adapter_config.json").read_text())
        # The configured base ('embedded', a hub id) before the adapter's recorded path: that path is
        # where the training machine kept the base, which need not exist here.
        base = train_cfg.get("model", {}).get("name_or_path") or adapter_cfg["base_model_name_or_path"]
        tokenizer = str(folder) if (folder / "tokenizer_config.json").is_file() else resolve_model_path(base)
        version = train_cfg.get("ray", {}).get("run_name") or folder.name
        return ModelSource(resolve_model_path(base), str(folder), tokenizer, system_prompt, system_role, version)
    base = resolve_model_path(model)
    return ModelSource(base, adapter, base, system_prompt, system_role,
                       Path(adapter).name if adapter else Path(model).name or model)


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("engine.device=cuda but no CUDA device is visible; use engine.device=cpu or auto")
    return device


def _pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto" and device == "cuda":
        return torch.bfloat16
    if device == "cpu" and dtype in ("auto", "bfloat16"):
        from pipeline.precision import cpu_precision

        # auto: bf16 only where this CPU computes it natively; an explicit bf16 is kept but warned about.
        choice = cpu_precision({"auto": "auto", "bfloat16": "bf16"}[dtype])
        return torch.bfloat16 if choice.precision == "bf16" else torch.float32
    return getattr(torch, dtype)


class Detector:
    """A loaded detector model. Build once per process (or per Ray actor / Serve replica)."""

    def __init__(self, model_cfg: DetectorModelConfig, cfg: EngineConfig | None = None, model=None, tokenizer=None):
        """Load the detector `model_cfg` names and run it as `cfg` says (defaults when None), or wrap an already
        built `model`/`tokenizer` (benchmarks, tests).

        Raises ValueError for an unusable device/dtype and FileNotFoundError for a missing model.
        """
        import torch
        from transformers import AutoModelForCausalLM

        from pipeline.models import ensure_pad_token, load_tokenizer

        cfg = cfg or EngineConfig()
        self.cfg, self.model_cfg = cfg, model_cfg
        self.device = _pick_device(cfg.device)
        self.dtype = _pick_dtype(cfg.dtype, self.device)
        self.source = resolve_source(model_cfg.name_or_path, model_cfg.adapter)
        t0 = time.time()
        if tokenizer is None:
            tokenizer = load_tokenizer(self.source.tokenizer, model_cfg.revision, model_cfg.trust_remote_code)
        ensure_pad_token(tokenizer)
        tokenizer.padding_side = "left"  # decoder-only batches: new tokens must follow each prompt directly
        self.tokenizer = tokenizer
        if cfg.attn_implementation == "sdpa_gqa":
            from pipeline.inference.attention import register

            register()
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(
                self.source.base, dtype=self.dtype, attn_implementation=cfg.attn_implementation,
                revision=model_cfg.revision, trust_remote_code=model_cfg.trust_remote_code,
            ).to(self.device)
            if self.source.adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.source.adapter)
                if cfg.merge_adapter:
                    model = model.merge_and_unload()  # one matmul per layer instead of base + A·B
        elif model.config._attn_implementation != cfg.attn_implementation:
            model.set_attn_implementation(cfg.attn_implementation)
        self.model = model.eval()
        self.decoder = self._static_decoder()
        self.formatter = ChatFormatter(tokenizer, self.source.system_prompt, self.source.system_role)
        self.eos_ids = sorted({tokenizer.eos_token_id, *self._extra_eos()})
        self.grammar = self._grammar()
        self._verdict_prefix, self._decision = self.formatter.verdict_tokens()
        # The model folder's scale (an adapter's, else a merged model's); per adapter when serving several.
        self._calibrations = {None: self._load_calibration(self.source.adapter or self.source.base)}
        self.calibration = self._calibrations[None]
        self.prefix = PrefixCache(template_prefix(self.formatter))
        self._adapters_off = False  # inside use_adapter(None) on a PEFT model: the bare base runs
        self._warned_static_prefix = False
        self.load_seconds = time.time() - t0
        log.info("detector %s on %s/%s loaded in %.1fs", self.source.version, self.device, self.dtype,
                 self.load_seconds)
        del torch

    def _static_decoder(self):
        """The static-cache decode loop when engine.decoder allows it and the model supports it, else None."""
        from pipeline.inference.decoder import StaticDecoder, unsupported_reason

        if self.cfg.decoder == "generate":
            if self.cfg.fp8_prefill:
                log.warning("engine.fp8_prefill applies to the static decoder only; decoder=generate prefills in %s",
                            self.dtype)
            return None
        reason = unsupported_reason(self.model)
        if reason and self.cfg.decoder == "static":
            raise ValueError(f"engine.decoder=static cannot run this model: {reason}; set engine.decoder=generate")
        if reason:
            log.warning("engine.decoder=auto falls back to transformers generate: %s", reason)
            return None
        return StaticDecoder(self.model, graphs=self.device == "cuda", fp8=self.cfg.fp8_prefill,
                             decode_kernel=self.cfg.decode_attention)

    def _load_calibration(self, folder: str | None):
        """`folder`'s calibration.json when engine.calibrate is on and there is one, else None (logged)."""
        from pipeline.evaluate.calibration import load_calibration

        if not self.cfg.calibrate or not folder or not Path(folder).is_dir():
            return None
        scale = load_calibration(folder)
        if scale is not None:
            log.info("P(NON_COMPLIANT) calibrated by %s's %s scale (T=%.3f, b=%.3f; fitted on %s)", folder,
                     scale.method, scale.temperature, scale.bias, scale.fitted_on)
        return scale

    def _grammar(self):
        """The verdict grammar for this tokenizer and model when engine.constrained, else None."""
        if not self.cfg.constrained:
            return None
        from pipeline.inference.grammar import VerdictGrammar

        vocab = self.model.get_output_embeddings().weight.shape[0]  # the logits' width
        return VerdictGrammar(self.tokenizer, vocab, self.eos_ids, self.cfg.max_field_chars, self.cfg.max_quotes)

    def _drafting(self) -> bool:
        """Whether the static decoder decodes with verified drafts (engine.draft; auto: eager steps only)."""
        if self.decoder is None or self.cfg.draft == "never":
            return False
        return self.cfg.draft == "always" or not self.decoder.graphs

    @property
    def info(self) -> dict:
        """Identity of the loaded model, for predictions, audit records and /v1/models."""
        return {"model": self.source.base, "adapter": self.source.adapter, "version": self.source.version,
                "device": self.device, "dtype": str(self.dtype).removeprefix("torch."),
                "max_new_tokens": self.cfg.max_new_tokens, "calibrated": self.calibration is not None,
                "constrained": self.grammar is not None}

    def _extra_eos(self) -> list[int]:
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        return [e for e in (eos if isinstance(eos, list) else [eos]) if e is not None]

    # -- prompts ----------------------------------------------------------------------------------
    def encode_prompts(self, communications: list[str]) -> list[list[int]]:
        """Token ids of each communication's prompt, the one tokenisation every other method reuses (the
        template supplies BOS; control-token text in a communication stays ordinary text)."""
        return self.formatter.prompt_ids(communications)

    # -- shared prefix ----------------------------------------------------------------------------
    def _adapter_key(self) -> str | tuple | None:
        """The adapter the model runs with now (None: the bare weights, merged adapters included)."""
        if self._adapters_off or not hasattr(self.model, "peft_config"):
            return None
        active = self.model.active_adapter
        return active if isinstance(active, str) else tuple(active)

    def _shared_kv(self, prompts: list[list[int]], generating: bool):
        """The shared prefix's keys/values for the weights in use when engine.shared_prefix is on and every
        prompt starts with it; else None (the batch runs unshared)."""
        if not self.cfg.shared_prefix or not shares_prefix(prompts, self.prefix.ids):
            return None
        if generating and self.decoder is None and (self.cfg.cache_implementation == "static"
                                                    or self.cfg.prefill_chunk_size):
            if not self._warned_static_prefix:
                log.warning("engine.shared_prefix: transformers' generate with cache_implementation=static or "
                            "prefill_chunk_size cannot start from a filled cache; every prompt is prefilled in full")
                self._warned_static_prefix = True
            return None
        if self.decoder is not None:
            return self.prefix.get((self._adapter_key(), "static"), self.decoder.prefix_kv)
        return self.prefix.get((self._adapter_key(), "hf"), lambda ids: hf_prefix_kv(self.model, ids, self.device))

    # -- batching ---------------------------------------------------------------------------------
    def _batches(self, lengths: list[int], extra: int) -> list[list[int]]:
        """Indices grouped by prompt length (longest first), capped by padded tokens and by batch size: on
        GPU with engine.memory_batching what free memory holds (`plan_batch`), else engine.batch_size."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        cap = self.cfg.max_batch_tokens
        rows_that_fit = self._memory_rows(extra)
        batches, current, limit = [], [], self.cfg.batch_size
        for k, i in enumerate(order):
            width = lengths[current[0]] + extra if current else lengths[i] + extra
            if current and (len(current) >= limit or (cap and width * (len(current) + 1) > cap)):
                batches.append(current)
                current = []
            if not current and rows_that_fit is not None:
                limit = rows_that_fit([lengths[j] for j in order[k:k + self.cfg.max_memory_batch]])
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _memory_rows(self, new_tokens: int):
        """On GPU with engine.memory_batching: a function from a batch's prompt lengths (longest first) to
        the rows that fit in free memory, with `new_tokens` of KV cache per row; else None."""
        if self.device != "cuda" or not self.cfg.memory_batching:
            return None
        import torch

        from pipeline.inference.memory import ModelDims, available_bytes, plan_batch

        # Memory the allocator reserved but does not use counts as available: hand it back first, so what is
        # counted is memory a large batch can get, not blocks split by earlier batches.
        torch.cuda.empty_cache()
        held = self.decoder.cache_bytes if self.decoder is not None else 0
        free = available_bytes(next(self.model.parameters()).device, held)  # cuda:N, the weights' GPU
        dims = ModelDims.of(self.model)
        # transformers' forward/generate prefill whole batches at once (no chunks): reserve for all of it, and
        # bound it (HF_BATCH_TOKENS); the static decoder prefills in chunks of its own.
        prefill, most = ((self.decoder.prefill_tokens, None) if self.decoder is not None
                         else (1 << 62, HF_BATCH_TOKENS))
        log.debug("memory batching: %.1f GiB available", free / 2**30)
        return lambda lengths: plan_batch(free, dims, lengths, new_tokens, self.cfg.max_memory_batch,
                                          self.cfg.memory_fraction, prefill, most).rows

    def _pad_left(self, seqs: list[list[int]], bucket: int = 1):
        """Left-padded ids and mask; the width is rounded up to a multiple of `bucket`."""
        import torch

        width = -(-max(len(s) for s in seqs) // bucket) * bucket
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            ids[row, width - len(s):] = torch.tensor(s)
            mask[row, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- generation -------------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], progress: bool = False) -> list[Generation]:
        """Greedy answers for encoded `prompts` (from `encode_prompts`), in input order; under the verdict
        grammar when engine.constrained."""
        from tqdm.auto import tqdm

        results: list[Generation | None] = [None] * len(prompts)
        batches = self._batches([len(p) for p in prompts], self.cfg.max_new_tokens)
        for batch in tqdm(batches, desc="generate", unit="batch", disable=not progress):
            t0 = time.time()
            rows = [prompts[i] for i in batch]
            shared = self._shared_kv(rows, generating=True)
            if self.decoder is not None:
                new = self.decoder.generate(rows, self.cfg.max_new_tokens, self.eos_ids, self.tokenizer.pad_token_id,
                                            prefix=shared, grammar=self.grammar, draft=self._drafting())
            else:
                new = self._hf_generate(rows, shared, self.grammar)
            seconds = time.time() - t0
            for row, i in enumerate(batch):
                tokens = new[row]
                stop = next((j for j, t in enumerate(tokens) if t in self.eos_ids), None)
                kept = tokens if stop is None else tokens[:stop]
                results[i] = Generation(self.tokenizer.decode(kept, skip_special_tokens=True), len(prompts[i]),
                                        len(kept) + (stop is not None), stop is not None, seconds / len(batch),
                                        self.grammar is not None)
        return results  # type: ignore[return-value]

    def _hf_generate(self, prompts: list[list[int]], shared=None, grammar=None) -> list[list[int]]:
        """New tokens of one batch through transformers' generate (engine.decoder=generate); `shared`: the
        shared prefix's keys/values (every prompt starts with it), which generate continues from; under
        `grammar` (a `VerdictGrammar`) when given."""
        import torch
        from transformers import LogitsProcessorList

        from pipeline.inference.grammar import GrammarLogitsProcessor

        extra = {}
        if shared is not None:
            # [prefix][left padding][own tokens]: the mask hides the padding, and generate's positions
            # (the mask's running count) put every row's own tokens right after the prefix.
            start = len(self.prefix.ids)
            own, own_mask = self._pad_left([p[start:] for p in prompts])
            head = torch.tensor(self.prefix.ids, device=self.device).expand(len(prompts), -1)
            ids, mask = torch.cat([head, own], 1), torch.cat([torch.ones_like(head), own_mask], 1)
            extra["past_key_values"] = hf_cache(shared, len(prompts))
        else:
            # A static cache's shape is prompt width + budget: widths in steps of 64 let compiled decode
            # graphs be reused across batches instead of recompiled for every width.
            ids, mask = self._pad_left(prompts, 64 if self.cfg.cache_implementation == "static" else 1)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=self.cfg.max_new_tokens, do_sample=False,
                eos_token_id=self.eos_ids, pad_token_id=self.tokenizer.pad_token_id,
                cache_implementation=self.cfg.cache_implementation, disable_compile=not self.cfg.compile,
                prefill_chunk_size=self.cfg.prefill_chunk_size, **extra,
                logits_processor=LogitsProcessorList([GrammarLogitsProcessor(grammar, len(prompts))] if grammar else []),
            )
        return out[:, ids.shape[1]:].tolist()

    # -- verdict probability ---------------------------------------------------------------------
    def score(self, prompts: list[list[int]], progress: bool = False) -> Scores:
        """P(NON_COMPLIANT) and the format mass of each encoded prompt, from one forward pass each (batched)."""
        import torch
        from tqdm.auto import tqdm

        seqs = [p + self._verdict_prefix for p in prompts]
        p_nc = np.zeros(len(seqs))
        mass = np.zeros(len(seqs))
        c_tok, nc_tok = self._decision
        for batch in tqdm(self._batches([len(s) for s in seqs], 0), desc="score", unit="batch",
                          disable=not progress):
            rows = [seqs[i] for i in batch]
            shared = self._shared_kv(rows, generating=False)
            if self.decoder is not None:
                logits = self.decoder.last_logits(rows, self.tokenizer.pad_token_id, prefix=shared)
            else:
                logits = self._hf_last_logits(rows, shared)
            probs = torch.softmax(logits, dim=-1)
            pair = probs[:, [c_tok, nc_tok]]
            p_nc[batch] = (pair[:, 1] / pair.sum(-1).clamp(min=1e-12)).cpu().numpy()
            mass[batch] = pair.sum(-1).cpu().numpy()
        calibrated = self.calibration.apply(p_nc) if self.calibration is not None else p_nc
        return Scores(calibrated, mass, p_nc)

    def _hf_last_logits(self, seqs: list[list[int]], shared=None):
        """Next-token logits after each of `seqs` (float32) from transformers' forward pass, left-padded;
        with `shared` (the prefix's keys/values) only the tokens after the prefix run, from position P."""
        import torch

        start = len(self.prefix.ids) if shared is not None else 0
        ids, mask = self._pad_left([s[start:] for s in seqs])
        positions = start + (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {}
        if shared is not None:
            extra["past_key_values"] = hf_cache(shared, len(seqs))
            mask = torch.cat([torch.ones((len(seqs), start), dtype=mask.dtype, device=mask.device), mask], 1)
        with torch.inference_mode():
            return self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1,
                              **extra).logits[:, -1, :].float()

    # -- adapters (serving: several LoRA adapters on the one base model) --------------------------------
    @property
    def attached_adapters(self) -> list[str]:
        """Names of the LoRA adapters attached to the base model."""
        return sorted(getattr(self.model, "peft_config", {}))

    def attach_adapter(self, name: str, folder: str) -> None:
        """Attach the PEFT adapter in `folder` as `name` (no-op when attached); never merged, so adapters share
        the base weights. The first one wraps the base model in PEFT, in place for the decode loop too."""
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            if name not in self.model.peft_config:
                self.model.load_adapter(folder, adapter_name=name)
                self.prefix.drop(name)  # a name attached anew may carry other weights
        else:
            self.model = PeftModel.from_pretrained(self.model, folder, adapter_name=name).eval()
            self.prefix.drop(name)
        self._calibrations[name] = self._load_calibration(folder)

    def detach_adapter(self, name: str) -> bool:
        """Remove adapter `name` from the base model; False when it was not attached."""
        if name not in getattr(self.model, "peft_config", {}):
            return False
        self.model.delete_adapter(name)
        self._calibrations.pop(name, None)
        self.prefix.drop(name)
        return True

    def use_adapter(self, name: str | None, folder: str | None = None):
        """A context in which the model runs with adapter `name` (None: the bare base). An adapter detached
        meanwhile is attached again from `folder`. Not thread-safe: callers serialise model work."""
        from peft import PeftModel

        if name is None:
            self.calibration = self._calibrations[None]
            return self._bare_weights() if isinstance(self.model, PeftModel) else contextlib.nullcontext()
        if name not in getattr(self.model, "peft_config", {}):
            if folder is None:
                raise KeyError(f"adapter {name!r} is not attached and no folder was given")
            log.warning("adapter %s was detached before its batch ran; attaching it again", name)
            self.attach_adapter(name, folder)
        self.model.set_adapter(name)
        self.calibration = self._calibrations.get(name)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _bare_weights(self):
        """PEFT's disable_adapter, remembered so the shared prefix of the bare weights is the one used."""
        with self.model.disable_adapter():
            self._adapters_off = True
            try:
                yield
            finally:
                self._adapters_off = False

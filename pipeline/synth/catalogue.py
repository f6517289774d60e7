"""The generator's catalogue, read from the YAML data files in `pipeline/synth/catalogue/`.

taxonomy.yaml (topics, citations, severities, rule texts), scenarios.yaml (per-topic scenario
templates with their cue-free key moves), fillers.yaml (small talk, distractors, manipulation
sentences, abbreviations), formats.yaml (format dressing) and pools.yaml (names, firms, products).
Files are read once, on first use, not at import.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CATALOGUE_DIR = Path(__file__).resolve().parent / "catalogue"
SPEAKERS = ("A", "C", "S", "T")
COUNTERPARTS = ("retail", "senior", "institutional", "prospect", "colleague")


@dataclass(frozen=True)
class KeyTurn:
    """One turn of a key move: its speaker and its text in the violating and the compliant version."""

    who: str
    nc: str
    c: str


@dataclass(frozen=True)
class Scenario:
    """One conversation skeleton of a topic (see the header of scenarios.yaml)."""

    key: str
    who: str
    products: tuple[str, ...]
    setting: str
    before: tuple[tuple[str, ...], ...]
    keys: tuple[tuple[KeyTurn, ...], ...]
    after: tuple[tuple[str, ...], ...]
    summary_nc: str
    summary_c: str
    why_nc: str
    why_c: str
    formats: tuple[str, ...] = ()
    rule: str | None = None
    third: str | None = None
    c_kind: str | None = None


@dataclass(frozen=True)
class Topic:
    """One taxonomy topic: label, citations (first is the default), severity, source mix, rule text."""

    key: str
    name: str
    citations: tuple[str, ...]
    severity: str
    sources: tuple[tuple[str, int], ...]
    rule_text: str
    scenarios: tuple[Scenario, ...]


def _read(name: str) -> Any:
    with (CATALOGUE_DIR / name).open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _scenario(raw: dict) -> Scenario:
    keys = tuple(tuple(KeyTurn(*turn) for turn in move) for move in raw["keys"])
    return Scenario(
        key=raw["key"], who=raw["who"], products=tuple(raw["products"]), setting=raw["setting"],
        before=tuple(tuple(t) for t in raw.get("before", ())), keys=keys,
        after=tuple(tuple(t) for t in raw.get("after", ())),
        summary_nc=raw["summary_nc"], summary_c=raw["summary_c"], why_nc=raw["why_nc"], why_c=raw["why_c"],
        formats=tuple(raw.get("formats", ())), rule=raw.get("rule"), third=raw.get("third"),
        c_kind=raw.get("c_kind"))


@functools.cache
def topics() -> tuple[Topic, ...]:
    """Every topic of the taxonomy with its scenarios, in taxonomy order."""
    tax, scenarios = _read("taxonomy.yaml"), _read("scenarios.yaml")
    mixes = tax["source_mixes"]
    out = []
    for t in tax["topics"]:
        out.append(Topic(key=t["key"], name=t["name"], citations=tuple(t["citations"]), severity=t["severity"],
                         sources=tuple(mixes[t["sources"]].items()), rule_text=t["rule_text"],
                         scenarios=tuple(_scenario(s) for s in scenarios.get(t["key"], ()))))
    return tuple(out)


@functools.cache
def severity_notes() -> dict[str, str]:
    """Severity -> the sentence that closes a violating reasoning trace."""
    return dict(_read("taxonomy.yaml")["severity_notes"])


@functools.cache
def pools() -> dict[str, Any]:
    """Vocabulary pools (pools.yaml)."""
    return _read("pools.yaml")


@functools.cache
def fillers() -> dict[str, Any]:
    """Small talk, distractors, manipulation sentences and abbreviations (fillers.yaml)."""
    return _read("fillers.yaml")


@functools.cache
def formats() -> dict[str, Any]:
    """Format dressing (formats.yaml)."""
    return _read("formats.yaml")


def taxonomy() -> dict[str, dict[str, Any]]:
    """Topic name -> {"key", "citations", "severity", "rule_text"}: the taxonomy the report also reads."""
    return {t.name: {"key": t.key, "citations": list(t.citations), "severity": t.severity,
                     "rule_text": t.rule_text} for t in topics()}

"""Turn one raw input line into labelled records or named rejections, never an exception.

A line is one item holding ``compliant_version`` and/or ``non_compliant_version``; each version
becomes one record. Whatever is wrong with a line or a version becomes a reject row with a reason
from `REASONS`, so the preparation job can reconcile: records read = accepted + rejected.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline.schema import (
    NONE_LABEL,
    TEXT_FIELDS,
    VERSION_KEYS,
    collapse_ws,
    label_problems,
    normalize_none_label,
    normalize_severity,
    normalize_verdict,
)

REASONS = {
    "empty_file": "the file holds no lines",
    "unreadable_file": "the file could not be opened, read or decompressed",
    "dangling_symlink": "a symlink in an input folder points to nothing (missing target or a loop)",
    "truncated_gzip": "the compressed stream ends early; the cut-off tail is lost",
    "line_too_large": "the line exceeds data.max_line_bytes",
    "not_utf8": "the line is not valid UTF-8",
    "blank_line": "the line is empty",
    "invalid_json": "the line is not valid JSON",
    "nested_too_deep": "the JSON nests arrays/objects deeper than the parser's recursion limit",
    "lone_surrogate": "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not text",
    "not_an_object": "the line is JSON but not an object",
    "no_versions": "the item has neither compliant_version nor non_compliant_version",
    "missing_field": "a required field is absent",
    "empty_field": "a required field is empty",
    "wrong_type": "a field has the wrong type",
    "unknown_enum": "final_verdict or severity is not a known value",
    "verdict_version_mismatch": "the verdict contradicts the version key it sits under",
    "inconsistent_labels": "verdict, severity, rule and topic disagree",
    "evidence_not_in_scenario": "an evidence quote does not occur in the scenario",
    "too_long": "the formatted example exceeds data.max_seq_len tokens (policy: reject)",
    "evidence_truncated": "truncation to data.max_seq_len cut off an evidence quote",
    "duplicate_exact": "the scenario is identical to an earlier record's",
    "duplicate_near": "the scenario matches an earlier record's after normalising case, spacing and punctuation",
}

RECORD_COLUMNS = (
    "id", "item_id", "file", "line", "version", "status", "reason", "detail", "source", "format",
    "scenario", "final_verdict", "executive_summary", "rule_violated", "compliance_topic", "severity",
    "evidence_list", "reasoning_trace", "raw_excerpt",
)
_EXCERPT = 300
# A \uD800-\uDFFF escape: valid only as half of a surrogate pair, which json.loads joins into one character.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _row(item_id: str, path: str, line: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: "" for c in RECORD_COLUMNS}
    row.update(id=item_id, item_id=item_id, file=path, line=line, evidence_list=[], status="accepted")
    row.update(fields)
    return row


def reject_row(item_id: str, path: str, line: int, reason: str, detail: str = "", raw: str = "", **fields) -> dict:
    """A reject row with the common columns; `reason` must be a key of REASONS."""
    assert reason in REASONS, reason
    return _row(item_id, path, line, status="rejected", reason=reason, detail=detail[:500],
                raw_excerpt=raw[:_EXCERPT], **fields)


def check_version(version: Any, expected_verdict: str) -> tuple[dict | None, str, str]:
    """Validate and normalise one version record.

    Returns (verdict fields, "", "") when valid, else (None, reason, detail).
    """
    if not isinstance(version, dict):
        return None, "wrong_type", f"version is {type(version).__name__}, expected an object"
    required = ("scenario", "final_verdict", "severity", "evidence_list") + TEXT_FIELDS
    missing = [k for k in required if k not in version or version[k] is None]
    if missing:
        return None, "missing_field", f"missing {', '.join(missing)}"
    wrong = [k for k in ("scenario", "final_verdict", "severity") + TEXT_FIELDS if not isinstance(version[k], str)]
    evidence = version["evidence_list"]
    if not isinstance(evidence, list) or not all(isinstance(q, str) for q in evidence):
        wrong.append("evidence_list")
    if wrong:
        return None, "wrong_type", f"not text: {', '.join(wrong)}" if "evidence_list" not in wrong else \
            f"wrong type: {', '.join(wrong)} (evidence_list must be a list of strings)"
    empty = [k for k in ("scenario", "final_verdict", "severity") + TEXT_FIELDS if not version[k].strip()]
    if any(not q.strip() for q in evidence):
        empty.append("evidence_list (blank quote)")
    verdict = normalize_verdict(version["final_verdict"])
    if verdict == "NON_COMPLIANT" and not evidence:
        empty.append("evidence_list")
    if empty:
        return None, "empty_field", f"empty {', '.join(empty)}"
    severity = normalize_severity(version["severity"])
    bad_enums = []
    if verdict is None:
        bad_enums.append(f"final_verdict={version['final_verdict']!r}")
    if severity is None:
        bad_enums.append(f"severity={version['severity']!r}")
    if bad_enums:
        return None, "unknown_enum", ", ".join(bad_enums)
    if verdict != expected_verdict:
        return None, "verdict_version_mismatch", f"final_verdict={verdict} under the {expected_verdict} version"
    fields = {
        "scenario": version["scenario"].strip(),
        "final_verdict": verdict,
        "executive_summary": version["executive_summary"].strip(),
        "rule_violated": normalize_none_label(version["rule_violated"]),
        "compliance_topic": normalize_none_label(version["compliance_topic"]),
        "severity": severity,
        "evidence_list": [q.strip() for q in evidence],
        "reasoning_trace": version["reasoning_trace"].strip(),
    }
    problems = label_problems(fields)
    if problems:
        return None, "inconsistent_labels", "; ".join(problems)
    haystack = collapse_ws(fields["scenario"])
    absent = [q for q in fields["evidence_list"] if collapse_ws(q) not in haystack]
    if absent:
        return None, "evidence_not_in_scenario", "not found verbatim: " + " | ".join(repr(q[:80]) for q in absent)
    return fields, "", ""


def lone_surrogate(item: Any) -> str:
    """'' when every string of a parsed JSON value is encodable text, else which surrogate is alone and where."""
    try:
        json.dumps(item, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        return f"{e.object[e.start:e.end]!r} at character {e.start} of the item (a surrogate without its pair)"
    return ""


def parse_line(raw: bytes, path: str, label: str, line: int, oversize: int = 0) -> list[dict]:
    """One raw JSONL line -> one row per version (accepted or rejected), or one reject row.

    `label` is the file's short name used in ids (``sec.jsonl:12#nc``); `oversize` is the true byte
    length of a line the reader refused to carry. Never raises for bad input.
    """
    item_id = f"{label}:{line}"
    if oversize:
        return [reject_row(item_id, path, line, "line_too_large", f"{oversize:,} bytes")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return [reject_row(item_id, path, line, "not_utf8", str(e), raw.decode("utf-8", "replace"))]
    if not text.strip():
        return [reject_row(item_id, path, line, "blank_line")]
    try:
        item = json.loads(text)
    except json.JSONDecodeError as e:
        return [reject_row(item_id, path, line, "invalid_json", str(e), text)]
    except RecursionError as e:
        return [reject_row(item_id, path, line, "nested_too_deep", str(e), text)]
    if _SURROGATE_ESCAPE.search(text):
        lone = lone_surrogate(item)
        if lone:
            return [reject_row(item_id, path, line, "lone_surrogate", lone, text)]
    if not isinstance(item, dict):
        return [reject_row(item_id, path, line, "not_an_object", f"got {type(item).__name__}", text)]
    present = [k for k in VERSION_KEYS if item.get(k) is not None]
    if not present:
        return [reject_row(item_id, path, line, "no_versions", f"keys: {sorted(item)[:10]}", text)]
    source = item.get("source")
    chunk = item.get("chunk_analysis")
    fmt = chunk.get("format_identified") if isinstance(chunk, dict) else None
    common = {
        "source": source.strip() if isinstance(source, str) and source.strip() else "unknown",
        "format": fmt.strip().lower() if isinstance(fmt, str) and fmt.strip() else "unknown",
    }
    rows = []
    for key in present:
        short = "c" if key == "compliant_version" else "nc"
        version_name = key.removesuffix("_version")
        fields, reason, detail = check_version(item[key], VERSION_KEYS[key])
        if fields is None:
            rows.append(reject_row(item_id, path, line, reason, detail, json.dumps(item[key])[:_EXCERPT],
                                   id=f"{item_id}#{short}", version=version_name, **common))
        else:
            rows.append(_row(item_id, path, line, id=f"{item_id}#{short}", version=version_name, **common, **fields))
    return rows


__all__ = ["REASONS", "RECORD_COLUMNS", "NONE_LABEL", "check_version", "parse_line", "reject_row"]

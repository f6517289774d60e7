"""The verdict schema: field order, enums and their normalisation.

One verdict is what the detector answers for one communication, and also what each version of an
input pair carries as its label. The key order here is the order the model learns to write, with
``final_verdict`` first so its probability can be read from one forward pass.
"""

from __future__ import annotations

import re

VERDICTS = ("COMPLIANT", "NON_COMPLIANT")
SEVERITIES = ("HIGH", "MEDIUM", "LOW", "NONE")
NONE_LABEL = "None"  # rule_violated / compliance_topic of a COMPLIANT verdict

VERDICT_FIELDS = (
    "final_verdict",
    "executive_summary",
    "rule_violated",
    "compliance_topic",
    "severity",
    "evidence_list",
    "reasoning_trace",
)
TEXT_FIELDS = ("executive_summary", "rule_violated", "compliance_topic", "reasoning_trace")
VERSION_KEYS = {"compliant_version": "COMPLIANT", "non_compliant_version": "NON_COMPLIANT"}

_SEP = re.compile(r"[\s\-]+")
_WS = re.compile(r"\s+")
_NONE_WORDS = {"none", "n/a", "na", "null", "nil", ""}


def normalize_verdict(value: object) -> str | None:
    """'non-compliant', 'Non_Compliant', ' compliant ' -> canonical verdict; None when unknown."""
    if not isinstance(value, str):
        return None
    v = _SEP.sub("_", value.strip()).upper()
    v = {"NONCOMPLIANT": "NON_COMPLIANT", "NOT_COMPLIANT": "NON_COMPLIANT"}.get(v, v)
    return v if v in VERDICTS else None


def normalize_severity(value: object) -> str | None:
    """'high', 'None', 'none' -> canonical severity; None when unknown."""
    if not isinstance(value, str):
        return None
    v = value.strip().upper()
    return v if v in SEVERITIES else None


def normalize_none_label(value: str) -> str:
    """'none', 'N/A', 'null' in rule/topic fields -> 'None'; anything else unchanged (stripped)."""
    v = value.strip()
    return NONE_LABEL if v.lower() in _NONE_WORDS else v


def collapse_ws(text: str) -> str:
    """Whitespace runs -> one space, ends stripped: the form evidence quotes are matched in."""
    return _WS.sub(" ", text).strip()


def label_problems(verdict: dict) -> list[str]:
    """Consistency of an already-normalised verdict: COMPLIANT <=> severity NONE and rule/topic None."""
    problems = []
    is_violation = verdict["final_verdict"] == "NON_COMPLIANT"
    if is_violation:
        if verdict["severity"] == "NONE":
            problems.append("NON_COMPLIANT with severity NONE")
        for key in ("rule_violated", "compliance_topic"):
            if verdict[key] == NONE_LABEL:
                problems.append(f"NON_COMPLIANT with {key}=None")
    else:
        if verdict["severity"] != "NONE":
            problems.append(f"COMPLIANT with severity {verdict['severity']}")
        for key in ("rule_violated", "compliance_topic"):
            if verdict[key] != NONE_LABEL:
                problems.append(f"COMPLIANT with {key}={verdict[key]!r}")
    return problems

"""Read the detector's raw generation into a normalised verdict; never raises.

Statuses, from best to worst:

- ``ok``: a strict-JSON object carrying ``final_verdict`` was found and every field is in canonical
  form. Prose before or after it, code fences, several objects (the first verdict wins), a BOM
  and end-of-sequence strings (``</s>``, ``<|im_end|>``) are ignored here: finding the object
  in the text is the reader's job, and every consumer downstream can use the result as is.
- ``repaired``: usable, and clean after fixes the model should not have needed. `repairs` names
  them: a truncated object closed, single quotes or Python literals, trailing commas, smart
  quotes, raw control characters in strings, an object unwrapped from an array, key or enum
  spellings normalised (``non-compliant``), a string ``evidence_list`` made a list, extra keys dropped.
- ``invalid_schema``: an object was parsed but breaks the schema; `problems` says how. If
  ``final_verdict`` is missing or unknown, `verdict` is None. Otherwise `verdict` is kept with
  every field it could read (the rest None), so verdict accuracy counts it while the
  JSON-validity rate does not.
- ``parse_error``: no JSON object could be read; `verdict` and `raw` are None.
- ``truncated``: the generation was cut by the new-token budget before the answer ended (set by
  `pipeline.inference.verdicts.read_verdict`, which knows; text alone cannot tell). `verdict` holds what
  could be read of the cut answer (the verdict comes first), `problems` says it was cut.

So JSON validity = status in ``VALID_STATUSES``: ok and repaired never carry problems.

This tolerant reader is for answers from elsewhere (an unconstrained engine, another model, a file). The
engine's answers decoded under the verdict grammar (pipeline/inference/grammar.py) are read strictly by
`read_constrained`: they are schema-shaped by construction.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.schema import (
    NONE_LABEL,
    VERDICT_FIELDS,
    label_problems,
    normalize_none_label,
    normalize_severity,
    normalize_verdict,
)

logger = logging.getLogger(__name__)

STATUSES = ("ok", "repaired", "invalid_schema", "parse_error")  # what parse_verdict can say of a text
TRUNCATED = "truncated"  # what read_verdict says of a generation cut by the new-token budget
VALID_STATUSES = ("ok", "repaired")
EOS_STRINGS = ("</s>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>",
               "<eos>", "<end_of_turn>")
# Each '{' is a candidate start; caps bound the work on degenerate outputs (a wall of braces).
# Repairs scan in Python, to the end of the text when it is truncated, so they get fewer starts.
MAX_CANDIDATES = 256
MAX_REPAIR_CANDIDATES = 32
MAX_LITERAL_CHARS = 100_000  # ast.literal_eval builds a full syntax tree: keep its input bounded
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"'})
_EOS = re.compile("|".join(re.escape(s) for s in EOS_STRINGS))
_STRICT = json.JSONDecoder()
_LENIENT = json.JSONDecoder(strict=False)  # accepts raw newlines/tabs inside strings
_PY_WORDS = {"True": "true", "False": "false", "None": "null"}
_DECODE_ERRORS = (ValueError, SyntaxError, TypeError, RecursionError, MemoryError)


@dataclass(frozen=True)
class ParsedVerdict:
    """One generation, read. `verdict` has the keys of VERDICT_FIELDS in order, or is None."""

    verdict: dict | None
    status: str
    error: str = ""
    problems: list[str] = field(default_factory=list)
    raw: dict | None = None
    repairs: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Counts towards the JSON-validity rate: parsed and schema-clean."""
        return self.status in VALID_STATUSES


def verdict_label(parsed: ParsedVerdict) -> str | None:
    """COMPLIANT / NON_COMPLIANT when the verdict could be read (whatever else is wrong), else None."""
    return parsed.verdict["final_verdict"] if parsed.verdict is not None else None


def parse_verdict(text: str) -> ParsedVerdict:
    """Parse one raw generation into a `ParsedVerdict` (see the module docstring for statuses).

    Takes any value; never raises.
    """
    try:
        return _parse(text)
    except Exception as e:  # noqa: BLE001 - the contract is a status, never an exception mid-batch
        logger.warning("parse_verdict failed unexpectedly (%s: %s); counted as parse_error",
                       type(e).__name__, e)
        return ParsedVerdict(None, "parse_error", f"parser failure: {type(e).__name__}: {e}")


def truncated_verdict(text: str, budget_note: str) -> ParsedVerdict:
    """A generation cut by the new-token budget: status ``truncated``, with whatever verdict the cut text
    still gives (its object closed by the tolerant reader). `budget_note` says which budget cut it."""
    read = parse_verdict(text)
    problem = f"cut by {budget_note} before the answer ended"
    return ParsedVerdict(read.verdict, TRUNCATED, problem, [problem, *read.problems], read.raw, read.repairs)


def read_constrained(text: str) -> ParsedVerdict:
    """Read a finished answer decoded under the verdict grammar: strict JSON, checked against the schema.

    The grammar makes it one verdict object in canonical form (status ``ok``); ``invalid_schema`` remains
    possible only for rules the grammar does not encode (a rule named ``None`` in a NON_COMPLIANT verdict).
    A text that is not strict JSON (no grammar was applied after all) is read by `parse_verdict`.
    """
    try:
        raw = _STRICT.decode(text.strip())
    except _DECODE_ERRORS:
        logger.warning("a grammar-constrained answer is not strict JSON; reading it tolerantly")
        return parse_verdict(text)
    if not _has_verdict(raw):
        return parse_verdict(text)
    verdict, problems, repairs = _check(raw)
    if problems:
        return ParsedVerdict(verdict, "invalid_schema", "; ".join(problems), problems, raw, repairs)
    if repairs:
        return ParsedVerdict(verdict, "repaired", "repaired: " + ", ".join(repairs), [], raw, repairs)
    return ParsedVerdict(verdict, "ok", "", [], raw, [])


def _parse(text: Any) -> ParsedVerdict:
    if not isinstance(text, str):
        return ParsedVerdict(None, "parse_error", f"output is {type(text).__name__}, not text")
    cleaned = _EOS.sub("", text.replace("\ufeff", ""))
    if not cleaned.strip():
        return ParsedVerdict(None, "parse_error", "empty output")
    raw, repairs, error = _find_object(cleaned)
    if raw is None:
        return ParsedVerdict(None, "parse_error", error)
    verdict, problems, fixes = _check(raw)
    repairs = repairs + fixes
    if problems:
        return ParsedVerdict(verdict, "invalid_schema", "; ".join(problems), problems, raw, repairs)
    if repairs:
        return ParsedVerdict(verdict, "repaired", "repaired: " + ", ".join(repairs), [], raw, repairs)
    return ParsedVerdict(verdict, "ok", "", [], raw, [])


def _canon_key(key: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def _has_verdict(obj: object) -> bool:
    return isinstance(obj, dict) and any(_canon_key(k) == "final_verdict" for k in obj)


def _find_object(text: str) -> tuple[dict | None, list[str], str]:
    """The first object with final_verdict: strict JSON first, then repaired readings.

    Strict wins over repair even when the repairable object comes first: a clean later object
    (a model restating its answer) is better evidence than our guess at a broken one.
    Returns (object, repairs, error); without a verdict object, the first object of any kind.
    """
    starts = [m.start() for m in re.finditer(r"\{", text)][:MAX_CANDIDATES]
    if not starts:
        return None, [], "no JSON object in the output"
    first_other: tuple[dict, list[str]] | None = None
    for i in starts:
        try:
            obj, _ = _STRICT.raw_decode(text, i)
        except _DECODE_ERRORS:
            continue
        if _has_verdict(obj):
            return obj, _wrapping(text, i), ""
        if isinstance(obj, dict) and first_other is None:
            first_other = (obj, [])
    fixed = text.translate(_SMART_QUOTES)
    variants = [(text, [])] + ([(fixed, ["smart quotes"])] if fixed != text else [])
    for variant, notes in variants:
        for i in starts[:MAX_REPAIR_CANDIDATES]:
            for obj, how in _repaired_readings(variant, i):
                if _has_verdict(obj):
                    return obj, notes + how + _wrapping(variant, i), ""
                if isinstance(obj, dict) and first_other is None:
                    first_other = (obj, notes + how)
    if first_other is not None:
        return first_other[0], first_other[1], ""
    return None, [], "no parseable JSON object in the output"


def _wrapping(text: str, start: int) -> list[str]:
    # '[' right before the object: the model answered a JSON array of verdicts, not one verdict.
    before = text[:start].rstrip()
    return ["unwrapped from a JSON array"] if before.endswith("[") else []


def _repaired_readings(text: str, start: int):
    """Yield (object, repairs) for each repaired reading of the candidate at `start`."""
    for decoder, how in ((_STRICT, []), (_LENIENT, ["control characters in strings"])):
        try:  # strict succeeds here only on a variant text (smart quotes fixed)
            yield decoder.raw_decode(text, start)[0], how
            break
        except _DECODE_ERRORS:
            continue
    candidates, end, how = _rewrite(text, start)
    for candidate in candidates:
        try:
            yield _LENIENT.decode(candidate), how
            break
        except _DECODE_ERRORS:
            continue
    if end is not None and end - start <= MAX_LITERAL_CHARS:
        try:
            # literal_eval evaluates literals only (no names, calls or attributes): safe on model text.
            yield ast.literal_eval(text[start:end]), ["python literal"]
        except _DECODE_ERRORS:
            pass


def _rewrite(text: str, start: int) -> tuple[list[str], int | None, list[str]]:
    """Rewrite the object starting at `start` as JSON, one character scan.

    Single-quoted strings become double-quoted, True/False/None become JSON literals, trailing
    commas go. If the text ends inside the object (a generation cut at max_new_tokens), the open
    string and brackets are closed; a second candidate also drops the last, partial member.
    Returns (candidates best first, end of the object in `text` or None if unclosed, repairs).
    """
    out: list[str] = []
    closers: list[str] = []
    how: set[str] = set()
    quote = ""  # delimiter of the string being read, "" outside strings
    last_comma: tuple[int, str] | None = None  # out length before the last comma outside strings
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                if i + 1 < n:  # keep escapes, but \' is not a JSON escape
                    out.append("'" if text[i + 1] == "'" else ch + text[i + 1])
                i += 2  # a lone backslash at a cut-off end is dropped
                continue
            if ch == quote and (quote == '"' or _closes_single(text, i + 1)):
                out.append('"')
                quote = ""
            else:
                out.append('\\"' if ch == '"' else ch)
        elif ch in "\"'":
            quote = ch
            out.append('"')
            if ch == "'":
                how.add("single quotes")
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
            out.append(ch)
        elif ch in "}]":
            if _drop_trailing_comma(out):
                how.add("trailing comma")
            if not closers or closers[-1] != ch:
                return [], None, []
            closers.pop()
            out.append(ch)
            if not closers:
                return ["".join(out)], i + 1, sorted(how)
        elif ch == ",":
            last_comma = (len(out), "".join(reversed(closers)))
            out.append(ch)
        elif ch.isalpha() or ch == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            if word in _PY_WORDS:
                how.add("python literals")
            out.append(_PY_WORDS.get(word, word))
            i = j
            continue
        else:
            out.append(ch)
        i += 1
    how.add("closed a truncated object")
    body = "".join(out) + ('"' if quote else "")
    candidates = [_close(body, "".join(reversed(closers)))]
    if last_comma is not None:
        candidates.append(_close("".join(out[: last_comma[0]]), last_comma[1]))
    return candidates, None, sorted(how)


def _closes_single(text: str, i: int) -> bool:
    # Models write apostrophes unescaped inside single-quoted strings ('I'll cover it'): a quote
    # closes the string only where JSON syntax continues (, : } ] or the end of the text).
    rest = text[i:i + 200].lstrip()
    return not rest or rest[0] in ",:}]"


def _drop_trailing_comma(out: list[str]) -> bool:
    j = len(out) - 1
    while j >= 0 and out[j].isspace():
        j -= 1
    if j >= 0 and out[j] == ",":
        del out[j]
        return True
    return False


def _close(body: str, closers: str) -> str:
    body = body.rstrip()
    return (body[:-1] if body.endswith(",") else body) + closers


def _check(raw: dict) -> tuple[dict | None, list[str], list[str]]:
    """Validate and normalise a parsed object. Returns (verdict or None, problems, repairs)."""
    fields: dict[str, Any] = {}
    repairs: list[str] = []
    extra = [str(k) for k in raw if _canon_key(k) not in VERDICT_FIELDS]
    for key, value in raw.items():
        canon = _canon_key(key)
        if canon in VERDICT_FIELDS and canon not in fields:
            fields[canon] = value
            if canon != key:
                repairs.append(f"key {key!r} read as {canon}")
    if extra:
        repairs.append("dropped extra keys " + ", ".join(repr(k) for k in extra[:5]))
    if "final_verdict" not in fields:
        return None, ["missing final_verdict"], repairs
    verdict: dict[str, Any] = {"final_verdict": normalize_verdict(fields["final_verdict"])}
    if verdict["final_verdict"] is None:
        return None, [f"unknown final_verdict {fields['final_verdict']!r}"], repairs
    if verdict["final_verdict"] != fields["final_verdict"]:
        repairs.append(f"final_verdict {fields['final_verdict']!r} read as {verdict['final_verdict']}")
    problems = [f"missing {k}" for k in VERDICT_FIELDS if k not in fields]
    for key in ("executive_summary", "reasoning_trace"):
        value = fields.get(key)
        verdict[key] = value.strip() if isinstance(value, str) else None
        if key in fields and not isinstance(value, str):
            problems.append(f"{key} is {type(value).__name__}, not text")
        elif key in fields and not verdict[key]:
            problems.append(f"empty {key}")
    # JSON null is how compliant answers often say "no rule" / "no severity": the None label and NONE.
    for key in ("rule_violated", "compliance_topic", "severity"):
        verdict[key] = None
        if key not in fields:
            continue
        value = fields[key]
        if key == "severity":
            verdict[key] = "NONE" if value is None else normalize_severity(value)
        elif value is None or isinstance(value, str):
            verdict[key] = NONE_LABEL if value is None else normalize_none_label(value)
        if verdict[key] is None:
            problems.append(f"unknown severity {value!r}" if key == "severity"
                            else f"{key} is {type(value).__name__}, not text")
        elif verdict[key] != value:
            repairs.append(f"{key} {value!r} read as {verdict[key]!r}")
    verdict["evidence_list"] = None
    if "evidence_list" in fields:
        verdict["evidence_list"] = _check_evidence(
            fields["evidence_list"], verdict["final_verdict"], problems, repairs)
    if all(verdict[k] is not None for k in ("severity", "rule_violated", "compliance_topic")):
        problems += label_problems(verdict)
    return {k: verdict[k] for k in VERDICT_FIELDS}, problems, repairs


def _check_evidence(value: Any, final: str, problems: list[str], repairs: list[str]) -> list[str] | None:
    """Evidence quotes as a list of stripped strings; appends to `problems` and `repairs`."""
    if value is None:
        value = []
        repairs.append("evidence_list null read as []")
    elif isinstance(value, str):
        value = [value]
        repairs.append("evidence_list was one string")
    if not isinstance(value, list):
        problems.append(f"evidence_list is {type(value).__name__}, not a list")
        return None
    quotes = [q.strip() for q in value if isinstance(q, str) and q.strip()]
    if any(not isinstance(q, str) for q in value):
        problems.append("evidence_list holds non-text items")
    elif len(quotes) < len(value):
        repairs.append("dropped blank quotes")
    if final == "NON_COMPLIANT" and not quotes:
        problems.append("NON_COMPLIANT with no evidence")
    return quotes


__all__ = ["EOS_STRINGS", "STATUSES", "TRUNCATED", "VALID_STATUSES", "ParsedVerdict", "parse_verdict", "read_constrained",
           "truncated_verdict", "verdict_label"]

"""A generation becomes a verdict here, and only here: evaluation, archive scoring and serving all call
`read_verdict`.

The raw answer is parsed (pipeline/inference/parsing.py: strictly when it was decoded under the verdict grammar,
tolerantly otherwise; an answer cut by the new-token budget is ``truncated``), every field typed as the verdict schema says
(odd values become text, an unknown verdict None), and each evidence quote grounded in the communication
(pipeline/inference/grounding.py; the threshold's one home is `grounding.DEFAULT_THRESHOLD`). The record
then gives the prediction columns (evaluation, scoring) or the fields of an HTTP answer (serving).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pipeline.inference.engine import Generation
from pipeline.inference.grounding import DEFAULT_THRESHOLD, Grounding, ground_evidence, grounding_summary
from pipeline.inference.parsing import ParsedVerdict, parse_verdict, read_constrained, truncated_verdict


@dataclass(frozen=True)
class VerdictRecord:
    """One generation read: the parse, the verdict with typed fields (None when unreadable), the grounded
    evidence, and the generation's cost."""

    generation: Generation
    parsed: ParsedVerdict
    verdict: dict | None
    evidence: list[Grounding] = field(default_factory=list)

    @property
    def all_grounded(self) -> bool | None:
        """Every quote found in the communication (None without quotes)."""
        return all(g.grounded for g in self.evidence) if self.evidence else None

    def columns(self) -> dict:
        """The prediction columns of evaluation and scoring (parse status, fields, grounding, cost)."""
        verdict = self.verdict or {}
        summary = grounding_summary(self.evidence)
        gen = self.generation
        return {
            "raw_output": gen.text, "parse_status": self.parsed.status, "parse_error": self.parsed.error,
            "pred_verdict": verdict.get("final_verdict"), "pred_topic": verdict.get("compliance_topic"),
            "pred_severity": verdict.get("severity"), "pred_rule": verdict.get("rule_violated"),
            "pred_json": json.dumps(self.verdict, ensure_ascii=False) if self.verdict else None,
            "evidence": json.dumps([{"quote": g.quote, "grounded": g.grounded, "score": round(g.score, 1)}
                                    for g in self.evidence], ensure_ascii=False),
            "n_quotes": summary["n"], "grounded_rate": summary["rate"] if summary["n"] else float("nan"),
            "prompt_tokens": gen.prompt_tokens, "new_tokens": gen.new_tokens, "finished": gen.finished,
            "latency_s": gen.seconds,
        }


def typed_verdict(verdict: dict | None) -> dict | None:
    """The parsed verdict with every field as the schema types it: text fields as text (odd values become
    text), evidence_list a list of strings or None, final_verdict COMPLIANT / NON_COMPLIANT or None."""
    if verdict is None:
        return None
    out = {k: v if v is None or isinstance(v, str) else str(v) for k, v in verdict.items() if k != "evidence_list"}
    quotes = verdict.get("evidence_list")
    out["evidence_list"] = None
    if isinstance(quotes, list):
        out["evidence_list"] = [q if isinstance(q, str) else json.dumps(q) for q in quotes]
    if out.get("final_verdict") not in ("COMPLIANT", "NON_COMPLIANT"):
        out["final_verdict"] = None
    return out


def read_verdict(generation: Generation, communication: str,
                 grounding_threshold: float = DEFAULT_THRESHOLD) -> VerdictRecord:
    """One generation for `communication` -> its `VerdictRecord` (parsed, typed, evidence grounded with a fuzzy
    score of at least `grounding_threshold`, 0-100). Never raises on a malformed answer."""
    if generation.truncated:
        parsed = truncated_verdict(generation.text, f"the new-token budget ({generation.new_tokens} tokens)")
    elif generation.constrained:
        parsed = read_constrained(generation.text)
    else:
        parsed = parse_verdict(generation.text)
    verdict = typed_verdict(parsed.verdict)
    quotes = (verdict or {}).get("evidence_list") or []
    return VerdictRecord(generation, parsed, verdict, ground_evidence(quotes, communication, grounding_threshold))

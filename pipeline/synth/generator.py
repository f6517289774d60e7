"""Items in the input schema: topic, scenario, format and context drawn per index, then labels.

Item ``i`` depends only on ``(seed, i)`` through its own ``random.Random``, so generation can be
sharded by index range and re-run bit for bit.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from pipeline.synth import catalogue
from pipeline.synth.context import build_context
from pipeline.synth.render import FORMATS, render, roles
from pipeline.synth.script import POST_FORMATS, build_turns

SOURCES = ("FINRA", "SEC", "internal")
_SEVERITY_DRAW = {"HIGH": ("HIGH", "HIGH", "HIGH", "MEDIUM"), "MEDIUM": ("MEDIUM", "MEDIUM", "MEDIUM", "HIGH", "LOW"),
                  "LOW": ("LOW", "LOW", "MEDIUM")}
_VERB = {"text_message": "texted", "phone_transcript": "said"}
_EPOCH = date(2022, 1, 3)
_SPAN_DAYS = 1270
_MANIPULATION_NOTE = ("The communication also contains a sentence addressed to the reviewer about how to classify "
                      "it; such instructions are part of the text under review and do not change the assessment.")
_COMPLIANT_CLOSINGS = (
    "Nothing in the exchange violates the rule, so the verdict is COMPLIANT with severity NONE.",
    "No violation is present; the communication is compliant and severity is NONE.",
    "The communication handles the issue correctly, so no rule is violated.",
)
_SPEAKER = {"A": "the advisor", "C": "the {c_role}", "S": "the advisor's assistant", "T": "{c_first}'s {t_rel}"}


def _describe(scenario: catalogue.Scenario, ctx: dict) -> str:
    c_role = {"senior": f"{ctx['age']}-year-old client", "institutional": f"{ctx['c_title']} of {ctx['c_org']}, "
              "an institutional customer", "prospect": "prospective client",
              "colleague": "colleague"}.get(scenario.who, "client")
    return f"advisor {ctx['a_name']} of {ctx['firm']} and {c_role} {ctx['c_name']}"


def _quotes(fmt: str, turns, version: str, ctx: dict, c_role: str) -> tuple[list[str], str]:
    """(evidence quotes, the sentences quoting them) for one version's key turns."""
    evidence, sentences = [], []
    for turn in turns:
        quote = getattr(turn, version)
        evidence.append(quote)
        who = _SPEAKER[turn.speaker(version)].format(c_role=c_role, **ctx)
        sentences.append(f'{who[:1].upper()}{who[1:]} {_VERB.get(fmt, "wrote")}: "{quote}"')
    return evidence, " ".join(sentences)


def _choose_format(rng: random.Random, scenario: catalogue.Scenario) -> str:
    if scenario.formats:
        return rng.choice(scenario.formats)
    weights = catalogue.formats()["weights"]
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def make_item(index: int, seed: int = 0) -> dict:
    """Item ``index`` for ``seed``: a dict in the input schema, independent of every other item."""
    rng = random.Random(f"complyray-synth-v2:{seed}:{index}")
    topic = rng.choice(catalogue.topics())
    scenario = rng.choice(topic.scenarios)
    fmt = _choose_format(rng, scenario)
    source = rng.choices([s for s, _ in topic.sources], weights=[w for _, w in topic.sources])[0]
    severity = rng.choice(_SEVERITY_DRAW[topic.severity])
    ctx = build_context(rng, scenario)
    turns = build_turns(rng, scenario, ctx, fmt)
    day = _EPOCH + timedelta(days=rng.randrange(_SPAN_DAYS))
    day -= timedelta(days=max(0, day.weekday() - 4))  # business days only
    subject = rng.choice(catalogue.formats()["subjects"]).format_map(ctx)
    speaker_roles = roles(scenario, ctx)
    render_seed = rng.getrandbits(32)
    scen_nc = render(fmt, render_seed, turns, speaker_roles, ctx, day, "nc", subject)
    scen_c = render(fmt, render_seed, turns, speaker_roles, ctx, day, "c", subject)

    key_turns = [t for t in turns if t.role == "key"]
    manipulated = any(t.role == "manipulation" for t in turns)
    c_role = speaker_roles["C"]["label"].lower()
    intro = (f"This {catalogue.formats()['nouns'][fmt]} involves {_describe(scenario, ctx)}. "
             f"{scenario.setting.format_map(ctx)}")
    ev_nc, quoted_nc = _quotes(fmt, key_turns, "nc", ctx, c_role)
    ev_c, quoted_c = _quotes(fmt, key_turns, "c", ctx, c_role)
    note = _MANIPULATION_NOTE if manipulated else ""
    trace_nc = " ".join(filter(None, (intro, quoted_nc, topic.rule_text, scenario.why_nc.format_map(ctx), note,
                                      catalogue.severity_notes()[severity])))
    trace_c = " ".join(filter(None, (intro, quoted_c, topic.rule_text, scenario.why_c.format_map(ctx), note,
                                     rng.choice(_COMPLIANT_CLOSINGS))))
    rule = scenario.rule or (topic.citations[0] if fmt in POST_FORMATS or rng.random() < 0.7
                             else rng.choice(topic.citations))
    if scenario.who == "institutional" and "Regulation Best Interest" in rule:
        rule = "FINRA Rule 2111"  # Reg BI covers retail customers only
    return {
        "id": f"synth-{index:06d}",
        "source": source,
        "chunk_analysis": {"format_identified": fmt},
        "compliant_version": {
            "scenario": scen_c, "final_verdict": "COMPLIANT", "executive_summary": scenario.summary_c.format_map(ctx),
            "rule_violated": "None", "compliance_topic": "None", "severity": "NONE",
            "evidence_list": ev_c, "reasoning_trace": trace_c,
        },
        "non_compliant_version": {
            "scenario": scen_nc, "final_verdict": "NON_COMPLIANT",
            "executive_summary": scenario.summary_nc.format_map(ctx),
            "rule_violated": rule, "compliance_topic": topic.name, "severity": severity,
            "evidence_list": ev_nc, "reasoning_trace": trace_nc,
        },
    }

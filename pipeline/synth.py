"""Deterministic synthetic financial-advisor communications in the project's input schema.

Each item is a minimal pair: the same conversation (participants, setting, format, most lines)
rendered twice, once with the violating line(s) of a topic template and once with compliant
handling in their place. Item ``i`` depends only on ``(seed, i)`` through its own
``random.Random``, so generation can be sharded by index range and re-run bit for bit.

Templates and vocabulary live in `pipeline.synth_topics`; this module picks a topic, template,
format and participants, fills the template, renders it as a chat, email thread, phone
transcript or SMS thread, and writes the labels (summary, citation, severity, verbatim evidence,
reasoning). Standard library only; importing it has no side effects.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import random
import re
import unicodedata
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

from pipeline import synth_topics as cat
from pipeline.synth_topics import Line, Topic

TOPICS: tuple[Topic, ...] = cat.TOPIC_CATALOGUE
FORMATS = ("chat", "email", "phone_transcript", "text_message")
SOURCES = ("FINRA", "SEC", "internal")
# Output file stem per source, mimicking the several real input files.
SOURCE_FILES = {"SEC": "sec_synthetic", "FINRA": "finra_synthetic", "internal": "internal_mutated"}
# Placeholders that templates may use; `_context` fills every one of them.
CONTEXT_KEYS = (
    "a_first", "a_last", "a_name", "a_title", "firm", "firm_short",
    "c_first", "c_last", "c_name", "c_title", "c_org", "c_poss", "c_parent", "c_parent_long", "age",
    "t_first", "t_name", "t_rel", "t_label", "o_first", "o_last", "c_last2", "block_client",
    "company", "ticker", "company2", "ticker2", "etf_name", "etf_ticker", "fund_family", "reit_name",
    "bank", "insurer", "city", "state", "cd_term",
    "amount", "amount_big", "amount_small", "amount_tiny", "amount_wire",
    "pct", "pct_low", "pct_big", "gross", "net", "fee_pct", "sur_pct", "years", "buffer",
    "shares", "shares_small", "price_target", "months", "turnover", "commissions",
    "month", "weekday", "place", "windfall", "app", "kid", "product",
)

_FORMAT_WEIGHTS = (30, 26, 24, 20)  # chat, email, phone, sms
_FORMAT_NOUN = {"chat": "chat", "email": "email exchange", "phone_transcript": "recorded phone call",
                "text_message": "text-message thread"}
_VERB = {"chat": "wrote", "email": "wrote", "phone_transcript": "said", "text_message": "texted"}
# Default severity -> draw pool, so severity varies per instance around the topic default.
_SEVERITY_DRAW = {
    "HIGH": ("HIGH", "HIGH", "HIGH", "MEDIUM"),
    "MEDIUM": ("MEDIUM", "MEDIUM", "MEDIUM", "HIGH", "LOW"),
    "LOW": ("LOW", "LOW", "MEDIUM"),
}
_COMPLIANT_CLOSINGS = (
    "Nothing in the exchange violates the rule, so the verdict is COMPLIANT with severity NONE.",
    "No violation is present; the communication is compliant and severity is NONE.",
    "The communication handles the issue correctly, so no rule is violated.",
)
# Words that usually signal a violation; when a compliant quote holds one, the trace says it is benign.
_TRIGGER_WORDS = ("guarantee", "fdic", "insured", "lend", "borrow", "authorization", "inside information",
                  "non-public", "past performance", "personal phone", "recorded", "trusted contact",
                  "promise")
_PERSONAL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "comcast.net", "aol.com")
_EPOCH = date(2022, 1, 3)
_SPAN_DAYS = 1270  # dates fall between early 2022 and mid 2025


class Turn(NamedTuple):
    """One filled line: speaker, its text in the non-compliant and the compliant version."""

    who: str
    nc: str
    c: str
    small_talk: bool = False  # openers/closers; the email renderer leaves them out


# ---------------------------------------------------------------------------------------------
# Context: participants, firm, products and numbers for one item
# ---------------------------------------------------------------------------------------------

def _person(rng: random.Random, taken: set[str], gender: str | None = None) -> tuple[str, str, str]:
    """(gender, first, last) with neither name already used in this conversation."""
    while True:
        g = gender or rng.choice("FM")
        first = rng.choice(cat.FEMALE_NAMES if g == "F" else cat.MALE_NAMES)
        last = rng.choice(cat.LAST_NAMES)
        if first not in taken and last not in taken:
            taken.update((first, last))
            return g, first, last


def _money(value: int) -> str:
    if value >= 1_000_000:
        millions = value / 1_000_000
        return f"${millions:.1f} million".replace(".0 ", " ")
    return f"${value:,}"


def _company(rng: random.Random) -> tuple[str, str]:
    """A fictional company name and a ticker derived from it."""
    stem = rng.choice(cat.COMPANY_PREFIX) + rng.choice(cat.COMPANY_SUFFIX)
    sector = rng.choice(cat.SECTORS)
    consonants = [ch for ch in stem[1:].upper() if ch not in "AEIOU"]
    ticker = (stem[0].upper() + "".join(consonants) + "XQZ")[:3] + sector[0]
    return f"{stem} {sector}", ticker


def _context(rng: random.Random, tpl: dict) -> dict[str, str]:
    """Every placeholder value for one item (see CONTEXT_KEYS)."""
    taken: set[str] = set()
    ria = tpl.get("ria", False)
    firm = rng.choice(cat.RIA_FIRMS if ria else cat.BD_FIRMS)
    _, a_first, a_last = _person(rng, taken)
    c_gender, c_first, c_last = _person(rng, taken)
    third = tpl.get("third")
    t_rel, t_label = rng.choice(cat.THIRD_PARTIES[third]) if third else ("", "")
    _, t_first, t_last = _person(rng, taken, "M" if t_rel in ("son", "nephew") else None)
    if t_rel == "son":
        t_last = c_last  # family shares the client's surname
    _, o_first, o_last = _person(rng, taken)
    c_last2 = rng.choice([n for n in cat.LAST_NAMES if n not in taken])
    company, ticker = _company(rng)
    company2, ticker2 = _company(rng)
    while ticker2 == ticker or company2 == company:
        company2, ticker2 = _company(rng)
    etf_name, etf_ticker = rng.choice(cat.ETFS)
    city = rng.choice(cat.CITIES)
    gross = round(rng.uniform(9.0, 24.0), 1)
    fee = rng.choice((0.85, 1.0, 1.1, 1.25, 1.4, 1.5))
    ctx = {
        "a_first": a_first, "a_last": a_last, "a_name": f"{a_first} {a_last}",
        "a_title": rng.choice(cat.RIA_TITLES if ria else cat.ADVISOR_TITLES),
        "firm": firm, "firm_short": firm.rsplit(" ", 1)[0],
        "c_first": c_first, "c_last": c_last, "c_name": f"{c_first} {c_last}",
        "c_title": rng.choice(cat.INSTITUTION_TITLES),
        "c_org": f"{rng.choice(cat.CITIES)} {rng.choice(cat.INSTITUTION_TYPES)}",
        "block_client": rng.choice((f"{city} Capital Management", f"{o_last} Asset Management",
                                    f"{o_last} Partners", f"{city} Teachers' Retirement System",
                                    "a large pension client")),
        "c_poss": "her" if c_gender == "F" else "his",
        "c_parent": "Mom" if c_gender == "F" else "Dad",
        "c_parent_long": "mother" if c_gender == "F" else "father",
        "age": str(rng.randint(72, 93)),
        "t_first": t_first, "t_name": f"{t_first} {t_last}", "t_rel": t_rel or "family member",
        "t_label": t_label or "Other",
        "o_first": o_first, "o_last": o_last, "c_last2": c_last2,
        "company": company, "ticker": ticker, "company2": company2, "ticker2": ticker2,
        "etf_name": etf_name, "etf_ticker": etf_ticker,
        "fund_family": rng.choice(cat.FUND_FAMILIES), "reit_name": rng.choice(cat.REIT_NAMES),
        "bank": rng.choice(cat.BANKS), "insurer": rng.choice(cat.INSURERS),
        "city": city, "state": rng.choice(cat.STATES),
        "cd_term": rng.choice(("6-month", "12-month", "18-month", "2-year")),
        "amount": _money(rng.randrange(20, 400) * 2_500),
        "amount_big": _money(rng.randrange(8, 500) * 50_000),
        "amount_small": _money(rng.randrange(4, 80) * 500),
        "amount_tiny": rng.choice(("$350", "$500", "$750", "$1,200", "$1,500", "$2,000")),
        "amount_wire": _money(rng.randrange(15, 250) * 1_000),
        "pct": f"{rng.choice((8, 9, 10, 11, 12, 14, 15, 18, 20, 25))}%",
        "pct_low": rng.choice(("3.5%", "3.8%", "4%", "4.2%", "4.5%", "4.75%", "5%", "5.25%", "5.5%", "6%")),
        "pct_big": rng.choice(("40%", "55%", "60%", "75%", "80%", "120%")),
        "gross": f"{gross:.1f}", "net": f"{gross - fee:.1f}", "fee_pct": f"{fee:g}",
        "sur_pct": str(rng.choice((5, 6, 7, 8))), "years": str(rng.choice((5, 6, 7, 8, 10))),
        "buffer": str(rng.choice((10, 15, 20, 25, 30))),
        "shares": f"{rng.randrange(150, 900) * 1_000:,}",
        "shares_small": rng.choice(("200", "300", "500", "1,000")),
        "price_target": f"${rng.randrange(40, 400)}", "months": str(rng.randint(3, 9)),
        "turnover": str(rng.choice((6, 7, 8, 9, 11, 12))),
        "commissions": f"${rng.randrange(400, 3800) * 10:,}",
        "month": rng.choice(cat.MONTHS), "weekday": rng.choice(cat.WEEKDAYS), "place": rng.choice(cat.PLACES),
        "windfall": rng.choice(cat.WINDFALLS), "app": rng.choice(cat.APPS), "kid": rng.choice(cat.KIDS),
    }
    # Products may themselves hold placeholders ({bank}, {years}), so they are filled last.
    ctx["product"] = rng.choice(cat.PRODUCTS[rng.choice(tpl["products"])]).format_map(ctx)
    return ctx


# ---------------------------------------------------------------------------------------------
# Script: the filled lines of one conversation, shared by both versions
# ---------------------------------------------------------------------------------------------

def _script(rng: random.Random, tpl: dict, ctx: dict) -> tuple[list[Turn], list[str], list[str]]:
    """Fill a template once; returns (turns, non-compliant evidence, compliant evidence).

    All random choices happen here, so the two versions rendered from the same turns differ only
    in the swapped lines.
    """
    def fill(text: str) -> str:
        # A line may open with a placeholder such as {product} ("a non-traded REIT ..."); lines
        # are whole sentences, so the first letter is capitalised.
        text = text.format_map(ctx)
        return text[:1].upper() + text[1:]

    colleague = tpl["who"] == "colleague"
    turns: list[Turn] = []
    ev_nc: list[str] = []
    ev_c: list[str] = []

    def shared(who: str, text: str, small_talk: bool = False) -> None:
        text = fill(text)
        turns.append(Turn(who, text, text, small_talk))

    if rng.random() < 0.55:
        for who, text in rng.choice(cat.COLLEAGUE_OPEN if colleague else cat.CLIENT_OPEN):
            shared(who, text, True)
    for line in tpl["lines"]:
        if line.kind == "S":
            shared(line.who, rng.choice(line.texts))
        elif line.kind == "O":
            if rng.random() < line.p:
                shared(line.who, rng.choice(line.texts))
        elif line.kind == "V":
            if line.p < 1.0 and rng.random() >= line.p:
                continue
            lead = fill(rng.choice(line.lead))
            nc, c = fill(rng.choice(line.texts)), fill(rng.choice(line.alt))
            ev_nc.append(nc)
            ev_c.append(c)
            turns.append(Turn(line.who, f"{lead} {nc}".strip(), f"{lead} {c}".strip()))
        else:  # "D": differs between versions, not evidence
            turns.append(Turn(line.who, fill(rng.choice(line.texts)), fill(rng.choice(line.alt))))
    if not colleague and rng.random() < 0.25:
        shared("A", rng.choice(cat.BENIGN_ADVISOR))
    if rng.random() < 0.5:
        for who, text in rng.choice(cat.COLLEAGUE_CLOSE if colleague else cat.CLIENT_CLOSE):
            shared(who, text, True)
    return turns, ev_nc, ev_c


# ---------------------------------------------------------------------------------------------
# Rendering: one script -> scenario text in one of four formats
# ---------------------------------------------------------------------------------------------

def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _roles(tpl: dict, ctx: dict) -> dict[str, dict[str, str]]:
    """Per speaker: display name, chat label, phone label and email address."""
    who = tpl["who"]
    domain = re.sub(r"[^a-z]", "", _ascii(ctx["firm_short"]).lower()) + ".com"
    local = lambda text: re.sub(r"[^a-z.]", "", _ascii(text).lower())
    a = {"name": ctx["a_name"], "first": ctx["a_first"], "label": "Advisor",
         "email": f"{local(ctx['a_first'][0] + ctx['a_last'])}@{domain}"}
    c_mail = local(f"{ctx['c_first']}.{ctx['c_last']}")
    if who == "colleague":
        label = cat.COLLEAGUE_ROLES[tpl["c_kind"]][0]
        c = {"label": label, "email": f"{c_mail}@{domain}"}
    elif who == "institutional":
        org = ctx["c_org"].split()
        org_domain = local(org[0]) + local("".join(w[0] for w in org[1:]))
        c = {"label": "Client", "email": f"{c_mail}@{org_domain}.org"}
    else:
        number, provider = len(ctx["c_last"]) * 7 % 90, _PERSONAL_DOMAINS[len(ctx["c_first"]) % 6]
        c = {"label": "Prospect" if who == "prospect" else "Client", "email": f"{c_mail}{number}@{provider}"}
    c.update(name=ctx["c_name"], first=ctx["c_first"])
    if who == "institutional":
        c["chat_name"] = f"{ctx['c_name']}, {ctx['c_org']}"
    t = {"name": ctx["t_name"], "first": ctx["t_first"], "label": ctx["t_label"],
         "email": f"{local(ctx['t_name'].replace(' ', '.'))}@gmail.com"}
    return {"A": a, "C": c, "T": t}


def _clock(minutes: int) -> tuple[str, str]:
    """(24-hour 'HH:MM', 12-hour 'h:MM AM') for minutes after midnight."""
    h, m = divmod(minutes % (24 * 60), 60)
    return f"{h:02d}:{m:02d}", f"{(h - 1) % 12 + 1}:{m:02d} {'AM' if h < 12 else 'PM'}"


def _render_chat(rng, turns, roles, ctx, day, version):
    desk = roles["C"]["label"] not in ("Client", "Prospect") or "chat_name" in roles["C"]
    platform = rng.choice(cat.DESK_CHAT_PLATFORMS if desk else cat.CLIENT_CHAT_PLATFORMS)
    t = rng.randrange(8 * 60, 17 * 60)
    out = [f"Chat transcript | {platform} | {ctx['firm']} | {day.isoformat()}"]
    for turn in turns:
        t += rng.choice((0, 1, 1, 2, 3))
        r = roles[turn.who]
        name = r.get("chat_name", r["name"])
        out.append(f"[{_clock(t)[0]}] {r['label']} ({name}): {getattr(turn, version)}")
    return "\n".join(out)


def _render_sms(rng, turns, roles, ctx, day, version):
    channel = rng.choice(cat.TEXT_CHANNELS)
    t = rng.randrange(7 * 60, 20 * 60)
    counterpart = roles["C"].get("chat_name", ctx["c_name"])
    out = [f"Text messages | {channel} | {ctx['a_name']} ({ctx['firm']}) and {counterpart}",
           day.strftime("%a %m/%d/%Y")]
    for turn in turns:
        t += rng.randrange(0, 7)
        out.append(f"{roles[turn.who]['name']} ({_clock(t)[1]}): {getattr(turn, version)}")
    return "\n".join(out)


def _render_phone(rng, turns, roles, ctx, day, version):
    start = rng.randrange(8 * 60, 17 * 60)
    seconds = sum(8 + len(t.nc) // 12 for t in turns) + rng.randrange(20, 240)
    speakers = [w for w in ("A", "C", "T") if any(t.who == w for t in turns)]
    labels = {w: roles[w]["label"].upper() for w in speakers}
    parts = "; ".join(f"{labels[w]} - {roles[w].get('chat_name', roles[w]['name'])}" for w in speakers)
    duration = f"{seconds // 60:02d}:{seconds % 60:02d}"
    out = [f"Recorded line | {ctx['firm']}",
           f"Call date: {day.isoformat()} {_clock(start)[0]} ET | Duration: {duration}",
           f"Participants: {parts}", ""]
    utterances: list[list[str]] = []  # consecutive turns by one speaker are one utterance on a call
    for turn in turns:
        if utterances and utterances[-1][0] == turn.who:
            utterances[-1].append(getattr(turn, version))
        else:
            utterances.append([turn.who, getattr(turn, version)])
    if roles["C"]["label"] in ("Client", "Prospect") and utterances[0][0] != "A" and rng.random() < 0.6:
        out.append(f"ADVISOR: {ctx['firm_short']}, this is {ctx['a_first']}.")  # the advisor picks up
    out += [f"{labels[u[0]]}: {' '.join(u[1:])}" for u in utterances]
    return "\n".join(out)


def _render_email(rng, turns, roles, ctx, day, version, subject):
    # Chat-style small talk does not survive as separate emails; consecutive turns by one speaker
    # form one message; the thread reads oldest first.
    messages: list[tuple[str, list[str]]] = []
    for turn in turns:
        if turn.small_talk:
            continue
        text = getattr(turn, version)
        if messages and messages[-1][0] == turn.who:
            messages[-1][1].append(text)
        else:
            messages.append((turn.who, [text]))
    speakers = ["A", "C"] + (["T"] if any(w == "T" for w, _ in messages) else [])
    disclaimer = rng.choice(cat.FIRM_DISCLAIMERS).format_map(ctx) if rng.random() < 0.5 else ""
    base_subject = subject.removeprefix("Re: ")
    base_subject = base_subject[:1].upper() + base_subject[1:]
    t = rng.randrange(7 * 60, 12 * 60)
    blocks = []
    for i, (who, paras) in enumerate(messages):
        sender = roles[who]
        others = [roles[w] for w in speakers if w != who]
        # Clients and third parties write to the advisor; the advisor writes to the client.
        addressee = roles["C"] if who == "A" else roles["A"]
        t += rng.randrange(4, 75) if i else 0
        stamp = f"{day.strftime('%a, %b')} {day.day}, {day.year} {_clock(t)[1]}"
        greeting = rng.choice(("Hi {},", "{},", "Hello {},", "Dear {},")).format(addressee["first"])
        if i == 0 and who != "A" and rng.random() < 0.5:
            paras = ["Hope you're doing well."] + paras
        elif i == 0 and rng.random() < 0.5:
            paras = ["I hope this finds you well."] + paras
        signoff = rng.choice(("Best,", "Thanks,", "Regards,", "Best regards,"))
        if who == "A":
            signature = f"{sender['name']}\n{ctx['a_title']}\n{ctx['firm']}"
            if disclaimer:
                signature += f"\n\n{disclaimer}"
        elif who == "C" and _has_org(roles):
            signature = f"{sender['name']}\n{ctx['c_title']}, {ctx['c_org']}"
        else:
            signature = sender["first"]
        head = [f"From: {sender['name']} <{sender['email']}>",
                "To: " + "; ".join(f"{o['name']} <{o['email']}>" for o in others),
                f"Date: {stamp}", f"Subject: {'Re: ' if i else ''}{base_subject}"]
        body = "\n\n".join([greeting, *paras, f"{signoff}\n{signature}"])
        blocks.append("\n".join(head) + "\n\n" + body)
    return "\n\n-----\n\n".join(blocks)


def _has_org(roles: dict) -> bool:
    """Whether the counterpart is shown with an organisation (institutional customer)."""
    return "chat_name" in roles["C"]


def _render(fmt: str, render_seed: int, turns, roles, ctx, day, version: str, subject: str) -> str:
    # A fresh generator per version with the same seed: both versions make the same choices.
    rng = random.Random(render_seed)
    if fmt == "email":
        return _render_email(rng, turns, roles, ctx, day, version, subject)
    return {"chat": _render_chat, "text_message": _render_sms, "phone_transcript": _render_phone}[fmt](
        rng, turns, roles, ctx, day, version)


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------

def _describe(tpl: dict, ctx: dict, rng: random.Random) -> tuple[str, str]:
    """(advisor description, counterpart description) for reasoning traces."""
    who = tpl["who"]
    role = "investment adviser representative" if tpl.get("ria") else "advisor"
    a_desc = f"{role} {ctx['a_name']} of {ctx['firm']}"
    if who == "senior":
        c_desc = f"{ctx['age']}-year-old client {ctx['c_name']}"
    elif who == "institutional":
        c_desc = f"{ctx['c_name']}, {ctx['c_title']} of {ctx['c_org']}, an institutional customer"
    elif who == "prospect":
        c_desc = f"prospective client {ctx['c_name']}"
    elif who == "colleague":
        c_desc = f"{rng.choice(cat.COLLEAGUE_ROLES[tpl['c_kind']][1])} {ctx['c_name']}"
    else:
        c_desc = f"{rng.choice(('client', 'retail client', 'retail customer'))} {ctx['c_name']}"
    if tpl.get("third"):
        c_desc += f", with the client's {ctx['t_rel']} {ctx['t_name']} also taking part"
    return a_desc, c_desc


def _quotes(subject: str, verb: str, evidence: list[str]) -> str:
    text = f'{subject} {verb}: "{evidence[0]}"'
    for extra in evidence[1:]:
        text += f' They also {verb}: "{extra}"'
    return text


def make_item(index: int, seed: int = 0) -> dict:
    """Item ``index`` for ``seed``: a dict in the input schema, independent of every other item."""
    rng = random.Random(f"complyray-synth:{seed}:{index}")
    topic = rng.choice(TOPICS)
    tpl = rng.choice(topic.templates)
    if "formats" in tpl:
        fmt = rng.choice(tpl["formats"])
    else:
        fmt = rng.choices(FORMATS, _FORMAT_WEIGHTS)[0]
    source = rng.choices([s for s, _ in topic.sources], weights=[w for _, w in topic.sources])[0]
    severity = rng.choice(tpl.get("severity") or _SEVERITY_DRAW[topic.severity])
    ctx = _context(rng, tpl)
    turns, ev_nc, ev_c = _script(rng, tpl, ctx)
    roles = _roles(tpl, ctx)
    day = _EPOCH + timedelta(days=rng.randrange(_SPAN_DAYS))
    day -= timedelta(days=max(0, day.weekday() - 4))  # business days only
    subject = rng.choice(tpl["subject"]).format_map(ctx)
    render_seed = rng.getrandbits(32)
    scen_nc = _render(fmt, render_seed, turns, roles, ctx, day, "nc", subject)
    scen_c = _render(fmt, render_seed, turns, roles, ctx, day, "c", subject)

    a_desc, c_desc = _describe(tpl, ctx, rng)
    intro = f"This {_FORMAT_NOUN[fmt]} is between {a_desc} and {c_desc}. {tpl['setting'].format_map(ctx)}"
    actor = "The adviser" if tpl.get("ria") else "The advisor"
    rule = tpl.get("rule", topic.citations[0])
    rule_text = tpl.get("rule_text", topic.rule_text)
    why_nc = tpl["why_nc"].format_map(ctx)
    trace_nc = " ".join((intro, _quotes(actor, _VERB[fmt], ev_nc), rule_text, why_nc,
                         tpl.get("severity_notes", topic.severity_notes)[severity]))
    ev_c = ev_c[:2]
    hard_negative = any(w in " ".join(ev_c).lower() for w in _TRIGGER_WORDS)
    trace_c = " ".join(filter(None, (
        intro, _quotes(actor, _VERB[fmt], ev_c), rule_text, tpl["why_c"].format_map(ctx),
        "Words that often signal a violation appear here only in a negated or accurate, compliant sense."
        if hard_negative else "",
        rng.choice(_COMPLIANT_CLOSINGS))))
    return {
        "id": f"synth-{index:06d}",
        "source": source,
        "chunk_analysis": {"format_identified": fmt},
        "compliant_version": {
            "scenario": scen_c, "final_verdict": "COMPLIANT",
            "executive_summary": rng.choice(tpl["summary_c"]).format_map(ctx),
            "rule_violated": "None", "compliance_topic": "None", "severity": "NONE",
            "evidence_list": ev_c, "reasoning_trace": trace_c,
        },
        "non_compliant_version": {
            "scenario": scen_nc, "final_verdict": "NON_COMPLIANT",
            "executive_summary": rng.choice(tpl["summary_nc"]).format_map(ctx),
            "rule_violated": rule, "compliance_topic": topic.name, "severity": severity,
            "evidence_list": ev_nc[:3], "reasoning_trace": trace_nc,
        },
    }


def generate_items(n_pairs: int, seed: int = 0, start: int = 0) -> Iterator[dict]:
    """Yield ``n_pairs`` items (indices ``start .. start+n_pairs-1``) in the input schema.

    Deterministic for (seed, index): item i is the same whatever n_pairs/start, so generation can
    be sharded: ``generate_items(n, seed, start=k)`` yields items k..k+n-1.
    """
    if n_pairs < 0 or start < 0:
        raise ValueError(f"n_pairs and start must be >= 0, got n_pairs={n_pairs}, start={start}")
    for index in range(start, start + n_pairs):
        yield make_item(index, seed)


def open_output(path: str | Path, gzip: bool | None = None):
    """A text writer for ``path``: gzip when the name ends with .gz or ``gzip`` is true."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gzip or path.name.endswith(".gz"):
        return gzip_module.open(path, "wt", encoding="utf-8")
    return path.open("w", encoding="utf-8")


def to_line(item: dict) -> str:
    """One item as a JSON Lines line (with the newline)."""
    return json.dumps(item, ensure_ascii=False) + "\n"


def write_jsonl(path: str | Path, n_pairs: int, seed: int = 0, start: int = 0,
                gzip: bool | None = None) -> int:
    """Write items as JSON Lines (gzip when path ends with .gz or gzip=True); returns the count."""
    count = 0
    with open_output(path, gzip) as fh:
        for item in generate_items(n_pairs, seed, start):
            fh.write(to_line(item))
            count += 1
    return count


__all__ = [
    "CONTEXT_KEYS",
    "FORMATS",
    "SOURCES",
    "SOURCE_FILES",
    "TOPICS",
    "Line",
    "Topic",
    "generate_items",
    "make_item",
    "open_output",
    "to_line",
    "write_jsonl",
]

"""Rendering: one item's turns -> scenario text in one of seven formats.

Each renderer gets a fresh `random.Random` with the same seed for both versions, so both versions
make the same choices and differ only where the turns differ.
"""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import date

from pipeline.synth import catalogue
from pipeline.synth.script import Turn

FORMATS = ("text_message", "chat", "email", "phone_transcript", "social_media", "marketing", "meeting_notes")


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _local(text: str) -> str:
    return re.sub(r"[^a-z.]", "", _ascii(text).lower())


def roles(scenario: catalogue.Scenario, ctx: dict) -> dict[str, dict[str, str]]:
    """Per speaker (A, C, S, T): display name, first name, label and email address."""
    domain = re.sub(r"[^a-z]", "", _ascii(ctx["firm_short"]).lower()) + ".com"
    personal = catalogue.formats()["personal_domains"]
    label = {"colleague": {"trader": "Trader", "assistant": "Assistant"}.get(scenario.c_kind or "", "Colleague"),
             "prospect": "Prospect", "institutional": "Client"}.get(scenario.who, "Client")
    c_mail = f"{_local(ctx['c_first'])}.{_local(ctx['c_last'])}"
    c_domain = domain if scenario.who == "colleague" else personal[len(ctx["c_first"]) % len(personal)]
    return {
        "A": {"name": ctx["a_name"], "first": ctx["a_first"], "label": "Advisor",
              "email": f"{_local(ctx['a_first'][0] + ctx['a_last'])}@{domain}"},
        "C": {"name": ctx["c_name"], "first": ctx["c_first"], "label": label, "email": f"{c_mail}@{c_domain}"},
        "S": {"name": ctx["s_name"], "first": ctx["s_first"], "label": "Assistant",
              "email": f"{_local(ctx['s_name'].replace(' ', '.'))}@{domain}"},
        "T": {"name": ctx["t_name"], "first": ctx["t_first"], "label": ctx["t_rel"].split()[-1].capitalize(),
              "email": f"{_local(ctx['t_name'].replace(' ', '.'))}@gmail.com"},
    }


def _clock(minutes: int) -> tuple[str, str]:
    h, m = divmod(minutes % (24 * 60), 60)
    return f"{h:02d}:{m:02d}", f"{(h - 1) % 12 + 1}:{m:02d} {'AM' if h < 12 else 'PM'}"


def _speakers(turns: list[Turn]) -> list[str]:
    return [w for w in ("A", "C", "S", "T") if any(w in (t.who, t.who_c) for t in turns)]


def _text_message(rng, turns, r, ctx, day, v, subject):
    fmt = catalogue.formats()
    t = rng.randrange(7 * 60, 20 * 60)
    out = [f"Text messages | {rng.choice(fmt['text_channels'])} | {ctx['a_name']} ({ctx['firm']}) and "
           f"{r['C']['name']}", day.strftime("%a %m/%d/%Y")]
    for turn in turns:
        t += rng.randrange(0, 7)
        out.append(f"{r[turn.speaker(v)]['name']} ({_clock(t)[1]}): {getattr(turn, v)}")
    return "\n".join(out)


def _chat(rng, turns, r, ctx, day, v, subject):
    fmt = catalogue.formats()
    desk = r["C"]["label"] not in ("Client", "Prospect")
    t = rng.randrange(8 * 60, 17 * 60)
    platform = rng.choice(fmt["desk_chat_platforms" if desk else "client_chat_platforms"])
    out = [f"Chat transcript | {platform} | {ctx['firm']} | {day.isoformat()}"]
    for turn in turns:
        t += rng.choice((0, 1, 1, 2, 3))
        out.append(f"[{_clock(t)[0]}] {r[turn.speaker(v)]['label']} ({r[turn.speaker(v)]['name']}): {getattr(turn, v)}")
    return "\n".join(out)


def _phone(rng, turns, r, ctx, day, v, subject):
    start = rng.randrange(8 * 60, 17 * 60)
    seconds = sum(8 + len(t.nc) // 12 for t in turns) + rng.randrange(20, 240)
    who = _speakers(turns)
    parts = "; ".join(f"{r[w]['label'].upper()} - {r[w]['name']}" for w in who)
    out = [f"Recorded line | {ctx['firm']}",
           f"Call date: {day.isoformat()} {_clock(start)[0]} ET | Duration: {seconds // 60:02d}:{seconds % 60:02d}",
           f"Participants: {parts}", ""]
    utterances: list[list[str]] = []  # consecutive turns by one speaker are one utterance on a call
    last = None
    for turn in turns:
        # Merge only where both versions have the same speakers, so both keep the same structure.
        pair = (turn.speaker("nc"), turn.speaker("c"))
        if utterances and last == pair and pair[0] == pair[1]:
            utterances[-1].append(getattr(turn, v))
        else:
            utterances.append([turn.speaker(v), getattr(turn, v)])
        last = pair
    out += [f"{r[u[0]]['name'].upper()}: {' '.join(u[1:])}" for u in utterances]
    return "\n".join(out)


def _email(rng, turns, r, ctx, day, v, subject):
    fmt = catalogue.formats()
    messages: list[tuple[str, list[str]]] = []
    last = None
    for turn in turns:
        if turn.role == "small_talk":
            continue
        pair = (turn.speaker("nc"), turn.speaker("c"))
        if messages and last == pair and pair[0] == pair[1]:
            messages[-1][1].append(getattr(turn, v))
        else:
            messages.append((turn.speaker(v), [getattr(turn, v)]))
        last = pair
    disclaimer = rng.choice(fmt["disclaimers"]).format_map(ctx) if rng.random() < 0.5 else ""
    quote_previous = rng.random() < 0.4
    t = rng.randrange(7 * 60, 12 * 60)
    blocks: list[str] = []
    for i, (who, paras) in enumerate(messages):
        sender = r[who]
        to = r["C"] if who == "A" else r["A"]
        t += rng.randrange(4, 75) if i else 0
        head = [f"From: {sender['name']} <{sender['email']}>", f"To: {to['name']} <{to['email']}>",
                f"Date: {day.strftime('%a, %b')} {day.day}, {day.year} {_clock(t)[1]}",
                f"Subject: {'Re: ' if i else ''}{subject}"]
        greeting = rng.choice(("Hi {},", "{},", "Hello {},", "Dear {},")).format(to["first"])
        signature = f"{rng.choice(('Best,', 'Thanks,', 'Regards,'))}\n{sender['name']}"
        if who == "A":
            signature += f"\n{ctx['a_title']}\n{ctx['firm']}" + (f"\n\n{disclaimer}" if disclaimer else "")
        body = "\n\n".join([greeting, *paras, signature])
        if quote_previous and i:
            prev_from = r[messages[i - 1][0]]["name"]
            quoted = "\n".join("> " + line for p in messages[i - 1][1] for line in p.splitlines())
            body += f"\n\nOn {day.strftime('%b')} {day.day}, {prev_from} wrote:\n{quoted}"
        blocks.append("\n".join(head) + "\n\n" + body)
    # Newest message first, as an exported thread reads.
    return "\n\n-----\n\n".join(reversed(blocks))


def _social(rng, turns, r, ctx, day, v, subject):
    network = rng.choice(catalogue.formats()["social_networks"])
    out = [f"{network} post | {ctx['a_name']}, {ctx['a_title']} at {ctx['firm']} | {day.isoformat()}", ""]
    body = [getattr(t, v) for t in turns if t.speaker(v) == "A"]
    out.append(" ".join(body) if rng.random() < 0.5 else "\n".join(body))
    out += ["", f"{rng.randint(3, 240)} likes | {rng.randint(0, 30)} comments"]
    out += [f"Comment - {r[t.speaker(v)]['name']}: {getattr(t, v)}" for t in turns if t.speaker(v) != "A"]
    return "\n".join(out)


def _marketing(rng, turns, r, ctx, day, v, subject):
    fmt = catalogue.formats()
    name = rng.choice(fmt["newsletter_names"]).format_map(ctx)
    out = [f"From: {name} <news@{_local(ctx['firm_short']).replace('.', '')}.com>",
           f"Subject: {subject}", f"Date: {day.isoformat()}", "", f"{name.upper()}", ""]
    out += [getattr(t, v) for t in turns]
    out += ["", f"{ctx['a_name']}, {ctx['a_title']}", rng.choice(fmt["disclaimers"]).format_map(ctx)]
    return "\n".join(out)


def _meeting(rng, turns, r, ctx, day, v, subject):
    title = rng.choice(catalogue.formats()["meeting_titles"])
    who = _speakers(turns)
    out = [f"Meeting notes | {title} | {ctx['firm']} | {day.isoformat()}",
           "Attendees: " + ", ".join(f"{r[w]['name']} ({r[w]['label'].lower()})" for w in who),
           f"Notes taken by {r['S']['name']}", ""]
    out += [f"- {r[t.speaker(v)]['first']}: {getattr(t, v)}" for t in turns]
    out += ["", "Action items: follow up as discussed."]
    return "\n".join(out)


_RENDERERS = {"text_message": _text_message, "chat": _chat, "email": _email, "phone_transcript": _phone,
              "social_media": _social, "marketing": _marketing, "meeting_notes": _meeting}


def render(fmt: str, seed: int, turns: list[Turn], speaker_roles: dict, ctx: dict, day: date, version: str,
           subject: str) -> str:
    """Scenario text of one version ('nc' or 'c') in format `fmt`; same `seed` -> same choices."""
    return _RENDERERS[fmt](random.Random(seed), turns, speaker_roles, ctx, day, version, subject)

"""One item's script: the turns of a conversation, shared by both versions except the key move.

Everything random is drawn here, once, so the two versions of a pair differ only in the key
turns. Shared material (small talk, distractors, manipulation sentences) is identical in both
versions, which makes it balanced across classes by construction.
"""

from __future__ import annotations

import random
import re
from typing import NamedTuple

from pipeline.synth import catalogue

POST_FORMATS = ("social_media", "marketing")  # one author's text: no small talk, no distractor exchanges
INFORMAL_FORMATS = ("text_message", "chat", "social_media")


class Turn(NamedTuple):
    """One turn: speaker, its text in the violating (nc) and compliant (c) version, and its role."""

    who: str
    nc: str
    c: str
    role: str = "shared"  # shared | key | manipulation | small_talk
    who_c: str | None = None  # the compliant version's speaker when it differs (a role swap)

    def speaker(self, version: str) -> str:
        """The speaker of this turn in version 'nc' or 'c'."""
        return self.who_c if version == "c" and self.who_c else self.who


def _fill(text: str, ctx: dict[str, str]) -> str:
    text = text.format_map(ctx)
    return text[:1].upper() + text[1:] if not text[:1].islower() or len(text) < 2 else text


def _exchange(ctx: dict, exchange: list, role: str) -> list[Turn]:
    return [Turn(who, _fill(text, ctx), _fill(text, ctx), role) for who, text in exchange]


def _shared_line(rng: random.Random, ctx: dict, line: tuple[str, ...]) -> Turn | None:
    who = line[0]
    if who.startswith("?"):
        if rng.random() < 0.5:
            return None
        who = who[1:]
    text = _fill(rng.choice(line[1:]), ctx)
    return Turn(who, text, text)


def _length_plan(rng: random.Random, fmt: str, one_turn_key: bool) -> str:
    """'one_line' | 'short' | 'medium' | 'long': how much shared material surrounds the key move."""
    if fmt in POST_FORMATS:
        return "short"
    if fmt == "text_message" and one_turn_key and rng.random() < 0.3:
        return "one_line"
    draw = rng.random()
    if draw < 0.45:
        return "short"
    if draw < 0.9 or fmt not in ("text_message", "chat"):
        return "medium"
    return "long"


def build_turns(rng: random.Random, scenario: catalogue.Scenario, ctx: dict, fmt: str) -> list[Turn]:
    """The turns of one conversation: shared lines, the key move (role 'key') and any filler."""
    fill = catalogue.fillers()
    move = rng.choice(scenario.keys)
    key = [Turn(k.who.split("|")[0], _fill(k.nc, ctx), _fill(k.c, ctx), "key", k.who.split("|")[-1])
           for k in move]
    plan = _length_plan(rng, fmt, len(key) == 1)
    if plan == "one_line":
        turns = key
    else:
        core = [t for t in (_shared_line(rng, ctx, line) for line in scenario.before) if t]
        core += key
        core += [t for t in (_shared_line(rng, ctx, line) for line in scenario.after) if t]
        desk = scenario.who == "colleague"
        pool = fill["desk_distractors" if desk else "distractors"]
        count = 0
        if plan == "medium":
            count = rng.randint(1, 3)
        elif plan == "long":
            count = rng.randint(min(8, len(pool)), len(pool))
        extra = rng.sample(pool, min(count, len(pool)))
        # Distractor exchanges go before or after the core, so the key move lands anywhere in the thread.
        split = rng.randint(0, len(extra))
        turns = [t for ex in extra[:split] for t in _exchange(ctx, ex, "shared")] + core
        turns += [t for ex in extra[split:] for t in _exchange(ctx, ex, "shared")]
        if fmt not in POST_FORMATS and rng.random() < 0.5:
            turns = _exchange(ctx, rng.choice(fill["desk_openers" if desk else "openers"]), "small_talk") + turns
        if fmt not in POST_FORMATS and rng.random() < 0.4:
            turns += _exchange(ctx, rng.choice(fill["desk_closers" if desk else "closers"]), "small_talk")
    if rng.random() < 0.2:  # a reviewer-manipulation sentence, the same in both versions
        text = rng.choice(fill["manipulation"])
        who = "A" if fmt in POST_FORMATS else rng.choice(("A", "C"))
        turns.insert(rng.randint(0, len(turns)), Turn(who, text, text, "manipulation"))
    if fmt in INFORMAL_FORMATS and rng.random() < 0.4:
        turns = [_informal(random.Random(rng.getrandbits(32)), t, fill["abbreviations"]) for t in turns]
    return turns


def _informal(rng: random.Random, turn: Turn, abbreviations: dict[str, str]) -> Turn:
    """Informal register for one turn, applied alike to both texts: abbreviations, no apostrophes, a typo."""
    if turn.role == "manipulation":
        return turn
    abbreviate = rng.random() < 0.6
    drop_apostrophes = rng.random() < 0.4
    lower = rng.random() < 0.5
    typo_seed = rng.getrandbits(32) if rng.random() < 0.25 else None

    def apply(text: str) -> str:
        if abbreviate:
            text = re.sub(r"\b[A-Za-z]+\b", lambda m: abbreviations.get(m.group(0).lower(), m.group(0)), text)
        if drop_apostrophes:
            text = text.replace("'", "")
        if lower:
            text = text[:1].lower() + text[1:]
        if typo_seed is not None:
            words = text.split(" ")
            long_words = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
            if long_words:
                r = random.Random(typo_seed)
                i = r.choice(long_words)
                j = r.randrange(1, len(words[i]) - 2)
                w = words[i]
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
                text = " ".join(words)
        return text

    return Turn(turn.who, apply(turn.nc), apply(turn.c), turn.role, turn.who_c)

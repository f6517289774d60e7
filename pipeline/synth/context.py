"""Per-item context: participants, firm, products and numbers that fill a scenario's placeholders."""

from __future__ import annotations

import random

from pipeline.synth import catalogue


def _person(rng: random.Random, taken: set[str], gender: str | None = None) -> tuple[str, str, str]:
    """(gender, first, last) with neither name already used in this conversation."""
    pools = catalogue.pools()
    while True:
        g = gender or rng.choice("FM")
        first = rng.choice(pools["female_names"] if g == "F" else pools["male_names"])
        last = rng.choice(pools["last_names"])
        if first not in taken and last not in taken:
            taken.update((first, last))
            return g, first, last


def _money(value: int) -> str:
    if value >= 1_000_000:
        return f"${value / 1_000_000:.1f} million".replace(".0 ", " ")
    return f"${value:,}"


def _company(rng: random.Random) -> tuple[str, str]:
    """A fictional company name and a ticker derived from it."""
    pools = catalogue.pools()
    stem = rng.choice(pools["company_prefix"]) + rng.choice(pools["company_suffix"])
    sector = rng.choice(pools["sectors"])
    consonants = [ch for ch in stem[1:].upper() if ch not in "AEIOU"]
    return f"{stem} {sector}", (stem[0].upper() + "".join(consonants) + "XQZ")[:3] + sector[0]


def _pronouns(prefix: str, gender: str) -> dict[str, str]:
    return {f"{prefix}_he": "she" if gender == "F" else "he", f"{prefix}_his": "her" if gender == "F" else "his"}


def build_context(rng: random.Random, scenario: catalogue.Scenario) -> dict[str, str]:
    """Every placeholder value for one item."""
    pools = catalogue.pools()
    taken: set[str] = set()
    firm = rng.choice(pools["bd_firms"] if rng.random() < 0.7 else pools["ria_firms"])
    a_gender, a_first, a_last = _person(rng, taken)
    c_gender, c_first, c_last = _person(rng, taken)
    t_gender, t_first, t_last = _person(rng, taken)
    _, s_first, s_last = _person(rng, taken)
    _, o_first, o_last = _person(rng, taken)
    if scenario.third == "family":
        t_rel = rng.choice(("son", "daughter", "nephew", "niece", "brother", "sister"))
        t_gender = "F" if t_rel in ("daughter", "niece", "sister") else "M"
        t_last = c_last
    elif scenario.third == "exploiter":
        t_rel = rng.choice(("new caregiver", "new friend", "nephew", "live-in helper", "neighbor"))
    else:
        t_rel = "friend"
    company, ticker = _company(rng)
    etf_name, etf_ticker = rng.choice(pools["etfs"])
    city = rng.choice(pools["cities"])
    lo = rng.choice((2, 3, 4, 5, 8, 10))
    ctx = {
        "a_first": a_first, "a_last": a_last, "a_name": f"{a_first} {a_last}",
        "a_title": rng.choice(pools["advisor_titles"]), "firm": firm, "firm_short": firm.rsplit(" ", 1)[0],
        "c_first": c_first, "c_last": c_last, "c_name": f"{c_first} {c_last}",
        "c_title": rng.choice(pools["institution_titles"]),
        "c_org": f"{rng.choice(pools['cities'])} {rng.choice(pools['institution_types'])}",
        "t_first": t_first, "t_name": f"{t_first} {t_last}", "t_rel": t_rel,
        "s_first": s_first, "s_name": f"{s_first} {s_last}", "o_first": o_first, "o_last": o_last,
        "block_client": rng.choice((f"{city} Capital Management", f"{o_last} Asset Management",
                                    f"{city} Teachers' Retirement System", "a large pension client")),
        "age": str(rng.randint(72, 93)), "company": company, "ticker": ticker,
        "etf_name": etf_name, "etf_ticker": etf_ticker, "fund_family": rng.choice(pools["fund_families"]),
        "reit_name": rng.choice(pools["reit_names"]), "bank": rng.choice(pools["banks"]),
        "insurer": rng.choice(pools["insurers"]), "city": city, "state": rng.choice(pools["states"]),
        "cd_term": rng.choice(("6-month", "12-month", "18-month", "2-year")),
        "amount": _money(rng.randrange(20, 400) * 2_500), "amount_big": _money(rng.randrange(8, 500) * 50_000),
        "amount_small": _money(rng.randrange(4, 80) * 500),
        "amount_tiny": rng.choice(("$50", "$100", "$150", "$200", "$250")),
        "amount_wire": _money(rng.randrange(15, 250) * 1_000),
        "pct": f"{rng.choice((6, 7, 8, 9, 10, 11, 12, 14, 15, 18, 20, 25))}%",
        "pct_low": rng.choice(("3.5%", "3.8%", "4%", "4.2%", "4.5%", "4.75%", "5%", "5.25%", "5.5%", "6%")),
        "lo": str(lo), "hi": str(lo * rng.choice((2, 3, 4))),
        "n": str(rng.randint(3, 30)), "turnover": str(rng.choice((2, 3, 4, 6, 8, 11))),
        "sur_pct": str(rng.choice((5, 6, 7, 8))), "years": str(rng.choice((5, 6, 7, 8, 10))),
        "shares": f"{rng.randrange(150, 900) * 1_000:,}", "price_target": f"${rng.randrange(40, 400)}",
        "months": str(rng.randint(3, 9)), "month": rng.choice(pools["months"]),
        "weekday": rng.choice(pools["weekdays"]), "place": rng.choice(pools["places"]),
        "windfall": rng.choice(pools["windfalls"]), "app": rng.choice(pools["apps"]),
        "kid": rng.choice(("daughter", "son")),
        **_pronouns("a", a_gender), **_pronouns("c", c_gender), **_pronouns("t", t_gender),
    }
    # Products may themselves hold placeholders ({bank}, {years}), so they are filled last.
    ctx["product"] = rng.choice(pools["products"][rng.choice(scenario.products)]).format_map(ctx)
    return ctx


CONTEXT_KEYS = ("a_first", "a_last", "a_name", "a_title", "firm", "firm_short", "c_first", "c_last", "c_name",
                "c_title", "c_org", "t_first", "t_name", "t_rel", "s_first", "s_name", "o_first", "o_last",
                "block_client", "age", "company", "ticker", "etf_name", "etf_ticker", "fund_family", "reit_name",
                "bank", "insurer", "city", "state", "cd_term", "amount", "amount_big", "amount_small",
                "amount_tiny", "amount_wire", "pct", "pct_low", "lo", "hi", "n", "turnover", "sur_pct", "years",
                "shares", "price_target", "months", "month", "weekday", "place", "windfall", "app", "kid",
                "a_he", "a_his", "c_he", "c_his", "t_he", "t_his", "product")

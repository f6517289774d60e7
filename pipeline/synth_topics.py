"""The text catalogue behind `pipeline.synth`: vocabulary pools and per-topic scenario templates.

Everything here is data. A topic carries its label (``compliance_topic``), the citations its
templates use, default severity, a source mix and the rule text quoted in reasoning traces. A
template is one conversation skeleton: a list of lines, each either shared by both versions of a
pair or swapped between the non-compliant and the compliant version. The swapped lines are the
evidence: a non-compliant version quotes the violating text, a compliant version quotes the
compliant handling (often a hard negative such as "returns are not guaranteed").

Placeholders in braces are filled by `pipeline.synth` from one per-item context; the names it
provides are listed in `pipeline.synth.CONTEXT_KEYS`. Speakers: ``A`` the advisor (the subject
of review), ``C`` the counterpart (client, prospect or colleague), ``T`` a third party.

Template keys: ``key`` (unique within the topic); ``who`` (counterpart kind: retail, senior,
institutional, prospect, colleague); ``c_kind`` (colleague role, see COLLEAGUE_ROLES); ``third``
(optional third party, see THIRD_PARTIES); ``ria`` (an investment adviser rather than a broker);
``products`` (PRODUCTS kinds for ``{product}``); ``formats`` (optional restriction); ``severity``
(optional draw pool overriding the topic default) and ``severity_notes`` (optional override);
``rule`` / ``rule_text`` (optional overrides of the topic's first citation and rule text);
``subject`` (email subjects); ``setting`` (one sentence of context for the reasoning trace);
``lines``; ``summary_nc`` / ``summary_c`` (one-sentence executive summaries); ``why_nc`` /
``why_c`` (why it does / does not violate the rule).
Reg BI applies to retail customers only, so institutional templates cite FINRA Rule 2111.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class Line(NamedTuple):
    """One turn of a template.

    kind: ``S`` shared, ``O`` optional shared (kept with probability ``p``), ``V`` violating line
    swapped for compliant handling (evidence in both versions), ``D`` a line that differs between
    versions but is not evidence (e.g. the client's reaction). ``texts`` are variants for the
    non-compliant (or shared) version, ``alt`` the compliant variants, ``lead`` shared sentences
    put before a ``V`` line ("" for none).
    """

    kind: str
    who: str
    texts: tuple[str, ...]
    alt: tuple[str, ...] = ()
    lead: tuple[str, ...] = ("",)
    p: float = 1.0


# One-letter constructors keep the templates below compact and scannable.
def S(who: str, *texts: str) -> Line:
    """A line shared by both versions; one of `texts` is picked."""
    return Line("S", who, texts)


def O(who: str, *texts: str, p: float = 0.5) -> Line:
    """An optional shared line, present (in both versions) with probability `p`."""
    return Line("O", who, texts, p=p)


def V(who: str, nc: tuple[str, ...], c: tuple[str, ...], lead: tuple[str, ...] = ("",),
      p: float = 1.0) -> Line:
    """A violating line (`nc` variants) swapped for compliant handling (`c` variants); both are evidence."""
    return Line("V", who, nc, c, lead, p)


def D(who: str, nc: tuple[str, ...], c: tuple[str, ...]) -> Line:
    """A line that differs between versions (e.g. the client's reaction) but is not evidence."""
    return Line("D", who, nc, c)


@dataclass(frozen=True)
class Topic:
    """One compliance topic: its label, citations, default severity and scenario templates."""

    key: str
    name: str
    citations: tuple[str, ...]
    severity: str
    sources: tuple[tuple[str, int], ...]
    rule_text: str
    severity_notes: Mapping[str, str]
    templates: tuple[dict, ...] = field(repr=False)


# Source mixes: FINRA-rule topics lean FINRA, SEC-rule topics lean SEC; "internal" stands for the
# firm's own mutated/reviewed samples and appears everywhere.
FINRA_MIX = (("FINRA", 11), ("internal", 7), ("SEC", 2))
SEC_MIX = (("SEC", 11), ("internal", 6), ("FINRA", 3))

# ---------------------------------------------------------------------------------------------
# Vocabulary pools
# ---------------------------------------------------------------------------------------------

# Split by usual gender only so that pronoun placeholders ({c_poss}, {c_parent}) read naturally.
FEMALE_NAMES = (
    "Dana", "Priya", "Keisha", "Ingrid", "Rachel", "Mei", "Hannah", "Sofia", "Anika", "Lucía", "Nadia", "Erin",
    "Julia", "Yuki", "Fatima", "Tessa", "Marisol", "Leah", "Bethany", "Grace", "Maureen", "Chloe", "Aisha", "Ruth",
    "Camille", "Elena", "Paula", "Imani", "Noor", "Heidi", "Kirsten", "Monica", "Olivia", "Renee", "Tanya",
    "Vivian", "Ximena", "Yolanda", "Bernadette", "Diane", "Frances", "Irene", "Lorraine", "Nell", "Phyllis",
    "Rosalind", "Ursula", "Wanda", "Zoë", "Adaeze", "Beatriz", "Colleen", "Esther", "Gwen", "Ines", "Joanne",
)
MALE_NAMES = (
    "Mark", "Luis", "Tom", "Omar", "Devon", "Carlos", "Jamal", "Brian", "Graham", "Peter", "Victor", "Kwame",
    "Raymond", "Sean", "Gordon", "Andre", "Colin", "Dmitri", "Hector", "Rohan", "Felix", "Tobias", "Wesley",
    "Arjun", "Derek", "Malik", "Stefan", "Curtis", "Gabriel", "Jerome", "Lamar", "Nikhil", "Patrick", "Samuel",
    "Umar", "Walter", "Zachary", "Clifford", "Emmett", "Harold", "Joaquin", "Marvin", "Oscar", "Quentin",
    "Sanjay", "Theo", "Vernon", "Abdul", "Bruno", "Desmond", "Elliot", "Franklin", "Ivan", "Kenji", "Rafael",
)
LAST_NAMES = (
    "Whitfield", "Osei", "Raman", "Delgado", "Brooks", "Kowalski", "Lindqvist", "Haddad", "Goldberg",
    "Pryce", "Tanaka", "Mendoza", "Fischer", "Okafor", "Rossi", "McAllister", "Sharma", "Ellison",
    "Navarro", "Bergstrom", "Abernathy", "Chen", "Duarte", "Fitzgerald", "Gallagher", "Holloway", "Ibarra",
    "Jablonski", "Kessler", "Lachance", "Moreau", "Nakamura", "O'Connell", "Petrov", "Quintero", "Ashford",
    "Sandoval", "Thibodeaux", "Underwood", "Vasquez", "Whitaker", "Yilmaz", "Zimmerman", "Adeyemi",
    "Baptiste", "Castellanos", "Dubois", "Eriksen", "Farrow", "Greenberg", "Hargrove", "Iverson", "Jansen",
    "Kapoor", "Lombardi", "Marchetti", "Nguyen", "Oyelaran", "Pemberton", "Rutledge", "Stavros", "Trask",
    "Vance", "Wexler", "Yamamoto", "Albright", "Bui", "Caldwell", "Dempsey", "Esposito", "Friedman",
    "Garza", "Hollister", "Ingram", "Kaufman", "Langley", "Mbeki", "Novak", "Ortega", "Prescott", "Reyes",
    "Sorensen", "Tolliver", "Ueda", "Valdez", "Winslow", "Castillo", "Donnelly", "Hwang", "Mercer",
)
BD_FIRMS = (
    "Harbor Point Securities", "Granite Ridge Financial", "Northgate Capital Markets", "Bluestem Investment Services",
    "Lakeshore Wealth Securities", "Summit Trail Brokerage", "Ironwood Securities", "Meridian Bay Financial",
    "Copper Creek Investments", "Westbrook Partners Securities", "Tidewater Financial Services", "Pinecrest Securities",
    "Kestrel Point Capital", "Redhaven Financial Network", "Alder & Finch Securities", "Stonebridge Investor Services",
)
RIA_FIRMS = (
    "Larkspur Wealth Advisors", "Clearwater Asset Management", "Beacon Hill Advisory", "Oakmont Private Wealth",
    "Juniper Ridge Capital Advisors", "Halcyon Planning Group", "Silverline Investment Counsel",
    "Foxglove Capital Management", "Marigold Fiduciary Partners", "Bramble Creek Advisors",
)
ADVISOR_TITLES = ("Financial Advisor", "Registered Representative", "Wealth Advisor", "Vice President, Wealth Management",
                  "Senior Financial Consultant")
RIA_TITLES = ("Investment Adviser Representative", "Senior Wealth Advisor", "Managing Director, Private Wealth")
BANKS = ("First Lakeland Bank", "Riverside Savings Bank", "Pacific Crest Bank", "Union Harbor Bank", "Prairie State Bank",
         "Northshore Federal", "Coastal Commerce Bank", "Hillcrest National Bank")
INSURERS = ("Great Plains Life", "Sentinel Mutual Life", "Atlantic Shore Insurance", "Evergreen Life & Annuity",
            "Keystone Fidelity Life", "Cardinal Benefit Life")
FUND_FAMILIES = ("Ridgeway", "Palisade", "Wexford", "Cobalt Point", "Sterling Oak", "Bayview", "Northstar Lane", "Galloway")
REIT_NAMES = ("Crescent Income Properties", "Sunbelt Net Lease", "Meridian Healthcare Properties", "Blue Harbor Industrial",
              "Cornerstone Self Storage", "Pinnacle Multifamily")
ETFS = (
    ("Meridian Dividend Growth", "MDGV"), ("Summit Clean Energy", "SCLN"), ("Keystone Short Treasury", "KSTB"),
    ("Atlas Global Infrastructure", "AGIF"), ("Vireo Small Cap Value", "VRSV"), ("Polaris Semiconductor", "PLSM"),
    ("Cascade Municipal Income", "CSMI"), ("Harbinger Emerging Markets", "HBEM"), ("Orchard Quality Factor", "ORQF"),
    ("Tallgrass Covered Call", "TGCC"), ("Bellwether AI & Robotics", "BWAI"), ("Granite High Yield Bond", "GRHY"),
)
COMPANY_PREFIX = ("Norv", "Cal", "Brix", "Vant", "Quell", "Orin", "Talis", "Zephr", "Myri", "Kelv", "Lum", "Aster",
                  "Pyra", "Cobal", "Dravo", "Heli", "Sarn", "Tavi", "Vyre", "Ondr", "Grell", "Fenn", "Jovi", "Rask")
COMPANY_SUFFIX = ("ane", "ora", "ex", "ion", "ica", "yx", "eon", "ara", "ent", "ium", "ova", "is")
SECTORS = ("Therapeutics", "Robotics", "Energy", "Semiconductor", "Biosciences", "Logistics", "Networks", "Materials",
           "Foods", "Software", "Aerospace", "Pharmaceuticals", "Holdings", "Medical Devices")
CITIES = ("Brookfield", "Cedar Falls", "Maple Grove", "Port Adams", "Silver Lake", "Fairhaven", "Elm Creek", "Riverton",
          "Oak Ridge", "Westport", "Clearview", "Stony Brook", "Hartwell", "Lakemont", "Bellhaven", "Granby")
STATES = ("Ohio", "Oregon", "Virginia", "Minnesota", "Texas", "Georgia", "Arizona", "Michigan", "Colorado",
          "Pennsylvania", "New Jersey", "Wisconsin", "North Carolina", "Tennessee")
INSTITUTION_TYPES = ("County Water Authority", "Teachers' Retirement System", "Hospital Foundation", "School District",
                     "Community Foundation", "Municipal Employees' Pension Plan", "Port Authority", "University Endowment",
                     "Transit District", "Library Trust")
INSTITUTION_TITLES = ("Treasurer", "Chief Financial Officer", "Director of Investments", "Finance Director",
                      "Deputy Treasurer", "Chief Investment Officer")
COLLEAGUE_ROLES = {
    "trader": ("Trader", ("block trader", "equity trader", "sales trader")),
    "assistant": ("Sales Assistant", ("sales assistant", "registered assistant", "client service associate")),
    "colleague": ("Colleague", ("fellow advisor", "branch colleague", "team partner")),
}
# Third parties: kind -> ((relationship as written in text, chat/phone label), ...)
THIRD_PARTIES = {
    "exploiter": (("new caregiver", "Caregiver"), ("new friend", "Friend"), ("nephew", "Nephew"),
                  ("live-in helper", "Helper"), ("neighbor", "Neighbor")),
    "family": (("son", "Son"),),
}
WINDFALLS = ("the sale of our rental property", "my year-end bonus", "my mother's estate", "selling the boat",
             "my severance package", "a CD that just matured", "the sale of the business", "a legal settlement")
PLACES = ("Lake Tahoe", "Myrtle Beach", "the Outer Banks", "Lisbon", "Vermont", "Cancún", "Yellowstone", "Nashville",
          "the Finger Lakes", "Door County", "Sedona", "Cape Cod", "Kyoto", "Banff")
APPS = ("WhatsApp", "Signal", "Telegram", "WeChat")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
KIDS = ("daughter", "son")
CLIENT_CHAT_PLATFORMS = ("client portal secure chat", "firm website chat", "secure messaging (client app)")
DESK_CHAT_PLATFORMS = ("Microsoft Teams", "Symphony", "Bloomberg IB", "firm instant messaging")
TEXT_CHANNELS = ("firm-approved texting app", "archived business texting line", "firm-issued mobile, captured by archiving vendor")
FIRM_DISCLAIMERS = (
    "Securities offered through {firm}, Member FINRA/SIPC. This message may be monitored and retained.",
    "Investments are not FDIC-insured, may lose value and are not bank guaranteed.",
    "This email is archived and reviewed by {firm}. Do not send trade instructions by email.",
)

# Product phrases by kind; templates list the kinds that fit them.
PRODUCTS: dict[str, tuple[str, ...]] = {
    "etf": ("the {etf_name} ETF ({etf_ticker})", "the {etf_name} ETF"),
    "stock": ("{company} ({ticker})", "shares of {company}"),
    "cd": ("a {cd_term} CD from {bank}", "a brokered {cd_term} CD"),
    "muni": ("{city} general obligation bonds", "the {fund_family} {state} Municipal Bond Fund",
             "{state} Housing Finance Agency revenue bonds"),
    "annuity": ("a variable annuity from {insurer}", "the {insurer} fixed indexed annuity",
                "a deferred variable annuity with a living-benefit rider"),
    "structured": ("a {years}-year autocallable note linked to the S&P 500", "a buffered note on the Russell 2000 from {bank}",
                   "a {bank} market-linked note"),
    "private": ("a private placement in {company}", "the {company} Series B round", "a private credit fund"),
    "options": ("covered calls on {ticker}", "weekly call options on {ticker}"),
    "reit": ("a non-traded REIT", "the {reit_name} REIT", "a non-traded REIT sponsored by {reit_name}"),
    "fund": ("the {fund_family} Balanced Fund", "the {fund_family} Growth & Income Fund"),
    "income": ("a private credit fund", "a non-traded BDC", "the {fund_family} High Yield Bond Fund", "a non-traded REIT"),
    "alts": ("a private credit fund", "a private equity fund of funds", "a hedge fund of funds", "a non-traded REIT"),
    "complex": ("inverse floating-rate notes", "CMO residual tranches", "a leveraged inverse Treasury ETF",
                "CLO equity tranches"),
    "illiquid": ("a non-traded REIT with a {years}-year holding period",
                 "a deferred variable annuity with a {years}-year surrender period",
                 "an interval fund that only redeems 5% of shares a quarter"),
}

# Small talk, shared by both versions of a pair. Retail/senior/prospect/institutional use CLIENT_*;
# colleague conversations use COLLEAGUE_*.
CLIENT_OPEN = (
    (("A", "Hi {c_first}, hope you had a good weekend."), ("C", "I did, thanks. We finally got out to {place}.")),
    (("C", "Hi {a_first}, sorry I missed your call yesterday."), ("A", "No problem at all. Is now a good time?")),
    (("A", "Hi {c_first}. How did the trip to {place} go?"), ("C", "Great, though the flights were a mess.")),
    (("A", "Welcome back from {place}, {c_first}!"), ("C", "Thanks! Hard to come back to real life.")),
    (("C", "Hey {a_first}, quick question when you have a minute."), ("A", "Sure, I'm here.")),
    (("A", "Thanks for making time today, {c_first}."), ("C", "Of course. I've been meaning to reach out.")),
    (("C", "Hi {a_first}. Did you get my voicemail?"), ("A", "I did, thanks for the reminder. Let's go through it.")),
    (("A", "Hi {c_first}, how's your {kid} liking the new school?"), ("C", "Loving it, thanks for asking.")),
    (("C", "Hi {a_first}, crazy week in the markets, huh?"), ("A", "It sure has been. Glad you reached out.")),
    (("A", "Good to hear from you, {c_first}. How have you been?"), ("C", "Busy, but good. Thanks.")),
)
CLIENT_CLOSE = (
    (("C", "Thanks, {a_first}. Talk soon."), ("A", "Anytime. Enjoy the rest of your week.")),
    (("A", "Anything else on your mind?"), ("C", "No, that covers it. Thanks.")),
    (("C", "Okay, I'll look for your email."), ("A", "Sounds good. Say hi to the family.")),
    (("A", "I'll follow up by {weekday}."), ("C", "Perfect, thank you.")),
    (("C", "Appreciate it. Have a good one."), ("A", "You too, {c_first}.")),
    (("A", "Let's catch up again after the statements come out."), ("C", "Will do.")),
)
COLLEAGUE_OPEN = (
    (("C", "You see the tape today?"), ("A", "Yeah, ugly. Long day already.")),
    (("A", "Got a sec?"), ("C", "Yep, what's up?")),
    (("C", "Hey, you free for a minute?"), ("A", "Go ahead.")),
    (("A", "You back from {place}?"), ("C", "Since Monday. What do you need?")),
)
COLLEAGUE_CLOSE = (
    (("C", "Got it."), ("A", "Thanks.")),
    (("A", "Ping me if anything changes."), ("C", "Will do.")),
    (("C", "Anything else?"), ("A", "That's it for now.")),
)
# Standalone benign lines with trigger words used innocently; shared, so they sit in both versions.
BENIGN_ADVISOR = (
    "Just so you know, the money market sweep isn't FDIC-insured, but the bank deposit program is, up to the limits.",
    "As always, everything we discuss here is recorded and reviewed by compliance.",
    "Your quarterly statement should arrive by the 10th; it shows fees on page two.",
    "Reminder that the annual privacy notice went out last week, no action needed.",
    "I'll attach our Form CRS again so you have the fee and conflict information handy.",
    "Also, the Treasury bills in your account mature on the 15th; I'll call you before reinvesting.",
)

# ---------------------------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------------------------

_SEV_DEFAULT = {
    "HIGH": "Severity is HIGH given the direct harm to the customer and the clarity of the violation.",
    "MEDIUM": "Severity is MEDIUM: a clear breach that could mislead or harm the customer, though no loss is shown yet.",
    "LOW": "Severity is LOW: a limited, technical breach that still needs correction and supervisory follow-up.",
}

PROMISSORY = Topic(
    key="promissory",
    name="Promissory Claims and Projections",
    citations=("FINRA Rule 2210(d)(1)(F)", "FINRA Rule 2210(d)(1)(A)"),
    severity="MEDIUM",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 2210(d)(1)(F) bars communications that predict or project performance, imply that past "
               "performance will recur, or make exaggerated or unwarranted forecasts."),
    severity_notes={
        "HIGH": "Severity is HIGH because the claim is presented as a certainty to induce a sizeable purchase.",
        "MEDIUM": "Severity is MEDIUM: the claim is promissory and likely to mislead, though no trade on it is shown.",
        "LOW": "Severity is LOW: an offhand projection rather than a sales pitch, but still impermissible.",
    },
    templates=(
        {
            "key": "idle-cash-projection", "who": "retail", "products": ("etf", "fund", "reit", "structured"),
            "subject": ("Idea for the cash", "Re: what to do with the {amount}", "Follow-up on our call"),
            "setting": "{c_first} asked what to do with about {amount} in cash, and the advisor suggested {product}.",
            "lines": (
                S("C", "I have about {amount} sitting in savings from {windfall}. What would you do with it?",
                  "So I've got roughly {amount} in cash now, from {windfall}. Any ideas?"),
                S("A", "Good timing. I've been putting clients in a similar spot into {product}.",
                  "I'd take a look at {product}. It's been a popular choice this year."),
                S("C", "What kind of return are we talking about?", "And what would I realistically make on that?"),
                V("A",
                  ("Based on how it's been running, you'll make at least {pct} a year on this, easy.",
                   "I can tell you right now this will be up {pct} by {month}, no question.",
                   "Realistically you're looking at {pct} a year, and it'll keep doing that for the next {years} years.",
                   "It's done {pct} every year for five years and it's going to keep doing it."),
                  ("It has averaged around {pct} a year historically, but past performance does not guarantee future results and you could lose money.",
                   "I can't predict returns; the value will move with the market and returns are not guaranteed.",
                   "I can't promise a number. It has returned {pct} in some years, but that may not repeat, and there is real downside risk.")),
                D("C", ("{pct} a year? That beats my savings account by a mile.", "Wow, okay. That sounds like a sure thing."),
                  ("Okay, that's fair. What does a bad year look like?", "Understood. How much could it drop in a bad year?")),
                O("A", "Let me send you the fact sheet and the prospectus so you can look at the fees.",
                  "I'll email you the fund documents tonight so you can read the risk section.", p=0.8),
                S("C", "Sounds good. Let's talk {weekday}.", "Okay, I'll read through it and call you."),
            ),
            "summary_nc": ("Advisor {a_name} told client {c_name} that {product} would deliver a specific return, an impermissible performance projection.",
                        "{a_name} projected future returns on {product} to client {c_name} as a near certainty."),
            "summary_c": ("Advisor {a_name} discussed {product} with client {c_name} without projecting returns and noted that returns are not guaranteed.",
                       "{a_name} declined to predict returns on {product} for client {c_name} and flagged the downside risk."),
            "why_nc": ("Stating a specific future return as a near certainty is a prediction of performance, and presenting it "
                    "as the reason to invest makes it promissory rather than fair and balanced."),
            "why_c": ("The advisor refers to past results only with the caveat that they may not recur and says returns are "
                   "not guaranteed, which is not a projection of performance."),
        },
        {
            "key": "market-forecast", "who": "retail", "products": ("structured", "stock", "options", "etf"),
            "subject": ("Your question from this morning", "Re: markets this week", "Thoughts on {ticker}"),
            "setting": "{c_first} asked whether it was a good time to buy {product} after news about {company} ({ticker}).",
            "lines": (
                S("A", "Following up on our review: I think {product} fits what you said about wanting growth.",
                  "{c_first}, circling back on {product} from our meeting last week."),
                S("C", "I saw the {ticker} headlines this morning. Is now really a good time?",
                  "With everything in the news about {company}, are you sure about this?"),
                V("A",
                  ("The market is going to be up {pct} by year-end, so this will hit its cap for sure.",
                   "{company} is going to double from here, I'd bet my license on it.",
                   "Trust me, {ticker} is headed to {price_target} within {months} months."),
                  ("Nobody can tell you where the market will be at year-end, so I look at whether this fits your plan if things go badly too.",
                   "I won't give you a price target; {ticker} could fall as easily as it could rise, so I'd keep the position modest.",
                   "I don't make forecasts. What I can do is walk you through how this behaves if the market falls.")),
                V("A", ("Honestly, there's basically no downside here.", "You really can't lose on this one."),
                  ("The main risk is that you can lose principal if things move against you.",
                   "You should know you could lose part of what you put in."),
                  lead=("", "Look, I've been doing this a long time."), p=0.6),
                S("C", "Okay. Can you send me something in writing?", "Alright, send me the details."),
                S("A", "Sure, I'll email the offering document this afternoon.",
                  "Will do. I'll include the risk disclosures and the fee schedule."),
            ),
            "summary_nc": ("Advisor {a_name} gave client {c_name} a confident market or price forecast to support buying {product}.",
                        "{a_name} predicted gains for {product} and implied little downside in a message to client {c_name}."),
            "summary_c": ("Advisor {a_name} declined to forecast prices for client {c_name} and described the downside risk of {product}.",),
            "why_nc": ("A confident price target or market call used to sell a product is an unwarranted forecast, and "
                    "downplaying downside makes the communication unbalanced."),
            "why_c": ("The advisor explicitly refuses to forecast and points the client to downside scenarios, so no "
                   "projection or exaggerated claim is made."),
        },
        {
            "key": "one-sided-yield", "who": "prospect", "products": ("income", "reit"),
            "rule": "FINRA Rule 2210(d)(1)(A)",
            "rule_text": ("FINRA Rule 2210(d)(1)(A) requires communications to be fair and balanced and to provide a sound "
                       "basis for evaluating the facts, and (d)(1)(B) forbids exaggerated or promissory claims."),
            "subject": ("Income idea for you", "Following up from the seminar", "Re: better yield than the bank"),
            "setting": "Prospective client {c_first} asked about getting more income than a bank account, and the advisor described {product}.",
            "lines": (
                S("C", "My bank is paying almost nothing. Is there something safer with better income?",
                  "I'm looking for more income than my savings account without a lot of risk."),
                S("A", "A lot of people I work with have been using {product} for that.",
                  "Have you looked at {product}? It pays a distribution of about {pct_low}."),
                V("A",
                  ("Think of it as a savings account that pays {pct_low}, only with all upside.",
                   "It's every bit as safe as your bank account, just with a much better yield.",
                   "There's really nothing to worry about with this one; it's as steady as a CD."),
                  ("It pays about {pct_low} now, but it isn't a bank account: the value can fall, the payout can be cut, and it may be hard to sell.",
                   "Unlike a bank account, it isn't FDIC-insured, the distribution isn't guaranteed, and you could lose principal.",
                   "The yield is higher because the risk is higher; it's not comparable to a CD and can lose value.")),
                D("C", ("That sounds perfect for me.", "Great, that's exactly what I want."),
                  ("Good to know. What are the main risks?", "Okay, so what could go wrong?")),
                O("A", "I'll send you the offering materials so you can see all the details.", p=0.7),
            ),
            "summary_nc": ("Advisor {a_name} described {product} to prospect {c_name} as bank-like and risk-free, an unbalanced and misleading claim.",),
            "summary_c": ("Advisor {a_name} described {product}'s yield to prospect {c_name} along with its risks and lack of FDIC insurance.",),
            "why_nc": ("Comparing a product that can lose value to a bank account or CD while omitting its risks is not fair "
                    "and balanced and overstates safety."),
            "why_c": ("The advisor pairs the yield with the main risks and distinguishes the product from insured deposits, "
                   "giving a balanced picture."),
        },
    ),
)

GUARANTEE = Topic(
    key="guarantee",
    name="Guarantees Against Loss",
    citations=("FINRA Rule 2150(b)",),
    severity="HIGH",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 2150(b) prohibits a member or associated person from guaranteeing a customer against loss "
               "in connection with any securities transaction or in any securities account."),
    severity_notes={
        "HIGH": "Severity is HIGH because a personal guarantee against loss induces risk-taking and exposes the customer and firm.",
        "MEDIUM": "Severity is MEDIUM: the assurance operates as a guarantee against loss even if it was loosely worded.",
        "LOW": "Severity is LOW: the guarantee is vague, but it is still a prohibited assurance that needs correcting.",
    },
    templates=(
        {
            "key": "cover-the-loss", "who": "retail", "products": ("stock", "options", "etf"),
            "subject": ("Re: {ticker}", "About the {ticker} idea", "Quick follow-up"),
            "setting": "{c_first} was nervous about buying {product} and asked what would happen if it fell.",
            "lines": (
                S("A", "I still like {product} here. I'd put about {amount} into it.",
                  "I'd like to add {product} to your account, around {amount}."),
                S("C", "I'm nervous. I lost a lot in 2022 and I can't go through that again.",
                  "What happens if it drops right after I buy? I really can't afford a big loss."),
                V("A",
                  ("If it drops, I'll cover the loss out of my own pocket.",
                   "I guarantee you won't lose a dime; if it goes below what you paid, I'll make you whole.",
                   "Worst case I'll credit your account back the difference, so you're protected."),
                  ("I can't guarantee you against a loss, and neither can the firm; if it drops, that loss is yours.",
                   "I can't promise you won't lose money, but we can size the position so a drop won't derail your plan.",
                   "Nobody can protect you from a loss on a stock; if that worries you, let's put in less or skip it.")),
                D("C", ("Okay, if you're backing it, let's do it.", "Well, if you'll cover it, I'm in."),
                  ("Let's start smaller then.", "Okay, maybe half that amount.")),
                O("A", "I'll send over the trade confirmation once it's done.", p=0.6),
            ),
            "summary_nc": ("Advisor {a_name} personally guaranteed client {c_name} against losses on {product}.",),
            "summary_c": ("Advisor {a_name} told client {c_name} that losses on {product} cannot be guaranteed and suggested a smaller position.",),
            "why_nc": ("Promising to cover or reimburse any decline is a guarantee against loss, which Rule 2150(b) forbids "
                    "regardless of whether the advisor intends to pay from personal funds."),
            "why_c": ("The advisor states plainly that no one can guarantee against loss and manages the client's risk "
                   "through position size instead, which is appropriate."),
        },
        {
            "key": "cd-hard-negative", "who": "retail", "products": ("structured", "reit", "fund"),
            "subject": ("Safe place for the house money", "Re: parking the {amount}", "Options for your savings"),
            "setting": "{c_first} said the {amount} must be safe because it is needed soon, and asked where to keep it.",
            "lines": (
                S("C", "We need this {amount} for my {kid}'s tuition next fall. I can't lose any of it.",
                  "This {amount} is our down payment money. It has to be safe."),
                V("A",
                  ("Put it in {product}; I personally guarantee your principal.",
                   "Go with {product}. I'll guarantee you get every dollar back, plus interest.",
                   "{product} is the way to go, and I'll guarantee it won't lose value."),
                  ("For money you can't afford to lose, a CD is the better fit; the CD is FDIC-insured up to $250,000 per depositor, per bank.",
                   "I'd use Treasury bills or an FDIC-insured CD for this; the CD is insured up to $250,000, and I wouldn't put tuition money in anything that can lose value.",
                   "A {cd_term} CD makes more sense here; it's FDIC-insured up to the $250,000 limit, unlike {product}, which can lose value.")),
                D("C", ("Great, if it's guaranteed I'm fine with it.", "Perfect, then let's do that."),
                  ("That sounds right. What's the rate?", "Okay, what rate can we get?")),
                S("A", "Rates are around {pct_low} right now. I'll put together the options.",
                  "Let me pull current rates and send them over."),
            ),
            "summary_nc": ("Advisor {a_name} guaranteed client {c_name}'s principal in {product} for money needed short term.",),
            "summary_c": ("Advisor {a_name} steered client {c_name}'s short-term money to an FDIC-insured CD and made no personal guarantee.",),
            "why_nc": ("The advisor personally guarantees principal in a security that can lose value, which is a "
                    "prohibited guarantee against loss."),
            "why_c": ("Describing a CD's FDIC insurance up to the statutory limit is an accurate statement about a bank "
                   "product, not a personal guarantee against loss, so Rule 2150(b) is not implicated."),
        },
        {
            "key": "stay-in-or-else", "who": "retail", "products": ("stock",),
            "subject": ("Re: statements", "Re: I want out", "About your account"),
            "setting": "After a decline in {product}, {c_first} told the advisor they wanted to sell.",
            "lines": (
                S("C", "{company} is down again. I'm done, I want to sell everything.",
                  "I just saw my statement. I want out of {ticker} before it gets worse."),
                S("A", "I hear you. It's been a rough quarter.", "I understand, it's been painful to watch."),
                V("A",
                  ("Stay in, and if it isn't back to break-even by {month}, I'll reimburse you the difference myself.",
                   "Hold on to it; I promise if you end up losing money here, I'll pay you back personally.",
                   "Don't sell. If it's still down at year-end I'll write you a check for the loss."),
                  ("It's your decision; I can't promise it will recover, so let's look at whether it still fits your goals.",
                   "I can't guarantee it comes back, so if the position keeps you up at night we can trim it today.",
                   "I won't tell you it has to recover; let's look at selling part of it and reviewing the rest.")),
                D("C", ("Fine, I'll hold since you're covering it.", "Okay, as long as you'll pay me back."),
                  ("Let's trim half today.", "Okay, let's review it together.")),
            ),
            "summary_nc": ("Advisor {a_name} promised to personally reimburse client {c_name}'s losses on {product} to keep the client invested.",),
            "summary_c": ("Advisor {a_name} discussed trimming {product} with client {c_name} without promising any recovery or reimbursement.",),
            "why_nc": ("Offering to pay the client's losses personally if the security does not recover is a guarantee "
                    "against loss in the account."),
            "why_c": ("The advisor makes no promise of recovery or reimbursement and leaves the decision with the client "
                   "after reviewing fit."),
        },
    ),
)

MISUSE = Topic(
    key="misuse",
    name="Misuse of Customer Funds",
    citations=("FINRA Rule 2150(a)",),
    severity="HIGH",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 2150(a) prohibits a member or associated person from making improper use of a customer's "
               "securities or funds."),
    severity_notes=_SEV_DEFAULT,
    templates=(
        {
            "key": "pay-me-personally", "who": "retail", "products": ("cd", "annuity", "fund", "muni"),
            "subject": ("Funding your new account", "Re: how to send the money", "Next steps for {product}"),
            "setting": "{c_first} asked how to send {amount} to fund a purchase of {product}.",
            "lines": (
                S("C", "I'm ready to move forward with {product}. How do I get you the {amount}?",
                  "Okay, I'm in for {amount}. Should I write a check or wire it?"),
                V("A",
                  ("Just make the check out to me personally and I'll get it deposited into your account.",
                   "Wire it to my personal account at {bank}; I'll move it over to your brokerage account this week.",
                   "Easiest is to Zelle it to me and I'll handle the rest."),
                  ("Please make the check payable to {firm}, never to me personally; it goes straight into your account.",
                   "Wire instructions go to {firm} for credit to your account; I can't accept funds in my own name.",
                   "The wire should go to {firm}'s custodian with your account number in the memo; never send money to me directly.")),
                S("C", "Okay, I'll take care of it tomorrow.", "Got it. I'll do it this afternoon."),
                O("A", "I'll let you know as soon as it lands.", p=0.7),
            ),
            "summary_nc": ("Advisor {a_name} told client {c_name} to send {amount} to the advisor personally rather than to the firm.",),
            "summary_c": ("Advisor {a_name} told client {c_name} to make payment only to {firm}, never to the advisor personally.",),
            "why_nc": ("Directing customer money into the representative's own name or account removes it from the firm's "
                    "custody and is an improper use of customer funds."),
            "why_c": ("Routing the payment to the firm for credit to the client's account is the proper handling of "
                   "customer funds."),
        },
        {
            "key": "journal-between-clients", "who": "colleague", "c_kind": "assistant", "products": ("stock",),
            "subject": ("{o_last} account", "Margin call - {o_last}", "Re: cash movement"),
            "setting": "The advisor asked sales assistant {c_name} how to cover a margin call in client {o_first} {o_last}'s account.",
            "lines": (
                S("C", "The {o_last} account got a margin call this morning, about {amount_small}. No answer from {o_first} yet.",
                  "Heads up, {o_first} {o_last} has a {amount_small} margin call due by {weekday}."),
                V("A",
                  ("Journal {amount_small} over from the {c_last2} account to cover it; that client never looks at the statements.",
                   "Just move the cash from the {c_last2} family trust for now, we'll put it back next month.",
                   "Pull it from {c_last2}'s money market, nobody will notice for a few weeks."),
                  ("We can't move money between unrelated clients; keep calling {o_first} and send the written margin notice today.",
                   "Don't touch any other client's account; if {o_first} can't deposit funds, we follow the firm's margin procedures.",
                   "Send {o_first} the formal notice and loop in the margin desk; other clients' cash is off limits.")),
                D("C", ("Okay, I'll do the journal now.", "Fine, I'll move it."),
                  ("Okay, I'll send the notice now.", "Got it, I'll call the margin desk.")),
            ),
            "summary_nc": ("Advisor {a_name} directed assistant {c_name} to use another client's money to cover {o_last}'s margin call.",),
            "summary_c": ("Advisor {a_name} refused to move other clients' money for {o_last}'s margin call and followed margin procedures.",),
            "why_nc": ("Moving one customer's cash to satisfy another customer's obligation without authorization uses the "
                    "first customer's funds improperly."),
            "why_c": ("The advisor keeps each client's funds separate and handles the margin call through notice and firm "
                   "procedures."),
        },
    ),
)

REG_BI = Topic(
    key="regbi",
    name="Regulation Best Interest",
    citations=("SEC Regulation Best Interest, Exchange Act Rule 15l-1(a)(2)(ii)",
               "SEC Regulation Best Interest, Exchange Act Rule 15l-1(a)(2)(iii)"),
    severity="MEDIUM",
    sources=SEC_MIX,
    rule_text=("Regulation Best Interest's care obligation, Exchange Act Rule 15l-1(a)(2)(ii), requires a broker-dealer "
               "recommending a security to a retail customer to have a reasonable basis to believe the recommendation is in "
               "the customer's best interest given the customer's investment profile and the costs, without placing its own "
               "interest ahead of the customer's."),
    severity_notes={
        "HIGH": "Severity is HIGH because the recommendation materially disadvantages the retail customer in cost, liquidity or risk.",
        "MEDIUM": "Severity is MEDIUM: the recommendation puts cost or the representative's pay ahead of the customer's interest.",
        "LOW": "Severity is LOW: the cost difference is modest, but the recommendation still lacks a best-interest basis.",
    },
    templates=(
        {
            "key": "illiquid-short-horizon", "who": "retail", "products": ("illiquid",),
            "subject": ("Re: the house fund", "Your savings plan", "Recommendation for the {amount}"),
            "setting": "{c_first} said the {amount} was needed for a home purchase in about 18 months, and the advisor made a recommendation.",
            "lines": (
                S("C", "We're planning to use this {amount} for a down payment in about a year and a half.",
                  "Just so you know, we'll need this {amount} when we buy the house, probably in 18 months."),
                S("A", "Thanks, that timeline matters.", "Good to know, let me think about what fits."),
                V("A",
                  ("I'd put the whole {amount} into {product}; you probably won't need it as soon as you think.",
                   "Let's go with {product}. The lockup is long, but the payout is great, and it pays me a nice commission too.",
                   "I'd still do {product}; you can always borrow for the house if you need to."),
                  ("Since you need it in about 18 months, I'd keep it in short-term Treasuries or a CD rather than anything with a lockup like {product}.",
                   "With an 18-month horizon, {product} doesn't fit; I'd ladder Treasury bills so the money is there when you need it.",
                   "Anything with a long lockup is wrong for this money; let's use a high-quality money market fund and short CDs.")),
                D("C", ("If you think so. Let's do it.", "Okay, you're the expert."),
                  ("That makes sense.", "Good, that's what I was hoping.")),
                O("A", "I'll send you the paperwork and our Form CRS.", p=0.6),
            ),
            "summary_nc": ("Advisor {a_name} recommended {product} to retail client {c_name} despite the client needing the money in about 18 months.",),
            "summary_c": ("Advisor {a_name} matched client {c_name}'s 18-month home-purchase horizon with liquid, short-term holdings.",),
            "why_nc": ("Recommending an illiquid product with a multi-year lockup for money the customer needs within 18 "
                    "months ignores the customer's liquidity needs and time horizon, so there is no reasonable basis to "
                    "believe it is in the customer's best interest."),
            "why_c": ("The recommendation matches the customer's stated liquidity need and time horizon, which satisfies "
                   "the care obligation."),
        },
        {
            "key": "sales-contest", "who": "retail", "products": ("fund",),
            "rule": "SEC Regulation Best Interest, Exchange Act Rule 15l-1(a)(2)(iii)",
            "rule_text": ("Regulation Best Interest's conflict of interest obligation, Exchange Act Rule 15l-1(a)(2)(iii), requires "
                       "firms to identify and disclose or eliminate conflicts, mitigate incentives for representatives to put "
                       "their own interest first, and eliminate sales contests and quotas based on specific securities within "
                       "a limited period."),
            "subject": ("Fund recommendation", "Re: where to invest the rollover", "Two fund options"),
            "setting": "{c_first} asked which of two similar funds to use for {amount}.",
            "lines": (
                S("C", "You mentioned two funds that do basically the same thing. Which should I pick for the {amount}?",
                  "Between the house fund and the index fund you showed me, which one for the {amount}?"),
                V("A",
                  ("Go with {product}, our in-house fund; between us, we're in a sales contest this quarter and it counts double for me.",
                   "I'd take {product}, our proprietary one. Honestly the payout's better for me and they're about the same anyway.",
                   "Pick {product}; I need two more sales of it this month to hit the contest and win the trip."),
                  ("Both track similar stocks, but the outside index fund is cheaper, so that's what I'd recommend; I'm paid differently on each and I'll send the conflicts disclosure.",
                   "The index fund costs less for the same exposure, so I'd go with it even though our in-house fund pays me more; that's in our disclosure.",
                   "I'd pick the lower-cost index fund. Just so you know, I'd earn more on {product}, which is why I'm flagging it.")),
                D("C", ("Ha, sure, happy to help you win.", "Fine, whatever helps you out."),
                  ("Thanks for being upfront.", "Appreciate you telling me that.")),
            ),
            "summary_nc": ("Advisor {a_name} steered client {c_name} into {product} because of a sales contest and higher pay rather than the client's interest.",),
            "summary_c": ("Advisor {a_name} recommended the lower-cost fund to client {c_name} and disclosed the compensation conflict.",),
            "why_nc": ("The recommendation is driven by a sales contest and the advisor's payout, the kind of conflict Reg BI "
                    "requires firms to eliminate or mitigate, and it puts the advisor's interest ahead of the customer's."),
            "why_c": ("The advisor recommends the cheaper equivalent and discloses how compensation differs, so the conflict "
                   "is disclosed and does not drive the recommendation."),
        },
        {
            "key": "share-class", "who": "retail", "products": ("fund",),
            "subject": ("Re: investing the {amount}", "Fund purchase", "Share class question"),
            "setting": "{c_first} planned to invest {amount} for at least ten years and asked how to buy {product}.",
            "lines": (
                S("C", "I want to put {amount} into {product} and leave it for at least ten years.",
                  "Let's do the {amount} in {product}. I don't plan to touch it for a decade or more."),
                V("A",
                  ("I'll put it all in the C shares; they're simpler, don't worry about the fees.",
                   "Let's use the C shares, they're what I always use.",
                   "C shares are fine, the ongoing fee is only about 1% a year."),
                  ("At {amount} you qualify for a breakpoint on the A shares, which is cheaper than the C shares over a ten-year hold.",
                   "For a ten-year hold at this size, the A shares with the breakpoint discount cost less than the C shares, so I'd use those.",
                   "I'd buy the A shares; at {amount} the sales charge is reduced, and the C shares' 1% annual fee would cost you more over ten years.")),
                S("C", "Okay, go ahead.", "Sounds good."),
            ),
            "summary_nc": ("Advisor {a_name} put client {c_name}'s long-term {amount} purchase in higher-cost C shares without considering breakpoints.",),
            "summary_c": ("Advisor {a_name} recommended breakpoint-eligible A shares for client {c_name}'s ten-year holding as the lower-cost share class.",),
            "why_nc": ("For a large, long-term purchase, C shares' ongoing fees usually exceed the breakpoint-reduced A-share "
                    "charge, and ignoring share-class cost is a failure of reasonable care."),
            "why_c": ("The advisor compares share-class costs over the customer's holding period and picks the cheaper class, "
                   "which reflects reasonable care."),
        },
        {
            "key": "rollover", "who": "retail", "products": ("annuity", "fund"),
            "subject": ("Your 401(k) rollover", "Re: leaving {company}", "Retirement account next steps"),
            "setting": "{c_first}, leaving a job at {company}, asked whether to roll a 401(k) over to the firm.",
            "lines": (
                S("C", "I'm leaving {company} next month. What should I do with my 401(k)? It's about {amount}.",
                  "My last day at {company} is the 30th. Should I move my 401(k) to you?"),
                V("A",
                  ("Just roll the whole thing into an IRA with us and put it in {product}; no need to compare fees, ours is better.",
                   "Definitely roll it over to us. Don't worry about what the plan charges, it's always worse."),
                  ("Before you move anything, let's compare the fees and funds in your 401(k) with what an IRA here would cost; staying put might be cheaper.",
                   "Send me the plan's fee disclosure first. Your 401(k) may have cheaper institutional funds, and leaving it there could be the better choice.")),
                S("C", "Okay, I'll look for the paperwork.", "I'll dig up the statements."),
            ),
            "summary_nc": ("Advisor {a_name} recommended client {c_name} roll a 401(k) into a firm IRA without comparing costs or alternatives.",),
            "summary_c": ("Advisor {a_name} asked client {c_name} to compare 401(k) costs before deciding on any rollover.",),
            "why_nc": ("A rollover recommendation requires weighing the plan's costs, investment options and services against "
                    "the IRA's; recommending it without that comparison lacks a reasonable basis."),
            "why_c": ("The advisor gathers the plan's costs and keeps staying in the plan on the table before recommending "
                   "anything, which is what the care obligation expects."),
        },
    ),
)

INST_SUIT = Topic(
    key="inst-suit",
    name="Institutional Suitability",
    citations=("FINRA Rule 2111",),
    severity="MEDIUM",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 2111 requires a reasonable basis to believe a recommendation is suitable for the customer "
               "based on its investment profile; for an institutional account the customer-specific obligation is met "
               "under Rule 2111(b) only if the customer can evaluate the risks independently and affirmatively says it "
               "is exercising independent judgment."),
    severity_notes={
        "HIGH": "Severity is HIGH because institutional money is steered well outside the customer's profile into riskier instruments.",
        "MEDIUM": "Severity is MEDIUM: the recommendation conflicts with the institution's stated profile or policy.",
        "LOW": "Severity is LOW: a limited deviation from the customer's profile, still requiring correction.",
    },
    templates=(
        {
            "key": "complex-operating-cash", "who": "institutional", "products": ("complex",),
            "subject": ("Operating reserve proposal", "Re: yield on the reserve", "{c_org} portfolio idea"),
            "setting": "{c_name}, {c_title} of {c_org}, asked how to earn more on the operating reserve.",
            "lines": (
                S("C", "The board wants more yield on the {amount_big} operating reserve, but our policy says preservation first.",
                  "We're under pressure to earn more on the operating reserve, about {amount_big}. Ideas?"),
                V("A",
                  ("I'd move {amount_big} of the reserve into {product}; the yield pickup is significant.",
                   "Put a big chunk of the reserve into {product}, that's where the yield is."),
                  ("For an operating reserve, I'd stay with short Treasuries and agency notes that fit your investment policy.",
                   "Given the preservation mandate, I'd extend a bit on the Treasury ladder rather than add anything complex.")),
                S("C", "Honestly, I don't really follow how those work.",
                  "I'll be frank, our office doesn't have the expertise to evaluate complicated structures."),
                V("A",
                  ("You don't need to follow the mechanics; just sign the institutional certification and I'll take care of it.",
                   "Don't worry about understanding it, just check the box saying you're exercising independent judgment."),
                  ("Then it wouldn't be appropriate anyway; if your team can't evaluate a product independently, I won't recommend it.",
                   "That's a good reason to keep it simple; I'm not going to ask you to certify independent judgment on something you can't evaluate.")),
                S("C", "Okay, send me something I can share with the finance committee.",
                  "Can you put that in writing for the committee?"),
            ),
            "summary_nc": ("Advisor {a_name} recommended {product} for {c_org}'s operating reserve and urged a certification the customer could not make.",),
            "summary_c": ("Advisor {a_name} kept {c_org}'s operating reserve in instruments consistent with its preservation policy.",),
            "why_nc": ("The institution's policy calls for preservation and its officer says the team cannot evaluate the "
                    "product, so the 2111(b) exemption is unavailable and the recommendation is not suitable for its profile."),
            "why_c": ("The advisor keeps the recommendation within the institution's preservation policy and declines to "
                   "rely on an independent-judgment certification the customer cannot make."),
        },
        {
            "key": "policy-limit", "who": "institutional", "products": ("alts",),
            "subject": ("Allocation proposal", "Re: alternatives sleeve", "Committee materials"),
            "setting": "{c_name} of {c_org} asked how much to allocate to {product}.",
            "lines": (
                S("C", "Our investment policy caps alternatives at 10% of the portfolio. How much would you put in {product}?",
                  "How much of the {amount_big} would you put into {product}? Keep in mind our 10% cap on alternatives."),
                V("A",
                  ("I know your policy caps it at 10%, but I'd go to 35%; the committee won't look that closely.",
                   "Ignore the cap for now, I'd put a third of the portfolio in it and we'll fix the policy later."),
                  ("Your policy caps alternatives at 10%, so I'd keep this well within that limit, around 5%.",
                   "I'd stay under the 10% cap; if the committee wants more, that's a policy change for them to make first.")),
                S("C", "Understood. I'll bring it to the committee.", "Okay, let me run it by the chair."),
            ),
            "summary_nc": ("Advisor {a_name} recommended that {c_org} exceed its investment-policy limit on {product}.",),
            "summary_c": ("Advisor {a_name} kept the recommended allocation for {c_org} within its investment policy limit.",),
            "why_nc": ("Recommending an allocation far beyond the institution's written policy limit ignores its investment "
                    "profile, so there is no reasonable basis to find it suitable."),
            "why_c": ("The recommendation respects the institution's policy limits, consistent with its investment profile."),
        },
    ),
)

MISREP = Topic(
    key="misrep",
    name="Misrepresentation and Omission of Material Facts",
    citations=("SEC Rule 10b-5 (Exchange Act Section 10(b))",),
    severity="HIGH",
    sources=SEC_MIX,
    rule_text=("SEC Rule 10b-5 under Section 10(b) of the Exchange Act makes it unlawful, in connection with the purchase "
               "or sale of a security, to make an untrue statement of a material fact or to omit a material fact needed "
               "to make the statements made not misleading."),
    severity_notes={
        "HIGH": "Severity is HIGH because the false statement goes to the core risk or cost of the investment and invites reliance.",
        "MEDIUM": "Severity is MEDIUM: the misstatement is material, though the customer has the documents to check it.",
        "LOW": "Severity is LOW: the misstatement is narrow, but it is still a material inaccuracy to correct.",
    },
    templates=(
        {
            "key": "annuity-surrender", "who": "retail", "products": ("annuity",),
            "subject": ("Re: annuity application", "Question on the paperwork", "Surrender charges?"),
            "setting": "{c_first} asked whether {product} had charges for early withdrawals after reading the application.",
            "lines": (
                S("C", "I was reading the application for {product} and it mentions a surrender schedule. Are there charges if I need money early?",
                  "The paperwork for {product} talks about surrender charges. What does that mean for me?"),
                V("A",
                  ("Don't worry about that, it's boilerplate; there are no charges to get your money out.",
                   "That doesn't apply to you. You can pull your money out any time without penalty.",
                   "Ignore that section. There are no fees on this at all."),
                  ("Yes. The surrender charge starts at {sur_pct}% in the first year and steps down to zero after {years} years.",
                   "There is a surrender charge of {sur_pct}% in year one, declining over {years} years, plus annual fees of about {fee_pct}%; it's all in the prospectus.",
                   "It means early withdrawals above the free amount cost up to {sur_pct}% for the first {years} years, so only use money you won't need.")),
                D("C", ("Great, that makes me feel better.", "Oh good, then I'll sign."),
                  ("Thanks, that's important to know.", "Okay, I'll keep that in mind.")),
            ),
            "summary_nc": ("Advisor {a_name} falsely told client {c_name} that {product} had no surrender charges despite the application's surrender schedule.",),
            "summary_c": ("Advisor {a_name} accurately explained the surrender charges and fees of {product} to client {c_name}.",),
            "why_nc": ("The application itself describes a surrender schedule, so telling the client there are no charges is "
                    "an untrue statement of a material fact about cost and liquidity made to induce the purchase."),
            "why_c": ("The advisor confirms and quantifies the surrender charges described in the documents, so the client "
                   "receives accurate material facts."),
        },
        {
            "key": "buffer-not-protection", "who": "retail", "products": ("structured",),
            "subject": ("Term sheet question", "Re: the note", "Buffer?"),
            "setting": "{c_first} asked what the {buffer}% buffer on {product} meant.",
            "lines": (
                S("C", "The term sheet for {product} says something about a {buffer}% buffer. What does that mean?",
                  "What's this {buffer}% buffer on the term sheet?"),
                V("A",
                  ("It just means your principal is fully protected, you can't lose anything.",
                   "It's principal protected. Worst case you get your money back.",
                   "Basically it means it's as safe as a bond, there's no way to lose principal."),
                  ("It means the note absorbs the first {buffer}% of an index decline; beyond that you lose principal one-for-one, so you can lose a lot.",
                   "The buffer covers only the first {buffer}% of losses. If the index falls further, you lose principal, and the note also carries the issuer's credit risk.",
                   "It's partial protection, not a guarantee: past a {buffer}% drop you lose money, and you're exposed to {bank}'s credit.")),
                D("C", ("Perfect, that's what I wanted.", "Great, no risk then."),
                  ("So it's not really safe.", "Okay, that's more risk than I thought.")),
            ),
            "summary_nc": ("Advisor {a_name} told client {c_name} that a buffered note was fully principal-protected, misstating its risk.",),
            "summary_c": ("Advisor {a_name} correctly explained to client {c_name} that the note's {buffer}% buffer is only partial protection.",),
            "why_nc": ("A buffer absorbs only part of a decline, so calling the note fully protected is an untrue statement "
                    "of a material fact about the risk of loss."),
            "why_c": ("The advisor explains the buffer's limits, the remaining downside and credit risk, which are the "
                   "material facts the client needs."),
        },
        {
            "key": "reit-liquidity", "who": "retail", "products": ("reit",),
            "subject": ("Re: selling later", "Liquidity question", "REIT follow-up"),
            "setting": "{c_first} asked whether {product} could be sold quickly if needed.",
            "lines": (
                S("C", "If I need the money back, how quickly can I sell {product}?",
                  "Can I get out of {product} fast if something comes up?"),
                V("A",
                  ("You can sell it any time, just like a stock.",
                   "Liquidity is never an issue, you'll have your money in a few days."),
                  ("There's no public market for it; redemptions are limited each quarter and can be suspended, so plan on holding it for years.",
                   "It isn't traded on an exchange. The sponsor's redemption program is capped and can be suspended, so it's not money you should need soon.")),
                S("C", "Okay, good to know.", "Thanks for explaining."),
            ),
            "summary_nc": ("Advisor {a_name} told client {c_name} that {product} could be sold any time, misrepresenting its liquidity.",),
            "summary_c": ("Advisor {a_name} accurately described to client {c_name} the limited redemption program of {product}.",),
            "why_nc": ("A non-traded REIT has no public market and limited redemptions, so saying it can be sold like a stock "
                    "is an untrue statement of a material fact."),
            "why_c": ("The advisor accurately discloses the REIT's illiquidity and redemption limits."),
        },
    ),
)

CHURNING = Topic(
    key="churning",
    name="Churning and Excessive Trading",
    citations=("SEC Regulation Best Interest, Exchange Act Rule 15l-1(a)(2)(ii)(C)", "FINRA Rule 2111.05(c)"),
    severity="HIGH",
    sources=(("FINRA", 9), ("SEC", 6), ("internal", 6)),
    rule_text=("Regulation Best Interest's care obligation, Exchange Act Rule 15l-1(a)(2)(ii)(C), requires a reasonable "
               "basis to believe that a series of recommended transactions, even if each is in the retail customer's best "
               "interest on its own, is not excessive when taken together."),
    severity_notes={
        "HIGH": "Severity is HIGH because frequent trading driven by commissions erodes the customer's account.",
        "MEDIUM": "Severity is MEDIUM: the trading pattern is excessive for the account's objectives, though costs are still moderate.",
        "LOW": "Severity is LOW: an early sign of excessive trading that supervision should stop.",
    },
    templates=(
        {
            "key": "rotate-again", "who": "retail", "products": ("stock",),
            "subject": ("Re: another trade?", "Account activity", "Trade idea for this week"),
            "setting": "{c_first} questioned the commissions on the account statement, and the advisor proposed another swap.",
            "lines": (
                S("C", "My statement shows about {commissions} in commissions this quarter. Is that normal?",
                  "I noticed a lot of trades and {commissions} in commissions lately. What's going on?"),
                V("A",
                  ("That's just the cost of being active. Let's sell the {ticker} we bought {weekday} and buy {ticker2}; we'll keep rotating every week or two.",
                   "We'll keep turning the account over to catch the moves; next up, out of {ticker} and into {ticker2}.",
                   "Active accounts cost more. Turnover's about {turnover} times this year, and I want to keep that pace."),
                  ("You're right, that's too much trading for a long-term account; I'd hold the core positions and only rebalance quarterly.",
                   "I looked at it and the costs are too high relative to the account, so we're going to trade much less going forward.",
                   "That's more than it should be. No swap this week; we'll keep {ticker} and review the allocation once a quarter.")),
                D("C", ("Okay, if you think it'll pay off.", "Alright, do the swap."),
                  ("Thank you, that makes more sense.", "Good, I'd prefer that.")),
            ),
            "summary_nc": ("Advisor {a_name} proposed continued frequent trading in client {c_name}'s long-term account despite high commissions.",),
            "summary_c": ("Advisor {a_name} agreed client {c_name}'s trading was too frequent and moved to quarterly rebalancing.",),
            "why_nc": ("Rotating positions every week or two and dismissing {commissions} in quarterly commissions points to a "
                    "series of trades that is excessive for a long-term retail account, whatever the merit of each trade."),
            "why_c": ("The advisor reduces trading once costs appear high, keeping the series of transactions consistent with "
                   "the customer's long-term objectives."),
        },
        {
            "key": "production-number", "who": "colleague", "c_kind": "assistant", "products": ("stock",),
            "subject": ("{c_last2} account", "Trades for today", "Re: month end"),
            "setting": "The advisor gave sales assistant {c_name} instructions about client {c_last2}'s account near month-end.",
            "lines": (
                S("C", "Anything you want entered before month-end?", "Month-end is {weekday}. Any last tickets?"),
                V("A",
                  ("Run the {c_last2} account through another round of trades, I need to hit my production number this month.",
                   "Sell the {ticker} in {c_last2}'s IRA and buy {ticker2}, then swap back next week; I'm short on production.",
                   "Churn a few trades in the {c_last2} account, it's big enough that nobody will notice the commissions."),
                  ("Leave the {c_last2} account alone this month; it doesn't need any trades.",
                   "Nothing for {c_last2}; the allocation is fine and more trading would just cost the client.",
                   "No trades for {c_last2}. We rebalance that account quarterly, not for month-end.")),
                D("C", ("Okay, I'll put the tickets in.", "Got it, entering them now."),
                  ("Okay, nothing for {c_last2}.", "Got it.")),
            ),
            "summary_nc": ("Advisor {a_name} directed trades in client {c_last2}'s account to meet a production target rather than the client's needs.",),
            "summary_c": ("Advisor {a_name} declined to trade client {c_last2}'s account at month-end because no trades were needed.",),
            "why_nc": ("Trading a retail account to meet the representative's production target is excessive trading that "
                    "serves the representative, not the customer."),
            "why_c": ("The advisor refuses unneeded trades, so no excessive series of transactions is recommended."),
        },
        {
            "key": "institutional-churn", "who": "institutional", "products": ("stock", "etf"),
            "rule": "FINRA Rule 2111.05(c)",
            "rule_text": ("FINRA Rule 2111.05(c) (quantitative suitability) requires a reasonable basis to believe that a "
                       "series of recommended transactions is not excessive and unsuitable when taken together in light of "
                       "the customer's investment profile."),
            "subject": ("Re: trading activity", "{c_org} account review", "Turnover question"),
            "setting": "{c_name}, {c_title} of {c_org}, questioned the trading volume in the organization's long-term reserve.",
            "lines": (
                S("C", "Our auditors flagged turnover in the reserve account. We're a buy-and-hold account. Why so many trades?",
                  "The finance committee asked why our long-term reserve had {turnover} round trips this year."),
                V("A",
                  ("Frequent trading is how I add value; I plan to keep rotating positions every couple of weeks.",
                   "That's how I manage money. Expect about the same turnover next year."),
                  ("That's a fair flag; for a buy-and-hold reserve we'll cut turnover sharply and trade only to rebalance.",
                   "You're right, it's more than your objectives call for; I'll move to a quarterly rebalance.")),
                S("C", "Please send a summary I can share with the committee.", "Okay, I'll report that back."),
            ),
            "summary_nc": ("Advisor {a_name} planned to continue high turnover in {c_org}'s buy-and-hold reserve account.",),
            "summary_c": ("Advisor {a_name} agreed to cut turnover in {c_org}'s reserve account to match its buy-and-hold objectives.",),
            "why_nc": ("Persistent rotation in an institutional buy-and-hold reserve is quantitatively unsuitable for its "
                    "profile; Reg BI does not apply to this non-retail customer, so FINRA Rule 2111 governs."),
            "why_c": ("The advisor aligns trading frequency with the institution's stated objectives, so the series of "
                   "recommendations is not excessive."),
        },
    ),
)

UNAUTHORIZED = Topic(
    key="unauthorized",
    name="Unauthorized and Discretionary Trading",
    citations=("FINRA Rule 3260(b)", "FINRA Rule 2010", "FINRA Rule 3260(b); FINRA Rule 2010"),
    severity="HIGH",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 3260(b) prohibits exercising discretionary power in a customer's account without the "
               "customer's prior written authorization and the firm's acceptance of the account as discretionary."),
    severity_notes={
        "HIGH": "Severity is HIGH because trades were or will be placed without the customer's authorization.",
        "MEDIUM": "Severity is MEDIUM: discretion is being exercised without the required written authorization.",
        "LOW": "Severity is LOW: a procedural lapse in authorization that still needs correction.",
    },
    templates=(
        {
            "key": "sold-without-asking", "who": "retail", "products": ("stock",),
            "rule": "FINRA Rule 2010",
            "rule_text": ("Placing trades in a non-discretionary account without the customer's authorization violates FINRA "
                       "Rule 2010's standards of commercial honor, and exercising discretion without written authorization "
                       "also breaches FINRA Rule 3260(b)."),
            "subject": ("Your {ticker} position", "Trade in your account", "Re: {ticker}"),
            "setting": "The advisor contacted {c_first} about {company} ({ticker}) stock in the client's non-discretionary account.",
            "lines": (
                S("A", "{c_first}, {ticker} dropped {pct_low} on the earnings miss this morning.",
                  "Heads up, {company} missed earnings and {ticker} is down hard."),
                V("A",
                  ("I went ahead and sold your {ticker} this morning; I didn't have time to reach you.",
                   "I already sold half your {ticker} and bought {ticker2} with it, figured you'd want me to act fast.",
                   "I dumped the {ticker} position before the open, I'll explain later."),
                  ("I think selling {ticker} makes sense, but I'll need your okay before placing that trade. Do you want me to go ahead?",
                   "I'd recommend trimming {ticker}, but it's your call; nothing happens until you tell me to sell.",
                   "I won't touch it without your go-ahead. Call me back and we'll decide together.")),
                D("C", ("Wait, you sold it without asking me?", "I didn't authorize that."),
                  ("Thanks for checking first. Let me think for an hour.", "Appreciate the call, let's sell half.")),
            ),
            "summary_nc": ("Advisor {a_name} traded {ticker} in client {c_name}'s non-discretionary account without the client's authorization.",),
            "summary_c": ("Advisor {a_name} recommended selling {ticker} but waited for client {c_name}'s authorization before trading.",),
            "why_nc": ("The account is non-discretionary and the client did not approve the trade beforehand, so placing it "
                    "is unauthorized trading."),
            "why_c": ("The advisor seeks the client's approval before placing any order, which is required for a "
                   "non-discretionary account."),
        },
        {
            "key": "while-traveling", "who": "retail", "products": ("stock", "etf"),
            "rule": "FINRA Rule 3260(b)",
            "subject": ("Re: while I'm away", "Trip and the account", "Before you leave"),
            "setting": "{c_first}, leaving on a three-week trip, asked the advisor to manage the account in the meantime.",
            "lines": (
                S("C", "I'm going to be in {place} for three weeks with bad reception. Just do whatever you think is best with the account.",
                  "We leave for {place} on {weekday}. Feel free to make trades while I'm gone."),
                V("A",
                  ("No problem, I'll just trade it while you're gone, no need for paperwork.",
                   "Sure, I'll make the calls for you; we don't need anything in writing for that.",
                   "Great, I'll run it however I think is best, we can skip the forms."),
                  ("I'll need your written authorization before placing trades at my discretion; I'll send the discretionary account form, and until it's approved I'll call you before each trade.",
                   "To trade without calling you, the firm needs your written authorization and has to approve the account as discretionary; until then, nothing gets traded without your okay.",
                   "I can't trade at my own discretion without written authorization; let's set up a time to reach you if anything needs attention.")),
                S("C", "Okay, thanks.", "Sounds good."),
            ),
            "summary_nc": ("Advisor {a_name} agreed to trade client {c_name}'s account at discretion without written authorization.",),
            "summary_c": ("Advisor {a_name} required written discretionary authorization before trading client {c_name}'s account.",),
            "why_nc": ("A verbal 'do whatever you think is best' is not prior written authorization, and the firm has not "
                    "accepted the account as discretionary."),
            "why_c": ("The advisor requires written authorization and firm approval before exercising discretion, as Rule "
                   "3260(b) requires."),
        },
        {
            "key": "block-all-accounts", "who": "colleague", "c_kind": "assistant", "products": ("stock",),
            "rule": "FINRA Rule 3260(b); FINRA Rule 2010",
            "subject": ("{ticker} tickets", "Re: allocation", "Orders for today"),
            "setting": "The advisor gave sales assistant {c_name} instructions to buy {ticker} across client accounts.",
            "lines": (
                S("A", "I want {ticker} in client accounts today, it's off {pct_low} on no news.",
                  "{ticker} looks cheap. Let's get clients in."),
                S("C", "Which accounts? Most of them aren't discretionary.", "Do you have approvals from everyone?"),
                V("A",
                  ("Buy {shares_small} {ticker} in every account with cash, we'll tell them later.",
                   "Just put it in all my accounts, I'll call them next week.",
                   "Doesn't matter, enter it everywhere and I'll get the okays after."),
                  ("Only place the {ticker} buys for clients who've said yes; I'm calling the others first.",
                   "Just the three clients who approved it this morning; the rest wait until I reach them.",
                   "Nothing goes in without a client okay. I'll give you the list as I get approvals.")),
                D("C", ("Okay, entering them now.", "Fine, doing it."),
                  ("Got it, I'll wait for the list.", "Okay.")),
            ),
            "summary_nc": ("Advisor {a_name} directed purchases of {ticker} in non-discretionary client accounts without client authorization.",),
            "summary_c": ("Advisor {a_name} limited {ticker} purchases to clients who had approved them.",),
            "why_nc": ("Entering trades across non-discretionary accounts before obtaining client approval exercises "
                    "discretion without written authorization and is unauthorized trading."),
            "why_c": ("Orders are placed only for clients who approved them, so no discretion is exercised without "
                   "authorization."),
        },
    ),
)

BORROWING = Topic(
    key="borrowing",
    name="Borrowing From or Lending to Customers",
    citations=("FINRA Rule 3240",),
    severity="MEDIUM",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 3240 prohibits a registered person from borrowing money from or lending money to a customer "
               "unless the firm's written procedures allow it, the arrangement fits a permitted relationship, and the "
               "firm is notified and approves where required."),
    severity_notes={
        "HIGH": "Severity is HIGH because the loan is sizeable and creates a serious conflict with the customer.",
        "MEDIUM": "Severity is MEDIUM: a prohibited loan arrangement that creates a conflict, though the amount is moderate.",
        "LOW": "Severity is LOW: a small arrangement, but still outside the firm's permitted relationships.",
    },
    templates=(
        {
            "key": "client-offers-loan", "who": "retail", "products": ("fund",),
            "subject": ("Re: catching up", "Thanks for the call", "Re: your roof"),
            "setting": "{c_first}, hearing about the advisor's home repair costs, offered to lend money.",
            "lines": (
                S("C", "How did the roof repair turn out? Last time you said it was going to be a fortune.",
                  "Did you ever sort out the roof? You sounded stressed about the cost."),
                S("A", "Still waiting on the contractor, and the bill keeps going up.",
                  "Not yet. It's turning into a real headache."),
                S("C", "Listen, I've got plenty of cash. Let me lend you {amount_small}, pay me back whenever.",
                  "If it helps, I can loan you {amount_small}. No rush paying it back."),
                V("A",
                  ("That would really help; if you can wire me {amount_small}, I'll pay you back with interest by {month}.",
                   "You're a lifesaver. Send it to my personal account and I'll pay you back over the year.",
                   "I'll take you up on that, just keep it between us."),
                  ("That's very kind, but I can't borrow money from clients; it's against firm policy and FINRA rules.",
                   "I really appreciate it, but I can't accept a loan from a client. I'll figure it out with the bank.",
                   "Thank you, truly, but borrowing from clients isn't allowed, so I'll have to pass.")),
                D("C", ("Done, I'll send it today.", "Great, happy to help."),
                  ("Understood, the offer was sincere.", "Fair enough.")),
            ),
            "summary_nc": ("Advisor {a_name} accepted a personal loan of {amount_small} from client {c_name}.",),
            "summary_c": ("Advisor {a_name} declined client {c_name}'s offer of a personal loan, citing firm policy.",),
            "why_nc": ("The client is not a family member or lending institution, and there is no indication of firm "
                    "approval, so accepting the loan is prohibited borrowing from a customer."),
            "why_c": ("The advisor refuses the loan outright, so no borrowing from a customer occurs."),
        },
        {
            "key": "advisor-offers-loan", "who": "retail", "products": ("fund",),
            "subject": ("Re: the tax bill", "Covering the shortfall", "Re: cash crunch"),
            "setting": "{c_first} mentioned a short-term cash shortfall and the advisor responded.",
            "lines": (
                S("C", "I owe {amount_small} on my taxes by the 15th and my bonus doesn't come until next month.",
                  "I'm about {amount_small} short this month until my bonus hits. Don't want to sell anything."),
                V("A",
                  ("I can lend you the {amount_small} myself until your bonus comes in; just keep it between us.",
                   "Don't sell anything, I'll spot you the {amount_small} personally and you can pay me back.",
                   "I'll write you a personal check for it. No interest, just don't mention it to anyone at the office."),
                  ("I can't lend you money, it's against firm policy, but we could look at a securities-based line of credit through the firm or talk to your bank.",
                   "I'm not allowed to lend money to clients, but let's look at whether a small withdrawal from the money market makes sense.",
                   "Personal loans between advisors and clients aren't allowed; your bank or a firm credit line are the options.")),
                D("C", ("That would be a huge help, thank you.", "Really? You're the best."),
                  ("Okay, let's look at the options.", "Makes sense. What would the credit line cost?")),
            ),
            "summary_nc": ("Advisor {a_name} offered to personally lend {amount_small} to client {c_name} and keep it hidden from the firm.",),
            "summary_c": ("Advisor {a_name} told client {c_name} that lending to clients is prohibited and suggested proper credit alternatives.",),
            "why_nc": ("Offering a personal loan to a customer outside any permitted relationship, and asking to conceal it, "
                    "breaches Rule 3240."),
            "why_c": ("The advisor refuses to lend and points to firm or bank credit, so no prohibited loan occurs."),
        },
    ),
)

SELLING_AWAY = Topic(
    key="selling-away",
    name="Selling Away (Private Securities Transactions)",
    citations=("FINRA Rule 3280",),
    severity="HIGH",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 3280 requires an associated person to give the firm prior written notice of any private "
               "securities transaction outside the regular course of employment and, where compensation is involved, to "
               "get the firm's written approval and have the transaction recorded on its books."),
    severity_notes={
        "HIGH": "Severity is HIGH because customer money would go into an unsupervised private deal.",
        "MEDIUM": "Severity is MEDIUM: an unapproved private securities offering to a customer outside the firm's supervision.",
        "LOW": "Severity is LOW: a tentative pitch outside the firm, which still requires notice before any participation.",
    },
    templates=(
        {
            "key": "friends-startup", "who": "retail", "products": ("private",),
            "subject": ("Private opportunity", "Re: the startup", "Something off the radar"),
            "setting": "The advisor raised an investment in {company} with {c_first}.",
            "lines": (
                S("A", "There's a deal I wanted to mention. My college roommate's company, {company}, is raising money.",
                  "{c_first}, remember I mentioned {company}? They're raising a round."),
                S("C", "Interesting. How would I get in?", "What would that look like for me?"),
                V("A",
                  ("I can get you in for {amount} directly; it won't go through {firm}, so keep it off the books.",
                   "Write the check straight to the company. I get a finder's fee, but the firm doesn't need to know.",
                   "It's outside the firm, so no paperwork on our side. Just wire it to their account and I'll handle it."),
                  ("If you're interested, that would have to go through {firm}; I can't help you invest in a deal outside the firm without clearing it with compliance.",
                   "I'm not allowed to sell anything outside {firm} without written approval, so I'd have to run it through compliance first.",
                   "Any participation on my part needs prior written notice to {firm} and approval, so hold off until compliance reviews it.")),
                D("C", ("Great, send me the wire details.", "Okay, I'm in for {amount}."),
                  ("Okay, let me know what compliance says.", "Fine, keep me posted.")),
            ),
            "summary_nc": ("Advisor {a_name} solicited client {c_name} to invest in {company} outside the firm without notice or approval.",),
            "summary_c": ("Advisor {a_name} told client {c_name} that any investment in {company} must be reviewed and approved by the firm first.",),
            "why_nc": ("Soliciting a customer for a private offering outside the firm, without written notice or approval and "
                    "with the deal kept off the firm's books, is selling away."),
            "why_c": ("The advisor conditions any involvement on prior written notice and firm approval, which Rule 3280 "
                   "requires."),
        },
        {
            "key": "promissory-notes", "who": "retail", "products": ("private",),
            "subject": ("Income idea", "Re: notes paying {pct}", "Real estate notes"),
            "setting": "{c_first} asked about promissory notes paying {pct} tied to a development in {city}.",
            "lines": (
                S("C", "A friend told me about promissory notes paying {pct} on a development in {city}. Do you know anything about them?",
                  "Have you heard of the {city} development notes paying {pct}?"),
                V("A",
                  ("I'm actually involved in that; I sell those notes on the side, separate from the firm.",
                   "Yes, I handle those personally. We don't run them through {firm}, it's my own deal.",
                   "Those are mine, I place them directly with a few clients outside the firm."),
                  ("I don't offer any investments outside {firm}; before you buy notes like that, please let me and our compliance team take a look.",
                   "I'm not involved and can't sell anything away from the firm. Promissory notes like that carry a lot of risk, so be careful.",
                   "I'd be wary. Nothing like that goes through me outside {firm}, and promissory notes pitched at {pct} are often high risk.")),
                S("C", "Good to know.", "Okay, thanks."),
            ),
            "summary_nc": ("Advisor {a_name} offered promissory notes to client {c_name} outside the firm's supervision.",),
            "summary_c": ("Advisor {a_name} told client {c_name} the notes are not offered through the firm and cautioned about their risk.",),
            "why_nc": ("Promissory notes of this kind are securities, and selling them to a customer outside the firm without "
                    "notice or approval is a private securities transaction in breach of Rule 3280."),
            "why_c": ("The advisor does not participate in the offering and refers the customer to compliance, so there is "
                   "no private securities transaction."),
        },
    ),
)

OBA = Topic(
    key="oba",
    name="Outside Business Activities",
    citations=("FINRA Rule 3270",),
    severity="MEDIUM",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 3270 requires a registered person to give the firm prior written notice before being employed "
               "by, or accepting compensation from, any other person as a result of a business activity outside the scope "
               "of the relationship with the firm."),
    severity_notes={
        "HIGH": "Severity is HIGH because the paid outside activity is being deliberately hidden from the firm.",
        "MEDIUM": "Severity is MEDIUM: a paid outside activity without prior written notice to the firm.",
        "LOW": "Severity is LOW: an undisclosed activity with limited customer overlap that still needs notice.",
    },
    templates=(
        {
            "key": "side-tax-business", "who": "retail", "products": ("fund",),
            "subject": ("Re: tax season", "Tax help", "Re: your return"),
            "setting": "{c_first} asked the advisor for help with a tax return.",
            "lines": (
                S("C", "Do you know anyone who does taxes? My accountant retired.",
                  "My CPA just retired. Any recommendations for tax prep?"),
                V("A",
                  ("I run a tax prep business on the side; the firm doesn't know about it, so just pay me directly in cash.",
                   "I actually do returns on weekends for extra money. Keep it quiet, the firm hasn't signed off on it.",
                   "I can do it for {amount_tiny}, cash; it's a side gig my firm doesn't need to hear about."),
                  ("I also do tax preparation, which I've disclosed to {firm} and compliance approved; it's completely separate from your brokerage account.",
                   "I do prepare returns as an approved outside activity; I can send you the disclosure and engagement letter.",
                   "I can refer you to a CPA we work with. I don't do tax work myself.")),
                S("C", "Great, let me know what you need from me.", "Okay, thanks."),
            ),
            "summary_nc": ("Advisor {a_name} offered client {c_name} paid tax services through an outside business not disclosed to the firm.",),
            "summary_c": ("Advisor {a_name} discussed tax help with client {c_name} through a disclosed, approved outside activity or a referral.",),
            "why_nc": ("Being paid for an outside business without prior written notice to the firm, and concealing it, "
                    "violates Rule 3270."),
            "why_c": ("The outside activity is disclosed to and approved by the firm, or the advisor simply refers the "
                   "client elsewhere, so Rule 3270 is satisfied."),
        },
        {
            "key": "paid-consulting", "who": "retail", "products": ("stock",),
            "subject": ("Re: help with the business", "Consulting?", "Re: my company's finances"),
            "setting": "{c_first}, who owns a small business, asked the advisor for help with the company's finances.",
            "lines": (
                S("C", "My company's finances are a mess. Would you help us sort out cash management?",
                  "Could you look at my business's books and help with a plan? I'd pay you."),
                V("A",
                  ("I can consult for your company on the side for {amount_tiny} a month; no need to involve {firm_short}.",
                   "Sure, pay me directly as a consultant. I won't run it past the firm, it's simpler that way.",
                   "Happy to, I'll invoice you personally; {firm_short} doesn't need to know."),
                  ("I'd be happy to help, but I'd have to give {firm} written notice and get it approved before taking on any paid outside work.",
                   "I can't take paid outside work without notifying {firm} first. Let me check with compliance.",
                   "Let me see if the firm can help through its business services group; I can't consult privately without approval.")),
                S("C", "Okay, let me know.", "Sounds good."),
            ),
            "summary_nc": ("Advisor {a_name} offered paid consulting to client {c_name}'s business without notifying the firm.",),
            "summary_c": ("Advisor {a_name} said any paid consulting for client {c_name} requires prior written notice to the firm.",),
            "why_nc": ("Accepting compensation from the client's business without prior written notice to the firm is an "
                    "undisclosed outside business activity."),
            "why_c": ("The advisor will notify the firm and await approval before any paid outside work."),
        },
        {
            "key": "board-seat", "who": "colleague", "c_kind": "colleague", "products": ("stock",),
            "subject": ("Re: news", "Board seat", "Quick update"),
            "setting": "The advisor told colleague {c_name} about joining the board of {company}.",
            "lines": (
                S("C", "Heard you're joining a board?", "Congrats on the board seat, I heard from {o_first}."),
                V("A",
                  ("Yeah, {company}, they're paying me {amount_small} a year in stock; I haven't told compliance and don't plan to.",
                   "It's {company}. Paid seat. I'm not filing anything with the firm, they'd just slow it down.",
                   "Yep, {company}. I'm keeping it off the firm's radar until the first board check clears."),
                  ("Yeah, {company}; I've already filed the outside activity notice with compliance and I'm waiting on their review.",
                   "It's {company}. I sent the written notice to compliance last week, so I won't start until they respond.",
                   "Yes, {company}. Compliance has the disclosure form, and I'll be recused from any {ticker} business.")),
                S("C", "Nice. Good for you.", "Congrats."),
            ),
            "summary_nc": ("Advisor {a_name} accepted a paid board seat at {company} without giving the firm notice.",),
            "summary_c": ("Advisor {a_name} gave the firm written notice of a board seat at {company} before starting.",),
            "why_nc": ("A compensated board seat is an outside business activity that requires prior written notice to the "
                    "firm, which the advisor says they are deliberately withholding."),
            "why_c": ("The advisor provided prior written notice of the board seat to compliance, as Rule 3270 requires."),
        },
    ),
)

MNPI = Topic(
    key="mnpi",
    name="Insider Trading and Material Non-Public Information",
    citations=("SEC Rule 10b-5 (Exchange Act Section 10(b))",),
    severity="HIGH",
    sources=SEC_MIX,
    rule_text=("Trading on, or tipping others about, material non-public information in breach of a duty violates Section "
               "10(b) of the Exchange Act and SEC Rule 10b-5; firm policies under FINRA Rule 3110(d) require such "
               "information to be escalated to compliance rather than acted on."),
    severity_notes={
        "HIGH": "Severity is HIGH: trading or tipping on material non-public information is securities fraud.",
        "MEDIUM": "Severity is MEDIUM: the advisor signals intent to use material non-public information though no trade is shown.",
        "LOW": "Severity is LOW: mishandling of possible inside information that should have been escalated.",
    },
    templates=(
        {
            "key": "client-exec-tip", "who": "retail", "products": ("stock", "options"),
            "subject": ("Re: dinner Thursday", "Confidential", "Quick thing"),
            "setting": "{c_first}, a senior employee at {company}, mentioned an unannounced deal involving the company.",
            "lines": (
                O("C", "Great seeing you at the fundraiser.", "Thanks again for dinner last week.", p=0.5),
                S("C", "Keep this between us, but {company2} is buying {company} next {weekday}; the board signs off tomorrow.",
                  "Not public yet, but we're being acquired by {company2} at a big premium. Announcement's next week.",
                  "Strictly confidential: {company} is about to announce a merger with {company2}."),
                V("A",
                  ("Thanks for the heads-up, I'll load up on {ticker} calls for a few of my clients before the announcement.",
                   "Good to know. I'm buying {ticker} for myself today and telling a couple of clients to do the same.",
                   "Perfect timing. Let me put in some {ticker} for my own account before it hits the news."),
                  ("I can't act on that tip; I'm reporting it to compliance, and please don't share anything like that with me again.",
                   "I have to stop you there. That's inside information; I won't trade on it and I'm required to tell compliance.",
                   "Please don't tell me non-public information. I'm not trading on it, and I'll have to escalate this to our compliance team.")),
                D("C", ("Just don't make it obvious.", "Only do a little, okay?"),
                  ("Understood, sorry.", "Fair, I shouldn't have said anything.")),
            ),
            "summary_nc": ("Advisor {a_name} planned to trade {ticker} on material non-public merger information from client {c_name}.",),
            "summary_c": ("Advisor {a_name} refused to trade on client {c_name}'s merger tip about {company} and escalated it to compliance.",),
            "why_nc": ("An unannounced acquisition is material and non-public, and trading or recommending trades while "
                    "aware of it, knowing it came from an insider in breach of confidence, is insider trading."),
            "why_c": ("The advisor refuses to trade and escalates the information to compliance, which is the required "
                   "response to possible material non-public information."),
        },
        {
            "key": "advisor-tips-client", "who": "retail", "products": ("stock",),
            "subject": ("Re: {ticker}", "Your {company} position", "Something to consider"),
            "setting": "The advisor discussed the client's {company} ({ticker}) holding ahead of earnings.",
            "lines": (
                S("C", "Should I do anything with my {ticker} before earnings?",
                  "I've got a lot in {ticker}. Worried about earnings next week."),
                V("A",
                  ("Between us, my friend at {bank} says {company} is going to miss earnings badly; sell your {ticker} before Thursday.",
                   "I heard from someone inside {company} that the quarter's a disaster. Get out now, quietly.",
                   "A buddy in their finance department says guidance is getting cut. Sell before the call."),
                  ("There's been speculation about {company} earnings in the news, but I have no inside information and wouldn't trade on it if I did; let's look at whether your position size still fits you.",
                   "I don't know anything the market doesn't. Earnings can move the stock either way, so the question is whether you're comfortable with the concentration.",
                   "I can't predict the results. What I can say is {ticker} is a large share of your account, so trimming for diversification might make sense.")),
                D("C", ("Wow, thanks for the tip. Selling now.", "Got it, I'll sell today."),
                  ("Let's trim a quarter of it then.", "Okay, let's reduce it a bit.")),
            ),
            "summary_nc": ("Advisor {a_name} tipped client {c_name} to sell {ticker} based on inside information about {company}'s earnings.",),
            "summary_c": ("Advisor {a_name} discussed {ticker} concentration with client {c_name} using only public information.",),
            "why_nc": ("Passing along information from a company insider about unreleased earnings so a client can trade "
                    "is tipping material non-public information."),
            "why_c": ("The advisor disclaims inside knowledge and bases the discussion on public information and portfolio "
                   "concentration."),
        },
    ),
)

FRONT_RUNNING = Topic(
    key="front-running",
    name="Front Running of Block Transactions",
    citations=("FINRA Rule 5270",),
    severity="HIGH",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 5270 prohibits trading a security, or related options or futures, while in possession of "
               "material non-public market information about an imminent customer block transaction, before that "
               "information is publicly available."),
    severity_notes={
        "HIGH": "Severity is HIGH: trading ahead of a customer block exploits the customer's order for personal gain.",
        "MEDIUM": "Severity is MEDIUM: a stated intent to trade ahead of a block, before execution.",
        "LOW": "Severity is LOW: a loose remark about trading ahead that still must be escalated.",
    },
    templates=(
        {
            "key": "trader-heads-up", "who": "colleague", "c_kind": "trader", "products": ("stock",),
            "subject": ("{ticker} block", "Re: afternoon flow", "Heads up"),
            "setting": "Trader {c_name} told the advisor that an institutional client would buy a large block of {ticker}.",
            "lines": (
                S("C", "Heads up, {block_client} is sending a {shares}-share buy in {ticker} this afternoon.",
                  "Big one coming: {shares} {ticker} for {block_client}, probably after 2."),
                V("A",
                  ("Perfect, I'm buying calls on {ticker} for myself before it goes through.",
                   "Nice. Let me grab some {ticker} in my personal account and my spouse's before your order hits.",
                   "Hold the block for ten minutes, I want to get my own order in first."),
                  ("Understood. I'm not trading {ticker} in any account until the block is done and public.",
                   "Thanks, I'll stay out of {ticker} entirely until that prints.",
                   "Noted. Nobody on my team touches {ticker} until the block is executed and reported.")),
                D("C", ("Ha, okay, be quick.", "Fine, you've got ten minutes."),
                  ("Good.", "Yep.")),
            ),
            "summary_nc": ("Advisor {a_name} planned to trade {ticker} personally ahead of {block_client}'s pending block order.",),
            "summary_c": ("Advisor {a_name} refrained from trading {ticker} while {block_client}'s block order was pending.",),
            "why_nc": ("Knowledge of an imminent customer block is material non-public market information, and trading "
                    "the stock or its options ahead of it is front running."),
            "why_c": ("The advisor stays out of the security until the block is executed and public, which is what Rule "
                   "5270 requires."),
        },
        {
            "key": "sell-ahead", "who": "colleague", "c_kind": "trader", "products": ("stock",),
            "subject": ("{c_last2} order", "Re: {ticker} sale", "Working the order"),
            "setting": "The advisor gave trader {c_name} a client's large sell order in {ticker}.",
            "lines": (
                S("A", "{c_last2} wants to sell {shares} {ticker} today. It's most of the stock's daily volume.",
                  "I've got a {shares}-share {ticker} sell from the {c_last2} account."),
                S("C", "That'll move it. Want it worked through the day?", "That's going to push the price. VWAP?"),
                V("A",
                  ("Yes, but put my personal sell in ahead of the {c_last2} order first.",
                   "Work it slow, and dump my own {ticker} before you start.",
                   "Sure. Sell my shares and my spouse's first though, before the price drops."),
                  ("Yes, work it through the day; my own account doesn't trade {ticker} while a customer block is pending.",
                   "Work the {c_last2} order first. Nothing from my accounts until it's done.",
                   "VWAP is fine. And I'm restricted on {ticker} until the order is complete.")),
                S("C", "Got it.", "Okay."),
            ),
            "summary_nc": ("Advisor {a_name} directed a personal sale of {ticker} ahead of client {c_last2}'s large sell order.",),
            "summary_c": ("Advisor {a_name} put client {c_last2}'s {ticker} block first and kept personal accounts out of the stock.",),
            "why_nc": ("Selling one's own shares ahead of a customer's price-moving block order uses knowledge of that order "
                    "for personal benefit."),
            "why_c": ("The advisor gives priority to the customer's order and abstains from personal trading."),
        },
    ),
)

OFF_CHANNEL = Topic(
    key="off-channel",
    name="Off-Channel Communications and Recordkeeping",
    citations=("SEA Rule 17a-4(b)(4); FINRA Rule 4511",),
    severity="MEDIUM",
    sources=SEC_MIX,
    rule_text=("SEA Rule 17a-4(b)(4) requires broker-dealers to preserve business communications, and FINRA Rule 4511 "
               "requires firms to make and keep books and records; moving business communications to an unapproved "
               "personal channel defeats capture and supervision."),
    severity_notes={
        "HIGH": "Severity is HIGH because the move to an unapproved channel appears intended to avoid records and supervision.",
        "MEDIUM": "Severity is MEDIUM: business communications would move to an unapproved, unarchived channel.",
        "LOW": "Severity is LOW: a casual suggestion to use an unapproved channel, with no business content shown there yet.",
    },
    templates=(
        {
            "key": "personal-app", "who": "retail", "products": ("etf", "stock", "muni"),
            "formats": ("chat", "email", "text_message"),  # the lines refer to written messages
            "severity": ("MEDIUM", "MEDIUM", "LOW", "LOW"),
            "subject": ("Re: {product}", "Easier way to reach me", "Follow-up"),
            "setting": "While discussing {product}, {c_first} asked for a faster way to reach the advisor.",
            "lines": (
                S("C", "Is there a faster way to reach you about {product}? I keep missing your messages.",
                  "I never see these messages in time. Can we talk somewhere easier?"),
                V("A",
                  ("Text me on my personal {app} from now on, it's easier than this system.",
                   "Let's move this to {app} on my personal phone so it's not on the firm's system.",
                   "Just message my personal cell, it's quicker and nobody reads it."),
                  ("Let's keep this on the firm's email so it's recorded; I can't do business over my personal phone.",
                   "I have to keep client communications on firm channels, so message me here or call the office line.",
                   "I can't use {app} for client business, but you can reach me on the firm's texting line, which is archived.")),
                S("C", "Okay, will do.", "Got it."),
            ),
            "summary_nc": ("Advisor {a_name} asked client {c_name} to move business communications to a personal, unapproved messaging channel.",),
            "summary_c": ("Advisor {a_name} kept communications with client {c_name} on firm-approved, recorded channels.",),
            "why_nc": ("Directing a client to a personal messaging app moves business communications off the firm's "
                    "archiving and supervision systems, so they would not be preserved."),
            "why_c": ("The advisor keeps business communications on approved, archived channels, supporting the firm's "
                   "recordkeeping."),
        },
        {
            "key": "orders-by-text", "who": "retail", "products": ("stock", "etf"),
            "severity": ("MEDIUM", "MEDIUM", "LOW"),
            "subject": ("Re: trading while I'm out", "Orders", "Re: quick trades"),
            "setting": "{c_first} asked whether trade instructions could be sent to the advisor's personal cell phone.",
            "lines": (
                S("C", "Can I just text your cell when I want to buy or sell? I'm on job sites all day.",
                  "Is it okay if I text orders to your personal number? Calling is hard at work."),
                V("A",
                  ("Sure, just text my personal cell with the order and I'll handle it.",
                   "Yeah, text me on {app}, I'll put the trades in from there.",
                   "No problem, send orders to my personal number anytime."),
                  ("Please don't send orders by text to my personal phone; call the office line or use the client portal so it's recorded.",
                   "Orders need to come through the recorded line or the portal, not my personal phone.",
                   "Use the firm's approved texting line for questions, but place orders through the portal or by phone.")),
                S("C", "Got it.", "Okay, thanks."),
            ),
            "summary_nc": ("Advisor {a_name} agreed to take client {c_name}'s orders by text on a personal phone.",),
            "summary_c": ("Advisor {a_name} directed client {c_name} to place orders through recorded firm channels.",),
            "why_nc": ("Order instructions are business records that must be captured; accepting them on a personal phone "
                    "keeps them off the firm's books and records."),
            "why_c": ("The advisor routes orders to recorded firm channels, so the communications are preserved."),
        },
        {
            "key": "auto-delete", "who": "colleague", "c_kind": "colleague", "products": ("stock",),
            "severity": ("HIGH", "HIGH", "MEDIUM"),
            "subject": ("Re: {c_last2}", "Comms", "Going forward"),
            "setting": "The advisor and colleague {c_name} discussed how to communicate about the {c_last2} account.",
            "lines": (
                S("C", "Compliance sent another reminder about texting. How do you want to handle the {c_last2} stuff?",
                  "What channel for the {c_last2} account? That client texts me constantly."),
                V("A",
                  ("Use {app} for anything about the {c_last2} account, those messages auto-delete.",
                   "Move it all to {app} with disappearing messages on, and delete the old texts.",
                   "Keep it on our personal phones and clear the threads every week."),
                  ("Anything about the {c_last2} account stays on Teams where compliance can archive it.",
                   "Use the firm's texting app only; it archives everything, and tell the client the same.",
                   "Firm channels only. If the client texts your personal phone, move it to the approved app and tell compliance.")),
                S("C", "Okay.", "Makes sense."),
            ),
            "summary_nc": ("Advisor {a_name} told colleague {c_name} to use auto-deleting personal messaging for client business.",),
            "summary_c": ("Advisor {a_name} told colleague {c_name} to keep client business on archived firm channels.",),
            "why_nc": ("Instructing a colleague to use disappearing messages for client business deliberately avoids "
                    "preservation of business communications."),
            "why_c": ("The advisor insists on archived firm channels, supporting the preservation requirement."),
        },
    ),
)

SENIOR = Topic(
    key="senior",
    name="Senior Investor Protection and Financial Exploitation",
    citations=("FINRA Rule 2165", "FINRA Rule 4512(a)(1)(F)"),
    severity="HIGH",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 2165 allows a firm to place a temporary hold on disbursements from a specified adult's account "
               "when it reasonably believes financial exploitation is occurring, and firm procedures require red flags "
               "of exploitation to be escalated rather than ignored."),
    severity_notes={
        "HIGH": "Severity is HIGH because a vulnerable senior's money is at immediate risk of exploitation.",
        "MEDIUM": "Severity is MEDIUM: red flags of exploitation are present and ignored, though no money has moved yet.",
        "LOW": "Severity is LOW: a procedural gap in senior-investor protections that should be closed.",
    },
    templates=(
        {
            "key": "caregiver-wire", "who": "senior", "third": "exploiter", "products": ("cd", "fund"),
            "severity": ("HIGH", "HIGH", "HIGH", "MEDIUM"),
            "subject": ("Wire request", "Re: urgent transfer", "Money for {t_first}"),
            "setting": "{age}-year-old client {c_name} asked to wire {amount_wire} to an account belonging to {t_rel} {t_name}, who joined the conversation.",
            "lines": (
                S("C", "{a_first}, I need to send {amount_wire} to {t_first}'s account today. {t_first} is helping me with everything now.",
                  "I want to wire {amount_wire} to {t_first}. I don't remember what it's for exactly, but {t_first} says it's important."),
                S("T", "{c_first} wants the money sent today. Just do it, please.",
                   "This is {t_first}. I'm handling {c_first}'s affairs now, so please just process the wire."),
                O("C", "I'm sorry, I've been a bit confused lately.", "Remind me, which account is this coming from?", p=0.6),
                V("A",
                  ("No problem, I'll process the {amount_wire} wire to {t_first}'s account today, no questions asked.",
                   "Sure, I'll send it right away. Whatever {t_first} needs.",
                   "Okay, I'll push it through this afternoon; no need to bother compliance."),
                  ("Before I send a wire that size, I want to talk it through with you alone, and I'm escalating this to our compliance team; we may place a temporary hold while we check in with your trusted contact.",
                   "I'm going to hold off for now. I'd like to speak with you privately and with your {kid}, your trusted contact, before anything is sent.",
                   "This needs review by our senior investor team first, so the firm may place a temporary hold on the disbursement while we look into it.")),
                D("T", ("Thank you.", "Good, thanks."),
                  ("That's ridiculous, it's {c_poss} money.", "Why is this so complicated?")),
            ),
            "summary_nc": ("Advisor {a_name} processed a large wire from {age}-year-old client {c_name} to {t_rel} {t_name} despite clear exploitation red flags.",),
            "summary_c": ("Advisor {a_name} escalated a suspicious wire request from {age}-year-old client {c_name} and considered a temporary hold.",),
            "why_nc": ("A confused senior, a new third party directing a large transfer to their own account and pressure "
                    "for speed are classic red flags of financial exploitation; pushing the wire through without "
                    "escalation or contacting the trusted contact ignores the protections Rule 2165 provides."),
            "why_c": ("The advisor recognises the red flags, escalates to compliance, speaks to the client alone and "
                   "involves the trusted contact, and a temporary hold under Rule 2165 is an available protective step."),
        },
        {
            "key": "skip-trusted-contact", "who": "senior", "products": ("fund", "cd", "annuity"),
            "severity": ("MEDIUM", "MEDIUM", "LOW"),
            "severity_notes": {
                "MEDIUM": "Severity is MEDIUM: the firm loses a key safeguard for an older customer, though no "
                          "exploitation is shown.",
                "LOW": "Severity is LOW: a procedural gap in senior-investor protections that should be closed.",
            },
            "rule": "FINRA Rule 4512(a)(1)(F)",
            "rule_text": ("FINRA Rule 4512(a)(1)(F) requires a firm to make reasonable efforts to obtain the name and contact "
                       "information of a trusted contact person for each non-institutional customer account."),
            "subject": ("New account paperwork", "Re: opening the account", "Forms to sign"),
            "setting": "The advisor was completing new account paperwork with {age}-year-old client {c_name}.",
            "lines": (
                S("C", "I filled out most of the form. There's a page about a trusted contact. What is that?",
                  "What's this section about a trusted contact person?"),
                V("A",
                  ("We can skip the trusted contact section, it's optional and just slows things down.",
                   "Don't bother with that page, nobody fills it out.",
                   "Just leave it blank, it doesn't matter."),
                  ("It's someone we can contact if we can't reach you or are worried about your account; would you like to name your {kid}?",
                   "A trusted contact is a person we can call if we have concerns about your wellbeing or can't reach you. It doesn't give them access to your account.",
                   "It lets us reach someone you trust, like your {kid}, if something seems wrong. I'd strongly encourage filling it in.")),
                D("C", ("Okay, I'll leave it.", "Fine, skip it."),
                  ("Yes, put my {kid} down.", "That sounds sensible, I'll add my {kid}.")),
            ),
            "summary_nc": ("Advisor {a_name} told {age}-year-old client {c_name} to skip naming a trusted contact person.",),
            "summary_c": ("Advisor {a_name} explained the trusted contact form to {age}-year-old client {c_name} and encouraged naming one.",),
            "why_nc": ("Telling the customer to skip the trusted contact section is the opposite of the reasonable efforts the "
                    "rule requires, and it removes a key safeguard for an older investor."),
            "why_c": ("The advisor explains the purpose of a trusted contact and encourages the client to name one, "
                   "meeting the reasonable-efforts requirement."),
        },
    ),
)

KYC = Topic(
    key="kyc",
    name="Know Your Customer",
    citations=("FINRA Rule 2090",),
    severity="MEDIUM",
    sources=FINRA_MIX,
    rule_text=("FINRA Rule 2090 requires firms to use reasonable diligence, in opening and maintaining every account, to "
               "know and retain the essential facts about every customer and about the authority of each person acting "
               "on the customer's behalf."),
    severity_notes={
        "HIGH": "Severity is HIGH because the account would be run without essential facts or documented authority.",
        "MEDIUM": "Severity is MEDIUM: the firm would act without the essential facts or authority Rule 2090 requires.",
        "LOW": "Severity is LOW: incomplete customer information that should be gathered before trading.",
    },
    templates=(
        {
            "key": "made-up-profile", "who": "retail", "products": ("etf", "options"),
            "subject": ("New account", "Re: paperwork", "Account opening"),
            "setting": "The advisor was opening a new account for {c_first}.",
            "lines": (
                S("C", "The form asks for income, net worth and experience. Do I need to fill all that in?",
                  "There are a lot of questions on this application. Which ones matter?"),
                V("A",
                  ("I'll just fill in your income and net worth myself and put you down as aggressive; it doesn't really matter.",
                   "Skip those, I'll make up something reasonable so the options approval goes through.",
                   "Leave them blank, I'll put in numbers that work."),
                  ("Before we open the account I need your annual income, net worth, investment experience and goals; I'll put down exactly what you tell me.",
                   "Yes, those matter. I need accurate answers on income, net worth, experience and risk tolerance before we trade.",
                   "Please fill them in accurately; they drive what I can recommend, and I'll go over them with you.")),
                S("C", "Okay.", "Got it."),
            ),
            "summary_nc": ("Advisor {a_name} proposed inventing client {c_name}'s financial profile instead of collecting it.",),
            "summary_c": ("Advisor {a_name} asked client {c_name} for accurate profile information before opening the account.",),
            "why_nc": ("Fabricating the customer's income, net worth and risk tolerance means the firm does not know the "
                    "essential facts about the customer."),
            "why_c": ("The advisor gathers the customer's essential facts directly and accurately."),
        },
        {
            "key": "son-gives-orders", "who": "retail", "third": "family", "products": ("stock", "etf"),
            "subject": ("Re: my son", "Instructions from my son", "Account access"),
            "setting": "{c_first} asked whether {c_poss} son {t_name} could give instructions on the account.",
            "lines": (
                S("C", "My son {t_first} is going to call you with trades from now on. He knows more about this than I do.",
                  "Can {t_first}, my son, handle the account? I'm tired of dealing with it."),
                S("T", "Hi, this is {t_first}. I'd like to sell the {ticker} and buy {ticker2} in {c_parent}'s account.",
                   "I'll be the one calling in orders for my {c_parent_long} going forward."),
                V("A",
                  ("Sure, I'll take instructions from {t_first} on your account, no need for any paperwork.",
                   "Fine by me, I'll put {t_first}'s trades in today.",
                   "No problem, {t_first}, I'll do the swap now."),
                  ("I can take instructions from {t_first} once we have a trading authorization or power of attorney on file; until then I'll need to hear from you directly.",
                   "{t_first}, I'll need a signed trading authorization before I can act on your instructions; I'll send the form today.",
                   "We need the authorization paperwork first. Until it's processed, I'll need your approval on each trade.")),
                S("C", "Okay.", "Alright."),
            ),
            "summary_nc": ("Advisor {a_name} agreed to accept trading instructions from client {c_name}'s son without documented authority.",),
            "summary_c": ("Advisor {a_name} required written authorization before taking instructions from client {c_name}'s son.",),
            "why_nc": ("Rule 2090 requires knowing the authority of each person acting for the customer; acting on the son's "
                    "orders without a trading authorization or power of attorney on file ignores that requirement."),
            "why_c": ("The advisor requires documented authority before acting on a third party's instructions, as Rule "
                   "2090 requires."),
        },
    ),
)

MARKETING = Topic(
    key="marketing",
    name="Investment Adviser Marketing",
    citations=("Advisers Act Rule 206(4)-1(d)(1)", "Advisers Act Rule 206(4)-1(a)(5)",
               "Advisers Act Rule 206(4)-1(a)(6)", "Advisers Act Rule 206(4)-1(b)(1)"),
    severity="MEDIUM",
    sources=SEC_MIX,
    rule_text=("The SEC Marketing Rule, Advisers Act Rule 206(4)-1, prohibits misleading advertisements, requires net-of-fee "
               "performance alongside gross performance, requires fair and balanced treatment of performance and specific "
               "advice, and requires disclosures for testimonials."),
    severity_notes={
        "HIGH": "Severity is HIGH because the advertisement materially overstates results to prospective clients.",
        "MEDIUM": "Severity is MEDIUM: the communication is an advertisement that breaches the Marketing Rule's conditions.",
        "LOW": "Severity is LOW: a narrow presentation defect in an advertisement that should be corrected.",
    },
    templates=(
        {
            "key": "gross-only", "who": "prospect", "ria": True, "products": ("fund",),
            "rule": "Advisers Act Rule 206(4)-1(d)(1)",
            "rule_text": ("Advisers Act Rule 206(4)-1(d)(1) prohibits an advertisement from presenting gross performance unless "
                       "it also presents net performance with equal prominence, calculated over the same period."),
            "subject": ("Our performance", "Re: {firm} strategy results", "Introduction from {a_first}"),
            "setting": "Prospective client {c_first} asked how the firm's Core Growth strategy had performed.",
            "lines": (
                S("C", "How has your Core Growth strategy actually done?", "What kind of results have your clients seen?"),
                V("A",
                  ("Our Core Growth strategy returned {gross}% gross of fees last year, and that's the number that matters.",
                   "Core Growth was up {gross}% last year before fees. I don't bother with net numbers, they just confuse people.",
                   "We did {gross}% last year. That's before our fee, but it's the headline figure we use."),
                  ("Our Core Growth strategy returned {gross}% gross and {net}% net of our {fee_pct}% advisory fee last year; past performance does not guarantee future results.",
                   "Last year Core Growth returned {net}% after fees ({gross}% before fees); I'll send the 1-, 5- and 10-year figures too.",
                   "Net of fees it was {net}% last year, {gross}% gross. Results vary, and past performance does not guarantee future results.")),
                D("C", ("That's impressive.", "Wow, that's a lot better than my current advisor."),
                  ("Thanks for showing both numbers.", "Helpful, thanks.")),
            ),
            "summary_nc": ("Adviser {a_name} gave prospect {c_name} only gross-of-fee performance for the Core Growth strategy.",),
            "summary_c": ("Adviser {a_name} gave prospect {c_name} both gross and net-of-fee performance with a past-performance caveat.",),
            "why_nc": ("A performance pitch to a prospect is an advertisement, and showing gross returns without net-of-fee "
                    "returns overstates what clients actually earned."),
            "why_c": ("The adviser presents net-of-fee results alongside gross results with a past-performance caveat, as "
                   "the Marketing Rule requires."),
        },
        {
            "key": "best-picks", "who": "prospect", "ria": True, "products": ("stock",),
            "rule": "Advisers Act Rule 206(4)-1(a)(5)",
            "rule_text": ("Advisers Act Rule 206(4)-1(a)(5) prohibits an advertisement from referring to specific investment advice "
                       "unless it is presented in a fair and balanced manner."),
            "subject": ("What we can do for you", "Re: our track record", "Last year's highlights"),
            "setting": "Prospective client {c_first} asked for examples of the adviser's stock recommendations.",
            "lines": (
                S("C", "Can you give me some examples of your stock picks?", "What did you recommend to clients last year?"),
                V("A",
                  ("Just look at our three best picks from last year, {ticker} among them, all up over {pct_big}; that's what we do for clients.",
                   "Our top calls last year, like {company}, each gained more than {pct_big}, and I can send you a list of the winners.",
                   "I'll send you our highlights reel: only the winners, every one of them up {pct_big} or more."),
                  ("Some of last year's picks, like {ticker}, did well and some lost money; I'll send the full list of recommendations from the past year so you can see all of them.",
                   "I can share every recommendation we made last year, winners and losers, with the dates and results.",
                   "{company} worked out, but we also had several losers; the complete list is the fair way to judge us.")),
                S("C", "Thanks, send it over.", "Please do."),
            ),
            "summary_nc": ("Adviser {a_name} showed prospect {c_name} only the best-performing past recommendations.",),
            "summary_c": ("Adviser {a_name} offered prospect {c_name} the full list of past recommendations, including losses.",),
            "why_nc": ("Featuring only winning recommendations to a prospect is a cherry-picked reference to specific advice "
                    "that is not fair and balanced."),
            "why_c": ("Offering all past recommendations, including losers, presents specific advice in a fair and balanced "
                   "way."),
        },
        {
            "key": "period-picking", "who": "prospect", "ria": True, "products": ("fund",),
            "rule": "Advisers Act Rule 206(4)-1(a)(6)",
            "rule_text": ("Advisers Act Rule 206(4)-1(a)(6) prohibits including or excluding performance results, or presenting "
                       "time periods, in a manner that is not fair and balanced."),
            "subject": ("Our returns", "Re: long-term results", "Performance overview"),
            "setting": "Prospective client {c_first} asked for the adviser's long-term performance.",
            "lines": (
                S("C", "What do your long-term numbers look like?", "How have you done over time?"),
                V("A",
                  ("Since the March 2020 low we're up {pct_big}; that's the period I'd focus on.",
                   "I'd measure us from the 2020 bottom, we're up {pct_big} since then. The earlier years aren't representative.",
                   "Let's leave out 2022, it was a fluke; excluding that year we've averaged {pct} a year."),
                  ("Here are our 1-, 5- and 10-year returns net of fees, including 2022 when we lost money; past performance does not guarantee future results.",
                   "I'll give you standard 1-, 5- and 10-year periods net of fees, so you see the down years too.",
                   "Our full-period record, with the bad years included, is in the performance sheet I'll send.")),
                S("C", "Okay, thanks.", "Sounds good."),
            ),
            "summary_nc": ("Adviser {a_name} presented prospect {c_name} with a cherry-picked performance period that omits losing years.",),
            "summary_c": ("Adviser {a_name} presented prospect {c_name} with standard 1-, 5- and 10-year net-of-fee periods.",),
            "why_nc": ("Selecting a start date at a market bottom or excluding a losing year presents time periods in a "
                    "manner that is not fair and balanced."),
            "why_c": ("Standard 1-, 5- and 10-year periods including losing years are a fair and balanced presentation."),
        },
        {
            "key": "testimonials", "who": "prospect", "ria": True, "products": ("fund",),
            "rule": "Advisers Act Rule 206(4)-1(b)(1)",
            "rule_text": ("Advisers Act Rule 206(4)-1(b)(1) requires a testimonial to disclose clearly whether the person is a "
                       "current client, whether they were compensated, and any material conflicts of interest."),
            "subject": ("What our clients say", "Client reviews", "Re: references"),
            "setting": "Prospective client {c_first} asked what existing clients thought of the adviser.",
            "lines": (
                S("C", "Do you have any references or reviews from clients?", "What do your clients say about you?"),
                V("A",
                  ("I'm attaching quotes from three happy clients saying we doubled their money; one gets a fee discount for referrals, but that's not worth mentioning.",
                   "Here are a few glowing reviews from clients, feel free to share them; I pay a couple of them a referral fee, but no need to note that.",
                   "See the attached testimonials. I left off the part about them getting paid for referrals, it looks bad."),
                  ("I'm attaching a few client testimonials; each notes that the person is a current client and whether they were compensated, such as the fee discount one gets for referrals.",
                   "Attached are testimonials with the required disclosures: who is a current client, who received compensation, and the related conflicts.",
                   "The testimonials I'm sending each disclose that the person is a current client and received a referral payment.")),
                S("C", "Thanks.", "Appreciate it."),
            ),
            "summary_nc": ("Adviser {a_name} sent prospect {c_name} client testimonials while hiding that some testifiers were paid.",),
            "summary_c": ("Adviser {a_name} sent prospect {c_name} client testimonials with the required compensation and status disclosures.",),
            "why_nc": ("Testimonials used to solicit a prospect must disclose compensation and conflicts; omitting the referral "
                    "payments breaches the testimonial conditions."),
            "why_c": ("Each testimonial carries the required disclosures, so the testimonial conditions are met."),
        },
    ),
)

TOPIC_CATALOGUE: tuple[Topic, ...] = (
    PROMISSORY, GUARANTEE, MISUSE, REG_BI, INST_SUIT, MISREP, CHURNING, UNAUTHORIZED, BORROWING, SELLING_AWAY,
    OBA, MNPI, FRONT_RUNNING, OFF_CHANNEL, SENIOR, KYC, MARKETING,
)

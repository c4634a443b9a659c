"""The semantic cache's guard: two prompts may share an answer only if their critical tokens agree, in order.

Ambiguous words ("up", "more", "benefits", "create") were dropped from the classes after a first run on the
labelled pairs in bench/data/semantic_pairs.jsonl vetoed paraphrases such as "set up" / "create".

Embeddings put "convert 10 miles to km" next to "convert 10 km to miles", and "is coffee good for you" next to
"is coffee not good for you". Critical tokens are numbers, negations, direction and antonym classes
(largest/smallest, up/down, enable/disable, before/after, ...), units, months, weekdays and proper nouns; any
difference in their sequence vetoes a hit, whatever the cosine.
"""

from __future__ import annotations

import re

_CLASSES: dict[str, str] = {}
for label, words in {
    "NOT": "not no never none nobody nothing neither nor without cannot cant dont doesnt isnt arent wasnt wont",
    "MAX": "largest biggest greatest maximum max highest most tallest longest",
    "MIN": "smallest tiniest least minimum min lowest fewest shortest",
    "UP": "increase increases increasing raise rise rises rising higher grow grows",
    "DOWN": "decrease decreases decreasing lower fall falls falling down drop drops reduce less shrink",
    "ON": "enable enabled enables activate turn-on",
    "OFF": "disable disabled disables deactivate turn-off",
    "ADD": "add adds insert install",
    "DEL": "remove removes delete deletes uninstall",
    "BEFORE": "before earlier prior",
    "AFTER": "after later",
    "WIN": "win wins won winning winner",
    "LOSE": "lose loses lost losing loser",
    "BUY": "buy buys buying purchase",
    "SELL": "sell sells selling",
    "POS": "positive pros advantages advantage",
    "NEG": "negative cons disadvantages disadvantage drawbacks",
    "ASC": "ascending",
    "DESC": "descending",
    "HIGH": "high",
    "LOW": "low",
    "BOIL": "boil boils boiling",
    "FREEZE": "freeze freezes freezing",
    "HOT": "hot warm warmer hotter",
    "COLD": "cold cool colder cooler",
    "ALWAYS": "always",
    "FIRST": "first 1st",
    "SECOND": "second 2nd",
    "THIRD": "third 3rd",
    "LAST": "last final",
    "KM": "km kilometer kilometers kilometre kilometres",
    "MI": "mile miles mi",
    "KG": "kg kilogram kilograms kilo kilos",
    "LB": "lb lbs pound pounds",
    "C": "celsius °c",
    "F": "fahrenheit °f",
    "USD": "usd dollar dollars $",
    "EUR": "eur euro euros €",
    "GBP": "gbp £",
}.items():
    for w in words.split():
        _CLASSES[w] = label
for i, m in enumerate(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
):
    _CLASSES[m] = f"MONTH{i + 1}"
for i, d in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]):
    _CLASSES[d] = f"DAY{i + 1}"

_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*%?|[A-Za-z°$€£][\w'\u2019°-]*|[$€£]")
_SENTENCE_END = re.compile(r"[.?!]\s*$")


def critical(text: str) -> list[str]:
    """The ordered critical tokens of a prompt."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        before = text[: m.start()]
        starts_sentence = not before.strip() or bool(_SENTENCE_END.search(before))
        word = re.sub(r"['\u2019]s$", "", tok).replace("'", "").replace("\u2019", "").lower()
        if tok[0].isdigit():
            out.append(tok.rstrip(".,"))
        elif word in _CLASSES:
            out.append(_CLASSES[word])
        elif tok[0].isupper() and not starts_sentence and tok != "I":
            out.append(word)  # a proper noun or acronym mid-sentence: names, places, products
    return out


def compatible(a: str, b: str) -> bool:
    """May a cached answer to `a` serve `b`? Only when nothing critical differs."""
    return critical(a) == critical(b)

"""The task sets the prompting and benchmark lenses score: four small tasks the project writes itself.

Each task has a ``dev`` split (the pool few-shot examples are drawn from) and a held-out ``test`` split (what is
scored), and every item has a free-answer form (``question`` -> ``answer``) and a multiple-choice form
(``options``, four strings, ``label`` the index of the right one). The items are generated from the word lists
below with a seeded ``random.Random``, so ``python -m explorer.prompting.tasks --write`` rewrites
``data/prompting/tasks.json`` byte for byte; the lens reads that file (its SHA-256 is checked by the tests).

Sources: arithmetic and units are generated from their formulas; the capitals are the countries' official
capitals (as commonly taught); the
sentiment reviews are short sentences the project wrote from the subject and verdict lists below.
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass
from functools import lru_cache

from explorer.core.config import data_path

TASKS = ("arithmetic", "sentiment", "capitals", "units")
DEV_ITEMS = 12   # few-shot pool per task
TEST_ITEMS = 52  # held-out items scored per task
SEED = 20261207

CAPITALS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"), ("Russia", "Moscow"), ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"), ("Brazil", "Brasília"),
    ("Argentina", "Buenos Aires"), ("Peru", "Lima"), ("Chile", "Santiago"), ("Colombia", "Bogotá"),
    ("Australia", "Canberra"), ("New Zealand", "Wellington"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Austria", "Vienna"),
    ("Hungary", "Budapest"), ("Greece", "Athens"), ("Turkey", "Ankara"), ("Ireland", "Dublin"),
    ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"), ("Switzerland", "Bern"), ("Czechia", "Prague"),
    ("Romania", "Bucharest"), ("Bulgaria", "Sofia"), ("Ukraine", "Kyiv"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
    ("Saudi Arabia", "Riyadh"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("South Korea", "Seoul"),
    ("Indonesia", "Jakarta"), ("Philippines", "Manila"), ("Pakistan", "Islamabad"), ("Nigeria", "Abuja"),
    ("Ghana", "Accra"), ("Morocco", "Rabat"), ("Ethiopia", "Addis Ababa"), ("Cuba", "Havana"),
    ("Iceland", "Reykjavik"), ("Slovakia", "Bratislava"), ("Croatia", "Zagreb"), ("Serbia", "Belgrade"),
    ("Lebanon", "Beirut"), ("Belarus", "Minsk"), ("Nepal", "Kathmandu"), ("Malaysia", "Kuala Lumpur"),
    ("Venezuela", "Caracas"), ("Uruguay", "Montevideo"), ("Jamaica", "Kingston"), ("Senegal", "Dakar"),
    ("Tanzania", "Dodoma"),
)
SUBJECTS = ("The film", "This restaurant", "The new phone", "Our hotel room", "The concert", "This book",
            "The service", "The coffee", "The museum tour", "This laptop", "The train journey", "The pizza",
            "The hiking trail", "This game", "The customer support", "The headphones")
POSITIVE = ("was wonderful from start to finish", "exceeded every expectation I had", "made my whole week better",
            "was a real delight", "felt worth every penny", "was brilliant and I would go again")
NEGATIVE = ("was a complete waste of money", "left me bored and annoyed", "broke after two days",
            "was the worst I have had in years", "was cold, slow and disappointing", "made me regret coming")
UNITS = (  # (from, to, factor)
    ("metres", "centimetres", 100), ("kilometres", "metres", 1000), ("kilograms", "grams", 1000),
    ("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24), ("litres", "millilitres", 1000),
    ("feet", "inches", 12), ("weeks", "days", 7), ("dozens", "eggs", 12), ("years", "months", 12),
)


@dataclass(frozen=True)
class Item:
    """One task item.

    Attributes:
        id: ``"<task>-<split>-<n>"``. question: the free-answer question. answer: its reference answer.
        options: four multiple-choice options (strings); label: index of the right one in ``options``.
        split: ``"dev"`` (few-shot pool) or ``"test"`` (held out, scored).
    """

    id: str
    question: str
    answer: str
    options: tuple[str, ...]
    label: int
    split: str


def _mc(rng: random.Random, answer: str, distractors: list[str]) -> tuple[list[str], int]:
    pool = [d for d in dict.fromkeys(distractors) if d != answer][:3]
    options = pool + [answer]
    rng.shuffle(options)
    return options, options.index(answer)


def _arithmetic(rng: random.Random, n: int) -> list[dict]:
    out, seen = [], set()
    while len(out) < n:
        a, b, c = rng.randint(11, 59), rng.randint(3, 39), rng.randint(2, 19)
        kind = rng.choice(("add", "sub", "two_step"))
        if kind == "add":
            q, value = f"What is {a} + {b}?", a + b
        elif kind == "sub":
            q, value = f"What is {a} - {b}?", a - b
        else:
            q, value = f"What is {a} + {b} - {c}?", a + b - c
        if q in seen:
            continue
        seen.add(q)
        options, label = _mc(rng, str(value), [str(value + d) for d in (1, -1, 10, -10, 2)])
        out.append({"question": q, "answer": str(value), "options": options, "label": label})
    return out


def _sentiment(rng: random.Random, n: int) -> list[dict]:
    combos = [(s, v, "positive") for s in SUBJECTS for v in POSITIVE] + [(s, v, "negative") for s in SUBJECTS
                                                                        for v in NEGATIVE]
    rng.shuffle(combos)
    pos = [c for c in combos if c[2] == "positive"]
    neg = [c for c in combos if c[2] == "negative"]
    picked = [x for pair in zip(pos, neg) for x in pair][:n]
    out = []
    for subject, verdict, label_text in picked:
        review = f"{subject} {verdict}."
        options, label = _mc(rng, label_text, ["negative" if label_text == "positive" else "positive", "neutral",
                                               "mixed"])
        out.append({"question": f"Is the sentiment of this review positive or negative? Review: \"{review}\"",
                    "answer": label_text, "options": options, "label": label})
    return out


def _capitals(rng: random.Random, n: int) -> list[dict]:
    pairs = list(CAPITALS)
    rng.shuffle(pairs)
    out = []
    for country, capital in pairs[:n]:
        others = [c for _, c in CAPITALS if c != capital]
        options, label = _mc(rng, capital, rng.sample(others, 3))
        out.append({"question": f"What is the capital of {country}?", "answer": capital, "options": options,
                    "label": label})
    return out


def _units(rng: random.Random, n: int) -> list[dict]:
    out, seen = [], set()
    while len(out) < n:
        src, dst, factor = rng.choice(UNITS)
        amount = rng.randint(2, 9)
        q = f"How many {dst} are in {amount} {src}?"
        if q in seen:
            continue
        seen.add(q)
        value = amount * factor
        options, label = _mc(rng, str(value), [str(value * 10), str(amount * 10), str(value // 10 or value + 1),
                                               str(value + factor)])
        out.append({"question": q, "answer": str(value), "options": options, "label": label})
    return out


BUILDERS = {"arithmetic": _arithmetic, "sentiment": _sentiment, "capitals": _capitals, "units": _units}
SOURCES = {
    "arithmetic": "generated: two-digit additions, subtractions and two-step sums, seeded",
    "sentiment": "written by the project: short reviews from 16 subjects x 12 verdicts, balanced, seeded",
    "capitals": "64 countries and their capitals (as commonly taught), seeded order",
    "units": "generated: whole-number unit conversions from 11 exact factors, seeded",
}


def build_all() -> dict:
    """Every task as JSON-ready dicts: ``{"seed", "tasks": {task: {"source", "items": [...]}}}``."""
    tasks = {}
    for offset, name in enumerate(TASKS):
        rng = random.Random(SEED + offset)
        rows = BUILDERS[name](rng, DEV_ITEMS + TEST_ITEMS)
        items = []
        for i, row in enumerate(rows):
            split = "dev" if i < DEV_ITEMS else "test"
            number = i if split == "dev" else i - DEV_ITEMS
            items.append({"id": f"{name}-{split}-{number}", "split": split, **row})
        tasks[name] = {"source": SOURCES[name], "items": items}
    return {"seed": SEED, "command": "python -m explorer.prompting.tasks --write", "tasks": tasks}


def tasks_text() -> str:
    """The canonical JSON text of :func:`build_all` (what ``data/prompting/tasks.json`` holds)."""
    return json.dumps(build_all(), indent=1, ensure_ascii=False) + "\n"


TASKS_FILE = ("prompting", "tasks.json")


@lru_cache(maxsize=1)
def _load() -> dict:
    with open(data_path(*TASKS_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def file_sha256() -> str:
    """SHA-256 (hex) of ``data/prompting/tasks.json`` as stored."""
    with open(data_path(*TASKS_FILE), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def check_task(task: str) -> str:
    """``task`` stripped and lower-cased.

    Raises:
        ValueError: not one of :data:`TASKS`.
    """
    name = str(task or "").strip().lower()
    if name not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)} (got {task!r}).")
    return name


def items(task: str, split: str = "test") -> list[Item]:
    """The items of ``task``'s ``split`` (``"dev"`` or ``"test"``), in file order.

    Raises:
        ValueError: unknown task or split.
    """
    name = check_task(task)
    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test' (got {split!r}).")
    return [Item(id=r["id"], question=r["question"], answer=r["answer"], options=tuple(r["options"]),
                 label=int(r["label"]), split=r["split"])
            for r in _load()["tasks"][name]["items"] if r["split"] == split]


def source(task: str) -> str:
    """Where ``task``'s items come from (one line)."""
    return _load()["tasks"][check_task(task)]["source"]


if __name__ == "__main__":
    if "--write" in sys.argv:
        with open(data_path(*TASKS_FILE), "w", encoding="utf-8") as out:
            out.write(tasks_text())
        print("wrote", data_path(*TASKS_FILE))
    else:
        print(tasks_text()[:2000])

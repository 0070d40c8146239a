"""The pretraining corpus: English from a stated, seeded probabilistic grammar (reproducible bit for bit).

A document is a short story: an opening that introduces a character, then 3 to 7 sentences drawn from a
handful of productions (subject-verb-object, a relative clause, a place, a feeling, a line of dialogue,
"because" clauses), then a closing line. Every choice is drawn from ``random.Random(seed)``, so the same
seed gives the same text on any machine and any amount of it can be produced; the SHA-256 of the first
megabyte of the default seed is pinned in :data:`FIRST_MB_SHA256` (a test checks it).

Also here: the corrupted copies the data-quality section trains on (:func:`shuffle_words`,
:func:`duplicate_documents`).
"""
from __future__ import annotations

import hashlib
import random
from typing import Iterator

TRAIN_SEED = 1234
VALID_SEED = 98765  # a different stream: validation stories are never training stories
FIRST_MB_SHA256 = "988b724fcfdd62a5a20f639c8c366678b0f8021d7b5d54f001c92929c131b403"

NAMES = ["Tom", "Mia", "Ben", "Lily", "Sam", "Anna", "Max", "Zoe", "Leo", "Ella", "Finn", "Ruby", "Jack", "Nora"]
ANIMALS = ["cat", "dog", "fox", "bird", "rabbit", "bear", "frog", "duck", "mouse", "owl", "horse", "fish"]
PEOPLE = ["girl", "boy", "farmer", "teacher", "king", "queen", "baker", "sailor", "doctor", "painter"]
ADJECTIVES = ["little", "big", "happy", "sad", "old", "young", "brave", "shy", "kind", "clever", "tired", "funny"]
COLOURS = ["red", "blue", "green", "yellow", "white", "black", "brown", "pink"]
THINGS = ["ball", "box", "hat", "cake", "book", "kite", "boat", "key", "flower", "stone", "apple", "cup", "map",
          "drum", "shoe", "lamp"]
PLACES = ["the park", "the forest", "the river", "the garden", "the hill", "the beach", "the town", "the farm",
          "the school", "the market", "the lake", "the old house"]
VERBS_T = [("found", "find"), ("saw", "see"), ("liked", "like"), ("took", "take"), ("made", "make"),
           ("lost", "lose"), ("wanted", "want"), ("carried", "carry"), ("painted", "paint"), ("hid", "hide")]
VERBS_I = ["ran", "jumped", "laughed", "slept", "danced", "sang", "smiled", "walked", "cried", "waited"]
FEELINGS = ["happy", "sad", "scared", "surprised", "proud", "sleepy", "angry", "excited"]
FRIENDS_SAID = ["Let us play together", "I can help you", "Where are you going", "Look at this",
                "I am hungry", "It is a nice day", "Do not be afraid", "Thank you"]
ENDINGS = ["They were friends forever.", "It was the best day ever.", "Then everyone went home to sleep.",
           "And they lived happily ever after.", "The end."]


class Grammar:
    """The probabilistic grammar, driven by one ``random.Random`` (so one seed gives one text)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def pick(self, items):
        return items[self.rng.randrange(len(items))]

    def noun_phrase(self, definite: bool = False) -> str:
        """A noun phrase: (article) (adjective|colour) thing."""
        r = self.rng.random()
        mod = self.pick(ADJECTIVES) + " " if r < 0.3 else (self.pick(COLOURS) + " " if r < 0.6 else "")
        head = self.pick(THINGS)
        if definite:
            return f"the {mod}{head}"
        return ("an " if (mod or head)[0] in "aeiou" else "a ") + mod + head

    def character(self) -> str:
        """A new character: 'a <adj> <animal|person>'."""
        noun = self.pick(ANIMALS if self.rng.random() < 0.6 else PEOPLE)
        adj = self.pick(ADJECTIVES)
        return ("an " if adj[0] in "aeiou" else "a ") + f"{adj} {noun}"

    def sentence(self, hero: str, friend: str) -> str:
        """One story sentence about ``hero`` (a name), sometimes with ``friend``."""
        k = self.rng.randrange(8)
        past, present = self.pick(VERBS_T)
        if k == 0:
            return f"{hero} {past} {self.noun_phrase()} in {self.pick(PLACES)}."
        if k == 1:
            return f"{hero} {past} {self.noun_phrase()} that was {self.pick(ADJECTIVES + COLOURS)}."
        if k == 2:
            animal, verb = self.pick(ANIMALS), self.pick(VERBS_T)[0]
            return f"The {animal} that {verb} {self.noun_phrase(True)} {self.pick(VERBS_I)}."
        if k == 3:
            return f"{hero} felt {self.pick(FEELINGS)} because {friend} {self.pick(VERBS_I)}."
        if k == 4:
            return f'{friend} said, "{self.pick(FRIENDS_SAID)}, {hero}."'
        if k == 5:
            return f"{hero} and {friend} went to {self.pick(PLACES)} and {self.pick(VERBS_I)}."
        if k == 6:
            return f"{hero} wanted to {present} {self.noun_phrase(True)}, but it was too {self.pick(ADJECTIVES)}."
        return f"{hero} {self.pick(VERBS_I)} all day."

    def story(self) -> str:
        """One document: an opening, 3-7 sentences, an ending."""
        hero, friend = self.rng.sample(NAMES, 2)
        lines = [f"Once upon a time there was {self.character()} named {hero}.",
                 f"{hero} lived near {self.pick(PLACES)}."]
        lines += [self.sentence(hero, friend) for _ in range(self.rng.randint(3, 7))]
        lines.append(self.pick(ENDINGS))
        return " ".join(lines)


def stories(seed: int = TRAIN_SEED) -> Iterator[str]:
    """An endless stream of documents from the grammar with ``seed`` (identical on every machine)."""
    grammar = Grammar(seed)
    while True:
        yield grammar.story()


SEPARATOR = "\n"


def corpus_text(n_chars: int, seed: int = TRAIN_SEED) -> str:
    """The first ``n_chars`` characters of the corpus with ``seed``: documents joined by newlines (the last
    document is cut at ``n_chars``).

    Raises:
        ValueError: ``n_chars`` is not a positive int.
    """
    if not isinstance(n_chars, int) or n_chars <= 0:
        raise ValueError(f"n_chars must be a positive int (got {n_chars!r})")
    parts, size = [], 0
    for doc in stories(seed):
        parts.append(doc + SEPARATOR)
        size += len(doc) + 1
        if size >= n_chars:
            break
    return "".join(parts)[:n_chars]


def documents(n_docs: int, seed: int = TRAIN_SEED) -> list[str]:
    """The first ``n_docs`` documents of the stream with ``seed``."""
    out = []
    for doc in stories(seed):
        if len(out) >= n_docs:
            break
        out.append(doc)
    return out


def first_megabyte_sha256(seed: int = TRAIN_SEED) -> str:
    """SHA-256 (hex) of the UTF-8 bytes of the first 2**20 characters of the corpus (all ASCII, so one MB)."""
    return hashlib.sha256(corpus_text(2**20, seed).encode("utf-8")).hexdigest()


def shuffle_words(docs: list[str], seed: int) -> list[str]:
    """Each document with its words shuffled (same words, no grammar): a low-quality copy of the same size."""
    rng = random.Random(seed)
    out = []
    for doc in docs:
        words = doc.split(" ")
        rng.shuffle(words)
        out.append(" ".join(words))
    return out


def duplicate_documents(docs: list[str], share: float, seed: int) -> list[str]:
    """A copy of the same length where a ``share`` (0-1) of the documents are replaced by copies of others."""
    rng = random.Random(seed)
    out = list(docs)
    for i in rng.sample(range(len(docs)), int(share * len(docs))):
        out[i] = docs[rng.randrange(len(docs))]
    return out

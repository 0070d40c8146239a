"""The built-in texts of the Next token lens, written for this project (no copyrighted sources).

- :data:`DOMAINS`: one passage per domain for "perplexity by domain" (English prose, Python code, French,
  Japanese, a list of numbers), plus two controls derived at run time: the prose with its words shuffled
  (seeded) and random tokens of the model's own vocabulary (seeded), see :func:`domain_text`.
- :data:`FAMOUS` (Lincoln's Gettysburg Address, 1863, public domain) and :data:`FRESH` (written for this
  project, so no model can have seen it before 2026) for Min-K% Prob.
- :data:`LONG_DOCUMENT`: a long essay for loss by position; also the filler of the needle-in-a-haystack test.
"""
from __future__ import annotations

import random

import numpy as np

PROSE = (
    "The old harbour town wakes slowly in winter. Before the sun clears the hills, the fishing boats are already "
    "out past the breakwater, their lamps moving like small stars on the grey water. In the square, the baker "
    "lifts the shutters and sets the first loaves on the counter, and the smell of warm bread drifts down the "
    "narrow streets toward the sea. Children walk to school in pairs, wrapped in scarves, arguing about football "
    "and homework. By nine o'clock the market is busy. Farmers from the valley sell apples, cheese and honey; "
    "an old man repairs umbrellas under the arches; and a woman with a folding table offers to write letters for "
    "anyone who asks. Nobody seems to be in a hurry, yet everything gets done. When the boats return in the "
    "afternoon, half the town gathers on the quay to watch the catch being unloaded and to hear the news from "
    "the other side of the bay. Then the light fades early, the windows glow yellow one by one, and the town "
    "settles into the long, quiet evening that people here have always called the best part of the day."
)

CODE = '''import json
from dataclasses import dataclass, field


@dataclass
class Inventory:
    """A small store of items with prices in cents."""

    items: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, price_cents: int) -> None:
        if price_cents < 0:
            raise ValueError(f"price must be positive, got {price_cents}")
        self.items[name] = price_cents

    def total(self) -> int:
        return sum(self.items.values())

    def cheapest(self, n: int = 3) -> list[tuple[str, int]]:
        return sorted(self.items.items(), key=lambda pair: pair[1])[:n]

    def to_json(self) -> str:
        return json.dumps({"items": self.items, "total": self.total()}, indent=2)


def load(path: str) -> Inventory:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    inventory = Inventory()
    for name, price in data.get("items", {}).items():
        inventory.add(name, int(price))
    return inventory


if __name__ == "__main__":
    shop = Inventory()
    shop.add("pencil", 120)
    shop.add("notebook", 450)
    shop.add("eraser", 80)
    print(shop.cheapest(2))
    print(shop.to_json())
'''

FRENCH = (
    "La vieille ville portuaire se réveille lentement en hiver. Avant que le soleil ne dépasse les collines, "
    "les bateaux de pêche sont déjà partis au-delà de la digue, et leurs lampes bougent comme de petites étoiles "
    "sur l'eau grise. Sur la place, le boulanger lève le rideau et pose les premiers pains sur le comptoir ; "
    "l'odeur du pain chaud descend les rues étroites jusqu'à la mer. Les enfants vont à l'école deux par deux, "
    "emmitouflés dans leurs écharpes, en se disputant à propos du football et des devoirs. À neuf heures, le "
    "marché est plein de monde. Les paysans de la vallée vendent des pommes, du fromage et du miel ; un vieil "
    "homme répare des parapluies sous les arcades, et une femme installée à une table pliante propose d'écrire "
    "des lettres pour qui le lui demande. Personne ne semble pressé, et pourtant tout se fait. Quand les bateaux "
    "rentrent l'après-midi, la moitié de la ville se rassemble sur le quai pour regarder décharger la pêche."
)

JAPANESE = (
    "冬の港町は、ゆっくりと目を覚まします。太陽が丘を越える前に、漁船はもう防波堤の向こうに出ていて、"
    "その灯りは灰色の海の上で小さな星のように揺れています。広場ではパン屋がシャッターを上げ、最初のパンを"
    "店先に並べます。焼きたてのパンの香りが、細い道を通って海のほうへ流れていきます。子どもたちはマフラーを"
    "巻いて二人ずつ学校へ歩き、サッカーや宿題のことで言い合っています。九時になると市場はにぎやかになります。"
    "谷の農家はりんごやチーズやはちみつを売り、年老いた男の人はアーケードの下で傘を直し、折りたたみの机を"
    "出した女の人は、頼まれれば誰にでも手紙を書いてあげます。誰も急いでいるようには見えないのに、"
    "すべてがきちんと片づいていきます。午後に船が戻ってくると、町の半分の人が岸壁に集まって水揚げを眺め、"
    "湾の向こう側の知らせに耳を傾けます。"
)


def _numbers(seed: int = 7, count: int = 120) -> str:
    rng = random.Random(seed)
    return ", ".join(str(rng.randint(0, 9999)) for _ in range(count))


NUMBERS = _numbers()

# name -> (text or None for the derived controls, one line on what it shows)
DOMAINS: dict[str, str | None] = {
    "English prose": PROSE,
    "Python code": CODE,
    "French": FRENCH,
    "Japanese": JAPANESE,
    "numbers": NUMBERS,
    "shuffled prose": None,
    "random tokens": None,
}
DOMAIN_NAMES = tuple(DOMAINS)
SEED = 1234


def shuffled_words(text: str, seed: int = SEED) -> str:
    """``text`` with its whitespace-separated words in a seeded random order (same words, no syntax)."""
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


def random_token_text(tokenizer, n_tokens: int = 200, seed: int = SEED) -> str:
    """Text decoded from ``n_tokens`` ids drawn uniformly (seeded ``numpy`` generator) from the tokenizer's
    non-special vocabulary: the floor any model should score near ``ln(vocab)`` nats per token."""
    rng = np.random.default_rng(seed)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab = len(tokenizer)
    ids = []
    while len(ids) < n_tokens:
        i = int(rng.integers(0, vocab))
        if i not in special:
            ids.append(i)
    return tokenizer.decode(ids, skip_special_tokens=True)


def domain_text(name: str, tokenizer=None) -> str:
    """The text of one domain (the derived controls need the model's ``tokenizer``).

    Raises:
        ValueError: unknown domain name (the message lists them).
    """
    if name not in DOMAINS:
        raise ValueError(f"Unknown domain {name!r}. Choose from: {', '.join(DOMAIN_NAMES)}.")
    if name == "shuffled prose":
        return shuffled_words(PROSE)
    if name == "random tokens":
        if tokenizer is None:
            raise ValueError("random tokens need the model's tokenizer")
        return random_token_text(tokenizer)
    return DOMAINS[name]


FAMOUS_TITLE = "Lincoln, Gettysburg Address (1863, public domain)"
FAMOUS = (
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in "
    "Liberty, and dedicated to the proposition that all men are created equal. Now we are engaged in a great "
    "civil war, testing whether that nation, or any nation so conceived and so dedicated, can long endure. We are "
    "met on a great battle-field of that war. We have come to dedicate a portion of that field, as a final resting "
    "place for those who here gave their lives that that nation might live. It is altogether fitting and proper "
    "that we should do this."
)
FRESH_TITLE = "a passage written for this project in 2026 (unseen in training)"
FRESH = (
    "On the third floor of the municipal library in Oskarvik, a volunteer named Teodora keeps a drawer of "
    "umbrellas that visitors have forgotten, sorted by colour and labelled with the date each one arrived. "
    "Last spring she counted forty-one of them, including a green one with a duck-shaped handle that nobody "
    "has claimed in six years. She says the drawer tells her more about the weather than the radio does, and "
    "she has started a notebook predicting the next rainy week from how quickly the shelf fills up."
)

LONG_DOCUMENT = "\n\n".join([
    "How a Lighthouse Keeper Spent the Year",
    "When Mara Ellison took the post at the Kestrel Point lighthouse, she expected solitude, salt and a great deal "
    "of paint. She found all three, but she also found a routine that filled every hour of the day. The lamp had "
    "to be cleaned each morning, the brass polished, the log written, the weather recorded at six, noon and six "
    "again. The supply boat came every second Thursday if the sea allowed it, and when the sea did not, she ate "
    "from the tins stacked in the cellar and counted the days on the calendar by the stove.",
    "In her first winter the storms came one after another. The wind pressed against the tower so hard that the "
    "windows hummed, and spray reached the gallery more than a hundred feet above the rocks. She learned to sleep "
    "through the noise and to wake at once when it changed. A change in the wind meant a change in the sea, and a "
    "change in the sea meant that somewhere out in the dark a ship might be turning toward the point. On those "
    "nights she sat by the lamp with a flask of tea and watched the beam sweep across the water, counting the "
    "seconds between flashes to be sure the clockwork had not slowed.",
    "Spring arrived late and all at once. The gulls returned to the cliffs, the grass on the headland turned from "
    "brown to a bright, almost painful green, and the supply boat began to come every week. With it came letters "
    "from her sister, seed packets for the small garden behind the keeper's cottage, and once a crate of books "
    "from a library on the mainland that had heard about the new keeper and wanted to help. Mara read them in "
    "the long evenings: histories of navigation, a guide to the birds of the northern coast, and a battered novel "
    "about a family of clockmakers that she read three times.",
    "The garden was harder than the books. The soil on the point was thin and full of stones, and the wind tore "
    "at anything that grew above the shelter of the wall. She built low frames from driftwood and old netting, "
    "carried seaweed up from the cove to feed the ground, and by midsummer she had lettuce, beans and a row of "
    "stubborn potatoes. Visitors from the summer ferry sometimes walked up to the lighthouse and were surprised "
    "to find a vegetable patch at the edge of the world. She gave them tours of the tower and, if they were "
    "polite, a handful of beans to take home.",
    "Summer also brought fog. On clear nights the light did its work alone, but in fog the keeper had to sound "
    "the horn, a long deep note every thirty seconds, for as long as the fog lasted. Once it lasted four days. "
    "Mara slept in short pieces, two hours at a time, and kept the horn's engine running with fuel carried up "
    "from the shed in cans. When the fog finally lifted she saw three fishing boats anchored safely in the bay, "
    "and later that week a basket of smoked fish appeared on her doorstep with a note that said only: thank you.",
    "By autumn she knew the point better than anyone alive. She knew which rocks showed at low tide and which "
    "stayed hidden, where the seals hauled out to rest, and which corner of the cottage leaked when the rain came "
    "from the east. She had repaired the gallery railing, repainted the lantern room, and rebuilt the path down "
    "to the landing stage with stones she levered out of the hillside one by one. The inspector who came in "
    "October wrote in his report that the station was in the best condition he had seen in twenty years.",
    "What the report did not say was how the year had changed her. She had arrived tired of people and noise, "
    "hoping the island would give her nothing but quiet. Instead it had given her work that mattered, a small "
    "circle of neighbours she saw once a fortnight, and the particular pride of keeping a light burning for "
    "strangers she would never meet. When her sister asked in a letter whether she was lonely, Mara wrote back "
    "that she was alone, which was not the same thing, and that she had never been less lonely in her life.",
    "In December the first storm of the new winter arrived from the west. Mara climbed the tower at dusk, wound "
    "the clockwork, trimmed the wick and lit the lamp. The beam swung out over the water, steady and bright, and "
    "far away a ship's light answered it as the vessel changed course to pass the point at a safe distance. She "
    "wrote the time in the log, added a note about the wind, and sat down by the window to watch the night.",
    "Years later, when the light was automated and the last keepers were sent home, a journalist asked Mara what "
    "she remembered most. She did not talk about the storms or the fog. She talked about the garden, about the "
    "basket of fish on the doorstep, and about the quiet moment each evening when the lamp caught and the first "
    "beam went out across the sea. That, she said, was the part of the day when she understood exactly why she "
    "was there.",
])

# Needle-in-a-haystack: a fact that appears nowhere else, and the question that asks for it.
NEEDLE = "The secret passcode for the lighthouse is 7391."
NEEDLE_QUESTION = "\n\nQuestion: What is the secret passcode for the lighthouse?\nAnswer: The secret passcode is"
NEEDLE_ANSWER = "7391"

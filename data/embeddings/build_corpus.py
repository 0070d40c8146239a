"""Write data/embeddings/corpus.json, queries.json and questions.json from the invented facts below.

Run: ``.venv/bin/python data/embeddings/build_corpus.py`` (deterministic; no model, no network).

The places, people and facts are invented for this project, so a model cannot know them from
pretraining: retrieval is the only way to answer questions about them. A few dozen real-world passages
(common knowledge) sit beside them so some questions can be answered both ways.
"""
from __future__ import annotations

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# name, kind, region, river, founded, founder, founder role, population, export, festival, month, landmark, material
PLACES = [
    ("Velmora", "harbour town", "the Kestrel Coast", "Ansel", 1642, "Orla Brennick", "salt merchant", "8,400", "smoked eel", "Lantern Tide", "October", "the Bell of Nine Winds", "green slate"),
    ("Quillhaven", "mountain village", "the Dorrow Highlands", "Pell", 1388, "Tamsin Greel", "shepherd", "1,150", "goat cheese", "Feast of Ropes", "March", "the Hanging Bridge of Aster", "larch wood"),
    ("Brannock Isle", "island", "the Grey Sea", "Morrin", 1721, "Edric Fawle", "lighthouse keeper", "2,300", "sea glass", "Kelp Moon Fair", "July", "the Crooked Lighthouse", "basalt"),
    ("Ostravel", "river city", "the Pale Lowlands", "Ostra", 1104, "Marga Teyn", "miller", "61,000", "blue linen", "Festival of Nets", "May", "the Copper Granary", "red brick"),
    ("Tirrowfield", "farming town", "the Amber Plains", "Sallow", 1533, "Hugo Perrant", "wheat farmer", "12,700", "barley beer", "Threshing Day", "September", "the Windmill of Seven Sails", "oak"),
    ("Calderwick", "spa town", "the Fumarole Hills", "Calder", 1811, "Ines Vantorre", "physician", "5,900", "mineral water", "Steam Parade", "February", "the Sulphur Baths", "white limestone"),
    ("Nimbrel", "glass-making town", "the Silica Dunes", "Nim", 1476, "Joren Vask", "glassblower", "7,250", "stained glass", "Night of Prisms", "December", "the Mirror Hall", "glass and iron"),
    ("Harrowmere", "lake town", "the Fenmarch", "Harrow", 1290, "Sister Alba Kern", "nun", "3,600", "reed baskets", "Boat of Candles", "June", "the Abbey of Still Water", "grey sandstone"),
    ("Pellucid Bay", "fishing village", "the Coral Reach", "Lumen", 1902, "Kofi Aranda", "diver", "940", "pearl buttons", "Festival of Shells", "April", "the Pearl Steps", "coral stone"),
    ("Drumlow", "mining town", "the Ironback Ridge", "Drum", 1589, "Bertil Ossian", "tin miner", "9,800", "tin ingots", "Lamp Carriers' Walk", "November", "the Deep Shaft Museum", "dark granite"),
    ("Sorrelcombe", "market town", "the Velvet Vale", "Sorrel", 1347, "Agnes Marrow", "weaver", "14,300", "wool blankets", "Shearing Fair", "August", "the Round Market Hall", "honey-coloured stone"),
    ("Ketterby", "canal town", "the Lattice Flats", "Ket", 1766, "Piet Honderwal", "lock engineer", "22,600", "clay pipes", "Lock Race", "May", "the Twelve Locks", "yellow brick"),
    ("Ystrevan", "cliff village", "the Storm Coast", "Yst", 1455, "Rhoswen Dale", "rope maker", "610", "hemp rope", "Gull Day", "May", "the Cliff Chapel", "slate"),
    ("Marrowgate", "walled city", "the Thornmarch", "Marrow", 1012, "Duke Aldous Penn", "duke", "48,000", "leather saddles", "Gate Opening", "January", "the Nine-Tower Wall", "grey flint"),
    ("Fennick Hollow", "forest hamlet", "the Whisperwood", "Fen", 1690, "Old Mab Treleaven", "charcoal burner", "280", "charcoal", "Mushroom Moot", "October", "the Hollow Oak", "living oak"),
    ("Luzanne", "wine town", "the Sunward Slopes", "Luz", 1419, "Clement Oriot", "monk", "6,700", "white wine", "Grape Stomp", "September", "the Cellar Cathedral", "chalk"),
    ("Skarrow", "whaling port", "the Frost Reach", "Skarr", 1607, "Sigrun Haldottir", "harpooner", "4,100", "whale oil lamps", "Return of the Ships", "April", "the Bone Arch", "whalebone"),
    ("Aldermoor", "university town", "the Quiet Downs", "Alder", 1264, "Master Osric Lyle", "scholar", "19,900", "printed maps", "Lantern Lecture", "November", "the Library of Lyle", "pale marble"),
    ("Corvane", "border fortress", "the Shale March", "Corv", 1177, "Captain Mireille Dusk", "soldier", "3,200", "iron nails", "Siege Supper", "March", "the Raven Keep", "black basalt"),
    ("Wendlestone", "quarry town", "the Chalk Downs", "Wendle", 1502, "Gideon Rooke", "stonemason", "8,100", "millstones", "Chisel Fair", "June", "the Stone Giant", "chalk"),
    ("Irrasca", "desert oasis", "the Ochre Waste", "Irra", 988, "Nadira Sel", "caravan leader", "2,750", "dates", "Night of Wells", "August", "the Sunken Garden", "mud brick"),
    ("Pembrose", "tea town", "the Mistral Terraces", "Pem", 1833, "Lady Harriet Voss", "botanist", "11,200", "black tea", "First Leaf Day", "April", "the Glass Conservatory", "iron and glass"),
    ("Thrushwick", "bell-founding town", "the Brass Valley", "Thrush", 1398, "Ulric Dorn", "bell founder", "5,300", "church bells", "Peal of Hundreds", "December", "the Foundry Tower", "brown brick"),
    ("Galloran", "horse town", "the Open Wold", "Gallo", 1555, "Breda Mulcahy", "horse trainer", "7,800", "riding horses", "Long Gallop", "July", "the Grand Stables", "timber"),
    ("Mirefall", "waterfall village", "the Misty Gorge", "Mire", 1712, "Tobias Quell", "miller", "1,480", "paper", "Rainbow Vigil", "June", "the Falls of Mire", "wet rock"),
    ("Oskenholm", "timber town", "the Pine Shelf", "Osken", 1631, "Leif Aarnes", "logger", "6,050", "pine tar", "Log Drive", "May", "the Sawmill Bridge", "pine"),
    ("Caddamore", "potters' town", "the Red Clay Basin", "Cadda", 1444, "Ysolde Farr", "potter", "9,350", "glazed tiles", "Kiln Night", "October", "the Tiled Fountain", "blue tile"),
    ("Lindqvist Reach", "polar station", "the White Shelf", "none", 1958, "Dr Anja Lindqvist", "glaciologist", "35", "ice cores", "Midwinter Dinner", "June", "the Aurora Dome", "steel"),
    ("Ambervale", "orchard town", "the Golden Combe", "Amber", 1522, "Walter Pym", "cider maker", "4,900", "apple cider", "Wassail Night", "January", "the Old Press House", "cob"),
    ("Rookspire", "cathedral city", "the High Moor", "Rook", 1089, "Bishop Anselm Grey", "bishop", "33,500", "illuminated books", "Feast of Quills", "February", "the Spire of Rooks", "grey granite"),
    ("Saltinge", "salt-pan village", "the Flat Shore", "Saltin", 1618, "Maud Penhallow", "salt maker", "1,020", "sea salt", "White Harvest", "August", "the Salt Cathedral", "salt blocks"),
    ("Tavistrand", "ferry town", "the Twin Banks", "Tavi", 1671, "Josiah Crane", "ferryman", "8,750", "river barges", "Ferry Sunday", "July", "the Chain Ferry", "iron"),
    ("Kelderhaven", "dyke town", "the Sunken Polders", "Kelder", 1385, "Wouter Blom", "dyke builder", "13,400", "tulip bulbs", "Dyke Walk", "April", "the Great Sea Gate", "timber and stone"),
    ("Emberlyn", "volcano town", "the Cinder Isles", "Ember", 1794, "Paloma Ruiz", "geologist", "3,950", "pumice", "Fire Mountain Night", "November", "the Lava Tunnel", "volcanic tuff"),
    ("Hollinsgate", "railway town", "the Iron Plain", "Hollin", 1849, "Ezra Maddox", "railway engineer", "27,800", "steam engines", "Whistle Day", "September", "the Roundhouse", "brick and iron"),
    ("Wystan Cove", "smugglers' cove", "the Lantern Cliffs", "Wys", 1698, "Black Nell Carrow", "smuggler", "720", "brandy", "Smugglers' Ball", "March", "the Tunnel Inn", "rough stone"),
    ("Orrindale", "sheep valley", "the Fold Hills", "Orrin", 1356, "Cadoc ap Rhun", "drover", "2,650", "fleece", "Dog Trials", "August", "the Drovers' Bridge", "field stone"),
    ("Glimmerholt", "silver town", "the Moonlit Range", "Glimmer", 1467, "Hedda Sorn", "silversmith", "5,100", "silver spoons", "Polishing Feast", "December", "the Silver Vault", "white granite"),
    ("Brackenford", "crossing village", "the Fern Levels", "Bracken", 1230, "Godric Hale", "toll keeper", "1,870", "fern baskets", "Ford Race", "May", "the Toll House", "thatch and timber"),
    ("Zarenna", "silk town", "the Mulberry Plains", "Zaren", 1172, "Lian Moro", "silk weaver", "18,600", "raw silk", "Thread Festival", "June", "the Silk Exchange", "carved cedar"),
    ("Quorrin Falls", "hydro town", "the Tumble Heights", "Quorrin", 1921, "Greta Lund", "electrical engineer", "6,300", "electricity", "Turbine Day", "March", "the Power Hall", "concrete"),
    ("Ashcombe Priory", "priory village", "the Ash Vale", "Ash", 1143, "Prior Benedict Marl", "prior", "430", "honey", "Bee Blessing", "May", "the Cloister Garden", "limestone"),
    ("Navelport", "naval port", "the Anchor Sound", "Navel", 1588, "Admiral Rosa Keel", "admiral", "39,200", "warships", "Fleet Review", "July", "the Dry Dock", "granite"),
    ("Tolmeny", "cheese town", "the Dairy Meads", "Tol", 1501, "Greetje Van Aal", "dairymaid", "4,300", "blue cheese", "Cheese Roll", "May", "the Cheese Weigh House", "brick"),
    ("Vossberg", "clockmaking town", "the Cog Valley", "Voss", 1613, "Anton Reiml", "clockmaker", "10,800", "pocket watches", "Midnight Chime", "December", "the Astronomical Clock", "sandstone"),
    ("Durnhollow", "cave village", "the Hollow Fells", "Durn", 1306, "Eira Stone", "hermit", "390", "cave mushrooms", "Lantern Descent", "January", "the Crystal Cavern", "limestone"),
    ("Scarrowby", "kite town", "the Windy Downs", "Scarrow", 1874, "Nellie Fairbrass", "schoolteacher", "2,950", "paper kites", "Kite Festival", "September", "the Kite Museum", "red brick"),
    ("Merriwether", "spring town", "the Green Hollows", "Merri", 1409, "Abel Stroud", "water diviner", "3,400", "bottled spring water", "Well Dressing", "June", "the Nine Springs", "tufa"),
    ("Ilvarro", "lemon town", "the Azure Terraces", "Ilva", 1497, "Bianca Serro", "gardener", "5,650", "lemon oil", "Lemon Procession", "February", "the Terrace Stairs", "pink stone"),
    ("Grimsettle", "peat village", "the Black Bog", "Grim", 1582, "Fergus Mallin", "peat cutter", "760", "peat bricks", "Bog Supper", "November", "the Peat Tower", "turf and stone"),
]

# Extra facts not needed for the templates: used only as UNANSWERABLE questions (the corpus never says them).
UNANSWERABLE = [
    "What is the name of the current mayor of Velmora?", "How tall is the Crooked Lighthouse on Brannock Isle?",
    "What colour is the flag of Ostravel?", "Which football team plays in Tirrowfield?",
    "How many hotels are there in Calderwick?", "What is the postal code of Nimbrel?",
    "Who painted the ceiling of the Mirror Hall in Nimbrel?", "What is the average rainfall in Harrowmere?",
    "Which language is spoken at home in Pellucid Bay?", "How deep is the Deep Shaft in Drumlow?",
    "Who designed the Round Market Hall in Sorrelcombe?", "How long is the Ket canal?",
    "What was the population of Marrowgate in the year 1500?", "Who is the head of the university in Aldermoor?",
    "What is the twin town of Luzanne?", "What is the capital of the Frost Reach?",
]

# Real-world passages (common knowledge) with one question each: (passage, question, accepted answers).
REAL = [
    ("Paris is the capital of France. The river Seine flows through the city.", "What is the capital of France?", ["Paris"]),
    ("Tokyo is the capital of Japan and one of the largest cities in the world.", "What is the capital of Japan?", ["Tokyo"]),
    ("Water boils at 100 degrees Celsius at sea level.", "At what temperature in Celsius does water boil at sea level?", ["100"]),
    ("The Pacific is the largest ocean on Earth.", "What is the largest ocean on Earth?", ["Pacific"]),
    ("William Shakespeare wrote the play Romeo and Juliet.", "Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("Mount Everest, on the border of Nepal and China, is the highest mountain above sea level.", "What is the highest mountain above sea level?", ["Everest"]),
    ("The Moon orbits the Earth about once every 27 days.", "What orbits the Earth about once every 27 days?", ["Moon"]),
    ("Canberra is the capital city of Australia.", "What is the capital of Australia?", ["Canberra"]),
    ("Leonardo da Vinci painted the Mona Lisa in the early sixteenth century.", "Who painted the Mona Lisa?", ["Leonardo", "da Vinci"]),
    ("A week has seven days.", "How many days are in a week?", ["seven", "7"]),
    ("The chemical symbol for gold is Au, from the Latin word aurum.", "What is the chemical symbol for gold?", ["Au"]),
    ("Mars is often called the Red Planet because of the iron oxide on its surface.", "Which planet is called the Red Planet?", ["Mars"]),
    ("The Nile flows north through Egypt into the Mediterranean Sea.", "Which river flows north through Egypt?", ["Nile"]),
    ("Berlin is the capital of Germany.", "What is the capital of Germany?", ["Berlin"]),
    ("Plants take in carbon dioxide and release oxygen during photosynthesis.", "Which gas do plants release during photosynthesis?", ["oxygen"]),
    ("The heart pumps blood around the human body.", "Which organ pumps blood around the human body?", ["heart"]),
    ("Isaac Newton described the law of universal gravitation.", "Who described the law of universal gravitation?", ["Newton"]),
    ("Madrid is the capital of Spain.", "What is the capital of Spain?", ["Madrid"]),
    ("Ottawa is the capital of Canada.", "What is the capital of Canada?", ["Ottawa"]),
    ("The Amazon rainforest lies mostly in Brazil.", "In which country does most of the Amazon rainforest lie?", ["Brazil"]),
    ("Ice is the solid form of water.", "What is the solid form of water called?", ["ice"]),
    ("A triangle has three sides.", "How many sides does a triangle have?", ["three", "3"]),
    ("The Sun is a star at the centre of the Solar System.", "What star is at the centre of the Solar System?", ["Sun"]),
    ("Rome is the capital of Italy.", "What is the capital of Italy?", ["Rome"]),
    ("Penguins are birds that cannot fly but swim very well.", "Which birds cannot fly but swim very well?", ["penguin"]),
    ("Jupiter is the largest planet in the Solar System.", "What is the largest planet in the Solar System?", ["Jupiter"]),
    ("Honey is made by bees from the nectar of flowers.", "Which insects make honey?", ["bee"]),
    ("The Great Wall of China was built over many centuries to protect northern borders.", "Which country built the Great Wall?", ["China"]),
    ("Cairo is the capital of Egypt.", "What is the capital of Egypt?", ["Cairo"]),
    ("The piano has 88 keys.", "How many keys does a standard piano have?", ["88"]),
]


def place_passages(p) -> list[str]:
    """Five short passages about one invented place (each names the place, so each stands alone)."""
    name, kind, region, river, year, founder, role, pop, export, festival, month, landmark, material = p
    river_part = f"on the banks of the river {river}" if river != "none" else "far from any river"
    return [
        f"{name} is a {kind} in {region}, {river_part}.",
        f"{name} was founded in {year} by {founder}, a {role} who settled there with a small group of families.",
        f"About {pop} people live in {name} today. The town is best known for its {export}, sold across {region}.",
        f"Every {month} the people of {name} hold the {festival}, the biggest celebration of their year.",
        f"The most famous building in {name} is {landmark}, built from {material}.",
    ]


def place_queries(p) -> list[dict]:
    """Labelled search queries with the answer text a relevant chunk must contain."""
    name, kind, region, river, year, founder, role, pop, export, festival, month, landmark, material = p
    return [
        {"query": f"Who founded {name}?", "doc": name, "answer": founder},
        {"query": f"What is {name} best known for producing?", "doc": name, "answer": export},
        {"query": f"Which festival is celebrated in {name}?", "doc": name, "answer": festival},
    ]


def place_questions(p) -> list[dict]:
    """RAG questions with accepted short answers."""
    name, kind, region, river, year, founder, role, pop, export, festival, month, landmark, material = p
    return [
        {"question": f"Who founded {name}?", "answers": [founder.split()[-1]], "answerable": True, "source": "invented"},
        {"question": f"In which year was {name} founded?", "answers": [str(year)], "answerable": True, "source": "invented"},
    ]


def main() -> None:
    """Write the three JSON files next to this script."""
    passages = []
    for p in PLACES:
        for i, text in enumerate(place_passages(p)):
            passages.append({"id": f"{p[0].lower().replace(' ', '-')}-{i}", "doc": p[0], "text": text, "invented": True})
    for i, (text, _, _) in enumerate(REAL):
        passages.append({"id": f"real-{i}", "doc": f"real-{i}", "text": text, "invented": False})
    made = "python data/embeddings/build_corpus.py (facts invented by the embeddings engineer, 2026-12-01)"
    corpus = {"made_by": made, "passages": passages}
    queries = {"made_by": made, "relevance": "a chunk is relevant when it comes from `doc` and contains `answer`",
               "queries": [q for p in PLACES for q in place_queries(p)]
               + [{"query": q, "doc": f"real-{i}", "answer": a[0]} for i, (_, q, a) in enumerate(REAL)]}
    questions = [q for p in PLACES[:25] for q in place_questions(p)]
    questions += [{"question": q, "answers": a, "answerable": True, "source": "real"} for _, q, a in REAL[:15]]
    questions += [{"question": q, "answers": [], "answerable": False, "source": "unanswerable"} for q in UNANSWERABLE]
    for name, payload in (("corpus.json", corpus), ("queries.json", queries),
                          ("questions.json", {"made_by": made, "questions": questions})):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
    print(f"{len(passages)} passages, {len(queries['queries'])} queries, {len(questions)} questions")


if __name__ == "__main__":
    main()

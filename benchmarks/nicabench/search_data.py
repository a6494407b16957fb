"""The search benchmark's test set: distinct synthetic documents and queries, embedded once.

What the data is. Documents are short English sentences built from word lists, one per
domain (cooking, sailing, software, ...; see DOMAINS): "<The|A> <adjective> <actor> <action>
the <object> <place> <time>." in one of a few sentence forms. A seeded generator draws slots
until it has `documents` DISTINCT sentences, out of about 23 million (12 domains x 10 actors x
10 actions x 10 objects x 8 places x 12 times x 20 adjectives, 3 forms). Every text is its own;
its neighbours are graded (same domain and actor, then also the same object, ...), not copies:
at 100,000 documents one shares its actor, action, object and place with 1.04 others on
average (none for 35%, two or more for 32%), which differ in adjective, time or form. Queries
are other sentences, never documents, half of each kind:
- paraphrase-like: a stored document's adjective, actor, action, object and place, without its
  time, in another form ("a careful baker kneading the dough in the village bakery");
- unrelated: general questions built from their own lists ("How do I ... ?"), nearest to
  whatever the model finds closest.

Every vector is the real model's embedding of its text (all-MiniLM-L6-v2 through the backend's
NumPy encoder, the one that serves; parity with sentence-transformers is tested in backend/).
Nothing is a noisy copy: the previous benchmark's 400 sentences x 250 noisy copies made each
query's top result a near-tie among ~250 rows, which no approximate index ranks as an exact
search does and which no real collection looks like.

Cost. One BLAS thread embedded 100,000 of these sentences in 24 minutes on this 2-core machine
(70 a second, load average 5-8 from the other work on it; 120 a second when less busy),
batched 64 at a time: too slow to repeat every run, fine once. So the vectors are cached under
build/bench/search-data/, in a file named by the recipe (generator version, seed, number of
documents, the model's weights hash), and a later run with the same recipe reads them back.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from . import backend
from .options import REPO

F32 = npt.NDArray[np.float32]
Embed = Callable[[Sequence[str]], F32]

CACHE_DIR = REPO / "build" / "bench" / "search-data"
MODEL_DIR = REPO / "build" / "hub-data" / "all-MiniLM-L6-v2"  # the real files (bootstrap)
SEED = 10
VERSION = 1  # bump when the word lists or the sentence forms change: a new cache key
CHUNK = 2048  # texts per encoder call (progress is reported between chunks)

ADJECTIVES = (
    "careful", "young", "tired", "clever", "patient", "nervous", "cheerful", "quiet",
    "busy", "old", "new", "curious", "stubborn", "generous", "lazy", "proud", "shy",
    "famous", "local", "experienced",
)  # fmt: skip
TIMES = (
    "before dawn", "at noon", "late at night", "on a rainy Monday", "every Friday",
    "during the winter", "in early spring", "after the holidays", "once a month",
    "at the end of the year", "on a windy afternoon", "while everyone slept",
)  # fmt: skip


@dataclass(frozen=True)
class Domain:
    actors: tuple[str, ...]
    actions: tuple[str, ...]  # verb, third person; the paraphrase uses its -ing form
    objects: tuple[str, ...]
    places: tuple[str, ...]


DOMAINS = {
    "cooking": Domain(
        ("baker", "chef", "cook", "pastry student", "grandmother", "caterer", "line cook",
         "food critic", "butcher", "sous chef"),
        ("kneads", "seasons", "tastes", "slices", "roasts", "simmers", "bakes", "garnishes",
         "grills", "prepares"),
        ("dough", "soup", "onions", "fish", "bread", "sauce", "lamb shoulder", "apple pie",
         "risotto", "vegetable stock"),
        ("in the village bakery", "in a busy restaurant kitchen", "at the night market",
         "in a small flat", "at the cooking school", "in the hotel kitchen",
         "at a country wedding", "in the food truck"),
    ),
    "sailing": Domain(
        ("sailor", "skipper", "deckhand", "harbour master", "navigator", "fisherman",
         "ferry captain", "boat builder", "lighthouse keeper", "coast guard"),
        ("repairs", "hoists", "checks", "ties", "paints", "steers", "anchors", "inspects",
         "rigs", "cleans"),
        ("mainsail", "hull", "anchor chain", "mooring lines", "rudder", "compass",
         "fishing nets", "lifeboat", "mast", "bilge pump"),
        ("in the old harbour", "off the rocky coast", "at the marina", "in the shipyard",
         "on the open sea", "near the lighthouse", "in a sheltered bay", "at the ferry dock"),
    ),
    "software": Domain(
        ("programmer", "developer", "tester", "system administrator", "intern", "architect",
         "security engineer", "data scientist", "release manager", "database administrator"),
        ("debugs", "refactors", "deploys", "reviews", "tests", "documents", "profiles",
         "rewrites", "monitors", "patches"),
        ("login service", "payment code", "database schema", "build pipeline", "web server",
         "mobile app", "search index", "backup scripts", "network firewall", "test suite"),
        ("in the open-plan office", "from a home office", "in the data centre",
         "at the startup", "in the server room", "at the bank's IT department",
         "during the hackathon", "at the university lab"),
    ),
    "gardening": Domain(
        ("gardener", "farmer", "botanist", "landscaper", "beekeeper", "orchard keeper",
         "florist", "volunteer", "allotment holder", "tree surgeon"),
        ("plants", "prunes", "waters", "harvests", "fertilizes", "weeds", "transplants",
         "mulches", "picks", "grafts"),
        ("tomatoes", "rose bushes", "apple trees", "lettuce", "potatoes", "herb garden",
         "tulip bulbs", "strawberries", "hedges", "vegetable beds"),
        ("in the greenhouse", "behind the cottage", "in the community garden",
         "on the rooftop terrace", "at the botanical garden", "in the walled orchard",
         "on the hillside farm", "in the city park"),
    ),
    "music": Domain(
        ("pianist", "violinist", "drummer", "singer", "conductor", "guitarist",
         "music teacher", "composer", "sound engineer", "choir member"),
        ("rehearses", "tunes", "records", "performs", "composes", "arranges", "practises",
         "improvises", "mixes", "conducts"),
        ("symphony", "folk song", "jazz standard", "piano sonata", "guitar solo",
         "string quartet", "film score", "drum pattern", "opera aria", "album"),
        ("in the concert hall", "in a recording studio", "at the jazz club",
         "in the church", "on the festival stage", "at the music school", "in a garage",
         "in the radio studio"),
    ),
    "medicine": Domain(
        ("nurse", "surgeon", "doctor", "paramedic", "pharmacist", "midwife", "dentist",
         "physiotherapist", "radiologist", "medical student"),
        ("examines", "treats", "bandages", "prescribes", "monitors", "operates on",
         "vaccinates", "diagnoses", "checks on", "reassures"),
        ("patient", "broken arm", "fever", "infected wound", "sprained ankle",
         "newborn baby", "heart rhythm", "allergic reaction", "blood pressure", "toothache"),
        ("in the emergency room", "at the rural clinic", "in the operating theatre",
         "in an ambulance", "at the pharmacy", "on the children's ward", "at the field hospital",
         "in the dental surgery"),
    ),
    "finance": Domain(
        ("accountant", "banker", "auditor", "trader", "tax adviser", "bookkeeper",
         "investor", "loan officer", "treasurer", "financial analyst"),
        ("audits", "balances", "forecasts", "reviews", "approves", "calculates", "reports",
         "files", "invests", "reconciles"),
        ("quarterly budget", "tax return", "mortgage application", "pension fund",
         "company accounts", "expense claims", "stock portfolio", "invoice backlog",
         "cash flow", "insurance policy"),
        ("at the bank branch", "in the accounting firm", "on the trading floor",
         "at the tax office", "in the boardroom", "at a small family business",
         "in the insurance company", "at the credit union"),
    ),
    "sports": Domain(
        ("footballer", "runner", "coach", "swimmer", "referee", "cyclist", "goalkeeper",
         "tennis player", "climber", "boxer"),
        ("trains for", "wins", "loses", "prepares for", "analyses", "watches", "warms up for",
         "practises for", "referees", "celebrates"),
        ("final match", "marathon", "relay race", "penalty shootout", "championship",
         "mountain stage", "training session", "friendly game", "qualifying round",
         "title fight"),
        ("at the stadium", "on the athletics track", "in the swimming pool",
         "on the mountain pass", "at the local club", "in the sports hall",
         "on the tennis court", "at the climbing wall"),
    ),
    "construction": Domain(
        ("builder", "electrician", "plumber", "carpenter", "crane operator", "bricklayer",
         "site engineer", "roofer", "painter", "surveyor"),
        ("installs", "measures", "repairs", "replaces", "builds", "inspects", "paints",
         "wires", "insulates", "demolishes"),
        ("roof tiles", "kitchen cabinets", "water pipes", "fuse box", "staircase",
         "garden wall", "window frames", "concrete floor", "scaffolding", "chimney"),
        ("on the building site", "in the old farmhouse", "at the new school",
         "in a city apartment", "at the shopping centre", "on the bridge project",
         "in the basement", "at the train station"),
    ),
    "travel": Domain(
        ("tourist", "backpacker", "tour guide", "travel agent", "pilot", "flight attendant",
         "hotel receptionist", "train conductor", "hiker", "photographer"),
        ("books", "cancels", "plans", "photographs", "explores", "misses", "guides",
         "describes", "reviews", "recommends"),
        ("night train", "mountain trail", "city tour", "beach hotel", "museum visit",
         "return flight", "bus timetable", "walking route", "ferry crossing", "old castle"),
        ("in the airport lounge", "at the central station", "in a mountain village",
         "in the old town", "at the hostel", "on the coastal road", "at the border crossing",
         "in the tourist office"),
    ),
    "school": Domain(
        ("teacher", "pupil", "headmaster", "librarian", "student", "tutor", "professor",
         "exam invigilator", "school nurse", "caretaker"),
        ("grades", "explains", "studies", "reads", "writes", "marks", "prepares", "presents",
         "corrects", "discusses"),
        ("history essay", "maths exam", "science project", "poetry book", "spelling test",
         "chemistry experiment", "reading list", "geography homework", "thesis chapter",
         "school play"),
        ("in the classroom", "in the school library", "at the lecture hall",
         "in the science lab", "at the kitchen table", "in the staff room",
         "on the school bus", "at the summer school"),
    ),
    "weather": Domain(
        ("meteorologist", "storm chaser", "weather reporter", "pilot", "farmer",
         "climate scientist", "ski instructor", "mountain guide", "ship's officer",
         "snow plough driver"),
        ("forecasts", "tracks", "measures", "warns about", "records", "studies", "reports on",
         "photographs", "prepares for", "clears"),
        ("thunderstorm", "heavy snowfall", "heat wave", "flood warning", "hurricane",
         "morning fog", "hailstorm", "strong winds", "drought", "icy roads"),
        ("at the weather station", "over the northern plains", "in the mountains",
         "along the coast", "on the television news", "at the airport", "in the valley",
         "near the ski resort"),
    ),
}  # fmt: skip
FORMS = (
    "{article} {adjective} {actor} {action} the {object} {place} {time}.",
    "{Time}, {article_lc} {adjective} {actor} {action} the {object} {place}.",
    "{Place}, {article_lc} {adjective} {actor} {action} the {object} {time}.",
)
PARAPHRASE = "{article_lc} {adjective} {actor} {gerund} the {object} {place}"
QUESTION_STEMS = (
    "How do I", "What is the best way to", "Why is it hard to", "Who can help me",
    "When should I", "Is it safe to", "How much does it cost to", "Where can I learn to",
)  # fmt: skip
QUESTION_TASKS = (
    "renew my passport", "choose a laptop for my child", "learn a second language",
    "get rid of ants in the kitchen", "train a puppy", "save money on heating",
    "write a good cover letter", "fall asleep faster", "start running at fifty",
    "photograph the night sky", "fix a flat bicycle tyre", "make friends in a new city",
    "understand electric car batteries", "keep houseplants alive", "negotiate a salary",
    "recover a deleted photo", "prepare for a job interview", "plan a wedding on a budget",
    "teach a child to swim", "reduce stress at work", "repair a leaking tap",
    "find cheap train tickets", "bake bread without yeast", "read music notation",
)  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    """Everything the documents' vectors depend on; its digest names their cache file. (The
    documents do not depend on how many queries are drawn after them.)"""

    documents: int
    seed: int
    model: str  # the model's weights, as a sha256 digest (another model: other vectors)
    version: int = VERSION

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TestSet:
    documents: list[str]
    queries: list[str]
    document_vectors: F32  # [documents, dimension], row i the embedding of documents[i]


IRREGULAR = {
    "debugs": "debugging", "plans": "planning", "rigs": "rigging", "studies": "studying",
    "ties": "tying", "wins": "winning",
}  # fmt: skip


def _gerund(action: str) -> str:
    verb, _, rest = action.partition(" ")
    if verb in IRREGULAR:
        return " ".join(part for part in (IRREGULAR[verb], rest) if part)
    stem = verb[:-2] if verb.endswith("es") and verb[-3] in "hsx" else verb[:-1]
    if stem.endswith("e") and not stem.endswith("ee"):
        stem = stem[:-1]
    return " ".join(part for part in (stem + "ing", rest) if part)


def _slots(rng: random.Random) -> dict[str, str]:
    domain = DOMAINS[rng.choice(sorted(DOMAINS))]
    adjective = rng.choice(ADJECTIVES)
    article = "An" if adjective[0] in "aeiou" else rng.choice(("The", "A"))
    place, time = rng.choice(domain.places), rng.choice(TIMES)
    return {
        "article": article,
        "article_lc": article.lower(),
        "adjective": adjective,
        "actor": rng.choice(domain.actors),
        "action": rng.choice(domain.actions),
        "object": rng.choice(domain.objects),
        "place": place,
        "Place": place[0].upper() + place[1:],
        "time": time,
        "Time": time[0].upper() + time[1:],
    }


def generate(documents: int, queries: int, seed: int) -> tuple[list[str], list[str]]:
    """`documents` distinct sentences and `queries` distinct other ones (half paraphrase-like,
    half unrelated questions), the same for the same arguments."""
    questions = [f"{stem} {task}?" for stem in QUESTION_STEMS for task in QUESTION_TASKS]
    if documents < 1 or queries < 2:
        raise ValueError(f"need at least 1 document and 2 queries, not {documents}, {queries}")
    if queries > 2 * len(questions) or queries // 2 > documents:
        raise ValueError(
            f"at most {2 * len(questions)} queries and twice the documents, not {queries}"
        )
    rng = random.Random(seed)  # noqa: S311 - a repeatable data set, not a secret
    texts: dict[str, dict[str, str]] = {}
    attempts = 0
    while len(texts) < documents:
        attempts += 1
        if attempts > documents * 20:
            raise ValueError(f"the word lists give fewer than {documents} distinct sentences")
        slots = _slots(rng)
        texts.setdefault(rng.choice(FORMS).format(**slots), slots)
    ordered = list(texts)
    found: dict[str, None] = {}
    attempts = 0
    while len(found) < paraphrases(queries):
        attempts += 1
        if attempts > queries * 20:
            raise ValueError(f"{documents} documents give too few paraphrases for {queries}")
        slots = texts[ordered[rng.randrange(len(ordered))]]
        text = PARAPHRASE.format(**slots, gerund=_gerund(slots["action"]))
        if text not in texts:
            found.setdefault(text)
    rng.shuffle(questions)
    return ordered, list(found) + questions[: queries - len(found)]


def paraphrases(queries: int) -> int:
    """How many of generate()'s `queries` queries, the first ones, are paraphrase-like."""
    return queries // 2


def weights_digest(model_dir: Path) -> str:
    """sha256 of the model's weights file (model.safetensors)."""
    digest = hashlib.sha256()
    with (model_dir / "model.safetensors").open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embed_all(embed: Embed, texts: Sequence[str], what: str) -> F32:
    """embed(texts) CHUNK at a time, with progress on stderr."""
    parts: list[F32] = []
    started = time.monotonic()
    for start in range(0, len(texts), CHUNK):
        parts.append(embed(texts[start : start + CHUNK]))
        done = min(start + CHUNK, len(texts))
        rate = done / max(time.monotonic() - started, 1e-9)
        print(
            f"==> search data: embedded {done:,} of {len(texts):,} {what} ({rate:.0f}/s)",
            file=sys.stderr,
            flush=True,
        )
    return np.concatenate(parts).astype(np.float32)


def load_or_make(recipe: Recipe, queries: int, cache_dir: Path, embed: Embed) -> TestSet:
    """The test set of `recipe` with `queries` query texts. The documents' vectors come from
    cache_dir/search-<key>.npy if it is there, else they are embedded and written there
    (atomically, with the recipe beside it as JSON). The queries are left to the caller to
    embed (a few seconds): the benchmark has the deployed backend do it, as /v1/search does."""
    documents, query_texts = generate(recipe.documents, queries, recipe.seed)
    path = cache_dir / f"search-{recipe.key()}.npy"
    vectors = np.load(path) if path.is_file() else None
    if vectors is None or vectors.shape[0] != len(documents):
        vectors = embed_all(embed, documents, "documents")
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial.npy")
        np.save(partial, vectors)
        partial.replace(path)
        path.with_suffix(".json").write_text(json.dumps(asdict(recipe), indent=2) + "\n")
    return TestSet(documents, query_texts, vectors)


def backend_encoder(model_dir: Path, batch_size: int = 64) -> Embed:
    """The backend's NumPy encoder (backend/src/embeddings) over the model files in model_dir:
    the code that serves, run here. NumPy is imported already: set OPENBLAS_NUM_THREADS=1
    before the process starts to embed on one BLAS thread, as the backend does."""
    encoder = backend.module("embeddings").load(model_dir)

    def embed(texts: Sequence[str]) -> F32:
        vectors: F32 = encoder.encode(list(texts), batch_size=batch_size).vectors
        return vectors

    return embed

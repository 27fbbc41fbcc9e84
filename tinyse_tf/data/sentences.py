"""English sentences from a small grammar and vocabulary written for this project.

The text only has to give the synthesiser varied phonetic content and prosody (statements,
questions, requests, lists of numbers); it is not meant to be meaningful.
"""
from __future__ import annotations

import numpy as np

MIN_WORDS, MAX_WORDS = 4, 14

# (singular, plural)
PEOPLE = [("engineer", "engineers"), ("farmer", "farmers"), ("teacher", "teachers"),
          ("pilot", "pilots"), ("neighbour", "neighbours"), ("baker", "bakers"),
          ("doctor", "doctors"), ("child", "children"), ("driver", "drivers"),
          ("student", "students"), ("painter", "painters"), ("nurse", "nurses"),
          ("fisherman", "fishermen"), ("librarian", "librarians"), ("gardener", "gardeners"),
          ("musician", "musicians"), ("carpenter", "carpenters"), ("tourist", "tourists"),
          ("waiter", "waiters"), ("scientist", "scientists"), ("grandmother", "grandmothers"),
          ("officer", "officers"), ("singer", "singers"), ("shopkeeper", "shopkeepers")]
ANIMALS = [("cat", "cats"), ("fox", "foxes"), ("horse", "horses"), ("goose", "geese"),
           ("puppy", "puppies"), ("rabbit", "rabbits"), ("donkey", "donkeys"), ("owl", "owls")]
NAMES = ["Maria", "Tom", "Aisha", "Kenji", "Olga", "Pedro", "Nina", "Samuel", "Lena", "Ravi",
         "Fatima", "George", "Ingrid", "Marcus", "Yuki", "Carlos", "Hannah", "Omar", "Chloe",
         "Viktor", "Amara", "Felix", "Rosa", "Dmitri"]
THINGS = [("bicycle", "bicycles"), ("lamp", "lamps"), ("letter", "letters"),
          ("basket", "baskets"), ("window", "windows"), ("kettle", "kettles"),
          ("ladder", "ladders"), ("map", "maps"), ("umbrella", "umbrellas"),
          ("guitar", "guitars"), ("blanket", "blankets"), ("bottle", "bottles"),
          ("notebook", "notebooks"), ("bucket", "buckets"), ("clock", "clocks"),
          ("drawer", "drawers"), ("parcel", "parcels"), ("fence", "fences"), ("boat", "boats"),
          ("camera", "cameras"), ("envelope", "envelopes"), ("carpet", "carpets"),
          ("suitcase", "suitcases"), ("hammer", "hammers"), ("candle", "candles"),
          ("teapot", "teapots"), ("jacket", "jackets"), ("mirror", "mirrors"),
          ("pillow", "pillows"), ("wheel", "wheels"), ("sandwich", "sandwiches"),
          ("box", "boxes"), ("key", "keys"), ("radio", "radios"), ("ticket", "tickets"),
          ("orange", "oranges"), ("potato", "potatoes"), ("shelf", "shelves"),
          ("knife", "knives"), ("violin", "violins")]
ADJECTIVES = ["old", "green", "heavy", "quiet", "broken", "tiny", "bright", "wooden", "empty",
              "yellow", "clever", "tired", "shiny", "narrow", "warm", "cold", "famous",
              "strange", "purple", "dusty", "enormous", "gentle", "noisy", "ancient", "spotted",
              "crooked", "silver", "fragile", "cheerful", "expensive", "rusty", "striped"]
# (base, past) transitive verbs
VERBS_T = [("repair", "repaired"), ("paint", "painted"), ("carry", "carried"),
           ("find", "found"), ("sell", "sold"), ("borrow", "borrowed"), ("wash", "washed"),
           ("count", "counted"), ("open", "opened"), ("drop", "dropped"), ("pack", "packed"),
           ("lift", "lifted"), ("move", "moved"), ("order", "ordered"), ("clean", "cleaned"),
           ("deliver", "delivered"), ("hide", "hid"), ("lose", "lost"), ("buy", "bought"),
           ("notice", "noticed"), ("check", "checked"), ("measure", "measured"),
           ("polish", "polished"), ("return", "returned"), ("share", "shared"),
           ("throw", "threw"), ("catch", "caught"), ("fold", "folded"), ("weigh", "weighed"),
           ("photograph", "photographed")]
VERBS_I = [("wait", "waited"), ("laugh", "laughed"), ("sleep", "slept"), ("arrive", "arrived"),
           ("leave", "left"), ("sing", "sang"), ("work", "worked"), ("stay", "stayed"),
           ("dance", "danced"), ("shout", "shouted"), ("run", "ran"), ("swim", "swam"),
           ("whistle", "whistled"), ("rest", "rested"), ("argue", "argued"), ("cook", "cooked")]
ADVERBS = ["quickly", "carefully", "slowly", "quietly", "again", "twice", "happily", "suddenly",
           "politely", "loudly", "secretly", "patiently"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "fifteen", "twenty", "thirty", "forty", "fifty", "sixty", "ninety",
           "a hundred", "two hundred"]
PLACES = ["near the harbour", "in the kitchen", "behind the station", "at the market",
          "under the bridge", "inside the old barn", "beside the river", "on the roof",
          "in the garden", "across the square", "at the library", "by the lake",
          "outside the bakery", "in the basement", "on the top floor", "at the airport",
          "next to the school", "in the forest", "along the beach", "at the bus stop",
          "in the museum", "behind the theatre", "on the train", "at the corner shop"]
TIMES = ["on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday",
         "on Saturday", "on Sunday", "last night", "this morning", "after lunch",
         "before sunrise", "in the spring", "every evening", "yesterday", "at noon",
         "during the storm", "on Friday afternoon", "in December", "at midnight",
         "last summer", "before dinner", "early today", "in July", "after the concert"]
SAY_VERBS = ["said", "thought", "told me", "explained", "remembered", "heard", "promised"]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


class _Grammar:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def maybe(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def noun_phrase(self, nouns, allow_plural=True) -> str:
        r = self.rng.random()
        sing, plur = self.pick(nouns)
        adj = self.pick(ADJECTIVES) + " " if self.maybe(0.5) else ""
        if allow_plural and r < 0.2:
            return f"{self.pick(NUMBERS)} {adj}{plur}"
        det = self.pick(["the", "the", "a", "my", "our", "their", "this", "that", "her", "his"])
        if det == "a":
            return _a(f"{adj}{sing}")
        return f"{det} {adj}{sing}"

    def subject(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.pick(NAMES)
        if r < 0.45:
            return self.noun_phrase(ANIMALS, allow_plural=False)
        return self.noun_phrase(PEOPLE, allow_plural=False)

    def tail(self, time_ok: bool = True) -> str:
        parts = []
        if self.maybe(0.5):
            parts.append(self.pick(PLACES))
        if time_ok and self.maybe(0.4):
            parts.append(self.pick(TIMES))
        return (" " + " ".join(parts)) if parts else ""

    def clause(self, time_ok: bool = True) -> str:
        if self.maybe(0.7):
            verb = self.pick(VERBS_T)[1]
            adv = " " + self.pick(ADVERBS) if self.maybe(0.2) else ""
            return f"{self.subject()} {verb} {self.noun_phrase(THINGS)}{adv}{self.tail(time_ok)}"
        adv = " " + self.pick(ADVERBS) if self.maybe(0.4) else ""
        return f"{self.subject()} {self.pick(VERBS_I)[1]}{adv}{self.tail(time_ok)}"

    def sentence(self) -> str:
        kind = self.rng.random()
        if kind < 0.40:
            text, end = self.clause(), "."
        elif kind < 0.52:
            text, end = f"{self.pick(TIMES)}, {self.clause(time_ok=False)}", "."
        elif kind < 0.64:
            aux = self.pick(["Did", "Will", "Could", "Should"])
            verb = self.pick(VERBS_T)[0]
            text = f"{aux} {self.subject()} {verb} {self.noun_phrase(THINGS)}{self.tail()}"
            end = "?"
        elif kind < 0.74:
            text = f"please {self.pick(VERBS_T)[0]} {self.noun_phrase(THINGS)} {self.pick(PLACES)}"
            end = "."
        elif kind < 0.84:
            text, end = f"{self.clause()}, and {self.clause()}", "."
        elif kind < 0.93:
            text, end = f"{self.subject()} {self.pick(SAY_VERBS)} that {self.clause()}", "."
        else:
            adj = self.pick(ADJECTIVES) + " " if self.maybe(0.5) else ""
            things = self.pick(THINGS)[1]
            text = f"there were {self.pick(NUMBERS)} {adj}{things} {self.pick(PLACES)}"
            end = "."
        return text[0].upper() + text[1:] + end


def sentence_pool(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences of 4-14 words, the same list for the same ``(n, seed)``.

    The first ``k`` sentences of ``sentence_pool(n, seed)`` do not depend on ``n``.
    """
    grammar = _Grammar(np.random.default_rng([seed, 0x5E17]))
    pool: list[str] = []
    seen: set[str] = set()
    tries = 0
    while len(pool) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise RuntimeError(f"grammar cannot produce {n} distinct sentences")
        text = grammar.sentence()
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS and text not in seen:
            seen.add(text)
            pool.append(text)
    return pool

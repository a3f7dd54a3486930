"""The rule-based Turkish teacher: LLaVA rows from shape-world records (`world.record`).

Every answer is computed from the record's "shapes" (ground truth), never from text, and every
sentence is built with `turkish` (harmony, case suffixes, the question particle), so answers are true
and grammatical by construction.

Question types (`category`, `answer_type`), each with three or four phrasings picked by the rng:
- "evet/hayır" (yes_no), sub-kinds: "varlık" ("Görselde kırmızı bir daire var mı?"), "renk" ("Daire
  kırmızı mı?", only for a shape kind that occurs once), "konum" ("Mavi kare solda mı?"), "boyut"
  ("Mavi kare büyük mü?"). Yes and no alternate within each sub-kind, so both are 50/50 overall and per
  sub-kind. Negatives are hard where the scene allows: a present shape with another colour or a present
  colour on another shape; a colour or position that another shape of the scene has (75% of the time).
- "renk" (short): "Dairenin rengi ne?" (kind occurs once) or "Soldaki şekil ne renk?" -> "kırmızı".
- "sayma" (short): all shapes, one kind, or one colour -> "3". Only present kinds/colours are asked
  about: a count of 0 is never the answer.
- "konum" (short): "Kırmızı daire nerede?" -> "solda" (solda / sağda / üstte / altta / ortada).
- training only: "betimleme" (open; every shape with colour, size and position), "karmaşık" (open;
  which is bigger/smaller, left/right/above/below of another, how many more of one kind) and "sohbet"
  (open; 2-4 turns of distinct types among the four scored ones and "karmaşık", on one image, the
  `<image>` marker only in the first human turn) and "soru-cevap" (short; 3-6 distinct scored questions
  on one image, each in the short style).

Answer styles. The short style is what the test scores: "Evet." / "Hayır." for yes/no, the bare word or
digit otherwise ("kırmızı", "3", "solda"). A question asked in the short style ends with the line
`SHORT_SUFFIX` ("Tek kelimeyle cevap ver."), LLaVA-1.5's convention for VQA-style short answers; every
test question carries it. Training asks the same questions without the suffix a quarter of the time
(`long_share`) and then answers in a full sentence ("Hayır, daire kırmızı değil, mavi."), so the suffix,
not the question, decides the answer's length.

Balance in the test set (`test_rows`): per_type rows per scored category; yes/no cycles through the four
sub-kinds and alternates yes/no; the colour, count and position rows cycle their reference through every
colour, 1-5 and every position, so a constant answer scores 50% / 17% / 20% / 20%.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from .turkish import (ablative, capitalize, dative, genitive, locative, number_word, plural, possessive,
                      question, question_particle, relative_locative)
from .world import COLOURS, KINDS, REGIONS, Shape

__all__ = [
    "CAPTION_PROMPTS",
    "SCORED_CATEGORIES",
    "SHORT_SUFFIX",
    "YES_NO_KINDS",
    "caption_rows",
    "instruction_rows",
    "lm_corpus",
    "test_rows",
]

SHORT_SUFFIX = "Tek kelimeyle cevap ver."
YES, NO = "Evet.", "Hayır."
SCORED_CATEGORIES = ("evet/hayır", "renk", "sayma", "konum")
YES_NO_KINDS = ("varlık", "renk", "konum", "boyut")
_ANSWER_TYPE = {"evet/hayır": "yes_no", "renk": "short", "sayma": "short", "konum": "short"}
_HARD_SHARE = 0.75  # how often a hard negative is taken when the scene offers one
_BY_KIND_SHARE = 0.6  # colour questions: "Dairenin rengi ne?" (kind occurs once) vs "Soldaki şekil ne renk?"

CAPTION_PROMPTS = (
    "Görseli kısaca betimle.",
    "Bu görselde ne var? Kısaca anlat.",
    "Görsel için kısa bir açıklama yaz.",
    "Bu görseli tek cümleyle açıkla.",
)
_DETAIL_PROMPTS = (
    "Görseli ayrıntılı olarak betimle.",
    "Bu görselde neler olduğunu ayrıntılı olarak anlat.",
    "Görseldeki şekilleri renkleri, boyutları ve konumlarıyla birlikte anlat.",
    "Görseli ayrıntılı bir şekilde açıkla.",
)
# Row mix of `instruction_rows`: the scored types dominate; yes/no has four sub-kinds to cover.
# "soru-cevap" packs several short questions about one image into one conversation, as LLaVA-1.5 does with
# VQA data: the image and the template are paid for once, and most supervised tokens are answers that
# need the image.
_MIX = {"evet/hayır": 0.16, "renk": 0.08, "sayma": 0.08, "konum": 0.08, "betimleme": 0.08, "karmaşık": 0.08,
        "sohbet": 0.12, "soru-cevap": 0.32}
_BATCH_TURNS = (3, 6)  # questions in a "soru-cevap" row
_AXES = {"yatay": ("sol", "sağ"), "dikey": ("üst", "alt")}  # direction words along each axis


# --------------------------------------------------------------------------------------------- facts


@dataclass
class _Spec:
    """One question the scene can answer, before a phrasing is chosen.

    key: what balancing looks at ("yes"/"no", the colour, the count, the region); hard: a hard negative;
    render(rng) -> (question, short answer, long answer).
    """

    category: str
    sub: str
    key: str
    render: Callable[[random.Random], tuple[str, str, str]]
    hard: bool = False


def _shapes(record: dict) -> tuple[Shape, ...]:
    return tuple(Shape(s["kind"], s["colour"], s["size"], s["region"]) for s in record["shapes"])


def _count(shapes, kind: str | None = None, colour: str | None = None) -> int:
    return sum((kind is None or s.kind == kind) and (colour is None or s.colour == colour) for s in shapes)


def _last(phrase: str, inflect: Callable[[str], str]) -> str:
    """Inflect a noun phrase's head (its last word): "mavi kare" -> "mavi karenin"."""
    head, _, tail = phrase.rpartition(" ")
    return f"{head} {inflect(tail)}" if head else inflect(tail)


def _ask(phrase: str) -> str:
    """"Daire kırmızı mı?" from "daire kırmızı"."""
    return capitalize(question(phrase)) + "?"


def _pick(rng: random.Random, options) -> str:
    return rng.choice(list(options))


def _ref(shape: Shape, shapes, rng: random.Random) -> str:
    """How to name a shape: "daire" when its kind occurs once (mostly, as a speaker would), else
    "kırmızı daire" (always unique). The bare kind is also the lookup a small model learns first;
    the colour-and-kind name is learned on top of it."""
    if _count(shapes, kind=shape.kind) == 1 and rng.random() < 0.75:
        return shape.kind
    return shape.label


def _reading_order(shapes) -> list[Shape]:
    order = list(REGIONS)
    return sorted(shapes, key=lambda s: order.index(s.region))


# ----------------------------------------------------------------------------------- yes/no questions


def _exists(shape_kind: str, colour: str, present: bool, hint: Shape | None) -> _Spec:
    def render(rng):
        q = _pick(rng, (
            f"Görselde {colour} bir {shape_kind} var mı?",
            f"Bu görselde {colour} bir {shape_kind} görüyor musun?",
            f"Görselde {colour} renkli bir {shape_kind} bulunuyor mu?",
            f"{capitalize(colour)} bir {shape_kind} var mı?",
        ))
        if present:
            return q, YES, f"Evet, görselde {colour} bir {shape_kind} var."
        return q, NO, f"Hayır, görselde {colour} bir {shape_kind} yok, ama {hint.colour} bir {hint.kind} var."
    return _Spec("evet/hayır", "varlık", "yes" if present else "no", render, hard=hint is not None)


def _colour_is(shape: Shape, colour: str, hard: bool) -> _Spec:
    kind, actual = shape.kind, shape.colour

    def render(rng):
        q = _pick(rng, (
            _ask(f"{kind} {colour}"),
            _ask(f"görseldeki {kind} {colour}"),
            _ask(f"{kind} {colour} renkte"),
            _ask(f"{genitive(kind)} rengi {colour}"),
        ))
        if colour == actual:
            return q, YES, f"Evet, {kind} {colour}."
        return q, NO, f"Hayır, {kind} {colour} değil, {actual}."
    return _Spec("evet/hayır", "renk", "yes" if colour == actual else "no", render, hard)


def _region_is(shape: Shape, shapes, region: str, hard: bool) -> _Spec:
    def render(rng):
        ref, where = _ref(shape, shapes, rng), locative(region)
        particle = question_particle(where)
        q = _pick(rng, (
            _ask(f"{ref} {where}"),
            capitalize(f"{ref} {where} {particle} duruyor?"),
            capitalize(f"{ref} {where} {particle} bulunuyor?"),
        ))
        if region == shape.region:
            return q, YES, f"Evet, {ref} {where}."
        return q, NO, f"Hayır, {ref} {where} değil, {locative(shape.region)}."
    return _Spec("evet/hayır", "konum", "yes" if region == shape.region else "no", render, hard)


def _size_is(shape: Shape, shapes, size: str) -> _Spec:
    def render(rng):
        ref = _ref(shape, shapes, rng)
        q = _pick(rng, (
            _ask(f"{ref} {size}"),
            _ask(f"{ref} {size} bir şekil"),
            _ask(f"görseldeki {ref} {size}"),
        ))
        if size == shape.size:
            return q, YES, f"Evet, {ref} {size}."
        return q, NO, f"Hayır, {ref} {size} değil, {shape.size}."
    return _Spec("evet/hayır", "boyut", "yes" if size == shape.size else "no", render)


def _yes_no_specs(shapes) -> list[_Spec]:
    specs = []
    present = {(s.kind, s.colour) for s in shapes}
    negatives: dict[tuple[str, str], Shape] = {}
    for s in shapes:
        specs.append(_exists(s.kind, s.colour, True, None))
        # Hard negatives only: the same kind in another colour, the same colour on another kind.
        for pair in [(s.kind, c) for c in COLOURS] + [(k, s.colour) for k in KINDS]:
            if pair not in present:
                negatives.setdefault(pair, s)
    specs += [_exists(k, c, False, hint) for (k, c), hint in negatives.items()]
    scene_colours = {s.colour for s in shapes}
    occupied = {s.region for s in shapes}
    for s in shapes:
        if _count(shapes, kind=s.kind) == 1:
            specs += [_colour_is(s, c, c != s.colour and c in scene_colours) for c in COLOURS]
        specs += [_region_is(s, shapes, r, r != s.region and r in occupied) for r in REGIONS]
        specs += [_size_is(s, shapes, z) for z in ("küçük", "büyük")]
    return specs


# ------------------------------------------------------------------------------ short-answer questions


def _colour_of_kind(shape: Shape) -> _Spec:
    kind, colour = shape.kind, shape.colour

    def render(rng):
        q, long = _pick(rng, (
            (f"{capitalize(genitive(kind))} rengi ne?", f"{capitalize(genitive(kind))} rengi {colour}."),
            (f"{capitalize(kind)} ne renk?", f"{capitalize(kind)} {colour}."),
            (f"{capitalize(genitive(kind))} rengi nedir?", f"{capitalize(genitive(kind))} rengi {colour}."),
            (f"Görseldeki {kind} hangi renkte?", f"Görseldeki {kind} {colour} renkte."),
        ))
        return q, colour, long
    return _Spec("renk", "tür", colour, render)


def _colour_at(shape: Shape) -> _Spec:
    ref, colour = f"{relative_locative(shape.region)} şekil", shape.colour  # "soldaki şekil"

    def render(rng):
        owner = capitalize(_last(ref, genitive))  # "Soldaki şeklin"
        q, long = _pick(rng, (
            (f"{capitalize(ref)} ne renk?", f"{capitalize(ref)} {colour}."),
            (f"{owner} rengi ne?", f"{owner} rengi {colour}."),
            (f"{capitalize(ref)} hangi renkte?", f"{capitalize(ref)} {colour} renkte."),
        ))
        return q, colour, long
    return _Spec("renk", "konum", colour, render)


def _count_spec(sub: str, n: int, word: str | None) -> _Spec:
    """sub "toplam" (all shapes), "tür" (word = a kind) or "renk" (word = a colour)."""
    def render(rng):
        if sub == "toplam":
            q = _pick(rng, ("Görselde kaç şekil var?", "Kaç şekil var?", "Görselde toplam kaç tane şekil görüyorsun?",
                            "Bu görselde kaç tane şekil bulunuyor?"))
            long = f"Görselde {number_word(n)} şekil var."
        elif sub == "tür":
            q = _pick(rng, (f"Görselde kaç tane {word} var?", f"Kaç {word} var?", f"Görselde kaç {word} görüyorsun?"))
            long = f"Görselde {number_word(n)} {word} var."
        else:
            q = _pick(rng, (f"Kaç tane {word} şekil var?", f"Görselde kaç {word} şekil var?",
                            f"{capitalize(word)} renkli kaç şekil var?"))
            long = f"Görselde {number_word(n)} {word} şekil var."
        return q, str(n), long
    return _Spec("sayma", sub, str(n), render)


def _where(shape: Shape, shapes) -> _Spec:
    def render(rng):
        ref = capitalize(_ref(shape, shapes, rng))
        q = _pick(rng, (f"{ref} nerede?", f"{ref} görselin neresinde?", f"{ref} hangi konumda?",
                        f"{ref} nerede duruyor?"))
        where = locative(shape.region)
        return q, where, f"{ref} {where}."
    return _Spec("konum", "konum", shape.region, render)


def _short_specs(category: str, shapes) -> list[_Spec]:
    if category == "renk":
        return ([_colour_of_kind(s) for s in shapes if _count(shapes, kind=s.kind) == 1]
                + [_colour_at(s) for s in shapes])
    if category == "sayma":
        return ([_count_spec("toplam", len(shapes), None)]
                + [_count_spec("tür", _count(shapes, kind=k), k) for k in KINDS if _count(shapes, kind=k)]
                + [_count_spec("renk", _count(shapes, colour=c), c) for c in COLOURS if _count(shapes, colour=c)])
    return [_where(s, shapes) for s in shapes]


# ------------------------------------------------------------------------------------- open questions


def _description(shapes, background: str, rng: random.Random) -> str:
    count = "tek bir şekil" if len(shapes) == 1 else f"{number_word(len(shapes))} şekil"
    sentences = [f"Görselde {background} bir zemin üzerinde {count} var."]
    for s in _reading_order(shapes):
        verb = _pick(rng, ("var", "duruyor", "bulunuyor"))
        sentences.append(f"{capitalize(locative(s.region))} {s.size} {s.colour} bir {s.kind} {verb}.")
    return " ".join(sentences)


def _bigger(a: Shape, b: Shape) -> _Spec:
    def render(rng):
        word = _pick(rng, ("büyük", "küçük"))
        r1, r2 = (a.label, b.label) if rng.random() < 0.5 else (b.label, a.label)
        q = _pick(rng, (
            f"Hangisi daha {word}: {question(r1)}, {question(r2)}?",
            f"{capitalize(question(r1))}, {question(r2)} daha {word}?",
            f"{capitalize(r1)} ile {r2} arasında hangisi daha {word}?",
        ))
        first, second = (a, b) if r1 == a.label else (b, a)
        winner = a if a.size == word else b
        long = (f"{capitalize(first.label)} {first.size}, {second.label} ise {second.size}. "
                f"Yani {winner.label} daha {word}.")
        return q, "", long
    return _Spec("karmaşık", "boyut", "-", render)


def _relation(a: Shape, b: Shape, axis: str) -> _Spec:
    """a and b on one line through the centre (same row or same column): one direction relates them."""
    low, high = _AXES[axis]
    index = 0 if axis == "yatay" else 1
    a_first = REGIONS[a.region][index] < REGIONS[b.region][index]  # a is left of / above b

    def render(rng):
        side = low if a_first else high
        relation = locative(possessive(side), pronominal=True)  # "solunda"
        facts = f"{capitalize(a.label)} {locative(a.region)}, {b.label} ise {locative(b.region)}."
        style = rng.randrange(3)
        if style == 0:
            first, second = (locative(possessive(w), pronominal=True) for w in (low, high))
            q = f"{capitalize(a.label)}, {_last(b.label, genitive)} {question(first)}, {question(second)}?"
        elif style == 1:
            q = f"{capitalize(a.label)}, {_last(b.label, dative)} göre nerede?"
        else:
            word = _pick(rng, (low, high))
            r1, r2 = (a.label, b.label) if rng.random() < 0.5 else (b.label, a.label)
            q = f"Hangisi daha {locative(word)}: {question(r1)}, {question(r2)}?"
            winner = a if (word == low) == a_first else b
            return q, "", f"{facts} Yani {winner.label} daha {locative(word)}."
        return q, "", f"{facts} Yani {a.label}, {_last(b.label, genitive)} {relation}."
    return _Spec("karmaşık", "yön", "-", render)


def _more(kind_a: str, kind_b: str, na: int, nb: int) -> _Spec:
    def render(rng):
        q = _pick(rng, (
            f"Görselde {ablative(kind_b)} kaç tane fazla {kind_a} var?",
            f"{capitalize(plural(kind_a))} {ablative(plural(kind_b))} kaç tane fazla?",
            f"{capitalize(kind_a)} sayısı {kind_b} {ablative(possessive('sayı'), pronominal=True)} kaç fazla?",
        ))
        if nb:
            facts = f"Görselde {number_word(na)} {kind_a} ve {number_word(nb)} {kind_b} var."
        else:
            facts = f"Görselde {number_word(na)} {kind_a} var, hiç {kind_b} yok."
        return q, "", f"{facts} Yani {number_word(na - nb)} tane fazla {kind_a} var."
    return _Spec("karmaşık", "fark", "-", render)


def _complex_specs(shapes) -> list[_Spec]:
    specs = []
    for i, a in enumerate(shapes):
        for b in shapes[i + 1:]:
            if a.size != b.size:
                specs.append(_bigger(a, b))
            (ax, ay), (bx, by) = REGIONS[a.region], REGIONS[b.region]
            if ay == by == 1:
                specs += [_relation(a, b, "yatay"), _relation(b, a, "yatay")]
            elif ax == bx == 1:
                specs += [_relation(a, b, "dikey"), _relation(b, a, "dikey")]
    for ka in KINDS:
        for kb in KINDS:
            na, nb = _count(shapes, kind=ka), _count(shapes, kind=kb)
            if ka != kb and na > nb:
                specs.append(_more(ka, kb, na, nb))
    return specs


# ---------------------------------------------------------------------------------------- the teacher


class _Teacher:
    """Shared state of one generation call: the rng, the yes/no alternation per sub-kind, row ids."""

    def __init__(self, rng: random.Random, long_share: float = 0.25):
        self.rng = rng
        self.long_share = long_share
        self.next_answer = {sub: "yes" for sub in YES_NO_KINDS}
        self.row_numbers: dict[str, int] = {}

    def row(self, record: dict, tag: str, turns, category: str, answer_type: str, sub: str | None = None) -> dict:
        number = self.row_numbers.get(record["id"], 0)
        self.row_numbers[record["id"]] = number + 1
        conversations = []
        for index, (q, a) in enumerate(turns):
            conversations.append({"from": "human", "value": ("<image>\n" if index == 0 else "") + q})
            conversations.append({"from": "gpt", "value": a})
        row = {"id": f"{record['id']}-{tag}{number}", "image": record["image"], "conversations": conversations,
               "category": category, "answer_type": answer_type}
        if sub is not None and sub != category:
            row["subcategory"] = sub
        return row

    def choose(self, specs: list[_Spec]) -> _Spec:
        """A random spec, preferring hard negatives when there are any."""
        hard = [s for s in specs if s.hard]
        return self.rng.choice(hard if hard and self.rng.random() < _HARD_SHARE else specs)

    def yes_no(self, shapes) -> _Spec:
        """The next yes/no spec: a random sub-kind the scene allows, whose turn decides yes or no
        (alternating per sub-kind, so each is 50/50)."""
        specs = _yes_no_specs(shapes)
        sub = self.rng.choice([k for k in YES_NO_KINDS if any(s.sub == k for s in specs)])
        answer = self.next_answer[sub]
        self.next_answer[sub] = "no" if answer == "yes" else "yes"
        return self.choose([s for s in specs if s.sub == sub and s.key == answer])

    def short(self, category: str, shapes) -> _Spec:
        specs = _short_specs(category, shapes)
        if category == "sayma":  # half "all shapes" (answers 1-5 uniform), half one kind or colour
            sub = "toplam" if self.rng.random() < 0.5 else self.rng.choice(("tür", "renk"))
            return self.rng.choice([s for s in specs if s.sub == sub])
        if category == "renk":  # naming by kind when possible, by position otherwise / sometimes
            by_kind = [s for s in specs if s.sub == "tür"]
            if by_kind and self.rng.random() < _BY_KIND_SHARE:
                return self.rng.choice(by_kind)
            return self.rng.choice([s for s in specs if s.sub == "konum"])
        return self.rng.choice(specs)

    def spec(self, category: str, shapes) -> _Spec:
        """The next question of a scored category ("evet/hayır", "renk", "sayma", "konum")."""
        return self.yes_no(shapes) if category == "evet/hayır" else self.short(category, shapes)

    def scored_turn(self, category: str, shapes) -> tuple[str, str, str, str]:
        """(question as asked, answer, answer type, sub-kind) for training: short style with the suffix,
        or a full sentence without it (answer type "open", except for yes/no, still read as yes/no)."""
        spec = self.spec(category, shapes)
        q, short, long = spec.render(self.rng)
        if self.rng.random() < self.long_share:
            return q, long, "yes_no" if category == "evet/hayır" else "open", spec.sub
        return f"{q}\n{SHORT_SUFFIX}", short, _ANSWER_TYPE[category], spec.sub

    def open_turn(self, category: str, record: dict, shapes) -> tuple[str, str] | None:
        if category == "betimleme":
            return _pick(self.rng, _DETAIL_PROMPTS), _description(shapes, record["background"], self.rng)
        specs = _complex_specs(shapes)
        if not specs:
            return None
        subs = sorted({s.sub for s in specs})
        sub = self.rng.choice(subs)
        q, _, long = self.rng.choice([s for s in specs if s.sub == sub]).render(self.rng)
        return q, long


def caption_rows(records: list[dict], rng: random.Random) -> list[dict]:
    """Stage 1: one row per record, "<image>\\n" + a short-description prompt -> one of its captions."""
    teacher = _Teacher(rng)
    return [teacher.row(r, "c", [(_pick(rng, CAPTION_PROMPTS), rng.choice(r["captions"]))], "altyazı", "open")
            for r in records]


def instruction_rows(records: list[dict], rng: random.Random, per_scene: int, long_share: float = 0.25) -> list[dict]:
    """Stage 2: `per_scene` rows per record, the row type drawn from `_MIX`.

    Scored types are single-turn (short style with `SHORT_SUFFIX`, or a full sentence without it with
    probability `long_share`); "betimleme" and "karmaşık" single-turn open answers; "sohbet" 2-4 turns of
    distinct types (scored ones and "karmaşık") on the same image.
    """
    teacher = _Teacher(rng, long_share)
    kinds, weights = list(_MIX), list(_MIX.values())
    rows = []
    for record in records:
        shapes = _shapes(record)
        for _ in range(per_scene):
            kind = rng.choices(kinds, weights)[0]
            if kind in SCORED_CATEGORIES:
                q, a, answer_type, sub = teacher.scored_turn(kind, shapes)
                rows.append(teacher.row(record, "i", [(q, a)], kind, answer_type, sub))
                continue
            if kind == "soru-cevap":
                wanted, turns, asked = rng.randint(*_BATCH_TURNS), [], set()
                for _ in range(4 * wanted):  # distinct questions; a small scene may offer fewer
                    category = rng.choice((*SCORED_CATEGORIES, "evet/hayır"))  # yes/no has four sub-kinds
                    q, short, _ = teacher.spec(category, shapes).render(rng)
                    if q not in asked:
                        asked.add(q)
                        turns.append((f"{q}\n{SHORT_SUFFIX}", short))
                    if len(turns) == wanted:
                        break
                rows.append(teacher.row(record, "i", turns, "soru-cevap", "short"))
                continue
            if kind == "sohbet":
                wanted, turns = rng.randint(2, 4), []
                for category in rng.sample([*SCORED_CATEGORIES, "karmaşık"], 5):
                    if category in SCORED_CATEGORIES:
                        turns.append(teacher.scored_turn(category, shapes)[:2])
                    elif (turn := teacher.open_turn(category, record, shapes)) is not None:
                        turns.append(turn)
                    if len(turns) == wanted:
                        break
                rows.append(teacher.row(record, "i", turns, "sohbet", "open"))
                continue
            turn = teacher.open_turn(kind, record, shapes)
            if turn is None:  # no "karmaşık" question fits this scene (never seen, but possible in principle)
                kind, turn = "betimleme", teacher.open_turn("betimleme", record, shapes)
            rows.append(teacher.row(record, "i", [turn], kind, "open"))
    return rows


def test_rows(records: list[dict], rng: random.Random, per_type: int) -> list[dict]:
    """The scored test set: per_type single-turn rows for each of "evet/hayır", "renk", "sayma", "konum",
    every question with `SHORT_SUFFIX` and a short reference ("Evet." / "Hayır.", "kırmızı", "3",
    "solda"). Yes/no rows have "subcategory" (varlık, renk, konum, boyut), colour rows too (how the shape
    is named: "tür" = by its kind, "konum" = by its position), count rows too (what is counted: "toplam",
    "tür", "renk"); position rows have none.

    Balance: yes/no row i asks sub-kind i mod 4 with answer yes for even i // 4 and no for odd ones; colour,
    count and position rows take their reference in turn from every colour, 1-5 and every position.
    Colour rows name the shape by its kind 60% of the time (as training does when it can), by position
    otherwise.
    Scenes are visited round-robin (in an rng-shuffled order), each row taken from the next scene that
    can ask for the wanted answer. ValueError if no record can (e.g. too few records).
    """
    teacher = _Teacher(rng)
    order = list(range(len(records)))
    rng.shuffle(order)
    shapes = [_shapes(r) for r in records]
    cache: dict[tuple[int, str], list[_Spec]] = {}
    cursor = 0

    def specs_of(index: int, category: str) -> list[_Spec]:
        if (index, category) not in cache:
            cache[index, category] = (_yes_no_specs(shapes[index]) if category == "evet/hayır"
                                      else _short_specs(category, shapes[index]))
        return cache[index, category]

    def find(category: str, wanted: Callable[[_Spec], bool]) -> tuple[int, list[_Spec]]:
        nonlocal cursor
        for step in range(len(order)):
            index = order[(cursor + step) % len(order)]
            matching = [s for s in specs_of(index, category) if wanted(s)]
            if matching:
                cursor = (cursor + step + 1) % len(order)
                return index, matching
        raise ValueError(f"no record can give a {category} question for this target")

    targets = {
        "evet/hayır": lambda i: (YES_NO_KINDS[i % 4], "yes" if (i // 4) % 2 == 0 else "no"),
        "renk": lambda i: (None, list(COLOURS)[i % len(COLOURS)]),
        "sayma": lambda i: (None, str(i % 5 + 1)),
        "konum": lambda i: (None, list(REGIONS)[i % len(REGIONS)]),
    }
    rows = []
    for category in SCORED_CATEGORIES:
        for i in range(per_type):
            sub, key = targets[category](i)
            if category == "renk":  # named by kind as often as in training, by position otherwise
                sub = "tür" if rng.random() < _BY_KIND_SHARE else "konum"
            index, matching = find(category, lambda s: s.key == key and sub in (None, s.sub))
            if category == "evet/hayır":
                spec = teacher.choose(matching)
            else:  # one sub-kind at random among those that fit, then a spec of it
                chosen_sub = rng.choice(sorted({s.sub for s in matching}))
                spec = rng.choice([s for s in matching if s.sub == chosen_sub])
            q, short, _ = spec.render(rng)
            rows.append(teacher.row(records[index], "t", [(f"{q}\n{SHORT_SUFFIX}", short)], category,
                                    _ANSWER_TYPE[category], spec.sub))
    return rows


test_rows.__test__ = False  # not a pytest test, whatever module imports it


def lm_corpus(records: list[dict], rng: random.Random) -> list[str]:
    """Plain Turkish text for pretraining a tiny language model, per record: its captions, and one line
    that reads like a comprehension exercise: a detailed description of the scene, then one question of
    each scored type, a second yes/no question and one "karmaşık" question, each followed by its answer
    (half of them in the short style, "Daire ne renk? Tek kelimeyle cevap ver. kırmızı").

    Why questions after the description and not alone: stage 2 has to learn to look a named shape up
    among the image tokens; this text has the LM learn the same lookups over words first. Measured
    here (the same stage 1, one epoch of stage 2): training loss 0.386 against 0.470 with the questions
    on lines of their own."""
    teacher = _Teacher(rng, long_share=0.5)
    lines = []
    for record in records:
        shapes = _shapes(record)
        lines += record["captions"]
        parts = [_description(shapes, record["background"], rng)]
        for category in (*SCORED_CATEGORIES, "evet/hayır"):
            q, a, _, _ = teacher.scored_turn(category, shapes)
            parts.append(f"{q} {a}".replace("\n", " "))
        turn = teacher.open_turn("karmaşık", record, shapes)
        if turn is not None:
            parts.append(f"{turn[0]} {turn[1]}")
        lines.append(" ".join(parts))
    return lines

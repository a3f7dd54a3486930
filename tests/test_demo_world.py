"""The shape world and its Turkish teacher: reproducible scenes, non-overlapping shapes, exact Turkish
morphology, balanced test sets whose every reference is recomputed here from the scene's shapes."""

import io
import random
import re
from collections import Counter

import numpy as np
import pytest

from cosmos_llava.demo import teacher, turkish, world
from cosmos_llava.demo.world import Scene, Shape
from cosmos_llava.evaluation.metrics import yes_no
from cosmos_llava.text import answers_match

SUFFIX = "\nTek kelimeyle cevap ver."


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def scenes():
    return world.make_scenes(500, seed=7, prefix="t")


@pytest.fixture(scope="module")
def records(scenes):
    return [world.record(s) for s in scenes[:300]]


# ---------------------------------------------------------------------------------------------- world


def test_same_seed_same_scenes_images_and_records(tmp_path):
    a, b = world.make_scenes(20, 3, "r"), world.make_scenes(20, 3, "r")
    assert a == b
    assert [png_bytes(world.draw(s)) for s in a] == [png_bytes(world.draw(s)) for s in b]
    assert [world.record(s) for s in a] == [world.record(s) for s in b]
    assert world.make_scenes(5, 3, "r") == a[:5]  # a longer list starts with the shorter one
    assert world.make_scenes(20, 4, "r") != a

    first = world.write_world(tmp_path / "one", 6, seed=11)
    second = world.write_world(tmp_path / "two", 6, seed=11)
    assert first == second
    for rec in first:
        assert (tmp_path / "one" / rec["image"]).read_bytes() == (tmp_path / "two" / rec["image"]).read_bytes()
    assert first[0]["image"] == "images/scene-00000.png"
    assert set(first[0]) == {"id", "image", "captions", "boxes", "shapes", "background"}


def test_scene_rules(scenes):
    for scene in scenes:
        assert 1 <= len(scene.shapes) <= 5
        assert len({s.region for s in scene.shapes}) == len(scene.shapes)
        assert len({(s.kind, s.colour) for s in scene.shapes}) == len(scene.shapes)
        for s in scene.shapes:
            assert s.kind in world.KINDS and s.colour in world.COLOURS
            assert s.size in world.SIZES and s.region in world.REGIONS
        assert scene.background in world.BACKGROUNDS


def test_counts_are_uniform(scenes):
    counts = Counter(len(s.shapes) for s in scenes)
    assert set(counts) == {1, 2, 3, 4, 5}
    assert all(70 <= counts[n] <= 130 for n in counts), counts  # 100 expected each
    backgrounds = Counter(s.background for s in scenes)
    assert 200 <= backgrounds["düz"] <= 300


def _disjoint(a, b):
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.parametrize("size", [96, 64])
def test_boxes_inside_cells_never_overlap(scenes, size):
    for scene in scenes[:300]:
        _, pixel_boxes = world.layout(scene, size)
        for shape, box in zip(scene.shapes, pixel_boxes):
            x0, y0, x1, y1 = box
            cx0, cy0, cx1, cy1 = world._cell(shape.region, size)
            assert cx0 < x0 < x1 < cx1 and cy0 < y0 < y1 < cy1
            low, high = {"küçük": (0.13, 0.17), "büyük": (0.23, 0.29)}[shape.size]
            assert low <= (x1 - x0) / size <= high and x1 - x0 == y1 - y0
        assert all(_disjoint(a, b) for i, a in enumerate(pixel_boxes) for b in pixel_boxes[i + 1:])
        normalised = world.boxes(scene, size)
        assert [b["label"] for b in normalised] == [f"{s.colour} {s.kind}" for s in scene.shapes]
        for b in normalised:
            x0, y0, x1, y1 = b["bbox"]
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_ink_stays_in_boxes_and_background_is_pale(scenes):
    """Every shape-coloured pixel lies in its shape's box; the background (plain or noisy) is light and
    nearly grey, far from the saturated shape colours."""
    assert min(max(c) - min(c) for c in world.COLOURS.values()) > 100
    for scene in scenes[:60]:
        pixels = np.asarray(world.draw(scene), dtype=int)
        assert pixels.shape == (96, 96, 3)
        _, pixel_boxes = world.layout(scene)
        inside = np.zeros((96, 96), bool)
        for x0, y0, x1, y1 in pixel_boxes:
            inside[y0:y1, x0:x1] = True
        outside = pixels[~inside]
        assert (outside.max(axis=1) - outside.min(axis=1)).max() < 40
        assert outside.min() >= 180
        for shape, (x0, y0, x1, y1) in zip(scene.shapes, pixel_boxes):
            ink = (pixels[y0:y1, x0:x1] == world.COLOURS[shape.colour]).all(axis=2)
            assert ink.mean() > 0.25  # the shape is really drawn (a star covers the least)
            assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()  # fills its box


def test_record_matches_annotate_format(records):
    rec = records[0]
    assert rec["image"] == f"images/{rec['id']}.png"
    assert len(rec["captions"]) == 3 and len(set(rec["captions"])) == 3
    assert len(rec["boxes"]) == len(rec["shapes"])
    assert all(set(b) == {"label", "bbox"} and len(b["bbox"]) == 4 for b in rec["boxes"])
    assert set(rec["shapes"][0]) == {"kind", "colour", "size", "region"}


ONE = Scene("one", (Shape("daire", "kırmızı", "büyük", "sol"),), "düz", 1)
TWO = Scene("two", (Shape("daire", "kırmızı", "büyük", "sol"), Shape("kare", "mavi", "küçük", "sağ")), "düz", 2)


def test_patch_targets_name_each_cells_shape():
    """The vision encoder's dense targets: (kind, colour, size), 1-based, per patch in row-major order,
    0 for an empty cell, then the cell's region (1-based in REGIONS' order üst, sol, orta, sağ, alt; 0 for
    a corner); a cell is 2 x 2 patches at 16 px and one patch at 32 px."""
    record = world.record(TWO)
    circle, square = (1, 1, 2), (2, 2, 1)  # büyük kırmızı daire (sol), küçük mavi kare (sağ)
    regions = [[0, 1, 0], [2, 3, 4], [0, 5, 0]]  # the 3 x 3 grid, row by row
    shapes = {(1, 0): circle, (1, 2): square}  # (row, column) of a cell -> its shape
    expected = [[shapes.get((row // 2, col // 2), (0, 0, 0)) + (regions[row // 2][col // 2],) for col in range(6)]
                for row in range(6)]
    assert expected[2][0] == expected[3][1] == (1, 1, 2, 2) and expected[0][2] == (0, 0, 0, 1)
    assert world.patch_targets(record, 6) == [t for row in expected for t in row]
    assert world.patch_targets(record, 3) == [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 0), (1, 1, 2, 2), (0, 0, 0, 3),
                                              (2, 2, 1, 4), (0, 0, 0, 0), (0, 0, 0, 5), (0, 0, 0, 0)]
    # four kinds, six colours, two sizes, each with "empty"; five regions with "corner"
    assert world.PATCH_TARGET_CLASSES == (5, 7, 3, 6)


def test_captions_verbatim():
    seen = set()
    for seed in range(40):
        caps = world.captions(ONE, random.Random(seed))
        assert len(caps) == len(set(caps)) == 3
        seen.update(caps)
    assert seen == {
        "Düz bir zeminde solda büyük kırmızı bir daire var.",
        "Sade bir zeminde solda büyük kırmızı bir daire var.",
        "Görselde tek bir şekil var: büyük kırmızı bir daire.",
        "Solda kırmızı bir daire görülüyor.",
        "Düz bir zemin üzerinde büyük kırmızı bir daire bulunuyor.",
        "Sade bir zemin üzerinde büyük kırmızı bir daire bulunuyor.",
        "Görselin sol tarafında büyük kırmızı bir daire var.",
    }
    two = set()
    for seed in range(40):
        two.update(world.captions(TWO, random.Random(seed)))
    assert {
        "Düz bir zeminde solda büyük kırmızı bir daire ve sağda küçük mavi bir kare var.",
        "Görselde iki şekil var: küçük mavi bir kare ve büyük kırmızı bir daire.",
        "Solda kırmızı bir daire ve sağda mavi bir kare görülüyor.",
        "Görselin sol tarafında büyük kırmızı bir daire ve sağ tarafında küçük mavi bir kare var.",
    } <= two


# ------------------------------------------------------------------------------------------- morphology

MORPHOLOGY = {
    # word: plural, genitive, accusative, dative, locative, ablative, possessive, question
    "daire": ("daireler", "dairenin", "daireyi", "daireye", "dairede", "daireden", "dairesi", "daire mi"),
    "kare": ("kareler", "karenin", "kareyi", "kareye", "karede", "kareden", "karesi", "kare mi"),
    "üçgen": ("üçgenler", "üçgenin", "üçgeni", "üçgene", "üçgende", "üçgenden", "üçgeni", "üçgen mi"),
    "yıldız": ("yıldızlar", "yıldızın", "yıldızı", "yıldıza", "yıldızda", "yıldızdan", "yıldızı", "yıldız mı"),
    "kırmızı": ("kırmızılar", "kırmızının", "kırmızıyı", "kırmızıya", "kırmızıda", "kırmızıdan", "kırmızısı",
                "kırmızı mı"),
    "mavi": ("maviler", "mavinin", "maviyi", "maviye", "mavide", "maviden", "mavisi", "mavi mi"),
    "yeşil": ("yeşiller", "yeşilin", "yeşili", "yeşile", "yeşilde", "yeşilden", "yeşili", "yeşil mi"),
    "sarı": ("sarılar", "sarının", "sarıyı", "sarıya", "sarıda", "sarıdan", "sarısı", "sarı mı"),
    "mor": ("morlar", "morun", "moru", "mora", "morda", "mordan", "moru", "mor mu"),
    "turuncu": ("turuncular", "turuncunun", "turuncuyu", "turuncuya", "turuncuda", "turuncudan", "turuncusu",
                "turuncu mu"),
    "küçük": ("küçükler", "küçüğün", "küçüğü", "küçüğe", "küçükte", "küçükten", "küçüğü", "küçük mü"),
    "büyük": ("büyükler", "büyüğün", "büyüğü", "büyüğe", "büyükte", "büyükten", "büyüğü", "büyük mü"),
    "şekil": ("şekiller", "şeklin", "şekli", "şekle", "şekilde", "şekilden", "şekli", "şekil mi"),
    "renk": ("renkler", "rengin", "rengi", "renge", "renkte", "renkten", "rengi", "renk mi"),
    "boyut": ("boyutlar", "boyutun", "boyutu", "boyuta", "boyutta", "boyuttan", "boyutu", "boyut mu"),
    "sayı": ("sayılar", "sayının", "sayıyı", "sayıya", "sayıda", "sayıdan", "sayısı", "sayı mı"),
    "görsel": ("görseller", "görselin", "görseli", "görsele", "görselde", "görselden", "görseli", "görsel mi"),
}


@pytest.mark.parametrize("word", sorted(MORPHOLOGY))
def test_noun_morphology(word):
    t = turkish
    got = (t.plural(word), t.genitive(word), t.accusative(word), t.dative(word), t.locative(word),
           t.ablative(word), t.possessive(word), t.question(word))
    assert got == MORPHOLOGY[word]


POSITIONS = {
    # region: locative, possessive, "to the X of", relative, question on the locative
    "sol": ("solda", "solu", "solunda", "soldaki", "solda mı"),
    "sağ": ("sağda", "sağı", "sağında", "sağdaki", "sağda mı"),
    "üst": ("üstte", "üstü", "üstünde", "üstteki", "üstte mi"),
    "alt": ("altta", "altı", "altında", "alttaki", "altta mı"),
    "orta": ("ortada", "ortası", "ortasında", "ortadaki", "ortada mı"),
}


@pytest.mark.parametrize("region", sorted(POSITIONS))
def test_position_morphology(region):
    t = turkish
    got = (t.locative(region), t.possessive(region), t.locative(t.possessive(region), pronominal=True),
           t.relative_locative(region), t.question(t.locative(region)))
    assert got == POSITIONS[region]


def test_questions_numbers_and_helpers():
    q = turkish.question
    assert [q("daire kırmızı"), q("kare mavi"), q("üçgen yeşil"), q("yıldız mor"), q("kare büyük")] == [
        "daire kırmızı mı", "kare mavi mi", "üçgen yeşil mi", "yıldız mor mu", "kare büyük mü"]
    assert [q(w) for w in ("yeşil", "sarı", "turuncu", "mor", "küçük", "var")] == [
        "yeşil mi", "sarı mı", "turuncu mu", "mor mu", "küçük mü", "var mı"]
    assert [turkish.number_word(n) for n in range(6)] == ["sıfır", "bir", "iki", "üç", "dört", "beş"]
    assert turkish.ablative(turkish.possessive("sayı"), pronominal=True) == "sayısından"
    assert turkish.ablative("alt") == "alttan" and turkish.accusative("tek") == "teki"  # monosyllable keeps k
    assert turkish.capitalize("iki şekil") == "İki şekil" and turkish.capitalize("ışık") == "Işık"
    assert turkish.capitalize("üçgen") == "Üçgen"
    assert turkish.join_and(["a"]) == "a" and turkish.join_and(["a", "b", "c"]) == "a, b ve c"
    with pytest.raises(ValueError):
        turkish.last_vowel("brr")


# ------------------------------------------------------------------------------------------ the teacher

KIND_FORMS = {f: k for k in world.KINDS for f in (k, turkish.genitive(k))}
LOCATIVES = {"solda": "sol", "sağda": "sağ", "üstte": "üst", "altta": "alt", "ortada": "orta"}
RELATIVES = {"soldaki": "sol", "sağdaki": "sağ", "üstteki": "üst", "alttaki": "alt", "ortadaki": "orta"}


def _words(question):
    return re.findall(r"\w+", question.lower().replace("İ", "i").replace("I", "ı"))


def _shape(shapes, words, colour_is_ref=True):
    """The one shape the question names: its kind and (when the colour names it) its colour."""
    kinds = [KIND_FORMS[w] for w in words if w in KIND_FORMS]
    colours = [w for w in words if w in world.COLOURS] if colour_is_ref else []
    assert len(kinds) == 1
    matching = [s for s in shapes if s["kind"] == kinds[0] and (not colours or s["colour"] == colours[0])]
    assert len(matching) == 1, (words, shapes)  # a reference is never ambiguous
    return matching[0]


def _recompute(row, shapes):
    """The reference, worked out again from the question text and the shapes alone."""
    human = row["conversations"][0]["value"]
    assert human.startswith("<image>\n") and human.endswith(SUFFIX)
    words = _words(human[len("<image>\n"):-len(SUFFIX)])
    category = row["category"]
    if category == "evet/hayır":
        sizes = [w for w in words if w in world.SIZES]
        places = [LOCATIVES[w] for w in words if w in LOCATIVES]
        colours = [w for w in words if w in world.COLOURS]
        if sizes:
            sub, truth = "boyut", _shape(shapes, words)["size"] == sizes[0]
        elif places:
            sub, truth = "konum", _shape(shapes, words)["region"] == places[0]
        elif "bir" in words:
            kind = next(KIND_FORMS[w] for w in words if w in KIND_FORMS)
            sub, truth = "varlık", any(s["kind"] == kind and s["colour"] == colours[0] for s in shapes)
        else:  # "Daire kırmızı mı?": the kind alone names the shape, the colour is what is asked
            sub, truth = "renk", _shape(shapes, words, colour_is_ref=False)["colour"] == colours[0]
        assert row["subcategory"] == sub
        return "yes" if truth else "no"
    if category == "renk":
        places = [RELATIVES[w] for w in words if w in RELATIVES]
        if places:
            return next(s["colour"] for s in shapes if s["region"] == places[0])
        kind = _shape(shapes, words, colour_is_ref=False)["kind"]
        assert sum(s["kind"] == kind for s in shapes) == 1  # never asked about a kind that occurs twice
        return _shape(shapes, words, colour_is_ref=False)["colour"]
    if category == "sayma":
        kinds = [KIND_FORMS[w] for w in words if w in KIND_FORMS]
        colours = [w for w in words if w in world.COLOURS]
        if kinds:
            return str(sum(s["kind"] == kinds[0] for s in shapes))
        if colours:
            return str(sum(s["colour"] == colours[0] for s in shapes))
        return str(len(shapes))
    assert category == "konum"
    return turkish.locative(_shape(shapes, words)["region"])


@pytest.fixture(scope="module")
def test_set(records):
    return teacher.test_rows(records, random.Random(5), per_type=120)


def test_test_rows_are_true_for_their_scene(records, test_set):
    by_id = {r["id"]: r for r in records}
    assert len(test_set) == 4 * 120 and len({r["id"] for r in test_set}) == len(test_set)
    for row in test_set:
        scene = by_id[row["id"].rsplit("-", 1)[0]]
        assert row["image"] == scene["image"]
        assert len(row["conversations"]) == 2
        reference = row["conversations"][1]["value"]
        truth = _recompute(row, scene["shapes"])
        if row["category"] == "evet/hayır":
            assert row["answer_type"] == "yes_no" and reference in ("Evet.", "Hayır.")
            assert yes_no(reference) == truth
        else:
            assert row["answer_type"] == "short" and reference == truth
            assert answers_match(reference, reference)


def test_test_rows_are_balanced(test_set):
    by_category = Counter(r["category"] for r in test_set)
    assert by_category == {c: 120 for c in teacher.SCORED_CATEGORIES}
    yes = Counter((r["subcategory"], yes_no(r["conversations"][1]["value"])) for r in test_set
                  if r["category"] == "evet/hayır")
    assert yes == {(sub, answer): 15 for sub in teacher.YES_NO_KINDS for answer in ("yes", "no")}
    references = {c: Counter(r["conversations"][1]["value"] for r in test_set if r["category"] == c)
                  for c in ("renk", "sayma", "konum")}
    assert references["renk"] == {c: 20 for c in world.COLOURS}
    assert references["sayma"] == {str(n): 24 for n in range(1, 6)}
    assert references["konum"] == {w: 24 for w in LOCATIVES}
    # the rows are spread over many scenes, and both ways of naming a shape for colour are asked
    assert len({r["image"] for r in test_set}) > 200  # of 300
    assert {r["subcategory"] for r in test_set if r["category"] == "renk"} == {"tür", "konum"}


@pytest.fixture(scope="module")
def training(records):
    return teacher.instruction_rows(records, random.Random(9), per_scene=6)


def test_instruction_rows_shape(records, training):
    assert len(training) == 6 * len(records) and len({r["id"] for r in training}) == len(training)
    categories = Counter(r["category"] for r in training)
    assert set(categories) == {*teacher.SCORED_CATEGORIES, "betimleme", "karmaşık", "sohbet", "soru-cevap"}
    for row in training:
        turns = row["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert turns[0]["value"].startswith("<image>\n")
        assert sum(t["value"].count("<image>") for t in turns) == 1
        assert row["answer_type"] in ("yes_no", "short", "open")
        if row["category"] == "sohbet":
            assert 2 <= len(turns) // 2 <= 4
        elif row["category"] == "soru-cevap":  # several short questions on one image, none asked twice
            questions = [t["value"].removeprefix("<image>\n") for t in turns[::2]]
            assert 1 <= len(questions) <= 6 and len(set(questions)) == len(questions)
            assert all(q.endswith(SUFFIX) for q in questions)
        else:
            assert len(turns) == 2
        for human, gpt in zip(turns[::2], turns[1::2]):
            # the suffix decides the style: short answers after it, full sentences without it
            if human["value"].endswith(SUFFIX):
                assert gpt["value"] in ("Evet.", "Hayır.") or len(gpt["value"].split()) == 1
            else:
                assert gpt["value"][0].isupper() and gpt["value"].endswith(".")
    short = [r for r in training if r["category"] in ("renk", "sayma", "konum")]
    share = sum(r["conversations"][0]["value"].endswith(SUFFIX) for r in short) / len(short)
    assert 0.65 <= share <= 0.85  # long_share = 0.25


def test_training_yes_no_is_balanced_per_sub_kind(training):
    rows = [r for r in training if r["category"] == "evet/hayır"]
    assert len(rows) > 200
    # Yes and no alternate per sub-kind over every yes/no question asked, single rows and the turns of
    # "soru-cevap" rows together; those turns do not record their sub-kind, so the single rows alone
    # are only roughly balanced per sub-kind, and all yes/no answers together closely.
    for sub in teacher.YES_NO_KINDS:
        answers = [yes_no(r["conversations"][1]["value"]) for r in rows if r["subcategory"] == sub]
        assert len(answers) > 40 and set(answers) == {"yes", "no"}
        assert 0.35 <= answers.count("yes") / len(answers) <= 0.65, sub
    every = [yes_no(r["conversations"][1]["value"]) for r in rows]
    every += [{"Evet.": "yes", "Hayır.": "no"}[t["value"]] for r in training if r["category"] == "soru-cevap"
              for t in r["conversations"][1::2] if t["value"] in ("Evet.", "Hayır.")]
    assert len(every) > 1000 and 0.47 <= every.count("yes") / len(every) <= 0.53


def test_training_answers_are_true(records, training):
    """Short-style single-turn training rows carry the same truth as the test set."""
    by_id = {r["id"]: r for r in records}
    for row in training:
        human, gpt = row["conversations"][0]["value"], row["conversations"][1]["value"]
        if row["category"] in teacher.SCORED_CATEGORIES and human.endswith(SUFFIX):
            truth = _recompute(row, by_id[row["id"].rsplit("-", 1)[0]]["shapes"])
            assert (yes_no(gpt) if row["category"] == "evet/hayır" else gpt) == truth


# Every question particle must harmonise with the word before it.
PARTICLE_AFTER = {
    **{c: turkish.question(c).split()[1] for c in world.COLOURS},
    "küçük": "mü", "büyük": "mü", "var": "mı", "şekil": "mi", "renkte": "mi", "bulunuyor": "mu",
    "görüyor": "musun", "daire": "mi", "kare": "mi", "üçgen": "mi", "yıldız": "mı",
    "solda": "mı", "sağda": "mı", "üstte": "mi", "altta": "mı", "ortada": "mı",
    "solunda": "mı", "sağında": "mı", "üstünde": "mi", "altında": "mı",
}


def test_generated_text_grammar(records, training):
    texts = [t["value"].replace("<image>\n", "").replace(SUFFIX, "") for r in training for t in r["conversations"]]
    texts += teacher.lm_corpus(records[:50], random.Random(1))
    for rec in records:
        texts += rec["captions"]
    particles = 0
    for text in texts:
        assert "  " not in text and " ," not in text and text == text.strip()
        words = re.findall(r"\w+", text)
        for before, word in zip(words, words[1:]):
            if word in ("mı", "mi", "mu", "mü", "musun"):
                particles += 1
                assert PARTICLE_AFTER[before] == word, text
    assert particles > 500


def test_sentences_verbatim():
    """Every phrasing for a two-shape scene, as generated (the set of all human/gpt texts)."""
    rec = world.record(TWO)
    rows = [row for seed in range(3) for row in teacher.instruction_rows([rec], random.Random(seed), per_scene=3000)]
    pairs = {(r["conversations"][0]["value"].replace("<image>\n", ""), r["conversations"][1]["value"])
             for r in rows if len(r["conversations"]) == 2}
    expected = {
        ("Daire kırmızı mı?\nTek kelimeyle cevap ver.", "Evet."),
        ("Kare mavi renkte mi?", "Evet, kare mavi."),
        ("Karenin rengi kırmızı mı?", "Hayır, kare kırmızı değil, mavi."),
        ("Bu görselde kırmızı bir kare görüyor musun?",
         "Hayır, görselde kırmızı bir kare yok, ama kırmızı bir daire var."),
        ("Görselde mor bir kare var mı?", "Hayır, görselde mor bir kare yok, ama mavi bir kare var."),
        ("Bu görselde mavi bir kare görüyor musun?", "Evet, görselde mavi bir kare var."),
        ("Mavi kare solda mı?", "Hayır, mavi kare solda değil, sağda."),
        ("Kare solda mı duruyor?", "Hayır, kare solda değil, sağda."),
        ("Görseldeki kırmızı daire küçük mü?", "Hayır, kırmızı daire küçük değil, büyük."),
        ("Mavi kare küçük bir şekil mi?", "Evet, mavi kare küçük."),
        ("Dairenin rengi ne?\nTek kelimeyle cevap ver.", "kırmızı"),
        ("Üçgen ne renk?", None),  # no triangle in the scene: never asked
        ("Soldaki şeklin rengi ne?", "Soldaki şeklin rengi kırmızı."),
        ("Sağdaki şekil ne renk?\nTek kelimeyle cevap ver.", "mavi"),
        ("Görselde kaç şekil var?", "Görselde iki şekil var."),
        ("Kaç tane mavi şekil var?\nTek kelimeyle cevap ver.", "1"),
        ("Kırmızı daire nerede?\nTek kelimeyle cevap ver.", "solda"),
        ("Kare görselin neresinde?", "Kare sağda."),
        ("Hangisi daha büyük: kırmızı daire mi, mavi kare mi?",
         "Kırmızı daire büyük, mavi kare ise küçük. Yani kırmızı daire daha büyük."),
        ("Kırmızı daire ile mavi kare arasında hangisi daha küçük?",
         "Kırmızı daire büyük, mavi kare ise küçük. Yani mavi kare daha küçük."),
        ("Kırmızı daire, mavi karenin solunda mı, sağında mı?",
         "Kırmızı daire solda, mavi kare ise sağda. Yani kırmızı daire, mavi karenin solunda."),
        ("Mavi kare, kırmızı daireye göre nerede?",
         "Mavi kare sağda, kırmızı daire ise solda. Yani mavi kare, kırmızı dairenin sağında."),
        ("Hangisi daha solda: mavi kare mi, kırmızı daire mi?",
         "Mavi kare sağda, kırmızı daire ise solda. Yani kırmızı daire daha solda."),
        ("Daireler üçgenlerden kaç tane fazla?", "Görselde bir daire var, hiç üçgen yok. Yani bir tane fazla daire var."),
        ("Görseli ayrıntılı olarak betimle.",
         "Görselde düz bir zemin üzerinde iki şekil var. Solda büyük kırmızı bir daire var. "
         "Sağda küçük mavi bir kare bulunuyor."),
    }
    never = {p for p in expected if p[1] is None}
    assert not any(q == p[0] for p in never for q, _ in pairs)
    missing = {p for p in expected - never if p not in pairs}
    assert not missing


def test_caption_rows_and_corpus(records):
    rows = teacher.caption_rows(records[:30], random.Random(2))
    for row, rec in zip(rows, records):
        human, gpt = row["conversations"][0]["value"], row["conversations"][1]["value"]
        assert len(row["conversations"]) == 2 and row["image"] == rec["image"]
        assert human.startswith("<image>\n") and human[len("<image>\n"):] in teacher.CAPTION_PROMPTS
        assert gpt in rec["captions"] and row["category"] == "altyazı" and row["answer_type"] == "open"
    corpus = teacher.lm_corpus(records[:30], random.Random(3))
    assert all(isinstance(s, str) and s and "<image>" not in s and "\n" not in s for s in corpus)
    # Per record: its three captions, then one line with the scene's description and questions about it.
    assert len(corpus) == 30 * 4 and corpus[:3] == records[0]["captions"]
    lines = corpus[3::4]
    for line, rec in zip(lines, records):
        count = len(rec["shapes"])
        words = "tek bir şekil" if count == 1 else f"{turkish.number_word(count)} şekil"
        assert line.startswith(f"Görselde {rec['background']} bir zemin üzerinde {words} var. "), line
        assert line.count("?") >= 5, line  # four scored types, a second yes/no, a "karmaşık" one when it fits
    short = sum(line.count(teacher.SHORT_SUFFIX) for line in lines)
    assert 0.3 < short / (5 * len(lines)) < 0.7  # half the scored questions in the short style


def test_clip_position_embedding_starts_from_a_2d_sincos_table():
    """The demo CLIP's learned position embedding starts from MAE's 2-D sin-cos table at about the patch
    embedding's norm, so a patch's cell is still readable after a short pretraining."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from cosmos_llava.demo.pretrain import _init_positions, sincos_positions

    table = sincos_positions(6, 128)
    assert table.shape == (36, 128)
    assert torch.allclose(table.norm(dim=1), torch.full((36,), 8.0))
    assert torch.equal(table[0, :64], table[5, :64]) and not torch.equal(table[0, 64:], table[5, 64:])  # one row
    assert torch.equal(table[0, 64:], table[6, 64:]) and not torch.equal(table[0, :64], table[6, :64])  # one column
    assert len({tuple(row.tolist()) for row in table}) == 36

    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                                             num_attention_heads=4, image_size=96, patch_size=16))
    _init_positions(tower.embeddings)
    weight = tower.embeddings.position_embedding.weight
    assert torch.equal(weight[0], torch.zeros(128)) and torch.equal(weight[1:], table)


def test_vision_shape_refuses_widths_the_position_table_cannot_split():
    """A width the 2-D sin-cos table (quarters) or the heads cannot split fails at once, in one line."""
    import pytest

    from cosmos_llava.demo.pretrain import VisionShape
    from cosmos_llava.errors import CosmosLlavaError

    table = r"\(the 2-D sin-cos position table\)"
    with pytest.raises(CosmosLlavaError, match=rf"^vision hidden_size 130 must be a multiple of 4 {table} and of heads \(4\)$"):
        VisionShape(hidden_size=130)
    with pytest.raises(CosmosLlavaError, match=rf"^vision hidden_size 132 must be a multiple of 4 {table} and of heads \(8\)$"):
        VisionShape(hidden_size=132, heads=8)
    with pytest.raises(CosmosLlavaError, match=r"^vision image_size 96 is not a multiple of patch_size 20$"):
        VisionShape(patch_size=20)
    assert VisionShape(hidden_size=64, heads=4, patch_size=32).hidden_size == 64

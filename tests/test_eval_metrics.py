"""cosmos_llava.evaluation: yes/no normalisation, binary metrics, bootstrap CI, judge prompts and parsers.

Every expected number below is computed by hand in the comments.
"""

import json
import math

import numpy as np
import pytest

from cosmos_llava.evaluation.judge import (
    JUDGE100_SYSTEM,
    RELATIVE_SYSTEM,
    judge100_messages,
    parse_pair_scores,
    parse_reason,
    parse_score100,
    relative_messages,
    relative_score,
    relative_summary,
)
from cosmos_llava.evaluation.metrics import BinaryReport, binary_metrics, by_category, mean_and_ci, yes_no

# --------------------------------------------------------------------------------------------------
# yes_no


@pytest.mark.parametrize(
    "answer, expected",
    [
        # leading yes/no word decides
        ("Evet", "yes"),
        ("Evet, masada iki kedi var.", "yes"),
        ("EVET", "yes"),
        ("Evet, ama kedi yok", "yes"),
        ("Hayır", "no"),
        ("HAYIR", "no"),
        ("Hayır, yok.", "no"),
        ("Hayır değil", "no"),
        ("Değil.", "no"),
        ("Yok.", "no"),
        ("Var.", "yes"),
        ("Doğru değil.", "no"),
        ("Yanlış değil.", "yes"),
        ("**Hayır**, görselde kedi yok.", "no"),
        ("Cevap: Evet", "yes"),
        ("Yes, there is a cat.", "yes"),
        ("YES.", "yes"),
        ("No, there isn't.", "no"),
        ("NO, THERE ISN'T.", "no"),
        ("The answer is no.", "no"),
        # only the first sentence counts
        ("Yes.\nNo.", "yes"),
        ("Masada kedi yok. Ama bir köpek var.", "no"),
        ("...Evet", "yes"),
        # hedges
        ("Bilmiyorum", "unknown"),
        ("Emin değilim.", "unknown"),
        ("I don't know.", "unknown"),
        ("It is unclear from the image.", "unknown"),
        # negation anywhere
        ("Masada kedi yok.", "no"),
        ("There is no cat.", "no"),
        ("Not really.", "no"),
        ("Muhtemelen hayır.", "no"),
        ("Resimde köpek bulunmuyor.", "no"),
        ("Masada kedi bulunmamaktadır.", "no"),
        ("Görselde hiçbir kedi görmüyorum.", "no"),
        # affirmation without a yes word
        ("Masada iki kedi var.", "yes"),
        ("Görüntüde bir köpek görünüyor.", "yes"),
        ("Bu bir kedidir.", "yes"),
        ("There are two cats.", "yes"),
        ("Sanırım evet.", "yes"),
        # nothing to read
        ("", "unknown"),
        ("   \n", "unknown"),
        ("?!", "unknown"),
        ("asdf qwerty", "unknown"),
        ("Kedi.", "unknown"),
    ],
)
def test_yes_no(answer, expected):
    assert yes_no(answer) == expected


# --------------------------------------------------------------------------------------------------
# binary_metrics


def test_binary_metrics_hand_computed():
    labels = ["yes", "yes", "yes", "yes", "no", "no", "no", "no", "no", "yes"]
    predictions = [
        "Evet",  # yes / yes  -> tp
        "Evet, var.",  # yes / yes  -> tp
        "Hayır",  # no / yes   -> fn
        "Bilmiyorum",  # unknown / yes -> fn (unknown)
        "Hayır",  # no / no    -> tn
        "Yok.",  # no / no    -> tn
        "Evet",  # yes / no   -> fp
        "asdf",  # unknown / no -> fp (unknown)
        "Evet",  # yes / no   -> fp
        "Var.",  # yes / yes  -> tp
    ]
    r = binary_metrics(predictions, labels)
    assert (r.n, r.tp, r.fp, r.tn, r.fn, r.unknown) == (10, 3, 3, 2, 2, 2)
    assert r.accuracy == pytest.approx(5 / 10)
    assert r.precision == pytest.approx(3 / 6)
    assert r.recall == pytest.approx(3 / 5)
    assert r.f1 == pytest.approx(2 * 0.5 * 0.6 / 1.1)  # 6/11
    assert r.yes_ratio == pytest.approx(5 / 10)


def test_labels_may_be_turkish():
    r = binary_metrics(["evet", "hayır"], ["Evet", "Hayır"])
    assert (r.tp, r.tn, r.accuracy) == (1, 1, 1.0)


def test_all_yes_predictions():
    r = binary_metrics(["Evet", "Evet", "Yes"], ["yes", "no", "no"])
    assert (r.tp, r.fp, r.tn, r.fn) == (1, 2, 0, 0)
    assert r.accuracy == pytest.approx(1 / 3)
    assert r.precision == pytest.approx(1 / 3)
    assert r.recall == 1.0
    assert r.f1 == pytest.approx(0.5)  # 2 * 1/3 * 1 / (4/3)
    assert r.yes_ratio == 1.0


def test_no_positive_labels_recall_undefined():
    r = binary_metrics(["Hayır", "Evet"], ["no", "no"])
    assert (r.tp, r.fp, r.tn, r.fn) == (0, 1, 1, 0)
    assert r.precision == 0.0
    assert r.recall is None
    assert r.f1 is None
    r = binary_metrics(["Hayır", "Yok"], ["no", "no"])
    assert r.precision is None and r.recall is None and r.f1 is None
    assert r.accuracy == 1.0 and r.yes_ratio == 0.0


def test_all_unknown_is_always_wrong():
    r = binary_metrics(["", "Bilmiyorum", "???"], ["yes", "no", "no"])
    assert (r.tp, r.fp, r.tn, r.fn, r.unknown) == (0, 2, 0, 1, 3)
    assert r.accuracy == 0.0
    assert r.precision == 0.0  # tp / (tp + fp) = 0 / 2
    assert r.recall == 0.0
    assert r.f1 == 0.0  # both defined and 0
    assert r.yes_ratio == 0.0


def test_empty_input_and_json():
    r = binary_metrics([], [])
    assert r.n == 0 and r.accuracy is None and r.yes_ratio is None
    text = json.dumps(r.to_dict(), allow_nan=False)  # raises on NaN
    assert '"precision": null' in text and '"f1": null' in text


def test_bad_label_and_length_mismatch():
    with pytest.raises(ValueError, match=r"^label 1 is not yes/no: 'belki'$"):
        binary_metrics(["Evet", "Evet"], ["yes", "belki"])
    with pytest.raises(ValueError, match="2 predictions for 1 labels"):
        binary_metrics(["Evet", "Hayır"], ["yes"])


def test_by_category():
    rows = [
        {"prediction": "Evet", "label": "yes", "category": "sayma"},
        {"prediction": "Hayır", "label": "yes", "category": "sayma"},
        {"prediction": "Yok.", "label": "no", "category": "renk"},
        {"prediction": "Evet", "label": "yes"},  # no category
        {"prediction": "Evet", "label": "no", "category": None},
    ]
    out = by_category(rows)
    assert list(out) == ["(none)", "renk", "sayma", "overall"]
    assert all(isinstance(v, BinaryReport) for v in out.values())
    assert (out["sayma"].tp, out["sayma"].fn, out["sayma"].accuracy) == (1, 1, 0.5)
    assert (out["renk"].tn, out["renk"].n, out["renk"].recall) == (1, 1, None)
    assert (out["(none)"].tp, out["(none)"].fp) == (1, 1)
    overall = out["overall"]
    assert (overall.n, overall.tp, overall.fp, overall.tn, overall.fn) == (5, 2, 1, 1, 1)
    assert overall.accuracy == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="^label 2 is not yes/no"):
        by_category(rows[:2] + [{"prediction": "Evet", "label": "?", "category": "renk"}])
    assert list(by_category(rows, key="missing")) == ["(none)", "overall"]


# --------------------------------------------------------------------------------------------------
# mean_and_ci


def test_mean_and_ci_contains_mean_and_narrows():
    rng = np.random.default_rng(1)
    small = rng.normal(70, 15, size=20)
    large = rng.normal(70, 15, size=2000)
    mean_s, low_s, high_s = mean_and_ci(small)
    mean_l, low_l, high_l = mean_and_ci(large)
    assert mean_s == pytest.approx(float(small.mean()))
    assert low_s < mean_s < high_s
    assert low_l < mean_l < high_l
    assert (high_l - low_l) < (high_s - low_s) / 4  # sqrt(100) = 10x narrower in theory
    # normal approximation of a 95% interval of a mean: width 2 * 1.96 * sd / sqrt(n)
    expected = 2 * 1.96 * float(small.std()) / math.sqrt(20)
    assert 0.75 * expected < high_s - low_s < 1.25 * expected
    assert mean_and_ci(small, seed=3) == mean_and_ci(small, seed=3)


def test_mean_and_ci_edge_cases():
    assert mean_and_ci([42.0]) == (42.0, 42.0, 42.0)
    with pytest.raises(ValueError):
        mean_and_ci([])
    with pytest.raises(ValueError):
        mean_and_ci([1.0, math.nan])


# --------------------------------------------------------------------------------------------------
# 0-100 judge


def test_judge100_messages():
    messages = judge100_messages("Kaç kedi var?", "İki kedi var.", "Üç kedi var.", context="Masada iki kedi.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == JUDGE100_SYSTEM
    assert "Puan: <0-100" in JUDGE100_SYSTEM and "Gerekçe:" in JUDGE100_SYSTEM
    user = messages[1]["content"]
    for part in ("Kaç kedi var?", "İki kedi var.", "Üç kedi var.", "Masada iki kedi."):
        assert part in user
    assert user.index("[Referans cevap]") < user.index("[Değerlendirilecek cevap]")
    assert "[Görsel açıklaması]" not in judge100_messages("S", "R", "A")[1]["content"]


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Puan: 85\nGerekçe: Doğru.", 85.0),
        ("Score: 85/100", 85.0),
        ("**Puan:** 85", 85.0),
        ("**Puan: 72**\nGerekçe: x", 72.0),
        ("85/100", 85.0),
        ("puan 85", 85.0),
        ('{"score": 85, "reason": "iyi"}', 85.0),
        ('```json\n{"puan": "64", "gerekçe": "eksik"}\n```', 64.0),
        ("Puan: 8,5/10", 85.0),
        ("8.5 / 10", 85.0),
        ("Skor (0-100): 90", 90.0),
        ("Puan: 10 üzerinden 8", 80.0),
        ("Puanım: %75", 75.0),
        ("Score: 85 out of 100", 85.0),
        ("Gerekçe: 3 nesne yanlış sayılmış.\nPuan: 40", 40.0),  # the label beats the earlier number
        ("Puan: 85\nPuan: 90", 85.0),  # first one wins
        ("Puan: 0", 0.0),
        ("Puan: 100", 100.0),
        ("**85**", 85.0),
        ("Puan: 150", None),
        ("Puan: -5", None),
        ("Puan: 12/10", None),
        ("Sanırım 2/3 doğru.", None),  # not a score scale
        ("Bu cevap oldukça iyi.", None),
        ("", None),
        ('{"score": "yüksek"}', None),
    ],
)
def test_parse_score100(reply, expected):
    assert parse_score100(reply) == expected


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Puan: 85\nGerekçe: Cevap doğru ama kısa.", "Cevap doğru ama kısa."),
        ("**Puan:** 60\n**Gerekçe:** Renkler  yanlış.", "Renkler yanlış."),
        ("Puan: 60\nAçıklama:\nEksik.", "Eksik."),
        ('{"score": 10, "reason": "Kötü"}', "Kötü"),
        ("Puan: 60\nCevap eksik.", "Cevap eksik."),
        ("Puan: 60", ""),
    ],
)
def test_parse_reason(reply, expected):
    assert parse_reason(reply) == expected


# --------------------------------------------------------------------------------------------------
# LLaVA-Bench relative


def test_relative_messages():
    messages = relative_messages("Ne görüyorsun?", "Bir kedi.", "Kedi.", "Köpek.")
    assert messages[0] == {"role": "system", "content": RELATIVE_SYSTEM}
    user = messages[1]["content"]
    assert user.index("[Asistan 1]\nKedi.") < user.index("[Asistan 2]\nKöpek.")
    assert "[Bağlam]\nBir kedi." in user and "1 ile 10" in user
    assert "(bağlam verilmedi)" in relative_messages("S", None, "a", "b")[1]["content"]


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("8 7\nAsistan 1 daha ayrıntılı.", (8.0, 7.0)),
        ("8, 7", (8.0, 7.0)),
        ("Asistan 1: 8, Asistan 2: 7", (8.0, 7.0)),
        ("8/10 7/10", (8.0, 7.0)),
        ("Assistant 1: 8/10, Assistant 2: 7/10", (8.0, 7.0)),
        ("8.5 7", (8.5, 7.0)),
        ("8,5 7", (8.5, 7.0)),
        ("**9 6**", (9.0, 6.0)),
        ("\n\n7 7\n", (7.0, 7.0)),
        ("10 1", (10.0, 1.0)),
        ("11 7", None),
        ("0 5", None),
        ("8", None),
        ("8 7 6", None),
        ("Açıklama önce gelir.\n8 7", None),  # LLaVA: scores must be on the first line
        ("", None),
    ],
)
def test_parse_pair_scores(reply, expected):
    assert parse_pair_scores(reply) == expected


def test_relative_score_and_summary():
    # order A (reference first) "8 6", order B (candidate first) "7 9"
    assert relative_score((8, 9), (6, 7)) == (8.5, 6.5)
    assert relative_score((8, None), (6, None)) == (8.0, 6.0)
    with pytest.raises(ValueError, match="no reference score"):
        relative_score((None, None), (6, 7))
    # ratio of totals: (6.5 + 10) / (8.5 + 5) * 100 = 16.5 / 13.5 * 100 = 122.2...
    # (mean of ratios would be (6.5/8.5 + 10/5) / 2 * 100 = 138.2...)
    assert relative_summary([(8.5, 6.5), (5, 10)]) == pytest.approx(1650 / 13.5)
    assert relative_summary([(8, 8)]) == 100.0
    with pytest.raises(ValueError):
        relative_summary([])

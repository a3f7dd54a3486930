"""Yes/no answer normalisation, binary classification metrics and bootstrap intervals.

Standard library + numpy; Turkish case folding comes from `cosmos_llava.text`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from cosmos_llava.text import normalize_answer

__all__ = ["BinaryReport", "binary_metrics", "by_category", "mean_and_ci", "yes_no"]


def _key(word: str) -> str:
    """Matching key of an already casefolded word: the dotted/dotless i distinction is dropped.

    `turkish_casefold` turns an English "ISN'T" into "ısnt" and a Turkish "HAYIR" into "hayır"; one
    key for both spellings ("isnt", "hayir") lets a single word list serve both languages.
    """
    return word.replace("ı", "i")


def _keys(words: str) -> frozenset[str]:
    return frozenset(_key(w) for w in words.split())


# A leading word that answers the question by itself ("Evet, ...", "Yok.", "No, ...").
_LEADING_YES = _keys("evet yes yeah yep yup doğru doğrudur var vardır")
_LEADING_NO = _keys("hayır no nope yok yoktur değil değildir yanlış yanlıştır")
_FLIPPED_BY_DEGIL = _keys("doğru doğrudur yanlış yanlıştır")  # "doğru değil" = no, "yanlış değil" = yes
_DEGIL = _keys("değil değildir")

# Phrases saying the model does not know; checked before negation ("bilmiyorum" is a negated verb).
_HEDGES = tuple(
    _key(p)
    for p in (
        "bilmiyorum", "bilemiyorum", "bilinmiyor", "emin değilim", "emin olamıyorum", "söyleyemem",
        "söylemek zor", "belirsiz", "belli değil", "anlaşılmıyor", "anlaşılamıyor",
        "not sure", "unsure", "unclear", "uncertain", "unknown", "dont know", "do not know",
        "cannot tell", "cant tell", "cannot determine", "cant determine", "cannot be determined",
        "impossible to tell", "impossible to say",
    )
)

# Negation words anywhere in the first sentence (POPE: "no"/"not" anywhere -> no).
_NEGATIONS = _keys(
    "hayır yok yoktur yoktu yoklar değil değildir değiller hiç hiçbir hiçbiri "
    "no not none nothing nobody neither nor never nope "
    "isnt arent wasnt werent doesnt dont didnt cannot cant hasnt havent hadnt wont"
)
# Turkish verb negation: present continuous "-mıyor/-miyor/-muyor/-müyor" ("bulunmuyor",
# "görünmüyor") and "-mamakta/-memekte" ("bulunmamaktadır"). Matched on keys (ı already -> i).
_NEGATED_VERB = re.compile(r"m[iuü]yor|m[ae]m[ae]kte|m[ae]m[ae]kta")

# Affirmation: yes words anywhere, Turkish existentials and a few English auxiliaries.
_AFFIRMATIONS = _keys(
    "evet yes yeah yep yup doğru doğrudur var vardır varmış mevcut mevcuttur "
    "correct true indeed certainly sure "
    "is are was were has have does do can theres its thats theyre shows contains"
)
# Turkish affirmative verb / copula endings: "-yor" ("görünüyor"), "-dır/-dir/-dur/-dür/-tır/..."
# ("kedidir", "bulunmaktadır"), optionally plural. Words of at least 5 letters only ("dur" = stop).
_AFFIRMATIVE_SUFFIX = re.compile(r"\w{2,}(?:yor|[dt][iuü]r)(?:lar|ler)?")

_SENTENCE_BREAK = re.compile(r"[.!?\n]")


def _first_sentence_words(answer: str) -> list[str]:
    """Keys of the words of the first sentence that has any word in it."""
    for sentence in _SENTENCE_BREAK.split(answer or ""):
        words = normalize_answer(sentence).split()
        if words:
            return [_key(w) for w in words]
    return []


def yes_no(answer: str) -> str:
    """"yes", "no" or "unknown" for a free-form answer to a yes/no question.

    Only the first sentence counts (the text up to the first ".", "!", "?" or line break that has a
    word in it), as in LLaVA's POPE evaluation. It is normalised with `normalize_answer` (NFC, Turkish
    casefold, answer prefixes such as "Cevap:" / "The answer is" dropped, punctuation dropped,
    apostrophes joined: "isn't" -> "isnt"); the dotted/dotless i distinction is then ignored. The
    rules, in this order, the first that applies decides:

    1. leading word: the first word is a yes word (evet, yes, yeah, yep, doğru, var, vardır) -> "yes",
       or a no word (hayır, no, nope, yok, yoktur, değil, değildir, yanlış) -> "no". "doğru değil"
       is "no" and "yanlış değil" is "yes". So "Evet, ama kedi yok." -> "yes".
    2. hedge: the sentence contains a don't-know phrase ("bilmiyorum", "emin değilim", "belirsiz",
       "not sure", "I don't know", "cannot tell", ...) -> "unknown".
    3. negation anywhere (POPE's rule): a negation word (yok, değil, hiç, hiçbir, no, not, none,
       nothing, never, isn't, doesn't, ...) or a negated Turkish verb ("-mıyor/-miyor/-muyor/-müyor",
       "-mamakta/-memekte": "bulunmuyor", "bulunmamaktadır") -> "no". "Masada kedi yok." -> "no".
    4. affirmation anywhere: a yes word, "var"/"mevcut", an English auxiliary or "there's"
       (is, are, has, does, can, ...), or a Turkish word of 5+ letters ending in "-yor" or a copula
       "-dır/-dir/-dur/-dür/-tır/..." (optionally "-lar/-ler") -> "yes". "Masada iki kedi var." -> "yes".
    5. otherwise (empty text, garbage, a bare noun) -> "unknown".
    """
    words = _first_sentence_words(answer)
    if not words:
        return "unknown"
    first = words[0]
    if first in _FLIPPED_BY_DEGIL and len(words) > 1 and words[1] in _DEGIL:
        return "no" if first in _LEADING_YES else "yes"
    if first in _LEADING_YES:
        return "yes"
    if first in _LEADING_NO:
        return "no"
    padded = f" {' '.join(words)} "
    if any(f" {hedge} " in padded for hedge in _HEDGES):
        return "unknown"
    if any(w in _NEGATIONS or _NEGATED_VERB.search(w) for w in words):
        return "no"
    if any(w in _AFFIRMATIONS or _AFFIRMATIVE_SUFFIX.fullmatch(w) for w in words):
        return "yes"
    return "unknown"


# ---------------------------------------------------------------------------------------------------
# Binary classification


@dataclass(frozen=True)
class BinaryReport:
    """Yes/no classification counts and scores; "yes" is the positive class.

    `unknown` counts predictions `yes_no` could not read. They are always wrong: on a "yes" label an
    unknown is counted as a false negative, on a "no" label as a false positive, so
    tp + fp + tn + fn == n and `unknown` is a subset of fp + fn (reported separately so a model that
    refuses to answer is visible). Hence precision's denominator (tp + fp) includes unknowns on "no"
    labels: not answering never improves a score.

    A ratio whose denominator is 0 is None, never 0 or NaN: accuracy and yes_ratio when n == 0,
    precision when tp + fp == 0, recall when tp + fn == 0 (no "yes" labels). f1 is None when
    precision or recall is None, 0.0 when both are 0. yes_ratio is the share of predictions that are
    "yes" (unknowns are not "yes").
    """

    n: int
    tp: int
    fp: int
    tn: int
    fn: int
    unknown: int
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    yes_ratio: float | None

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready: undefined values are None -> null)."""
        return asdict(self)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _report(pairs: list[tuple[str, str]]) -> BinaryReport:
    """Report for (normalised prediction, normalised label) pairs; labels are "yes"/"no"."""
    tp = fp = tn = fn = unknown = yes = 0
    for pred, label in pairs:
        if pred == "unknown":
            unknown += 1
        if pred == "yes":
            yes += 1
        if label == "yes":
            if pred == "yes":
                tp += 1
            else:
                fn += 1
        elif pred == "no":
            tn += 1
        else:
            fp += 1
    n = len(pairs)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    if precision is None or recall is None:
        f1 = None
    elif precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return BinaryReport(
        n=n, tp=tp, fp=fp, tn=tn, fn=fn, unknown=unknown,
        accuracy=_ratio(tp + tn, n), precision=precision, recall=recall, f1=f1,
        yes_ratio=_ratio(yes, n),
    )


def _label(label, index: int) -> str:
    value = yes_no(label) if isinstance(label, str) else "unknown"
    if value == "unknown":
        raise ValueError(f"label {index} is not yes/no: {label!r}")
    return value


def binary_metrics(predictions: list[str], labels: list[str]) -> BinaryReport:
    """A `BinaryReport` for free-form predictions against yes/no labels.

    Predictions go through `yes_no`; labels too ("yes", "no", "Evet", "Hayır" all work). A label that
    normalises to "unknown" raises ValueError("label 3 is not yes/no: 'belki'"); lists of different
    lengths raise ValueError as well. A prediction that is not a string counts as unknown.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    pairs = [
        (yes_no(p) if isinstance(p, str) else "unknown", _label(lab, i))
        for i, (p, lab) in enumerate(zip(predictions, labels))
    ]
    return _report(pairs)


def by_category(rows: list[dict], key: str = "category") -> dict[str, BinaryReport]:
    """One `BinaryReport` per category (sorted by name) and "overall" (last) over every row.

    Each row has "prediction", "label" and optionally `key`; a missing or None category is "(none)".
    A bad label raises ValueError naming its row index; a missing "prediction"/"label" raises
    ValueError too, as does a category literally named "overall".
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    everything: list[tuple[str, str]] = []
    for i, row in enumerate(rows):
        if "prediction" not in row or "label" not in row:
            raise ValueError(f"row {i} needs 'prediction' and 'label'")
        category = row.get(key)
        category = "(none)" if category is None else str(category)
        if category == "overall":
            raise ValueError(f"row {i}: category name 'overall' is reserved")
        pred = row["prediction"]
        pair = (yes_no(pred) if isinstance(pred, str) else "unknown", _label(row["label"], i))
        groups.setdefault(category, []).append(pair)
        everything.append(pair)
    out = {name: _report(groups[name]) for name in sorted(groups)}
    out["overall"] = _report(everything)
    return out


# ---------------------------------------------------------------------------------------------------
# Bootstrap


def mean_and_ci(values, rounds: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95% percentile-bootstrap interval.

    `rounds` resamples of the values with replacement (numpy, seeded: the same input gives the same
    interval); low/high are the 2.5th and 97.5th percentiles of the resampled means. Raises
    ValueError for no values, a non-finite value or rounds < 1.
    """
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        raise ValueError("no values to average")
    if not np.all(np.isfinite(data)):
        raise ValueError("values must be finite numbers")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    mean = float(data.mean())
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, data.size, size=(rounds, data.size))].mean(axis=1)
    low, high = np.percentile(samples, [2.5, 97.5])
    return mean, float(low), float(high)


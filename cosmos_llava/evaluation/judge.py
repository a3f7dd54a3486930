"""LLM-judge prompts and reply parsers: a 0-100 score and LLaVA-Bench relative scores.

Two protocols, both as OpenAI-style chat messages (`[{"role": "system", ...}, {"role": "user", ...}]`)
for any judge LLM:

- **0-100 score** (`judge100_messages`): the judge compares a candidate answer with a reference
  answer and replies `Puan: <0-100>` / `Gerekçe: <one sentence>`; read with `parse_score100` and
  `parse_reason`.
- **LLaVA-Bench relative score** (`relative_messages`): the judge rates two assistants' answers 1-10
  on one first line ("8 7"), then explains; read with `parse_pair_scores`. Ask twice per item, the
  reference first and then the candidate first, to cancel position bias; `relative_score` averages
  the two orders and `relative_summary` gives LLaVA's number, the ratio of totals times 100.

Standard library only; no model calls.
"""

from __future__ import annotations

import json
import re

from cosmos_llava.text import turkish_casefold

__all__ = [
    "JUDGE100_SYSTEM",
    "RELATIVE_SYSTEM",
    "judge100_messages",
    "parse_pair_scores",
    "parse_reason",
    "parse_score100",
    "relative_messages",
    "relative_score",
    "relative_summary",
]

# ---------------------------------------------------------------------------------------------------
# 0-100 judge

JUDGE100_SYSTEM = """\
Sen, Türkçe görsel soru-cevap sistemlerinin cevaplarını değerlendiren titiz ve tarafsız bir hakemsin.
Görseli göremezsin: görselin metinsel açıklaması (verildiyse) ve referans cevap doğru kabul edilir.
Değerlendirilecek cevabı şu ölçütlere göre 0 ile 100 arasında puanla:
1. Doğruluk (en önemlisi): referansla ve görsel açıklamasıyla tutarlı mı? Görselde olmayan nesneler,
   yanlış sayılar, renkler veya konumlar gibi uydurma bilgiler ağır biçimde cezalandırılır.
2. Yardımseverlik: sorunun sorduğu şeyi doğrudan cevaplıyor mu?
3. Ayrıntı: gereken ayrıntıyı veriyor mu? Gereksiz uzunluk ödüllendirilmez.
4. Akıcı Türkçe: dilbilgisi doğru, doğal ve akıcı mı; Türkçe karakterler (ç, ğ, ı, İ, ö, ş, ü) doğru mu?
   Türkçe dışındaki bir dilde yazılmış veya yarı yarıya başka dile kayan cevap ciddi bir kusurdur.
Puan ölçeği: 90-100 referans kadar doğru ve eksiksiz; 70-89 doğru ama küçük eksikleri var;
40-69 kısmen doğru; 10-39 büyük ölçüde yanlış veya alakasız; 0-9 tamamen yanlış, boş ya da Türkçe değil.
Cevabın uzunluğu, üslubu veya referansla aynı kelimeleri kullanması tek başına puanı yükseltmez.
Cevabını tam olarak şu iki satırla ver, başka bir şey yazma:
Puan: <0-100 arası tam sayı>
Gerekçe: <puanı açıklayan tek bir cümle>"""


def judge100_messages(question: str, reference: str, answer: str, context: str | None = None) -> list[dict]:
    """Chat messages asking a judge to score `answer` 0-100 against `reference` (`JUDGE100_SYSTEM`).

    `context` is an optional textual description of the image (captions, object boxes); without it
    the section is left out.
    """
    parts = []
    if context and context.strip():
        parts.append(f"[Görsel açıklaması]\n{context.strip()}")
    parts.append(f"[Soru]\n{question.strip()}")
    parts.append(f"[Referans cevap]\n{reference.strip()}")
    parts.append(f"[Değerlendirilecek cevap]\n{answer.strip()}")
    parts.append("Değerlendirmeni yalnızca şu biçimde ver:\nPuan: <0-100>\nGerekçe: <tek cümle>")
    return [
        {"role": "system", "content": JUDGE100_SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


# A number: digits with an optional "." or "," decimal part, an optional minus sign (so a negative
# score is seen and rejected rather than read as positive) and an optional "%" before or after it.
_NUM = r"(?P<minus>-\s*)?%?\s*(?P<num>\d+(?:[.,]\d+)?)\s*%?"
# An optional scale after it ("/100", "/ 10", "out of 100", "100 üzerinden") or before it ("10 üzerinden 8").
_SCALE_AFTER = r"(?:\s*(?:/|out\s+of|üzerinden)\s*(?P<den>\d+(?:[.,]\d+)?))?"
_SCALE_BEFORE = r"(?:(?P<den0>\d+)\s+üzerinden\s+)?"
# Score labels: "Puan", "Puanı", "Puanım", "Skor", "Score", "Rating", "Grade"; markdown, a bracketed
# range ("Puan (0-100):") and a ":", "=" or "-" may sit between the label and the number.
_LABELLED = re.compile(
    r"(?<![^\W\d_])(?:puan\w*|skor\w*|score|rating|grade)"
    r"(?:\s*[\(\[][^)\]\n]*[\)\]])?"
    r"[\s*_]*[:=\-–]?[\s*_]*"
    + _SCALE_BEFORE + _NUM + _SCALE_AFTER,
    re.I,
)
_BARE_FRACTION = re.compile(r"(?<![\w.,])" + _NUM + r"\s*(?:/|out\s+of|üzerinden)\s*(?P<den>100|10)(?![\w.,]*\d)", re.I)
_LONE_NUMBER = re.compile(r"[\s*_\"'`]*" + _NUM + r"[\s*_\"'`.]*")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_SCORE_KEYS = ("score", "puan", "skor", "rating")
_REASON_KEYS = ("reason", "gerekçe", "gerekce", "explanation", "açıklama", "rationale")


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def _scaled(value: float, denominator: float | None) -> float | None:
    """`value` on the 0-100 scale, or None when it is outside [0, denominator]."""
    if denominator is not None:
        if denominator <= 0 or not 0 <= value <= denominator:
            return None
        value = value * 100 / denominator
    if not 0 <= value <= 100:
        return None
    return round(value, 6)


def _from_match(m: re.Match) -> float | None:
    value = _number(m.group("num"))
    if m.group("minus"):
        value = -value
    groups = m.groupdict()
    den = groups.get("den") or groups.get("den0")
    return _scaled(value, _number(den) if den else None)


def _json_objects(text: str):
    for m in _JSON_OBJECT.finditer(text):
        try:
            obj = json.loads(m.group())
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield {turkish_casefold(str(k)): v for k, v in obj.items()}


def parse_score100(text: str) -> float | None:
    """The 0-100 score in a judge's reply, or None.

    Tried in this order; the first kind that is present decides, and within a kind the first
    occurrence in the text:
    1. a JSON object with a "score"/"puan"/"skor"/"rating" key (number or numeric string):
       `{"score": 85, "reason": "..."}`;
    2. a labelled score: "Puan: 85", "**Puan:** 85", "puan 85", "Score: 85/100", "Skor = %85",
       "Puan (0-100): 85", "Puan: 8,5/10" (-> 85), "Puan: 10 üzerinden 8" (-> 80); a scale "/d" or
       "out of d" converts the value to 0-100 (value must be within 0..d);
    3. an unlabelled fraction over 10 or 100: "85/100", "8.5 / 10" (-> 85);
    4. a reply that is nothing but one number: "85", "**85**".
    A decimal comma is read as a decimal point. The score that decides must lie in 0..100 after
    scaling; otherwise (e.g. "Puan: 150", "Puan: -5") the result is None - later numbers are not
    tried, since a judge that breaks the scale has not given a usable score. No score -> None.
    """
    if not text:
        return None
    for obj in _json_objects(text):
        for key in _SCORE_KEYS:
            if key in obj:
                raw = obj[key]
                if isinstance(raw, bool):
                    return None
                if isinstance(raw, (int, float)):
                    return _scaled(float(raw), None)
                if isinstance(raw, str):
                    return parse_score100(f"Puan: {raw}")
                return None
    for pattern in (_LABELLED, _BARE_FRACTION):
        m = pattern.search(text)
        if m:
            return _from_match(m)
    m = _LONE_NUMBER.fullmatch(text)
    return _from_match(m) if m else None


_REASON_LINE = re.compile(
    r"^[\s*_#>-]*(?:gerekçe|gerekce|açıklama|aciklama|neden|sebep|reason|explanation|rationale|justification)"
    r"[\s*_]*[:：][\s*_]*(?P<rest>.*)$",
    re.I | re.M,
)


def _clean(text: str) -> str:
    return " ".join(text.replace("**", "").replace("__", "").split())


def parse_reason(text: str) -> str:
    """The judge's one-sentence reason; "" when there is none.

    A JSON "reason"/"gerekçe"/"explanation" value; else the text after a "Gerekçe:" / "Açıklama:" /
    "Reason:" / "Explanation:" label (to the end of its line, or the next non-empty line when the
    label stands alone); else every line that does not carry the score label, joined. Markdown bold
    is dropped and whitespace collapsed.
    """
    if not text:
        return ""
    for obj in _json_objects(text):
        for key in _REASON_KEYS:
            if key in obj and isinstance(obj[key], str):
                return _clean(obj[key])
    m = _REASON_LINE.search(text)
    if m:
        rest = _clean(m.group("rest"))
        if rest:
            return rest
        following = [line for line in text[m.end():].splitlines() if line.strip()]
        return _clean(following[0]) if following else ""
    lines = [line for line in text.splitlines() if line.strip() and not _LABELLED.search(line)]
    return _clean(" ".join(lines))


# ---------------------------------------------------------------------------------------------------
# LLaVA-Bench relative scores

RELATIVE_SYSTEM = """\
Sen, görsel sorulara verilen cevapları değerlendiren yardımsever ve tarafsız bir hakemsin. \
Görseli göremezsin; görseli anlatan metinsel bağlam (açıklamalar, nesne konumları) sana verilir ve \
doğru kabul edilir. Sorular ve cevaplar çoğunlukla Türkçedir: cevapları kendi dillerinde değerlendir, \
Türkçe soruya başka dilde verilen cevap kusurludur."""

_RELATIVE_INSTRUCTION = """\
Yukarıdaki soruya iki yapay zekâ asistanının verdiği cevapları değerlendir. Her asistanı \
yardımseverlik, doğruluk, konuyla ilgi ve ayrıntı düzeyine göre 1 ile 10 arasında bir genel puanla \
puanla; yüksek puan daha iyi demektir. Cevapların sırası, uzunluğu veya üslubu kararını etkilemesin.
Çıktının İLK satırında yalnızca iki sayı olsun: sırasıyla Asistan 1'in ve Asistan 2'nin puanı, \
aralarında bir boşlukla (örneğin: 8 6). Sonraki satırlarda değerlendirmeni ayrıntılı olarak açıkla."""


def relative_messages(question: str, context: str | None, answer_1: str, answer_2: str) -> list[dict]:
    """Chat messages asking the judge to rate two answers 1-10 ("8 7" on the first line, then why).

    LLaVA-Bench's protocol in our own Turkish wording: `context` is the textual image description
    (None or "" for none). Call once with (reference, candidate) and once with (candidate, reference)
    and pass both results to `relative_score`.
    """
    context_text = context.strip() if context and context.strip() else "(bağlam verilmedi)"
    user = (
        f"[Bağlam]\n{context_text}\n\n"
        f"[Soru]\n{question.strip()}\n\n"
        f"[Asistan 1]\n{answer_1.strip()}\n\n[Asistan 1'in sonu]\n\n"
        f"[Asistan 2]\n{answer_2.strip()}\n\n[Asistan 2'nin sonu]\n\n"
        f"[Sistem]\n{_RELATIVE_INSTRUCTION}"
    )
    return [{"role": "system", "content": RELATIVE_SYSTEM}, {"role": "user", "content": user}]


_ASSISTANT_LABEL = re.compile(r"(?:asistan|assistant|yardımcı)\s*\d+\s*(?:'?[ıiuün]+n)?\s*(?:puanı|score)?\s*[:=\-–]?", re.I)
_PAIR_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:\s*/\s*10(?!\d))?")
_PAIR_NUMBER_DECIMAL_COMMA = re.compile(r"(?<![\w.,])-?\d+(?:[.,]\d+)?(?:\s*/\s*10(?!\d))?")


def _pair_values(line: str, pattern: re.Pattern) -> list[float]:
    values = []
    for token in pattern.findall(line):
        number = token.split("/")[0].strip().replace(",", ".")
        values.append(float(number))
    return values


def parse_pair_scores(text: str) -> tuple[float, float] | None:
    """(score of assistant 1, score of assistant 2) from the first non-empty line, or None.

    Assistant labels ("Asistan 1:", "Assistant 2 score:") and markdown are removed first. The line
    must then hold exactly two numbers, optionally "/10": "8 7", "8, 7", "8/10 7/10",
    "Asistan 1: 8, Asistan 2: 7". A comma is a separator (LLaVA's reading) unless that gives other
    than two numbers, then it is tried as a decimal comma ("8,5 7" -> (8.5, 7.0)). Both scores must
    lie in 1..10; anything else is None.
    """
    if not text:
        return None
    first = next((line for line in text.splitlines() if line.strip()), "")
    line = _ASSISTANT_LABEL.sub(" ", first.replace("**", " ").replace("__", " "))
    for pattern, prepared in ((_PAIR_NUMBER, line.replace(",", " ")), (_PAIR_NUMBER_DECIMAL_COMMA, line)):
        values = _pair_values(prepared, pattern)
        if len(values) == 2:
            if all(1 <= v <= 10 for v in values):
                return values[0], values[1]
            return None
    return None


def _mean(values, what: str) -> float:
    kept = [float(v) for v in values if v is not None]
    if not kept:
        raise ValueError(f"no {what} score")
    return sum(kept) / len(kept)


def relative_score(ref_scores_both_orders, cand_scores_both_orders) -> tuple[float, float]:
    """(reference mean, candidate mean) for one item: the input `relative_summary` takes.

    Each argument holds that answer's scores from the two orders, e.g. order A (reference as
    assistant 1) gave "8 6" and order B (candidate as assistant 1) gave "7 9":
    `relative_score((8, 9), (6, 7))` -> (8.5, 6.5). Averaging the two orders cancels the judge's
    position bias. None entries (a reply that did not parse) are skipped; no score left for either
    side raises ValueError.
    """
    return _mean(ref_scores_both_orders, "reference"), _mean(cand_scores_both_orders, "candidate")


def relative_summary(pairs: list[tuple[float, float]]) -> float:
    """LLaVA-Bench's relative score: sum(candidate) / sum(reference) * 100 over (reference, candidate) pairs.

    The ratio of totals, as LLaVA's `summarize_gpt_review.py` computes it, not the mean of per-item
    ratios (which lets one item with a low reference score swing the result). Raises ValueError for
    no pairs or a zero reference total.
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no score pairs to summarise")
    reference = sum(float(r) for r, _ in pairs)
    candidate = sum(float(c) for _, c in pairs)
    if reference == 0:
        raise ValueError("reference scores sum to 0")
    return candidate / reference * 100

"""Turkish-aware text utilities shared by data generation (annotate/), evaluation and reasoning:
standard library only, no model calls.

- answer checking: `turkish_casefold`, `normalize_answer`, `option_letter`, `answers_match`
- language check: `language_of`, `looks_turkish`
- LLaVA-CoT traces: `COT_STAGES`, `parse_cot`, `format_cot` (errors: `TraceError`)
- generated Q&A: `parse_qa_pairs` (errors: `FormatError`)
- translation safety: `protect`, `restore`, `numbers_in`, `named_entities`, `check_translation`

Every error carries a precise one-line `reason` (also its `str()`), so a pipeline can log or count
rejections by cause.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

__all__ = [
    "COT_STAGES",
    "FormatError",
    "TraceError",
    "answers_match",
    "check_translation",
    "format_cot",
    "language_of",
    "looks_turkish",
    "named_entities",
    "normalize_answer",
    "numbers_in",
    "option_letter",
    "parse_cot",
    "parse_qa_pairs",
    "protect",
    "restore",
    "turkish_casefold",
]


class TraceError(ValueError):
    """A chain-of-thought trace is not in the four-stage LLaVA-CoT format."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FormatError(ValueError):
    """Generated text (Q&A pairs, a translation) is not in the expected form."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _excerpt(text: str, limit: int = 40) -> str:
    """Whitespace-collapsed start of `text`, short enough for a one-line reason."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---------------------------------------------------------------------------------------------------
# Case folding and answer normalisation


def turkish_casefold(text: str) -> str:
    """Lower-case with Turkish rules: "İ" -> "i", "I" -> "ı", everything else by `str.lower`.

    Python's own `"İ".lower()` gives "i" + U+0307 (combining dot), which then never equals a plain "i";
    the same two-character artefact in already-lowered input is folded back to "i" as well.
    """
    text = text.replace("I\u0307", "i").replace("İ", "i").replace("I", "ı")
    return text.lower().replace("i\u0307", "i")


def _loose_fold(text: str) -> str:
    """Case-insensitive key that also ignores the dotted/dotless i distinction.

    Used where English and Turkish spellings of the same name meet ("Istanbul" vs "İstanbul'da") and
    for label words a model may write in any case ("YANIT" must read as "yanıt" and "QUESTION" as
    "question", which no single casing rule gives).
    """
    return turkish_casefold(unicodedata.normalize("NFC", text)).replace("ı", "i")


# Leading phrases that introduce an answer rather than being part of it. Matched on casefolded text
# before punctuation is dropped, because the colon is what tells "Cevap: kedi" from an answer that
# happens to start with the word. Markdown emphasis and quotes around the phrase are skipped.
_ANSWER_PREFIX = re.compile(
    r"^[\s*_#>\"'“”‘’`]*"
    r"(?:the\s+(?:correct\s+|final\s+|right\s+)?answer\s+is\b"
    r"|(?:the\s+)?(?:correct\s+|final\s+|right\s+)?answer\s*:"
    r"|doğru\s+(?:cevap|yanıt)\b"
    r"|(?:cevap|yanıt|sonuç)\s*:"
    r")[\s*_:]*"
)
_APOSTROPHES = "'’ʼ`"


def normalize_answer(text: str) -> str:
    """Canonical form of a short answer for comparison.

    NFC, Turkish casefold, leading answer phrases dropped ("Cevap:", "Yanıt:", "Sonuç:", "Answer:",
    "The answer is", "Doğru cevap"), apostrophes dropped ("Ankara'da" -> "ankarada"), a point or comma
    between digits kept as "." ("3,5" -> "3.5"), a minus sign directly before a number kept, every
    other non-letter/non-digit becomes a space, whitespace collapsed. Numbers are otherwise left as
    written ("12.0" stays "12.0"); numeric equality is `answers_match`'s job.
    """
    text = turkish_casefold(unicodedata.normalize("NFC", text)).strip()
    while True:
        shorter = _ANSWER_PREFIX.sub("", text, count=1)
        if shorter == text:
            break
        text = shorter
    out = []
    for i, ch in enumerate(text):
        prev = text[i - 1] if i else ""
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch.isalnum() or unicodedata.category(ch).startswith("M"):
            out.append(ch)
        elif ch in ".," and prev.isdigit() and nxt.isdigit():
            out.append(".")
        elif ch in "-−" and nxt.isdigit() and (not prev or prev.isspace()):
            out.append("-")
        elif ch in _APOSTROPHES:
            continue  # Turkish suffix apostrophe joins the word, it does not split it
        else:
            out.append(" ")
    return " ".join("".join(out).split())


# ---------------------------------------------------------------------------------------------------
# Multiple-choice option letters

# Words that may precede the letter: "Cevap:", "Doğru cevap", "Seçenek", "Şık:", "The answer is",
# "option", "Correct choice:". They must be followed by a colon, whitespace or "(" so that a word that
# merely starts like one ("şıka") is not split into intro + letter.
_OPTION_INTRO = (
    r"(?:the\s+)?(?:correct\s+|right\s+|final\s+)?(?:answer|option|choice)(?:\s+is)?"
    r"|(?:doğru\s+)?(?:cevap|yanıt|seçenek|şık|sonuç)(?:\s+(?:şudur|budur))?"
)
_OPTION = re.compile(
    rf"^(?:(?:{_OPTION_INTRO})(?:\s*:\s*|\s+|(?=\()))*"
    r"(?:\((?P<paren>[a-h])\)"  # "(B)" - may be followed by the option's text
    r"|(?P<closed>[a-h])(?:\)|[.:](?=\s|$))"  # "B)", "B.", "B:" - likewise; "A.B.D." is not one
    r"|(?P<bare>[a-h])\b"  # "B" alone - only with the short tails below
    r")(?P<rest>.*)$",
    re.S,
)
# What may follow a bare letter: a Turkish copula ("B'dir"), "şıkkı"/"seçeneği", "doğru(dur)" or
# "is correct", and a final full stop. Anything else ("A cat", "B kedi") means the letter was a word.
_BARE_TAIL = re.compile(
    r"(?:['’][dt][ıiuü]r)?"
    r"(?:\s+(?:şıkkı|seçeneği)(?:d[ıi]r)?)?"
    r"(?:\s+(?:doğrudur|doğru|is\s+correct|is\s+right))?"
    r"\s*[.!]?"
)


def _parse_option(text: str) -> tuple[str, str] | None:
    """(upper-case letter, option text after it or "") when `text` is a multiple-choice answer."""
    folded = turkish_casefold(unicodedata.normalize("NFC", text)).replace("*", "").strip()
    m = _OPTION.match(folded)
    if m is None:
        return None
    rest = m.group("rest")
    if m.group("bare"):
        if not _BARE_TAIL.fullmatch(rest):
            return None
        return m.group("bare").upper(), ""
    return (m.group("paren") or m.group("closed")).upper(), rest.strip()


def option_letter(text: str) -> str | None:
    """The option letter (A-H, upper case) when `text` IS a multiple-choice answer, else None.

    "B", "b", "(B)", "B)", "B.", "B) Kedi", "Seçenek B", "Şık: C", "Cevap: (D)", "option C",
    "The answer is A.", "B şıkkıdır" -> the letter. A bare letter followed by more words is an
    ordinary sentence: "A cat" -> None, while "A) cat" -> "A".
    """
    parsed = _parse_option(text)
    return parsed[0] if parsed else None


# ---------------------------------------------------------------------------------------------------
# Answer matching

_YES = {"evet", "yes", "doğru", "doğrudur"}
_NO = {"hayır", "no", "yanlış", "yanlıştır", "değil", "değildir"}
_NEGATION = {"değil", "değildir"}

_TR_UNITS = {"bir": 1, "iki": 2, "üç": 3, "dört": 4, "beş": 5, "altı": 6, "yedi": 7, "sekiz": 8, "dokuz": 9}
_TR_TENS = {"on": 10, "yirmi": 20, "otuz": 30, "kırk": 40, "elli": 50,
            "altmış": 60, "yetmiş": 70, "seksen": 80, "doksan": 90}
_EN_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_EN_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
             "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
            "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_WORD_VALUES = {"sıfır": 0, "yüz": 100, "zero": 0, "hundred": 100, "onehundred": 100, **_EN_TEENS}


def _alternation(words) -> str:
    # Longest first, so "altmış" is tried before "altı".
    return "|".join(sorted(words, key=len, reverse=True))


# Number words are matched with spaces removed, so "on iki", "oniki" and "twenty-three" all parse.
_TR_NUMBER = re.compile(rf"(?P<tens>{_alternation(_TR_TENS)})?(?P<units>{_alternation(_TR_UNITS)})?")
_EN_NUMBER = re.compile(rf"(?P<tens>{_alternation(_EN_TENS)})?(?P<units>{_alternation(_EN_UNITS)})?")
_DIGIT_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _number_value(normalized: str) -> Decimal | None:
    """The value of a normalised answer that is exactly one number (digits or 0-100 in words).

    A separator followed by exactly three digits ("1.000", "1,000") is thousands in one convention
    and decimals in the other, so such a number has no value here (it still matches itself as text).
    """
    if _DIGIT_NUMBER.fullmatch(normalized):
        if len(normalized.partition(".")[2]) == 3:
            return None
        return Decimal(normalized)
    compact = normalized.replace(" ", "")
    if compact in _WORD_VALUES:
        return Decimal(_WORD_VALUES[compact])
    for pattern, tens, units in ((_TR_NUMBER, _TR_TENS, _TR_UNITS), (_EN_NUMBER, _EN_TENS, _EN_UNITS)):
        m = pattern.fullmatch(compact)
        if m and compact:
            return Decimal(tens.get(m.group("tens"), 0) + units.get(m.group("units"), 0))
    return None


def _polarity(words: list[str]) -> tuple[str, int] | None:
    """("yes" | "no", words used) for text that starts with a yes/no word.

    "doğru değil" (not correct) is "no" and "yanlış değil" (not wrong) is "yes": a bare first-word
    lookup would read the former as "yes".
    """
    if not words:
        return None
    first = words[0]
    if len(words) > 1 and words[1] in _NEGATION and first in {"doğru", "doğrudur", "yanlış", "yanlıştır"}:
        return ("no" if first in _YES else "yes"), 2
    if first in _YES:
        return "yes", 1
    if first in _NO:
        return "no", 1
    return None


def answers_match(conclusion: str, truth: str) -> bool:
    """Whether a generated conclusion gives the ground-truth answer.

    In order:
    - option letters: when both name a letter, the letters decide alone ("Cevap: (B)" vs "b" True,
      "A) Kedi" vs "B) Kedi" False); when only one side names a letter with option text ("B) Kedi"),
      that text is compared with the other side;
    - normalised text equal (`normalize_answer`; an empty answer never matches);
    - yes/no: the truth is only a yes/no word (evet/yes/doğru vs hayır/no/yanlış/değil) and the
      conclusion starts with one of the same polarity ("Evet, masada iki kedi var." vs "evet");
    - numbers: both are exactly one number of equal value, digits or words 0-100 in Turkish or
      English ("üç" == "3", "on iki" == "12", "12" == "12.0", "3,5" == "3.5").
    A number inside a sentence is not extracted: "Resimde 3 kedi var." does not match "3".
    """
    truth_option, conclusion_option = _parse_option(truth), _parse_option(conclusion)
    if truth_option and conclusion_option:
        return truth_option[0] == conclusion_option[0]
    for option, other in ((truth_option, conclusion), (conclusion_option, truth)):
        if option and option[1] and normalize_answer(option[1]) == normalize_answer(other):
            return True

    norm_conclusion, norm_truth = normalize_answer(conclusion), normalize_answer(truth)
    if not norm_truth or not norm_conclusion:
        return False
    if norm_conclusion == norm_truth:
        return True

    truth_words = norm_truth.split()
    truth_polarity = _polarity(truth_words)
    if truth_polarity and truth_polarity[1] == len(truth_words):
        conclusion_polarity = _polarity(norm_conclusion.split())
        return bool(conclusion_polarity) and conclusion_polarity[0] == truth_polarity[0]

    truth_value = _number_value(norm_truth)
    return truth_value is not None and _number_value(norm_conclusion) == truth_value


# ---------------------------------------------------------------------------------------------------
# Language check

_TR_LETTERS = set("çğıöşüÇĞİÖŞÜ")
_TR_WORDS = {
    "ve", "veya", "ya", "ile", "için", "bir", "bu", "şu", "o", "bunlar", "şunlar", "onlar",
    "ben", "sen", "biz", "siz", "da", "de", "mı", "mi", "mu", "mü", "değil", "değildir",
    "var", "yok", "olarak", "gibi", "çok", "daha", "en", "ne", "neden", "niçin", "nasıl", "kaç",
    "hangi", "nerede", "kim", "ama", "fakat", "ancak", "ise", "ki", "göre", "kadar", "sonra",
    "önce", "hiç", "tüm", "bütün", "olan", "olduğu", "evet", "hayır", "resimde", "görselde",
    "fotoğrafta", "görüntüde", "burada", "orada", "içinde", "üzerinde",
}
# "her" (Turkish "every") and "can" (a common Turkish name) are left out: they would count for
# English in Turkish text.
_EN_WORDS = {
    "the", "a", "an", "and", "or", "but", "is", "are", "was", "were", "be", "been", "being", "am",
    "of", "to", "in", "on", "at", "with", "for", "from", "by", "as", "this", "that", "these", "those",
    "it", "its", "there", "here", "what", "which", "who", "whom", "whose", "where", "when", "why",
    "how", "many", "much", "do", "does", "did", "has", "have", "had", "not", "no", "yes", "could",
    "will", "would", "should", "may", "might", "must", "you", "your", "he", "she", "his", "him",
    "they", "their", "them", "we", "our", "us", "i", "my", "me", "some", "any", "all", "each", "if",
    "than", "then", "so", "about", "into", "over", "under", "between", "it's", "there's", "what's",
    "isn't", "aren't", "don't", "doesn't", "i'm",
}
# Turkish suffixes that survive without any Turkish-only letter: "tutuyor", "kediler", "masadaki",
# "evinde", "gelmiş". English has a few such endings ("ruler", "similar"), hence the half weight.
_TR_SUFFIX = re.compile(
    r"(?:[ıiuü]yor(?:um|sun|uz|lar)?|l[ae]r[ıi]?|[dt][ae]ki|[ıiuü]n[dt][ae]|m[ıiuü]ş|[dt][ıiuü]r)$"
)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def _scores(text: str) -> tuple[float, float]:
    """(Turkish evidence, English evidence) over the words of `text`, code and URLs left out."""
    text = _PROTECTED.sub(" ", text)
    tr = en = 0.0
    for word in _WORD.findall(text):
        tr_form = turkish_casefold(word)
        if tr_form in _TR_WORDS:
            tr += 1
        elif any(ch in _TR_LETTERS for ch in word):
            # A capitalised word is likely a name ("İzmir" in an English sentence): weaker evidence.
            tr += 0.5 if word[0].isupper() else 1
        elif len(tr_form) > 5 and _TR_SUFFIX.search(tr_form):
            tr += 0.5
        if word.lower() in _EN_WORDS:
            en += 1
    return tr, en


def language_of(text: str) -> str:
    """"tr", "en" or "unknown" by which side has more evidence (none, or a tie: "unknown").

    Turkish evidence: common Turkish function words, words with ç ğ ı ö ş ü (half for capitalised
    ones, which are often names), half for Turkish suffixes like -yor/-ler. English evidence: common
    English function words. Code, URLs and `<image>` are ignored. So a single content word without
    Turkish letters ("Kedi", "Istanbul", "OK") is "unknown", while "Evet" or "Kırmızı" is "tr".
    """
    tr, en = _scores(text)
    if tr > en:
        return "tr"
    if en > tr:
        return "en"
    return "unknown"


def looks_turkish(text: str) -> bool:
    """True only when the evidence favours Turkish: `language_of(text) == "tr"`."""
    return language_of(text) == "tr"


# ---------------------------------------------------------------------------------------------------
# LLaVA-CoT traces

COT_STAGES = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")
_COT_TAG = re.compile(r"<(/?)(" + "|".join(COT_STAGES) + r")>")


def parse_cot(text: str) -> dict[str, str]:
    """The four stage texts (stripped) of a `<SUMMARY>...</SUMMARY>` ... `<CONCLUSION>` trace.

    Tags are case-sensitive as in LLaVA-CoT. Problems are reported in this order, the first one found:
    1. reading the tags in order: "</X> without <X>", "duplicate <X>", "<X> is not closed" (another
       tag opens, or the text ends, before "</X>"), "unexpected </Y> inside <X>";
    2. "missing <X>";
    3. "<X> comes before <Y>" (X is a later stage than Y);
    4. "text outside the tags: '<excerpt>'";
    5. "<X> is empty".
    """
    stages: dict[str, str] = {}
    outside: list[str] = []
    open_stage, content_start, pos = None, 0, 0
    for m in _COT_TAG.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        if open_stage is None:
            if text[pos : m.start()].strip():
                outside.append(text[pos : m.start()])
            if closing:
                raise TraceError(f"</{name}> without <{name}>")
            if name in stages:
                raise TraceError(f"duplicate <{name}>")
            open_stage, content_start = name, m.end()
        elif not closing:
            raise TraceError(f"<{open_stage}> is not closed")
        elif name != open_stage:
            raise TraceError(f"unexpected </{name}> inside <{open_stage}>")
        else:
            stages[name] = text[content_start : m.start()].strip()
            open_stage = None
        pos = m.end()
    if open_stage is not None:
        raise TraceError(f"<{open_stage}> is not closed")
    if text[pos:].strip():
        outside.append(text[pos:])

    for name in COT_STAGES:
        if name not in stages:
            raise TraceError(f"missing <{name}>")
    seen = list(stages)  # insertion order is reading order
    for earlier, later in zip(seen, seen[1:]):
        if COT_STAGES.index(earlier) > COT_STAGES.index(later):
            raise TraceError(f"<{earlier}> comes before <{later}>")
    if outside:
        raise TraceError(f"text outside the tags: '{_excerpt(outside[0])}'")
    for name in COT_STAGES:
        if not stages[name]:
            raise TraceError(f"<{name}> is empty")
    return {name: stages[name] for name in COT_STAGES}


def format_cot(stages: dict) -> str:
    """The canonical trace: each stage in its tags, stages separated by a blank line.

    Stage texts are stripped, so `parse_cot(format_cot(x)) == x` for stripped texts. Raises
    TraceError: "missing <X>", "unknown stage 'X'", "<X> is empty", "<X> contains a stage tag" (it
    would not parse back).
    """
    for name in stages:
        if name not in COT_STAGES:
            raise TraceError(f"unknown stage '{name}'")
    parts = []
    for name in COT_STAGES:
        if name not in stages:
            raise TraceError(f"missing <{name}>")
        body = str(stages[name]).strip()
        if not body:
            raise TraceError(f"<{name}> is empty")
        if _COT_TAG.search(body):
            raise TraceError(f"<{name}> contains a stage tag")
        parts.append(f"<{name}>{body}</{name}>")
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------------
# Generated question/answer pairs

# A label line: optional heading marks, bullet, "1." numbering and bold around the label, the label,
# an optional number ("Soru 2:"), a colon (inside or outside the bold), then the text.
_QA_LABEL = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?:[-*•]\s+)?(?:\d+\s*[.)]\s*)?(?:\*\*|__)?\s*"
    r"(?P<label>soru|question|cevap|yanıt|answer|s|q|c|a)(?:\s*\d+)?"
    r"\s*(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?\s*(?P<rest>.*)$",
    re.I,
)
_QUESTION_LABELS = {"soru", "question", "s", "q"}
_RULE_LINE = re.compile(r"^\s*([-*_=])\1{2,}\s*$")  # "---" between pairs


def parse_qa_pairs(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs from "Soru: ... / Cevap: ..." model output.

    Labels: Soru/Question/S/Q and Cevap/Yanıt/Answer/C/A, in any case, with a colon, optionally bold
    ("**Soru:**"), numbered ("1. Soru:", "Soru 1:") or bulleted. A question or answer continues over
    the following lines until the next label; lines before the first label (a preamble such as
    "İşte sorular:") and "---" rules are ignored. Labels are only recognised at the start of a line.

    Raises FormatError: "no question/answer pairs found", "question without an answer: '<excerpt>'",
    "answer without a question: '<excerpt>'", "empty question in pair N", "empty answer in pair N"
    (N counts from 1).
    """
    pairs: list[tuple[str, str]] = []
    question: list[str] | None = None
    answer: list[str] | None = None

    def finish() -> None:
        q, a = "\n".join(question).strip(), "\n".join(answer).strip()
        if not q:
            raise FormatError(f"empty question in pair {len(pairs) + 1}")
        if not a:
            raise FormatError(f"empty answer in pair {len(pairs) + 1}")
        pairs.append((q, a))

    for line in text.splitlines():
        if _RULE_LINE.match(line):
            continue
        m = _QA_LABEL.match(line)
        if m is None:
            if answer is not None:
                answer.append(line.rstrip())
            elif question is not None:
                question.append(line.rstrip())
            continue
        rest = m.group("rest").rstrip()
        if rest.endswith("**") and rest.count("**") % 2:  # "**Soru: metin**": drop the closing bold
            rest = rest[:-2].rstrip()
        if _loose_fold(m.group("label")) in _QUESTION_LABELS:
            if question is not None and answer is None:
                raise FormatError(f"question without an answer: '{_excerpt(' '.join(question))}'")
            if answer is not None:
                finish()
            question, answer = [rest], None
        else:
            if question is None or answer is not None:
                raise FormatError(f"answer without a question: '{_excerpt(rest)}'")
            answer = [rest]

    if question is not None and answer is None:
        raise FormatError(f"question without an answer: '{_excerpt(' '.join(question))}'")
    if answer is not None:
        finish()
    if not pairs:
        raise FormatError("no question/answer pairs found")
    return pairs


# ---------------------------------------------------------------------------------------------------
# Translation safety

# Spans a translation must leave untouched. Text that already looks like a placeholder is protected
# too, so it keeps its identity instead of colliding with the numbering.
_PROTECTED = re.compile(
    r"```.*?```"  # fenced code block, possibly over many lines
    r"|`[^`\n]+`"  # inline code
    r"|(?:https?://|www\.)[^\s<>\"'`]+"  # URL; trailing punctuation is given back below
    r"|<image>"
    r"|⟦\d+⟧",
    re.S,
)
_PLACEHOLDER = re.compile(r"⟦\s*(\d+)\s*⟧")  # translators sometimes pad the brackets with spaces


def _url_end(url: str) -> int:
    """Length of `url` without the sentence punctuation that followed it ("bkz. https://x.org.")."""
    end = len(url)
    while end and (url[end - 1] in ".,;:!?" or (url[end - 1] == ")" and url[:end].count(")") > url[:end].count("("))):
        end -= 1
    return end


def protect(text: str) -> tuple[str, list[str]]:
    """Replace code blocks, inline code, URLs and `<image>` with "⟦0⟧", "⟦1⟧", ... in order.

    Returns (text with placeholders, the original spans); `restore` puts them back.
    """
    saved: list[str] = []
    out: list[str] = []
    pos = 0
    for m in _PROTECTED.finditer(text):
        span = m.group()
        end = _url_end(span) if not span.startswith(("`", "<", "⟦")) else len(span)
        out.append(text[pos : m.start()])
        out.append(f"⟦{len(saved)}⟧")
        out.append(span[end:])
        saved.append(span[:end])
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), saved


def restore(text: str, saved: list[str]) -> str:
    """Put the spans `protect` saved back in place of their placeholders.

    Raises FormatError: "unknown placeholder ⟦N⟧", "placeholder ⟦N⟧ appears K times",
    "placeholder ⟦N⟧ is missing" (checked in that order, lowest N first).
    """
    found = [int(m.group(1)) for m in _PLACEHOLDER.finditer(text)]
    for index in found:
        if index >= len(saved):
            raise FormatError(f"unknown placeholder ⟦{index}⟧")
    for index in sorted(set(found)):
        if found.count(index) > 1:
            raise FormatError(f"placeholder ⟦{index}⟧ appears {found.count(index)} times")
    for index in range(len(saved)):
        if index not in found:
            raise FormatError(f"placeholder ⟦{index}⟧ is missing")
    return _PLACEHOLDER.sub(lambda m: saved[int(m.group(1))], text)


_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)*")


def numbers_in(text: str) -> list[str]:
    """The digit sequences of `text`, separators as "." ("3,5" -> "3.5", "1,000" -> "1.000"), sorted.

    Writing every separator as "." makes "3.5" (English) equal "3,5" (Turkish) and "1,000" equal
    "1.000". Sorted as text ("12" before "3.5"): the list is a multiset to compare, not a ranking.
    """
    return sorted(m.group().replace(",", ".") for m in _NUMBER.finditer(text))


# Capitalised words that are not names, or that Turkish translates (days, months, titles).
_NOT_ENTITIES = {
    "I", "I'm", "I've", "I'll", "I'd", "OK",
    "Mr", "Mrs", "Ms", "Dr", "Prof", "St",
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
}
_TITLES = {"Mr", "Mrs", "Ms", "Dr", "Prof", "St"}  # a full stop after these does not end a sentence
_SENTENCE_END = re.compile(r"[.!?:\n]")


def named_entities(text: str) -> list[str]:
    """Likely English proper nouns, in order of first appearance, each once.

    Capitalised words that do not start a sentence (after ".", "!", "?", ":" or a line break; not
    after a title like "Mr." or an initial like "J.") and are not in a small stoplist ("I", "OK",
    titles, days and months - Turkish translates those). Adjacent ones form one entity: "New York",
    "J. K. Rowling". A possessive "'s" is dropped. A sentence-initial name is missed ("Paris is big"
    gives nothing) - the price of not knowing which first words are names.
    """
    text = _PROTECTED.sub(" ", text)
    entities: list[str] = []
    run_start = run_end = None
    prev_word, prev_end = None, 0

    def flush() -> None:
        nonlocal run_start
        if run_start is not None:
            entity = re.sub(r"['’]s$", "", text[run_start:run_end])
            if entity not in entities:
                entities.append(entity)
        run_start = None

    for m in _WORD.finditer(text):
        word, gap = m.group(), text[prev_end : m.start()]
        after_initial = prev_word is not None and gap == ". " and (
            prev_word in _TITLES or (len(prev_word) == 1 and prev_word.isupper() and prev_word != "I")
        )
        starts_sentence = prev_word is None or (bool(_SENTENCE_END.search(gap)) and not after_initial)
        bare = re.sub(r"['’]s$", "", word)
        if word[0].isupper() and not starts_sentence and word not in _NOT_ENTITIES and bare not in _NOT_ENTITIES:
            joins_run = run_start is not None and (gap == " " or (after_initial and prev_word not in _TITLES))
            if not joins_run:
                flush()
                run_start = m.start()
            run_end = m.end()
        else:
            flush()
        prev_word, prev_end = word, m.end()
    flush()
    return entities


def _entity_present(entity: str, text: str) -> bool:
    """Whether `entity` starts a word (run) of `text`, ignoring case: Turkish may add a suffix."""
    words = [re.escape(_loose_fold(w)) for w in entity.split()]
    return re.search(r"(?<!\w)" + r"\s+".join(words), _loose_fold(text)) is not None


def check_translation(source: str, translated: str, *, entities: bool = False) -> None:
    """Raise FormatError when a translation lost something it must keep; return None when fine.

    Reasons, checked in order: "translation is empty"; "<image> count changed: 1 -> 0";
    "numbers changed: 12, 3.5 -> 12" (`numbers_in` of each side, "(none)" for no numbers); with
    `entities=True`, "named entity dropped: 'Paris'" for the first `named_entities(source)` entry that
    does not start a word of the translation ("Paris'te" and "New York'ta" keep them).
    """
    if not translated.strip():
        raise FormatError("translation is empty")
    before, after = source.count("<image>"), translated.count("<image>")
    if before != after:
        raise FormatError(f"<image> count changed: {before} -> {after}")
    source_numbers, translated_numbers = numbers_in(source), numbers_in(translated)
    if source_numbers != translated_numbers:
        raise FormatError(
            f"numbers changed: {', '.join(source_numbers) or '(none)'} -> {', '.join(translated_numbers) or '(none)'}"
        )
    if entities:
        for entity in named_entities(source):
            if not _entity_present(entity, translated):
                raise FormatError(f"named entity dropped: '{entity}'")
